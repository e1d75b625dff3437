"""The client against the real thing: bin/camsim's two cameras, captured by
bin/gstcapture into a redis-server, read through FrameStream."""

import contextlib
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import time

import numpy as np
import pytest

import gstcapture_client as gc
from conftest import REPO, RedisServer, free_port

BIN = REPO / "bin"
W, H = 320, 240
SHM_SLOTS = 4


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


@contextlib.contextmanager
def _capture(work, env=()):
    """redis-server, camsim (cam1, cam2, cam3: 320x240 h264 at 10 fps) and a
    gstcapture capturing them, cam3 with format JPEG, its environment
    overlaid with env; yields the Redis URL and a client once cam1's and
    cam2's streams have frames."""
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
        env = dict(os.environ, GSTCAPTURE_HTTP__LISTEN=f"127.0.0.1:{free_port()}", **dict(env))
        svc = Proc("gstcapture", [str(BIN / "gstcapture"), "run", "--config", str(config)], work, env)
        procs.append(svc)
        r = srv.client()
        deadline = time.monotonic() + 60
        while not (r.xlen("frames:cam1") and r.xlen("frames:cam2")):
            if svc.p.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no frames from gstcapture within 60 s\n{svc.tail()}\n{sim.tail(1000)}")
            time.sleep(0.1)
        yield srv.url, r
    finally:
        for p in reversed(procs):
            p.stop()
        srv.stop()


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    _binaries()
    with _capture(tmp_path_factory.mktemp("integration")) as c:
        yield c


@pytest.fixture(scope="module")
def shm_capture(tmp_path_factory):
    """As capture, with delivery shm into a directory of its own under
    /dev/shm and rings of 4 slots; yields the URL, a client and the
    directory."""
    _binaries()
    shm_dir = tempfile.mkdtemp(prefix="gstcapture-pytest-", dir="/dev/shm")
    try:
        with _capture(tmp_path_factory.mktemp("integration-shm"),
                      {"GSTCAPTURE_DEFAULTS__DELIVERY": "shm", "GSTCAPTURE_SHM__DIR": shm_dir,
                       "GSTCAPTURE_DEFAULTS__SHM_SLOTS": str(SHM_SLOTS)}) as (url, r):
            yield url, r, shm_dir
    finally:
        shutil.rmtree(shm_dir, ignore_errors=True)


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


# Delivery shm: the same frames, their pixels in the segment's slots.

def in_file_mapping(a, path):
    """Whether array a's memory lies in this process's mapping of path."""
    addr = a.__array_interface__["data"][0]
    with open("/proc/self/maps") as maps:
        for line in maps:
            cols = line.split()
            if len(cols) >= 6 and cols[5] == path:
                lo, hi = (int(x, 16) for x in cols[0].split("-"))
                if lo <= addr < hi:
                    return True
    return False


def assert_shm_frame(f, shm_dir):
    assert b"data" not in f.fields and f.shm_segment.startswith(f"gstcapture.{f.camera_id}.{f.instance}.")
    assert 0 <= f.shm_slot < SHM_SLOTS and f.shm_gen >= 2 and f.shm_gen % 2 == 0
    assert f.shm_segment in os.listdir(shm_dir)
    assert_camsim_frame(f)
    f.check()  # used within a few ms: not lapped


@pytest.mark.parametrize("copy", [False, True], ids=["view", "copy"])
def test_shm_group_mode(shm_capture, copy):
    url, r, shm_dir = shm_capture
    with gc.FrameStream(url, camera="cam1", group=f"it-{copy}", consumer="c1", timeout=15,
                        shm_dir=shm_dir, shm_copy=copy) as frames:
        got = []
        for f in frames:
            assert_shm_frame(f, shm_dir)
            assert in_file_mapping(f.image, os.path.join(shm_dir, f.shm_segment)) is not copy
            f.ack()
            got.append(f)
            if len(got) == 5:
                break
    assert len(got) == 5, "fewer than 5 frames within 15 s"
    seqs = [f.seq for f in got]
    assert seqs == sorted(set(seqs)), f"seq not increasing: {seqs}"
    assert sum(f.lost_before for f in got[1:]) == seqs[-1] - seqs[0] - 4
    assert r.xpending("frames:cam1", f"it-{copy}")["pending"] == 0


def test_shm_latest_mode(shm_capture):
    url, r, shm_dir = shm_capture
    with gc.FrameStream(url, camera="cam2", mode="latest", timeout=15, shm_dir=shm_dir) as frames:
        first = frames.read()
        assert first is not None
        assert_shm_frame(first, shm_dir)
        time.sleep(0.5)  # about 5 frames: a backlog to skip, first's slot lapped
        with pytest.raises(gc.SlotLapped):
            first.check()
        second = frames.read()
        assert second is not None
        assert_shm_frame(second, shm_dir)
    assert second.seq > first.seq and second.lost_before >= 2
    assert frames.lapped == 0


def _seq(entry):
    return int(entry[1][b"seq"])


def _before(eid):
    """The entry id just below eid: a group created there reads eid first."""
    ms, n = (int(x) for x in eid.split("-"))
    return f"{ms}-{n - 1}" if n else f"{ms - 1}-{2 ** 64 - 1}"


def test_shm_lapped_entry_skipped(shm_capture):
    """The stream holds more entries than the ring has slots (MAXLEN ~
    trims whole nodes), so its oldest name slots written again since: read
    from there, the client skips and acks them, counting them in lapped,
    and returns the first frame whose slot still holds it."""
    url, r, shm_dir = shm_capture
    key = "frames:cam1"
    for attempt in range(5):  # again if a trim took the oldest entry just before the read
        deadline = time.monotonic() + 30
        while True:
            oldest, newest = r.xrange(key, count=1)[0], r.xrevrange(key, count=1)[0]
            if _seq(newest) - _seq(oldest) > SHM_SLOTS:
                break
            assert time.monotonic() < deadline, f"no entry {SHM_SLOTS} frames older than the newest"
            time.sleep(0.05)
        eid = oldest[0].decode()
        group = f"lap{attempt}"
        with gc.FrameStream(url, camera="cam1", group=group, consumer="c1", start=_before(eid),
                            timeout=10, shm_dir=shm_dir) as frames:
            f = frames.read()
        if frames.lapped:
            break
    assert frames.lapped >= 1, "the oldest entries were trimmed before every read"
    assert f is not None and f.id != eid, f"lapped entry {eid} returned"
    assert f.seq > _seq(newest) - SHM_SLOTS, \
        f"seq {f.seq} returned, but {_seq(newest)} had been written: its slot was lapped"
    assert f.seq - _seq(oldest) >= frames.lapped and f.lost_before == 0
    assert_shm_frame(f, shm_dir)
    pend = r.xpending_range(key, group, "-", "+", 100)
    assert [p["message_id"].decode() for p in pend] == [f.id], "lapped entries not acked"


def test_shm_segment_as_documented(shm_capture):
    """gstcapture's segment file against docs/redis-schema.md's layout
    table, read here with struct, not through the client."""
    url, r, shm_dir = shm_capture
    with gc.FrameStream(url, camera="cam1", mode="latest", timeout=15, shm_dir=shm_dir) as frames:
        f = frames.read()
        assert f is not None
        with open(os.path.join(shm_dir, f.shm_segment), "rb") as seg:
            raw = seg.read()
    n = int(f.shm_segment.rsplit(".", 1)[1])
    assert f.shm_segment == f"gstcapture.cam1.{f.instance}.{n}"
    magic, version, slots, slot_bytes, data_offset, w, h, stride, frame_bytes = \
        struct.unpack_from("<8sIIQQIIII", raw, 0)
    text = lambda off, size: raw[off:off + size].rstrip(b"\0").decode()  # noqa: E731
    assert (magic, version, slots) == (b"GSTCSHM1", 1, SHM_SLOTS)
    assert slot_bytes == (3 * W * H + 4095) // 4096 * 4096 and data_offset % 4096 == 0
    assert data_offset >= 256 + 64 * slots and len(raw) == data_offset + slots * slot_bytes
    assert (w, h, stride, frame_bytes) == (W, H, 3 * W, 3 * W * H)
    assert (text(48, 16), text(64, 64), text(128, 32)) == ("BGR", "cam1", f.instance)
    assert struct.unpack_from("<Q", raw, 160)[0] == n
    gen, seq, size = struct.unpack_from("<QQQ", raw, 256 + 64 * f.shm_slot)
    off = data_offset + slot_bytes * f.shm_slot
    same = (gen, seq, size) == (f.shm_gen, f.seq, f.size_bytes) and raw[off:off + size] == bytes(f.data)
    try:
        f.check()
    except gc.SlotLapped:
        return  # written again since it was read: file and view may differ
    assert same, f"slot {f.shm_slot} of {f.shm_segment}: header ({gen}, {seq}, {size}) or pixels differ"


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
