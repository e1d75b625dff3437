package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"gstcapture/docs"
	"gstcapture/internal/capture"
	"gstcapture/internal/config"
	"gstcapture/internal/console"
	"gstcapture/internal/fleet"
	"gstcapture/internal/gsthost"
	"gstcapture/internal/health"
	"gstcapture/internal/liveconfig"
	"gstcapture/pipelines"
)

// loadConfig loads and validates FILE, printing every problem on failure.
func loadConfig(path string) (*config.Config, int) {
	if path == "" {
		fmt.Fprintln(os.Stderr, "gstcapture: --config FILE is required")
		return nil, 2
	}
	cfg, err := config.Load(path, os.Environ())
	if err != nil {
		var probs config.Problems
		if errors.As(err, &probs) {
			fmt.Fprintf(os.Stderr, "%s: %d problem(s):\n", path, len(probs))
			for _, p := range probs {
				fmt.Fprintf(os.Stderr, "  %s\n", p.String())
			}
		} else {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
		}
		return nil, 2
	}
	return cfg, 0
}

// flags is a subcommand's flag set. A parse error, -h included, is the
// command's exit status 2; the flag package has printed why.
type flags struct {
	*flag.FlagSet
	config *string // --config FILE, for the commands that read one
}

func newFlags(name string) *flags {
	return &flags{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError)}
}

// newConfigFlags is newFlags with --config FILE.
func newConfigFlags(name string) *flags {
	f := newFlags(name)
	f.config = f.String("config", "", "configuration file")
	return f
}

// parse parses args; a non-zero code is the command's exit status.
func (f *flags) parse(args []string) int {
	if err := f.Parse(args); err != nil {
		return 2
	}
	return 0
}

// load parses args, then loads and validates the --config file; a non-zero
// code is the command's exit status.
func (f *flags) load(args []string) (*config.Config, int) {
	if code := f.parse(args); code != 0 {
		return nil, code
	}
	return loadConfig(*f.config)
}

func cmdValidate(args []string) int {
	fs := newConfigFlags("validate")
	cfg, code := fs.load(args)
	if code != 0 {
		return code
	}
	fmt.Printf("%s: ok (%d cameras)\n", *fs.config, len(cfg.Cameras))
	return 0
}

func newLogger(level, format string, w io.Writer) *slog.Logger {
	return newLeveledLogger(levelVar(level), format, w)
}

// levelVar is log.level as a level a reload can change.
func levelVar(level string) *slog.LevelVar {
	v := &slog.LevelVar{}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		lvl = slog.LevelInfo
	}
	v.Set(lvl)
	return v
}

func newLeveledLogger(lvl *slog.LevelVar, format string, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func cmdRender(args []string) int {
	fs := newConfigFlags("render")
	camID := fs.String("camera", "", "only this camera; prints the bare launch string")
	sink := fs.String("sink", pipelines.SinkAppsink, "appsink, or fakesink for a baseline without gstcapture")
	cfg, code := fs.load(args)
	if code != 0 {
		return code
	}
	gsthost.Init(newLogger("error", "text", os.Stderr), nil)
	found := false
	for _, cam := range cfg.Cameras {
		if *camID != "" && cam.ID != *camID {
			continue
		}
		found = true
		// The printed line shows ${VAR} where the URL had one outside the
		// host (a token in the path or query): its value is a secret, and a
		// shell with the variable set expands it back.
		cam.Location = cam.LocationWithVars()
		plan, err := capture.PlanCamera(cam, gsthost.HasElement)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		// codec auto: the camera's SDP picks one of plan.Auto (h264, h265) at each connect.
		plans := []capture.Plan{plan}
		if len(plan.Auto) > 0 {
			plans = nil
			for _, codec := range slices.Sorted(maps.Keys(plan.Auto)) {
				plans = append(plans, plan.Auto[codec])
			}
			if *camID == "" {
				fmt.Printf("# camera %s: codec auto; each connect first reads the SDP with\n%s\n\n", cam.ID, plan.ProbeLaunch)
			}
		}
		for _, p := range plans {
			launch := p.Launch
			if *sink != pipelines.SinkAppsink {
				params := pipelines.ForCamera(p.Camera, p.Decoder, p.Encoder)
				params.Sink = *sink
				if launch, err = pipelines.Render(params); err != nil {
					fmt.Fprintf(os.Stderr, "camera %s: %v\n", cam.ID, err)
					return 1
				}
			}
			if *camID != "" {
				fmt.Println(launch)
				continue
			}
			encoder := ""
			if p.Encoder.Element != "" {
				encoder = ", encoder " + p.Encoder.Element
			}
			fmt.Printf("# camera %s: codec %s, decoder %s%s (credentials are set as user-id/user-pw at run time, never printed)\n%s\n\n", cam.ID, p.Camera.Codec, p.Decoder.Element, encoder, launch)
		}
	}
	if !found {
		fmt.Fprintf(os.Stderr, "%s: no camera with id %q\n", *fs.config, *camID)
		return 2
	}
	return 0
}

// probeReport is what `gstcapture probe` prints.
type probeReport struct {
	GStreamer string            `json:"gstreamer"`
	Decoders  map[string]bool   `json:"decoders"`
	Choice    map[string]string `json:"choice"`
	GPU       bool              `json:"gpu"`
}

func probe() probeReport {
	r := probeReport{GStreamer: gsthost.Version(), Decoders: map[string]bool{}, Choice: map[string]string{}}
	for _, codec := range []string{"h264", "h265"} {
		gpu, cpu := pipelines.Candidates(codec)
		for _, name := range append(append([]string{}, gpu...), cpu...) {
			r.Decoders[name] = gsthost.HasElement(name)
		}
		dec, err := pipelines.ChooseDecoder(codec, "auto", 1, gsthost.HasElement)
		if err != nil {
			r.Choice[codec] = "none: " + err.Error()
			continue
		}
		r.Choice[codec] = dec.Element
		r.GPU = r.GPU || dec.GPU
	}
	return r
}

func cmdProbe(args []string) int {
	fs := newFlags("probe")
	asJSON := fs.Bool("json", false, "print JSON")
	if code := fs.parse(args); code != 0 {
		return code
	}
	gsthost.Init(newLogger("error", "text", os.Stderr), nil)
	r := probe()
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r)
	} else {
		fmt.Println(r.GStreamer)
		for _, codec := range []string{"h264", "h265"} {
			gpu, cpu := pipelines.Candidates(codec)
			var have []string
			for _, name := range append(append([]string{}, gpu...), cpu...) {
				mark := "missing"
				if r.Decoders[name] {
					mark = "present"
				}
				have = append(have, name+" "+mark)
			}
			fmt.Printf("%s: %s -> using %s\n", codec, strings.Join(have, ", "), r.Choice[codec])
		}
	}
	for _, c := range r.Choice {
		if strings.HasPrefix(c, "none") {
			return 1
		}
	}
	return 0
}

func cmdHealthcheck(args []string) int {
	fs := newFlags("healthcheck")
	def := "http://127.0.0.1:8000/healthz"
	if l := os.Getenv("GSTCAPTURE_HTTP__LISTEN"); l != "" {
		def = "http://" + loopback(l) + "/healthz"
	}
	url := fs.String("url", def, "liveness URL")
	timeout := fs.Duration("timeout", 3*time.Second, "request timeout")
	if code := fs.parse(args); code != 0 {
		return code
	}
	client := &http.Client{Timeout: *timeout}
	resp, err := client.Get(*url)
	if err != nil {
		fmt.Fprintf(os.Stderr, "healthcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		fmt.Fprintf(os.Stderr, "healthcheck: %s: %s\n", resp.Status, strings.TrimSpace(string(body)))
		return 1
	}
	return 0
}

// loopback turns a listen address like ":8000" into one a client can dial.
func loopback(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func cmdRun(args []string) int {
	cfg, code := newConfigFlags("run").load(args)
	if code != 0 {
		return code
	}
	level := levelVar(cfg.Log.Level)
	log := newLeveledLogger(level, cfg.Log.Format, os.Stderr)
	// The secrets of every camera the service ever runs (a reload and the
	// camera API add some) are redacted from GStreamer's log as well.
	secrets := &config.SecretSet{}
	secrets.Add(cfg.Secrets()...)
	gsthost.Init(log, secrets.Redact)
	// go-redis prints a line on every failed dial while Redis is down; the
	// publisher already logs each up/down change once, so keep these at debug.
	redis.SetLogger(redisLogger{log})

	opts := capture.Options{Version: version, Hooks: faultHooks(cfg, log), Secrets: secrets}
	svcCfg := cfg
	var fl *fleet.Fleet
	if cfg.Fleet.Enabled {
		// A replica starts capturing nothing: the fleet hands the service
		// the cameras whose leases it takes.
		rc, err := capture.NewRedisClient(cfg.Redis, log)
		if err == nil {
			fl, err = fleet.New(cfg, rc, log, fleet.Options{Timeout: cfg.Redis.Timeout})
		}
		if err != nil {
			log.Error("cannot start", "error", secrets.Redact(err.Error()))
			return 1
		}
		c := *cfg
		c.Cameras = nil
		svcCfg = &c
		opts.Redis, opts.Fence = rc, fl
	}
	svc, err := capture.New(svcCfg, log, opts)
	if err != nil {
		log.Error("cannot start", "error", secrets.Redact(err.Error()))
		return 1
	}
	var cams liveconfig.Service = svc
	var fleetView health.FleetView
	var fleetReady interface{ Joined() bool }
	if fl != nil {
		fl.Attach(svc, svc.Metrics().Fleet())
		cams, fleetView, fleetReady = fl, fl, fl
	}
	setGoMemoryLimit(svc, cfg.Memory.Budget, log)

	var ctrl *liveconfig.Controller
	checker := health.NewChecker(svc, health.Options{MinReady: cfg.Health.MinReady, MaxFrozen: cfg.Health.MaxFrozen,
		Config: func() health.ConfigStatus { return ctrl.Status() }, Fleet: fleetReady})
	auth := httpAuth(cfg.HTTP.Auth, log)
	var stored func()
	var sync <-chan struct{}
	if fl != nil {
		stored, sync = fl.CamerasStored, fl.CamerasChanged()
	}
	ctrl = liveconfig.New(cfg, cams, svc.Redis(), log, liveconfig.Options{
		Stored:   stored,
		Sync:     sync,
		Environ:  os.Environ,
		Reloaded: svc.Metrics().Reloaded,
		Live: func(c *config.Config) {
			level.Set(levelVar(c.Log.Level).Level())
			checker.SetThresholds(c.Health.MinReady, c.Health.MaxFrozen)
			svc.SetShutdownTimeout(c.Shutdown.Timeout)
			secrets.Add(c.Secrets()...)
			if auth != nil {
				auth.SetTokens(tokenScopes(c.HTTP.Auth.Tokens))
			}
		},
	})
	handler := health.NewServer(svc, checker, health.ServerOptions{
		Metrics: promhttp.HandlerFor(svc.Metrics().Registry(), promhttp.HandlerOpts{}),
		OpenAPI: docs.OpenAPI,
		Auth:    auth,
		Cameras: ctrl,
		Fleet:   fleetView,
		Pages:   svc,
		Console: console.Handler(),
	})
	svc.Registry().OnRemove(handler.ForgetCamera)
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		log.Error("http.listen: cannot listen", "addr", cfg.HTTP.Listen, "error", err)
		return 1
	}
	// The API's cameras start with the file's when Redis answers now;
	// otherwise Start keeps trying while the file's run.
	loadCtx, cancelLoad := context.WithTimeout(context.Background(), cfg.Redis.Timeout)
	_ = ctrl.LoadAPI(loadCtx)
	cancelLoad()

	srv := newHTTPServer(handler)
	go func() { _ = srv.Serve(health.LimitListener(ln, maxHTTPConns)) }()
	log.Info("gstcapture started", "version", version, "http", ln.Addr().String(), "cameras", len(svc.Cameras()),
		"gstreamer", gsthost.Version(), "trace_export", svc.Tracer().Exporting())

	ctx, stop := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		log.Info("signal received, stopping (a second signal exits at once)", "signal", s.String())
		stop()
		s = <-sigs
		log.Warn("second signal, exiting immediately", "signal", s.String())
		os.Exit(1)
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				ctrl.Reload("SIGHUP")
			}
		}
	}()
	ctrl.Start(ctx)
	fleetDone := make(chan struct{})
	if fl != nil {
		go func() { defer close(fleetDone); fl.Run(ctx) }()
	} else {
		close(fleetDone)
	}

	svc.Run(ctx)
	<-fleetDone
	if fl != nil {
		// After the flush: the frames still queued were written under the
		// leases, and the others take the cameras over now.
		relCtx, cancelRel := context.WithTimeout(context.Background(), cfg.Redis.Timeout)
		fl.Release(relCtx)
		cancelRel()
		_ = opts.Redis.Close()
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	log.Info("gstcapture stopped")
	return 0
}

// wedgeTeardownEnv names a TEST-ONLY fault: GSTCAPTURE_FAULT_WEDGE_TEARDOWN=<camera_id>
// makes every teardown of that camera's pipeline block forever before the
// pipeline is set to NULL, as a wedged element would. The supervisor then
// abandons the pipeline at its teardown deadline (5 s), counts it as frozen
// (frozen_pipelines in /health, rtsp_frozen_pipelines_total) and rebuilds
// it; past health.max_frozen, /healthz fails. Used by
// e2e/process_test.go; no deployment sets it. The variable is not a
// configuration key (its first word is no config section), so config
// loading leaves it alone.
const wedgeTeardownEnv = "GSTCAPTURE_FAULT_WEDGE_TEARDOWN"

// faultHooks returns the supervisor hooks of the test-only faults enabled
// in the environment (none in production).
func faultHooks(cfg *config.Config, log *slog.Logger) gsthost.Hooks {
	id := os.Getenv(wedgeTeardownEnv)
	if id == "" {
		return gsthost.Hooks{}
	}
	known := false
	for _, c := range cfg.Cameras {
		known = known || c.ID == id
	}
	if !known {
		log.Error("test fault names no configured camera: nothing will be wedged", "env", wedgeTeardownEnv, "camera_id", id)
	}
	log.Warn("TEST FAULT INJECTION: every pipeline teardown of this camera blocks forever", "env", wedgeTeardownEnv, "camera_id", id)
	wedged := make(chan struct{}) // never closed
	return gsthost.Hooks{BeforeTeardown: func(cameraID string) {
		if cameraID == id {
			<-wedged
		}
	}}
}

type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}

// HTTP server limits: a client that trickles its request, never reads the
// answer or opens connection after connection must not hold the process's
// memory or descriptors.
const (
	maxHTTPConns  = 256
	maxHeaderSize = 16 << 10
)

func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		// Long enough for a snapshot that waits for a fresh frame (2 s)
		// and a slow /metrics scrape of many cameras.
		WriteTimeout:   30 * time.Second,
		IdleTimeout:    60 * time.Second,
		MaxHeaderBytes: maxHeaderSize,
	}
}

// httpAuth builds the API's token check from http.auth and says at start
// what it lets in. Tokens are never logged.
func httpAuth(a config.Auth, log *slog.Logger) *health.Auth {
	if a.Mode == config.AuthNone {
		log.Warn("http.auth.mode none: anyone who reaches http.listen can read /health, the camera API and snapshots")
		return nil
	}
	auth := health.NewAuth(tokenScopes(a.Tokens), a.Metrics == config.ScopeRead)
	if auth.Tokens() == 0 {
		log.Warn("http.auth: no API tokens configured, so /health, /api/v1 and snapshots answer 401; " +
			"write lines \"<scope> <token>\" (scope read or admin, e.g. read $(openssl rand -hex 16)) to a file " +
			"and set http.auth.tokens_file (GSTCAPTURE_HTTP__AUTH__TOKENS_FILE). /healthz, /readyz, /metrics and /openapi.yaml stay open")
	} else {
		log.Info("http.auth: bearer tokens required", "tokens", auth.Tokens(), "metrics", a.Metrics)
	}
	return auth
}

// tokenScopes maps each API token to its scope, as health.NewAuth takes them.
func tokenScopes(list []config.Token) map[string]string {
	tokens := make(map[string]string, len(list))
	for _, t := range list {
		tokens[t.Value] = t.Scope
	}
	return tokens
}

// setGoMemoryLimit gives the Go heap its share of memory.budget as its soft
// limit (GOMEMLIMIT), unless the environment already sets one, and logs how
// the budget is shared out.
func setGoMemoryLimit(svc *capture.Service, cfgBudget int64, log *slog.Logger) {
	m := svc.Memory()
	if m.BudgetBytes == 0 {
		why := "memory.budget auto and no container memory limit"
		if cfgBudget == config.BudgetNone {
			why = "memory.budget none"
		}
		log.Info("memory budget: none (" + why + "): each camera's ring holds ring_size frames")
		return
	}
	goLimit := svc.GoMemoryLimit()
	if env := os.Getenv("GOMEMLIMIT"); env != "" {
		log.Info("memory budget: GOMEMLIMIT is set in the environment and is left as it is", "gomemlimit", env)
	} else {
		debug.SetMemoryLimit(goLimit)
	}
	log.Info("memory budget", "budget_bytes", m.BudgetBytes, "source", m.Source,
		"go_limit_bytes", svc.Memory().GoLimitBytes, "per_camera_bytes", m.PerCameraBytes)
}
