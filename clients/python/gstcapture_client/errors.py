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


class SharedMemoryNotSupported(NotImplementedError):
    """The entry refers to a shared-memory slot (shm_segment/shm_slot/shm_gen)
    instead of carrying its pixels in "data"; this version cannot map them."""

    def __init__(self, stream, entry_id):
        self.stream = stream
        self.entry_id = entry_id
        super().__init__(
            f"{stream} entry {entry_id}: pixels are in shared memory (shm_segment), "
            "which this version of gstcapture_client cannot read yet; read the stream "
            "with a gstcapture that writes \"data\", or upgrade the client")


class DecoderMissing(RuntimeError):
    """A JPEG frame's image was asked for, but neither OpenCV nor Pillow is importable."""
