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
	gint64 arrival_unix_ns; /* when the sample reached the appsink */
	gint corrupt;
	gint mapped;
} gc_frame;

/* The hand-off between the streaming thread and Go: the new-sample
   callback (plain C) moves each sample into this bounded queue and writes
   to an eventfd that a goroutine waits on. No Go code runs on GStreamer's
   threads, so cgo callbacks cannot leave Go processors parked in them. */
typedef struct gc_queue gc_queue;

/* gc_attach installs the callback; returns NULL if no eventfd could be made. */
gc_queue *gc_attach(GstAppSink *sink);
int gc_queue_fd(gc_queue *q);
void gc_detach(GstAppSink *sink);
/* gc_take returns 0 on success, 1 when the queue is empty, 2 when caps are
   neither raw video nor image/jpeg with a size, 3 when the buffer cannot be
   mapped. On non-zero nothing is held. A JPEG sample has stride 0 and
   format "JPEG". */
int gc_take(gc_queue *q, gc_frame *f);
/* gc_queue_overflow counts samples dropped because the queue was full. */
guint64 gc_queue_overflow(gc_queue *q);
/* gc_queue_free drops queued samples (the eventfd is Go's to close). Only
   once no streaming thread can call the callback any more (pipeline NULL). */
void gc_queue_free(gc_queue *q);
void gc_release(gc_frame *f);

#endif
