"""Test fixtures: a real redis-server on a free port, and a writer of
entries in gstcapture's exact field order (internal/publish/schema.go)."""

import os
import pathlib
import shutil
import socket
import subprocess
import time

import numpy as np
import pytest
import redis

REPO = pathlib.Path(__file__).resolve().parents[3]

# internal/publish/schema.go's Field* constants, in the order the Encoder
# writes them; test_writer_matches_go_schema checks this against the Go file.
FIELDS = ("v", "frame_id", "camera_id", "seq", "ts", "ts_source", "pts", "width", "height",
          "format", "stride", "size_bytes", "data", "traceparent", "tracestate", "flags",
          "owner", "epoch", "shm_segment", "shm_slot", "shm_gen")

INSTANCE = "t4k2qo.9f3c2a1b"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server without persistence; restart() brings it back on the
    same port, empty (as a Redis restarted without its data)."""

    def __init__(self, workdir):
        self.binary = os.environ.get("GSTCAPTURE_REDIS_SERVER") or shutil.which("redis-server")
        if not self.binary:
            pytest.fail("redis-server not found: install it (scripts/deps.sh) or set GSTCAPTURE_REDIS_SERVER")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = workdir
        self.proc = None
        self.log = workdir / "redis.log"

    def start(self):
        # A port the killed server left can refuse the bind for a moment.
        for _ in range(50):
            self.proc = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.dir), "--logfile", str(self.log)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    redis.Redis(port=self.port, socket_timeout=1).ping()
                    return
                except redis.ConnectionError:
                    time.sleep(0.01)
            self.stop()
            time.sleep(0.1)
        pytest.fail(f"redis-server on port {self.port} did not start: {self.log.read_text()[-2000:]}")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def restart(self):
        self.stop()
        self.start()

    def client(self):
        return redis.Redis(port=self.port, socket_timeout=5)


@pytest.fixture
def redis_server(tmp_path):
    srv = RedisServer(tmp_path)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def r(redis_server):
    return redis_server.client()


def xadd_frame(r, key, *, camera="cam1", seq=1, instance=INSTANCE, ts=None, ts_source="arrival",
               pts=-1, fmt="BGR", width=4, height=2, stride=None, data=None, traceparent=None,
               tracestate=None, flags=None, owner=None, epoch=None, v="1", shm=None, extra=()):
    """XADDs one entry the way gstcapture does, fields in schema.go's order.
    Without data, a test pattern (pixels()) of fmt/width/height/stride.
    shm=(segment, slot, gen): delivery shm, the entry without data (which
    gives size_bytes) and with shm_segment, shm_slot and shm_gen."""
    if stride is None:
        stride = default_stride(fmt, width)
    if data is None:
        data = pixels(fmt, width, height, stride)[0]
    if ts is None:
        ts = time.time_ns()
    if traceparent is None:
        traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    values = {
        "v": v, "frame_id": f"{camera}-{instance}-{seq}", "camera_id": camera, "seq": seq,
        "ts": ts, "ts_source": ts_source, "pts": pts, "width": width, "height": height,
        "format": fmt, "stride": stride, "size_bytes": len(data), "data": data,
        "traceparent": traceparent, "tracestate": tracestate, "flags": flags,
        "owner": owner, "epoch": epoch,
    }
    if shm is not None:
        del values["data"]
        values.update(zip(("shm_segment", "shm_slot", "shm_gen"), shm))
    fields = {k: v for k, v in values.items() if v is not None}
    assert tuple(k for k in FIELDS if k in fields) == tuple(fields), "writer out of schema order"
    fields.update(extra)
    return r.xadd(key, fields).decode()


def round4(n):
    return (n + 3) & ~3


def default_stride(fmt, width):
    """GStreamer's first-plane stride (internal/frame.Layout)."""
    return round4(3 * width if fmt in ("BGR", "RGB") else width)


def pixels(fmt, width, height, stride):
    """A buffer of fmt laid out as docs/redis-schema.md says, with distinct
    pixel values and padding bytes of 0xEE, and the planes it should read
    as, built independently of the client (copied out row by row)."""
    rng = np.random.default_rng(width * 1000 + height)
    cw, ch = (width + 1) // 2, (height + 1) // 2
    if fmt in ("BGR", "RGB", "GRAY8"):
        depth = 1 if fmt == "GRAY8" else 3
        planes = [(rng.integers(0, 200, (height, width * depth), dtype=np.uint8), stride)]
    elif fmt == "I420":
        cs = round4(cw)
        planes = [(rng.integers(0, 200, (height, width), dtype=np.uint8), stride),
                  (rng.integers(0, 200, (ch, cw), dtype=np.uint8), cs),
                  (rng.integers(0, 200, (ch, cw), dtype=np.uint8), cs)]
    elif fmt == "NV12":
        planes = [(rng.integers(0, 200, (height, width), dtype=np.uint8), stride),
                  (rng.integers(0, 200, (ch, 2 * cw), dtype=np.uint8), stride)]
    else:
        raise ValueError(fmt)
    buf = bytearray()
    for rows, row_stride in planes:
        for row in rows:
            buf += row.tobytes() + b"\xee" * (row_stride - len(row))
    want = []
    for i, (rows, _) in enumerate(planes):
        if fmt in ("BGR", "RGB"):
            rows = rows.reshape(height, width, 3)
        elif fmt == "NV12" and i == 1:
            rows = rows.reshape(ch, cw, 2)
        want.append(rows)
    return bytes(buf), want
