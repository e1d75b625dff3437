"""The client against the real thing: bin/camsim's two cameras, captured by
bin/gstcapture into a redis-server, read through FrameStream."""

import os
import signal
import subprocess
import time

import numpy as np
import pytest

import gstcapture_client as gc
from conftest import REPO, RedisServer, free_port

BIN = REPO / "bin"
W, H = 320, 240


def _binaries():
    missing = [str(BIN / b) for b in ("gstcapture", "camsim") if not (BIN / b).exists()]
    if missing:
        why = f"{', '.join(missing)} not built (make build)"
        if os.environ.get("GSTCAPTURE_INTEGRATION") == "1":
            pytest.fail(why)
        pytest.skip(why)


class Proc:
    """A process whose output goes to a file the test can read."""

    def __init__(self, name, args, workdir, env=None):
        self.name = name
        self.log = workdir / f"{name}.log"
        with open(self.log, "wb") as out:
            self.p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)

    def output(self):
        return self.log.read_text(errors="replace")

    def tail(self, n=3000):
        return f"--- {self.name} output (end) ---\n{self.output()[-n:]}"

    def stop(self, grace=10):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(grace)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    """redis-server, camsim (cam1, cam2, cam3: 320x240 h264 at 10 fps) and
    a gstcapture capturing them, cam3 with format JPEG; yields the Redis URL
    once every stream has frames."""
    _binaries()
    work = tmp_path_factory.mktemp("integration")
    srv = RedisServer(work)
    srv.start()
    procs = []
    try:
        rtsp = f"127.0.0.1:{free_port()}"
        sim = Proc("camsim", [str(BIN / "camsim"), "--listen", rtsp, "--cameras", "3",
                              "--size", f"{W}x{H}", "--fps", "10"], work)
        procs.append(sim)
        deadline = time.monotonic() + 60
        while "camsim ready" not in sim.output():  # as e2e/harness_camsim_test.go waits
            if sim.p.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"camsim did not become ready\n{sim.tail()}")
            time.sleep(0.05)

        config = work / "config.yaml"
        config.write_text(
            f"redis:\n  url: \"{srv.url}\"\nlog:\n  format: json\ncameras:\n"
            + "".join(f"  - id: cam{n}\n    url: rtsp://{rtsp}/cam{n}\n    codec: h264\n" for n in (1, 2))
            + f"  - id: cam3\n    url: rtsp://{rtsp}/cam3\n    codec: h264\n    format: JPEG\n"
            + "    validation: {black: {action: off}, uniform: {action: off}}\n")
        env = dict(os.environ, GSTCAPTURE_HTTP__LISTEN=f"127.0.0.1:{free_port()}")
        svc = Proc("gstcapture", [str(BIN / "gstcapture"), "run", "--config", str(config)], work, env)
        procs.append(svc)
        r = srv.client()
        deadline = time.monotonic() + 60
        while not (r.xlen("frames:cam1") and r.xlen("frames:cam2") and r.xlen("frames:cam3")):
            if svc.p.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no frames from gstcapture within 60 s\n{svc.tail()}\n{sim.tail(1000)}")
            time.sleep(0.1)
        yield srv.url, r
    finally:
        for p in reversed(procs):
            p.stop()
        srv.stop()


# camsim's SMPTE bars (they scroll horizontally), as e2e assertSMPTE checks
# them: along a row in the upper part every bar appears with each channel
# clearly high (> 150) or low (< 60), and the row is not black. Also here:
# the bars come in their order, cyclically, which a swap of B and R breaks
# (it maps the set of bars onto itself, yellow <-> cyan, red <-> blue).
BARS = {"white": (1, 1, 1), "yellow": (0, 1, 1), "cyan": (1, 1, 0), "green": (0, 1, 0),
        "magenta": (1, 0, 1), "red": (0, 0, 1), "blue": (1, 0, 0)}  # B, G, R high?
ORDER = list(BARS)


def assert_smpte(img, what):
    row = img[img.shape[0] // 4].astype(int)
    assert row.mean() > 40, f"{what}: row is too dark (mean {row.mean():.1f}): black picture?"
    high = row > 150
    clear = (high | (row < 60)).all(axis=1)
    names = [next((n for n, key in BARS.items() if tuple(h) == key), None) if c else None
             for h, c in zip(high.astype(int), clear)]
    assert set(names) - {None} == set(BARS), f"{what}: SMPTE bars missing: {sorted(set(BARS) - set(names))}"
    runs = []  # the bars along the row, each run of at least 3 pixels once
    for i, n in enumerate(names):
        if n and names[i:i + 3] == [n] * 3 and (not runs or runs[-1] != n):
            runs.append(n)
    for a, b in zip(runs, runs[1:]):
        assert b == ORDER[(ORDER.index(a) + 1) % len(ORDER)], f"{what}: bars out of order: {runs}"


def assert_camsim_frame(f):
    assert (f.format, f.width, f.height, f.stride, f.size_bytes) == ("BGR", W, H, 3 * W, 3 * W * H)
    img = f.image
    assert img.shape == (H, W, 3) and np.shares_memory(img, np.frombuffer(f.data, np.uint8))
    assert_smpte(img, f"{f.stream} {f.id}")
    assert f.ts_source in ("rtcp", "arrival") and f.traceparent.startswith("00-")
    assert f.instance and f.frame_id == f"{f.camera_id}-{f.instance}-{f.seq}"


def test_group_mode(capture):
    url, r = capture
    with gc.FrameStream(url, camera="cam1", group="it", consumer="c1", timeout=15) as frames:
        got = []
        for f in frames:
            assert_camsim_frame(f)
            f.ack()
            got.append(f)
            if len(got) == 5:
                break
    assert len(got) == 5, "fewer than 5 frames within 15 s"
    seqs = [f.seq for f in got]
    assert seqs == sorted(set(seqs)), f"seq not increasing: {seqs}"
    assert sum(f.lost_before for f in got[1:]) == seqs[-1] - seqs[0] - 4
    assert r.xpending("frames:cam1", "it")["pending"] == 0


def test_latest_mode(capture):
    url, r = capture
    with gc.FrameStream(url, camera="cam2", mode="latest", timeout=15) as frames:
        first = frames.read()
        assert first is not None
        time.sleep(0.5)  # about 5 frames at 10 fps: a backlog to skip
        newest = r.xrevrange("frames:cam2", count=1)[0][0].decode()
        second = frames.read()
        now = time.time_ns()
    assert second is not None
    for f in (first, second):
        assert_camsim_frame(f)
    assert second.seq > first.seq and second.lost_before >= 2, \
        f"seq {first.seq} then {second.seq}: the backlog was not skipped"
    ms = lambda eid: tuple(int(x) for x in eid.split("-"))  # noqa: E731
    assert ms(second.id) >= ms(newest), "latest mode returned an entry older than the newest"
    assert abs(now - second.ts) < 1e9, f"newest frame is {(now - second.ts) / 1e9:.2f} s old"


def test_jpeg_frames(capture):
    """cam3 publishes JPEG: the entry is a JPEG file, far smaller than BGR,
    and f.image decodes it (OpenCV or Pillow) to camsim's bars."""
    url, _ = capture
    with gc.FrameStream(url, camera="cam3", mode="latest", timeout=15) as frames:
        f = frames.read()
    assert f is not None
    assert (f.format, f.width, f.height, f.stride) == ("JPEG", W, H, 0)
    assert f.jpeg[:2] == b"\xff\xd8" and f.jpeg[-2:] == b"\xff\xd9" and len(f.jpeg) == f.size_bytes
    assert f.size_bytes < 3 * W * H / 10, f"a {W}x{H} JPEG of {f.size_bytes} bytes: not 10x smaller than BGR"
    try:
        img = f.image
    except gc.DecoderMissing:
        if os.environ.get("GSTCAPTURE_INTEGRATION") == "1":
            raise  # make python-test installs Pillow (scripts/deps.sh)
        pytest.skip("neither OpenCV nor Pillow to decode with")
    assert img.shape == (H, W, 3)
    assert_smpte(img, f"{f.stream} {f.id} (JPEG)")
