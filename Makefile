# gstcapture. Set-up on a fresh Debian 12 machine: `make demo` or `make test`.
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

# Packages with only Go code run under the race detector; the cgo ones too
# (it works with cgo), the end-to-end suite runs the built binaries.
UNIT_PKGS := ./internal/... ./pipelines/... ./cmd/... ./client/...

.PHONY: all deps build test unit e2e demo bench clean

all: build

deps:
	@scripts/deps.sh

build: deps bin/gst-plugins/libgstswsconvert.so
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/gstcapture ./cmd/gstcapture
	$(GO) build -o bin/camsim ./cmd/camsim

# gstcapture registers swsconvert itself; this plugin file of the same
# source lets gst-launch-1.0 run what `gstcapture render` prints
# (GST_PLUGIN_PATH=bin/gst-plugins), as the benchmark baseline does.
SWS_PKGS := gstreamer-video-1.0 libswscale libavutil
bin/gst-plugins/libgstswsconvert.so: internal/gsthost/swsconvert.c internal/gsthost/swsconvert.h | deps
	@mkdir -p $(@D)
	$(CC) -O2 -Wall -Werror -shared -fPIC -DSWSCONVERT_PLUGIN $< -o $@ $$(pkg-config --cflags --libs $(SWS_PKGS))

unit: deps
	$(GO) vet ./...
	GO=$(GO) scripts/gotest.sh -race -count=1 $(UNIT_PKGS)

# TestRaceCapture runs a real capture against this -race build and fails on
# any race report.
e2e: build bin/gstcapture-race
	GO=$(GO) scripts/gotest.sh -count=1 -timeout 30m ./e2e/

.PHONY: bin/gstcapture-race
bin/gstcapture-race: deps bin/gst-plugins/libgstswsconvert.so
	$(GO) build -race -ldflags "$(LDFLAGS)" -o $@ ./cmd/gstcapture

# The Jaeger binary the tracing e2e test needs takes ~10 min to build on a
# fresh machine: start that build (cached afterwards) alongside the unit tests.
test: build
	@(nice -n 19 scripts/jaeger.sh >/tmp/gstcapture-jaeger-build.log 2>&1 &)
	$(MAKE) unit
	$(MAKE) e2e
	$(MAKE) python-test
	$(MAKE) compose-test
	$(MAKE) soak DURATION=2m
	@if scripts/image-tools.sh --can; then $(MAKE) image-test; else echo "test: no buildah (not installable), image-test skipped"; fi

# The Python client (clients/python), installed into a venv that sees
# Debian's numpy and redis-py (Debian refuses pip into the system python),
# offline; its integration test runs bin/gstcapture and bin/camsim.
# /usr/bin/python3: a python3 earlier in PATH (pyenv) would not see them.
.PHONY: python-test
PYTHON3 ?= /usr/bin/python3
python-test: build
	@test -x bin/pyenv/bin/python || $(PYTHON3) -m venv --system-site-packages bin/pyenv
	bin/pyenv/bin/pip install -q --no-build-isolation --no-index --root-user-action=ignore ./clients/python
	GSTCAPTURE_INTEGRATION=1 bin/pyenv/bin/python -m pytest -q clients/python/tests

demo: build
	@scripts/demo.sh

clean:
	rm -rf bin

# Micro benchmarks (allocations per frame on the hot path), then the macro
# benchmark: gstcapture vs the gst-launch-1.0 baseline vs ffmpeg on the same
# camsim streams. Run on an otherwise idle machine; see docs/performance.md.
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./internal/ring/ ./internal/validate/ ./internal/publish/ ./internal/appsink/
	$(GO) test -run '^$$' -bench ServeCPU -benchtime 10x ./cmd/camsim/
	GSTCAPTURE_BENCH=1 GSTCAPTURE_BENCH_SECONDS=$(or $(BENCH_SECONDS),30) GSTCAPTURE_BENCH_OUT=$(CURDIR)/bench-results/macro.txt $(GO) test -count=1 -timeout 90m -run 'TestMacroBenchmark|TestConsoleViewersBenchmark' -v ./e2e/

# The GPU check kit (docs/gpu-kit.md): bin/gpu-kit/ and bin/gpu-kit.tar.gz,
# at most 60 MiB; cached, so a second run with no input changed does nothing.
.PHONY: gpu-kit
gpu-kit: build
	@scripts/gpu-kit.sh --no-build

# Container image (docker/Dockerfile): Docker when an engine answers, else
# buildah on locally made base images. IMAGE_TARGET=full for gst-libav.
.PHONY: image image-test compose-test
image:
	@scripts/image.sh --target $(or $(IMAGE_TARGET),slim)

image-test: build
	@scripts/image-test.sh

compose-test:
	cd docker/composecheck && $(GO) test -count=1 ./...
	cd deploy/kubernetes/check && $(GO) test -count=1 ./...

# Soak: 8 simulated cameras with faults on a 60 s cycle (stall, EOS,
# disconnect, Redis kill, camsim kill) for DURATION, then a summary (frames,
# drops by reason, reconnects, RSS/threads/fds trends) and exact accounting
# checks. `make soak DURATION=1h`; e2e/soak_test.go. Then REBUILDS (3000)
# pipeline rebuilds in-process, failing if RSS grows by 2 KB or more per
# rebuild after warm-up (internal/gsthost/rebuild_leak_test.go, ~3 min).
.PHONY: soak
DURATION     ?= 5m
SOAK_TIMEOUT ?= 6h
soak: build
	GSTCAPTURE_SOAK=$(DURATION) $(GO) test -count=1 -timeout $(SOAK_TIMEOUT) -run '^TestSoak$$' -v ./e2e/
	GSTCAPTURE_REBUILDS=$(or $(REBUILDS),3000) $(GO) test -count=1 -timeout 20m -run '^TestRebuildsDoNotLeak$$' -v ./internal/gsthost/
