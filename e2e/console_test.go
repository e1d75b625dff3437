package e2e

// The operator console (internal/console, docs/console.md) in a real
// headless Chromium, driven with chromedp: sign-in, the camera grid's
// pictures and states, a stall and its recovery, the camera page, the
// add form's problems, a camera added from the form streaming from an
// RTSP relay the project did not write, disable and delete; a read token
// sees no admin control, a wrong one is refused. Screenshots go to bin/.

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gstcapture/internal/testenv"
)

// consoleStall is the console test's stall_timeout.
const consoleStall = 3 * time.Second

// browser starts a headless Chromium (Debian's, from scripts/deps.sh) at
// 1280x900 and returns a context to drive it; it is closed at cleanup.
func browser(t *testing.T) context.Context {
	t.Helper()
	exe, err := exec.LookPath("chromium")
	require.NoError(t, err, "chromium is not installed: run `make deps` (scripts/deps.sh installs Debian's chromium)")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // CI runs as root
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// Start the browser now, with no deadline (its lifetime is the first
	// call's context), so that its start-up is in no step's time.
	require.NoError(t, chromedp.Do(ctx), "start chromium")
	return ctx
}

// within runs steps with a deadline.
func within(t *testing.T, ctx context.Context, d time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	require.NoError(t, chromedp.Do(c, steps...), "console: %s", what)
}

// eval returns the value of expr in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](expr))
	require.NoError(t, err, "console: evaluate %s", expr)
	return v
}

// text returns the text of the element sel selects.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.TextContent(chromedp.CSS(sel)))
	require.NoError(t, err, "console: text of %s", sel)
	return v
}

// waitJS polls expr in the page until it is true, as long as the step's
// context lets it.
func waitJS(expr string) chromedp.Action[chromedp.Void] {
	poll := chromedp.Poll[bool](expr, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(0))
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := poll(ctx, t)
		return chromedp.Void{}, err
	}
}

// css is a CSS selector.
func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

// signIn signs the page in with token and waits for the grid.
func signIn(t *testing.T, ctx context.Context, base, token string) {
	t.Helper()
	within(t, ctx, 30*time.Second, "sign in",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(css("#token")),
		chromedp.SetValue(css("#token"), token),
		chromedp.Click(css("#login-submit")),
		chromedp.WaitVisible(css("#grid")),
	)
}

// cardState is the state a camera's card shows ("" when there is none):
// the badge's attribute, checked against its text.
func cardState(id string) string {
	return fmt.Sprintf(`(() => { const b = document.querySelector('#grid .card[data-camera=%q] .badge');
		return b && b.textContent.trim().toLowerCase().includes(b.dataset.state) ? b.dataset.state : ''; })()`, id)
}

// screenshot writes the page as a PNG under bin/ and checks it decodes at
// the viewport's width.
func screenshot(t *testing.T, ctx context.Context, name string, width int) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	buf, err := chromedp.Run(c, chromedp.FullScreenshot(100)) // 100: PNG
	require.NoError(t, err, "screenshot %s", name)
	img, err := png.Decode(bytes.NewReader(buf))
	require.NoError(t, err, "screenshot %s is a PNG", name)
	assert.Equal(t, width, img.Bounds().Dx(), "screenshot %s width", name)
	p := filepath.Join(repoRoot(t), "bin", name)
	require.NoError(t, os.WriteFile(p, buf, 0o644))
	t.Logf("console screenshot: %s (%dx%d)", p, img.Bounds().Dx(), img.Bounds().Dy())
}

func TestConsole(t *testing.T) {
	rd := testenv.StartRedis(t)
	rc := openFrames(t, rd)
	sim := startCamsim(t, camsimOpts{Cameras: 4, Codec: "h264", Size: "320x240", FPS: 10, Control: true})
	cfg := liveConfig(rd.URL, simCams(sim, 4)...)
	cfg.StallTimeout = consoleStall.String()
	svc := startService(t, cfg)

	// The camera the form adds streams from mediamtx's library (gortsplib)
	// relaying ffmpeg: not our RTSP server.
	relay, relayProc := startRelay(t)
	publishLoop(t, relay, relayProc, "live1", "testsrc2=size=640x360", 10)
	rc.WaitPublished(svc, 60*time.Second, 5, "cam1", "cam2", "cam3", "cam4")

	ctx := browser(t)

	// A wrong token is refused: the error shows, the app does not, and
	// nothing is kept.
	within(t, ctx, 30*time.Second, "wrong token",
		chromedp.Navigate(svc.HTTP+"/"),
		chromedp.WaitVisible(css("#token")),
		chromedp.SetValue(css("#token"), "not-a-token"),
		chromedp.Click(css("#login-submit")),
		chromedp.WaitVisible(css("#login-error")),
	)
	assert.Contains(t, text(t, ctx, "#login-error"), "not one of", "the server's refusal is shown")
	assert.False(t, eval[bool](t, ctx, `sessionStorage.length > 0`), "a refused token is not kept")
	assert.False(t, eval[bool](t, ctx, `document.querySelector('#app').offsetParent !== null`), "the app stays hidden")

	// Admin: four cards, each with a picture that decoded.
	signIn(t, ctx, svc.HTTP, e2eAdminToken)
	within(t, ctx, 60*time.Second, "four pictures",
		waitJS(`document.querySelectorAll('#grid .card').length === 4`),
		waitJS(`[...document.querySelectorAll('#grid .card img.snap')].filter(i => i.complete && i.naturalWidth > 0).length === 4`),
	)
	assert.Equal(t, "admin", eval[string](t, ctx, `document.body.dataset.scope`))
	assert.NotContains(t, eval[string](t, ctx, `location.href`), e2eAdminToken, "the token is never in the URL")
	assert.Contains(t, eval[string](t, ctx, `Object.values(sessionStorage).join(' ')`), e2eAdminToken, "the token is in sessionStorage")
	for i := 1; i <= 4; i++ {
		assert.Equal(t, "streaming", eval[string](t, ctx, cardState(fmt.Sprintf("cam%d", i))), "cam%d's card", i)
	}
	// The pictures are of the frames: a second's refresh brings new ones.
	const cam1Img = `document.querySelector('#grid .card[data-camera="cam1"] img.snap')`
	first := eval[string](t, ctx, cam1Img+`.src`)
	within(t, ctx, 15*time.Second, "a refreshed picture",
		waitJS(fmt.Sprintf(`%s.src !== %q && %s.naturalWidth > 0`, cam1Img, first, cam1Img)))
	assert.True(t, strings.HasPrefix(eval[string](t, ctx, cam1Img+`.src`), "blob:"), "pictures are fetched with the token, not by URL")
	screenshot(t, ctx, "console-grid.png", 1280)

	// A stall turns cam2's card to stalled within stall_timeout + 2 s.
	sim.Do(2, "stall")
	stalled := time.Now()
	within(t, ctx, consoleStall+2*time.Second, "cam2 stalled within stall_timeout + 2 s", waitJS(cardState("cam2")+` === 'stalled'`))
	t.Logf("console: cam2's card stalled %s after the stall", time.Since(stalled).Round(100*time.Millisecond))
	// It stays stalled across the rebuilds (backoff 0.5 s): camsim answers
	// each new session of a stalled camera with one frame, and one frame is
	// not a stream. The page records every state the card shows.
	eval[bool](t, ctx, `(() => { window.cam2States = new Set();
		window.cam2Watch = setInterval(() => window.cam2States.add(`+cardState("cam2")+`), 50); return true; })()`)
	rebuilds0 := svc.metrics(t).mustValue(t, "rtsp_reconnects_total", "camera_id", "cam2", "reason", "stall")
	time.Sleep(2*consoleStall + time.Second)
	shown := eval[[]string](t, ctx, `(() => { clearInterval(window.cam2Watch); return [...window.cam2States]; })()`)
	rebuilt := svc.metrics(t).mustValue(t, "rtsp_reconnects_total", "camera_id", "cam2", "reason", "stall") - rebuilds0
	t.Logf("console: over %s of the stall, %v stall rebuilds, cam2's card showed %v", 2*consoleStall+time.Second, rebuilt, shown)
	assert.GreaterOrEqual(t, rebuilt, 1.0, "the stalled camera was rebuilt while watched")
	assert.Equal(t, []string{"stalled"}, shown, "cam2's card across its rebuilds while stalled")
	sim.Do(2, "resume")
	within(t, ctx, 30*time.Second, "cam2 streaming again", waitJS(cardState("cam2")+` === 'streaming'`))

	// cam2's page: the pipeline, the charts, the stall among its state
	// changes with its reason.
	within(t, ctx, 30*time.Second, "camera page",
		chromedp.Click(css(`#grid .card[data-camera="cam2"] a.open`)),
		chromedp.WaitVisible(css("#camera-view")),
		waitJS(`document.querySelector('#pipeline pre') !== null && document.querySelector('#pipeline').textContent.includes('rtspsrc')`),
		waitJS(`document.querySelector('#transitions').textContent.includes('stalled')`),
	)
	assert.Contains(t, text(t, ctx, "#pipeline"), "appsink")
	changes := text(t, ctx, "#transitions")
	assert.Contains(t, changes, "streaming")
	assert.Contains(t, changes, "no frame", "the stall's reason")
	assert.Equal(t, 3, eval[int](t, ctx, `document.querySelectorAll('#camera-view svg.chart').length`), "fps, latency and drops")
	// The history's first points come within two intervals.
	within(t, ctx, 20*time.Second, "a chart with points",
		waitJS(`document.querySelector('#camera-view svg.chart[data-series="fps"]').querySelectorAll('polyline, path, rect, circle').length > 0`))
	screenshot(t, ctx, "console-camera.png", 1280)

	// The add form shows the API's problems next to their fields.
	relayURL := relay + "/live1"
	within(t, ctx, 30*time.Second, "a refused entry",
		chromedp.Click(css("#nav-add")),
		chromedp.WaitVisible(css("#camera-form")),
		chromedp.SetValue(css(`#camera-form [name="id"]`), "relaycam"),
		chromedp.SetValue(css(`#camera-form [name="url"]`), relayURL),
		chromedp.SetValue(css(`#camera-form [name="codec"]`), "h264"),
		chromedp.SetValue(css(`#camera-form [name="fps"]`), "500"),
		chromedp.Click(css("#form-submit")),
		chromedp.WaitVisible(css(`#camera-form .problem[data-for="fps"]`)),
	)
	assert.Contains(t, text(t, ctx, `#camera-form .problem[data-for="fps"]`), "120", "the range is named next to fps")
	code, _ := svc.apiDo(t, http.MethodGet, "/api/v1/cameras/relaycam", e2eReadToken, nil)
	assert.Equal(t, http.StatusNotFound, code, "a refused entry adds nothing")

	// Fixed, it is added and streams; its card shows its picture.
	put := time.Now()
	within(t, ctx, 30*time.Second, "add the camera",
		chromedp.SetValue(css(`#camera-form [name="fps"]`), "10"),
		chromedp.Click(css("#form-submit")),
		waitJS(`location.hash === '#/camera/relaycam'`),
	)
	rc.WaitEntry("relaycam", put, 30*time.Second, "the camera added with the form")
	within(t, ctx, 60*time.Second, "the added camera's picture",
		chromedp.Click(css("#nav-grid")),
		waitJS(cardState("relaycam")+` === 'streaming'`),
		waitJS(`(() => { const i = document.querySelector('#grid .card[data-camera="relaycam"] img.snap'); return !!i && i.complete && i.naturalWidth > 0; })()`),
	)

	// Disable, then delete: the card goes.
	within(t, ctx, 30*time.Second, "disable",
		chromedp.Click(css(`#grid .card[data-camera="relaycam"] a.open`)),
		chromedp.WaitVisible(css("#btn-disable")),
		chromedp.Click(css("#btn-disable")),
		waitJS(`(() => { const b = document.querySelector('#camera-view .badge'); return !!b && b.dataset.state === 'disabled'; })()`),
	)
	svc.waitState(t, "relaycam", "disabled", 10*time.Second)
	within(t, ctx, 30*time.Second, "delete",
		chromedp.Click(css("#btn-delete")),
		chromedp.WaitVisible(css("#confirm-yes")),
		chromedp.Click(css("#confirm-yes")),
		waitJS(`location.hash === '#/' || location.hash === ''`),
		waitJS(`document.querySelectorAll('#grid .card').length === 4 && !document.querySelector('#grid .card[data-camera="relaycam"]')`),
	)
	code, _ = svc.apiDo(t, http.MethodGet, "/api/v1/cameras/relaycam", e2eReadToken, nil)
	assert.Equal(t, http.StatusNotFound, code, "deleted from the service")

	// Phone width: one column, nothing wider than the screen.
	within(t, ctx, 30*time.Second, "phone width",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(1)),
		chromedp.Sleep(500*time.Millisecond),
	)
	assert.LessOrEqual(t, eval[int](t, ctx, `document.documentElement.scrollWidth - window.innerWidth`), 0, "no horizontal scrolling at 390 px")
	assert.Equal(t, 1, eval[int](t, ctx,
		`new Set([...document.querySelectorAll('#grid .card')].map(c => Math.round(c.getBoundingClientRect().left))).size`),
		"cards stack in one column at phone width")
	screenshot(t, ctx, "console-phone.png", 390)
	within(t, ctx, 10*time.Second, "desktop again", chromedp.EmulateViewport(1280, 900))

	// Not a replica of a fleet: the fleet view says so.
	within(t, ctx, 20*time.Second, "fleet view",
		chromedp.Click(css("#nav-fleet")),
		chromedp.WaitVisible(css("#fleet-view")),
		waitJS(`document.querySelector('#fleet').textContent.includes('fleet.enabled')`),
	)
	assert.Contains(t, text(t, ctx, "#fleet"), "not part of a fleet")

	// A read token sees the cameras and no admin control.
	within(t, ctx, 10*time.Second, "sign out", chromedp.Click(css("#signout")), chromedp.WaitVisible(css("#token")))
	signIn(t, ctx, svc.HTTP, e2eReadToken)
	within(t, ctx, 30*time.Second, "read scope",
		waitJS(`document.body.dataset.scope === 'read'`),
		waitJS(`document.querySelectorAll('#grid .card').length === 4`),
	)
	assert.False(t, eval[bool](t, ctx, `document.querySelector('#nav-add').offsetParent !== null`), "no add for a read token")
	within(t, ctx, 30*time.Second, "read: camera page",
		chromedp.Click(css(`#grid .card[data-camera="cam1"] a.open`)),
		chromedp.WaitVisible(css("#camera-view")),
	)
	assert.False(t, eval[bool](t, ctx, `document.querySelector('#btn-restart').offsetParent !== null`), "no restart for a read token")
}

// TestConsoleFleet: two replicas of a fleet share nine cameras; the
// console of r1 lists both replicas with the cameras each owns (as the
// leases in Redis say), and each of r1's cards names its owner.
func TestConsoleFleet(t *testing.T) {
	r, p := flStart(t, 2)
	ctx := browser(t)
	r1 := r.reps["r1"]
	signIn(t, ctx, r1.HTTP, e2eAdminToken)
	mine := p.owned("r1")
	require.NotEmpty(t, mine, "r1 holds cameras")
	within(t, ctx, 30*time.Second, "r1's cards and their owner",
		waitJS(fmt.Sprintf(`document.querySelectorAll('#grid .card').length === %d`, len(mine))),
		waitJS(`[...document.querySelectorAll('#grid .card .owner')].every(o => o.offsetParent !== null && o.textContent.includes('r1'))`),
	)
	within(t, ctx, 30*time.Second, "fleet view",
		chromedp.Click(css("#nav-fleet")),
		chromedp.WaitVisible(css("#fleet-view")),
		waitJS(`document.querySelectorAll('#fleet .replica').length === 2`),
	)
	for _, id := range []string{"r1", "r2"} {
		links := eval[[]string](t, ctx, fmt.Sprintf(`[...document.querySelectorAll('#fleet .replica[data-replica=%q] a[href^="#/camera/"]')]
			.map(a => decodeURIComponent(a.getAttribute('href').slice('#/camera/'.length))).sort()`, id))
		assert.Equal(t, p.owned(id), links, "replica %s's row links the cameras its leases hold", id)
	}
	screenshot(t, ctx, "console-fleet.png", 1280)
}
