package validate

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/frame"
	"gstcapture/internal/stats"
)

type pixFunc func(x, y int) (r, g, b uint8)

// build returns a synthetic frame of format fm. stride 0 means the default;
// a larger stride pads each row of the first plane with 0xEE so a reader
// that ignores the stride sees bright garbage. YUV formats get the BT.601
// luma of pix and neutral chroma.
func build(tb testing.TB, fm frame.Format, w, h, stride int, pix pixFunc) *frame.Frame {
	tb.Helper()
	defStride, size, err := frame.Layout(fm, w, h)
	require.NoError(tb, err)
	stride = max(stride, defStride)
	rows := h
	if fm == frame.NV12 {
		rows += (h + 1) / 2
	}
	data := make([]byte, size+(stride-defStride)*rows)
	for i := range data {
		data[i] = 0xEE
	}
	for y := range h {
		row := data[y*stride:]
		for x := range w {
			r, g, b := pix(x, y)
			switch fm {
			case frame.BGR:
				row[3*x], row[3*x+1], row[3*x+2] = b, g, r
			case frame.RGB:
				row[3*x], row[3*x+1], row[3*x+2] = r, g, b
			default:
				row[x] = uint8((77*int(r) + 150*int(g) + 29*int(b) + 128) >> 8)
			}
		}
	}
	if fm == frame.I420 || fm == frame.NV12 {
		for i := stride * h; i < len(data); i++ {
			data[i] = 128
		}
	}
	return &frame.Frame{Format: fm, Width: w, Height: h, Stride: stride, Data: data}
}

// clone copies the fields Check reads (a Frame holds an atomic, so no struct copy).
func clone(f *frame.Frame) *frame.Frame {
	return &frame.Frame{Format: f.Format, Width: f.Width, Height: f.Height, Stride: f.Stride, Data: f.Data, Corrupt: f.Corrupt}
}

func grey(v uint8) pixFunc {
	return func(int, int) (uint8, uint8, uint8) { return v, v, v }
}

// noisy returns grey pixels uniformly distributed in [lo, hi], seeded.
func noisy(lo, hi int, seed uint64) pixFunc {
	rng := rand.New(rand.NewPCG(seed, 1))
	return func(int, int) (uint8, uint8, uint8) {
		v := uint8(lo + rng.IntN(hi-lo+1))
		return v, v, v
	}
}

// lamp is a night scene: a dark noisy background and one small bright blob.
func lamp(w, h int) pixFunc {
	bg := noisy(0, 8, 7)
	return func(x, y int) (uint8, uint8, uint8) {
		if x > w/2 && x < w/2+w/6 && y > h/4 && y < h/4+h/6 {
			return 250, 250, 230
		}
		return bg(x, y)
	}
}

func gradient(w, h int) pixFunc {
	return func(x, y int) (uint8, uint8, uint8) {
		v := uint8((x*255/w + y*255/h) / 2)
		return v, v, v
	}
}

func solid(r, g, b uint8) pixFunc {
	return func(int, int) (uint8, uint8, uint8) { return r, g, b }
}

var allFormats = []frame.Format{frame.BGR, frame.RGB, frame.GRAY8, frame.I420, frame.NV12}

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func TestContentRules(t *testing.T) {
	const w, h = 321, 181 // odd, so strides are padded and the grid is uneven
	cases := []struct {
		name    string
		pix     pixFunc
		formats []frame.Format // nil: all
		want    Result         // Mean/Stddev not compared
	}{
		{name: "black", pix: grey(0), want: Result{Failed: true, Reason: stats.DropBlack, Drop: true}},
		{name: "limited-range black", pix: grey(16), want: Result{Failed: true, Reason: stats.DropBlack, Drop: true}},
		{name: "black with sensor noise", pix: noisy(4, 18, 1), want: Result{Failed: true, Reason: stats.DropBlack, Drop: true}},
		{name: "dark textured scene", pix: noisy(0, 28, 2)},
		{name: "night scene with lamp", pix: lamp(w, h)},
		{name: "grey", pix: grey(128), want: Result{Failed: true, Reason: stats.DropUniform, Drop: true}},
		{name: "grey with dither", pix: noisy(127, 129, 3), want: Result{Failed: true, Reason: stats.DropUniform, Drop: true}},
		{name: "white", pix: grey(255), want: Result{Failed: true, Reason: stats.DropUniform, Drop: true}},
		// All-zero YUV decodes to this green; its luma is flat.
		{name: "decoder green", pix: solid(0, 135, 0), formats: []frame.Format{frame.BGR, frame.RGB},
			want: Result{Failed: true, Reason: stats.DropUniform, Drop: true}},
		{name: "noise", pix: noisy(0, 255, 4)},
		{name: "gradient", pix: gradient(w, h)},
	}
	for _, c := range cases {
		formats := c.formats
		if formats == nil {
			formats = allFormats
		}
		for _, fm := range formats {
			t.Run(c.name+"/"+string(fm), func(t *testing.T) {
				f := build(t, fm, w, h, 0, c.pix)
				got := New(DefaultRules()).Check(f, t0)
				got.Mean, got.Stddev = 0, 0
				assert.Equal(t, c.want, got)
			})
		}
	}
}

func TestBlackSpreadBound(t *testing.T) {
	v := New(DefaultRules())
	// Mean 8, two-level pattern: the stddev is exactly the half-distance.
	step := func(lo, hi uint8) pixFunc {
		return func(x, _ int) (uint8, uint8, uint8) {
			if x%2 == 0 {
				return lo, lo, lo
			}
			return hi, hi, hi
		}
	}
	// 100x100 is sampled at pitch 1, so the column pattern is not aliased.
	res := v.Check(build(t, frame.GRAY8, 100, 100, 0, step(3, 13)), t0)
	assert.InDelta(t, 5, res.Stddev, 0.1)
	assert.Equal(t, stats.DropBlack, res.Reason)
	res = v.Check(build(t, frame.GRAY8, 100, 100, 0, step(0, 16)), t0)
	assert.InDelta(t, 8, res.Stddev, 0.1)
	assert.False(t, res.Failed, "dark pattern with stddev 8 > %v is not black", BlackMaxStddev)
}

func TestLumaChannelOrder(t *testing.T) {
	red := []byte{0, 0, 255} // B, G, R when read as BGR
	data := make([]byte, 0, 4*4*3)
	for range 16 {
		data = append(data, red...)
	}
	rules := DefaultRules()
	rules.Black.MaxLuma = 50
	bgr := &frame.Frame{Format: frame.BGR, Width: 4, Height: 4, Data: data}
	rgb := &frame.Frame{Format: frame.RGB, Width: 4, Height: 4, Data: data}

	res := New(rules).Check(bgr, t0)
	assert.InDelta(t, 77, res.Mean, 0.5, "BGR bytes 0,0,255 are red")
	assert.Equal(t, stats.DropUniform, res.Reason)

	res = New(rules).Check(rgb, t0)
	assert.InDelta(t, 29, res.Mean, 0.5, "RGB bytes 0,0,255 are blue")
	assert.Equal(t, stats.DropBlack, res.Reason)

	// Pure channels land on the BT.601 weights.
	for _, c := range []struct {
		r, g, b uint8
		luma    float64
	}{{255, 0, 0, 77}, {0, 255, 0, 149}, {0, 0, 255, 29}, {255, 255, 255, 255}} {
		for _, fm := range []frame.Format{frame.BGR, frame.RGB} {
			res := New(DefaultRules()).Check(build(t, fm, 8, 8, 0, solid(c.r, c.g, c.b)), t0)
			assert.InDelta(t, c.luma, res.Mean, 0.5, "%s %d,%d,%d", fm, c.r, c.g, c.b)
		}
	}
}

func TestStrideIsHonoured(t *testing.T) {
	for _, fm := range allFormats {
		t.Run(string(fm), func(t *testing.T) {
			defStride, _, err := frame.Layout(fm, 64, 48)
			require.NoError(t, err)
			// Black picture in rows padded with 0xEE: reading with the
			// default stride would hit the padding and not see black.
			f := build(t, fm, 64, 48, defStride+40, grey(0))
			res := New(DefaultRules()).Check(f, t0)
			assert.Equal(t, Result{Failed: true, Reason: stats.DropBlack, Drop: true}, res)
		})
	}
}

func TestSize(t *testing.T) {
	for _, fm := range allFormats {
		t.Run(string(fm), func(t *testing.T) {
			v := New(DefaultRules())
			sizeFail := Result{Failed: true, Reason: stats.DropSize, Drop: true}

			f := build(t, fm, 33, 17, 0, noisy(0, 255, 5))
			assert.False(t, v.Check(f, t0).Failed)

			short := clone(f)
			short.Data = f.Data[:len(f.Data)-1]
			assert.Equal(t, sizeFail, v.Check(short, t0))

			// A stride larger than the default raises the size needed.
			wide := clone(f)
			wide.Stride = f.Stride + 8
			assert.Equal(t, sizeFail, v.Check(wide, t0))

			// A stride smaller than the default is ignored.
			narrow := clone(f)
			narrow.Stride = 1
			assert.False(t, v.Check(narrow, t0).Failed)

			for _, dims := range [][2]int{{0, 17}, {33, 0}, {-1, 17}, {1 << 20, 17}} {
				bad := clone(f)
				bad.Width, bad.Height = dims[0], dims[1]
				assert.Equal(t, sizeFail, v.Check(bad, t0), "%dx%d", dims[0], dims[1])
			}
			huge := clone(f)
			huge.Stride = 1 << 40
			assert.Equal(t, sizeFail, v.Check(huge, t0))
		})
	}
	f := build(t, frame.BGR, 8, 8, 0, grey(100))
	f.Format = "YUY2"
	assert.Equal(t, stats.DropSize, New(DefaultRules()).Check(f, t0).Reason)
	f.Format = ""
	assert.Equal(t, stats.DropSize, New(DefaultRules()).Check(f, t0).Reason)
}

func TestNV12StrideCoversChroma(t *testing.T) {
	// NV12's chroma plane shares the padded stride, so a buffer padded only
	// in the Y plane is short.
	f := build(t, frame.NV12, 64, 48, 128, noisy(0, 255, 6))
	assert.False(t, New(DefaultRules()).Check(f, t0).Failed)
	f.Data = f.Data[:128*48+64*24]
	assert.Equal(t, stats.DropSize, New(DefaultRules()).Check(f, t0).Reason)
}

func TestCorrupt(t *testing.T) {
	v := New(DefaultRules())
	f := build(t, frame.BGR, 16, 16, 0, noisy(0, 255, 7))
	f.Corrupt = true
	assert.Equal(t, Result{Failed: true, Reason: stats.DropCorrupt, Drop: true}, v.Check(f, t0))
	// Corrupt is checked before anything touches the pixels.
	assert.Equal(t, stats.DropCorrupt, v.Check(&frame.Frame{Corrupt: true}, t0).Reason)
}

func TestActionPass(t *testing.T) {
	rules := Rules{Frozen: FrozenRule{After: time.Second}} // every action Pass
	rules.Black.MaxLuma = 16
	rules.Uniform.MaxStddev = 2
	cases := []struct {
		name   string
		f      *frame.Frame
		reason stats.DropReason
	}{
		{"corrupt", &frame.Frame{Corrupt: true}, stats.DropCorrupt},
		{"size", &frame.Frame{Format: frame.BGR, Width: 4, Height: 4}, stats.DropSize},
		{"black", build(t, frame.BGR, 16, 16, 0, grey(0)), stats.DropBlack},
		{"uniform", build(t, frame.BGR, 16, 16, 0, grey(90)), stats.DropUniform},
	}
	for _, c := range cases {
		res := New(rules).Check(c.f, t0)
		assert.True(t, res.Failed, c.name)
		assert.False(t, res.Drop, c.name)
		assert.Equal(t, c.reason, res.Reason, c.name)
		assert.True(t, res.Flagged.Has(c.reason), "%s: flagged, not dropped", c.name)
	}
	v := New(rules)
	f := build(t, frame.BGR, 16, 16, 0, noisy(0, 255, 8))
	v.Check(f, t0)
	res := v.Check(f, t0.Add(time.Second))
	assert.Equal(t, Result{Failed: true, Reason: stats.DropFrozen, Flagged: stats.ReasonSet(0).Add(stats.DropFrozen)},
		Result{Failed: res.Failed, Reason: res.Reason, Drop: res.Drop, Flagged: res.Flagged})
	assert.Equal(t, "frozen", res.Flagged.String())

	// A frame no rule fails is not flagged.
	assert.Equal(t, Result{}, clean(New(rules).Check(build(t, frame.BGR, 16, 16, 0, noisy(0, 255, 9)), t0)))
}

func clean(res Result) Result {
	res.Mean, res.Stddev = 0, 0
	return res
}

// A pass rule flags the frame and the checks go on: later rules can flag
// it too, and a later drop rule still drops it.
func TestPassFlagsAndGoesOn(t *testing.T) {
	set := func(rs ...stats.DropReason) (s stats.ReasonSet) {
		for _, r := range rs {
			s = s.Add(r)
		}
		return s
	}
	black := func() *frame.Frame {
		f := build(t, frame.GRAY8, 16, 16, 0, grey(0))
		f.Corrupt = true
		return f
	}
	cases := []struct {
		name    string
		rules   func(*Rules)
		f       *frame.Frame
		want    Result
		flagged string
	}{
		{"corrupt pass, black drop", func(r *Rules) { r.Corrupt.Action = Pass }, black(),
			Result{Failed: true, Reason: stats.DropBlack, Drop: true, Flagged: set(stats.DropCorrupt)}, "corrupt"},
		{"corrupt and black pass", func(r *Rules) { r.Corrupt.Action, r.Black.Action = Pass, Pass }, black(),
			Result{Failed: true, Reason: stats.DropCorrupt, Flagged: set(stats.DropCorrupt, stats.DropBlack)}, "black,corrupt"},
		{"corrupt and size pass", func(r *Rules) { r.Corrupt.Action, r.Size.Action = Pass, Pass }, &frame.Frame{Corrupt: true},
			Result{Failed: true, Reason: stats.DropCorrupt, Flagged: set(stats.DropCorrupt, stats.DropSize)}, "size,corrupt"},
		{"corrupt drop ends the check", func(r *Rules) { r.Black.Action = Pass }, black(),
			Result{Failed: true, Reason: stats.DropCorrupt, Drop: true}, ""},
		// One content verdict: a black picture is uniform too, not both.
		{"black and uniform pass", func(r *Rules) { r.Corrupt.Action, r.Black.Action, r.Uniform.Action = Off, Pass, Pass }, black(),
			Result{Failed: true, Reason: stats.DropBlack, Flagged: set(stats.DropBlack)}, "black"},
		{"off is not flagged", func(r *Rules) { r.Corrupt.Action, r.Black.Action, r.Uniform.Action = Off, Off, Off }, black(),
			Result{}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := DefaultRules()
			c.rules(&r)
			res := clean(New(r).Check(c.f, t0))
			assert.Equal(t, c.want, res)
			if !res.Drop {
				assert.Equal(t, c.flagged, res.Flagged.String())
			}
		})
	}
}

func TestFrozen(t *testing.T) {
	for _, fm := range allFormats {
		t.Run(string(fm), func(t *testing.T) {
			v := New(DefaultRules()) // After 10s
			a := build(t, fm, 160, 90, 0, noisy(0, 255, 9))
			b := build(t, fm, 160, 90, 0, noisy(0, 255, 10))
			frozen := Result{Failed: true, Reason: stats.DropFrozen, Drop: true}
			check := func(f *frame.Frame, at time.Duration) Result {
				res := v.Check(f, t0.Add(at))
				res.Mean, res.Stddev = 0, 0
				return res
			}

			for at := time.Duration(0); at < 10*time.Second; at += time.Second {
				assert.False(t, check(a, at).Failed, "at %s", at)
			}
			assert.Equal(t, frozen, check(a, 10*time.Second))
			assert.Equal(t, frozen, check(a, 30*time.Second), "stays frozen")

			// New content resets the clock.
			assert.False(t, check(b, 31*time.Second).Failed)
			assert.False(t, check(b, 40*time.Second).Failed)
			assert.Equal(t, frozen, check(b, 41*time.Second))

			// A single changed pixel on the grid is a change.
			c := build(t, fm, 160, 90, 0, noisy(0, 255, 10))
			flip(c)
			assert.False(t, check(c, 42*time.Second).Failed)
		})
	}
}

// flip changes the luma of the frame's first grid sample.
func flip(f *frame.Frame) {
	g, _ := newGrid(f)
	i := g.y0*g.stride + g.x0
	if g.packed {
		i = g.y0*g.stride + 3*g.x0 + 1 // green dominates luma
	}
	f.Data[i] ^= 0x80
}

func TestFrozenDisabled(t *testing.T) {
	rules := DefaultRules()
	rules.Frozen.After = 0
	v := New(rules)
	f := build(t, frame.GRAY8, 64, 48, 0, noisy(0, 255, 11))
	for at := range 100 {
		assert.False(t, v.Check(f, t0.Add(time.Duration(at)*time.Hour)).Failed)
	}
}

func TestUniformAndBlackTakePrecedenceOverFrozen(t *testing.T) {
	v := New(DefaultRules())
	black := build(t, frame.BGR, 64, 48, 0, grey(0))
	greyF := build(t, frame.BGR, 64, 48, 0, grey(128))
	for at := range 30 {
		assert.Equal(t, stats.DropBlack, v.Check(black, t0.Add(time.Duration(at)*time.Second)).Reason)
	}
	for at := 30; at < 60; at++ {
		assert.Equal(t, stats.DropUniform, v.Check(greyF, t0.Add(time.Duration(at)*time.Second)).Reason)
	}
}

func TestContentReturningAfterBlackIsNotFrozen(t *testing.T) {
	v := New(DefaultRules())
	scene := build(t, frame.I420, 64, 48, 0, noisy(0, 255, 12))
	black := build(t, frame.I420, 64, 48, 0, grey(0))
	assert.False(t, v.Check(scene, t0).Failed)
	for at := 1; at <= 15; at++ {
		assert.Equal(t, stats.DropBlack, v.Check(black, t0.Add(time.Duration(at)*time.Second)).Reason)
	}
	assert.False(t, v.Check(scene, t0.Add(16*time.Second)).Failed)
}

func TestGrid(t *testing.T) {
	cases := []struct {
		w, h, step, samples int
	}{
		{1280, 720, 8, 160 * 90},
		{1920, 1080, 12, 160 * 90},
		{3840, 2160, 23, 167 * 94},
		{640, 480, 5, 128 * 96},
		{100, 100, 1, 100 * 100},
		{1, 1, 1, 1},
		{1, 60000, 2, 30000},
	}
	for _, c := range cases {
		f := &frame.Frame{Format: frame.GRAY8, Width: c.w, Height: c.h}
		_, size, err := frame.Layout(f.Format, c.w, c.h)
		require.NoError(t, err)
		f.Data = make([]byte, size)
		g, ok := newGrid(f)
		require.True(t, ok)
		assert.Equal(t, c.step, g.step, "%dx%d", c.w, c.h)
		assert.Equal(t, c.samples, g.nx*g.ny, "%dx%d", c.w, c.h)
		// Centred, inside the picture.
		assert.Less(t, g.x0+(g.nx-1)*g.step, c.w)
		assert.Less(t, g.y0+(g.ny-1)*g.step, c.h)
		assert.InDelta(t, g.x0, c.w-1-(g.x0+(g.nx-1)*g.step), 1)
	}
}

func TestParseAction(t *testing.T) {
	for s, want := range map[string]Action{"drop": Drop, "pass": Pass, "DROP": Drop, " Pass ": Pass} {
		got, err := ParseAction(s)
		require.NoError(t, err, s)
		assert.Equal(t, want, got, s)
	}
	_, err := ParseAction("ignore")
	assert.ErrorContains(t, err, `"ignore"`)

	var a Action
	require.NoError(t, a.UnmarshalText([]byte("drop")))
	assert.Equal(t, Drop, a)
	b, err := Pass.MarshalText()
	require.NoError(t, err)
	assert.Equal(t, "pass", string(b))
	_, err = Action(7).MarshalText()
	assert.Error(t, err)
}

func TestRulesValidate(t *testing.T) {
	assert.NoError(t, DefaultRules().Validate())
	bad := DefaultRules()
	bad.Black.MaxLuma = 300
	bad.Uniform.MaxStddev = -1
	bad.Frozen.After = -time.Second
	bad.Size.Action = 5
	err := bad.Validate()
	require.Error(t, err)
	for _, s := range []string{"black.max_luma", "uniform.max_stddev", "frozen.after", "size.action"} {
		assert.ErrorContains(t, err, s)
	}
}

func TestCheckZeroAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation allocates")
	}
	v := New(DefaultRules())
	for _, fm := range allFormats {
		f := build(t, fm, 1280, 720, 0, noisy(0, 255, 13))
		now := t0
		allocs := testing.AllocsPerRun(20, func() {
			now = now.Add(time.Second)
			v.Check(f, now)
		})
		assert.Zero(t, allocs, fm)
	}
}

func TestActionOffSkipsRule(t *testing.T) {
	r := DefaultRules()
	r.Black.Action = Off
	r.Uniform.Action = Off
	r.Corrupt.Action = Off
	v := New(r)
	f := &frame.Frame{Format: frame.GRAY8, Width: 64, Height: 64, Stride: 64, Data: make([]byte, 64*64)}
	res := v.Check(f, time.Unix(0, 0))
	assert.False(t, res.Failed, "black and uniform are off")
	f.Corrupt = true
	assert.False(t, v.Check(f, time.Unix(0, 0)).Failed, "corrupt is off")
	a, err := ParseAction("off")
	require.NoError(t, err)
	assert.Equal(t, Off, a)
	assert.Equal(t, "off", a.String())
}
