// The stream watch: C pad probes and signal handlers installed on every
// pipeline gsthost builds (see gh_watch_attach), read from watch.go.

#include "watch.h"

#include <stdlib.h>
#include <string.h>
#include <gio/gio.h>
#include <gst/sdp/gstsdpmessage.h>

// gh_watch is one pipeline's stream watch. Streaming threads write it
// (rtspsrc's task in on-sdp, the decoder's pads in the probes); the owner
// goroutine reads it. Counters use __atomic builtins, the strings the lock.
// Each signal handler and probe holds a reference, so the watch outlives an
// abandoned (frozen) pipeline's late callbacks.
struct gh_watch {
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
	// Corrupt carry across "enc" (format JPEG): the PTS of the CORRUPTED
	// frames the encoder took and has not output yet, oldest first, under
	// lock; corrupt_pending counts them, so a clean stream's output probe
	// takes no lock.
	GstClockTime corrupt_pts[8];
	guint corrupt_n;
	gint corrupt_pending;
};

// A camera that never sends a keyframe (periodic intra refresh) must not be
// cut off for good: after this many skipped frames in a row the gate opens.
// Above the 250-frame keyframe interval of libx264's and libx265's
// defaults, so a long-GOP camera's gate waits for its next keyframe
// (docs/performance.md, "Stream watch").
#define GH_GATE_MAX_RUN 300

static gh_watch *gh_watch_ref(gh_watch *w) { g_atomic_int_inc(&w->refs); return w; }

void gh_watch_unref(gpointer data)
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
// it has caught up, as videorate drop-only does: it anchors its schedule to
// the segment start (docs/performance.md, "Stream watch"). Behind the gate videorate is never ahead of it and passes
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

// The encoder's sink pad: remember the PTS of a frame the decoder flagged
// CORRUPTED. A GstVideoEncoder outputs a new buffer per frame, without
// the flag, which validation.corrupt needs on what reaches the sink.
static GstPadProbeReturn gh_enc_in(GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
	gh_watch *w = data;
	GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER(info);
	const guint max = G_N_ELEMENTS(w->corrupt_pts);

	if (!GST_BUFFER_FLAG_IS_SET(b, GST_BUFFER_FLAG_CORRUPTED))
		return GST_PAD_PROBE_OK;
	g_mutex_lock(&w->lock);
	if (w->corrupt_n == max) {
		// Never output (the encoder dropped them): forget the oldest.
		memmove(w->corrupt_pts, w->corrupt_pts + 1, (max - 1) * sizeof w->corrupt_pts[0]);
		w->corrupt_n--;
	}
	w->corrupt_pts[w->corrupt_n++] = GST_BUFFER_PTS(b);
	g_atomic_int_set(&w->corrupt_pending, (gint)w->corrupt_n);
	g_mutex_unlock(&w->lock);
	return GST_PAD_PROBE_OK;
}

// The encoder's source pad: the encoded frame of a remembered PTS gets the
// CORRUPTED flag back. JPEG encoders output frames in order, so the
// remembered PTS before this one belong to frames that were never output.
static GstPadProbeReturn gh_enc_out(GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
	gh_watch *w = data;
	GstBuffer *b;
	GstClockTime pts;
	gboolean corrupt = FALSE;
	guint i, keep = 0;

	if (g_atomic_int_get(&w->corrupt_pending) == 0)
		return GST_PAD_PROBE_OK;
	b = GST_PAD_PROBE_INFO_BUFFER(info);
	pts = GST_BUFFER_PTS(b);
	g_mutex_lock(&w->lock);
	for (i = 0; i < w->corrupt_n; i++) {
		GstClockTime c = w->corrupt_pts[i];
		if (c == pts)
			corrupt = TRUE;
		else if (!GST_CLOCK_TIME_IS_VALID(pts) || !GST_CLOCK_TIME_IS_VALID(c) || c > pts)
			w->corrupt_pts[keep++] = c;
	}
	w->corrupt_n = keep;
	g_atomic_int_set(&w->corrupt_pending, (gint)keep);
	g_mutex_unlock(&w->lock);
	if (corrupt) {
		b = gst_buffer_make_writable(b); // shares the memory, copies the header
		GST_BUFFER_FLAG_SET(b, GST_BUFFER_FLAG_CORRUPTED);
		GST_PAD_PROBE_INFO_DATA(info) = b;
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
// "dec", videorate and "enc" elements; any may be missing. expected is the SDP
// encoding name the configuration wants, NULL for none. describe_only
// (codec auto's probe) refuses every stream once the SDP is in, so rtspsrc
// stops after DESCRIBE. The caller owns the returned reference.
gh_watch *gh_watch_attach(GstElement *pipeline, const char *expected, const char *codec, int describe_only)
{
	gh_watch *w = g_new0(gh_watch, 1);
	GstElement *src, *dec, *enc;

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
	enc = gst_bin_get_by_name(GST_BIN(pipeline), "enc");
	if (enc != NULL) {
		gh_probe(enc, "sink", GST_PAD_PROBE_TYPE_BUFFER, gh_enc_in, w);
		gh_probe(enc, "src", GST_PAD_PROBE_TYPE_BUFFER, gh_enc_out, w);
		gst_object_unref(enc);
	}
	return w;
}

// gh_watch_announced returns a copy of the announced encodings (free with
// g_free), or NULL before the SDP arrived.
gchar *gh_watch_announced(gh_watch *w)
{
	gchar *s;
	g_mutex_lock(&w->lock);
	s = g_strdup(w->announced);
	g_mutex_unlock(&w->lock);
	return s;
}

// gh_watch_refused reports whether the SDP arrived and the watch refused
// every stream (probe or codec mismatch).
int gh_watch_refused(gh_watch *w)
{
	return g_atomic_int_get(&w->refuse_all) ? 1 : 0;
}

guint gh_watch_protocols(gh_watch *w) { return w->protocols; }
guint gh_watch_tls_errors(gh_watch *w) { return __atomic_load_n(&w->tls_errors, __ATOMIC_RELAXED); }

void gh_watch_counts(gh_watch *w, guint64 *skipped, guint64 *joining, guint64 *in, guint64 *out)
{
	*skipped = __atomic_load_n(&w->skipped, __ATOMIC_RELAXED);
	*joining = __atomic_load_n(&w->joining, __ATOMIC_RELAXED);
	*in = __atomic_load_n(&w->dec_in, __ATOMIC_RELAXED);
	*out = __atomic_load_n(&w->dec_out, __ATOMIC_RELAXED);
}
