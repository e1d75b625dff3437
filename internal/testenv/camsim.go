package testenv

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"
)

// CamsimStatus is the part of the camera simulator's GET /status
// (cmd/camsim, control.go) that the e2e tests and camsim's own tests read,
// as a client sees it on the wire.
type CamsimStatus struct {
	Sizes   []string `json:"sizes"` // the clips a camera can switch to, "WxH"
	TCPOnly bool     `json:"tcp_only"`
	Audio   bool     `json:"audio"`
	Cameras []struct {
		ActiveSources int    `json:"active_sources"`
		Clients       int    `json:"clients"`
		FramesPushed  uint64 `json:"frames_pushed"`
		Stalled       bool   `json:"stalled"`
		// The clip being sent, and the one a size switch waits to send at
		// the next GOP start.
		Width       int     `json:"width"`
		Height      int     `json:"height"`
		NextWidth   int     `json:"next_width"`
		NextHeight  int     `json:"next_height"`
		CorruptRate float64 `json:"corrupt_rate"` // share of RTP packets dropped or damaged
		CorruptMode string  `json:"corrupt_mode"`
		RTPDropped  uint64  `json:"rtp_dropped"`
		RTPDamaged  uint64  `json:"rtp_damaged"`
	} `json:"cameras"`
}

// GetCamsimStatus fetches GET /status from camsim's control API at base
// (http://host:port), failing the test unless it answers 200 with JSON.
func GetCamsimStatus(t testing.TB, base string) CamsimStatus {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(base + "/status")
	if err != nil {
		t.Fatalf("testenv: camsim status: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("testenv: camsim status: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("testenv: camsim status: %s: %s", resp.Status, body)
	}
	var st CamsimStatus
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("testenv: camsim status %s: %v", body, err)
	}
	return st
}
