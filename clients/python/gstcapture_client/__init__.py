"""Read gstcapture's frames from Redis Streams as numpy arrays.

    from gstcapture_client import FrameStream

    with FrameStream("redis://127.0.0.1:6379/0", camera="cam1",
                     group="detector", consumer="w1") as frames:
        for f in frames:
            detect(f.image)  # HxWx3 BGR, a view on the entry's bytes
            f.ack()

The entry format is gstcapture's docs/redis-schema.md (schema v1).
Entries of cameras with delivery shm name a slot of a shared-memory
segment instead of carrying the pixels; FrameStream maps the segment
(shm_dir) and the frames look the same.
"""

from .errors import DecoderMissing, EntryError, LayoutError, SchemaVersionError, SlotLapped
from .frame import KNOWN_MAJOR, Frame, plane_layout
from .stream import DEFAULT_STREAM, FrameStream

__all__ = [
    "DEFAULT_STREAM", "KNOWN_MAJOR", "DecoderMissing", "EntryError", "Frame", "FrameStream",
    "LayoutError", "SchemaVersionError", "SlotLapped", "plane_layout",
]
