package testenv

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGetCamsimStatus(t *testing.T) {
	// As camsim's control API writes it (cmd/camsim/control.go).
	const body = `{"codec":"h264","width":640,"height":360,"sizes":["640x360","320x240"],"fps":25,"gop":50,
		"bitrate_kbps":0,"clip_frames":100,"tcp_only":true,"audio":false,"cameras":[{"id":1,"url":"rtsp://h/cam1",
		"active_sources":1,"clients":2,"frames_pushed":300,"stalled":true,"eos":false,"width":640,"height":360,
		"next_width":320,"next_height":240,"corrupt_rate":0.05,"corrupt_mode":"drop","rtp_dropped":7,"rtp_damaged":3}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, body)
	}))
	defer srv.Close()
	st := GetCamsimStatus(t, srv.URL)
	assert.Equal(t, []string{"640x360", "320x240"}, st.Sizes)
	assert.True(t, st.TCPOnly)
	assert.False(t, st.Audio)
	require.Len(t, st.Cameras, 1)
	c := st.Cameras[0]
	assert.Equal(t, [4]int{1, 2, 640, 360}, [4]int{c.ActiveSources, c.Clients, c.Width, c.Height})
	assert.Equal(t, [2]int{320, 240}, [2]int{c.NextWidth, c.NextHeight})
	assert.Equal(t, uint64(300), c.FramesPushed)
	assert.True(t, c.Stalled)
	assert.Equal(t, 0.05, c.CorruptRate)
	assert.Equal(t, "drop", c.CorruptMode)
	assert.Equal(t, [2]uint64{7, 3}, [2]uint64{c.RTPDropped, c.RTPDamaged})
}

func TestOutput(t *testing.T) {
	var o Output
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				_, _ = o.Write([]byte("x"))
			}
		}()
	}
	wg.Wait()
	assert.Len(t, o.String(), 400)
}
