package publish

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"gstcapture/internal/frame"
	"gstcapture/internal/lease"
	"gstcapture/internal/shm"
)

// SchemaVersion is the value of the "v" field of every entry.
const SchemaVersion = "1"

// Field names of a schema v1 entry, in the order they are written.
const (
	FieldVersion     = "v"
	FieldFrameID     = "frame_id"
	FieldCameraID    = "camera_id"
	FieldSeq         = "seq"
	FieldTS          = "ts"
	FieldTSSource    = "ts_source"
	FieldPTS         = "pts"
	FieldWidth       = "width"
	FieldHeight      = "height"
	FieldFormat      = "format"
	FieldStride      = "stride"
	FieldSizeBytes   = "size_bytes"
	FieldData        = "data"
	FieldTraceParent = "traceparent"
	FieldTraceState  = "tracestate"
	FieldFlags       = "flags"
	// Written only by a fleet replica (fleet.enabled), after every other
	// field: the replica that captured the frame and its lease's epoch.
	FieldOwner = "owner"
	FieldEpoch = "epoch"
	// Written instead of data by a camera with delivery shm, last: where
	// the pixels are (internal/shm.Loc).
	FieldShmSegment = "shm_segment"
	FieldShmSlot    = "shm_slot"
	FieldShmGen     = "shm_gen"
)

// CameraIDPlaceholder is replaced by the camera id in Options.Stream.
const CameraIDPlaceholder = "{camera_id}"

// DefaultStream is the stream key template used when Options.Stream is empty.
const DefaultStream = "frames:" + CameraIDPlaceholder

// StreamKey renders a stream key template for one camera.
func StreamKey(template, cameraID string) string {
	return strings.ReplaceAll(template, CameraIDPlaceholder, cameraID)
}

// FrameID returns the frame_id of frame seq of a camera published by the
// process run instance: "<camera_id>-<instance>-<seq>".
func FrameID(cameraID, instance string, seq uint64) string {
	return cameraID + "-" + instance + "-" + strconv.FormatUint(seq, 10)
}

// NewInstanceID returns an id for this process run: the start time in
// base 36 seconds, a dot, and 8 random hex digits. It contains no '-', so a
// frame_id can be split from the right even when camera ids contain dashes.
// The time part keeps ids readable and sortable; the random part keeps two
// processes started in the same second apart.
func NewInstanceID() string {
	var r [4]byte
	_, _ = rand.Read(r[:]) // crypto/rand.Read never fails on supported platforms
	return strconv.FormatInt(time.Now().Unix(), 36) + "." + hex.EncodeToString(r[:])
}

// Encoder builds complete XADD argument lists for one camera's stream
// without allocating per frame.
//
// Every value is handed to go-redis as a pointer into scratch storage owned
// by the Encoder (go-redis formats *int, *uint64 and *string itself, and
// byte slices through encoding.BinaryMarshaler), because boxing a fresh
// string, integer or slice header into an interface allocates. The
// arguments therefore stay valid only until the next Reset, and the frames
// passed to Append must stay unreleased until go-redis has written them.
//
// An Encoder is not safe for concurrent use; the publisher keeps one per
// camera loop.
type Encoder struct {
	stream   any // boxed once: the key must be a plain string for cluster slot lookup
	maxLen   any
	trim     bool
	cameraID string
	idPrefix []byte // "<camera_id>-<instance>-"
	slots    []*entry
	n        int
	fence    *fenceArgs // nil: plain XADD
}

// fenceArgs are the boxed arguments of a fenced write (lease.FencedXAdd).
type fenceArgs struct {
	lease, epochKey, token, owner, epoch, ms any
}

// entry is the scratch storage for one frame's values.
type entry struct {
	seq         uint64
	ts, pts     int64
	width       int
	height      int
	stride      int
	size        int
	tsSource    string
	format      string
	traceParent string
	traceState  string
	flags       string
	frameID     bytesArg
	data        bytesArg
	shmSegment  string
	shmSlot     int
	shmGen      uint64
}

// bytesArg lets go-redis write a byte slice held in reused storage.
type bytesArg struct{ b []byte }

// MarshalBinary returns the bytes themselves; go-redis writes them as a bulk
// string without copying them elsewhere first.
func (a *bytesArg) MarshalBinary() ([]byte, error) { return a.b, nil }

// NewEncoder returns an Encoder for the camera's stream key. maxLen > 0 adds
// "MAXLEN ~ maxLen" to every XADD.
func NewEncoder(stream, cameraID, instance string, maxLen int64) *Encoder {
	e := &Encoder{stream: stream, cameraID: cameraID, trim: maxLen > 0, maxLen: maxLen}
	e.idPrefix = append(e.idPrefix, cameraID...)
	e.idPrefix = append(e.idPrefix, '-')
	e.idPrefix = append(e.idPrefix, instance...)
	e.idPrefix = append(e.idPrefix, '-')
	return e
}

// SetMaxLen changes the MAXLEN of the following XADDs; n <= 0 drops it.
func (e *Encoder) SetMaxLen(n int64) { e.trim, e.maxLen = n > 0, n }

// Fence makes the following entries fenced writes under t: each XADD runs
// in lease.FencedXAdd, which refuses it unless t still holds the camera's
// lease, and each entry ends with the owner and epoch fields.
func (e *Encoder) Fence(t FenceToken) {
	epoch := strconv.FormatUint(t.Epoch, 10)
	e.fence = &fenceArgs{
		lease: t.Keys.Lease, epochKey: t.Keys.Epoch,
		token: lease.Token(t.Owner, t.Epoch), owner: t.Owner, epoch: epoch,
		ms: strconv.FormatInt(t.TTL.Milliseconds(), 10),
	}
}

// ArgsPerEntry is the most arguments Append adds for one frame.
const ArgsPerEntry = 11 + 2*21

// Append appends "XADD <key> [MAXLEN ~ n] * <field> <value> ..." for f to
// dst and returns the extended slice.
func (e *Encoder) Append(dst []any, f *frame.Frame) []any { return e.AppendAt(dst, f, nil) }

// AppendAt is Append for a frame whose pixels are at loc in shared memory
// (delivery shm): the entry has no data field and ends with shm_segment,
// shm_slot and shm_gen. loc nil is Append.
func (e *Encoder) AppendAt(dst []any, f *frame.Frame, loc *shm.Loc) []any {
	if e.n == len(e.slots) {
		e.slots = append(e.slots, &entry{})
	}
	s := e.slots[e.n]
	e.n++

	s.seq = f.Seq
	s.ts = 0
	if !f.CaptureTime.IsZero() {
		s.ts = f.CaptureTime.UnixNano()
	}
	s.pts = -1
	if f.PTS >= 0 {
		s.pts = int64(f.PTS)
	}
	s.width, s.height, s.stride, s.size = f.Width, f.Height, f.Stride, len(f.Data)
	s.tsSource = string(f.CaptureSource)
	s.format = string(f.Format)
	s.traceParent, s.traceState, s.flags = f.TraceParent, f.TraceState, f.Flags
	s.frameID.b = strconv.AppendUint(append(s.frameID.b[:0], e.idPrefix...), f.Seq, 10)
	s.data.b = f.Data

	if fc := e.fence; fc != nil {
		var maxLen any = "0"
		if e.trim {
			maxLen = e.maxLen
		}
		dst = append(dst, "eval", lease.FencedXAdd, 3, fc.lease, fc.epochKey, e.stream,
			fc.token, fc.owner, fc.epoch, fc.ms, maxLen)
	} else {
		dst = append(dst, "xadd", e.stream)
		if e.trim {
			dst = append(dst, "maxlen", "~", e.maxLen)
		}
		dst = append(dst, "*")
	}
	dst = append(dst,
		FieldVersion, SchemaVersion,
		FieldFrameID, &s.frameID,
		FieldCameraID, &e.cameraID,
		FieldSeq, &s.seq,
		FieldTS, &s.ts,
		FieldTSSource, &s.tsSource,
		FieldPTS, &s.pts,
		FieldWidth, &s.width,
		FieldHeight, &s.height,
		FieldFormat, &s.format,
		FieldStride, &s.stride,
		FieldSizeBytes, &s.size,
	)
	if loc == nil {
		dst = append(dst, FieldData, &s.data)
	}
	if s.traceParent != "" {
		dst = append(dst, FieldTraceParent, &s.traceParent)
	}
	if s.traceState != "" {
		dst = append(dst, FieldTraceState, &s.traceState)
	}
	// Optional, hence last: only frames a pass rule flagged carry it.
	if s.flags != "" {
		dst = append(dst, FieldFlags, &s.flags)
	}
	if fc := e.fence; fc != nil {
		dst = append(dst, FieldOwner, fc.owner, FieldEpoch, fc.epoch)
	}
	if loc != nil {
		s.shmSegment, s.shmSlot, s.shmGen = loc.Segment, loc.Slot, loc.Gen
		dst = append(dst, FieldShmSegment, &s.shmSegment, FieldShmSlot, &s.shmSlot, FieldShmGen, &s.shmGen)
	}
	return dst
}

// Reset makes every slot reusable and drops the references to pixel data,
// so released GStreamer memory is not reachable from the Encoder.
func (e *Encoder) Reset() {
	for _, s := range e.slots[:e.n] {
		s.data.b = nil
		s.traceParent, s.traceState, s.flags, s.shmSegment = "", "", "", ""
	}
	e.n = 0
}
