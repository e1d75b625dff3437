// Package shm owns shared-memory delivery (delivery: shm): the segment
// files a camera's pixels go into instead of Redis, their layout, the
// writer's seqlock and the reader's check of it. One fact, one place: the
// publisher writes through Writer, and the Go client (gstcapture/client)
// reads through Segment; docs/redis-schema.md describes the same layout
// for readers in other languages (clients/python).
//
// A segment is one file under shm.dir (default /dev/shm, a tmpfs): a
// header, a table of slot headers and a ring of slots, each big enough for
// one frame of the segment's caps. The writer puts each frame in the next
// slot; the slot's generation is odd while it writes and even after, and
// the Redis entry names the segment, the slot and the even generation. A
// reader checks the generation before and after it reads the pixels: any
// other value means the writer has lapped the slot, and the frame is gone.
//
// It may import only the standard library and internal/frame.
package shm
