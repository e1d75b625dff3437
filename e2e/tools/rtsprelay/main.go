// Command rtsprelay is the third-party RTSP relay the end-to-end tests put
// between a publisher (ffmpeg) and gstcapture: gortsplib's server, the RTSP
// stack of MediaMTX, which forwards the publisher's RTP packets to every
// reader as they arrive, without depayloading or re-timestamping them. It
// is a module of its own so gortsplib stays out of the service's go.mod;
// this file is only the glue (a path per publisher, a listen flag).
//
//	rtsprelay --listen 127.0.0.1:PORT [--tls-listen 127.0.0.1:PORT2 --tls-cert F --tls-key K]
//
// Publish with `ffmpeg ... -f rtsp -rtsp_transport tcp rtsp://HOST:PORT/NAME`
// and read rtsp://HOST:PORT/NAME over TCP (UDP is off); with --tls-listen
// the same paths are also served as rtsps://HOST:PORT2/NAME by a second,
// TLS-only gortsplib server with that certificate. It prints "rtsprelay
// ready" on stdout once listening, "rtsprelay publishing /NAME" when a
// publisher starts recording, and "rtsprelay reader playing /NAME" and
// "rtsprelay reader closed /NAME" when a reader of the plain server starts
// playing and when its session ends (a TEARDOWN or a dropped connection).
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"os"
	"sync"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
)

type path struct {
	stream    *gortsplib.ServerStream
	tlsStream *gortsplib.ServerStream // the same packets for the TLS server's readers, or nil
	publisher *gortsplib.ServerSession
}

type relay struct {
	server    *gortsplib.Server
	tlsServer *gortsplib.Server // nil without --tls-listen
	mu        sync.Mutex
	paths     map[string]*path
	readers   map[*gortsplib.ServerSession]string // playing sessions of the plain server, by path
}

// tlsReaders serves the TLS server's readers from the relay's paths.
type tlsReaders struct{ r *relay }

func (v tlsReaders) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	s, res := v.r.lookupTLS(ctx.Path)
	return res, s, nil
}

func (v tlsReaders) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	s, res := v.r.lookupTLS(ctx.Path)
	return res, s, nil
}

func (v tlsReaders) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (r *relay) lookupTLS(name string) (*gortsplib.ServerStream, *base.Response) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.paths[name]
	if !ok || p.tlsStream == nil {
		return nil, &base.Response{StatusCode: base.StatusNotFound}
	}
	return p.tlsStream, &base.Response{StatusCode: base.StatusOK}
}

func (r *relay) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if name, ok := r.readers[ctx.Session]; ok {
		delete(r.readers, ctx.Session)
		fmt.Printf("rtsprelay reader closed %s\n", name)
	}
	for name, p := range r.paths {
		if p.publisher == ctx.Session {
			p.stream.Close()
			if p.tlsStream != nil {
				p.tlsStream.Close()
			}
			delete(r.paths, name)
		}
	}
}

func (r *relay) lookup(name string) (*gortsplib.ServerStream, *base.Response) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.paths[name]
	if !ok {
		return nil, &base.Response{StatusCode: base.StatusNotFound}
	}
	return p.stream, &base.Response{StatusCode: base.StatusOK}
}

func (r *relay) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	s, res := r.lookup(ctx.Path)
	return res, s, nil
}

func (r *relay) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.paths[ctx.Path]; ok {
		old.stream.Close()
		if old.tlsStream != nil {
			old.tlsStream.Close()
		}
		old.publisher.Close()
	}
	s := &gortsplib.ServerStream{Server: r.server, Desc: ctx.Description}
	if err := s.Initialize(); err != nil {
		return &base.Response{StatusCode: base.StatusBadRequest}, err
	}
	p := &path{stream: s, publisher: ctx.Session}
	if r.tlsServer != nil {
		p.tlsStream = &gortsplib.ServerStream{Server: r.tlsServer, Desc: ctx.Description}
		if err := p.tlsStream.Initialize(); err != nil {
			s.Close()
			return &base.Response{StatusCode: base.StatusBadRequest}, err
		}
	}
	r.paths[ctx.Path] = p
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (r *relay) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		return &base.Response{StatusCode: base.StatusOK}, nil, nil
	}
	s, res := r.lookup(ctx.Path)
	return res, s, nil
}

func (r *relay) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	r.mu.Lock()
	r.readers[ctx.Session] = ctx.Path
	r.mu.Unlock()
	fmt.Printf("rtsprelay reader playing %s\n", ctx.Path)
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (r *relay) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	s, res := r.lookup(ctx.Path)
	if s == nil {
		return res, nil
	}
	ts, _ := r.lookupTLS(ctx.Path)
	ctx.Session.OnPacketRTPAny(func(m *description.Media, _ format.Format, pkt *rtp.Packet) {
		_ = s.WritePacketRTP(m, pkt)
		if ts != nil {
			_ = ts.WritePacketRTP(m, pkt)
		}
	})
	fmt.Printf("rtsprelay publishing %s\n", ctx.Path)
	return res, nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8554", "RTSP `HOST:PORT`")
	tlsListen := flag.String("tls-listen", "", "also serve the paths as RTSPS on `HOST:PORT`")
	tlsCert := flag.String("tls-cert", "", "PEM certificate `FILE` of --tls-listen")
	tlsKey := flag.String("tls-key", "", "PEM private key `FILE` of --tls-cert")
	flag.Parse()
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "rtsprelay:", err)
		os.Exit(1)
	}
	r := &relay{paths: map[string]*path{}, readers: map[*gortsplib.ServerSession]string{}}
	r.server = &gortsplib.Server{Handler: r, RTSPAddress: *listen}
	if *tlsListen != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			fail(err)
		}
		r.tlsServer = &gortsplib.Server{Handler: tlsReaders{r}, RTSPAddress: *tlsListen,
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
		if err := r.tlsServer.Start(); err != nil {
			fail(err)
		}
	}
	if err := r.server.Start(); err != nil {
		fail(err)
	}
	fmt.Println("rtsprelay ready")
	log.Fatal(r.server.Wait())
}
