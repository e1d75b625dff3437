"""Shared-memory delivery (docs/redis-schema.md, "Shared memory"): a
camera with delivery shm writes its pixels into a ring of slots in a
segment file, and each entry names the segment, the slot and the slot's
generation. This module maps segments read-only and reads slots with the
seqlock check; FrameStream uses it, one Segments per stream."""

import collections
import mmap
import os
import stat
import struct

import numpy as np

from .errors import EntryError

# The segment layout, version 1 (internal/shm/shm.go). Little endian.
MAGIC = b"GSTCSHM1"
VERSION = 1
PREFIX = "gstcapture."  # every segment file's name: gstcapture.<camera_id>.<instance>.<n>
MAX_SLOTS = 1024  # the writer's bound (config shm_slots)
_HEADER = struct.Struct("<8sIIQQ")  # magic, version, slots, slot_bytes, data_offset
TABLE_OFFSET = 256  # slot headers start here,
SLOT_HEADER_BYTES = 64  # this far apart; the generation is the first uint64

# Segments a FrameStream keeps mapped, as the Go client (client/reader.go):
# a camera's caps change a few times at most while its old entries are read.
MAX_MAPPED = 4


class Gone(Exception):
    """The frame's pixels are gone: its slot was lapped, or its segment
    file removed (its camera stopped or changed caps). Not an error of the
    entry: the reader skips it and counts it in FrameStream.lapped."""


def check_name(name):
    """Whether name may be opened: a segment file's name, never a path
    (the name comes from Redis data)."""
    return name.startswith(PREFIX) and "/" not in name and "\x00" not in name


class Segment:
    """One segment file mapped read-only, its header checked."""

    __slots__ = ("name", "path", "slots", "slot_bytes", "data_offset", "_mm", "_bytes", "gens")

    def __init__(self, directory, name):
        self.name = name
        self.path = os.path.join(directory, name)
        # O_RDONLY and ACCESS_READ: the directory may be a read-only mount,
        # and a reader never writes a writer's file.
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ValueError("not a regular file")
            if st.st_size < TABLE_OFFSET:
                raise ValueError(f"{st.st_size} bytes, shorter than its header ({TABLE_OFFSET})")
            mm = mmap.mmap(fd, st.st_size, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)  # the mapping stays
        try:
            magic, version, slots, slot_bytes, data_offset = _HEADER.unpack_from(mm, 0)
            if magic != MAGIC:
                raise ValueError(f"bad magic {magic!r} (want {MAGIC!r})")
            if version != VERSION:
                raise ValueError(f"layout version {version}, this client reads {VERSION}")
            if (not 1 <= slots <= MAX_SLOTS or slot_bytes < 1
                    or data_offset < TABLE_OFFSET + slots * SLOT_HEADER_BYTES
                    or data_offset + slots * slot_bytes > st.st_size):
                raise ValueError(f"header does not fit the file: {slots} slots of {slot_bytes} bytes "
                                 f"from {data_offset} in {st.st_size} bytes")
        except Exception:
            mm.close()
            raise
        self.slots, self.slot_bytes, self.data_offset = slots, slot_bytes, data_offset
        self._mm = mm
        self._bytes = np.frombuffer(mm, np.uint8)  # read-only: the mapping is
        # The generations, one aligned 8-byte word per slot: indexing reads
        # each with one load, as the writer stores it (atomically), so a
        # value is never half old, half new. On x86-64 loads are not
        # reordered with each other, so the pixels read between two reads
        # of a generation that agree are the frame's.
        self.gens = np.ndarray((slots,), "<u8", buffer=mm, offset=TABLE_OFFSET,
                               strides=(SLOT_HEADER_BYTES,))

    def view(self, slot, size):
        """The slot's first size bytes, a read-only numpy view on the mapping."""
        off = self.data_offset + slot * self.slot_bytes
        return self._bytes[off:off + size]

    def close(self):
        """Unmaps the segment, unless frames still view it: then the mapping
        is left to them and goes with the last view (Python cannot unmap
        memory that arrays still point to; mmap.close raises BufferError)."""
        mm, self._mm = self._mm, None
        self._bytes = self.gens = None
        if mm is None:
            return
        try:
            mm.close()
        except BufferError:
            pass


def lapped(gens, slot, gen):
    """Whether the slot no longer holds generation gen, complete (odd: a
    write in progress)."""
    g = int(gens[slot])
    return g != gen or g & 1 == 1


def copy_out(view):
    """A copy of a slot's bytes (a hook for the tests, which lap the slot
    during the copy)."""
    return view.copy()


class Segments:
    """The segments one FrameStream has mapped, at most MAX_MAPPED, the
    oldest unmapped first."""

    def __init__(self, directory, copy):
        self.dir = directory
        self.copy = copy
        self._open = collections.OrderedDict()  # name -> Segment, oldest first

    def __len__(self):
        return len(self._open)

    def attach(self, frame):
        """Gives a shared-memory frame its pixels: a view on its slot
        (frame.check() tells whether it was lapped since), or with copy a
        copy checked after copying. Raises Gone when the frame is lapped or
        its segment file is gone, EntryError for an entry or segment that
        is not readable."""
        slot, gen, size = frame.shm_slot, frame.shm_gen, frame.size_bytes
        seg = self._segment(frame)
        if not 0 <= slot < seg.slots:
            raise EntryError(frame.stream, frame.id,
                             f"shm segment {seg.name}: slot {slot} out of range ({seg.slots} slots)")
        if not 0 <= size <= seg.slot_bytes:
            raise EntryError(frame.stream, frame.id,
                             f"shm segment {seg.name}: size_bytes {size} does not fit a slot of "
                             f"{seg.slot_bytes} bytes")
        gens = seg.gens
        if lapped(gens, slot, gen):
            raise Gone()
        pixels = seg.view(slot, size)
        if self.copy:
            pixels = copy_out(pixels)
            if lapped(gens, slot, gen):
                raise Gone()
            pixels.flags.writeable = False  # as the views are
            gens = None  # checked: nothing for frame.check() to do
        frame._set_shm_pixels(pixels, gens)

    def _segment(self, frame):
        name = frame.shm_segment
        seg = self._open.get(name)
        if seg is not None:
            return seg
        if not check_name(name):
            raise EntryError(frame.stream, frame.id,
                             f"shm_segment {name[:80]!r} is not a gstcapture segment file name "
                             f"({PREFIX}<camera_id>.<instance>.<n>)")
        try:
            seg = Segment(self.dir, name)
        except FileNotFoundError:
            raise Gone() from None
        except (OSError, ValueError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            hint = " (run the consumer in gstcapture's shm.group)" if isinstance(e, PermissionError) else ""
            raise EntryError(frame.stream, frame.id,
                             f"shm segment {os.path.join(self.dir, name)}: {why}{hint}") from None
        self._open[name] = seg
        if len(self._open) > MAX_MAPPED:
            _, old = self._open.popitem(last=False)
            old.close()
        return seg

    def close(self):
        """Unmaps every segment no frame still views."""
        while self._open:
            _, seg = self._open.popitem(last=False)
            seg.close()
