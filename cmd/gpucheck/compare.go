package main

// Comparing the GPU decoder's pictures with the CPU decoder's.
//
// compare: camsim loops one clip, and gstcapture publishes every frame of
// it (capture fps = camera fps), so the CPU stream's last two loops hold
// each clip position at least once. Each frame of the GPU stream is paired
// with the CPU frame of the same picture: the closest of the few whose
// thumbnails are closest. The pictures scroll by 4 pixels a frame
// (videotestsrc horizontal-speed=4), so a frame one position off differs
// by far more than the tolerance: the check prints that distance too
// (adjacent_mad, the median over consecutive CPU frames) and fails when it
// is not at least margin × max-mad, since the pairing would then prove
// nothing.
//
// rawdiff: two decodes of the same clip file (nvh26Xdec and avdec_h26X,
// both converted to I420), frame by frame. H.264 and H.265 decoding is
// exact by specification, so the frames should be identical.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"gstcapture/client"
)

// picture is a frame's pixel bytes, row by row (all planes, padding left
// out), and its thumbnail.
type picture struct {
	id    string
	rows  [][]byte
	thumb []float32
}

const thumbW, thumbH = 64, 36

func newPicture(id string, rows [][]byte) picture {
	return picture{id: id, rows: rows, thumb: thumbnail(rows)}
}

// thumbnail is the mean byte value over a thumbW × thumbH grid of the
// rows (bands of rows by runs of bytes).
func thumbnail(rows [][]byte) []float32 {
	t := make([]float32, thumbW*thumbH)
	if len(rows) == 0 {
		return t
	}
	n := make([]int, thumbW*thumbH)
	for y, row := range rows {
		band := y * thumbH / len(rows)
		for bx := range thumbW {
			lo, hi := bx*len(row)/thumbW, (bx+1)*len(row)/thumbW
			s := 0
			for _, v := range row[lo:hi] {
				s += int(v)
			}
			t[band*thumbW+bx] += float32(s)
			n[band*thumbW+bx] += hi - lo
		}
	}
	for i := range t {
		if n[i] > 0 {
			t[i] /= float32(n[i])
		}
	}
	return t
}

func thumbDist(a, b []float32) float32 {
	var d float32
	for i := range a {
		d += float32(math.Abs(float64(a[i] - b[i])))
	}
	return d
}

// diff returns the mean absolute difference per byte and the mean squared
// difference of two pictures of the same layout.
func diff(a, b picture) (mad, mse float64, err error) {
	if len(a.rows) != len(b.rows) {
		return 0, 0, fmt.Errorf("%s has %d rows, %s has %d", a.id, len(a.rows), b.id, len(b.rows))
	}
	var sad, ssd, n int64
	for y := range a.rows {
		ra, rb := a.rows[y], b.rows[y]
		if len(ra) != len(rb) {
			return 0, 0, fmt.Errorf("row %d: %s has %d bytes, %s has %d", y, a.id, len(ra), b.id, len(rb))
		}
		for i, va := range ra {
			d := int64(va) - int64(rb[i])
			if d < 0 {
				d = -d
			}
			sad += d
			ssd += d * d
		}
		n += int64(len(ra))
	}
	if n == 0 {
		return 0, 0, fmt.Errorf("%s and %s have no pixels", a.id, b.id)
	}
	return float64(sad) / float64(n), float64(ssd) / float64(n), nil
}

// psnr of 8-bit samples; +Inf for identical pictures.
func psnr(mse float64) float64 {
	if mse == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(255*255/mse)
}

// tolerance is what a comparison must meet.
type tolerance struct {
	maxMAD, minPSNR float64
	margin          float64 // compare: adjacent_mad >= margin × maxMAD
}

// matchStats is compare's outcome.
type matchStats struct {
	pairs, refs                 int
	madMean, madMax             float64
	psnrMin, psnrMean           float64
	adjacentMAD                 float64
	worstTest, worstRef, reason string
}

func (s matchStats) ok() bool { return s.reason == "" }

// candidates is how many ref frames, closest by thumbnail, are compared in
// full with each test frame.
const candidates = 4

// match pairs every test picture with its closest ref picture (ref in
// stream order, so consecutive refs are consecutive clip positions).
func match(ref, test []picture, tol tolerance) (matchStats, error) {
	st := matchStats{pairs: len(test), refs: len(ref), psnrMin: math.Inf(1)}
	if len(test) == 0 || len(ref) < 2 {
		return st, fmt.Errorf("need at least 1 test and 2 reference frames, have %d and %d", len(test), len(ref))
	}
	var adj []float64
	for i := 0; i+1 < len(ref) && len(adj) < 20; i++ {
		mad, _, err := diff(ref[i], ref[i+1])
		if err != nil {
			return st, fmt.Errorf("reference frames: %w", err)
		}
		adj = append(adj, mad)
	}
	sort.Float64s(adj)
	st.adjacentMAD = adj[len(adj)/2]

	psnrSum, finite := 0.0, 0
	order := make([]int, len(ref))
	for _, tp := range test {
		for i := range order {
			order[i] = i
		}
		sort.Slice(order, func(i, j int) bool {
			return thumbDist(tp.thumb, ref[order[i]].thumb) < thumbDist(tp.thumb, ref[order[j]].thumb)
		})
		bestMAD, bestMSE, best := math.Inf(1), 0.0, -1
		for _, ri := range order[:min(candidates, len(order))] {
			mad, mse, err := diff(tp, ref[ri])
			if err != nil {
				return st, err
			}
			if mad < bestMAD {
				bestMAD, bestMSE, best = mad, mse, ri
			}
		}
		st.madMean += bestMAD / float64(len(test))
		if bestMAD >= st.madMax {
			st.madMax, st.worstTest, st.worstRef = bestMAD, tp.id, ref[best].id
		}
		p := psnr(bestMSE)
		st.psnrMin = math.Min(st.psnrMin, p)
		if !math.IsInf(p, 1) {
			psnrSum += p
			finite++
		}
	}
	st.psnrMean = math.Inf(1)
	if finite > 0 {
		st.psnrMean = psnrSum / float64(finite)
	}
	switch {
	case st.adjacentMAD < tol.margin*tol.maxMAD:
		st.reason = fmt.Sprintf("consecutive reference frames differ by only %.3f per byte (less than %.1f x the tolerance %.2f): the pairing cannot tell clip positions apart", st.adjacentMAD, tol.margin, tol.maxMAD)
	case st.madMax > tol.maxMAD:
		st.reason = fmt.Sprintf("test frame %s differs from its closest reference frame %s by %.3f per byte (tolerance %.2f; frames one clip position apart differ by %.3f)", st.worstTest, st.worstRef, st.madMax, tol.maxMAD, st.adjacentMAD)
	case st.psnrMin < tol.minPSNR:
		st.reason = fmt.Sprintf("a pair's PSNR is %.2f dB, under %.1f dB", st.psnrMin, tol.minPSNR)
	}
	return st, nil
}

func (s matchStats) line(tol tolerance) string {
	status := "pass"
	if !s.ok() {
		status = "fail"
	}
	out := fmt.Sprintf("pairs=%d ref_frames=%d mad_mean=%.4f mad_max=%.4f psnr_min=%s psnr_mean=%s adjacent_mad=%.3f max_mad=%g min_psnr=%g status=%s",
		s.pairs, s.refs, s.madMean, s.madMax, fmtDB(s.psnrMin), fmtDB(s.psnrMean), s.adjacentMAD, tol.maxMAD, tol.minPSNR, status)
	if !s.ok() {
		out += " reason=" + strconv.Quote(s.reason)
	}
	return out
}

func fmtDB(v float64) string {
	if math.IsInf(v, 1) {
		return "inf"
	}
	return fmt.Sprintf("%.2f", v)
}

// streamInfo is the layout the frames of a stream share.
type streamInfo struct {
	width, height int
	format        string
}

// readPictures reads the newest count entries of stream (fewer when it
// holds fewer), oldest first.
func readPictures(ctx context.Context, rdb *redis.Client, stream string, count int) ([]picture, streamInfo, error) {
	var pics []picture
	var info streamInfo
	start := "+"
	for len(pics) < count {
		msgs, err := rdb.XRevRangeN(ctx, stream, start, "-", int64(min(25, count-len(pics)))).Result()
		if err != nil {
			return nil, info, fmt.Errorf("XREVRANGE %s: %w", stream, err)
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			f, err := client.Parse(stream, m.ID, m.Values)
			if err != nil {
				return nil, info, err
			}
			if len(f.Data) == 0 {
				return nil, info, fmt.Errorf("%s entry %s has no pixels in Redis (delivery shm?); the check needs delivery redis", stream, m.ID)
			}
			planes, err := f.Planes()
			if err != nil {
				return nil, info, err
			}
			fi := streamInfo{f.Width, f.Height, f.Format}
			if info == (streamInfo{}) {
				info = fi
			} else if fi != info {
				return nil, info, fmt.Errorf("%s entry %s is %dx%d %s, the newer entries %dx%d %s", stream, m.ID, fi.width, fi.height, fi.format, info.width, info.height, info.format)
			}
			var rows [][]byte
			for _, p := range planes {
				for y := range p.Rows {
					rows = append(rows, p.Row(y))
				}
			}
			pics = append(pics, newPicture(stream+" "+m.ID, rows))
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
	for i, j := 0, len(pics)-1; i < j; i, j = i+1, j-1 {
		pics[i], pics[j] = pics[j], pics[i]
	}
	return pics, info, nil
}

func cmdCompare(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gpucheck compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("redis", "", "Redis `HOST:PORT`")
	refKey := fs.String("ref", "", "reference stream (the CPU decoder's)")
	testKey := fs.String("test", "", "stream to check (the GPU decoder's)")
	refCount := fs.Int("ref-count", 200, "newest reference entries to read (two loops of the clip)")
	testCount := fs.Int("test-count", 30, "newest test entries to check")
	tol := tolerance{}
	fs.Float64Var(&tol.maxMAD, "max-mad", 1.0, "largest mean absolute difference per byte of a pair")
	fs.Float64Var(&tol.minPSNR, "min-psnr", 30, "smallest PSNR of a pair, dB")
	fs.Float64Var(&tol.margin, "margin", 4, "consecutive reference frames must differ by margin × max-mad")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *addr == "" || *refKey == "" || *testKey == "" || fs.NArg() > 0 || *refCount < 2 || *testCount < 1 {
		fmt.Fprintln(stderr, "usage: gpucheck compare --redis HOST:PORT --ref STREAM --test STREAM [--ref-count N>=2] [--test-count N>=1] [--max-mad F] [--min-psnr DB] [--margin F]")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: *addr, ReadTimeout: 30 * time.Second})
	defer rdb.Close()
	ref, refInfo, err := readPictures(ctx, rdb, *refKey, *refCount)
	if err != nil {
		fmt.Fprintf(stderr, "gpucheck compare: %v\n", err)
		return 1
	}
	test, testInfo, err := readPictures(ctx, rdb, *testKey, *testCount)
	if err != nil {
		fmt.Fprintf(stderr, "gpucheck compare: %v\n", err)
		return 1
	}
	if len(ref) > 0 && len(test) > 0 && refInfo != testInfo {
		fmt.Fprintf(stderr, "gpucheck compare: %s is %dx%d %s but %s is %dx%d %s\n", *testKey, testInfo.width, testInfo.height, testInfo.format, *refKey, refInfo.width, refInfo.height, refInfo.format)
		return 1
	}
	st, err := match(ref, test, tol)
	if err != nil {
		fmt.Fprintf(stderr, "gpucheck compare: %s against %s: %v\n", *testKey, *refKey, err)
		return 1
	}
	fmt.Fprintln(stdout, st.line(tol))
	if !st.ok() {
		return 1
	}
	return 0
}

// i420Size is the bytes of one I420 frame as GStreamer lays it out, for
// sizes whose rows need no padding.
func i420Size(w, h int) (int, error) {
	if w <= 0 || h <= 0 || w%8 != 0 || h%2 != 0 {
		return 0, fmt.Errorf("size %dx%d: want a width that is a multiple of 8 and an even height (no row padding)", w, h)
	}
	return w*h + 2*(w/2)*(h/2), nil
}

// rawStats is rawdiff's outcome.
type rawStats struct {
	frames, identical int
	madMean, madMax   float64
	psnrMin           float64
	worst             int
	reason            string
}

// rawdiff compares two raw files of frames of frameSize bytes.
func rawdiff(a, b io.Reader, frameSize int, tol tolerance) (rawStats, error) {
	st := rawStats{psnrMin: math.Inf(1), worst: -1}
	fa, fb := make([]byte, frameSize), make([]byte, frameSize)
	for {
		na, ea := io.ReadFull(a, fa)
		nb, eb := io.ReadFull(b, fb)
		if na == 0 && nb == 0 && errors.Is(ea, io.EOF) && errors.Is(eb, io.EOF) {
			break
		}
		if na != frameSize || nb != frameSize {
			st.reason = fmt.Sprintf("frame %d: the files end differently (%d and %d bytes of a %d-byte frame)", st.frames, na, nb, frameSize)
			return st, nil
		}
		mad, mse, err := diff(picture{id: "a", rows: [][]byte{fa}}, picture{id: "b", rows: [][]byte{fb}})
		if err != nil {
			return st, err
		}
		if mse == 0 {
			st.identical++
		}
		st.madMean += mad
		if mad > st.madMax {
			st.madMax, st.worst = mad, st.frames
		}
		st.psnrMin = math.Min(st.psnrMin, psnr(mse))
		st.frames++
	}
	if st.frames == 0 {
		st.reason = "no frames"
		return st, nil
	}
	st.madMean /= float64(st.frames)
	switch {
	case st.madMax > tol.maxMAD:
		st.reason = fmt.Sprintf("frame %d differs by %.3f per byte (tolerance %.2f)", st.worst, st.madMax, tol.maxMAD)
	case st.psnrMin < tol.minPSNR:
		st.reason = fmt.Sprintf("a frame's PSNR is %.2f dB, under %.1f dB", st.psnrMin, tol.minPSNR)
	}
	return st, nil
}

func (s rawStats) line(tol tolerance) string {
	status := "pass"
	if s.reason != "" {
		status = "fail"
	}
	out := fmt.Sprintf("frames=%d identical=%d mad_mean=%.4f mad_max=%.4f psnr_min=%s max_mad=%g min_psnr=%g status=%s",
		s.frames, s.identical, s.madMean, s.madMax, fmtDB(s.psnrMin), tol.maxMAD, tol.minPSNR, status)
	if s.reason != "" {
		out += " reason=" + strconv.Quote(s.reason)
	}
	return out
}

func cmdRawdiff(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gpucheck rawdiff", flag.ContinueOnError)
	fs.SetOutput(stderr)
	size := fs.String("size", "", "frame size `WxH` (I420)")
	tol := tolerance{}
	fs.Float64Var(&tol.maxMAD, "max-mad", 0.25, "largest mean absolute difference per byte of a frame")
	fs.Float64Var(&tol.minPSNR, "min-psnr", 45, "smallest PSNR of a frame, dB")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ws, hs, _ := strings.Cut(*size, "x")
	w, errW := strconv.Atoi(ws)
	h, errH := strconv.Atoi(hs)
	if errW != nil || errH != nil || fs.NArg() != 2 {
		fmt.Fprintln(stderr, "usage: gpucheck rawdiff --size WxH [--max-mad F] [--min-psnr DB] A.i420 B.i420")
		return 2
	}
	frameSize, err := i420Size(w, h)
	if err != nil {
		fmt.Fprintf(stderr, "gpucheck rawdiff: %v\n", err)
		return 2
	}
	var files [2]*os.File
	for i, name := range fs.Args() {
		if files[i], err = os.Open(name); err != nil {
			fmt.Fprintf(stderr, "gpucheck rawdiff: %v\n", err)
			return 1
		}
		defer files[i].Close()
	}
	st, err := rawdiff(files[0], files[1], frameSize, tol)
	if err != nil {
		fmt.Fprintf(stderr, "gpucheck rawdiff: %s and %s: %v\n", fs.Arg(0), fs.Arg(1), err)
		return 1
	}
	fmt.Fprintln(stdout, st.line(tol))
	if st.reason != "" {
		return 1
	}
	return 0
}
