#ifndef GSTCAPTURE_WATCH_H
#define GSTCAPTURE_WATCH_H

#include <gst/gst.h>

/* One pipeline's stream watch (watch.c): SDP check and stream selection on
   rtspsrc, keyframe gate and decoder counts on "dec", rate gate on
   videorate, the CORRUPTED flag carried across the JPEG encoder "enc".
   Reference counted: every probe and signal handler holds one. */
typedef struct gh_watch gh_watch;

/* Watches the pipeline's "src", "dec", videorate and "enc" elements (any
   may be missing). expected is the SDP encoding name wanted ("H264"), NULL for
   none; codec is the configured codec as written, for messages;
   describe_only refuses every stream once the SDP is in. The caller owns
   the returned reference. */
gh_watch *gh_watch_attach(GstElement *pipeline, const char *expected, const char *codec, int describe_only);
/* Drops a reference (a gh_watch *). */
void gh_watch_unref(gpointer data);
/* The announced video encodings, comma-separated (g_free it), or NULL
   before the SDP arrived. */
gchar *gh_watch_announced(gh_watch *w);
/* 1 when the SDP arrived and the watch refused every stream. */
int gh_watch_refused(gh_watch *w);
/* rtspsrc's GstRTSPLowerTrans flags, 0 without rtspsrc. */
guint gh_watch_protocols(gh_watch *w);
/* GTlsCertificateFlags of a refused rtsps certificate, 0 for none. */
guint gh_watch_tls_errors(gh_watch *w);
/* Frames the keyframe gate skipped (after and before the first keyframe)
   and frames into and out of the decoder, so far. */
void gh_watch_counts(gh_watch *w, guint64 *skipped, guint64 *joining, guint64 *in, guint64 *out);

#endif
