package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"unsafe"

	"gstcapture/internal/frame"
)

// The segment layout, version 1. All integers are little endian; every
// offset is from the start of the file.
const (
	Magic   = "GSTCSHM1" // bytes 0-7
	Version = 1          // uint32 at 8

	offVersion    = 8   // uint32
	offSlots      = 12  // uint32: slots in the ring
	offSlotBytes  = 16  // uint64: bytes from one slot's pixels to the next
	offDataOffset = 24  // uint64: where slot 0's pixels start
	offWidth      = 32  // uint32
	offHeight     = 36  // uint32
	offStride     = 40  // uint32
	offFrameBytes = 44  // uint32: a frame's size at the segment's caps
	offFormat     = 48  // [16]byte, NUL-padded: BGR, RGB, I420, NV12, GRAY8
	offCameraID   = 64  // [64]byte, NUL-padded
	offInstance   = 128 // [32]byte, NUL-padded: the writer's process run (frame_id's)
	offSegment    = 160 // uint64: the segment's number in its process run

	// TableOffset is where the slot headers start, SlotHeaderBytes apart.
	TableOffset     = 256
	SlotHeaderBytes = 64
	// Within a slot header.
	SlotGen  = 0  // uint64: the seqlock; odd while the writer writes
	SlotSeq  = 8  // uint64: the frame's seq
	SlotSize = 16 // uint64: the frame's bytes in the slot

	pageBytes = 4096
)

// Prefix starts every segment file's name: "gstcapture.<camera_id>.<instance>.<n>".
// Camera ids hold no '.', so the name splits on it.
const Prefix = "gstcapture."

// MaxSlots bounds a segment's ring (config shm_slots).
const MaxSlots = 1024

// ErrLapped is the reader's error for a slot the writer has lapped: its
// generation is not the entry's any more, so its pixels are another
// frame's (or half of one).
var ErrLapped = errors.New("shm: slot lapped by the writer: the frame is gone")

// Loc is where one frame's pixels are: the entry fields shm_segment,
// shm_slot and shm_gen.
type Loc struct {
	Segment string // the file's name under the segment directory
	Slot    int
	Gen     uint64
}

// Name returns the file name of segment n of a camera in a process run.
func Name(cameraID, instance string, n uint64) string {
	return Prefix + cameraID + "." + instance + "." + strconv.FormatUint(n, 10)
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

// SegmentBytes is the size of a segment of slots slots for frames of
// frameBytes: what it takes of the tmpfs, and of the container's memory.
func SegmentBytes(slots, frameBytes int) int64 {
	return dataOffset(slots) + int64(slots)*roundUp(int64(max(frameBytes, 1)), pageBytes)
}

func dataOffset(slots int) int64 {
	return roundUp(TableOffset+int64(slots)*SlotHeaderBytes, pageBytes)
}

// gen returns slot i's generation word in a mapping.
func gen(mem []byte, i int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&mem[TableOffset+i*SlotHeaderBytes+SlotGen]))
}

// Caps is what a segment is made for: a frame of other caps needs a new
// segment.
type Caps struct {
	Format frame.Format
	Width  int
	Height int
	Stride int
	Bytes  int
}

// same reports whether frames of c fit a segment made for caps, their
// size apart.
func (caps Caps) same(c Caps) bool {
	return caps.Format == c.Format && caps.Width == c.Width && caps.Height == c.Height && caps.Stride == c.Stride
}

func capsOf(f *frame.Frame) Caps {
	return Caps{Format: f.Format, Width: f.Width, Height: f.Height, Stride: f.Stride, Bytes: len(f.Data)}
}

// segment is a mapped segment file.
type segment struct {
	name      string
	path      string
	file      *os.File
	mem       []byte
	caps      Caps
	slots     int
	slotBytes int64
	data      int64
}

func (s *segment) close(remove bool) error {
	var errs []error
	if s.mem != nil {
		errs = append(errs, syscall.Munmap(s.mem))
		s.mem = nil
	}
	if remove {
		// Before closing: the lock (held by the open file) tells a sweep the
		// file is in use until it is gone. A reader that has it mapped keeps
		// its pages until it unmaps.
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if s.file != nil {
		errs = append(errs, s.file.Close())
		s.file = nil
	}
	return errors.Join(errs...)
}

// WriterOptions configure a camera's Writer.
type WriterOptions struct {
	Dir      string // shm.dir
	CameraID string
	Instance string // the process run, as in frame_id
	Slots    int    // shm_slots
	// GID, when >= 0, is the group the files get (shm.group); they are
	// created 0640, so that group's consumers may read them.
	GID int
	// Counter numbers the segments of the process run, shared by every
	// camera so that a name is never used twice in a run.
	Counter *atomic.Uint64
}

// Writer puts one camera's frames into its segment. It is not safe for
// concurrent use: the camera's publish loop owns it.
type Writer struct {
	opts WriterOptions
	seg  *segment
	next int
}

// NewWriter returns a writer; it creates its first segment with the first
// frame, for that frame's caps.
func NewWriter(o WriterOptions) *Writer {
	if o.Counter == nil {
		o.Counter = new(atomic.Uint64)
	}
	o.Slots = min(max(o.Slots, 2), MaxSlots)
	return &Writer{opts: o}
}

// Segment returns the current segment's file name and size ("" and 0 before
// the first frame).
// Slots is the ring's length.
func (w *Writer) Slots() int { return w.opts.Slots }

func (w *Writer) Segment() (name string, bytes int64) {
	if w.seg == nil {
		return "", 0
	}
	return w.seg.name, int64(len(w.seg.mem))
}

// Put copies f's pixels into the next slot and returns where they are. A
// frame of new caps (a resolution change), or one larger than a slot (a
// compressed frame's size varies), starts a new segment, and the old one
// is removed. It does not release f.
func (w *Writer) Put(f *frame.Frame) (Loc, error) {
	if c := capsOf(f); w.seg == nil || !w.seg.caps.same(c) || int64(c.Bytes) > w.seg.slotBytes {
		if w.seg != nil && w.seg.caps.same(c) {
			c.Bytes += c.Bytes / 2 // grown: room for the next larger ones
		}
		seg, err := w.create(c)
		if err != nil {
			return Loc{}, err
		}
		if w.seg != nil {
			_ = w.seg.close(true)
		}
		w.seg, w.next = seg, 0
	}
	s := w.seg
	i := w.next
	w.next = (i + 1) % s.slots
	g := gen(s.mem, i)
	// Even between writes: only this writer writes the slot.
	odd := g.Load() + 1
	g.Store(odd) // readers of the slot now fail their check
	off := s.data + int64(i)*s.slotBytes
	copy(s.mem[off:off+int64(len(f.Data))], f.Data)
	hdr := TableOffset + i*SlotHeaderBytes
	binary.LittleEndian.PutUint64(s.mem[hdr+SlotSeq:], f.Seq)
	binary.LittleEndian.PutUint64(s.mem[hdr+SlotSize:], uint64(len(f.Data)))
	g.Store(odd + 1)
	return Loc{Segment: s.name, Slot: i, Gen: odd + 1}, nil
}

// Close removes the camera's segment: the camera is gone.
func (w *Writer) Close() error {
	if w.seg == nil {
		return nil
	}
	err := w.seg.close(true)
	w.seg = nil
	return err
}

// create makes a segment for caps c: created exclusively, 0640, chowned to
// the group, its pages reserved (so a full tmpfs fails here with ENOSPC, not
// later with SIGBUS on a write into the mapping), locked and mapped.
func (w *Writer) create(c Caps) (*segment, error) {
	o := w.opts
	n := o.Counter.Add(1)
	name := Name(o.CameraID, o.Instance, n)
	path := filepath.Join(o.Dir, name)
	size := SegmentBytes(o.Slots, c.Bytes)
	fail := func(what string, err error) (*segment, error) {
		return nil, fmt.Errorf("shm: camera %s: segment %s: %s: %w", o.CameraID, path, what, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fail("create", err)
	}
	seg := &segment{name: name, path: path, file: f, caps: c, slots: o.Slots,
		slotBytes: roundUp(int64(max(c.Bytes, 1)), pageBytes), data: dataOffset(o.Slots)}
	bad := func(what string, err error) (*segment, error) {
		_ = seg.close(true)
		return fail(what, err)
	}
	fd := int(f.Fd())
	if err := tryLock(f); err != nil {
		return bad("lock", err)
	}
	// The umask may have taken bits off the mode.
	if err := f.Chmod(0o640); err != nil {
		return bad("chmod 0640", err)
	}
	if o.GID >= 0 {
		if err := f.Chown(-1, o.GID); err != nil {
			return bad(fmt.Sprintf("chown to group %d (shm.group)", o.GID), err)
		}
	}
	if err := syscall.Fallocate(fd, 0, 0, size); err != nil {
		return bad(fmt.Sprintf("reserve %d bytes (is %s full? a container's /dev/shm is 64 MiB unless raised)", size, o.Dir), err)
	}
	mem, err := syscall.Mmap(fd, 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return bad("mmap", err)
	}
	seg.mem = mem
	copy(mem, Magic)
	le := binary.LittleEndian
	le.PutUint32(mem[offVersion:], Version)
	le.PutUint32(mem[offSlots:], uint32(o.Slots))
	le.PutUint64(mem[offSlotBytes:], uint64(seg.slotBytes))
	le.PutUint64(mem[offDataOffset:], uint64(seg.data))
	le.PutUint32(mem[offWidth:], uint32(c.Width))
	le.PutUint32(mem[offHeight:], uint32(c.Height))
	le.PutUint32(mem[offStride:], uint32(c.Stride))
	le.PutUint32(mem[offFrameBytes:], uint32(c.Bytes))
	copy(mem[offFormat:offFormat+16], c.Format)
	copy(mem[offCameraID:offCameraID+64], o.CameraID)
	copy(mem[offInstance:offInstance+32], o.Instance)
	le.PutUint64(mem[offSegment:], n)
	return seg, nil
}

// Sweep removes the segment files under dir that no live writer holds:
// those of a gstcapture that died without removing them (each writer keeps
// an exclusive lock on its open file). It returns the names it removed.
// Writers in other containers that share the directory hold their locks
// too, so their files stay.
func Sweep(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("shm: sweep %s: %w", dir, err)
	}
	var removed []string
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), Prefix) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		if tryLock(f) == nil {
			if os.Remove(path) == nil {
				removed = append(removed, e.Name())
			}
		}
		_ = f.Close()
	}
	return removed, nil
}

// tryLock takes f's exclusive lock, or fails at once. flock locks belong
// to the open file: another open of the same file, in any process, fails.
func tryLock(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}

// Segment is a reader's mapping of one segment file, read-only.
type Segment struct {
	Name      string
	Caps      Caps
	CameraID  string
	slots     int
	slotBytes int64
	data      int64
	mem       []byte
}

// Open maps the segment file dir/name for reading and checks its header.
func Open(dir, name string) (*Segment, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") || !strings.HasPrefix(name, Prefix) {
		return nil, fmt.Errorf("shm: segment name %q: not a gstcapture segment file name", name)
	}
	path := filepath.Join(dir, name)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("shm: open segment: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("shm: segment %s: %w", path, err)
	}
	if st.Size() < TableOffset {
		return nil, fmt.Errorf("shm: segment %s: %d bytes, shorter than its header", path, st.Size())
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("shm: segment %s: mmap: %w", path, err)
	}
	s, err := parseHeader(name, mem)
	if err != nil {
		_ = syscall.Munmap(mem)
		return nil, fmt.Errorf("shm: segment %s: %w", path, err)
	}
	return s, nil
}

func cstr(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}

func parseHeader(name string, mem []byte) (*Segment, error) {
	le := binary.LittleEndian
	if string(mem[:8]) != Magic {
		return nil, fmt.Errorf("bad magic %q (want %q)", mem[:8], Magic)
	}
	if v := le.Uint32(mem[offVersion:]); v != Version {
		return nil, fmt.Errorf("layout version %d, this reader knows %d", v, Version)
	}
	s := &Segment{Name: name, mem: mem,
		slots:     int(le.Uint32(mem[offSlots:])),
		slotBytes: int64(le.Uint64(mem[offSlotBytes:])),
		data:      int64(le.Uint64(mem[offDataOffset:])),
		CameraID:  cstr(mem[offCameraID : offCameraID+64]),
		Caps: Caps{
			Format: frame.Format(cstr(mem[offFormat : offFormat+16])),
			Width:  int(le.Uint32(mem[offWidth:])), Height: int(le.Uint32(mem[offHeight:])),
			Stride: int(le.Uint32(mem[offStride:])), Bytes: int(le.Uint32(mem[offFrameBytes:])),
		},
	}
	// Each bound before the next is computed from it: a hostile header
	// must not overflow the sums into a pass.
	size := int64(len(mem))
	if s.slots < 1 || s.slots > MaxSlots || s.slotBytes < 1 || s.slotBytes > size || s.data < 0 || s.data > size ||
		s.data < TableOffset+int64(s.slots)*SlotHeaderBytes || int64(s.slots)*s.slotBytes > size-s.data {
		return nil, fmt.Errorf("header does not fit the file: %d slots of %d bytes from %d in %d bytes",
			s.slots, s.slotBytes, s.data, len(mem))
	}
	return s, nil
}

// Slots is the number of slots in the ring.
func (s *Segment) Slots() int { return s.slots }

// View returns the pixels of loc's slot, size bytes, without copying, after
// checking that the slot still holds generation loc.Gen. The bytes stay
// mapped until Close, but the writer may lap the slot at any time: call
// Check after using them, and discard what was computed if it fails.
func (s *Segment) View(loc Loc, size int) ([]byte, error) {
	if loc.Slot < 0 || loc.Slot >= s.slots {
		return nil, fmt.Errorf("shm: segment %s: slot %d out of range (%d slots)", s.Name, loc.Slot, s.slots)
	}
	if size < 0 || int64(size) > s.slotBytes {
		return nil, fmt.Errorf("shm: segment %s: size %d does not fit a slot of %d bytes", s.Name, size, s.slotBytes)
	}
	if err := s.Check(loc); err != nil {
		return nil, err
	}
	off := s.data + int64(loc.Slot)*s.slotBytes
	return s.mem[off : off+int64(size) : off+int64(size)], nil
}

// Check reports ErrLapped unless loc's slot still holds generation
// loc.Gen, complete (an odd generation is a write in progress).
func (s *Segment) Check(loc Loc) error {
	if loc.Slot < 0 || loc.Slot >= s.slots {
		return fmt.Errorf("shm: segment %s: slot %d out of range (%d slots)", s.Name, loc.Slot, s.slots)
	}
	if s.mem == nil {
		return ErrLapped // closed: nothing to read any more
	}
	if g := gen(s.mem, loc.Slot).Load(); g != loc.Gen || g&1 == 1 {
		return ErrLapped
	}
	return nil
}

// Copy copies loc's pixels into dst (grown as needed) and checks the
// generation after the copy: the bytes returned are the frame's, whole.
func (s *Segment) Copy(dst []byte, loc Loc, size int) ([]byte, error) {
	v, err := s.View(loc, size)
	if err != nil {
		return dst, err
	}
	dst = append(dst[:0], v...)
	if err := s.Check(loc); err != nil {
		return dst[:0], err
	}
	return dst, nil
}

// Close unmaps the segment.
func (s *Segment) Close() error {
	if s.mem == nil {
		return nil
	}
	err := syscall.Munmap(s.mem)
	s.mem = nil
	return err
}
