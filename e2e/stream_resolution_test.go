package e2e

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/frame"
	"gstcapture/internal/testenv"
)

// TestStreamResolutionChange (fault 8): an H.264 and an H.265 camera switch
// from 640x360 to 320x240 mid-stream (at a GOP start, new SPS/PPS in band)
// and back. The pipeline renegotiates without a rebuild: entries after the
// switch carry the new width, height, stride and size_bytes and the
// picture; no entry ever mixes one size's header with another's pixels;
// the rate stays 10±2 entries/s.
func TestStreamResolutionChange(t *testing.T) {
	rd := testenv.StartRedis(t)
	sims := map[string]*streamSim{
		"sw264": streamStartCamsim(t, "h264", 1, "--extra-sizes", "320x240"),
		"sw265": streamStartCamsim(t, "h265", 1, "--extra-sizes", "320x240"),
	}
	svc := startService(t, streamConfig(rd.URL,
		fmt.Sprintf("{id: sw264, url: %q, codec: h264}", sims["sw264"].url(1)),
		fmt.Sprintf("{id: sw265, url: %q, codec: h265}", sims["sw265"].url(1)),
	))
	rc := redis.NewClient(&redis.Options{Addr: rd.Addr})
	defer rc.Close()
	ctx := ctxT(t, 3*time.Minute)
	ids := []string{"sw264", "sw265"}
	streamWaitEntries(t, ctx, rc, svc, 5, ids...)
	for _, id := range ids {
		checkEntry(t, id, streamLatest(t, ctx, rc, id), 640, 360)
	}
	before := streamHealth(t, svc)

	for _, size := range [][2]int{{320, 240}, {640, 360}} {
		w, h := size[0], size[1]
		t0 := time.Now()
		for _, s := range sims {
			s.post(t, fmt.Sprintf("/cameras/1/size?w=%d&h=%d", w, h))
		}
		for _, id := range ids {
			require.Eventually(t, func() bool {
				v := streamLatest(t, ctx, rc, id)
				return v["width"] == strconv.Itoa(w) && v["height"] == strconv.Itoa(h)
			}, 20*time.Second, 100*time.Millisecond, "%s: no %dx%d entry after the switch; health: %+v", id, w, h, streamHealth(t, svc)[id])
			t.Logf("%s: first %dx%d entry %.1f s after the switch request", id, w, h, time.Since(t0).Seconds())
		}
		rates := streamRates(ctx, rc, 5*time.Second, ids...)
		t1 := time.Now()
		for _, id := range ids {
			t.Logf("%s after switch to %dx%d: %.2f entries/s", id, w, h, rates[id])
			assert.InDelta(t, 10, rates[id], 2, "%s entries per second after the switch", id)
			checkEntry(t, id, streamLatest(t, ctx, rc, id), w, h)
			// Around the switch, every entry is self-consistent and one of
			// the two sizes, and once the new size appears the old does not
			// come back.
			msgs := streamEntriesBetween(t, ctx, rc, id, t0, t1)
			require.NotEmpty(t, msgs)
			switched := false
			for _, m := range msgs {
				ew, _ := strconv.Atoi(m.Values["width"].(string))
				eh, _ := strconv.Atoi(m.Values["height"].(string))
				stride, sz, err := frame.Layout(frame.BGR, ew, eh)
				require.NoError(t, err, "%s entry %s", id, m.ID)
				assert.Equal(t, strconv.Itoa(stride), m.Values["stride"], "%s entry %s stride", id, m.ID)
				assert.Equal(t, strconv.Itoa(sz), m.Values["size_bytes"], "%s entry %s size_bytes", id, m.ID)
				assert.Len(t, m.Values["data"], sz, "%s entry %s data", id, m.ID)
				if ew == w && eh == h {
					switched = true
				} else {
					assert.False(t, switched, "%s entry %s: %dx%d after the switch to %dx%d", id, m.ID, ew, eh, w, h)
				}
			}
		}
	}

	after := streamHealth(t, svc)
	for _, id := range ids {
		c := after[id]
		t.Logf("%s: state=%s reconnects=%d dropped=%v skipped_undecodable=%d discarded_by_decoder=%d",
			id, c.State, c.Reconnects, c.Dropped, c.SkippedUndecodable, c.DiscardedByDecoder)
		assert.Equal(t, "streaming", c.State, id)
		assert.Equal(t, before[id].Reconnects, c.Reconnects, "%s: new caps are taken without rebuilding the pipeline", id)
		assert.Empty(t, c.Dropped, "%s: no frame failed validation across the switches", id)
	}
}
