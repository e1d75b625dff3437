package capture

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/config"
)

func autoCamera() config.Camera {
	return config.Camera{ID: "cam", Codec: config.CodecAuto, Location: "rtsp://10.0.0.1/live", Settings: config.Settings{
		FPS: 10, Format: "BGR", Transport: "tcp", Latency: 200 * time.Millisecond, StallTimeout: 5 * time.Second,
		Decoder: "auto", DecoderThreads: 1, ConvertThreads: 1,
	}}
}

// Codec auto plans one pipeline per codec that has a decoder, plus the SDP
// probe, and hands both to the supervisor.
func TestPlanCameraCodecAuto(t *testing.T) {
	all := func(string) bool { return true }
	plan, err := PlanCamera(autoCamera(), all)
	require.NoError(t, err)
	assert.Empty(t, plan.Launch, "no launch until the SDP says which")
	require.Len(t, plan.Auto, 2)
	assert.Equal(t, "nvh264dec", plan.Auto["h264"].Decoder.Element)
	assert.Contains(t, plan.Auto["h264"].Launch, "rtph264depay")
	assert.Contains(t, plan.Auto["h265"].Launch, "rtph265depay")
	assert.Contains(t, plan.ProbeLaunch, `rtspsrc name=src location="rtsp://10.0.0.1/live" protocols=tcp`)
	assert.NotContains(t, plan.ProbeLaunch, "depay")

	cs := plan.codecSpec()
	assert.Equal(t, config.CodecAuto, cs.Name)
	assert.Equal(t, plan.ProbeLaunch, cs.ProbeLaunch)
	assert.Equal(t, plan.Auto["h265"].Launch, cs.Auto["h265"].Launch)
	assert.Equal(t, "nvh265dec", cs.Auto["h265"].Decoder)

	// Only H.264 can be decoded here: auto still works for H.264 cameras.
	only264 := func(el string) bool { return el == "avdec_h264" }
	plan, err = PlanCamera(autoCamera(), only264)
	require.NoError(t, err)
	assert.Len(t, plan.Auto, 1)
	assert.Equal(t, "avdec_h264", plan.Auto["h264"].Decoder.Element)

	_, err = PlanCamera(autoCamera(), func(string) bool { return false })
	require.Error(t, err)
	assert.Contains(t, err.Error(), "codec auto: no codec can be decoded")
	assert.Contains(t, err.Error(), "avdec_h265")

	// A fixed codec has no alternatives and the supervisor checks the SDP
	// against it.
	fixed := autoCamera()
	fixed.Codec = "h265"
	plan, err = PlanCamera(fixed, all)
	require.NoError(t, err)
	assert.Nil(t, plan.Auto)
	assert.Equal(t, "h265", plan.codecSpec().Name)
	assert.Contains(t, plan.Launch, "rtph265depay")
}
