// swsconvert: a GStreamer video filter that converts decoded YUV frames to
// packed RGB with libswscale. videoconvert in GStreamer 1.22 has no fast
// path from I420 to 24-bit BGR/RGB; libswscale's SIMD yuv2rgb has
// (docs/performance.md has the measurements, and ADR 0002). Same size in
// and out: scaling stays with videoscale.
//
// gstcapture registers the element statically (gh_register_swsconvert);
// built with -DSWSCONVERT_PLUGIN the same file is a loadable plugin, so
// gst-launch-1.0 can run the exact pipeline gstcapture renders (the
// benchmark baseline does).

#include "swsconvert.h"

#include <gst/video/gstvideofilter.h>
#include <gst/video/video.h>
#include <libavutil/pixfmt.h>
#include <libswscale/swscale.h>

GST_DEBUG_CATEGORY_STATIC(sws_convert_debug);
#define GST_CAT_DEFAULT sws_convert_debug

typedef struct {
	GstVideoFilter parent;
	struct SwsContext *sws;
} GstSwsConvert;

typedef struct {
	GstVideoFilterClass parent_class;
} GstSwsConvertClass;

GType gst_sws_convert_get_type(void);
G_DEFINE_TYPE(GstSwsConvert, gst_sws_convert, GST_TYPE_VIDEO_FILTER)

// The decoders' outputs (avdec: I420 and its 4:2:2, 4:4:4 and 10-bit
// variants; nvdec: NV12, P010) in, packed RGB out.
#define SINK_FORMATS "{ I420, YV12, NV12, NV21, Y42B, Y444, I420_10LE, P010_10LE, GRAY8 }"
#define SRC_FORMATS "{ BGR, RGB, BGRx, RGBx, BGRA, RGBA }"

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
	"sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS(GST_VIDEO_CAPS_MAKE(SINK_FORMATS)));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
	"src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS(GST_VIDEO_CAPS_MAKE(SRC_FORMATS)));

static enum AVPixelFormat av_format(GstVideoFormat f)
{
	switch (f) {
	case GST_VIDEO_FORMAT_I420: return AV_PIX_FMT_YUV420P;
	case GST_VIDEO_FORMAT_YV12: return AV_PIX_FMT_YUV420P; // planes swapped in transform
	case GST_VIDEO_FORMAT_NV12: return AV_PIX_FMT_NV12;
	case GST_VIDEO_FORMAT_NV21: return AV_PIX_FMT_NV21;
	case GST_VIDEO_FORMAT_Y42B: return AV_PIX_FMT_YUV422P;
	case GST_VIDEO_FORMAT_Y444: return AV_PIX_FMT_YUV444P;
	case GST_VIDEO_FORMAT_I420_10LE: return AV_PIX_FMT_YUV420P10LE;
	case GST_VIDEO_FORMAT_P010_10LE: return AV_PIX_FMT_P010LE;
	case GST_VIDEO_FORMAT_GRAY8: return AV_PIX_FMT_GRAY8;
	case GST_VIDEO_FORMAT_BGR: return AV_PIX_FMT_BGR24;
	case GST_VIDEO_FORMAT_RGB: return AV_PIX_FMT_RGB24;
	case GST_VIDEO_FORMAT_BGRx: return AV_PIX_FMT_BGR0;
	case GST_VIDEO_FORMAT_RGBx: return AV_PIX_FMT_RGB0;
	case GST_VIDEO_FORMAT_BGRA: return AV_PIX_FMT_BGRA;
	case GST_VIDEO_FORMAT_RGBA: return AV_PIX_FMT_RGBA;
	default: return AV_PIX_FMT_NONE;
	}
}

// sws_matrix maps the stream's colour matrix to libswscale's. Unknown
// follows GStreamer's default: BT.709 above SD heights, BT.601 otherwise.
static int sws_matrix(const GstVideoInfo *in)
{
	switch (in->colorimetry.matrix) {
	case GST_VIDEO_COLOR_MATRIX_BT709: return SWS_CS_ITU709;
	case GST_VIDEO_COLOR_MATRIX_BT601: return SWS_CS_ITU601;
	case GST_VIDEO_COLOR_MATRIX_FCC: return SWS_CS_FCC;
	case GST_VIDEO_COLOR_MATRIX_SMPTE240M: return SWS_CS_SMPTE240M;
	case GST_VIDEO_COLOR_MATRIX_BT2020: return SWS_CS_BT2020;
	default: return GST_VIDEO_INFO_HEIGHT(in) > 576 ? SWS_CS_ITU709 : SWS_CS_ITU601;
	}
}

// transform_caps keeps everything but the format (and the colour fields,
// which the output side does not have): no scaling, no rate change.
static GstCaps *sws_transform_caps(GstBaseTransform *bt, GstPadDirection dir, GstCaps *caps, GstCaps *filter)
{
	GstPad *other = dir == GST_PAD_SINK ? bt->srcpad : bt->sinkpad;
	GstCaps *tmpl = gst_pad_get_pad_template_caps(other);
	GstCaps *res = gst_caps_new_empty();
	for (guint i = 0; i < gst_caps_get_size(caps); i++) {
		GstCapsFeatures *feat = gst_caps_get_features(caps, i);
		if (feat && !gst_caps_features_is_any(feat) &&
		    !gst_caps_features_is_equal(feat, GST_CAPS_FEATURES_MEMORY_SYSTEM_MEMORY))
			continue;
		GstStructure *s = gst_structure_copy(gst_caps_get_structure(caps, i));
		gst_structure_remove_fields(s, "format", "colorimetry", "chroma-site", NULL);
		res = gst_caps_merge_structure(res, s);
	}
	GstCaps *out = gst_caps_intersect_full(tmpl, res, GST_CAPS_INTERSECT_FIRST);
	gst_caps_unref(tmpl);
	gst_caps_unref(res);
	if (filter) {
		GstCaps *f = gst_caps_intersect_full(filter, out, GST_CAPS_INTERSECT_FIRST);
		gst_caps_unref(out);
		out = f;
	}
	return out;
}

static gboolean sws_set_info(GstVideoFilter *vf, GstCaps *incaps, GstVideoInfo *in, GstCaps *outcaps, GstVideoInfo *out)
{
	GstSwsConvert *self = (GstSwsConvert *)vf;
	(void)incaps;
	(void)outcaps;
	if (self->sws) {
		sws_freeContext(self->sws);
		self->sws = NULL;
	}
	enum AVPixelFormat fin = av_format(GST_VIDEO_INFO_FORMAT(in));
	enum AVPixelFormat fout = av_format(GST_VIDEO_INFO_FORMAT(out));
	int w = GST_VIDEO_INFO_WIDTH(in), h = GST_VIDEO_INFO_HEIGHT(in);
	if (fin == AV_PIX_FMT_NONE || fout == AV_PIX_FMT_NONE ||
	    w != GST_VIDEO_INFO_WIDTH(out) || h != GST_VIDEO_INFO_HEIGHT(out)) {
		GST_ELEMENT_ERROR(vf, CORE, NEGOTIATION, (NULL), ("swsconvert cannot convert %s %dx%d to %s %dx%d",
			GST_VIDEO_INFO_NAME(in), w, h, GST_VIDEO_INFO_NAME(out),
			GST_VIDEO_INFO_WIDTH(out), GST_VIDEO_INFO_HEIGHT(out)));
		return FALSE;
	}
	// Same size: the flags pick no filter; SWS_BILINEAR keeps libswscale's
	// yuv2rgb fast path (measured: every flag costs the same).
	self->sws = sws_getContext(w, h, fin, w, h, fout, SWS_BILINEAR, NULL, NULL, NULL);
	if (!self->sws) {
		GST_ELEMENT_ERROR(vf, CORE, NEGOTIATION, (NULL), ("libswscale has no conversion from %s to %s",
			GST_VIDEO_INFO_NAME(in), GST_VIDEO_INFO_NAME(out)));
		return FALSE;
	}
	const int *coef = sws_getCoefficients(sws_matrix(in));
	int full_in = in->colorimetry.range == GST_VIDEO_COLOR_RANGE_0_255;
	sws_setColorspaceDetails(self->sws, coef, full_in, sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
	GST_DEBUG_OBJECT(self, "%s -> %s %dx%d matrix %d full-range-in %d", GST_VIDEO_INFO_NAME(in),
		GST_VIDEO_INFO_NAME(out), w, h, sws_matrix(in), full_in);
	return TRUE;
}

static GstFlowReturn sws_transform_frame(GstVideoFilter *vf, GstVideoFrame *in, GstVideoFrame *out)
{
	GstSwsConvert *self = (GstSwsConvert *)vf;
	const uint8_t *src[4] = {0};
	int src_stride[4] = {0};
	uint8_t *dst[4] = {0};
	int dst_stride[4] = {0};
	for (guint i = 0; i < GST_VIDEO_FRAME_N_PLANES(in) && i < 4; i++) {
		src[i] = GST_VIDEO_FRAME_PLANE_DATA(in, i);
		src_stride[i] = GST_VIDEO_FRAME_PLANE_STRIDE(in, i);
	}
	if (GST_VIDEO_FRAME_FORMAT(in) == GST_VIDEO_FORMAT_YV12) {
		// YV12 is I420 with V before U.
		const uint8_t *t = src[1];
		src[1] = src[2];
		src[2] = t;
	}
	dst[0] = GST_VIDEO_FRAME_PLANE_DATA(out, 0);
	dst_stride[0] = GST_VIDEO_FRAME_PLANE_STRIDE(out, 0);
	sws_scale(self->sws, src, src_stride, 0, GST_VIDEO_FRAME_HEIGHT(in), dst, dst_stride);
	return GST_FLOW_OK;
}

static gboolean sws_stop(GstBaseTransform *bt)
{
	GstSwsConvert *self = (GstSwsConvert *)bt;
	if (self->sws) {
		sws_freeContext(self->sws);
		self->sws = NULL;
	}
	return TRUE;
}

static void sws_finalize(GObject *obj)
{
	sws_stop(GST_BASE_TRANSFORM(obj));
	G_OBJECT_CLASS(gst_sws_convert_parent_class)->finalize(obj);
}

static void gst_sws_convert_class_init(GstSwsConvertClass *klass)
{
	GObjectClass *oc = G_OBJECT_CLASS(klass);
	GstElementClass *ec = GST_ELEMENT_CLASS(klass);
	GstBaseTransformClass *bc = GST_BASE_TRANSFORM_CLASS(klass);
	GstVideoFilterClass *vc = GST_VIDEO_FILTER_CLASS(klass);
	oc->finalize = sws_finalize;
	gst_element_class_add_static_pad_template(ec, &sink_template);
	gst_element_class_add_static_pad_template(ec, &src_template);
	gst_element_class_set_static_metadata(ec, "libswscale colour converter", "Filter/Converter/Video",
		"Converts YUV frames to packed RGB with libswscale (gstcapture)", "gstcapture");
	bc->transform_caps = sws_transform_caps;
	bc->stop = sws_stop;
	bc->passthrough_on_same_caps = FALSE;
	vc->set_info = sws_set_info;
	vc->transform_frame = sws_transform_frame;
}

static void gst_sws_convert_init(GstSwsConvert *self) { self->sws = NULL; }

static gboolean sws_plugin_init(GstPlugin *plugin)
{
	GST_DEBUG_CATEGORY_INIT(sws_convert_debug, "swsconvert", 0, "libswscale colour converter");
	return gst_element_register(plugin, "swsconvert", GST_RANK_NONE, gst_sws_convert_get_type());
}

#ifdef SWSCONVERT_PLUGIN
#define PACKAGE "gstcapture"
GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, swsconvert, "libswscale colour converter (gstcapture)",
	sws_plugin_init, "1.0", "LGPL", "gstcapture", "gstcapture")
#else
gboolean gh_register_swsconvert(void)
{
	return gst_plugin_register_static(GST_VERSION_MAJOR, GST_VERSION_MINOR, "swsconvert",
		"libswscale colour converter (gstcapture)", sws_plugin_init, "1.0", "LGPL", "gstcapture", "gstcapture",
		"gstcapture");
}
#endif
