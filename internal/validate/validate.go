package validate

import (
	"hash/maphash"
	"math"
	"math/bits"
	"time"

	"gstcapture/internal/frame"
	"gstcapture/internal/stats"
)

// Result is the outcome of one Check.
type Result struct {
	// Failed says a rule triggered; Reason names it and is meaningful only
	// when Failed is set: the rule that dropped the frame, else the first
	// that flagged it.
	Failed bool
	Reason stats.DropReason
	// Drop says a triggered rule's action is Drop: the frame goes no further.
	Drop bool
	// Flagged holds the rules that triggered with action Pass: the frame is
	// kept and marked with them.
	Flagged stats.ReasonSet
	// Mean and Stddev are the luma statistics of the sample grid, for log
	// lines; zero when the pixels were not read (corrupt or size failure).
	Mean, Stddev float64
}

// Validator checks one camera's frames. It keeps the frozen-picture state,
// so use one per camera; it is not safe for concurrent use (the camera's
// appsink Sink goroutine calls it).
type Validator struct {
	rules Rules
	seed  maphash.Seed // for JPEG frames' bytes

	seen  bool
	hash  uint64    // hash of the last sampled picture
	since time.Time // when that picture first appeared
}

// New returns a Validator applying r. Check the rules with Rules.Validate
// first; New does not.
func New(r Rules) *Validator { return &Validator{rules: r, seed: maphash.MakeSeed()} }

// Check applies the rules in order corrupt, size, black, uniform, frozen.
// The first rule that triggers with action Drop ends the check; one with
// action Pass flags the frame and the checks go on, so a pass rule never
// switches off a later drop rule. Of black, uniform and frozen only the
// first that triggers counts (a black picture is also uniform and, when it
// lasts, frozen). now is the frame's arrival time; the frozen rule measures
// how long the picture has been unchanged against it. Check never
// allocates.
//
// A JPEG frame's pixels are compressed, so black and uniform, which read
// them, do not run; size checks that Data is one whole JPEG of the frame's
// size (checkJPEG), and frozen that its bytes changed: the encoders are
// deterministic, so an unchanged picture gives the same bytes.
func (v *Validator) Check(f *frame.Frame, now time.Time) Result {
	var res Result
	if f.Corrupt && v.rules.Corrupt.Action != Off {
		if res.fail(stats.DropCorrupt, v.rules.Corrupt.Action) {
			return res
		}
	}
	if f.Format == frame.JPEG {
		if !wholeJPEG(f) {
			if v.rules.Size.Action != Off {
				res.fail(stats.DropSize, v.rules.Size.Action)
			}
			return res
		}
		unchanged := v.unchangedFor(maphash.Bytes(v.seed, f.Data), now)
		if v.rules.Frozen.Action != Off && v.rules.Frozen.After > 0 && unchanged >= v.rules.Frozen.After {
			res.fail(stats.DropFrozen, v.rules.Frozen.Action)
		}
		return res
	}
	g, ok := newGrid(f)
	if !ok {
		if v.rules.Size.Action != Off {
			res.fail(stats.DropSize, v.rules.Size.Action)
		}
		return res // the pixels cannot be sampled safely; nothing else to check
	}
	s := g.sample(f.Data)
	res.Mean, res.Stddev = s.mean, s.stddev

	// Track every readable picture, even one that fails below, so content
	// that returns after a black spell is not mistaken for frozen.
	unchanged := v.unchangedFor(s.hash, now)

	switch {
	case v.rules.Black.Action != Off && s.mean <= float64(v.rules.Black.MaxLuma) && s.stddev <= BlackMaxStddev:
		res.fail(stats.DropBlack, v.rules.Black.Action)
	case v.rules.Uniform.Action != Off && s.stddev <= v.rules.Uniform.MaxStddev:
		res.fail(stats.DropUniform, v.rules.Uniform.Action)
	case v.rules.Frozen.Action != Off && v.rules.Frozen.After > 0 && unchanged >= v.rules.Frozen.After:
		res.fail(stats.DropFrozen, v.rules.Frozen.Action)
	}
	return res
}

// fail records that rule reason triggered with action a and reports
// whether the frame is dropped.
func (res *Result) fail(reason stats.DropReason, a Action) bool {
	if !res.Failed || a == Drop {
		res.Reason = reason
	}
	res.Failed = true
	if a == Drop {
		res.Drop = true
		return true
	}
	res.Flagged = res.Flagged.Add(reason)
	return false
}

// unchangedFor records picture hash h seen at now and returns how long the
// picture has been the same.
func (v *Validator) unchangedFor(h uint64, now time.Time) time.Duration {
	if !v.seen || h != v.hash {
		v.seen, v.hash, v.since = true, h, now
		return 0
	}
	return now.Sub(v.since)
}

const (
	// targetSamples sets the grid pitch: about 14k samples at 720p and at
	// 1080p (pitch 8 and 12), enough for stable statistics and a hash that
	// sees any real change, at a fixed cost whatever the resolution.
	targetSamples = 16384
	// maxDim bounds width, height and stride so size arithmetic cannot
	// overflow and hide a short buffer.
	maxDim = 1 << 16
)

// grid says where the luma samples of a frame lie.
type grid struct {
	packed       bool // BGR/RGB: 3 bytes a pixel; else the 8-bit Y plane
	c0, c2       uint32
	stride       int
	x0, y0, step int
	nx, ny       int
}

// newGrid checks the frame's geometry against its buffer and lays out the
// sample grid; ok is false when the size rule fails.
func newGrid(f *frame.Frame) (g grid, ok bool) {
	if f.Width <= 0 || f.Height <= 0 || f.Width > maxDim || f.Height > maxDim || f.Stride > 4*maxDim {
		return g, false
	}
	stride, size, err := frame.Layout(f.Format, f.Width, f.Height)
	if err != nil {
		return g, false
	}
	if f.Stride > stride {
		// Only the first plane's stride is known. NV12's interleaved chroma
		// plane shares it; I420's chroma planes are assumed unpadded.
		rows := f.Height
		if f.Format == frame.NV12 {
			rows += (f.Height + 1) / 2
		}
		size += (f.Stride - stride) * rows
		stride = f.Stride
	}
	if len(f.Data) < size {
		return g, false
	}

	g.stride = stride
	switch f.Format {
	case frame.BGR:
		g.packed, g.c0, g.c2 = true, lumaB, lumaR
	case frame.RGB:
		g.packed, g.c0, g.c2 = true, lumaR, lumaB
	}
	g.step = max(1, int(math.Ceil(math.Sqrt(float64(f.Width)*float64(f.Height)/targetSamples))))
	g.nx, g.x0 = span(f.Width, g.step)
	g.ny, g.y0 = span(f.Height, g.step)
	return g, true
}

// span returns how many samples of pitch step fit in n and the offset that
// centres them.
func span(n, step int) (count, offset int) {
	count = (n-1)/step + 1
	return count, (n - 1 - (count-1)*step) / 2
}

// BT.601 luma weights in 1/256: Y = (77 R + 150 G + 29 B) / 256.
const (
	lumaR = 77
	lumaG = 150
	lumaB = 29
)

type sampleStats struct {
	mean, stddev float64
	hash         uint64
}

// sample reads the grid's luma values and returns their mean, standard
// deviation and a 64-bit hash of them.
func (g *grid) sample(data []byte) sampleStats {
	var (
		acc  rowAcc
		last = (g.nx - 1) * g.step // offset of the last sample in a row, in pixels
	)
	acc.h = prime5
	for j := range g.ny {
		off := (g.y0 + j*g.step) * g.stride
		// Reslicing each row lets the compiler bounds-check the row, not
		// every sample; a row at a time keeps the loop's state in registers.
		if g.packed {
			off += 3 * g.x0
			acc.packedRow(data[off:off+3*last+3], 3*g.step, g.c0, g.c2)
		} else {
			off += g.x0
			acc.planeRow(data[off:off+last+1], g.step)
		}
	}
	n := uint64(g.nx * g.ny)
	h := avalanche(acc.h ^ n)
	mean := float64(acc.sum) / float64(n)
	variance := float64(acc.sumSq)/float64(n) - mean*mean
	return sampleStats{mean: mean, stddev: math.Sqrt(max(variance, 0)), hash: h}
}

// rowAcc accumulates luma statistics and the hash over rows. Each row's
// samples are packed eight to a word and mixed xxhash-style: one multiply
// chain per eight samples keeps the hash off the critical path.
type rowAcc struct {
	sum, sumSq, h uint64
}

func (a *rowAcc) planeRow(row []byte, step int) {
	sum, sumSq, h := a.sum, a.sumSq, a.h
	var word uint64
	k := 0
	for i := 0; i < len(row); i += step {
		y := uint64(row[i])
		sum += y
		sumSq += y * y
		word = word<<8 | y
		if k++; k == 8 {
			h, word, k = round(h, word), 0, 0
		}
	}
	if k > 0 {
		h = round(h, word)
	}
	a.sum, a.sumSq, a.h = sum, sumSq, h
}

func (a *rowAcc) packedRow(row []byte, step int, c0, c2 uint32) {
	sum, sumSq, h := a.sum, a.sumSq, a.h
	var word uint64
	k := 0
	for i := 0; i+2 < len(row); i += step {
		y := uint64((c0*uint32(row[i]) + lumaG*uint32(row[i+1]) + c2*uint32(row[i+2]) + 128) >> 8)
		sum += y
		sumSq += y * y
		word = word<<8 | y
		if k++; k == 8 {
			h, word, k = round(h, word), 0, 0
		}
	}
	if k > 0 {
		h = round(h, word)
	}
	a.sum, a.sumSq, a.h = sum, sumSq, h
}

// xxhash64 primes and mixing steps.
const (
	prime1 = 0x9E3779B185EBCA87
	prime2 = 0xC2B2AE3D27D4EB4F
	prime3 = 0x165667B19E3779F9
	prime5 = 0x27D4EB2F165667C5
)

func round(acc, in uint64) uint64 {
	acc += in * prime2
	acc = bits.RotateLeft64(acc, 31)
	return acc * prime1
}

func avalanche(h uint64) uint64 {
	h ^= h >> 33
	h *= prime2
	h ^= h >> 29
	h *= prime3
	h ^= h >> 32
	return h
}

// JPEG markers (ITU T.81, B.1.1.3).
const (
	markerSOI = 0xD8
	markerEOI = 0xD9
	markerSOS = 0xDA
	// jpegHeadroom is what a JPEG of a picture may hold beyond 3 bytes a
	// pixel (the raw BGR size, which compressed pixels do not reach):
	// tables, EXIF, comments.
	jpegHeadroom = 64 << 10
	// jpegSegments bounds the marker segments read before the frame header.
	jpegSegments = 64
)

// wholeJPEG reports whether f.Data is one whole JPEG file of f's size: SOI
// first, EOI last, a frame header (SOFn) before the first scan whose
// width and height are f's, and no more than 3 bytes a pixel plus
// jpegHeadroom. It reads only the headers.
func wholeJPEG(f *frame.Frame) bool {
	d := f.Data
	if f.Width <= 0 || f.Height <= 0 || f.Width > maxDim || f.Height > maxDim ||
		len(d) < 4 || len(d) > 3*f.Width*f.Height+jpegHeadroom ||
		d[0] != 0xFF || d[1] != markerSOI || d[len(d)-2] != 0xFF || d[len(d)-1] != markerEOI {
		return false
	}
	i := 2
	for range jpegSegments {
		if i+1 >= len(d) || d[i] != 0xFF {
			return false
		}
		for i < len(d) && d[i] == 0xFF { // fill bytes before a marker
			i++
		}
		if i+2 >= len(d) {
			return false
		}
		m := d[i]
		i++
		switch {
		case m == markerSOS || m == markerEOI || m == 0:
			return false // a scan (or the end) before any frame header
		case m == 0x01 || (m >= 0xD0 && m <= 0xD7):
			continue // TEM, RSTn: no length
		}
		n := int(d[i])<<8 | int(d[i+1]) // the segment's length, itself included
		if n < 2 || i+n > len(d) {
			return false
		}
		if isSOF(m) {
			// Lf(2) P(1) Y(2) X(2)
			if n < 8 {
				return false
			}
			h := int(d[i+3])<<8 | int(d[i+4])
			w := int(d[i+5])<<8 | int(d[i+6])
			return w == f.Width && h == f.Height
		}
		i += n
	}
	return false
}

// isSOF reports whether marker m starts a frame header: SOF0-SOF15 less
// DHT (C4), JPG (C8) and DAC (CC).
func isSOF(m byte) bool {
	return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC
}
