package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/frame"
	"gstcapture/internal/publish"
	"gstcapture/internal/testenv"
)

func TestFieldsMatchThePublisher(t *testing.T) {
	pairs := [][2]string{
		{FieldVersion, publish.FieldVersion}, {FieldFrameID, publish.FieldFrameID}, {FieldCameraID, publish.FieldCameraID},
		{FieldSeq, publish.FieldSeq}, {FieldTS, publish.FieldTS}, {FieldTSSource, publish.FieldTSSource},
		{FieldPTS, publish.FieldPTS}, {FieldWidth, publish.FieldWidth}, {FieldHeight, publish.FieldHeight},
		{FieldFormat, publish.FieldFormat}, {FieldStride, publish.FieldStride}, {FieldSizeBytes, publish.FieldSizeBytes},
		{FieldData, publish.FieldData}, {FieldTraceParent, publish.FieldTraceParent}, {FieldTraceState, publish.FieldTraceState},
		{FieldFlags, publish.FieldFlags}, {FieldOwner, publish.FieldOwner}, {FieldEpoch, publish.FieldEpoch},
		{FieldShmSegment, publish.FieldShmSegment}, {FieldShmSlot, publish.FieldShmSlot}, {FieldShmGen, publish.FieldShmGen},
	}
	for _, p := range pairs {
		assert.Equal(t, p[1], p[0])
	}
}

// entry is a frame as the publisher writes it: pixel (x, y) of plane i
// holds byte (x + 3y + 7i) % 251, padding 0xEE.
type entry struct {
	format        string
	w, h          int
	seq           uint64
	instance      string
	owner         string
	epoch         int64
	flags, tparen string
}

// testPlane is where a plane lies, by docs/redis-schema.md's table.
type testPlane struct{ Offset, Stride, Rows, RowBytes int }

type testLayout struct {
	Planes []testPlane
	Size   int
}

func (e entry) layout(t *testing.T) (testLayout, []byte) {
	r4 := func(n int) int { return (n + 3) &^ 3 }
	w, h := e.w, e.h
	cw, ch := (w+1)/2, (h+1)/2
	var ps []testPlane
	switch e.format {
	case "BGR", "RGB":
		ps = []testPlane{{0, r4(3 * w), h, 3 * w}}
	case "GRAY8":
		ps = []testPlane{{0, r4(w), h, w}}
	case "I420":
		s, cs := r4(w), r4(cw)
		ps = []testPlane{{0, s, h, w}, {s * h, cs, ch, cw}, {s*h + cs*ch, cs, ch, cw}}
	case "NV12":
		s := r4(w)
		ps = []testPlane{{0, s, h, w}, {s * h, s, ch, 2 * cw}}
	}
	last := ps[len(ps)-1]
	l := testLayout{Planes: ps, Size: last.Offset + last.Stride*last.Rows}
	// The publisher's own layout agrees (what size_bytes is checked against).
	f, err := frame.ParseFormat(e.format)
	require.NoError(t, err)
	stride, size, err := frame.Layout(f, w, h)
	require.NoError(t, err)
	require.Equal(t, [2]int{stride, size}, [2]int{ps[0].Stride, l.Size}, "%s %dx%d", e.format, w, h)
	data := bytes.Repeat([]byte{0xEE}, l.Size)
	for i, p := range ps {
		for y := range p.Rows {
			for x := range p.RowBytes {
				data[p.Offset+y*p.Stride+x] = byte((x + 3*y + 7*i) % 251)
			}
		}
	}
	return l, data
}

func (e entry) add(t *testing.T, c *redis.Client, stream string) string {
	l, data := e.layout(t)
	inst := e.instance
	if inst == "" {
		inst = "run1"
	}
	vals := []any{
		"v", "1", "frame_id", fmt.Sprintf("cam-1-%s-%d", inst, e.seq), "camera_id", "cam-1",
		"seq", e.seq, "ts", time.Now().UnixNano(), "ts_source", "rtcp", "pts", 40000000,
		"width", e.w, "height", e.h, "format", e.format, "stride", l.Planes[0].Stride, "size_bytes", l.Size, "data", data,
	}
	if e.tparen != "" {
		vals = append(vals, "traceparent", e.tparen, "tracestate", "a=b")
	}
	if e.flags != "" {
		vals = append(vals, "flags", e.flags)
	}
	if e.owner != "" {
		vals = append(vals, "owner", e.owner, "epoch", e.epoch)
	}
	id, err := c.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, Values: vals}).Result()
	require.NoError(t, err)
	return id
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestPlanesAreViewsWithStrides(t *testing.T) {
	rd := testenv.StartRedis(t)
	c := rd.Client(t)
	for _, e := range []entry{
		{format: "BGR", w: 33, h: 7}, {format: "RGB", w: 4, h: 2}, {format: "GRAY8", w: 641, h: 3},
		{format: "I420", w: 641, h: 361}, {format: "NV12", w: 35, h: 9},
	} {
		t.Run(fmt.Sprintf("%s %dx%d", e.format, e.w, e.h), func(t *testing.T) {
			stream := "frames:" + e.format
			e.seq = 1
			e.add(t, c, stream)
			r, err := NewReader(c, Options{Stream: stream})
			require.NoError(t, err)
			f, err := r.Next(ctxT(t))
			require.NoError(t, err)
			l, want := e.layout(t)
			assert.Equal(t, want, f.Data)
			ps, err := f.Planes()
			require.NoError(t, err)
			require.Len(t, ps, len(l.Planes))
			for i, p := range ps {
				lp := l.Planes[i]
				assert.Equal(t, lp.Stride, p.Stride, "plane %d stride", i)
				assert.Equal(t, lp.Rows, p.Rows, "plane %d rows", i)
				assert.Equal(t, lp.RowBytes, p.Width*p.BytesPerPixel, "plane %d row bytes", i)
				for y := range p.Rows {
					row := p.Row(y)
					require.Len(t, row, lp.RowBytes)
					for x, b := range row {
						require.Equal(t, byte((x+3*y+7*i)%251), b, "plane %d (%d, %d)", i, x, y)
					}
				}
				// A slice of Data, not a copy.
				assert.Same(t, &f.Data[lp.Offset], &p.Data[0], "plane %d shares the entry's bytes", i)
			}
		})
	}
}

func TestImage(t *testing.T) {
	rd := testenv.StartRedis(t)
	c := rd.Client(t)
	ctx := ctxT(t)
	read := func(e entry) *Frame {
		stream := "frames:img" + e.format
		e.seq = 1
		e.add(t, c, stream)
		r, err := NewReader(c, Options{Stream: stream})
		require.NoError(t, err)
		f, err := r.Next(ctx)
		require.NoError(t, err)
		return f
	}
	f := read(entry{format: "BGR", w: 5, h: 3})
	img, err := f.Image()
	require.NoError(t, err)
	assert.Equal(t, image.Rect(0, 0, 5, 3), img.Bounds())
	// Pixel (1, 2): row bytes 3, 4, 5 of row 2 hold 9, 10, 11, as B, G, R.
	assert.Equal(t, color.RGBA{R: 11, G: 10, B: 9, A: 255}, img.At(1, 2))
	g := read(entry{format: "GRAY8", w: 5, h: 3})
	gi, err := g.Image()
	require.NoError(t, err)
	assert.Equal(t, color.Gray{Y: 7}, gi.At(1, 2))
	y := read(entry{format: "I420", w: 6, h: 4})
	yi, err := y.Image()
	require.NoError(t, err)
	ycc := yi.(*image.YCbCr)
	assert.Equal(t, image.YCbCrSubsampleRatio420, ycc.SubsampleRatio)
	assert.Equal(t, byte(3+7), ycc.Cb[ycc.COffset(0, 2)], "U (0, 1)")
	n := read(entry{format: "NV12", w: 6, h: 4})
	_, err = n.Image()
	assert.ErrorContains(t, err, "use Planes")
}

// A JPEG entry decodes with image/jpeg; its bytes are there as they are.
func TestImageJPEG(t *testing.T) {
	rd := testenv.StartRedis(t)
	c := rd.Client(t)
	ctx := ctxT(t)
	src := image.NewRGBA(image.Rect(0, 0, 48, 32))
	for i := 0; i < len(src.Pix); i += 4 {
		copy(src.Pix[i:], []byte{255, 0, 0, 255}) // red
	}
	var b bytes.Buffer
	require.NoError(t, jpeg.Encode(&b, src, &jpeg.Options{Quality: 90}))
	read := func(stream string, w, h int, data []byte) *Frame {
		require.NoError(t, c.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{
			"v", "1", "frame_id", "cam-1-run1-1", "camera_id", "cam-1", "seq", 1, "ts", time.Now().UnixNano(), "ts_source", "arrival", "pts", 0,
			"width", w, "height", h, "format", "JPEG", "stride", 0, "size_bytes", len(data), "data", data,
		}}).Err())
		r, err := NewReader(c, Options{Stream: stream})
		require.NoError(t, err)
		f, err := r.Next(ctx)
		require.NoError(t, err)
		return f
	}
	f := read("frames:jpeg", 48, 32, b.Bytes())
	assert.Equal(t, [3]any{FormatJPEG, 0, b.Len()}, [3]any{f.Format, f.Stride, f.SizeBytes})
	raw, err := f.JPEG()
	require.NoError(t, err)
	assert.Equal(t, b.Bytes(), raw)
	img, err := f.Image()
	require.NoError(t, err)
	assert.Equal(t, image.Rect(0, 0, 48, 32), img.Bounds())
	r, g, bl, _ := img.At(20, 10).RGBA()
	assert.Greater(t, r>>8, uint32(230))
	assert.Less(t, g>>8, uint32(30))
	assert.Less(t, bl>>8, uint32(30))
	_, err = f.Planes()
	assert.ErrorContains(t, err, "a JPEG frame has no planes: use Image to decode it, or JPEG for its bytes")

	// The entry's size must be the JPEG's, and the bytes a JPEG.
	_, err = read("frames:jpeg-size", 64, 32, b.Bytes()).Image()
	assert.ErrorContains(t, err, "frames:jpeg-size entry")
	assert.ErrorContains(t, err, "the JPEG is 48x32")
	_, err = read("frames:jpeg-junk", 48, 32, []byte("not a picture")).Image()
	assert.ErrorContains(t, err, "decode:")
	bgr := read("frames:notjpeg", 1, 1, []byte{1, 2, 3, 0})
	bgr.Format, bgr.Stride = "BGR", 4
	_, err = bgr.JPEG()
	assert.ErrorContains(t, err, "format BGR, not JPEG")
}

func TestEntryErrors(t *testing.T) {
	_, err := Parse("frames:x", "1-1", map[string]any{"v": "2", "frame_id": "x"})
	require.ErrorIs(t, err, ErrVersion)
	assert.ErrorContains(t, err, `frames:x entry 1-1: unknown schema version "2"`)
	_, err = Parse("frames:x", "1-2", map[string]any{"frame_id": "x"})
	assert.ErrorIs(t, err, ErrVersion, "no version")
	good := map[string]any{"v": "1.1", "frame_id": "c-i-1", "camera_id": "c", "seq": "1", "ts": "5", "width": "2",
		"height": "2", "format": "GRAY8", "stride": "4", "size_bytes": "8", "data": "12345678"}
	f, err := Parse("s", "1-3", good)
	require.NoError(t, err, "a minor version is read")
	assert.Equal(t, "i", f.Instance)
	assert.Equal(t, int64(-1), f.Epoch)
	delete(good, "data")
	_, err = Parse("s", "1-4", good)
	assert.ErrorContains(t, err, `field "data" is missing`)
	good["data"], good["size_bytes"] = "1234", "4"
	f, err = Parse("s", "1-5", good)
	require.NoError(t, err)
	_, err = f.Planes()
	assert.ErrorContains(t, err, "the layout needs 8 bytes, the entry has 4")
	good["seq"] = "x"
	_, err = Parse("s", "1-6", good)
	assert.ErrorContains(t, err, `field "seq" is not a count`)
}

func TestGapsStaleEpochsAndFields(t *testing.T) {
	rd := testenv.StartRedis(t)
	c := rd.Client(t)
	const stream = "frames:cam-1"
	tp := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for _, e := range []entry{
		{seq: 1, owner: "r1", epoch: 1, flags: "black,frozen", tparen: tp},
		{seq: 2, owner: "r1", epoch: 1},
		{seq: 5, owner: "r1", epoch: 1},                   // 3 and 4 lost
		{seq: 1, instance: "run2", owner: "r2", epoch: 2}, // the new owner: its own seq
		{seq: 6, owner: "r1", epoch: 1},                   // the old owner, late: stale
		{seq: 2, instance: "run2", owner: "r2", epoch: 2},
	} {
		e.format, e.w, e.h = "GRAY8", 4, 2
		e.add(t, c, stream)
	}
	r, err := NewReader(c, Options{Stream: stream, Group: "g", Consumer: "w1", Start: "0"})
	require.NoError(t, err)
	ctx := ctxT(t)
	var got []string
	for range 5 {
		f, err := r.Next(ctx)
		require.NoError(t, err)
		got = append(got, fmt.Sprintf("%s/%d lost %d %s@%d", f.Instance, f.Seq, f.LostBefore, f.Owner, f.Epoch))
		if f.Seq == 1 && f.Instance == "run1" {
			assert.Equal(t, []string{"black", "frozen"}, f.Flags)
			assert.Equal(t, tp, f.TraceParent)
			assert.Equal(t, "a=b", f.TraceState)
			assert.Equal(t, "rtcp", f.TSSource)
			assert.Equal(t, int64(40000000), f.PTS)
			assert.WithinDuration(t, time.Now(), f.TS, 5*time.Second)
		}
		require.NoError(t, f.Ack())
	}
	assert.Equal(t, []string{"run1/1 lost 0 r1@1", "run1/2 lost 0 r1@1", "run1/5 lost 2 r1@1", "run2/1 lost 0 r2@2", "run2/2 lost 0 r2@2"}, got)
	assert.Equal(t, uint64(1), r.StaleDrops)
	p, err := c.XPending(ctx, stream, "g").Result()
	require.NoError(t, err)
	assert.Zero(t, p.Count, "acked, the stale entry too")
}

func TestGroupPendingAndClaim(t *testing.T) {
	rd := testenv.StartRedis(t)
	c := rd.Client(t)
	const stream = "frames:cam-1"
	ctx := ctxT(t)
	for i := range 4 {
		entry{format: "GRAY8", w: 4, h: 2, seq: uint64(i + 1)}.add(t, c, stream)
	}
	// w1 takes two and dies without acking.
	w1, err := NewReader(c, Options{Stream: stream, Group: "g", Consumer: "w1", Start: "0", ClaimIdle: -1})
	require.NoError(t, err)
	for range 2 {
		_, err := w1.Next(ctx)
		require.NoError(t, err)
	}
	// w1 restarted: its own pending entries come first, redelivered.
	w1b, err := NewReader(c, Options{Stream: stream, Group: "g", Consumer: "w1", ClaimIdle: -1})
	require.NoError(t, err)
	f, err := w1b.Next(ctx)
	require.NoError(t, err)
	assert.True(t, f.Redelivered)
	assert.Equal(t, uint64(1), f.Seq)
	require.NoError(t, f.Ack())
	// w1b dies with seq 2 still pending. w2 claims it once idle.
	time.Sleep(300 * time.Millisecond)
	w2, err := NewReader(c, Options{Stream: stream, Group: "g", Consumer: "w2", ClaimIdle: 200 * time.Millisecond})
	require.NoError(t, err)
	var seqs []string
	for range 3 {
		f, err := w2.Next(ctx)
		require.NoError(t, err)
		seqs = append(seqs, strconv.FormatUint(f.Seq, 10)+map[bool]string{true: "r", false: ""}[f.Redelivered])
		if f.Seq != 4 {
			require.NoError(t, f.Ack())
		}
	}
	assert.Equal(t, []string{"2r", "3", "4"}, seqs, "the dead consumer's entry, then new ones")
	// w2's own slow entry (4, not acked) is not claimed by w2 again.
	time.Sleep(300 * time.Millisecond)
	entry{format: "GRAY8", w: 4, h: 2, seq: 5}.add(t, c, stream)
	f, err = w2.Next(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(5), f.Seq)
	assert.False(t, f.Redelivered)
}

func TestLatestSkipsTheBacklog(t *testing.T) {
	rd := testenv.StartRedis(t)
	c := rd.Client(t)
	const stream = "frames:cam-1"
	for i := range 5 {
		entry{format: "GRAY8", w: 4, h: 2, seq: uint64(i + 1)}.add(t, c, stream)
	}
	r, err := NewReader(c, Options{Stream: stream, Block: 100 * time.Millisecond})
	require.NoError(t, err)
	ctx := ctxT(t)
	f, err := r.Next(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(5), f.Seq, "the newest, not the backlog")
	// Nothing new: Next waits, then returns the next entry, never 5 again.
	go func() {
		time.Sleep(300 * time.Millisecond)
		entry{format: "GRAY8", w: 4, h: 2, seq: 6}.add(t, c, stream)
	}()
	f, err = r.Next(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(6), f.Seq)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = r.Next(short)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "no new entry: no frame")
}

func TestReconnects(t *testing.T) {
	rd := testenv.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: rd.Addr, MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { c.Close() })
	const stream = "frames:cam-1"
	r, err := NewReader(c, Options{Stream: stream, Group: "g", Consumer: "w1", Block: 100 * time.Millisecond, Retry: 200 * time.Millisecond})
	require.NoError(t, err)
	ctx := ctxT(t)
	entry{format: "GRAY8", w: 4, h: 2, seq: 1}.add(t, rd.Client(t), stream)
	// The group starts at "$": the entry above came before it.
	type res struct {
		f   *Frame
		err error
	}
	done := make(chan res, 1)
	go func() {
		f, err := r.Next(ctx)
		done <- res{f, err}
	}()
	time.Sleep(200 * time.Millisecond)
	rd.Restart(t) // empty: no stream, no group
	time.Sleep(500 * time.Millisecond)
	entry{format: "GRAY8", w: 4, h: 2, seq: 9}.add(t, rd.Client(t), stream)
	var got res
	select {
	case got = <-done:
	case <-time.After(8 * time.Second):
		t.Fatal("Next did not come back after Redis restarted")
	}
	if got.f == nil {
		// The group was made again at "$" after the entry: the next one.
		go func() {
			time.Sleep(200 * time.Millisecond)
			entry{format: "GRAY8", w: 4, h: 2, seq: 10}.add(t, rd.Client(t), stream)
		}()
		got.f, got.err = r.Next(ctx)
	}
	require.NoError(t, got.err)
	assert.Contains(t, []uint64{9, 10}, got.f.Seq)
	assert.False(t, errors.Is(got.err, context.Canceled))
}
