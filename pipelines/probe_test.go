package pipelines

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The codec auto probe is rtspsrc with the capture line's connection
// properties, nothing of the decode graph, and a sink.
func TestRenderProbe(t *testing.T) {
	p := base()
	p.Protocols = "udp+tcp"
	p.Codec = "auto" // ignored: the probe has no codec
	got, err := RenderProbe(p)
	require.NoError(t, err)
	assert.Equal(t, `rtspsrc name=src location="rtsp://192.168.1.10:554/Streaming/Channels/101" protocols=udp+tcp`+
		` tcp-timeout=5000000 timeout=2500000 ! fakesink name=sink sync=false enable-last-sample=false`, got)

	// It reaches the camera as the capture line does.
	capture, err := Render(base())
	require.NoError(t, err)
	probe, err := RenderProbe(base())
	require.NoError(t, err)
	for _, prop := range []string{`location="rtsp://192.168.1.10:554/Streaming/Channels/101"`, " protocols=tcp ", " tcp-timeout=5000000 ", " timeout=2500000 "} {
		assert.Contains(t, capture, prop)
		assert.Contains(t, probe, prop)
	}

	for name, mutate := range map[string]func(*Params){
		"location":  func(p *Params) { p.Location = "http://x" },
		"protocols": func(p *Params) { p.Protocols = "sctp" },
		"timeout":   func(p *Params) { p.TCPTimeout = 0 },
		"escaping":  func(p *Params) { p.Location = "rtsp://x/\n" },
	} {
		p := base()
		mutate(&p)
		_, err := RenderProbe(p)
		assert.Error(t, err, name)
	}
	// The probe template is not a codec.
	p = base()
	p.Codec = "probe"
	_, err = Render(p)
	assert.ErrorContains(t, err, `codec "probe"`)
}
