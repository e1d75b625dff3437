package publish

import (
	"encoding"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/frame"
	"gstcapture/internal/testenv"
)

func TestStreamKeyAndFrameID(t *testing.T) {
	assert.Equal(t, "frames:cam-1", StreamKey(DefaultStream, "cam-1"))
	assert.Equal(t, "site:a:cam-1:raw", StreamKey("site:a:{camera_id}:raw", "cam-1"))
	assert.Equal(t, "cam-1-abc.01-42", FrameID("cam-1", "abc.01", 42))
}

func TestNewInstanceID(t *testing.T) {
	a, b := NewInstanceID(), NewInstanceID()
	assert.NotEqual(t, a, b)
	assert.NotContains(t, a, "-", "frame ids are split from the right on '-'")
	assert.Regexp(t, `^[0-9a-z]+\.[0-9a-f]{8}$`, a)
}

// render turns Append's output into strings the way go-redis would write it.
func render(t *testing.T, args []any) []string {
	out := make([]string, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case string:
			out[i] = v
		case *string:
			out[i] = *v
		case int64:
			out[i] = itoa(v)
		case *int64:
			out[i] = itoa(*v)
		case *int:
			out[i] = itoa(int64(*v))
		case *uint64:
			out[i] = itoa(int64(*v))
		case encoding.BinaryMarshaler:
			b, err := v.MarshalBinary()
			require.NoError(t, err)
			out[i] = string(b)
		default:
			t.Fatalf("arg %d: go-redis cannot write %T", i, a)
		}
	}
	return out
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

func TestEncoderAppend(t *testing.T) {
	fs := newFrames(t)
	f := fs.New("cam-1", 4, 2, frame.GRAY8)
	f.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	g := fs.New("cam-1", 4, 2, frame.GRAY8)
	g.PTS = -1

	e := NewEncoder("frames:cam-1", "cam-1", "inst", 1000)
	args := e.Append(nil, f)
	split := len(args)
	args = e.Append(args, g)

	got := render(t, args[:split])
	want := []string{"xadd", "frames:cam-1", "maxlen", "~", "1000", "*",
		"v", "1",
		"frame_id", "cam-1-inst-1",
		"camera_id", "cam-1",
		"seq", "1",
		"ts", itoa(f.CaptureTime.UnixNano()),
		"ts_source", "rtcp",
		"pts", "40000000",
		"width", "4",
		"height", "2",
		"format", "GRAY8",
		"stride", "4",
		"size_bytes", "8",
		"data", string(f.Data),
		"traceparent", f.TraceParent,
	}
	assert.Equal(t, want, got)

	got = render(t, args[split:])
	assert.Equal(t, "cam-1-inst-2", got[9])
	assert.Equal(t, "-1", got[19], "unknown pts")
	assert.NotContains(t, got, "traceparent")
	assert.NotContains(t, got, "tracestate")

	// Without trimming there is no MAXLEN clause.
	e = NewEncoder("frames:cam-1", "cam-1", "inst", 0)
	got = render(t, e.Append(nil, f))
	assert.Equal(t, []string{"xadd", "frames:cam-1", "*", "v", "1"}, got[:5])
}

// flags is the last field, present only on a frame a pass rule flagged.
func TestEncoderFlagsField(t *testing.T) {
	fs := newFrames(t)
	f := fs.New("cam-1", 4, 2, frame.GRAY8)
	f.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	f.TraceState = "vendor=x"
	f.Flags = "black,frozen"
	plain := fs.New("cam-1", 4, 2, frame.GRAY8)

	e := NewEncoder("frames:cam-1", "cam-1", "inst", 1000)
	args := e.Append(nil, f)
	assert.LessOrEqual(t, len(args), ArgsPerEntry)
	got := render(t, args)
	assert.Equal(t, []string{"traceparent", f.TraceParent, "tracestate", "vendor=x", "flags", "black,frozen"}, got[len(got)-6:],
		"optional fields come after every v1 field, flags last")
	e.Reset()

	got = render(t, e.Append(nil, plain))
	assert.NotContains(t, got, FieldFlags, "an unflagged frame has no flags field")
	assert.Equal(t, FieldData, got[len(got)-2])
}

// A flagged frame's entry reads back from a real Redis with flags last.
func TestFlagsFieldInRedis(t *testing.T) {
	rs := testenv.StartRedis(t)
	c := rs.Client(t)
	fs := newFrames(t)
	flagged := fs.New("cam-1", 4, 2, frame.GRAY8)
	flagged.Flags = "black"
	plain := fs.New("cam-1", 4, 2, frame.GRAY8)

	e := NewEncoder("frames:cam-1", "cam-1", "inst", 0)
	for _, f := range []*frame.Frame{flagged, plain} {
		require.NoError(t, c.Do(ctxTimeout(t, 5*time.Second), e.Append(nil, f)...).Err())
		e.Reset()
	}
	entries := xrange(t, c, "frames:cam-1")
	require.Len(t, entries, 2)
	assert.Equal(t, []string{"size_bytes", "8", "data", string(flagged.Data), "flags", "black"}, entries[0][len(entries[0])-6:])
	assert.NotContains(t, entries[1], "flags")
}

func TestEncoderZeroAllocs(t *testing.T) {
	fs := newFrames(t)
	batch := make([]*frame.Frame, 16)
	for i := range batch {
		batch[i] = fs.New("cam-1", 64, 48, frame.BGR)
		batch[i].TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
		if i%2 == 0 {
			batch[i].Flags = "black"
		}
	}
	e := NewEncoder("frames:cam-1", "cam-1", NewInstanceID(), 1000)
	args := make([]any, 0, len(batch)*ArgsPerEntry)
	fill := func() {
		args = args[:0]
		for _, f := range batch {
			args = e.Append(args, f)
		}
		e.Reset()
	}
	fill() // grow the slots once
	assert.Zero(t, testing.AllocsPerRun(100, fill))
}

func BenchmarkAppendEntry(b *testing.B) {
	fs := newFrames(b)
	f := fs.New("cam-1", 1920, 1080, frame.BGR)
	f.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	e := NewEncoder("frames:cam-1", "cam-1", NewInstanceID(), 1000)
	args := make([]any, 0, ArgsPerEntry)
	b.ReportAllocs()
	for b.Loop() {
		args = e.Append(args[:0], f)
		e.Reset()
	}
}

// Big frames travel in fewer per round trip, so one round trip stays well
// under the timeout; small ones use the whole configured batch.
func TestFitBatchBoundsBytesPerRoundTrip(t *testing.T) {
	w := &worker{p: &Publisher{opts: Options{Batch: 16}}}
	for _, c := range []struct{ size, want int }{
		{1920 * 1080 * 3, 2}, {1280 * 720 * 3, 6}, {640 * 360 * 3, 16}, {maxBatchBytes * 2, 1}, {0, 16},
	} {
		w.fitBatch(&frame.Frame{Data: make([]byte, c.size)})
		assert.Equal(t, c.want, w.limit, "frame of %d bytes", c.size)
	}
}
