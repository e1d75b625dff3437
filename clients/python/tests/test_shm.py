"""Shared-memory delivery: segment files written here as
docs/redis-schema.md ("Shared memory (delivery: shm)") lays them out, by a
writer that follows the doc's seqlock, and entries naming their slots
read through FrameStream."""

import mmap
import os
import struct

import numpy as np
import pytest

import gstcapture_client as gc
from gstcapture_client import shm
from conftest import INSTANCE, default_stride, pixels, xadd_frame

KEY = "frames:cam1"
PAGE = 4096


def round_up(n, to):
    return (n + to - 1) // to * to


class SegmentFile:
    """A segment of the doc's layout, version 1: the header at 0, slot
    headers from 256 (64 bytes each: generation, seq, size), slot i's pixels
    at data_offset + slot_bytes·i; slot_bytes is the frame size rounded up
    to 4096 and data_offset a multiple of 4096."""

    def __init__(self, directory, *, fmt="BGR", width=4, height=2, stride=None, frame_bytes=None,
                 slots=4, camera="cam1", instance=INSTANCE, n=1, magic=b"GSTCSHM1", version=1,
                 header=None, size=None):
        stride = stride or default_stride(fmt, width)
        if frame_bytes is None:
            frame_bytes = len(pixels(fmt, width, height, stride)[0])
        self.name = f"gstcapture.{camera}.{instance}.{n}"
        self.path = os.path.join(directory, self.name)
        self.fmt, self.width, self.height, self.stride = fmt, width, height, stride
        self.slots = slots
        self.slot_bytes = round_up(max(frame_bytes, 1), PAGE)
        self.data_offset = round_up(256 + 64 * slots, PAGE)
        size = size if size is not None else self.data_offset + slots * self.slot_bytes
        with open(self.path, "wb") as f:
            f.truncate(size)
        self.mm = None
        if size == 0:
            return
        fd = os.open(self.path, os.O_RDWR)
        self.mm = mmap.mmap(fd, size)
        os.close(fd)
        fields = (magic, version, slots, self.slot_bytes, self.data_offset, width, height, stride,
                  frame_bytes, fmt.encode(), camera.encode(), instance.encode(), n)
        if header:  # overrides, by position, for broken headers
            fields = tuple(header.get(i, v) for i, v in enumerate(fields))
        if size >= 168:
            struct.pack_into("<8sIIQQIIII16s64s32sQ", self.mm, 0, *fields)
        self.next = 0

    def gen(self, slot):
        return struct.unpack_from("<Q", self.mm, 256 + 64 * slot)[0]

    def set_gen(self, slot, gen):
        struct.pack_into("<Q", self.mm, 256 + 64 * slot, gen)

    def put(self, data, seq):
        """Writes a frame into the next slot as the writer does (generation
        odd, pixels, seq and size, generation even) and returns the entry's
        (shm_segment, shm_slot, shm_gen)."""
        i = self.next
        self.next = (i + 1) % self.slots
        odd = self.gen(i) + 1
        self.set_gen(i, odd)
        off = self.data_offset + self.slot_bytes * i
        self.mm[off:off + len(data)] = data
        struct.pack_into("<QQ", self.mm, 256 + 64 * i + 8, seq, len(data))
        self.set_gen(i, odd + 1)
        return self.name, i, odd + 1

    def lap(self, slot):
        """The writer writes the slot again (pixels aside)."""
        self.set_gen(slot, self.gen(slot) + 2)

    def close(self):
        """Unmaps the writer's mapping (the file stays)."""
        if self.mm is not None:
            self.mm.close()
            self.mm = None


def mapped(path):
    """Whether this process has path mapped."""
    with open("/proc/self/maps") as f:
        return any(line.rstrip("\n").endswith(" " + str(path)) for line in f)


@pytest.fixture
def shm_dir(tmp_path):
    d = tmp_path / "shm"
    d.mkdir()
    return d


def put_frame(r, seg, seq, data=None, key=KEY, **kw):
    """Writes a frame into seg and its entry into the stream; returns the
    entry id, the bytes written and the planes they should read as."""
    if data is None:
        data, want = pixels(seg.fmt, seg.width, seg.height, seg.stride)
    else:
        want = None
    loc = seg.put(data, seq)
    eid = xadd_frame(r, key, seq=seq, fmt=seg.fmt, width=seg.width, height=seg.height,
                     stride=seg.stride, data=data, shm=loc, **kw)
    return eid, data, want


def test_layout_as_documented(shm_dir):
    # The doc's header table, offset by offset, against what the client reads.
    seg = SegmentFile(shm_dir, fmt="BGR", width=641, height=361, slots=3)
    assert (seg.slot_bytes, seg.data_offset) == (round_up(1924 * 361, PAGE), PAGE)
    raw = bytes(seg.mm[:168])
    assert raw[0:8] == b"GSTCSHM1" and raw[48:51] == b"BGR" and raw[64:68] == b"cam1"
    assert struct.unpack_from("<IIQQIIII", raw, 8) == (1, 3, seg.slot_bytes, PAGE, 641, 361, 1924, 1924 * 361)
    s = shm.Segment(str(shm_dir), seg.name)
    assert (s.slots, s.slot_bytes, s.data_offset) == (3, seg.slot_bytes, PAGE)
    seg.set_gen(2, 0x0102030405060708)  # little endian, at 256 + 64·2
    assert seg.mm[256 + 128] == 0x08 and int(s.gens[2]) == 0x0102030405060708
    s.close()
    seg.close()


LAYOUTS = [("BGR", 5, 3, None), ("RGB", 3, 3, 20), ("GRAY8", 5, 3, None),
           ("I420", 641, 361, None), ("NV12", 5, 3, None), ("NV12", 8, 2, 16)]


@pytest.mark.parametrize("fmt,w,h,stride", LAYOUTS)
def test_views_into_the_slot(r, shm_dir, fmt, w, h, stride):
    seg = SegmentFile(shm_dir, fmt=fmt, width=w, height=h, stride=stride)
    put_frame(r, seg, 1)  # slot 0
    eid, data, want = put_frame(r, seg, 2)  # slot 1
    with gc.FrameStream(r, camera="cam1", mode="latest", shm_dir=str(shm_dir)) as frames:
        f = frames.read(2)
        assert f.id == eid and (f.shm_segment, f.shm_slot, f.shm_gen) == (seg.name, 1, 2)
        assert b"data" not in f.fields and bytes(f.data) == data and f.data.readonly
        assert len(f.planes) == len(want)
        for got, exp in zip(f.planes, want):
            np.testing.assert_array_equal(got, exp)
            assert not got.flags.writeable
        f.check()
        # A view, no copy: what the writer puts into the slot shows through.
        off = seg.data_offset + seg.slot_bytes * 1
        seg.mm[off] = (data[0] + 1) % 256
        assert f.planes[0].flat[0] == (data[0] + 1) % 256
        seg.lap(1)
        with pytest.raises(gc.SlotLapped, match=f"{KEY} entry {eid}: shm segment {seg.name} slot 1: "
                                                r"lapped by the writer \(generation 4, the frame's is 2\)"):
            f.check()
        assert issubclass(gc.SlotLapped, gc.EntryError)
        assert frames.lapped == 0
    f.image  # still mapped by the views after close: readable, never a crash
    with pytest.raises(gc.SlotLapped):
        f.check()
    seg.close()


def test_write_in_progress_is_lapped(r, shm_dir):
    seg = SegmentFile(shm_dir)
    eid, _, _ = put_frame(r, seg, 1)
    with gc.FrameStream(r, camera="cam1", mode="latest", shm_dir=str(shm_dir)) as frames:
        f = frames.read(2)
        seg.set_gen(0, 3)  # odd: the writer is writing the slot again
        with pytest.raises(gc.SlotLapped, match="generation 3, the frame's is 2"):
            f.check()
        # An entry naming the odd generation of a write in progress (never
        # written so) must not read the half-written slot.
        xadd_frame(r, KEY, seq=2, shm=(seg.name, 0, 3))
        assert frames.read(0.3) is None and frames.lapped == 1
    seg.close()


def test_copy(r, shm_dir):
    seg = SegmentFile(shm_dir, fmt="I420", width=6, height=4)
    eid, data, want = put_frame(r, seg, 1)
    with gc.FrameStream(r, camera="cam1", mode="latest", shm_dir=str(shm_dir), shm_copy=True) as frames:
        f = frames.read(2)
        for got, exp in zip(f.image, want):
            np.testing.assert_array_equal(got, exp)
            assert not got.flags.writeable
        seg.mm[seg.data_offset:seg.data_offset + len(data)] = b"\0" * len(data)
        seg.lap(0)
        for got, exp in zip(f.image, want):  # a copy: the slot's new bytes do not show
            np.testing.assert_array_equal(got, exp)
        f.check()  # nothing to check
        assert len(frames._shm) == 1
    assert len(frames._shm) == 0
    seg.close()


def test_copy_lapped_during_the_copy(r, shm_dir, monkeypatch):
    seg = SegmentFile(shm_dir)
    put_frame(r, seg, 1)
    eid, _, _ = put_frame(r, seg, 2)
    copy = shm.copy_out
    calls = []

    def lapping_copy(view):
        out = copy(view)
        calls.append(view)
        if len(calls) == 2:
            seg.lap(1)  # frame 2's slot: the writer came round while we copied
        return out

    monkeypatch.setattr(shm, "copy_out", lapping_copy)
    with gc.FrameStream(r, camera="cam1", group="g", start="0", shm_dir=str(shm_dir),
                        shm_copy=True) as frames:
        f = frames.read(1)
        assert f.seq == 1  # slot 0: copied whole
        assert frames.read(0.5) is None and frames.lapped == 1
    assert len(calls) == 2 and r.xpending(KEY, "g")["pending"] == 1  # frame 1 (not acked here); 2 was
    seg.close()


@pytest.mark.parametrize("mode", ["group", "latest"])
def test_lapped_before_read_is_skipped(r, shm_dir, mode):
    seg = SegmentFile(shm_dir, slots=2)
    put_frame(r, seg, 1)  # slot 0, gen 2
    put_frame(r, seg, 2)  # slot 1, gen 2
    lapped_id, _, _ = put_frame(r, seg, 3)  # slot 0, gen 4
    seg.lap(0)  # slot 0 written again; frame 3's entry not yet there
    opts = {"group": "g", "start": "0"} if mode == "group" else {"mode": "latest"}
    with gc.FrameStream(r, camera="cam1", shm_dir=str(shm_dir), **opts) as frames:
        got = []
        while (f := frames.read(0.3)) is not None:
            got.append(f.seq)
            f.ack()
        eid, _, _ = put_frame(r, seg, 5)  # slot 1: a live one after it
        f = frames.read(2)
    if mode == "group":
        assert got == [2] and frames.lapped == 2  # frames 1 and 3: their slot 0 holds gen 6
        assert r.xpending(KEY, "g")["pending"] == 1  # 5, not acked here; the lapped ones were
    else:
        assert got == [] and frames.lapped == 1  # the newest, 3, lapped
    assert f.id == eid and f.seq == 5 and f.lost_before == (2 if mode == "group" else 0)
    seg.close()


def test_missing_segment_is_lapped(r, shm_dir):
    xadd_frame(r, KEY, seq=1, shm=(f"gstcapture.cam1.{INSTANCE}.9", 0, 2))
    seg = SegmentFile(shm_dir)
    eid, _, _ = put_frame(r, seg, 2)
    with gc.FrameStream(r, camera="cam1", group="g", start="0", shm_dir=str(shm_dir)) as frames:
        f = frames.read(2)
        assert f.id == eid and frames.lapped == 1 and frames.invalid == 0
        f.ack()
    assert r.xpending(KEY, "g")["pending"] == 0
    seg.close()


@pytest.mark.parametrize("name", ["../gstcapture.cam1.x.1", "gstcapture./../../etc/passwd", "/etc/passwd",
                                  "gstcapture-cam1", "other.cam1.x.1", "gstcapture.cam1\x00.x"])
def test_segment_names_are_not_paths(r, shm_dir, name):
    # A valid segment beside the directory: a path in the entry must not reach it.
    SegmentFile(shm_dir.parent, camera="cam1", instance="x", n=1).close()
    eid = xadd_frame(r, KEY, seq=1, shm=(name, 0, 2))
    with gc.FrameStream(r, camera="cam1", group="g", start="0", shm_dir=str(shm_dir)) as frames:
        with pytest.raises(gc.EntryError, match=f"{KEY} entry {eid}: shm_segment .* is not a gstcapture "
                                                "segment file name"):
            frames.read(2)
        assert frames.invalid == 1 and frames.lapped == 0 and len(frames._shm) == 0
    assert r.xpending(KEY, "g")["pending"] == 0


@pytest.mark.parametrize("broken,message", [
    ({"header": {0: b"GSTCSHM2"}}, "bad magic b'GSTCSHM2'"),
    ({"header": {1: 2}}, "layout version 2, this client reads 1"),
    ({"header": {2: 0}}, "header does not fit the file: 0 slots"),
    ({"header": {2: 1025}}, "header does not fit the file: 1025 slots"),
    ({"header": {3: 0}}, "header does not fit the file: 4 slots of 0 bytes"),
    ({"header": {3: 8192}}, "header does not fit the file: 4 slots of 8192 bytes from 4096 in 20480 bytes"),
    ({"header": {4: 256}}, "header does not fit the file: 4 slots of 4096 bytes from 256 in"),
    ({"header": {4: 8192}}, "header does not fit the file: .* from 8192 in 20480 bytes"),
    ({"size": 100}, "100 bytes, shorter than its header"),
    ({"size": 0}, "0 bytes, shorter than its header"),
])
def test_bad_segment_header(r, shm_dir, broken, message):
    seg = SegmentFile(shm_dir, **broken)
    eid = xadd_frame(r, KEY, seq=1, shm=(seg.name, 0, 2))
    with gc.FrameStream(r, camera="cam1", group="g", start="0", shm_dir=str(shm_dir)) as frames:
        with pytest.raises(gc.EntryError, match=f"{KEY} entry {eid}: shm segment {shm_dir}/{seg.name}: {message}"):
            frames.read(2)
        assert frames.invalid == 1 and len(frames._shm) == 0
    assert r.xpending(KEY, "g")["pending"] == 0
    seg.close()


def test_not_a_regular_file(r, shm_dir):
    os.mkdir(shm_dir / "gstcapture.cam1.x.1")
    eid = xadd_frame(r, KEY, seq=1, shm=("gstcapture.cam1.x.1", 0, 2))
    with gc.FrameStream(r, camera="cam1", shm_dir=str(shm_dir)) as frames:
        with pytest.raises(gc.EntryError, match=f"{eid}: shm segment .*gstcapture.cam1.x.1: not a regular file"):
            frames.read(2)


def test_slot_and_size_checked(r, shm_dir):
    seg = SegmentFile(shm_dir, slots=2)  # 4x2 BGR: slots of 4096 bytes
    bad_slot = xadd_frame(r, KEY, seq=1, shm=(seg.name, 2, 2))
    big = xadd_frame(r, KEY, seq=2, data=b"\0" * 4097, shm=(seg.name, 0, 2))
    negative = xadd_frame(r, KEY, seq=3, shm=(seg.name, -1, 2))
    malformed = xadd_frame(r, KEY, seq=4, shm=(seg.name, "one", 2))
    with gc.FrameStream(r, camera="cam1", group="g", start="0", shm_dir=str(shm_dir)) as frames:
        for eid, message in ((bad_slot, "slot 2 out of range \\(2 slots\\)"),
                             (big, "size_bytes 4097 does not fit a slot of 4096 bytes"),
                             (negative, "slot -1 out of range")):
            with pytest.raises(gc.EntryError, match=f"{KEY} entry {eid}: shm segment {seg.name}: {message}"):
                frames.read(2)
        with pytest.raises(gc.EntryError, match=f"{malformed}: field 'shm_slot' is not an integer"):
            frames.read(2)
        assert frames.invalid == 4
    assert r.xpending(KEY, "g")["pending"] == 0
    seg.close()


def test_at_most_four_segments_mapped(r, shm_dir):
    segs = [SegmentFile(shm_dir, n=n) for n in range(1, 7)]
    for n, s in enumerate(segs, 1):
        put_frame(r, s, n)
        s.close()  # only the reader's mappings from here on
    paths = [s.path for s in segs]
    with gc.FrameStream(r, camera="cam1", group="g", start="0", shm_dir=str(shm_dir)) as frames:
        got = []
        for _ in segs:
            got.append(frames.read(2))
            assert len(frames._shm) <= shm.MAX_MAPPED
        assert list(frames._shm._open) == [s.name for s in segs[2:]]
        # Segments 1 and 2 were let go, but their frames' views keep them mapped.
        assert all(mapped(p) for p in paths)
        for f in got:
            assert f.image.shape == (2, 4, 3)
            f.check()
    assert len(frames._shm) == 0
    for f in got:  # after close too: the views hold the mappings
        f.image.sum()
        f.check()
    assert all(mapped(p) for p in paths)
    del f, got
    # The last view gone, the mapping goes.
    assert not any(mapped(p) for p in paths)


def test_close_unmaps_segments_without_views(r, shm_dir):
    seg = SegmentFile(shm_dir)
    put_frame(r, seg, 1)
    seg.close()
    with gc.FrameStream(r, camera="cam1", mode="latest", shm_dir=str(shm_dir), shm_copy=True) as frames:
        f = frames.read(2)
        assert mapped(seg.path)
    assert not mapped(seg.path) and f.image.shape == (2, 4, 3)  # a copy
    with gc.FrameStream(r, camera="cam1", mode="latest", shm_dir=str(shm_dir)) as frames:
        f = frames.read(2)
    assert mapped(seg.path)  # f's views hold it: left to them
    del f
    assert not mapped(seg.path)


def test_data_entries_unchanged(r, shm_dir):
    xadd_frame(r, KEY, seq=1)
    with gc.FrameStream(r, camera="cam1", mode="latest", shm_dir=str(shm_dir)) as frames:
        f = frames.read(2)
    assert isinstance(f.data, bytes) and f.shm_segment is None and f.shm_slot is None
    f.check()  # nothing to check


def test_frame_without_a_reader(shm_dir):
    seg = SegmentFile(shm_dir)
    fields = {b"v": b"1", b"frame_id": f"cam1-{INSTANCE}-1".encode(), b"camera_id": b"cam1", b"seq": b"1",
              b"ts": b"1", b"format": b"BGR", b"width": b"4", b"height": b"2", b"stride": b"12",
              b"size_bytes": b"24", b"shm_segment": seg.name.encode(), b"shm_slot": b"0", b"shm_gen": b"2"}
    f = gc.Frame(KEY, "1-0", fields)
    assert (f.seq, f.width, f.shm_slot) == (1, 4, 0)
    with pytest.raises(gc.EntryError, match="1-0: pixels are in shared memory .* read it with FrameStream"):
        f.image
    f.check()
    with pytest.raises(gc.EntryError, match="field 'shm_gen' is missing"):
        gc.Frame(KEY, "1-0", {k: v for k, v in fields.items() if k != b"shm_gen"})
    with pytest.raises(gc.EntryError, match="field 'data' is missing"):
        gc.Frame(KEY, "1-0", {k: v for k, v in fields.items() if not k.startswith(b"shm_")})
    seg.close()


def test_read_only_mapping(r, shm_dir):
    seg = SegmentFile(shm_dir)
    put_frame(r, seg, 1)
    os.chmod(seg.path, 0o440)
    os.chmod(shm_dir, 0o550)  # as a read-only mount would be (root ignores the bits)
    try:
        with gc.FrameStream(r, camera="cam1", mode="latest", shm_dir=str(shm_dir)) as frames:
            f = frames.read(2)
            with pytest.raises(ValueError, match="read-only"):
                f.image[0, 0, 0] = 1
            with pytest.raises(TypeError):
                f.data[0] = 1
    finally:
        os.chmod(shm_dir, 0o750)
    seg.close()


def test_example_script(redis_server, r, shm_dir):
    import re
    import subprocess
    import sys
    from conftest import REPO
    script = REPO / "clients" / "python" / "examples" / "detect.py"
    if not script.exists():
        pytest.skip(f"{script} not here")
    seg = SegmentFile(shm_dir, fmt="GRAY8", width=5, height=3, slots=2)
    put_frame(r, seg, 1)  # lapped by 3
    put_frame(r, seg, 2)
    put_frame(r, seg, 3)
    seg.close()
    for copy in ([], ["--shm-copy"]):
        out = subprocess.run([sys.executable, str(script), "--url", redis_server.url, "--camera", "cam1",
                              "--group", f"d{len(copy)}", "--start", "0", "--count", "2", "--timeout", "5",
                              "--shm-dir", str(shm_dir)] + copy, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert re.match(r"cam1 seq 2 GRAY8 3x5 lost_before 0 latency \d+ ms$", lines[0]), lines
        assert re.match(r"cam1 seq 3 GRAY8 3x5 lost_before 0 latency \d+ ms$", lines[1]), lines
        assert "skipped 1 shared-memory frames lapped" in out.stderr
