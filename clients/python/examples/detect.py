#!/usr/bin/env python3
"""Reads a camera's frames from gstcapture's Redis stream and prints, per
frame, its shape, seq, frames lost before it and capture-to-here latency;
acknowledges each in group mode. A stand-in for a detector.

    python3 examples/detect.py --url redis://127.0.0.1:6379/0 --camera cam1 --group detector
    python3 examples/detect.py --camera cam1 --latest --count 20
    python3 examples/detect.py --camera cam1 --shm-dir /dev/shm   # delivery shm

Cameras with delivery shm need no option when gstcapture's shm.dir is
/dev/shm here too: the pixels are read from the segment it names.
"""

import argparse
import sys

from gstcapture_client import EntryError, FrameStream, SlotLapped


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="redis://127.0.0.1:6379/0", help="Redis URL (gstcapture's redis.url)")
    p.add_argument("--camera", required=True, help="camera id (stream frames:<camera>)")
    p.add_argument("--group", default="detector", help="consumer group (group mode)")
    p.add_argument("--consumer", help="consumer name, unique per process (default host-pid)")
    p.add_argument("--start", default="$", help="where a new group starts: $ (new frames) or 0 (what the stream holds)")
    p.add_argument("--latest", action="store_true", help="always the newest frame, no group")
    p.add_argument("--count", type=int, default=0, help="stop after this many frames (0: never)")
    p.add_argument("--timeout", type=float, help="stop after this many seconds without a frame")
    p.add_argument("--shm-dir", default="/dev/shm",
                   help="where this host sees gstcapture's shm.dir (cameras with delivery shm)")
    p.add_argument("--shm-copy", action="store_true",
                   help="copy shared-memory pixels out of their slot instead of viewing them")
    args = p.parse_args()

    opts = {"mode": "latest"} if args.latest else {"group": args.group, "consumer": args.consumer, "start": args.start}
    n = 0
    with FrameStream(args.url, camera=args.camera, timeout=args.timeout, shm_dir=args.shm_dir,
                     shm_copy=args.shm_copy, **opts) as frames:
        while True:
            try:
                f = frames.read()
            except EntryError as e:  # not a frame this client can read: say so, go on
                print(f"skipped: {e}", file=sys.stderr)
                continue
            if f is None:  # --timeout without a frame
                break
            shape = "x".join(str(d) for d in f.image.shape) if f.format in ("BGR", "RGB", "GRAY8") \
                else "+".join("x".join(map(str, pl.shape)) for pl in f.planes)
            try:
                f.check()  # viewed in shared memory: were they still this frame's pixels?
            except SlotLapped as e:  # no, the writer came round while we used them: drop the result
                print(f"skipped: {e}", file=sys.stderr)
                f.ack()
                continue
            print(f"{f.camera_id} seq {f.seq} {f.format} {shape} lost_before {f.lost_before} "
                  f"latency {f.age() * 1000:.0f} ms{' redelivered' if f.redelivered else ''}"
                  f"{' flags ' + ','.join(f.flags) if f.flags else ''}", flush=True)
            f.ack()
            n += 1
            if args.count and n >= args.count:
                break
    if frames.stale_dropped:
        print(f"dropped {frames.stale_dropped} frames of an old owner", file=sys.stderr)
    if frames.lapped:
        print(f"skipped {frames.lapped} shared-memory frames lapped before they were read", file=sys.stderr)
    return 0 if n else 1


if __name__ == "__main__":
    sys.exit(main())
