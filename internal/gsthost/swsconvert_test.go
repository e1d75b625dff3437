package gsthost

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/go-gst/go-gst/gst"
	"github.com/go-gst/go-gst/gst/app"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// oneFrame runs launch (which must end in "appsink name=sink") and returns
// the bytes of the first frame.
func oneFrame(t *testing.T, launch string) []byte {
	t.Helper()
	p, err := gst.NewPipelineFromString(launch)
	require.NoError(t, err, launch)
	el, err := p.GetElementByName("sink")
	require.NoError(t, err)
	keep(t, p, el)
	require.NoError(t, p.SetState(gst.StatePlaying))
	defer func() { _ = p.SetState(gst.StateNull) }()
	s := app.SinkFromElement(el).TryPullSample(gst.ClockTime(10 * time.Second))
	require.NotNil(t, s, "no frame from %s", launch)
	b := s.GetBuffer().Bytes()
	runtime.KeepAlive(s)
	return b
}

// swsconvert must give what videoconvert gives (to rounding and chroma
// interpolation at colour edges), with the stream's colour matrix: SD
// frames are BT.601, HD frames BT.709, a full-range stream stays full range.
// A wrong matrix or range moves the SMPTE bars' colours by 10-40 levels.
func TestSwsConvertMatchesVideoconvert(t *testing.T) {
	cases := []struct{ in, caps, out string }{
		{"I420", "width=640,height=360", "BGR"},
		{"I420", "width=1280,height=720", "BGR"},
		{"I420", "width=1280,height=720", "RGB"},
		{"NV12", "width=1920,height=1080", "BGR"},
		{"I420", "width=640,height=480,colorimetry=bt709", "BGR"},
		{"I420", "width=640,height=480,colorimetry=1:4:0:0", "BGR"}, // full-range BT.601
		{"Y444", "width=1280,height=720", "BGRx"},
		{"I420_10LE", "width=1280,height=720", "RGB"},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s_%s_%s", c.in, c.caps, c.out), func(t *testing.T) {
			src := fmt.Sprintf("videotestsrc num-buffers=1 pattern=smpte ! video/x-raw,format=%s,%s ! ", c.in, c.caps)
			sink := fmt.Sprintf(" ! video/x-raw,format=%s ! appsink name=sink sync=false", c.out)
			got := oneFrame(t, src+"swsconvert"+sink)
			want := oneFrame(t, src+"videoconvert"+sink)
			require.Equal(t, len(want), len(got))
			var sum, big int
			for i := range got {
				d := int(got[i]) - int(want[i])
				if d < 0 {
					d = -d
				}
				sum += d
				if d > 8 {
					big++
				}
			}
			mean := float64(sum) / float64(len(got))
			t.Logf("mean |swsconvert - videoconvert| = %.2f levels, %.3f%% of bytes differ by > 8", mean, 100*float64(big)/float64(len(got)))
			assert.Less(t, mean, 2.0)
			assert.Less(t, float64(big)/float64(len(got)), 0.01, "more than 1%% of bytes differ by > 8 levels")
		})
	}
}

// A size change is videoscale's job: swsconvert does not link to it.
func TestSwsConvertRefusesScaling(t *testing.T) {
	_, err := gst.NewPipelineFromString("videotestsrc num-buffers=1 ! video/x-raw,format=I420,width=320,height=240 ! swsconvert ! video/x-raw,format=BGR,width=160,height=120 ! fakesink")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "can't handle caps")
}
