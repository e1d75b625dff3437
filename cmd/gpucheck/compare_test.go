package main

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bars is a w x h packed 3-byte picture of vertical bars scrolled left by
// 4*pos pixels, as camsim's clip (videotestsrc horizontal-speed=4) is;
// noise adds a deterministic ±noise to every byte.
func bars(pos, w, h, noise int) picture {
	colours := [][3]byte{{192, 192, 192}, {0, 192, 192}, {192, 192, 0}, {0, 192, 0}, {192, 0, 192}, {0, 0, 192}, {192, 0, 0}}
	rows := make([][]byte, h)
	for y := range rows {
		row := make([]byte, w*3)
		for x := range w {
			c := colours[((x+4*pos)%w)*len(colours)/w]
			for k := range 3 {
				v := int(c[k])
				if noise > 0 {
					v += (x*7+y*13+k)%(2*noise+1) - noise
				}
				row[3*x+k] = byte(min(max(v, 0), 255))
			}
		}
		rows[y] = row
	}
	return newPicture(fmt.Sprintf("pos%d", pos), rows)
}

// clip is n consecutive positions from first, looping every loop positions.
func clip(first, n, loop, noise int) []picture {
	var out []picture
	for i := range n {
		out = append(out, bars((first+i)%loop, 320, 180, noise))
	}
	return out
}

var tol = tolerance{maxMAD: 1.0, minPSNR: 30, margin: 4}

func TestMatchSamePicturesPass(t *testing.T) {
	ref := clip(0, 40, 20, 0) // two loops
	// The test stream starts elsewhere in the loop, with a decoder's
	// small differences.
	st, err := match(ref, clip(7, 10, 20, 1), tol)
	require.NoError(t, err)
	assert.True(t, st.ok(), st.reason)
	assert.Equal(t, 10, st.pairs)
	assert.Greater(t, st.madMax, 0.0, "the noise is measured")
	assert.LessOrEqual(t, st.madMax, 1.0)
	assert.Greater(t, st.adjacentMAD, 4.0, "one position apart differs by more than 4 x the tolerance")
	assert.Contains(t, st.line(tol), "status=pass")

	exact, err := match(ref, clip(3, 5, 20, 0), tol)
	require.NoError(t, err)
	assert.True(t, exact.ok(), exact.reason)
	assert.Zero(t, exact.madMax)
	assert.True(t, math.IsInf(exact.psnrMin, 1))
	assert.Contains(t, exact.line(tol), "psnr_min=inf")
}

// A test frame whose position the reference lacks pairs with a neighbour
// and fails: what a GPU frame that is not the CPU's picture looks like.
func TestMatchMissingPositionFails(t *testing.T) {
	var ref []picture
	for pos := 0; pos < 20; pos += 2 {
		ref = append(ref, bars(pos, 320, 180, 0))
	}
	st, err := match(ref, []picture{bars(5, 320, 180, 0)}, tol)
	require.NoError(t, err)
	assert.False(t, st.ok())
	assert.Contains(t, st.reason, "pos5 differs from its closest reference frame")
	assert.Contains(t, st.line(tol), "status=fail")
}

// A wrong picture (colours swapped, as a decoder writing NV21 for NV12
// would give) fails too.
func TestMatchWrongColoursFail(t *testing.T) {
	bad := bars(4, 320, 180, 0)
	for _, row := range bad.rows {
		for x := 0; x+2 < len(row); x += 3 {
			row[x], row[x+2] = row[x+2], row[x]
		}
	}
	bad = newPicture("swapped", bad.rows)
	st, err := match(clip(0, 20, 20, 0), []picture{bad}, tol)
	require.NoError(t, err)
	assert.False(t, st.ok())
}

// Reference frames that do not differ make the pairing meaningless: the
// check says so instead of passing.
func TestMatchStaticReferenceFails(t *testing.T) {
	ref := []picture{bars(0, 320, 180, 0), bars(0, 320, 180, 0), bars(0, 320, 180, 0)}
	st, err := match(ref, []picture{bars(0, 320, 180, 0)}, tol)
	require.NoError(t, err)
	assert.False(t, st.ok())
	assert.Contains(t, st.reason, "cannot tell clip positions apart")
}

func TestMatchLayoutMismatchIsAnError(t *testing.T) {
	_, err := match(clip(0, 4, 4, 0), []picture{bars(0, 160, 90, 0)}, tol)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "rows")
	_, err = match(clip(0, 1, 4, 0), clip(0, 1, 4, 0), tol)
	assert.ErrorContains(t, err, "at least 1 test and 2 reference frames")
}

func TestRawdiff(t *testing.T) {
	const w, h = 64, 32
	size, err := i420Size(w, h)
	require.NoError(t, err)
	frames := func(n int, damage int) []byte {
		var b bytes.Buffer
		for i := range n {
			f := make([]byte, size)
			for j := range f {
				f[j] = byte(i*31 + j)
			}
			if i == damage {
				for j := 0; j < size/4; j++ {
					f[j] ^= 0x40
				}
			}
			b.Write(f)
		}
		return b.Bytes()
	}
	rtol := tolerance{maxMAD: 0.25, minPSNR: 45}

	st, err := rawdiff(bytes.NewReader(frames(5, -1)), bytes.NewReader(frames(5, -1)), size, rtol)
	require.NoError(t, err)
	assert.Empty(t, st.reason)
	assert.Equal(t, 5, st.frames)
	assert.Equal(t, 5, st.identical)
	assert.Contains(t, st.line(rtol), "status=pass")

	st, err = rawdiff(bytes.NewReader(frames(5, -1)), bytes.NewReader(frames(5, 3)), size, rtol)
	require.NoError(t, err)
	assert.Contains(t, st.reason, "frame 3 differs")
	assert.Equal(t, 4, st.identical)

	st, err = rawdiff(bytes.NewReader(frames(5, -1)), bytes.NewReader(frames(4, -1)), size, rtol)
	require.NoError(t, err)
	assert.Contains(t, st.reason, "the files end differently")

	st, err = rawdiff(bytes.NewReader(nil), bytes.NewReader(nil), size, rtol)
	require.NoError(t, err)
	assert.Equal(t, "no frames", st.reason)

	_, err = i420Size(1282, 720)
	assert.ErrorContains(t, err, "multiple of 8")
}

func TestParseMetrics(t *testing.T) {
	const body = `# TYPE rtsp_frames_published_total counter
rtsp_frames_published_total{camera_id="cam2"} 7
rtsp_frames_published_total{camera_id="cam1"} 250
# TYPE rtsp_frames_captured_total counter
rtsp_frames_captured_total{camera_id="cam1"} 252
# TYPE rtsp_frames_dropped_total counter
rtsp_frames_dropped_total{camera_id="cam1",reason="ring_overflow"} 1
rtsp_frames_dropped_total{camera_id="cam1",reason="redis_error"} 1
# TYPE rtsp_decoder_info gauge
rtsp_decoder_info{camera_id="cam1",codec="h264",decoder="nvh264dec"} 1
# TYPE rtsp_redis_up gauge
rtsp_redis_up 1
`
	cams, err := parseMetrics(strings.NewReader(body))
	require.NoError(t, err)
	require.Len(t, cams, 2)
	assert.Equal(t, cameraCounters{id: "cam1", published: 250, captured: 252, dropped: 2, codec: "h264", decoder: "nvh264dec"}, cams[0])
	assert.Equal(t, cameraCounters{id: "cam2", published: 7, codec: "-", decoder: "-"}, cams[1])
}

func TestRunUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	assert.Equal(t, 2, run(nil, &out, &errOut))
	assert.Equal(t, 2, run([]string{"nope"}, &out, &errOut))
	assert.Contains(t, errOut.String(), `unknown command "nope"`)
	assert.Equal(t, 2, run([]string{"compare", "--redis", "x"}, &out, &errOut))
	assert.Equal(t, 2, run([]string{"rawdiff", "--size", "1282x720", "a", "b"}, &out, &errOut))
	assert.Equal(t, 2, run([]string{"ports", "0"}, &out, &errOut))
}
