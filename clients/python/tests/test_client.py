"""gstcapture_client against a real redis-server, with entries written in
gstcapture's schema by conftest.xadd_frame."""

import re
import threading
import time

import numpy as np
import pytest
import redis

import gstcapture_client as gc
from gstcapture_client import trace
from conftest import FIELDS, INSTANCE, REPO, default_stride, pixels, xadd_frame

KEY = "frames:cam1"


def pending(r, key=KEY, group="g"):
    return r.xpending(key, group)["pending"]


def read_all(stream, timeout=0.2):
    out = []
    while (f := stream.read(timeout)) is not None:
        out.append(f)
    return out


def test_writer_matches_go_schema():
    src = REPO / "internal" / "publish" / "schema.go"
    if not src.exists():
        pytest.skip(f"{src} not here: the tests run outside the gstcapture repository")
    block = re.search(r"const \(\n\s*FieldVersion.*?\n\)", src.read_text(), re.S).group(0)
    assert tuple(re.findall(r'^\s*Field\w+\s*=\s*"(\w+)"', block, re.M)) == FIELDS


# Sizes with row padding: BGR 5 px = 15 bytes in 16, GRAY8 5 in 8; explicit
# strides wider than GStreamer's for the packed formats; odd I420/NV12 sizes
# (docs/redis-schema.md's 641x361 example) whose chroma rows are padded too.
LAYOUTS = [
    ("BGR", 5, 3, None), ("BGR", 4, 2, 24), ("RGB", 7, 2, None), ("RGB", 3, 3, 20),
    ("GRAY8", 5, 3, None), ("GRAY8", 6, 4, 16),
    ("I420", 641, 361, None), ("I420", 6, 4, None), ("I420", 5, 3, 12),
    ("NV12", 5, 3, None), ("NV12", 641, 361, None), ("NV12", 8, 2, 16),
]


@pytest.mark.parametrize("fmt,w,h,stride", LAYOUTS)
def test_layouts_are_views(r, fmt, w, h, stride):
    stride = stride or default_stride(fmt, w)
    data, want = pixels(fmt, w, h, stride)
    if (fmt, w, h) == ("I420", 641, 361):
        # internal/frame's test case (the schema doc's example prints 349 768)
        assert (stride, len(data)) == (644, 644 * 361 + 2 * 324 * 181)
    eid = xadd_frame(r, KEY, fmt=fmt, width=w, height=h, stride=stride, data=data)
    with gc.FrameStream(r, camera="cam1", mode="latest") as frames:
        f = frames.read(2)
    assert f is not None and f.id == eid and (f.format, f.width, f.height, f.stride) == (fmt, w, h, stride)
    raw = np.frombuffer(f.data, np.uint8)
    assert len(f.planes) == len(want)
    for got, exp in zip(f.planes, want):
        assert got.shape == exp.shape
        np.testing.assert_array_equal(got, exp)
        assert np.shares_memory(got, raw), "plane was copied"
        assert not got.flags.writeable
    image = f.image
    if fmt in ("BGR", "RGB"):
        assert image.shape == (h, w, 3) and image.strides == (stride, 3, 1)
    elif fmt == "GRAY8":
        assert image.shape == (h, w) and image.strides == (stride, 1)
    else:
        assert isinstance(image, tuple) and len(image) == (3 if fmt == "I420" else 2)
        assert image[0].strides == (stride, 1)
        if fmt == "NV12":
            assert image[1].shape == ((h + 1) // 2, (w + 1) // 2, 2) and image[1].strides == (stride, 2, 1)


def test_metadata(r):
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    xadd_frame(r, "frames:cam-1-a", camera="cam-1-a", seq=42, ts=1_700_000_000_123_456_789,
               ts_source="rtcp", pts=33_000_000, traceparent=tp, tracestate="vendor=x",
               flags="black,corrupt", owner="gstcapture-7d9f", epoch=3)
    with gc.FrameStream(r, camera="cam-1-a") as frames:
        f = frames.read(2)
    assert (f.stream, f.camera_id, f.instance, f.seq) == ("frames:cam-1-a", "cam-1-a", INSTANCE, 42)
    assert f.frame_id == f"cam-1-a-{INSTANCE}-42"
    assert (f.ts, f.ts_source, f.pts, f.version) == (1_700_000_000_123_456_789, "rtcp", 33_000_000, "1")
    assert f.time == pytest.approx(1_700_000_000.123456789)
    assert (f.flags, f.owner, f.epoch) == (["black", "corrupt"], "gstcapture-7d9f", 3)
    assert (f.traceparent, f.tracestate) == (tp, "vendor=x")
    assert f.trace_carrier == {"traceparent": tp, "tracestate": "vendor=x"}
    assert (f.lost_before, f.redelivered) == (0, False)


def test_optional_fields_absent(r):
    xadd_frame(r, KEY)
    with gc.FrameStream(r, camera="cam1") as frames:
        f = frames.read(2)
    assert (f.flags, f.owner, f.epoch, f.tracestate) == ([], None, None, None)


def test_trace_context(r):
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    xadd_frame(r, KEY, traceparent=tp)
    with gc.FrameStream(r, camera="cam1") as frames:
        f = frames.read(2)
    if not trace.AVAILABLE:
        with pytest.raises(ImportError, match="opentelemetry"):
            f.trace_context()
        return
    from opentelemetry import trace as ot
    span = ot.get_current_span(f.trace_context()).get_span_context()
    assert (format(span.trace_id, "032x"), format(span.span_id, "016x")) == (tp[3:35], tp[36:52])


def test_seq_gaps(r):
    for seq, inst in [(1, "a.1"), (2, "a.1"), (5, "a.1"), (6, "a.1"), (1, "b.2"), (3, "b.2"), (2, "b.2")]:
        xadd_frame(r, KEY, seq=seq, instance=inst)
    with gc.FrameStream(r, camera="cam1", group="g", start="0") as frames:
        got = [(f.instance, f.seq, f.lost_before) for f in read_all(frames)]
    # A new instance (gstcapture restarted) starts again: no gap. A seq
    # below the last (not written by gstcapture) is no gap either.
    assert got == [("a.1", 1, 0), ("a.1", 2, 0), ("a.1", 5, 2), ("a.1", 6, 0),
                   ("b.2", 1, 0), ("b.2", 3, 1), ("b.2", 2, 0)]


def test_stale_epoch_dropped_and_acked(r):
    xadd_frame(r, KEY, seq=10, instance="old.1", owner="A", epoch=2)
    xadd_frame(r, KEY, seq=1, instance="new.2", owner="B", epoch=3)
    xadd_frame(r, KEY, seq=11, instance="old.1", owner="A", epoch=2)  # the old owner, late
    xadd_frame(r, KEY, seq=2, instance="new.2", owner="B", epoch=3)
    xadd_frame(r, KEY, seq=3, instance="new.2")  # no epoch (outside a fleet): never stale
    with gc.FrameStream(r, camera="cam1", group="g", start="0") as frames:
        got = read_all(frames)
        assert [(f.owner, f.seq) for f in got] == [("A", 10), ("B", 1), ("B", 2), (None, 3)]
        assert frames.stale_dropped == 1
        assert pending(r) == 4  # the stale one was acked by the client
        for f in got:
            f.ack()
        assert pending(r) == 0


def test_stale_epoch_latest_mode(r):
    xadd_frame(r, KEY, seq=1, epoch=5)
    with gc.FrameStream(r, camera="cam1") as frames:
        assert frames.read(2).epoch == 5
        xadd_frame(r, KEY, seq=2, epoch=4)
        assert frames.read(0.2) is None
        assert frames.stale_dropped == 1


def test_bad_version(r):
    ids = [xadd_frame(r, KEY, seq=1), xadd_frame(r, KEY, seq=2, v="2"),
           xadd_frame(r, KEY, seq=3, v="1.1"),  # a minor version: same major, readable
           r.xadd(KEY, {"frame_id": "x", "data": b""}).decode()]  # no version at all
    with gc.FrameStream(r, camera="cam1", group="g", start="0") as frames:
        assert frames.read(2).seq == 1
        with pytest.raises(gc.SchemaVersionError) as e:
            frames.read(2)
        msg = str(e.value)
        assert KEY in msg and ids[1] in msg and "'2'" in msg, msg
        assert (e.value.stream, e.value.entry_id, e.value.version) == (KEY, ids[1], "2")
        assert frames.read(2).seq == 3  # reading goes on after the error
        with pytest.raises(gc.SchemaVersionError, match=f"{ids[3]}: schema version None"):
            frames.read(2)
        assert frames.invalid == 2
        # Acked by the client (nobody would read them any better later);
        # the good ones wait for their ack.
        assert [p["message_id"].decode() for p in r.xpending_range(KEY, "g", "-", "+", 10)] == [ids[0], ids[2]]


def test_malformed_entry(r):
    eid = xadd_frame(r, KEY, extra={"seq": "twelve"})
    with gc.FrameStream(r, camera="cam1") as frames:
        with pytest.raises(gc.EntryError, match=f"{eid}.*'seq' is not an integer"):
            frames.read(2)


def test_layout_mismatch_is_raised_on_access(r):
    eid = xadd_frame(r, KEY, fmt="BGR", width=4, height=2, data=b"\x01" * 10, flags="size")
    with gc.FrameStream(r, camera="cam1") as frames:
        f = frames.read(2)
    assert f.flags == ["size"] and f.data == b"\x01" * 10
    with pytest.raises(gc.LayoutError, match=f"{eid}: BGR 4x2 stride 12: layout needs 24 bytes, entry has 10"):
        f.image


def _jpeg_decoder():
    for name in ("cv2", "PIL"):
        try:
            __import__(name)
            return name
        except ImportError:
            pass
    return None


def _red_jpeg(w, h):
    """A w x h red JPEG made with what is importable; None without either."""
    decoder = _jpeg_decoder()
    if decoder == "PIL":
        import io
        from PIL import Image
        buf = io.BytesIO()
        Image.new("RGB", (w, h), (255, 0, 0)).save(buf, "JPEG")
        return buf.getvalue()
    if decoder == "cv2":
        import cv2
        return cv2.imencode(".jpg", np.full((h, w, 3), (0, 0, 255), np.uint8))[1].tobytes()
    return None


def test_jpeg(r):
    data = _red_jpeg(8, 4) or b"\xff\xd8\xff\xe0 not really a picture \xff\xd9"
    xadd_frame(r, KEY, fmt="JPEG", width=8, height=4, stride=0, data=data)
    with gc.FrameStream(r, camera="cam1") as frames:
        f = frames.read(2)
    assert f.jpeg == data
    if _jpeg_decoder() is None:
        with pytest.raises(gc.DecoderMissing, match="OpenCV.*Pillow"):
            f.image
    else:
        img = f.image
        assert img.shape == (4, 8, 3)
        assert img[..., 2].mean() > 200 and img[..., 0].mean() < 50  # red, in BGR order
        assert f.planes == (img,)


@pytest.mark.skipif(_jpeg_decoder() is None, reason="neither OpenCV nor Pillow to decode with")
def test_jpeg_that_does_not_match_its_entry(r):
    xadd_frame(r, KEY, seq=1, fmt="JPEG", width=16, height=4, stride=0, data=_red_jpeg(8, 4))
    xadd_frame(r, KEY, seq=2, fmt="JPEG", width=8, height=4, stride=0, data=b"\xff\xd8 junk \xff\xd9")
    with gc.FrameStream(r, camera="cam1", group="g", start="0") as frames:
        wrong, junk = frames.read(2), frames.read(2)
    with pytest.raises(gc.LayoutError, match=r"JPEG is 8x4, the entry says 16x4"):
        wrong.image
    with pytest.raises(gc.LayoutError, match=r"JPEG: "):
        junk.image
    with pytest.raises(ValueError, match="format BGR, not JPEG"):
        _bgr_frame(r).jpeg


def _bgr_frame(r):
    xadd_frame(r, "frames:bgr", camera="bgr")
    with gc.FrameStream(r, camera="bgr") as frames:
        return frames.read(2)


def test_group_ack_and_pending(r):
    xadd_frame(r, KEY, seq=1)  # before the group: "$" does not see it
    with gc.FrameStream(r, camera="cam1", group="g", consumer="c1") as a, \
            gc.FrameStream(r, camera="cam1", group="g", consumer="c2") as b:
        assert a.read(0.1) is None
        ids = [xadd_frame(r, KEY, seq=s) for s in (2, 3, 4)]
        got = [a.read(1), b.read(1), a.read(1)]
        assert [f.id for f in got] == ids  # each to one consumer
        assert [f.seq for f in got] == [2, 3, 4] and not any(f.redelivered for f in got)
        assert a.read(0.1) is None and b.read(0.1) is None
        assert pending(r) == 3
        got[0].ack()
        got[0].ack()  # once is enough; again does nothing
        assert got[0].acked and pending(r) == 2
        for f in got[1:]:
            f.ack()
        assert pending(r) == 0


def test_group_start_zero_reads_backlog(r):
    ids = [xadd_frame(r, KEY, seq=s) for s in (1, 2)]
    with gc.FrameStream(r, camera="cam1", group="g", start="0") as frames:
        assert [f.id for f in read_all(frames)] == ids


def test_own_pending_read_again(r):
    ids = [xadd_frame(r, KEY, seq=s) for s in (1, 2)]
    with gc.FrameStream(r, camera="cam1", group="g", consumer="w1", start="0") as frames:
        assert [f.id for f in read_all(frames)] == ids  # not acked: a crash
    new = xadd_frame(r, KEY, seq=3)
    with gc.FrameStream(r, camera="cam1", group="g", consumer="w1") as frames:
        got = read_all(frames)
    assert [(f.id, f.redelivered) for f in got] == [(ids[0], True), (ids[1], True), (new, False)]


def test_autoclaim_from_dead_consumer(r):
    r.xgroup_create(KEY, "g", id="$", mkstream=True)
    ids = [xadd_frame(r, KEY, seq=s) for s in (1, 2, 3)]
    assert len(r.xreadgroup("g", "dead", {KEY: ">"}, count=3)[0][1]) == 3  # read, never acked
    with gc.FrameStream(r, camera="cam1", group="g", consumer="live", claim_idle=0.2) as frames:
        assert frames.read(0.05) is None  # not idle long enough yet
        time.sleep(0.25)
        got = read_all(frames, timeout=0.5)
        assert [(f.id, f.redelivered) for f in got] == [(i, True) for i in ids]
        assert frames.claimed == 3
        for f in got:
            f.ack()
        assert pending(r) == 0
        # Its own unacked frame is not handed back to it when idle.
        new = xadd_frame(r, KEY, seq=4)
        f = frames.read(1)
        assert (f.id, f.redelivered) == (new, False)
        time.sleep(0.3)
        assert frames.read(0.5) is None
        assert r.xpending_range(KEY, "g", "-", "+", 10)[0]["consumer"] == b"live"


def test_pending_entry_trimmed_away(r):
    # The stream's retention can drop entries still pending in a group.
    r.xgroup_create(KEY, "g", id="$", mkstream=True)
    xadd_frame(r, KEY, seq=1)
    r.xreadgroup("g", "w1", {KEY: ">"})  # w1 crashes before its ack
    r.xtrim(KEY, maxlen=0)
    with gc.FrameStream(r, camera="cam1", group="g", consumer="w1", claim_idle=None) as frames:
        assert frames.read(0.2) is None  # its own pending entry comes back without fields
        assert (frames.gone, pending(r)) == (1, 0)  # and is acked
    xadd_frame(r, KEY, seq=2)
    r.xreadgroup("g", "dead", {KEY: ">"})
    r.xtrim(KEY, maxlen=0)
    keep = xadd_frame(r, KEY, seq=3)
    r.xreadgroup("g", "dead", {KEY: ">"})
    with gc.FrameStream(r, camera="cam1", group="g", consumer="live", claim_idle=0) as frames:
        assert [f.id for f in read_all(frames, timeout=0.3)] == [keep]
    assert pending(r) == 1  # the trimmed one left the list; the other awaits its ack


def test_latest_skips_backlog(r):
    for s in range(1, 6):
        xadd_frame(r, KEY, seq=s)
    with gc.FrameStream(r, camera="cam1", mode="latest") as frames:
        f = frames.read(1)
        assert (f.seq, f.lost_before) == (5, 0)
        assert frames.read(0.2) is None  # never the same entry twice
        for s in range(6, 9):
            xadd_frame(r, KEY, seq=s)
        f = frames.read(1)
        assert (f.seq, f.lost_before) == (8, 2)
        f.ack()  # no group: nothing to do, and no error
        # Blocks until a newer entry arrives.
        t = threading.Timer(0.3, lambda: xadd_frame(r, KEY, seq=9))
        t.start()
        began = time.monotonic()
        f = frames.read(5)
        t.join()
        assert f.seq == 9 and time.monotonic() - began >= 0.25


def test_latest_waits_for_a_stream(r):
    with gc.FrameStream(r, camera="cam1", mode="latest") as frames:
        assert frames.read(0.1) is None
        t = threading.Timer(0.2, lambda: xadd_frame(r, KEY, seq=1))
        t.start()
        f = frames.read(5)
        t.join()
        assert f is not None and f.seq == 1


def test_iterator_timeout_and_close(r):
    xadd_frame(r, KEY, seq=1)
    xadd_frame(r, KEY, seq=2)
    frames = gc.FrameStream(r, camera="cam1", group="g", start="0", timeout=0.3)
    began = time.monotonic()
    seqs = [f.seq for f in frames]
    took = time.monotonic() - began
    assert seqs == [1, 2] and 0.3 <= took < 2
    xadd_frame(r, KEY, seq=3)
    last = next(iter(frames))  # an iterator stopped by the timeout can go on
    frames.close()
    assert frames.read(1) is None and list(frames) == []
    with pytest.raises(ValueError, match="closed"):
        last.ack()


def _reader_thread(frames, timeout):
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("frame", frames.read(timeout)))
    t.start()
    return t, out


@pytest.mark.parametrize("mode", ["group", "latest"])
def test_reconnect_after_redis_restart(redis_server, r, mode):
    group = {"group": "g"} if mode == "group" else {}
    xadd_frame(r, KEY, seq=1, instance="i.1")
    with gc.FrameStream(redis_server.url, camera="cam1", start="0", backoff=(0.05, 0.5), **group) as frames:
        assert frames.read(2).seq == 1
        t, out = _reader_thread(frames, 15)  # blocked in Redis when it goes away
        time.sleep(0.2)
        redis_server.restart()  # empty: stream and group are gone
        eid = xadd_frame(redis_server.client(), KEY, seq=1, instance="i.2")
        t.join()
        f = out["frame"]
        assert f is not None and (f.id, f.instance) == (eid, "i.2")
        assert frames.redis_errors >= 1
        assert frames.read(0.2) is None


def test_latest_new_stream_with_lower_ids(redis_server, r):
    # A stream made again after a restart may number below the last id read
    # (Redis's clock stepped back; here an id set by hand), and redis-py
    # reconnects without an error: the reader follows the new entries.
    r.xadd(KEY, {"v": "1"}, id="99999999999999-0")
    with gc.FrameStream(redis_server.url, camera="cam1", backoff=(0.05, 0.5)) as frames:
        with pytest.raises(gc.EntryError):
            frames.read(2)  # the hand-made entry, the newest
        redis_server.restart()
        client = redis_server.client()
        stop = threading.Event()

        def camera():  # a camera writing at 20 fps
            seq = 0
            while not stop.wait(0.05):
                seq += 1
                xadd_frame(client, KEY, seq=seq)

        t = threading.Thread(target=camera)
        t.start()
        try:
            first, second = frames.read(5), frames.read(5)
        finally:
            stop.set()
            t.join()
        assert first is not None and second is not None
        assert second.seq > first.seq and int(first.id.split("-")[0]) < 99999999999999


def test_retry_timeout_without_busy_loop(redis_server):
    client = redis.Redis(port=redis_server.port, socket_timeout=2, socket_connect_timeout=1)
    calls = []
    real = client.xrevrange
    client.xrevrange = lambda *a, **k: calls.append(time.monotonic()) or real(*a, **k)
    redis_server.stop()
    frames = gc.FrameStream(client, camera="cam1", retry_timeout=1.0, backoff=(0.05, 0.2))
    began = time.monotonic()
    assert frames.read(0.3) is None  # within the read's time: no frame, no error yet
    assert 0.3 <= time.monotonic() - began < 1.0
    with pytest.raises(redis.ConnectionError, match=f"{KEY}: Redis failing for .* past retry_timeout 1.0 s"):
        frames.read(10)
    took = time.monotonic() - began
    assert 1.0 <= took < 2.0
    assert len(calls) < 20, f"{len(calls)} attempts in {took:.1f} s: busy loop"
    # Back: reading works again.
    redis_server.start()
    xadd_frame(client, KEY, seq=1)
    assert frames.read(5).seq == 1


def test_argument_errors(r):
    with pytest.raises(ValueError, match="needs camera"):
        gc.FrameStream(r)
    with pytest.raises(ValueError, match="group mode needs group"):
        gc.FrameStream(r, camera="cam1", mode="group")
    with pytest.raises(ValueError, match="latest mode"):
        gc.FrameStream(r, camera="cam1", mode="latest", group="g")
    with pytest.raises(ValueError, match="decode_responses"):
        gc.FrameStream(redis.Redis(decode_responses=True), camera="cam1")
    assert gc.FrameStream(r, stream="cams/{camera_id}/raw", camera="x").key == "cams/x/raw"


def test_close_from_another_thread(redis_server):
    frames = gc.FrameStream(redis_server.url, camera="cam1", group="g")
    t, out = _reader_thread(frames, 30)
    time.sleep(0.2)  # blocked in XREADGROUP
    began = time.monotonic()
    frames.close()
    t.join(5)
    assert not t.is_alive() and out["frame"] is None
    # The blocked call returns within POLL_SECONDS; the reader then stops.
    assert time.monotonic() - began < gc.stream.POLL_SECONDS + 1


def test_example_script(redis_server, r):
    import subprocess
    import sys
    script = REPO / "clients" / "python" / "examples" / "detect.py"
    if not script.exists():
        pytest.skip(f"{script} not here")
    xadd_frame(r, KEY, seq=7, fmt="BGR", width=5, height=3)
    xadd_frame(r, KEY, seq=9, fmt="I420", width=6, height=4)
    out = subprocess.run([sys.executable, str(script), "--url", redis_server.url, "--camera", "cam1",
                          "--start", "0", "--count", "2", "--timeout", "5"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert re.match(r"cam1 seq 7 BGR 3x5x3 lost_before 0 latency \d+ ms$", lines[0]), lines
    assert re.match(r"cam1 seq 9 I420 4x6\+2x3\+2x3 lost_before 1 latency \d+ ms$", lines[1]), lines
    assert pending(r, group="detector") == 0  # acked
