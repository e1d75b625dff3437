#include "appsink.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* Room for bursts (a keyframe decoded late, a GC pause); the goroutine
   normally takes each sample within microseconds. */
#define GC_QUEUE_CAP 8

typedef struct {
	GstSample *sample;
	gint64 arrival_unix_ns;
} gc_entry;

struct gc_queue {
	GMutex lock;
	gc_entry items[GC_QUEUE_CAP];
	guint head, len;
	guint64 overflow;
	int efd;
};

static gint64 unix_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (gint64)ts.tv_sec * GST_SECOND + ts.tv_nsec;
}

static GstFlowReturn on_new_sample(GstAppSink *sink, gpointer user_data)
{
	gc_queue *q = user_data;
	GstSample *s = gst_app_sink_try_pull_sample(sink, 0);
	GstSample *dropped = NULL;
	guint64 one = 1;

	if (s == NULL)
		return GST_FLOW_OK;
	g_mutex_lock(&q->lock);
	if (q->len == GC_QUEUE_CAP) {
		dropped = q->items[q->head].sample;
		q->head = (q->head + 1) % GC_QUEUE_CAP;
		q->len--;
		q->overflow++;
	}
	q->items[(q->head + q->len) % GC_QUEUE_CAP] = (gc_entry){s, unix_now_ns()};
	q->len++;
	g_mutex_unlock(&q->lock);
	if (dropped != NULL)
		gst_sample_unref(dropped);
	/* Only fails when the counter would overflow: the reader is far behind
	   and will drain the queue anyway. */
	while (write(q->efd, &one, sizeof one) < 0 && errno == EINTR)
		;
	return GST_FLOW_OK;
}

gc_queue *gc_attach(GstAppSink *sink)
{
	GstAppSinkCallbacks cb;
	gc_queue *q = g_new0(gc_queue, 1);

	q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->efd < 0) {
		g_free(q);
		return NULL;
	}
	g_mutex_init(&q->lock);
	memset(&cb, 0, sizeof cb);
	cb.new_sample = on_new_sample;
	gst_app_sink_set_callbacks(sink, &cb, q, NULL);
	return q;
}

int gc_queue_fd(gc_queue *q) { return q->efd; }

void gc_detach(GstAppSink *sink)
{
	GstAppSinkCallbacks cb;
	memset(&cb, 0, sizeof cb);
	gst_app_sink_set_callbacks(sink, &cb, NULL, NULL);
}

guint64 gc_queue_overflow(gc_queue *q)
{
	guint64 n;
	g_mutex_lock(&q->lock);
	n = q->overflow;
	g_mutex_unlock(&q->lock);
	return n;
}

void gc_queue_free(gc_queue *q)
{
	for (guint i = 0; i < q->len; i++)
		gst_sample_unref(q->items[(q->head + i) % GC_QUEUE_CAP].sample);
	/* The eventfd belongs to Go (an os.File), which closes it. */
	g_mutex_clear(&q->lock);
	g_free(q);
}

/* NTP epoch (1900) to Unix epoch (1970), in nanoseconds. */
#define NTP_UNIX_OFFSET_NS (G_GINT64_CONSTANT(2208988800) * GST_SECOND)

static GstCaps *ntp_caps(void)
{
	static GstCaps *caps;
	if (g_once_init_enter(&caps)) {
		GstCaps *c = gst_caps_new_empty_simple("timestamp/x-ntp");
		GST_MINI_OBJECT_FLAG_SET(c, GST_MINI_OBJECT_FLAG_MAY_BE_LEAKED);
		g_once_init_leave(&caps, c);
	}
	return caps;
}

/* The format name of JPEG frames (frame.JPEG), static like GStreamer's. */
static const gchar jpeg_format[] = "JPEG";

/* frame_geometry reads the size, first stride and format of raw video
   caps, or the size of image/jpeg caps (stride 0: a JPEG has no rows in
   the buffer); FALSE for anything else. */
static gboolean frame_geometry(GstCaps *caps, gc_frame *f)
{
	GstVideoInfo info;
	GstStructure *st = gst_caps_get_structure(caps, 0);

	if (st != NULL && gst_structure_has_name(st, "image/jpeg")) {
		if (!gst_structure_get_int(st, "width", &f->width) || !gst_structure_get_int(st, "height", &f->height))
			return FALSE;
		f->stride = 0;
		f->format = jpeg_format;
		return TRUE;
	}
	if (!gst_video_info_from_caps(&info, caps))
		return FALSE;
	f->width = GST_VIDEO_INFO_WIDTH(&info);
	f->height = GST_VIDEO_INFO_HEIGHT(&info);
	f->stride = GST_VIDEO_INFO_PLANE_STRIDE(&info, 0);
	f->format = gst_video_format_to_string(GST_VIDEO_INFO_FORMAT(&info));
	return TRUE;
}

int gc_take(gc_queue *q, gc_frame *f)
{
	GstCaps *caps;
	GstVideoMeta *vmeta;
	GstReferenceTimestampMeta *ref;

	memset(f, 0, sizeof *f);
	g_mutex_lock(&q->lock);
	if (q->len > 0) {
		f->sample = q->items[q->head].sample;
		f->arrival_unix_ns = q->items[q->head].arrival_unix_ns;
		q->head = (q->head + 1) % GC_QUEUE_CAP;
		q->len--;
	}
	g_mutex_unlock(&q->lock);
	if (f->sample == NULL)
		return 1;
	f->buffer = gst_sample_get_buffer(f->sample);
	caps = gst_sample_get_caps(f->sample);
	if (f->buffer == NULL || caps == NULL || !frame_geometry(caps, f)) {
		gst_sample_unref(f->sample);
		f->sample = NULL;
		return 2;
	}
	if (!gst_buffer_map(f->buffer, &f->map, GST_MAP_READ)) {
		gst_sample_unref(f->sample);
		f->sample = NULL;
		return 3;
	}
	f->mapped = 1;
	/* A producer may lay planes out with its own strides (video meta). */
	vmeta = f->stride > 0 ? gst_buffer_get_video_meta(f->buffer) : NULL;
	if (vmeta != NULL)
		f->stride = vmeta->stride[0];
	f->pts = GST_BUFFER_PTS_IS_VALID(f->buffer) ? (gint64)GST_BUFFER_PTS(f->buffer) : -1;
	f->corrupt = GST_BUFFER_FLAG_IS_SET(f->buffer, GST_BUFFER_FLAG_CORRUPTED) ? 1 : 0;
	f->ntp_unix_ns = -1;
	ref = gst_buffer_get_reference_timestamp_meta(f->buffer, ntp_caps());
	if (ref != NULL && ref->timestamp > (guint64)NTP_UNIX_OFFSET_NS)
		f->ntp_unix_ns = (gint64)ref->timestamp - NTP_UNIX_OFFSET_NS;
	return 0;
}

void gc_release(gc_frame *f)
{
	if (f->mapped)
		gst_buffer_unmap(f->buffer, &f->map);
	if (f->sample != NULL)
		gst_sample_unref(f->sample);
	f->mapped = 0;
	f->sample = NULL;
	f->buffer = NULL;
}
