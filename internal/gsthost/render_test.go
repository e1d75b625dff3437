package gsthost

import (
	"testing"
	"time"

	"github.com/go-gst/go-gst/gst"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/pipelines"
)

// Rendered launch strings parse with GStreamer's own parser, and a URL full
// of launch-syntax characters arrives in rtspsrc's location unchanged
// instead of breaking or extending the graph.
func TestRenderedLaunchRoundTrip(t *testing.T) {
	urls := []string{
		"rtsp://10.0.0.1:554/Streaming/Channels/101",
		`rtsp://cam.local/live ! fakesink name=injected`,
		`rtsp://cam.local/a path/with spaces?x="quoted"&y='single'`,
		`rtsp://cam.local/back\slash\path`,
		"rtsp://cam.local/ünïcode/ストリーム",
	}
	for _, codec := range []string{"h264", "h265"} {
		_, cpu := pipelines.Candidates(codec)
		dec, err := pipelines.ChooseDecoder(codec, "cpu", 1, HasElement)
		require.NoError(t, err, "cpu decoders %v", cpu)
		for _, u := range urls {
			launch, err := pipelines.Render(pipelines.Params{Codec: codec, Location: u, Protocols: "tcp", LatencyMS: 200, TCPTimeout: 5 * time.Second, UDPTimeout: 2 * time.Second,
				Decoder: dec, FPS: 10, Format: "BGR", Converter: pipelines.ConverterSws, ConvertThreads: 1})
			require.NoError(t, err)
			p, err := gst.NewPipelineFromString(launch)
			require.NoError(t, err, "launch: %s", launch)
			keep(t, p)
			src, err := p.GetElementByName("src")
			require.NoError(t, err)
			loc, err := src.GetProperty("location")
			require.NoError(t, err)
			assert.Equal(t, u, loc, "%s location round trip", codec)
			_, err = p.GetElementByName("injected")
			assert.Error(t, err, "no element may be injected through the URL")
			_, err = p.GetElementByName("sink")
			assert.NoError(t, err)
		}
	}
}

// A format JPEG line parses, with the encoder ChooseEncoder found here
// named enc, its quality set.
func TestRenderedJPEGLaunchParses(t *testing.T) {
	dec, err := pipelines.ChooseDecoder("h264", "cpu", 1, HasElement)
	require.NoError(t, err)
	enc, err := pipelines.ChooseEncoder("JPEG", dec, HasElement)
	require.NoError(t, err)
	launch, err := pipelines.Render(pipelines.Params{Codec: "h264", Location: "rtsp://10.0.0.1/x", Protocols: "tcp", LatencyMS: 200, TCPTimeout: 5 * time.Second, UDPTimeout: 2 * time.Second,
		Decoder: dec, FPS: 10, Format: "JPEG", Width: 320, Height: 240, Encoder: enc, JPEGQuality: 42, Converter: pipelines.ConverterVideoconvert, ConvertThreads: 1})
	require.NoError(t, err)
	p, err := gst.NewPipelineFromString(launch)
	require.NoError(t, err, "launch: %s", launch)
	keep(t, p)
	el, err := p.GetElementByName(pipelines.EncoderName)
	require.NoError(t, err)
	assert.Equal(t, enc.Element, el.GetFactory().GetName())
	q, err := el.GetProperty("quality")
	require.NoError(t, err)
	assert.EqualValues(t, 42, q)
}

func TestLastLine(t *testing.T) {
	assert.Equal(t, "Failed to connect. (Generic error)",
		lastLine("../gst/rtsp/gstrtspsrc.c(8336): gst_rtspsrc_retrieve_sdp (): /GstPipeline:pipeline6/GstRTSPSrc:src:\nFailed to connect. (Generic error)"))
	assert.Equal(t, "", lastLine("../gst/rtsp/gstrtspsrc.c(7894): gst_rtspsrc_loop (): /GstPipeline:pipeline6/GstRTSPSrc:src:"))
	assert.Equal(t, "", lastLine(""))
}
