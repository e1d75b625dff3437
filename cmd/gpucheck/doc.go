// Command gpucheck is the helper of the GPU check kit (scripts/gpu-kit.sh
// builds the kit, scripts/gpu-check.sh runs it; docs/gpu-kit.md). The kit
// runs on a machine with nothing but a shell, coreutils and glibc, so what
// the check script cannot do with those is done here:
//
//	gpucheck stub DIR LIBRARY.so...
//	    C source and version script of a stub of each library (kit build)
//	gpucheck ports N
//	    N free TCP ports on 127.0.0.1, one per line
//	gpucheck wait-http URL SECONDS
//	    waits until URL answers 200
//	gpucheck metrics URL
//	    per camera from gstcapture's /metrics, tab-separated:
//	    camera_id published captured dropped codec decoder
//	gpucheck compare --redis HOST:PORT --ref STREAM --test STREAM [flags]
//	    pairs each frame of one stream with the frame of the same picture
//	    in the other and prints how much they differ (the GPU/CPU check)
//	gpucheck rawdiff --size WxH A.i420 B.i420 [flags]
//	    compares two raw I420 files frame by frame
//	gpucheck del --redis HOST:PORT PATTERN...
//	    deletes the keys matching the patterns
//
// compare, rawdiff print one line of key=value fields and exit 0 when the
// pictures are within the tolerance, 1 when not or on an error (named on
// stderr); every command exits 2 on a bad command line. It imports the Go
// client (gstcapture/client) to read frames, and nothing of GStreamer.
package main
