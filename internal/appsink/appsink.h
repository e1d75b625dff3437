#ifndef GSTCAPTURE_APPSINK_H
#define GSTCAPTURE_APPSINK_H

#include <stdint.h>
#include <gst/gst.h>
#include <gst/app/gstappsink.h>
#include <gst/video/video.h>

/* One pulled sample, mapped for reading. Lives in Go memory; holds only C
   pointers, so passing its address to C per call is allowed by cgo. */
typedef struct {
	GstSample *sample;
	GstBuffer *buffer;
	GstMapInfo map;
	gint width, height, stride;
	const gchar *format; /* static string owned by GStreamer */
	gint64 pts;          /* ns, -1 when none */
	gint64 ntp_unix_ns;  /* capture time from RTCP/NTP reference meta, -1 when none */
	gint corrupt;
	gint mapped;
} gc_frame;

void gc_attach(GstAppSink *sink, uintptr_t handle);
void gc_detach(GstAppSink *sink);
/* gc_pull returns 0 on success, 1 when no sample, 2 when caps are not raw
   video, 3 when the buffer cannot be mapped. On non-zero nothing is held. */
int gc_pull(GstAppSink *sink, gc_frame *f);
void gc_release(gc_frame *f);

#endif
