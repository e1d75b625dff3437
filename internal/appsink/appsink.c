#include "appsink.h"
#include "_cgo_export.h"

static GstFlowReturn on_new_sample(GstAppSink *sink, gpointer user_data)
{
	return (GstFlowReturn)gcOnNewSample(sink, (uintptr_t)user_data);
}

void gc_attach(GstAppSink *sink, uintptr_t handle)
{
	GstAppSinkCallbacks cb;
	memset(&cb, 0, sizeof cb);
	cb.new_sample = on_new_sample;
	gst_app_sink_set_callbacks(sink, &cb, (gpointer)handle, NULL);
}

void gc_detach(GstAppSink *sink)
{
	GstAppSinkCallbacks cb;
	memset(&cb, 0, sizeof cb);
	gst_app_sink_set_callbacks(sink, &cb, NULL, NULL);
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

int gc_pull(GstAppSink *sink, gc_frame *f)
{
	GstVideoInfo info;
	GstCaps *caps;
	GstVideoMeta *vmeta;
	GstReferenceTimestampMeta *ref;

	memset(f, 0, sizeof *f);
	f->sample = gst_app_sink_try_pull_sample(sink, 0);
	if (f->sample == NULL)
		return 1;
	f->buffer = gst_sample_get_buffer(f->sample);
	caps = gst_sample_get_caps(f->sample);
	if (f->buffer == NULL || caps == NULL || !gst_video_info_from_caps(&info, caps)) {
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
	f->width = GST_VIDEO_INFO_WIDTH(&info);
	f->height = GST_VIDEO_INFO_HEIGHT(&info);
	f->stride = GST_VIDEO_INFO_PLANE_STRIDE(&info, 0);
	f->format = gst_video_format_to_string(GST_VIDEO_INFO_FORMAT(&info));
	/* A producer may lay planes out with its own strides (video meta). */
	vmeta = gst_buffer_get_video_meta(f->buffer);
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
