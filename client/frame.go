// Package client reads the frames gstcapture publishes to Redis Streams
// (docs/redis-schema.md, schema v1) for consumers written in Go: typed
// entries, the pixels' planes as slices of the bytes Redis returned (no
// copy), seq gaps, stale fleet epochs dropped, consumer groups with
// reclaiming of dead consumers' entries, and a latest-frame mode. The
// Python client (clients/python) reads the same way.
package client

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"gstcapture/internal/shm"
)

// Schema v1's fields (internal/publish's Field* names; TestFieldsMatchThePublisher).
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
	FieldOwner       = "owner"
	FieldEpoch       = "epoch"
	// delivery shm: instead of data, where the pixels are.
	FieldShmSegment = "shm_segment"
	FieldShmSlot    = "shm_slot"
	FieldShmGen     = "shm_gen"
)

// KnownMajor is the schema's major version this package reads; version 1
// gains optional fields only at the end of an entry.
const KnownMajor = 1

// ErrVersion is wrapped by the error of an entry whose schema version this
// package does not read.
var ErrVersion = errors.New("unknown schema version")

// EntryError says which entry of which stream is bad, and why.
type EntryError struct {
	Stream, ID string
	Err        error
}

func (e *EntryError) Error() string { return fmt.Sprintf("%s entry %s: %v", e.Stream, e.ID, e.Err) }
func (e *EntryError) Unwrap() error { return e.Err }

// Frame is one entry of a camera's stream.
type Frame struct {
	Stream, ID string // the stream key and the entry id
	Version    string
	FrameID    string // "<camera_id>-<instance>-<seq>"
	CameraID   string
	Instance   string // the capture process run, from FrameID
	Seq        uint64
	TS         time.Time // capture time
	TSSource   string
	PTS        int64 // ns, -1 unknown
	Width      int
	Height     int
	Format     string // BGR, RGB, GRAY8, I420, NV12, JPEG
	Stride     int    // 0 for JPEG
	SizeBytes  int
	// Data is the pixels (JPEG: the JPEG file), read-only: they share
	// Redis's reply, or, for a shared-memory entry read by a Reader, the
	// mapped slot (see Check).
	Data        []byte
	TraceParent string
	TraceState  string
	Flags       []string // validation rules the frame failed with action pass
	Owner       string   // the fleet replica that wrote it ("" outside a fleet)
	Epoch       int64    // its lease epoch; -1 outside a fleet
	// Shm is where the pixels are when the camera has delivery shm: the
	// entry has no data, and a Reader fills Data from the segment; nil
	// for an entry with data.
	Shm *shm.Loc
	seg *shm.Segment // the mapping Data views, for Check

	// Set by the Reader: LostBefore is how many seq values were skipped
	// since the previous frame of this camera it returned (0 for the first,
	// after a capture restart and for a redelivered frame); Redelivered
	// marks a frame read again from the group's pending list.
	LostBefore  uint64
	Redelivered bool

	ack func(id string) error
}

// Parse reads an entry as go-redis returns it (XMessage.Values).
func Parse(stream, id string, values map[string]any) (*Frame, error) {
	f := &Frame{Stream: stream, ID: id, PTS: -1, Epoch: -1}
	bad := func(format string, args ...any) (*Frame, error) {
		return nil, &EntryError{Stream: stream, ID: id, Err: fmt.Errorf(format, args...)}
	}
	text := func(name string) (string, bool) {
		v, ok := values[name]
		if !ok {
			return "", false
		}
		s, ok := v.(string)
		return s, ok
	}
	f.Version, _ = text(FieldVersion)
	major, _, _ := strings.Cut(f.Version, ".")
	if n, err := strconv.Atoi(major); err != nil || n != KnownMajor {
		return nil, &EntryError{Stream: stream, ID: id, Err: fmt.Errorf("%w %q (this client reads %d)", ErrVersion, f.Version, KnownMajor)}
	}
	var ok bool
	for _, req := range []struct {
		name string
		dst  *string
	}{{FieldFrameID, &f.FrameID}, {FieldCameraID, &f.CameraID}, {FieldFormat, &f.Format}} {
		if *req.dst, ok = text(req.name); !ok || *req.dst == "" {
			return bad("field %q is missing", req.name)
		}
	}
	ints := []struct {
		name     string
		required bool
		set      func(int64)
	}{
		{FieldSeq, true, func(n int64) { f.Seq = uint64(n) }},
		{FieldTS, true, func(n int64) { f.TS = time.Unix(0, n) }},
		{FieldPTS, false, func(n int64) { f.PTS = n }},
		{FieldWidth, true, func(n int64) { f.Width = int(n) }},
		{FieldHeight, true, func(n int64) { f.Height = int(n) }},
		{FieldStride, true, func(n int64) { f.Stride = int(n) }},
		{FieldSizeBytes, true, func(n int64) { f.SizeBytes = int(n) }},
		{FieldEpoch, false, func(n int64) { f.Epoch = n }},
	}
	for _, in := range ints {
		s, ok := text(in.name)
		if !ok {
			if in.required {
				return bad("field %q is missing", in.name)
			}
			continue
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || (n < 0 && in.name != FieldPTS) {
			return bad("field %q is not a count: %.40q", in.name, s)
		}
		in.set(n)
	}
	if seg, ok := text(FieldShmSegment); ok {
		slot, err1 := strconv.Atoi(func() string { s, _ := text(FieldShmSlot); return s }())
		gen, err2 := strconv.ParseUint(func() string { s, _ := text(FieldShmGen); return s }(), 10, 64)
		if seg == "" || err1 != nil || err2 != nil || slot < 0 {
			return bad("fields %q, %q and %q do not name a slot", FieldShmSegment, FieldShmSlot, FieldShmGen)
		}
		f.Shm = &shm.Loc{Segment: seg, Slot: slot, Gen: gen}
	} else {
		data, ok := text(FieldData)
		if !ok {
			return bad("field %q is missing", FieldData)
		}
		// The string go-redis read, as bytes without a copy: read-only.
		f.Data = unsafe.Slice(unsafe.StringData(data), len(data))
	}
	f.TSSource, _ = text(FieldTSSource)
	f.TraceParent, _ = text(FieldTraceParent)
	f.TraceState, _ = text(FieldTraceState)
	f.Owner, _ = text(FieldOwner)
	if fl, _ := text(FieldFlags); fl != "" {
		f.Flags = strings.Split(fl, ",")
	}
	// The camera id may hold '-', the instance does not: split from the right.
	if head, _, ok := cutLast(f.FrameID, "-"); ok {
		if _, inst, ok := cutLast(head, "-"); ok {
			f.Instance = inst
		}
	}
	return f, nil
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

// Plane is one plane of a frame: Rows rows of Stride bytes, of which the
// first Width×BytesPerPixel are pixels and the rest padding.
type Plane struct {
	Data          []byte // a slice of Frame.Data, not a copy
	Width, Rows   int
	Stride        int
	BytesPerPixel int
}

// Row returns row y's pixels, without the padding.
func (p Plane) Row(y int) []byte {
	return p.Data[y*p.Stride : y*p.Stride+p.Width*p.BytesPerPixel]
}

func roundUp4(n int) int { return (n + 3) &^ 3 }

// FormatJPEG is the format of entries that hold a JPEG file instead of
// raw pixels (gstcapture's format: JPEG).
const FormatJPEG = "JPEG"

// Planes returns the frame's planes as slices of Data, following
// GStreamer's default layout (each plane's rows padded to 4 bytes): one
// for BGR, RGB and GRAY8; Y, U, V for I420; Y, UV (interleaved, U first)
// for NV12. Chroma planes round up for odd sizes. A JPEG frame has none:
// use Image, or JPEG for its bytes.
func (f *Frame) Planes() ([]Plane, error) {
	w, h, s := f.Width, f.Height, f.Stride
	if f.Format == FormatJPEG {
		return nil, f.layoutErr("a JPEG frame has no planes: use Image to decode it, or JPEG for its bytes")
	}
	if w <= 0 || h <= 0 {
		return nil, f.layoutErr("width and height must be positive")
	}
	cw, ch := (w+1)/2, (h+1)/2
	type pl struct{ off, w, rows, stride, bpp int }
	var ps []pl
	switch f.Format {
	case "BGR", "RGB":
		ps = []pl{{0, w, h, s, 3}}
	case "GRAY8":
		ps = []pl{{0, w, h, s, 1}}
	case "I420":
		cs := roundUp4(cw)
		ps = []pl{{0, w, h, s, 1}, {s * h, cw, ch, cs, 1}, {s*h + cs*ch, cw, ch, cs, 1}}
	case "NV12":
		ps = []pl{{0, w, h, s, 1}, {s * h, cw, ch, s, 2}}
	default:
		return nil, f.layoutErr("unknown format %q", f.Format)
	}
	if s < ps[0].w*ps[0].bpp {
		return nil, f.layoutErr("stride %d is shorter than a row of %d pixels", s, w)
	}
	last := ps[len(ps)-1]
	size := last.off + last.stride*last.rows
	if len(f.Data) != size || f.SizeBytes != size {
		return nil, f.layoutErr("the layout needs %d bytes, the entry has %d (size_bytes %d)", size, len(f.Data), f.SizeBytes)
	}
	out := make([]Plane, len(ps))
	for i, p := range ps {
		out[i] = Plane{Data: f.Data[p.off : p.off+p.stride*p.rows : p.off+p.stride*p.rows], Width: p.w, Rows: p.rows, Stride: p.stride, BytesPerPixel: p.bpp}
	}
	return out, nil
}

func (f *Frame) layoutErr(format string, args ...any) error {
	return &EntryError{Stream: f.Stream, ID: f.ID, Err: fmt.Errorf("%s %dx%d stride %d: %s", f.Format, f.Width, f.Height, f.Stride, fmt.Sprintf(format, args...))}
}

// Image returns the frame as an image.Image over Data, without copying:
// *image.Gray for GRAY8, *image.YCbCr (4:2:0) for I420, *Packed for BGR and
// RGB. NV12's interleaved chroma has no such type: use Planes. A JPEG
// frame is decoded (image/jpeg, into new memory: *image.YCbCr for colour,
// *image.Gray for grey), and must be Width x Height.
func (f *Frame) Image() (image.Image, error) {
	if f.Format == FormatJPEG {
		return f.decodeJPEG()
	}
	ps, err := f.Planes()
	if err != nil {
		return nil, err
	}
	r := image.Rect(0, 0, f.Width, f.Height)
	switch f.Format {
	case "GRAY8":
		return &image.Gray{Pix: ps[0].Data, Stride: ps[0].Stride, Rect: r}, nil
	case "I420":
		return &image.YCbCr{Y: ps[0].Data, Cb: ps[1].Data, Cr: ps[2].Data, YStride: ps[0].Stride, CStride: ps[1].Stride,
			SubsampleRatio: image.YCbCrSubsampleRatio420, Rect: r}, nil
	case "BGR", "RGB":
		return &Packed{Pix: ps[0].Data, Stride: ps[0].Stride, Rect: r, BGR: f.Format == "BGR"}, nil
	}
	return nil, f.layoutErr("no image.Image for %s: use Planes", f.Format)
}

// JPEG returns a JPEG frame's bytes, the JPEG file as it is (a slice of
// Data, read-only), for a consumer that decodes it itself or passes it on
// (a shared-memory frame's: Check after using them).
func (f *Frame) JPEG() ([]byte, error) {
	if f.Format != FormatJPEG {
		return nil, &EntryError{Stream: f.Stream, ID: f.ID, Err: fmt.Errorf("format %s, not JPEG: use Planes or Image", f.Format)}
	}
	if len(f.Data) != f.SizeBytes {
		return nil, f.layoutErr("the entry has %d bytes, size_bytes says %d", len(f.Data), f.SizeBytes)
	}
	return f.Data, nil
}

// decodeJPEG decodes a JPEG frame into new memory; a shared-memory slot
// lapped while it was read is an error (Check).
func (f *Frame) decodeJPEG() (image.Image, error) {
	b, err := f.JPEG()
	if err != nil {
		return nil, err
	}
	img, err := jpeg.Decode(bytes.NewReader(b))
	if cerr := f.Check(); cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, f.layoutErr("decode: %v", err)
	}
	if got := img.Bounds(); got.Dx() != f.Width || got.Dy() != f.Height {
		return nil, f.layoutErr("the JPEG is %dx%d", got.Dx(), got.Dy())
	}
	return img, nil
}

// Check reports whether Data still holds this frame: for a shared-memory
// frame read without Options.ShmCopy, the writer may lap its slot at any
// time (shm_slots frames later), so check after using Data and discard
// what was computed when it returns an error (shm.ErrLapped). Other frames
// always pass.
func (f *Frame) Check() error {
	if f.seg == nil || f.Shm == nil {
		return nil
	}
	if err := f.seg.Check(*f.Shm); err != nil {
		return &EntryError{Stream: f.Stream, ID: f.ID, Err: err}
	}
	return nil
}

// Ack acknowledges the frame in its consumer group (a Reader in group
// mode); in latest mode it does nothing.
func (f *Frame) Ack() error {
	if f.ack == nil {
		return nil
	}
	return f.ack(f.ID)
}
