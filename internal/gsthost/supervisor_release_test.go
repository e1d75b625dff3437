package gsthost

import (
	"context"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/go-gst/go-gst/gst"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func openFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(fds)
}

// Rebuilt pipelines give their descriptors back at teardown, not whenever
// the Go GC happens to run finalizers: with the GC off, 30 rebuilds leave
// the process's open file count where it was.
func TestSupervisorReleasesPipelines(t *testing.T) {
	runtime.GC()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	spec := Spec{
		CameraID:         "release",
		Launch:           "videotestsrc name=src is-live=true num-buffers=3 ! video/x-raw,width=64,height=48,framerate=50/1 ! videoconvert ! video/x-raw,format=BGR ! appsink name=sink sync=false",
		StallTimeout:     2 * time.Second,
		ReconnectInitial: 10 * time.Millisecond,
		ReconnectMax:     20 * time.Millisecond,
	}
	cam, _, _, _, _ := runSupervisor(t, spec, Hooks{})
	require.Eventually(t, func() bool { return cam.ReconnectsByReason()["eos"] >= 3 }, 10*time.Second, 5*time.Millisecond)
	before := openFDs(t)
	require.Eventually(t, func() bool { return cam.ReconnectsByReason()["eos"] >= 33 }, 30*time.Second, 5*time.Millisecond)
	after := openFDs(t)
	t.Logf("open files: %d after 3 rebuilds, %d after 33 (GC off)", before, after)
	assert.LessOrEqual(t, after-before, 3, "descriptors kept by 30 stopped pipelines")
}

// explainConnect says whether the name does not resolve or the connect
// fails, which rtspsrc reports alike as "Failed to connect (Generic error)".
func TestExplainConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	open := ln.Addr().String()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refused := closed.Addr().String()
	require.NoError(t, closed.Close())
	defer ln.Close()

	ctx := context.Background()
	assert.Contains(t, explainConnect(ctx, "rtsp://camera.invalid/x", time.Second), `cannot resolve host "camera.invalid"`)
	got := explainConnect(ctx, "rtsp://"+refused+"/x", time.Second)
	assert.Contains(t, got, "cannot connect to "+refused)
	assert.Contains(t, got, "connection refused")
	assert.Empty(t, explainConnect(ctx, "rtsp://"+open+"/x", time.Second), "a reachable camera needs no explanation")
	assert.Empty(t, explainConnect(ctx, "not a url", time.Second))
}

// An abandoned pipeline (frozen: a SetState of it may still be running in
// C) keeps its C objects when the GC finalizes its Go wrappers; a wrapper
// that is not abandoned frees its object, which is what the call still
// running would then use.
func TestAbandonKeepsTheCObjects(t *testing.T) {
	for _, abandoned := range []bool{true, false} {
		weak := func() weakRef {
			p, err := gst.NewPipelineFromString("videotestsrc ! fakesink")
			require.NoError(t, err)
			w := newWeakRef(p.Bin.Element.Object)
			if abandoned {
				abandon(p.Bin.Element.Object)
			}
			return w
		}()
		if !abandoned {
			require.Eventually(t, func() bool { runtime.GC(); return !weak.alive() }, 5*time.Second, 20*time.Millisecond,
				"the finalizer of a wrapper that is not abandoned frees its object")
			continue
		}
		for range 5 {
			runtime.GC()
			time.Sleep(20 * time.Millisecond)
		}
		assert.True(t, weak.alive(), "an abandoned pipeline outlives its wrappers")
	}
}
