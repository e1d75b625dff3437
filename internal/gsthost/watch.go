package gsthost

// The stream watch: C pad probes and signal handlers installed on every
// pipeline gsthost builds (see gh_watch_attach below), and its Go handle.

/*
#cgo pkg-config: gstreamer-1.0 gstreamer-sdp-1.0 gio-2.0
#include <stdlib.h>
#include <string.h>
#include <gst/gst.h>
#include <gio/gio.h>
#include <gst/sdp/gstsdpmessage.h>

// gh_watch is one pipeline's stream watch. Streaming threads write it
// (rtspsrc's task in on-sdp, the decoder's pads in the probes); the owner
// goroutine reads it. Counters use __atomic builtins, the strings the lock.
// Each signal handler and probe holds a reference, so the watch outlives an
// abandoned (frozen) pipeline's late callbacks.
typedef struct {
	gint refs;
	GMutex lock;
	gchar *expected;  // SDP encoding name the configuration expects ("H264"), or NULL
	gchar *codec;     // the configured codec as written ("h264"), for messages
	gchar *announced; // video encoding names of the SDP, comma-separated; NULL before it
	// Set before rtspsrc selects streams (same thread, on-sdp first): no
	// stream is set up. The probe needs only the SDP; a mismatched camera
	// would only be torn down again (and rtspsrc 1.22 logs CRITICALs when
	// torn down as its first data arrives).
	gboolean refuse_all;
	gboolean describe_only;
	guint protocols; // rtspsrc's GstRTSPLowerTrans flags, 0 without rtspsrc
	guint tls_errors; // GTlsCertificateFlags of a refused rtsps certificate, 0 for none
	// Keyframe gate, touched only by the decoder's sink-pad streaming thread.
	gboolean waiting;
	gboolean joined; // a keyframe has passed since the pipeline started
	guint run;
	guint64 skipped, dec_in, dec_out;
	guint64 joining; // skipped before the first keyframe: not counted as lost
	// Rate gate, touched only by videorate's sink-pad streaming thread.
	GstClockTime interval, next;
} gh_watch;

// A camera that never sends a keyframe (periodic intra refresh) must not be
// cut off for good: after this many skipped frames in a row the gate opens.
// Above the 250-frame keyframe interval that libx264's and libx265's
// defaults use: at 150, a long-GOP camera's gate opened before its next
// keyframe and let undecodable frames through.
#define GH_GATE_MAX_RUN 300

static gh_watch *gh_watch_ref(gh_watch *w) { g_atomic_int_inc(&w->refs); return w; }

static void gh_watch_unref(gpointer data)
{
	gh_watch *w = data;
	if (!g_atomic_int_dec_and_test(&w->refs))
		return;
	g_mutex_clear(&w->lock);
	g_free(w->expected);
	g_free(w->codec);
	g_free(w->announced);
	g_free(w);
}

static void gh_watch_unref_closure(gpointer data, GClosure *unused) { gh_watch_unref(data); }

static gboolean gh_known_encoding(const gchar *enc)
{
	return g_ascii_strcasecmp(enc, "H264") == 0 || g_ascii_strcasecmp(enc, "H265") == 0;
}

// gh_post_codec_error posts the mismatch as an ERROR from rtspsrc, so it
// takes the same path as every other pipeline error.
static void gh_post_codec_error(GstElement *src, gh_watch *w, const gchar *announced)
{
	GError *err;
	gchar *dbg;

	if (announced[0] == '\0') {
		err = g_error_new(GST_STREAM_ERROR, GST_STREAM_ERROR_CODEC_NOT_FOUND,
			"camera announced no video stream in its SDP but codec is %s", w->codec);
		dbg = g_strdup("is the URL the camera's video stream?");
	} else {
		gchar *first = g_strdup(announced);
		gchar *comma = strchr(first, ',');
		if (comma)
			*comma = '\0';
		err = g_error_new(GST_STREAM_ERROR, GST_STREAM_ERROR_CODEC_NOT_FOUND,
			"camera announced %s but codec is %s", announced, w->codec);
		if (gh_known_encoding(first))
			dbg = g_strdup_printf("set the camera's codec to %s, or to auto", first);
		else
			dbg = g_strdup("gstcapture decodes only H264 and H265 video");
		g_free(first);
	}
	gst_element_post_message(src, gst_message_new_error(GST_OBJECT(src), err, dbg));
	g_error_free(err);
	g_free(dbg);
}

// on-sdp: rtspsrc got the camera's SDP (DESCRIBE), before any SETUP.
static void gh_on_sdp(GstElement *src, GstSDPMessage *sdp, gpointer data)
{
	gh_watch *w = data;
	GString *names = g_string_new(NULL);
	gboolean match = FALSE;
	guint i, j;

	for (i = 0; i < gst_sdp_message_medias_len(sdp); i++) {
		const GstSDPMedia *m = gst_sdp_message_get_media(sdp, i);
		if (g_strcmp0(gst_sdp_media_get_media(m), "video") != 0)
			continue;
		for (j = 0; j < gst_sdp_media_formats_len(m); j++) {
			const gchar *fmt = gst_sdp_media_get_format(m, j);
			gint pt = fmt ? atoi(fmt) : -1;
			GstCaps *caps = pt >= 0 ? gst_sdp_media_get_caps_from_media(m, pt) : NULL;
			const gchar *enc = NULL;
			gchar *name;

			if (caps && gst_caps_get_size(caps) > 0)
				enc = gst_structure_get_string(gst_caps_get_structure(caps, 0), "encoding-name");
			name = enc ? g_ascii_strup(enc, -1) : g_strdup_printf("payload type %s", fmt ? fmt : "?");
			if (w->expected && g_strcmp0(name, w->expected) == 0)
				match = TRUE;
			// Listed once each, in SDP order.
			{
				gchar *padded = g_strdup_printf(",%s,", names->str);
				gchar *token = g_strdup_printf(",%s,", name);
				if (strstr(padded, token) == NULL) {
					if (names->len)
						g_string_append(names, ",");
					g_string_append(names, name);
				}
				g_free(padded);
				g_free(token);
			}
			g_free(name);
			if (caps)
				gst_caps_unref(caps);
		}
	}
	g_mutex_lock(&w->lock);
	g_free(w->announced);
	w->announced = g_strdup(names->str);
	g_mutex_unlock(&w->lock);
	if (w->describe_only)
		g_atomic_int_set(&w->refuse_all, TRUE);
	if (w->expected && !match) {
		g_atomic_int_set(&w->refuse_all, TRUE);
		gh_post_codec_error(src, w, names->str);
	}
	g_string_free(names, TRUE);
}

// select-stream: set up video only. An audio or metadata stream of the
// camera would be received and thrown away (unlinked pad), costing
// bandwidth and, over UDP, two ports per stream.
static gboolean gh_select_stream(GstElement *src, guint num, GstCaps *caps, gpointer data)
{
	gh_watch *w = data;
	const gchar *media;

	if (g_atomic_int_get(&w->refuse_all))
		return FALSE;
	if (caps == NULL || gst_caps_get_size(caps) == 0)
		return TRUE;
	media = gst_structure_get_string(gst_caps_get_structure(caps, 0), "media");
	return media == NULL || g_strcmp0(media, "video") == 0;
}

// Decoder sink pad: the keyframe gate, then the count of frames decoded.
// After a discontinuity (a DISCONT buffer: packets were lost, or the stream
// started) or a GAP event, frames up to the next keyframe reference
// pictures the decoder never got; libav decodes them anyway, as grey or
// smeared pictures, without flagging them. They are skipped, and counted
// once the stream has started: joining a camera (or a relay) mid-GOP, the
// frames before the first keyframe are waited out, not lost, and a clean
// stream must show no skipped frame.
static GstPadProbeReturn gh_dec_in(GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
	gh_watch *w = data;
	GstBuffer *b;

	if (info->type & GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM) {
		if (GST_EVENT_TYPE(GST_PAD_PROBE_INFO_EVENT(info)) == GST_EVENT_GAP)
			w->waiting = TRUE;
		return GST_PAD_PROBE_OK;
	}
	b = GST_PAD_PROBE_INFO_BUFFER(info);
	if (GST_BUFFER_FLAG_IS_SET(b, GST_BUFFER_FLAG_DISCONT))
		w->waiting = TRUE;
	if (w->waiting) {
		if (GST_BUFFER_FLAG_IS_SET(b, GST_BUFFER_FLAG_DELTA_UNIT) && w->run < GH_GATE_MAX_RUN) {
			w->run++;
			__atomic_fetch_add(w->joined ? &w->skipped : &w->joining, 1, __ATOMIC_RELAXED);
			return GST_PAD_PROBE_DROP;
		}
		w->waiting = FALSE;
		w->joined = TRUE;
		w->run = 0;
	}
	__atomic_fetch_add(&w->dec_in, 1, __ATOMIC_RELAXED);
	return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn gh_dec_out(GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
	gh_watch *w = data;
	__atomic_fetch_add(&w->dec_out, 1, __ATOMIC_RELAXED);
	return GST_PAD_PROBE_OK;
}

// videorate's sink pad: the rate gate. It keeps videorate's own rule (a
// frame passes when its PTS reaches next, and next moves on one interval
// per frame passed, so 25 fps in gives exactly 10 fps out, 120/80 ms
// apart), except after a gap in the stream (loss, a stalled camera): the
// schedule restarts at the next frame instead of passing every frame until
// it has caught up. videorate drop-only anchors its schedule to the segment
// start and does catch up: measured 25 entries/s for 2 s after a 3 s stall
// at fps 10. Behind the gate videorate is never ahead of it and passes
// everything; it stays in the template so that the rendered line limits
// the rate in gst-launch-1.0 too.
static GstPadProbeReturn gh_rate_in(GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
	gh_watch *w = data;
	GstClockTime pts = GST_BUFFER_PTS(GST_PAD_PROBE_INFO_BUFFER(info));

	if (w->interval == 0 || !GST_CLOCK_TIME_IS_VALID(pts))
		return GST_PAD_PROBE_OK;
	if (GST_CLOCK_TIME_IS_VALID(w->next) && w->next <= pts + 2 * w->interval) {
		if (pts < w->next)
			return GST_PAD_PROBE_DROP; // early
		w->next += w->interval;
		if (w->next <= pts)
			w->next = pts + w->interval; // after a gap: restart the schedule
	} else {
		// The first frame, or timestamps went back: start a schedule.
		w->next = pts + w->interval;
	}
	return GST_PAD_PROBE_OK;
}

static void gh_probe(GstElement *el, const char *pad_name, GstPadProbeType mask, GstPadProbeCallback cb, gh_watch *w)
{
	GstPad *pad = gst_element_get_static_pad(el, pad_name);
	if (pad == NULL)
		return;
	gst_pad_add_probe(pad, mask, cb, gh_watch_ref(w), gh_watch_unref);
	gst_object_unref(pad);
}

// gh_accept_certificate runs on rtspsrc's thread when an rtsps server's
// certificate failed validation: it records why and refuses it, as
// rtspsrc does without a handler.
static gboolean gh_accept_certificate(GstElement *src, GTlsConnection *conn, GTlsCertificate *cert, GTlsCertificateFlags errors, gpointer data)
{
	gh_watch *w = data;
	(void)src; (void)conn; (void)cert;
	__atomic_store_n(&w->tls_errors, (guint)errors, __ATOMIC_RELAXED);
	return FALSE;
}

// gh_watch_attach watches the pipeline's "src" (when it is an rtspsrc),
// "dec" and videorate elements; any may be missing. expected is the SDP
// encoding name the configuration wants, NULL for none. describe_only
// (codec auto's probe) refuses every stream once the SDP is in, so rtspsrc
// stops after DESCRIBE. The caller owns the returned reference.
static gh_watch *gh_watch_attach(GstElement *pipeline, const char *expected, const char *codec, int describe_only)
{
	gh_watch *w = g_new0(gh_watch, 1);
	GstElement *src, *dec;

	w->refs = 1;
	g_mutex_init(&w->lock);
	w->expected = expected ? g_strdup(expected) : NULL;
	w->codec = g_strdup(codec ? codec : "");
	w->waiting = TRUE;
	w->describe_only = describe_only != 0;

	src = gst_bin_get_by_name(GST_BIN(pipeline), "src");
	if (src != NULL) {
		if (g_signal_lookup("on-sdp", G_OBJECT_TYPE(src)) != 0) {
			g_object_get(src, "protocols", &w->protocols, NULL);
			g_signal_connect_data(src, "on-sdp", G_CALLBACK(gh_on_sdp), gh_watch_ref(w), gh_watch_unref_closure, 0);
			g_signal_connect_data(src, "select-stream", G_CALLBACK(gh_select_stream), gh_watch_ref(w), gh_watch_unref_closure, 0);
			if (g_signal_lookup("accept-certificate", G_OBJECT_TYPE(src)) != 0)
				g_signal_connect_data(src, "accept-certificate", G_CALLBACK(gh_accept_certificate), gh_watch_ref(w), gh_watch_unref_closure, 0);
		}
		gst_object_unref(src);
	}
	{
		GstIterator *it = gst_bin_iterate_all_by_element_factory_name(GST_BIN(pipeline), "videorate");
		GValue v = G_VALUE_INIT;
		if (it != NULL && gst_iterator_next(it, &v) == GST_ITERATOR_OK) {
			GstElement *rate = g_value_get_object(&v);
			gint max_rate = 0;
			g_object_get(rate, "max-rate", &max_rate, NULL);
			if (max_rate > 0 && max_rate < G_MAXINT) {
				w->interval = gst_util_uint64_scale_int(GST_SECOND, 1, max_rate);
				w->next = GST_CLOCK_TIME_NONE;
				gh_probe(rate, "sink", GST_PAD_PROBE_TYPE_BUFFER, gh_rate_in, w);
			}
			g_value_unset(&v);
		}
		if (it != NULL)
			gst_iterator_free(it);
	}
	dec = gst_bin_get_by_name(GST_BIN(pipeline), "dec");
	if (dec != NULL) {
		gh_probe(dec, "sink", GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, gh_dec_in, w);
		gh_probe(dec, "src", GST_PAD_PROBE_TYPE_BUFFER, gh_dec_out, w);
		gst_object_unref(dec);
	}
	return w;
}

// gh_watch_announced returns a copy of the announced encodings (free with
// g_free), or NULL before the SDP arrived.
static gchar *gh_watch_announced(gh_watch *w)
{
	gchar *s;
	g_mutex_lock(&w->lock);
	s = g_strdup(w->announced);
	g_mutex_unlock(&w->lock);
	return s;
}

// gh_watch_refused reports whether the SDP arrived and the watch refused
// every stream (probe or codec mismatch).
static int gh_watch_refused(gh_watch *w)
{
	return g_atomic_int_get(&w->refuse_all) ? 1 : 0;
}

static guint gh_watch_protocols(gh_watch *w) { return w->protocols; }
static guint gh_watch_tls_errors(gh_watch *w) { return __atomic_load_n(&w->tls_errors, __ATOMIC_RELAXED); }

static void gh_watch_counts(gh_watch *w, guint64 *skipped, guint64 *joining, guint64 *in, guint64 *out)
{
	*skipped = __atomic_load_n(&w->skipped, __ATOMIC_RELAXED);
	*joining = __atomic_load_n(&w->joining, __ATOMIC_RELAXED);
	*in = __atomic_load_n(&w->dec_in, __ATOMIC_RELAXED);
	*out = __atomic_load_n(&w->dec_out, __ATOMIC_RELAXED);
}
*/
import "C"

import (
	"strings"
	"unsafe"

	"github.com/go-gst/go-gst/gst"
)

// streamWatch is the Go handle of one pipeline's gh_watch: the SDP check
// and stream selection on rtspsrc, the keyframe gate and decoder counts on
// the decoder. See gh_watch_attach.
type streamWatch struct {
	c *C.gh_watch
	// Counts already added to the camera's stats.
	skipped, in, out uint64
	// gated is the count of frames the keyframe gate held back (lost or
	// joining), as of the last sync.
	gated uint64
}

// attachWatch installs the watch on p; codec is the configured codec or ""
// (no SDP check).
func attachWatch(p *gst.Pipeline, codec string) *streamWatch {
	return newWatch(p, codec, false)
}

func newWatch(p *gst.Pipeline, codec string, describeOnly bool) *streamWatch {
	d := C.int(0)
	if describeOnly {
		d = 1
	}
	var cExp, cCodec *C.char
	if enc, ok := sdpEncoding[codec]; ok {
		cExp = C.CString(enc)
		defer C.free(unsafe.Pointer(cExp))
	}
	cCodec = C.CString(codec)
	defer C.free(unsafe.Pointer(cCodec))
	return &streamWatch{c: C.gh_watch_attach((*C.GstElement)(unsafe.Pointer(p.Instance())), cExp, cCodec, d)}
}

// release drops the Go reference; call it once the pipeline is stopped or
// abandoned. Callbacks still pending hold their own references.
func (w *streamWatch) release() {
	if w != nil && w.c != nil {
		C.gh_watch_unref(C.gpointer(w.c))
		w.c = nil
	}
}

// tlsErrors returns the GTlsCertificateFlags of the rtsps certificate
// rtspsrc refused, 0 when none was.
func (w *streamWatch) tlsErrors() uint { return uint(C.gh_watch_tls_errors(w.c)) }

// announced returns the video encodings of the camera's SDP, in its order,
// and whether the SDP has arrived.
func (w *streamWatch) announced() ([]string, bool) {
	p := C.gh_watch_announced(w.c)
	if p == nil {
		return nil, false
	}
	defer C.g_free(C.gpointer(p))
	s := C.GoString(p)
	if s == "" {
		return []string{}, true
	}
	return strings.Split(s, ","), true
}

// sync reports what the watch counted since the last call to l, and
// reports whether the keyframe gate held back a frame since then: frames
// are arriving, but none can be decoded before the next keyframe.
func (w *streamWatch) sync(l Ledger) (gating bool) {
	if w == nil || w.c == nil {
		return false
	}
	var skipped, joining, in, out C.guint64
	C.gh_watch_counts(w.c, &skipped, &joining, &in, &out)
	if g := uint64(skipped) + uint64(joining); g != w.gated {
		gating = true
		w.gated = g
	}
	delta := func(now uint64, last *uint64) uint64 {
		if now <= *last {
			return 0
		}
		d := now - *last
		*last = now
		return d
	}
	ds, di, do := delta(uint64(skipped), &w.skipped), delta(uint64(in), &w.in), delta(uint64(out), &w.out)
	if ds|di|do != 0 {
		l.StreamCounts(ds, di, do)
	}
	return gating
}

// refusedAll reports whether the watch refused every stream of the SDP.
func (w *streamWatch) refusedAll() bool { return C.gh_watch_refused(w.c) != 0 }

// protocols returns rtspsrc's GstRTSPLowerTrans flags (0 without rtspsrc).
func (w *streamWatch) protocols() uint { return uint(C.gh_watch_protocols(w.c)) }
