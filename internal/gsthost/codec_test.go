package gsthost

import (
	"testing"
	"time"

	"github.com/go-gst/go-gst/gst"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/pipelines"
)

// The codec auto probe line parses, and the watch finds its rtspsrc: what
// explain says about rtspsrc's vague "No supported stream" error depends on
// the transports the setting allowed.
func TestProbeLineAndTransportExplanation(t *testing.T) {
	for _, tc := range []struct {
		protocols string
		want      string
	}{
		{"udp", "the camera refused RTP over UDP, which is all the transport setting allows; if UDP is blocked or disabled, set transport: tcp or auto"},
		{"tcp", "the camera refused RTP over TCP, which is all the transport setting allows; check the camera's RTSP transport settings"},
		{"udp+tcp", "the camera refused RTP over UDP and TCP, which is all the transport setting allows; check the camera's RTSP transport settings"},
	} {
		launch, err := pipelines.RenderProbe(pipelines.Params{Location: "rtsp://127.0.0.1:1/x", Protocols: tc.protocols,
			TCPTimeout: time.Second, UDPTimeout: time.Second})
		require.NoError(t, err)
		p, err := gst.NewPipelineFromString(launch)
		require.NoError(t, err, launch)
		keep(t, p)
		w := attachWatch(p, "h264")
		vague := busError{Source: "src", Text: "No supported stream was found. You might need to allow more transport protocols or may otherwise be missing the right GStreamer RTSP extension plugin."}
		assert.Equal(t, tc.want, w.explain(vague), tc.protocols)
		assert.Empty(t, w.explain(busError{Source: "src", Text: "Could not open resource"}), "other errors get no explanation")
		assert.Empty(t, w.explain(busError{Source: "dec", Text: vague.Text}), "only rtspsrc's")
		names, seen := w.announced()
		assert.False(t, seen, "no SDP before connecting")
		assert.Nil(t, names)
		w.release()
	}
}

func TestCodecOf(t *testing.T) {
	for enc, want := range map[string]string{"H264": "h264", "H265": "h265"} {
		got, ok := codecOf(enc)
		assert.True(t, ok)
		assert.Equal(t, want, got)
	}
	_, ok := codecOf("JPEG")
	assert.False(t, ok)
}

// A refused rtsps certificate is explained by what GLib found wrong with
// it, with the setting that fixes the common case.
func TestExplainTLS(t *testing.T) {
	assert.Equal(t, "TLS: the camera's certificate was refused: it is signed by an unknown certificate authority; set tls_ca_file to a PEM file of the CA that signed it (or of the camera's own self-signed certificate)", explainTLS(1))
	assert.Equal(t, "TLS: the camera's certificate was refused: it is not for the host in the camera's URL, it has expired; use the host name or address the certificate names in the camera's URL", explainTLS(2|8))
	assert.Equal(t, "TLS: the camera's certificate was refused: validation flags 0x100; fix the camera's certificate", explainTLS(0x100))
}
