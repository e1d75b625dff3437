"""FrameStream: reads one camera's stream, in a consumer group or always the
newest frame, and rides out Redis restarts."""

import collections
import os
import random
import socket
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import shm
from .errors import EntryError
from .frame import Frame

DEFAULT_STREAM = "frames:{camera_id}"  # gstcapture's redis.stream default

# The longest single blocking read. It bounds how late close(), a due claim
# and a read timeout are noticed, and sets the socket timeout (plus
# redis_timeout), so a Redis that stops answering is noticed too.
POLL_SECONDS = 1.0

# Ids handed out and not acknowledged, kept so that XAUTOCLAIM does not hand
# this reader's own frames back to it; bounded for readers that never ack.
_MAX_OUTSTANDING = 4096

_UNSET = object()
_GAVE_UP = object()  # a Redis call ran out of the read's time while retrying


class _Camera:
    """What the reader remembers of one camera: the last frame's instance
    and seq (for lost_before) and the highest epoch (for stale frames)."""

    __slots__ = ("instance", "seq", "epoch")

    def __init__(self):
        self.instance = self.seq = self.epoch = None


def _parse_id(eid):
    ms, _, seq = eid.partition("-")
    return int(ms), int(seq or 0)


def _after(eid):
    """The smallest entry id above eid (an inclusive XRANGE bound that works
    before Redis 6.2's exclusive "(" ranges)."""
    ms, seq = _parse_id(eid)
    return f"{ms}-{seq + 1}"


def _str(v):
    return v.decode() if isinstance(v, bytes) else v


class FrameStream:
    """Frames of one camera's stream (docs/redis-schema.md), as Frame objects.

    Group mode (group= given, or mode="group"): XREADGROUP as consumer of
    group, created with MKSTREAM at start ("$": new frames only, "0": what
    the stream still holds). Each frame goes to one consumer of the group;
    Frame.ack() XACKs it. At start the consumer's own pending frames are
    read again, and frames pending longer than claim_idle seconds at other
    (dead) consumers are taken over with XAUTOCLAIM every claim_every
    seconds; both come with redelivered=True. claim_idle=None turns claiming
    off. If the group is gone (NOGROUP: Redis restarted without its data), it
    is created again at "0" and the per-camera state below is forgotten.

    Latest mode (mode="latest", the default without group): every read
    returns the newest entry of the stream, skipping any backlog, and never
    the same entry twice; it blocks until a newer one arrives. ack() does
    nothing.

    Per camera the reader keeps the highest epoch seen: a fleet entry with a
    lower epoch (an old owner's) is dropped, counted in stale_dropped, and
    acknowledged in group mode. Redelivered frames are older entries of the
    same stream, neither checked nor counted. lost_before on each frame
    counts seq values skipped since this reader's previous frame of the
    camera; in a group shared by several consumers that includes the frames
    the others got.

    An entry that is not a frame of a known schema version raises EntryError
    (SchemaVersionError for "v") from read/next, after being acknowledged in
    group mode (reading it again would fail the same way); reading again goes
    on with the next entry.

    Shared memory (cameras with delivery shm; docs/redis-schema.md): the
    entry names a slot of a segment file in shm_dir (where this host sees
    gstcapture's shm.dir), which is mapped read-only the first time; the
    stream keeps at most 4 mapped, unmapping the oldest. A frame whose slot
    the writer has lapped before it is read, or whose segment file is gone,
    is skipped, counted in lapped and acknowledged in group mode: it is
    never returned. By default the frame's pixels are views on the slot,
    no copy: call Frame.check() after using them, since the writer laps a
    slot shm_slots frames after writing it. With shm_copy=True they are
    copied out of the slot, the copy checked, and check() has nothing to
    do. A segment that frames still view stays mapped until the last of
    those views is gone, even past close().

    Redis errors (connection refused or lost, timeouts, loading) are retried
    with exponential backoff from backoff[0] to backoff[1] seconds, keeping
    the position (the group's, or the last id read); after retry_timeout
    seconds of failures (None: forever) the next call raises
    redis.ConnectionError.

    read(timeout) returns None after timeout seconds without a frame;
    iteration stops (StopIteration) after the constructor's timeout (None:
    never). url is a redis:// URL or a redis.Redis made with
    decode_responses=False and a socket_timeout above POLL_SECONDS. Not safe
    for use from several threads, except close().
    """

    def __init__(self, url, camera=None, *, group=None, consumer=None, mode=None, stream=None,
                 start="$", claim_idle=30.0, claim_every=None, count=1, timeout=None,
                 retry_timeout=60.0, backoff=(0.1, 5.0), redis_timeout=5.0, shm_dir="/dev/shm",
                 shm_copy=False):
        template = stream or DEFAULT_STREAM
        if "{camera_id}" in template and not camera:
            raise ValueError(f"stream {template!r} needs camera=")
        self.key = template.replace("{camera_id}", camera or "")
        self.camera = camera
        if mode is None:
            mode = "group" if group else "latest"
        if mode not in ("group", "latest"):
            raise ValueError(f"mode must be 'group' or 'latest', not {mode!r}")
        if mode == "group" and not group:
            raise ValueError("group mode needs group=")
        if mode == "latest" and group:
            raise ValueError("latest mode reads without a consumer group; drop group= or use mode='group'")
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        if backoff[0] <= 0 or backoff[1] < backoff[0]:
            raise ValueError(f"backoff must be (initial > 0, max >= initial), not {backoff}")
        self.mode = mode
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.timeout = timeout
        self.retry_timeout = retry_timeout
        self._backoff = backoff
        self._count = count
        self._claim_idle_ms = None if claim_idle is None else int(claim_idle * 1000)
        self._claim_every = claim_every if claim_every is not None else (claim_idle or 0) / 2

        if isinstance(url, str):
            # No retries inside redis-py: _call's backoff is the only one, and
            # it must see every failure (latest mode re-checks the stream).
            self._r = redis.Redis.from_url(url, socket_timeout=POLL_SECONDS + redis_timeout,
                                           socket_connect_timeout=redis_timeout,
                                           retry=Retry(NoBackoff(), 0))
            self._own_client = True
        else:
            self._r = url
            self._own_client = False
        if self._r.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("the Redis client must use decode_responses=False: frames are binary")

        # Counters, for logs and metrics.
        self.stale_dropped = 0  # old owners' entries dropped
        self.gone = 0  # pending entries trimmed away before they were read again
        self.invalid = 0  # entries that raised EntryError
        self.claimed = 0  # frames taken over from other consumers
        self.redis_errors = 0  # failed Redis calls (each retried)
        self.lapped = 0  # shared-memory frames whose slot or segment was gone when read

        self._shm = shm.Segments(shm_dir, shm_copy)

        self._buf = collections.deque()  # (id, fields, redelivered) fetched, not yet returned
        self._cams = {}
        self._closed = False
        self._reading = False  # a read is in progress (close() may come from another thread)
        self._failing_since = None
        self._delay = backoff[0]
        self._recheck = False  # latest mode: a call failed, the stream may be new
        self._last_id = None  # latest mode: the last entry returned
        self._idle = False  # latest mode: the last wait saw no entry
        # Group mode.
        self._group_start = start
        self._need_group = mode == "group"
        self._own_cursor = "0"  # reading this consumer's own pending entries
        self._own_done = mode != "group"
        self._claim_cursor = "0-0"
        self._next_claim = 0.0
        self._outstanding = collections.OrderedDict()

    def __repr__(self):
        who = f" group={self.group} consumer={self.consumer}" if self.group else ""
        return f"FrameStream({self.key} {self.mode}{who})"

    # Reading.

    def read(self, timeout=_UNSET):
        """The next frame, or None after timeout seconds without one (default:
        the constructor's timeout; None waits for ever) or once closed."""
        if timeout is _UNSET:
            timeout = self.timeout
        self._reading = True
        try:
            return self._read(timeout)
        finally:
            self._reading = False
            if self._closed:
                self._disconnect()

    def _read(self, timeout):
        deadline = None if timeout is None else time.monotonic() + timeout
        first = True
        while not self._closed:
            while self._buf:
                frame = self._accept(*self._buf.popleft())
                if frame is not None:
                    return frame
            remaining = None if deadline is None else deadline - time.monotonic()
            if not first and remaining is not None and remaining <= 0:
                return None
            first = False
            block = POLL_SECONDS if remaining is None else max(0.0, min(POLL_SECONDS, remaining))
            if self.mode == "group":
                self._fill_group(block, deadline)
            else:
                self._fill_latest(block, deadline)
        return None

    def __iter__(self):
        return self

    def __next__(self):
        frame = self.read()
        if frame is None:
            raise StopIteration
        return frame

    def close(self):
        """Stops reading: read returns None, iteration stops. Closes the
        connections when the stream made its own client, and unmaps the
        shared-memory segments no frame still views. Called from another
        thread during a read, it takes effect within POLL_SECONDS: the
        reading thread closes the connections once its call returns (redis-py
        cannot close a connection under a thread reading it)."""
        self._closed = True
        if not self._reading:
            self._disconnect()

    def _disconnect(self):
        self._shm.close()
        if self._own_client:
            self._r.connection_pool.disconnect()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # Turning entries into frames.

    def _accept(self, eid, fields, redelivered):
        """The Frame of an entry, or None for one that is dropped."""
        eid = _str(eid)
        group = self.mode == "group"
        if not fields:  # a pending entry trimmed away: Redis returns its id alone
            self.gone += 1
            if group:
                self._xack(eid)
            return None
        try:
            frame = Frame(self.key, eid, fields, ack=self._ack if group else None)
            if frame.shm_segment is not None:
                self._shm.attach(frame)
        except shm.Gone:
            # Before the seq bookkeeping: the next frame counts it as lost.
            self.lapped += 1
            if group:
                self._xack(eid)
            return None
        except EntryError:
            self.invalid += 1
            if group:
                self._xack(eid)
            raise
        frame.redelivered = redelivered
        if not redelivered:
            cam = self._cams.get(frame.camera_id)
            if cam is None:
                cam = self._cams[frame.camera_id] = _Camera()
            if frame.epoch is not None:
                if cam.epoch is not None and frame.epoch < cam.epoch:
                    self.stale_dropped += 1
                    if group:
                        self._xack(eid)
                    return None
                cam.epoch = frame.epoch
            # A new instance (a restart, or a new owner in a fleet) numbers
            # from its own start: not a gap.
            if cam.seq is not None and cam.instance == frame.instance:
                if frame.seq > cam.seq:
                    frame.lost_before = frame.seq - cam.seq - 1
                    cam.seq = frame.seq
            else:
                cam.instance, cam.seq = frame.instance, frame.seq
        if group:
            self._outstanding[eid] = None
            if len(self._outstanding) > _MAX_OUTSTANDING:
                self._outstanding.popitem(last=False)
        return frame

    def _ack(self, eid):
        if self._closed:
            raise ValueError(f"{self!r} is closed: cannot ack {eid}")
        self._xack(eid)

    def _xack(self, eid):
        self._call(None, self._r.xack, self.key, self.group, eid)
        self._outstanding.pop(eid, None)

    # Fetching.

    @staticmethod
    def _block_ms(block):
        # BLOCK 0 would wait for ever: no BLOCK at all reads without waiting.
        return max(1, int(block * 1000)) if block > 0 else None

    def _fill_group(self, block, deadline):
        if self._need_group:
            try:
                if self._call(deadline, self._r.xgroup_create, self.key, self.group,
                              id=self._group_start, mkstream=True) is _GAVE_UP:
                    return
            except redis.ResponseError as e:
                if not str(e).startswith("BUSYGROUP"):
                    raise
            self._need_group = False
        try:
            if not self._own_done:
                res = self._call(deadline, self._r.xreadgroup, self.group, self.consumer,
                                 {self.key: self._own_cursor}, count=self._count)
                if res is _GAVE_UP:
                    return
                entries = res[0][1] if res else []
                if entries:
                    self._own_cursor = _str(entries[-1][0])
                    self._buf.extend((i, f, True) for i, f in entries)
                    return
                self._own_done = True
            if self._claim_idle_ms is not None and time.monotonic() >= self._next_claim:
                res = self._call(deadline, self._r.xautoclaim, self.key, self.group, self.consumer,
                                 self._claim_idle_ms, start_id=self._claim_cursor, count=self._count)
                if res is _GAVE_UP:
                    return
                self._claim_cursor = _str(res[0])
                if self._claim_cursor == "0-0":  # scanned the whole pending list
                    self._next_claim = time.monotonic() + self._claim_every
                got = [(i, f, True) for i, f in res[1]
                       if i is not None and _str(i) not in self._outstanding]
                self.claimed += len(got)
                self._buf.extend(got)
                if got or self._claim_cursor != "0-0":
                    return
            res = self._call(deadline, self._r.xreadgroup, self.group, self.consumer,
                             {self.key: ">"}, count=self._count, block=self._block_ms(block))
            if res is not _GAVE_UP and res:
                self._buf.extend((i, f, False) for i, f in res[0][1])
        except redis.ResponseError as e:
            if not str(e).startswith("NOGROUP"):
                raise
            # The stream and its group are gone (Redis restarted without its
            # data, or the key was deleted): everything in the new stream is
            # new, and its epochs and seqs may start again.
            self._need_group = True
            self._group_start = "0"
            self._own_done = True
            self._claim_cursor = "0-0"
            self._cams.clear()
            self._outstanding.clear()

    def _fill_latest(self, block, deadline):
        if self._last_id is None or self._recheck:
            res = self._call(deadline, self._r.xrevrange, self.key, "+", "-", count=1)
            if res is _GAVE_UP:
                return
            self._recheck = False
            if res:
                eid = _str(res[0][0])
                if self._last_id is None or eid != self._last_id:
                    if self._last_id is not None and _parse_id(eid) < _parse_id(self._last_id):
                        self._cams.clear()  # ids went back: a new stream
                    self._take_latest(res[0])
                    return
        else:
            res = self._call(deadline, self._r.xrevrange, self.key, "+", _after(self._last_id), count=1)
            if res is _GAVE_UP:
                return
            if res:
                self._take_latest(res[0])
                return
        # After a wait without entries, wait for whatever comes next ("$"),
        # not for ids above ours: a stream made again (Redis restarted
        # without its data; redis-py reconnects silently) may number below
        # the last id read. Otherwise ids above ours, so none is missed.
        since = "$" if self._idle and self._last_id else (self._last_id or "0-0")
        res = self._call(deadline, self._r.xread, {self.key: since}, count=1,
                         block=self._block_ms(block))
        if res is _GAVE_UP:
            return
        if not res:
            self._idle = block > 0
            return
        self._idle = False
        entry = res[0][1][0]
        if self._last_id is not None and _parse_id(_str(entry[0])) < _parse_id(self._last_id):
            self._cams.clear()  # ids went back: a new stream
        # XREAD returns the oldest entry after ours; more may have come since.
        newer = self._call(deadline, self._r.xrevrange, self.key, "+", _after(_str(entry[0])), count=1)
        self._take_latest(newer[0] if newer and newer is not _GAVE_UP else entry)

    def _take_latest(self, entry):
        self._last_id = _str(entry[0])
        self._buf.append((entry[0], entry[1], False))

    # Redis calls.

    def _call(self, deadline, fn, *args, **kwargs):
        """fn(*args, **kwargs), retried with backoff on connection errors and
        timeouts. Returns _GAVE_UP when the deadline passes (or the stream is
        closed) first; raises redis.ConnectionError once failures have lasted
        retry_timeout."""
        while True:
            try:
                res = fn(*args, **kwargs)
            except (redis.ConnectionError, redis.TimeoutError) as e:
                if self._closed:
                    return _GAVE_UP
                self.redis_errors += 1
                self._recheck = True
                now = time.monotonic()
                if self._failing_since is None:
                    self._failing_since, self._delay = now, self._backoff[0]
                failing = now - self._failing_since
                if self.retry_timeout is not None and failing >= self.retry_timeout:
                    raise redis.ConnectionError(
                        f"{self.key}: Redis failing for {failing:.1f} s, past retry_timeout "
                        f"{self.retry_timeout} s: {e}") from e
                pause = self._delay * random.uniform(0.5, 1.0)
                self._delay = min(2 * self._delay, self._backoff[1])
                if deadline is not None and now + pause >= deadline:
                    time.sleep(max(0.0, deadline - now))
                    return _GAVE_UP
                time.sleep(pause)
                continue
            self._failing_since = None
            return res
