"""Frame: one entry of a camera's stream (docs/redis-schema.md), with its
pixels as numpy views on the bytes Redis returned."""

import io
import time

import numpy as np

from . import shm
from .errors import DecoderMissing, EntryError, LayoutError, SchemaVersionError, SlotLapped

# Major schema versions this client reads. Version 1 may gain optional fields
# at the end of an entry; anything else bumps "v".
KNOWN_MAJOR = (1,)

RAW_FORMATS = ("BGR", "RGB", "GRAY8", "I420", "NV12")
JPEG = "JPEG"


def _round4(n):
    return (n + 3) & ~3


def plane_layout(fmt, width, height, stride):
    """Where each plane of a raw frame lies in its buffer, as GStreamer lays
    out system memory (rows padded to 4 bytes; docs/redis-schema.md, "Decoding
    data"). Returns (planes, size): planes are (offset, shape, strides) for
    np.ndarray, size the bytes the layout needs. Raises ValueError."""
    if width <= 0 or height <= 0:
        raise ValueError(f"{fmt} {width}x{height}: width and height must be positive")
    cw, ch = (width + 1) // 2, (height + 1) // 2  # chroma rounds up for odd sizes
    if fmt in ("BGR", "RGB"):
        rows = [(0, (height, width, 3), (stride, 3, 1), 3 * width, stride, height)]
    elif fmt == "GRAY8":
        rows = [(0, (height, width), (stride, 1), width, stride, height)]
    elif fmt == "I420":
        cs = _round4(cw)
        y = stride * height
        rows = [(0, (height, width), (stride, 1), width, stride, height),
                (y, (ch, cw), (cs, 1), cw, cs, ch),
                (y + cs * ch, (ch, cw), (cs, 1), cw, cs, ch)]
    elif fmt == "NV12":
        rows = [(0, (height, width), (stride, 1), width, stride, height),
                (stride * height, (ch, cw, 2), (stride, 2, 1), 2 * cw, stride, ch)]
    else:
        raise ValueError(f"unknown format {fmt!r} (known: {', '.join(RAW_FORMATS + (JPEG,))})")
    if stride < rows[0][3]:
        raise ValueError(f"{fmt} {width}x{height}: stride {stride} is shorter than a row ({rows[0][3]} bytes)")
    last = rows[-1]
    size = last[0] + last[4] * last[5]
    return [(off, shape, strides) for off, shape, strides, _, _, _ in rows], size


def _decode_jpeg(data):
    """Decodes JPEG bytes to a BGR HxWx3 array with OpenCV, else Pillow."""
    try:
        import cv2
    except ImportError:
        cv2 = None
    if cv2 is not None:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError("OpenCV could not decode the JPEG")
        return img
    try:
        from PIL import Image
    except ImportError:
        raise DecoderMissing(
            "a JPEG frame needs OpenCV (cv2) or Pillow to decode; install one "
            "(Debian: python3-opencv or python3-pil), or read Frame.jpeg") from None
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))[..., ::-1]  # RGB -> BGR, a view


class Frame:
    """One frame of a camera: the entry's fields, typed, and its pixels.

    Metadata: stream, id (the entry id), version, frame_id, camera_id,
    instance (the capture process run, from frame_id), seq, ts (Unix ns),
    ts_source, pts, width, height, format, stride, size_bytes, traceparent,
    tracestate, flags (list of rule names), owner and epoch (None outside a
    fleet). fields is the raw entry (bytes to bytes).

    Set by the reader: lost_before, the seq values skipped since the
    previous frame of this camera this reader saw (0 for the first, after a
    process restart or owner change, and for redelivered frames);
    redelivered, True for a frame read again from the pending list (own or
    claimed from a dead consumer).

    Pixels: image (numpy, read-only, a view on the entry's bytes: HxWx3 for
    BGR/RGB, HxW for GRAY8, the planes tuple for I420 (Y, U, V) and NV12
    (Y, UV as ch x cw x 2); JPEG: decoded BGR HxWx3), planes (always a
    tuple), data (the raw buffer), jpeg (JPEG only).

    Shared memory (delivery shm): the entry has shm_segment, shm_slot and
    shm_gen instead of data (None otherwise), and FrameStream gives the
    frame its pixels from the slot: by default data is a read-only
    memoryview on the mapped segment and image/planes view it, no copy;
    the writer may write the slot again (lap it) shm_slots frames later,
    so call check() after using them. With FrameStream(shm_copy=True) data
    views a copy, checked when made. A Frame made by hand from such an
    entry has no pixels (data raises EntryError).
    """

    __slots__ = ("stream", "id", "version", "frame_id", "camera_id", "instance", "seq", "ts",
                 "ts_source", "pts", "width", "height", "format", "stride", "size_bytes",
                 "traceparent", "tracestate", "flags", "owner", "epoch", "fields",
                 "lost_before", "redelivered", "shm_segment", "shm_slot", "shm_gen",
                 "_ack", "_acked", "_planes", "_jpeg_image", "_pixels", "_gens")

    def __init__(self, stream, entry_id, fields, ack=None):
        self.stream = stream
        self.id = entry_id
        self.fields = fields
        self._ack = ack
        self._acked = False
        self._planes = None
        self._jpeg_image = None
        self._pixels = None  # shared memory: the slot's bytes, set by the reader
        self._gens = None  # shared memory, viewed: the segment's generations, for check()
        self.lost_before = 0
        self.redelivered = False

        def text(name, required=True):
            v = fields.get(name.encode())
            if v is None:
                if required:
                    raise EntryError(stream, entry_id, f"field {name!r} is missing")
                return None
            try:
                return v.decode()
            except UnicodeDecodeError:
                raise EntryError(stream, entry_id, f"field {name!r} is not text: {v[:40]!r}") from None

        def integer(name, default=None):
            s = text(name, required=default is None)
            if s is None:
                return default
            try:
                return int(s)
            except ValueError:
                raise EntryError(stream, entry_id, f"field {name!r} is not an integer: {s[:40]!r}") from None

        self.version = text("v", required=False)
        if self.version is None:
            raise SchemaVersionError(stream, entry_id, None, _known())
        major = self.version.partition(".")[0]
        if not major.isdigit() or int(major) not in KNOWN_MAJOR:
            raise SchemaVersionError(stream, entry_id, self.version, _known())

        self.frame_id = text("frame_id")
        self.camera_id = text("camera_id")
        self.seq = integer("seq")
        self.ts = integer("ts")
        self.ts_source = text("ts_source", required=False) or ""
        self.pts = integer("pts", -1)
        self.format = text("format")
        self.width = integer("width", 0)
        self.height = integer("height", 0)
        self.stride = integer("stride", 0)
        self.size_bytes = integer("size_bytes", 0)
        self.traceparent = text("traceparent", required=False)
        self.tracestate = text("tracestate", required=False)
        flags = text("flags", required=False)
        self.flags = flags.split(",") if flags else []
        self.owner = text("owner", required=False)
        self.epoch = integer("epoch", -1)
        if self.epoch < 0:
            self.epoch = None
        self.shm_segment = text("shm_segment", required=False)
        self.shm_slot = self.shm_gen = None
        if self.shm_segment is not None:
            self.shm_slot = integer("shm_slot")
            self.shm_gen = integer("shm_gen")
        elif b"data" not in fields:
            raise EntryError(stream, entry_id, "field 'data' is missing (and no shm_segment)")

        # frame_id is "<camera_id>-<instance>-<seq>"; the instance has no '-'
        # but camera ids may, so split from the right.
        head, _, _ = self.frame_id.rpartition("-")
        _, sep, instance = head.rpartition("-")
        self.instance = instance if sep else None

    def __repr__(self):
        return (f"Frame({self.stream} {self.id} {self.frame_id} {self.format} "
                f"{self.width}x{self.height} lost_before={self.lost_before}"
                f"{' redelivered' if self.redelivered else ''})")

    # Pixels.

    @property
    def data(self):
        """The raw pixel buffer: bytes, as Redis returned them; with shared
        memory a read-only memoryview on the slot (or on its copy)."""
        if self.shm_segment is None:
            return self.fields[b"data"]
        if self._pixels is None:
            raise EntryError(self.stream, self.id,
                             f"pixels are in shared memory (segment {self.shm_segment} slot "
                             f"{self.shm_slot}), not in the entry: read it with FrameStream, "
                             "which maps the segment (shm_dir)")
        return self._pixels

    def _set_shm_pixels(self, pixels, gens):
        """The reader's: the slot's bytes (a numpy uint8 view or copy) and,
        for a view, the segment's generations that check() reads."""
        self._pixels = memoryview(pixels)
        self._gens = gens

    def check(self):
        """Raises SlotLapped if the frame's shared-memory slot has been
        written again since the frame was read: its views (data, image,
        planes) show another frame now, so throw away what was computed
        from them. Call it after using them. Does nothing for frames whose
        pixels came in the entry, or were copied (shm_copy=True)."""
        if self._gens is not None and shm.lapped(self._gens, self.shm_slot, self.shm_gen):
            raise SlotLapped(self.stream, self.id, self.shm_segment, self.shm_slot, self.shm_gen,
                             int(self._gens[self.shm_slot]))

    @property
    def planes(self):
        """The frame's planes as read-only numpy views on data, no copy:
        (image,) for BGR/RGB/GRAY8, (Y, U, V) for I420, (Y, UV) for NV12."""
        if self._planes is None:
            if self.format == JPEG:
                self._planes = (self.image,)
                return self._planes
            data = self.data
            try:
                layout, size = plane_layout(self.format, self.width, self.height, self.stride)
            except ValueError as e:
                raise LayoutError(self.stream, self.id, str(e)) from None
            if len(data) != size or self.size_bytes != size:
                raise LayoutError(
                    self.stream, self.id,
                    f"{self.format} {self.width}x{self.height} stride {self.stride}: layout needs {size} "
                    f"bytes, entry has {len(data)} (size_bytes {self.size_bytes}"
                    f"{', flags ' + ','.join(self.flags) if self.flags else ''})")
            self._planes = tuple(np.ndarray(shape, np.uint8, buffer=data, offset=off, strides=strides)
                                 for off, shape, strides in layout)
        return self._planes

    @property
    def image(self):
        """HxWx3 (BGR, RGB), HxW (GRAY8), the planes tuple (I420, NV12), or the
        decoded BGR picture (JPEG, needs OpenCV or Pillow)."""
        if self.format == JPEG:
            if self._jpeg_image is None:
                try:
                    img = _decode_jpeg(self.jpeg)
                except DecoderMissing as e:
                    raise DecoderMissing(f"{self.stream} entry {self.id}: {e}") from None
                except (ValueError, OSError) as e:  # OpenCV's None, Pillow's UnidentifiedImageError
                    raise LayoutError(self.stream, self.id, f"JPEG: {e}") from None
                if img.shape[:2] != (self.height, self.width):
                    raise LayoutError(self.stream, self.id,
                                      f"JPEG is {img.shape[1]}x{img.shape[0]}, the entry says {self.width}x{self.height}")
                self._jpeg_image = img
            return self._jpeg_image
        planes = self.planes
        return planes[0] if len(planes) == 1 else planes

    @property
    def jpeg(self):
        """The compressed bytes of a JPEG frame: the JPEG file as it is."""
        if self.format != JPEG:
            raise ValueError(f"{self.stream} entry {self.id}: format {self.format}, not JPEG")
        data = self.data
        if len(data) != self.size_bytes:
            raise LayoutError(self.stream, self.id, f"JPEG of {len(data)} bytes, size_bytes {self.size_bytes}")
        return data

    # Time.

    @property
    def time(self):
        """Capture time, Unix seconds (float)."""
        return self.ts / 1e9

    def age(self):
        """Seconds from capture to now on this host's clock (as good as the
        two hosts' clock sync when ts_source is rtcp or the capturer is
        elsewhere)."""
        return (time.time_ns() - self.ts) / 1e9

    # Acknowledgement.

    def ack(self):
        """XACKs the entry in group mode (once; later calls do nothing).
        In latest mode there is no group and ack does nothing."""
        if self._acked or self._ack is None:
            return
        self._ack(self.id)
        self._acked = True

    @property
    def acked(self):
        return self._acked

    # Tracing.

    @property
    def trace_carrier(self):
        """The W3C trace context as a dict for a propagator ({} without one)."""
        c = {}
        if self.traceparent:
            c["traceparent"] = self.traceparent
            if self.tracestate:
                c["tracestate"] = self.tracestate
        return c

    def trace_context(self, context=None):
        """An OpenTelemetry Context continuing the capture span's trace (see
        gstcapture_client.trace); needs the opentelemetry-api package."""
        from .trace import extract
        return extract(self.trace_carrier, context)


def _known():
    return ", ".join(str(v) for v in KNOWN_MAJOR)
