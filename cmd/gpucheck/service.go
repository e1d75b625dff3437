package main

// What the check script asks of the running services: free ports, the
// HTTP server being up, gstcapture's per-camera counters, Redis keys gone.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"
)

func cmdPorts(args []string, stdout, stderr io.Writer) int {
	n := 1
	if len(args) > 0 {
		v, err := strconv.Atoi(args[0])
		if err != nil || v < 1 || v > 64 {
			fmt.Fprintf(stderr, "gpucheck ports: N %q: want 1 to 64\n", args[0])
			return 2
		}
		n = v
	}
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintf(stderr, "gpucheck ports: %v\n", err)
			return 1
		}
		held = append(held, l)
		fmt.Fprintln(stdout, l.Addr().(*net.TCPAddr).Port)
	}
	return 0
}

func cmdWaitHTTP(args []string, _, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprintln(stderr, "usage: gpucheck wait-http URL SECONDS")
		return 2
	}
	secs, err := strconv.ParseFloat(args[1], 64)
	if err != nil || secs <= 0 {
		fmt.Fprintf(stderr, "gpucheck wait-http: SECONDS %q: want a positive number\n", args[1])
		return 2
	}
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(time.Duration(secs * float64(time.Second)))
	last := "no answer"
	for time.Now().Before(deadline) {
		resp, err := c.Get(args[0])
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return 0
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Fprintf(stderr, "gpucheck wait-http: %s did not answer 200 within %ss (last: %s)\n", args[0], args[1], last)
	return 1
}

// cameraCounters is one camera's line of `gpucheck metrics`.
type cameraCounters struct {
	id                           string
	published, captured, dropped float64
	codec, decoder               string
}

// parseMetrics reads gstcapture's per-camera counters from a /metrics body.
func parseMetrics(r io.Reader) ([]cameraCounters, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	cams := map[string]*cameraCounters{}
	get := func(id string) *cameraCounters {
		if cams[id] == nil {
			cams[id] = &cameraCounters{id: id, codec: "-", decoder: "-"}
		}
		return cams[id]
	}
	for name, fam := range fams {
		for _, m := range fam.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			id, ok := labels["camera_id"]
			if !ok {
				continue
			}
			switch name {
			case "rtsp_frames_published_total":
				get(id).published = m.GetCounter().GetValue()
			case "rtsp_frames_captured_total":
				get(id).captured = m.GetCounter().GetValue()
			case "rtsp_frames_dropped_total":
				get(id).dropped += m.GetCounter().GetValue()
			case "rtsp_decoder_info":
				if m.GetGauge().GetValue() == 1 {
					c := get(id)
					c.codec, c.decoder = labels["codec"], labels["decoder"]
				}
			}
		}
	}
	out := make([]cameraCounters, 0, len(cams))
	for _, c := range cams {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out, nil
}

func cmdMetrics(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: gpucheck metrics URL")
		return 2
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "gpucheck metrics: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "gpucheck metrics: GET %s: %s\n", args[0], resp.Status)
		return 1
	}
	cams, err := parseMetrics(resp.Body)
	if err != nil {
		fmt.Fprintf(stderr, "gpucheck metrics: %s: %v\n", args[0], err)
		return 1
	}
	for _, c := range cams {
		fmt.Fprintf(stdout, "%s\t%.0f\t%.0f\t%.0f\t%s\t%s\n", c.id, c.published, c.captured, c.dropped, c.codec, c.decoder)
	}
	return 0
}

func cmdDel(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gpucheck del", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("redis", "", "Redis `HOST:PORT`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *addr == "" || fs.NArg() == 0 {
		fmt.Fprintln(stderr, "usage: gpucheck del --redis HOST:PORT PATTERN...")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: *addr})
	defer rdb.Close()
	n := 0
	for _, pat := range fs.Args() {
		iter := rdb.Scan(ctx, 0, pat, 100).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			fmt.Fprintf(stderr, "gpucheck del: SCAN %s on %s: %v\n", pat, *addr, err)
			return 1
		}
		if len(keys) == 0 {
			continue
		}
		if err := rdb.Unlink(ctx, keys...).Err(); err != nil {
			fmt.Fprintf(stderr, "gpucheck del: UNLINK %s on %s: %v\n", strings.Join(keys, " "), *addr, err)
			return 1
		}
		n += len(keys)
	}
	fmt.Fprintf(stdout, "deleted=%d\n", n)
	return 0
}
