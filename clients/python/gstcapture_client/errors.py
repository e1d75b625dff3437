"""Errors raised by gstcapture_client; each names the stream and entry."""


class EntryError(ValueError):
    """An entry that cannot be read as a frame: a field missing or malformed.

    In group mode the entry is acknowledged before this is raised (reading it
    again would fail the same way); iterating again goes on with the next one.
    """

    def __init__(self, stream, entry_id, message):
        self.stream = stream
        self.entry_id = entry_id
        super().__init__(f"{stream} entry {entry_id}: {message}")


class SchemaVersionError(EntryError):
    """The entry's schema version ("v") has a major version this client does not know."""

    def __init__(self, stream, entry_id, version, known):
        self.version = version
        super().__init__(
            stream, entry_id,
            f"schema version {version!r} is not supported (this client reads version {known}); "
            "upgrade gstcapture_client")


class LayoutError(EntryError):
    """The pixel buffer does not match width, height, stride and format.

    Raised by Frame.image and Frame.planes, never while iterating: the frame's
    metadata stays readable (a frame flagged "size" by a pass rule may carry a
    buffer of another size).
    """


class SlotLapped(EntryError):
    """A shared-memory frame's slot was written again (lapped) after the
    frame was read: its pixels, viewed without a copy, are another frame's
    now (or half of one). Raised by Frame.check(); throw away what was
    computed from the frame. The reader itself never returns a frame lapped
    before it was read: it skips it (FrameStream.lapped)."""

    def __init__(self, stream, entry_id, segment, slot, gen, found):
        self.segment = segment
        self.slot = slot
        self.gen = gen
        self.found = found
        super().__init__(
            stream, entry_id,
            f"shm segment {segment} slot {slot}: lapped by the writer (generation {found}, the "
            f"frame's is {gen}): its pixels are gone; read with shm_copy=True, or use a frame "
            "sooner (a slot lasts shm_slots frames)")


class DecoderMissing(RuntimeError):
    """A JPEG frame's image was asked for, but neither OpenCV nor Pillow is importable."""
