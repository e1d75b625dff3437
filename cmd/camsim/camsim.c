/* camsim.c: clip encoder, RTSP server and frame pump of the camera simulator.
 *
 * Threads: the GLib main loop (camsim_run) owns the RTSP server socket and
 * the frame pump; gst-rtsp-server calls media-configure and unprepared from
 * its own client and media threads; Go calls the control functions from HTTP
 * handler goroutines. `lock` guards the camera registry for all of them. */
#include "camsim.h"

#include <string.h>

#include <gst/app/gstappsrc.h>
#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <gst/rtp/gstrtpbuffer.h>
#include <gst/rtsp-server/rtsp-server.h>

/* One appsrc of a prepared media that consumes a camera's frames. */
typedef struct {
  GstElement *appsrc;           /* owned ref */
  GstElement *audio;            /* owned ref of the audio appsrc, or NULL */
  GstRTSPMedia *media;          /* not owned: identity only */
  gboolean wait_key;            /* joined mid-GOP: hold frames until an IDR */
  gboolean primed;              /* has received at least one frame */
  gboolean eos;                 /* end-of-stream pushed; push nothing more */
} Sink;

typedef struct {
  int id;                       /* 1-based, as in /camN */
  GPtrArray *sinks;             /* of Sink*, freed by sink_free */
  guint index;                  /* next clip frame for this camera */
  int clip;                     /* index into clips of the clip being sent */
  int next_clip;                /* switch to this clip at the next GOP start */
  gboolean stalled;
  gboolean eos;
  guint64 pushed;
  /* Read and counted on streaming threads (the payloader probe), hence
   * atomics rather than the lock. */
  gint corrupt_ppm;             /* RTP packets per million to drop or damage */
  gint corrupt_mode;            /* CAMSIM_CORRUPT_* */
  gint rtp_dropped;
  gint rtp_damaged;
  /* Frame schedule, on the main context only: due times are start + n/fps
   * so timer lateness never accumulates into drift. Each camera starts at
   * its own phase of the frame interval, as independent cameras do. */
  gint64 pump_start_us;
  guint64 pump_ticks;
} Cam;

static GMutex lock;
static Cam *cams;
static int ncams;

/* One encoded clip: immutable after camsim_encode_clip returns. Every clip
 * has the same codec, fps, GOP and length, so a camera can switch clips at
 * any GOP start without changing its position. */
typedef struct {
  int width, height;
  GPtrArray *frames;            /* of GstBuffer*, one access unit each */
  /* Per frame, in decode order: how far its presentation time lies after
   * its decode time (ns); non-zero only with B-frames. */
  GArray *pts_offsets;          /* of GstClockTime */
  GstCaps *caps;
  int keys;
} Clip;

static GPtrArray *clips;        /* of Clip*; clips[0] is the --size clip */
static Clip *audio_clip;        /* G.711 A-law, one buffer per video frame */
static camsim_clip_params params;       /* of clips[0] */
static camsim_server_opts opts;

static GstRTSPServer *server;
static GMainLoop *loop;

static const char *CAM_KEY = "camsim-cam";

void
camsim_init (void)
{
  gst_init (NULL, NULL);
  loop = g_main_loop_new (NULL, FALSE);
}

void
camsim_free (void *p)
{
  g_free (p);
}

static char *
dupf (const char *fmt, ...) G_GNUC_PRINTF (1, 2);

static char *
dupf (const char *fmt, ...)
{
  va_list ap;
  char *s;
  va_start (ap, fmt);
  s = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  return s;
}

/* ---- clip encoding ---------------------------------------------------- */

static char *
encoder_desc (const camsim_clip_params * p)
{
  /* Both encoders: no scene-cut keyframes and closed GOPs, so IDRs land
   * exactly every gop frames and the loop can restart on frame 0. Without
   * --bframes, no B-frames either (tune=zerolatency). x264's ultrafast
   * preset turns CABAC off, which makes the stream Constrained Baseline;
   * cameras send Main or High, so CABAC is switched back on (Main), and with
   * B-frames the 8x8 transform too (High, as encoders' defaults send). AUDs
   * are off because cameras rarely send them. */
  if (p->h265) {
    if (p->bframes > 0)
      return dupf ("x265enc speed-preset=ultrafast key-int-max=%d bitrate=%d "
          "log-level=error option-string=\"scenecut=0:open-gop=0:bframes=%d:"
          "b-adapt=0:b-pyramid=1:rc-lookahead=%d\" "
          "! h265parse config-interval=-1 "
          "! video/x-h265,stream-format=byte-stream,alignment=au",
          p->gop, p->bitrate_kbps, p->bframes, p->bframes + 1);
    return dupf ("x265enc speed-preset=ultrafast tune=zerolatency "
        "key-int-max=%d bitrate=%d log-level=error "
        "option-string=\"scenecut=0:open-gop=0:bframes=0\" "
        "! h265parse config-interval=-1 "
        "! video/x-h265,stream-format=byte-stream,alignment=au",
        p->gop, p->bitrate_kbps);
  }
  if (p->bframes > 0)
    return dupf ("x264enc speed-preset=ultrafast bframes=%d b-adapt=false "
        "b-pyramid=true dct8x8=true key-int-max=%d bitrate=%d cabac=true "
        "aud=false option-string=\"scenecut=0\" "
        "! video/x-h264,profile=high "
        "! h264parse config-interval=-1 "
        "! video/x-h264,stream-format=byte-stream,alignment=au",
        p->bframes, p->gop, p->bitrate_kbps);
  return dupf ("x264enc speed-preset=ultrafast tune=zerolatency bframes=0 "
      "key-int-max=%d bitrate=%d cabac=true aud=false "
      "option-string=\"scenecut=0\" "
      "! h264parse config-interval=-1 "
      "! video/x-h264,stream-format=byte-stream,alignment=au",
      p->gop, p->bitrate_kbps);
}

/* Returns the text of a pending ERROR message on bus, or NULL. */
static char *
pop_bus_error (GstBus * bus)
{
  GstMessage *msg;
  GError *gerr = NULL;
  gchar *dbg = NULL;
  char *s;

  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  if (msg == NULL)
    return NULL;
  gst_message_parse_error (msg, &gerr, &dbg);
  s = dupf ("%s: %s (%s)", GST_OBJECT_NAME (GST_MESSAGE_SRC (msg)),
      gerr->message, dbg ? dbg : "no details");
  g_clear_error (&gerr);
  g_free (dbg);
  gst_message_unref (msg);
  return s;
}

static void
clip_free (Clip * c)
{
  if (c->frames)
    g_ptr_array_unref (c->frames);
  if (c->pts_offsets)
    g_array_unref (c->pts_offsets);
  if (c->caps)
    gst_caps_unref (c->caps);
  g_free (c);
}

/* encode runs the non-live pipeline desc, which ends in "appsink
 * name=sink", to the end and collects its buffers and caps into clip.
 * Returns 0, or -1 with *err set. */
static int
encode (const char *desc, Clip * clip, char **err)
{
  GError *gerr = NULL;
  GstElement *pipe;
  GstElement *sink;
  GstBus *bus;
  gint64 deadline;
  int rc = -1;

  pipe = gst_parse_launch (desc, &gerr);
  if (pipe == NULL || gerr != NULL) {
    *err = dupf ("encode pipeline %s: %s", desc,
        gerr ? gerr->message : "unknown error");
    g_clear_error (&gerr);
    if (pipe)
      gst_object_unref (pipe);
    return -1;
  }
  sink = gst_bin_get_by_name (GST_BIN (pipe), "sink");
  bus = gst_element_get_bus (pipe);

  if (gst_element_set_state (pipe, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE) {
    char *e = pop_bus_error (bus);
    *err = dupf ("encode pipeline failed to start: %s", e ? e : "no error");
    g_free (e);
    goto done;
  }

  /* The encode is non-live, so it runs as fast as the CPU allows; the
   * deadline only catches a wedged pipeline. */
  deadline = g_get_monotonic_time () + 120 * G_USEC_PER_SEC;
  for (;;) {
    GstSample *s = gst_app_sink_try_pull_sample (GST_APP_SINK (sink),
        100 * GST_MSECOND);
    char *e;

    if (s != NULL) {
      GstBuffer *b = gst_sample_get_buffer (s);
      if (clip->caps == NULL)
        clip->caps = gst_caps_ref (gst_sample_get_caps (s));
      GstClockTime off = 0;
      if (GST_BUFFER_PTS_IS_VALID (b) && GST_BUFFER_DTS_IS_VALID (b)
          && GST_BUFFER_PTS (b) > GST_BUFFER_DTS (b))
        off = GST_BUFFER_PTS (b) - GST_BUFFER_DTS (b);
      g_ptr_array_add (clip->frames, gst_buffer_ref (b));
      g_array_append_val (clip->pts_offsets, off);
      gst_sample_unref (s);
      continue;
    }
    if (gst_app_sink_is_eos (GST_APP_SINK (sink))) {
      rc = 0;
      break;
    }
    if ((e = pop_bus_error (bus)) != NULL) {
      *err = dupf ("encode pipeline: %s", e);
      g_free (e);
      break;
    }
    if (g_get_monotonic_time () > deadline) {
      *err = dupf ("encode pipeline: no end of stream after 120 s "
          "(%u buffers)", clip->frames->len);
      break;
    }
  }

done:
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (bus);
  gst_object_unref (pipe);
  return rc;
}

static Clip *
clip_new (int width, int height)
{
  Clip *clip = g_new0 (Clip, 1);
  clip->width = width;
  clip->height = height;
  clip->frames =
      g_ptr_array_new_with_free_func ((GDestroyNotify) gst_buffer_unref);
  clip->pts_offsets = g_array_new (FALSE, FALSE, sizeof (GstClockTime));
  return clip;
}

int
camsim_encode_clip (const camsim_clip_params * p, char **err)
{
  char *enc, *desc;
  Clip *clip;
  int i;

  if (clips == NULL) {
    clips = g_ptr_array_new_with_free_func ((GDestroyNotify) clip_free);
    params = *p;
  } else if (p->h265 != params.h265 || p->fps != params.fps
      || p->gop != params.gop || p->clip_frames != params.clip_frames
      || p->bframes != params.bframes) {
    *err = dupf ("clip %dx%d: codec, fps, gop and length must match the "
        "first clip", p->width, p->height);
    return -1;
  }
  enc = encoder_desc (p);
  /* horizontal-speed makes every frame differ, as live video does. */
  desc = dupf ("videotestsrc pattern=smpte horizontal-speed=4 num-buffers=%d "
      "! video/x-raw,format=I420,width=%d,height=%d,framerate=%d/1 "
      "! %s ! appsink name=sink sync=false max-buffers=0",
      p->clip_frames, p->width, p->height, p->fps, enc);
  g_free (enc);
  clip = clip_new (p->width, p->height);
  if (encode (desc, clip, err) != 0) {
    g_free (desc);
    clip_free (clip);
    return -1;
  }
  g_free (desc);

  if ((int) clip->frames->len != p->clip_frames || clip->caps == NULL) {
    *err = dupf ("encoder produced %u access units, want %d",
        clip->frames->len, p->clip_frames);
    clip_free (clip);
    return -1;
  }
  for (i = 0; i < (int) clip->frames->len; i++) {
    GstBuffer *b = g_ptr_array_index (clip->frames, i);
    gboolean key = !GST_BUFFER_FLAG_IS_SET (b, GST_BUFFER_FLAG_DELTA_UNIT);
    if (key)
      clip->keys++;
    /* The loop, the new-media rewind and size switches rely on IDRs at
     * multiples of gop. */
    if (i % p->gop == 0 && !key) {
      *err = dupf ("encoder did not emit a keyframe at frame %d (gop %d)", i,
          p->gop);
      clip_free (clip);
      return -1;
    }
  }
  g_ptr_array_add (clips, clip);
  return 0;
}

int
camsim_encode_audio (char **err)
{
  /* One buffer of audio per video frame, so the pump sends both on the
   * same tick and the clip loops with the video. */
  int samples = (8000 + params.fps / 2) / params.fps;
  char *desc;

  desc = dupf ("audiotestsrc wave=sine freq=440 volume=0.2 num-buffers=%d "
      "samplesperbuffer=%d ! audio/x-raw,format=S16LE,rate=8000,channels=1 "
      "! alawenc ! appsink name=sink sync=false max-buffers=0",
      params.clip_frames, samples);
  audio_clip = clip_new (0, 0);
  if (encode (desc, audio_clip, err) != 0) {
    g_free (desc);
    return -1;
  }
  g_free (desc);
  if ((int) audio_clip->frames->len != params.clip_frames
      || audio_clip->caps == NULL) {
    *err = dupf ("audio encoder produced %u buffers, want %d",
        audio_clip->frames->len, params.clip_frames);
    return -1;
  }
  return 0;
}

static Clip *
clip_get (int i)
{
  return g_ptr_array_index (clips, i);
}

int
camsim_clip_frames (void)
{
  return clips ? (int) clip_get (0)->frames->len : 0;
}

int
camsim_clip_keyframes (void)
{
  return clips ? clip_get (0)->keys : 0;
}

char *
camsim_clip_caps (void)
{
  return clips ? gst_caps_to_string (clip_get (0)->caps) : g_strdup ("");
}

/* ---- camera registry -------------------------------------------------- */

static void
sink_free (Sink * s)
{
  gst_object_unref (s->appsrc);
  if (s->audio)
    gst_object_unref (s->audio);
  g_free (s);
}

static void
remove_media (Cam * cam, GstRTSPMedia * media)
{
  guint i;

  g_mutex_lock (&lock);
  for (i = 0; i < cam->sinks->len; i++) {
    Sink *s = g_ptr_array_index (cam->sinks, i);
    if (s->media == media) {
      g_ptr_array_remove_index_fast (cam->sinks, i);
      break;
    }
  }
  g_mutex_unlock (&lock);
}

static void
on_media_unprepared (GstRTSPMedia * media, gpointer data)
{
  remove_media (data, media);
}

/* Safety net for a media that is finalised without being unprepared (for
 * example when its prepare failed half-way). */
static void
on_media_finalized (gpointer data, GObject * where_the_media_was)
{
  remove_media (data, (GstRTSPMedia *) where_the_media_was);
}

static void
set_if_exists (GObject * obj, const char *prop, guint64 v)
{
  GParamSpec *ps = g_object_class_find_property (G_OBJECT_GET_CLASS (obj), prop);
  GValue val = G_VALUE_INIT;

  if (ps == NULL)
    return;
  g_value_init (&val, ps->value_type);
  if (G_IS_PARAM_SPEC_ENUM (ps))
    g_value_set_enum (&val, (gint) v);
  else if (ps->value_type == G_TYPE_UINT)
    g_value_set_uint (&val, (guint) v);
  else if (ps->value_type == G_TYPE_UINT64)
    g_value_set_uint64 (&val, v);
  else {
    g_value_unset (&val);
    return;
  }
  g_object_set_property (obj, prop, &val);
  g_value_unset (&val);
}

/* ---- packet corruption ------------------------------------------------ */

/* The real NAL unit type carried by an RTP payload (looking inside
 * fragmentation units), the bytes of payload headers before the NAL data,
 * and whether the packet holds a parameter set or aggregates NAL units. */
static void
nal_of_payload (const guint8 * p, guint len, int *hdr, gboolean * params_set)
{
  int t;

  *params_set = TRUE;
  *hdr = (int) len;
  if (params.h265) {
    if (len < 3)
      return;
    t = (p[0] >> 1) & 0x3f;
    *hdr = 2;
    if (t == 49) {              /* FU */
      t = p[2] & 0x3f;
      *hdr = 3;
    }
    /* 32-34: VPS, SPS, PPS; 48: aggregation packet */
    *params_set = (t >= 32 && t <= 34) || t == 48;
    return;
  }
  if (len < 2)
    return;
  t = p[0] & 0x1f;
  *hdr = 1;
  if (t == 28) {                /* FU-A */
    t = p[1] & 0x1f;
    *hdr = 2;
  }
  /* 7, 8: SPS, PPS; 24-27: aggregation packets */
  *params_set = t == 7 || t == 8 || (t >= 24 && t <= 27);
}

/* damage overwrites a few bytes in the second half of the NAL data of a
 * writable RTP packet, as bit errors on a radio link would. Parameter sets
 * are left alone: a damaged SPS describes another stream, not a corrupted
 * one. Returns FALSE when the packet was not touched. */
static gboolean
damage (GstBuffer * b)
{
  GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
  guint8 *p;
  guint len;
  int hdr, i;
  gboolean ps;

  if (!gst_rtp_buffer_map (b, GST_MAP_READWRITE, &rtp))
    return FALSE;
  p = gst_rtp_buffer_get_payload (&rtp);
  len = gst_rtp_buffer_get_payload_len (&rtp);
  nal_of_payload (p, len, &hdr, &ps);
  if (ps || len < (guint) hdr + 8) {
    gst_rtp_buffer_unmap (&rtp);
    return FALSE;
  }
  for (i = 0; i < 8; i++) {
    guint at = hdr + (len - hdr) / 2 + g_random_int_range (0, (len - hdr) / 2);
    p[at] ^= (guint8) g_random_int_range (1, 256);
  }
  gst_rtp_buffer_unmap (&rtp);
  return TRUE;
}

/* corrupt_one decides the fate of one RTP packet: keep (TRUE, *b possibly
 * replaced by a damaged copy) or drop (FALSE). */
static gboolean
corrupt_one (Cam * cam, GstBuffer ** b)
{
  gint ppm = g_atomic_int_get (&cam->corrupt_ppm);
  gint mode = g_atomic_int_get (&cam->corrupt_mode);
  GstBuffer *copy;

  if (ppm <= 0 || g_random_int_range (0, 1000000) >= ppm)
    return TRUE;
  if (mode == CAMSIM_CORRUPT_MIX)
    mode = g_random_boolean ()? CAMSIM_CORRUPT_DROP : CAMSIM_CORRUPT_DAMAGE;
  if (mode == CAMSIM_CORRUPT_DROP) {
    g_atomic_int_inc (&cam->rtp_dropped);
    return FALSE;
  }
  /* A deep copy: the payload shares memory with the clip and with the
   * packets other media are sent. */
  copy = gst_buffer_copy_deep (*b);
  if (!damage (copy)) {
    gst_buffer_unref (copy);
    return TRUE;
  }
  gst_buffer_unref (*b);
  *b = copy;
  g_atomic_int_inc (&cam->rtp_damaged);
  return TRUE;
}

static gboolean
corrupt_list_item (GstBuffer ** b, guint idx, gpointer data)
{
  if (!corrupt_one (data, b)) {
    gst_buffer_unref (*b);
    *b = NULL;                  /* removes it from the list */
  }
  return TRUE;
}

/* Probe on the payloader's src pad: RTP packets leave here for every client
 * of the camera, so corruption hits all of them alike, keyframes included.
 * Payloaders push single packets and lists. */
static GstPadProbeReturn
corrupt_probe (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  Cam *cam = data;

  if (g_atomic_int_get (&cam->corrupt_ppm) <= 0)
    return GST_PAD_PROBE_OK;
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
    GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER (info);
    if (!corrupt_one (cam, &b)) {
      /* DROP unrefs the probe's data. */
      return GST_PAD_PROBE_DROP;
    }
    GST_PAD_PROBE_INFO_DATA (info) = b;
  } else if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
    GstBufferList *l = GST_PAD_PROBE_INFO_BUFFER_LIST (info);
    l = gst_buffer_list_make_writable (l);
    gst_buffer_list_foreach (l, corrupt_list_item, cam);
    GST_PAD_PROBE_INFO_DATA (info) = l;
    /* An empty list must not travel on: the server's sinks read its first
     * packet. DROP unrefs it. */
    if (gst_buffer_list_length (l) == 0)
      return GST_PAD_PROBE_DROP;
  }
  return GST_PAD_PROBE_OK;
}

/* ---- capture timestamps ------------------------------------------------ */

/* A camera stamps each frame with its capture clock, so its RTP timestamps
 * are exactly 1/fps apart however late the frame leaves; and with B-frames
 * a frame is presented after it is sent (PTS after DTS), so the RTP
 * timestamps (from the PTS) are not monotonic. The pump puts the frame's
 * due time on its schedule (GST_BUFFER_OFFSET, us) and its PTS offset
 * (GST_BUFFER_OFFSET_END, ns) on the buffer; this probe on the appsrc's src
 * pad, after do-timestamp stamped the running time of sending, turns them
 * into DTS = running time of the due time and PTS = DTS + offset. Measured
 * before: with the push time as timestamp, a loaded machine's timer
 * lateness went into the stream, and ffprobe guessed 301/12 fps for a
 * 25 fps camera. Runs on the appsrc's streaming thread only. */
typedef struct {
  gboolean anchored;
  GstClockTime base_ts;         /* running time of ... */
  guint64 base_due_us;          /* ... this due time */
} Stamp;

/* A stamp further than this from the schedule re-anchors it: the media's
 * running time restarted (prepare, then PLAY) or the pump restarted its
 * schedule after falling behind. */
#define STAMP_REANCHOR (500 * GST_MSECOND)

static GstPadProbeReturn
stamp_probe (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  Stamp *st = data;
  GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER (info);
  guint64 due = GST_BUFFER_OFFSET (b);
  GstClockTime off = GST_BUFFER_OFFSET_END (b), sent = GST_BUFFER_PTS (b);
  GstClockTime dts;

  if (due == GST_BUFFER_OFFSET_NONE || !GST_CLOCK_TIME_IS_VALID (sent))
    return GST_PAD_PROBE_OK;
  dts = st->base_ts + (due - st->base_due_us) * GST_USECOND;
  if (!st->anchored || due < st->base_due_us
      || (dts > sent ? dts - sent : sent - dts) > STAMP_REANCHOR) {
    st->anchored = TRUE;
    st->base_ts = sent;
    st->base_due_us = due;
    dts = sent;
  }
  b = gst_buffer_make_writable (b);
  GST_BUFFER_DTS (b) = dts;
  GST_BUFFER_PTS (b) = dts + (off == GST_BUFFER_OFFSET_NONE ? 0 : off);
  GST_BUFFER_OFFSET (b) = GST_BUFFER_OFFSET_NONE;
  GST_BUFFER_OFFSET_END (b) = GST_BUFFER_OFFSET_NONE;
  GST_PAD_PROBE_INFO_DATA (info) = b;
  return GST_PAD_PROBE_OK;
}

static void
on_media_configure (GstRTSPMediaFactory * factory, GstRTSPMedia * media,
    gpointer data)
{
  Cam *cam = data;
  GstElement *bin = gst_rtsp_media_get_element (media);
  GstElement *src = gst_bin_get_by_name_recurse_up (GST_BIN (bin), "src");
  GstElement *pay = gst_bin_get_by_name_recurse_up (GST_BIN (bin), "pay0");
  GstElement *audio = gst_bin_get_by_name_recurse_up (GST_BIN (bin), "asrc");
  Sink *s;

  gst_object_unref (bin);
  if (src == NULL || pay == NULL) {
    g_warning ("camsim: cam%d: media has no element named src or pay0",
        cam->id);
    if (src)
      gst_object_unref (src);
    if (pay)
      gst_object_unref (pay);
    if (audio)
      gst_object_unref (audio);
    return;
  }
  {
    GstPad *pad = gst_element_get_static_pad (pay, "src");
    gst_pad_add_probe (pad,
        GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST,
        corrupt_probe, cam, NULL);
    gst_object_unref (pad);
    gst_object_unref (pay);
    pad = gst_element_get_static_pad (src, "src");
    gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, stamp_probe,
        g_new0 (Stamp, 1), g_free);
    gst_object_unref (pad);
  }
  /* Bounded queue, dropping the oldest: a wedged media must not grow
   * without bound (normally it holds about one frame). */
  set_if_exists (G_OBJECT (src), "max-bytes", 0);
  set_if_exists (G_OBJECT (src), "max-buffers", 2 * params.fps);
  set_if_exists (G_OBJECT (src), "leaky-type", 2 /* downstream */ );
  if (audio) {
    g_object_set (audio, "caps", audio_clip->caps, NULL);
    set_if_exists (G_OBJECT (audio), "max-bytes", 0);
    set_if_exists (G_OBJECT (audio), "max-buffers", 2 * params.fps);
    set_if_exists (G_OBJECT (audio), "leaky-type", 2 /* downstream */ );
  }

  g_object_set_data (G_OBJECT (media), CAM_KEY, GINT_TO_POINTER (cam->id));
  g_signal_connect (media, "unprepared", G_CALLBACK (on_media_unprepared), cam);
  g_object_weak_ref (G_OBJECT (media), on_media_finalized, cam);

  s = g_new0 (Sink, 1);
  s->appsrc = src;
  s->audio = audio;
  s->media = media;

  g_mutex_lock (&lock);
  if (cam->sinks->len == 0) {
    /* Nobody watches this camera, so rewinding it to the start of its GOP is
     * invisible; the new media then starts on an IDR, which lets h264parse
     * caps (and the SDP) appear at once instead of after up to one GOP. A
     * pending size switch happens now for the same reason. */
    cam->index -= cam->index % params.gop;
    cam->clip = cam->next_clip;
  } else {
    s->wait_key = TRUE;
  }
  /* The clip's own caps (profile, level, size) so the SDP matches what is
   * sent. */
  g_object_set (src, "caps", clip_get (cam->clip)->caps, NULL);
  cam->eos = FALSE;
  g_ptr_array_add (cam->sinks, s);
  g_mutex_unlock (&lock);
}

/* ---- frame pump -------------------------------------------------------- */

/* Whether el (an appsrc of a media) has reached PLAYING; never blocks. */
static gboolean
element_playing (GstElement * el)
{
  GstState cur = GST_STATE_VOID_PENDING;

  gst_element_get_state (el, &cur, NULL, 0);
  return cur == GST_STATE_PLAYING;
}

/* Pushes cam's next frame, due at due_us on its schedule, to every client
 * of it. Called with lock held. */
static void
pump_camera (Cam * cam, gint64 due_us)
{
  guint i;
  GstBuffer *frame;
  gboolean key, watched = FALSE;

  if (cam->next_clip != cam->clip && cam->index % params.gop == 0) {
    /* A size switch, at a GOP start: the IDR that follows carries the new
     * SPS/PPS in band, as a camera's would after a resolution change. The
     * new caps travel in order with the data (appsrc queues them). */
    cam->clip = cam->next_clip;
    for (i = 0; i < cam->sinks->len; i++) {
      Sink *s = g_ptr_array_index (cam->sinks, i);
      gst_app_src_set_caps (GST_APP_SRC (s->appsrc),
          clip_get (cam->clip)->caps);
    }
  }
  frame = g_ptr_array_index (clip_get (cam->clip)->frames, cam->index);
  key = !GST_BUFFER_FLAG_IS_SET (frame, GST_BUFFER_FLAG_DELTA_UNIT);
  for (i = 0; i < cam->sinks->len; i++) {
    Sink *s = g_ptr_array_index (cam->sinks, i);
    GstBuffer *b;

    if (s->eos || (s->wait_key && !key))
      continue;
    /* Nothing before the media's pipeline is PLAYING: appsrc's
     * do-timestamp stamps a buffer with the running time when it is
     * pushed, and before the pipeline has a base time that is the clock's
     * absolute time (the machine's uptime). gst-rtsp-server's sinks sync
     * to the clock (rate control), so a first frame stamped 1h48m waited
     * 1h48m and held back every later one: the client got PLAY 200 OK and
     * RTCP, and no RTP packet (seen for 2 of 60 first clients of a fresh
     * camsim under CPU load, when the pump ran between media-configure
     * and PLAYING). The media goes PLAYING while it prepares, then waits
     * for this first frame. */
    if (!element_playing (s->appsrc))
      continue;
    /* A stalled camera still primes a new media with one frame: the
     * media cannot finish preparing (and DESCRIBE cannot be answered)
     * before its payloader has seen data. The frame goes nowhere, as no
     * client has a transport yet; like a hung camera, the RTSP dialogue
     * then works but no frame arrives. */
    if (cam->stalled && s->primed)
      continue;
    /* A new client's first frame opens its stream: one that is not an
     * IDR leaves the client waiting a GOP for the next one. The rewind and
     * the hold below prevent that; this says so if they ever do not. */
    if (!s->primed && !key)
      g_warning ("camsim: cam%d: a new client's first frame is not a "
          "keyframe (frame %d of the GOP)", cam->id,
          cam->index % params.gop);
    s->wait_key = FALSE;
    s->primed = TRUE;
    /* Shallow copy: shares the encoded memory. Timestamps are cleared so
     * do-timestamp stamps the running time of this media; stamp_probe then
     * puts the frame on the camera's schedule. */
    b = gst_buffer_copy (frame);
    GST_BUFFER_PTS (b) = GST_CLOCK_TIME_NONE;
    GST_BUFFER_DTS (b) = GST_CLOCK_TIME_NONE;
    GST_BUFFER_DURATION (b) = GST_SECOND / params.fps;
    GST_BUFFER_OFFSET (b) = (guint64) due_us;
    GST_BUFFER_OFFSET_END (b) = g_array_index (clip_get (cam->clip)->pts_offsets,
        GstClockTime, cam->index);
    GST_BUFFER_FLAG_UNSET (b, GST_BUFFER_FLAG_DISCONT);
    if (gst_app_src_push_buffer (GST_APP_SRC (s->appsrc), b) == GST_FLOW_OK)
      cam->pushed++;
    if (s->audio) {
      b = gst_buffer_copy (g_ptr_array_index (audio_clip->frames,
              cam->index));
      GST_BUFFER_PTS (b) = GST_CLOCK_TIME_NONE;
      GST_BUFFER_DTS (b) = GST_CLOCK_TIME_NONE;
      GST_BUFFER_OFFSET (b) = GST_BUFFER_OFFSET_NONE;
      GST_BUFFER_OFFSET_END (b) = GST_BUFFER_OFFSET_NONE;
      gst_app_src_push_buffer (GST_APP_SRC (s->audio), b);
    }
  }
  for (i = 0; i < cam->sinks->len && !watched; i++)
    watched = ((Sink *) g_ptr_array_index (cam->sinks, i))->primed;
  /* A stalled camera keeps its position, so resuming continues the same
   * decodable sequence instead of jumping into the middle of a GOP. So
   * does a camera whose only clients have not had a frame yet (their
   * media is not PLAYING): the rewind to the GOP start in media_configure
   * must still hold when the first frame goes out. Advancing meanwhile
   * started a fresh camera's first client on a P-frame, and it waited up
   * to a GOP (2 s by default) for the next IDR. */
  if (!cam->stalled && (watched || cam->sinks->len == 0))
    cam->index = (cam->index + 1) % params.clip_frames;
}

static gint64
pump_due (const Cam * cam)
{
  return cam->pump_start_us +
      (gint64) (cam->pump_ticks * G_USEC_PER_SEC / params.fps);
}

static gboolean
pump_dispatch (GSource * source, GSourceFunc cb, gpointer data)
{
  gint64 now = g_get_monotonic_time ();
  gint64 next = G_MAXINT64;
  int c;

  g_mutex_lock (&lock);
  for (c = 0; c < ncams; c++) {
    Cam *cam = &cams[c];
    gint64 due = pump_due (cam);

    if (due <= now) {
      pump_camera (cam, due);
      cam->pump_ticks++;
      due = pump_due (cam);
      if (now - due > G_USEC_PER_SEC) {
        /* More than a second behind (process was stopped or starved):
         * restart the schedule rather than bursting the backlog. */
        cam->pump_start_us = now + G_USEC_PER_SEC / params.fps;
        cam->pump_ticks = 0;
        due = cam->pump_start_us;
      }
    }
    next = MIN (next, due);
  }
  g_mutex_unlock (&lock);
  g_source_set_ready_time (source, next);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs pump_funcs = { NULL, NULL, pump_dispatch, NULL, NULL, NULL };

/* ---- server ------------------------------------------------------------ */

int
camsim_server_start (const camsim_server_opts * o, char **err)
{
  const char *host = o->host, *port = o->port;
  const char *user = o->user, *password = o->password;
  int cameras = o->cameras;
  GstRTSPMountPoints *mounts;
  GstRTSPSessionPool *pool;
  GSource *src;
  GError *gerr = NULL;
  const char *enc_caps = params.h265 ? "video/x-h265" : "video/x-h264";
  const char *parse = params.h265 ? "h265parse" : "h264parse";
  const char *pay = params.h265 ? "rtph265pay" : "rtph264pay";
  char *launch, *audio;
  int i;

  opts = *o;
  ncams = cameras;
  cams = g_new0 (Cam, cameras);
  for (i = 0; i < cameras; i++) {
    cams[i].id = i + 1;
    cams[i].sinks = g_ptr_array_new_with_free_func ((GDestroyNotify) sink_free);
    /* Cameras start at different points of the clip so they differ
     * visibly (the bars are in different places) at no cost. */
    cams[i].index = (guint) ((guint64) i * params.clip_frames / cameras);
  }

  server = gst_rtsp_server_new ();
  gst_rtsp_server_set_address (server, host);
  gst_rtsp_server_set_service (server, port);
  /* The default backlog of 5 makes a fleet of clients connecting at once
   * wait for SYN retries. */
  gst_rtsp_server_set_backlog (server, 128);
  /* One thread per client (the default is one for all): a client blocked
   * while its media prepares must not hold up the other cameras' clients. */
  {
    GstRTSPThreadPool *tp = gst_rtsp_server_get_thread_pool (server);
    gst_rtsp_thread_pool_set_max_threads (tp, 256);
    g_object_unref (tp);
  }

  /* appsrc caps are set from the clip in media-configure; the launch line
   * carries the stream format so the graph reads complete on its own.
   * No config-interval on the payloader: every IDR of the clip already
   * carries its parameter sets, and rtph264pay config-interval=-1 would
   * insert them again before every IDR slice, which ffmpeg reports as
   * non-monotonic DTS. */
  /* The audio stream, like a camera's microphone: G.711 A-law at 8 kHz
   * (what IP cameras commonly send), pre-encoded and pushed by the pump
   * with the video. An appsrc rather than a live audiotestsrc: the media
   * must stay unseekable, or the server answers a PLAY with a Range (which
   * ffmpeg sends) with 503 after a failed seek. */
  audio = g_strdup (o->audio ?
      " appsrc name=asrc is-live=true format=time do-timestamp=true "
      "caps=\"audio/x-alaw,rate=8000,channels=1\" "
      "! rtppcmapay name=pay1 pt=8" : "");
  launch = dupf ("( appsrc name=src is-live=true format=time do-timestamp=true "
      "caps=\"%s,stream-format=byte-stream,alignment=au,framerate=%d/1\" "
      "! %s ! %s name=pay0 pt=96%s )",
      enc_caps, params.fps, parse, pay, audio);
  g_free (audio);

  mounts = gst_rtsp_server_get_mount_points (server);
  for (i = 0; i < cameras; i++) {
    GstRTSPMediaFactory *f = gst_rtsp_media_factory_new ();
    char *path = dupf ("/cam%d", i + 1);

    gst_rtsp_media_factory_set_launch (f, launch);
    /* One media per camera however many clients: the clip is pushed once. */
    gst_rtsp_media_factory_set_shared (f, TRUE);
    /* --tcp-only: SETUP with a UDP transport is refused (461 Unsupported
     * transport), as behind a firewall that only lets the RTSP connection
     * through. */
    if (o->tcp_only)
      gst_rtsp_media_factory_set_protocols (f, GST_RTSP_LOWER_TRANS_TCP);
    if (user != NULL || o->tls_cert != NULL)
      gst_rtsp_media_factory_add_role (f, "camsim",
          GST_RTSP_PERM_MEDIA_FACTORY_ACCESS, G_TYPE_BOOLEAN, TRUE,
          GST_RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, G_TYPE_BOOLEAN, TRUE, NULL);
    g_signal_connect (f, "media-configure", G_CALLBACK (on_media_configure),
        &cams[i]);
    gst_rtsp_mount_points_add_factory (mounts, path, f);
    g_free (path);
  }
  g_object_unref (mounts);
  g_free (launch);

  if (user != NULL || o->tls_cert != NULL) {
    GstRTSPAuth *auth = gst_rtsp_auth_new ();
    GstRTSPToken *token = gst_rtsp_token_new (GST_RTSP_TOKEN_MEDIA_FACTORY_ROLE,
        G_TYPE_STRING, "camsim", NULL);

    if (user != NULL) {
      char *basic = gst_rtsp_auth_make_basic (user, password);

      /* No default token: a request without valid credentials gets 401. */
      gst_rtsp_auth_add_basic (auth, basic, token);
      g_free (basic);
    } else {
      /* TLS alone: everyone who completes the handshake may play. */
      gst_rtsp_auth_set_default_token (auth, token);
    }
    if (o->tls_cert != NULL) {
      GTlsCertificate *cert =
          g_tls_certificate_new_from_files (o->tls_cert, o->tls_key, &gerr);
      if (cert == NULL) {
        *err = dupf ("--tls-cert %s, --tls-key %s: %s", o->tls_cert,
            o->tls_key, gerr ? gerr->message : "cannot load");
        g_clear_error (&gerr);
        gst_rtsp_token_unref (token);
        g_object_unref (auth);
        return -1;
      }
      gst_rtsp_auth_set_tls_certificate (auth, cert);
      g_object_unref (cert);
    }
    gst_rtsp_token_unref (token);
    gst_rtsp_server_set_auth (server, auth);
    g_object_unref (auth);
  }

  /* create_source instead of attach: it reports why binding failed. */
  src = gst_rtsp_server_create_source (server, NULL, &gerr);
  if (src == NULL) {
    *err = dupf ("RTSP server on %s:%s: %s", host, port,
        gerr ? gerr->message : "cannot create socket");
    g_clear_error (&gerr);
    return -1;
  }
  g_source_attach (src, NULL);
  g_source_unref (src);

  /* Expire sessions of clients that vanished without TEARDOWN (UDP). */
  pool = gst_rtsp_server_get_session_pool (server);
  src = gst_rtsp_session_pool_create_watch (pool);
  g_source_attach (src, NULL);
  g_source_unref (src);
  g_object_unref (pool);

  {
    /* Independent cameras do not tick together: each gets its own phase
     * of the frame interval (reproducible pseudo-random, so runs compare),
     * and a capture service sees frames spread out as it would in the
     * field rather than every camera's frame at the same instant. */
    gint64 start = g_get_monotonic_time ();
    GRand *r = g_rand_new_with_seed (1);
    for (i = 0; i < cameras; i++) {
      cams[i].pump_start_us = start +
          g_rand_int_range (r, 0, G_USEC_PER_SEC / params.fps);
      cams[i].pump_ticks = 0;
    }
    g_rand_free (r);
    src = g_source_new (&pump_funcs, sizeof (GSource));
    g_source_set_ready_time (src, start);
  }
  g_source_set_name (src, "camsim-pump");
  g_source_set_priority (src, G_PRIORITY_HIGH);
  g_source_attach (src, NULL);
  g_source_unref (src);

  return gst_rtsp_server_get_bound_port (server);
}

void
camsim_run (void)
{
  g_main_loop_run (loop);
}

/* ---- calls marshalled onto the main loop ------------------------------- */

typedef struct {
  gint refs;
  GMutex m;
  GCond c;
  gboolean done;
  int (*fn) (int);
  int arg;
  int result;
} Call;

static void
call_unref (gpointer data)
{
  Call *c = data;
  if (g_atomic_int_dec_and_test (&c->refs)) {
    g_mutex_clear (&c->m);
    g_cond_clear (&c->c);
    g_free (c);
  }
}

static gboolean
call_dispatch (gpointer data)
{
  Call *c = data;
  int r = c->fn (c->arg);

  g_mutex_lock (&c->m);
  c->result = r;
  c->done = TRUE;
  g_cond_signal (&c->c);
  g_mutex_unlock (&c->m);
  return G_SOURCE_REMOVE;
}

/* Runs fn(arg) on the main loop and waits up to 5 s for its result. An idle
 * source rather than g_main_context_invoke: invoke runs fn on the calling
 * thread when no loop owns the context, which is not what a caller on an
 * HTTP goroutine wants. */
static int
run_on_loop (int (*fn) (int), int arg)
{
  Call *c = g_new0 (Call, 1);
  GSource *src = g_idle_source_new ();
  gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  int r;

  c->refs = 2;
  g_mutex_init (&c->m);
  g_cond_init (&c->c);
  c->fn = fn;
  c->arg = arg;
  g_source_set_priority (src, G_PRIORITY_DEFAULT);
  g_source_set_callback (src, call_dispatch, c, call_unref);
  g_source_attach (src, NULL);
  g_source_unref (src);

  g_mutex_lock (&c->m);
  while (!c->done)
    if (!g_cond_wait_until (&c->c, &c->m, deadline))
      break;
  r = c->done ? c->result : -2;
  g_mutex_unlock (&c->m);
  call_unref (c);
  return r;
}

typedef struct {
  int cam;                      /* 0: any camera */
  gboolean found;
  int count;
} Match;

static GstRTSPFilterResult
match_session_media (GstRTSPSession * sess, GstRTSPSessionMedia * sm,
    gpointer data)
{
  Match *m = data;
  GstRTSPMedia *media = gst_rtsp_session_media_get_media (sm);

  if (media && (m->cam == 0 ||
          GPOINTER_TO_INT (g_object_get_data (G_OBJECT (media),
                  CAM_KEY)) == m->cam))
    m->found = TRUE;
  return GST_RTSP_FILTER_KEEP;
}

static GstRTSPFilterResult
match_client_session (GstRTSPClient * client, GstRTSPSession * sess,
    gpointer data)
{
  gst_rtsp_session_filter (sess, match_session_media, data);
  return GST_RTSP_FILTER_KEEP;
}

static GstRTSPFilterResult
close_matching_client (GstRTSPServer * srv, GstRTSPClient * client,
    gpointer data)
{
  Match *m = data;

  if (m->cam == 0) {
    m->count++;
    return GST_RTSP_FILTER_REMOVE;
  }
  m->found = FALSE;
  gst_rtsp_client_session_filter (client, match_client_session, m);
  if (!m->found)
    return GST_RTSP_FILTER_KEEP;
  m->count++;
  return GST_RTSP_FILTER_REMOVE;       /* closes the client's connection */
}

static int
do_disconnect (int cam)
{
  Match m = { cam, FALSE, 0 };
  gst_rtsp_server_client_filter (server, close_matching_client, &m);
  return m.count;
}

static gboolean
do_quit (gpointer unused)
{
  do_disconnect (0);
  g_main_loop_quit (loop);
  return G_SOURCE_REMOVE;
}

void
camsim_quit (void)
{
  /* Not waited for: the loop may already have stopped. */
  GSource *src = g_idle_source_new ();
  g_source_set_callback (src, do_quit, NULL, NULL);
  g_source_attach (src, NULL);
  g_source_unref (src);
}

/* ---- control ----------------------------------------------------------- */

static Cam *
cam_get (int id)
{
  if (id < 1 || id > ncams)
    return NULL;
  return &cams[id - 1];
}

int
camsim_set_stalled (int id, int stalled)
{
  Cam *cam = cam_get (id);
  int n;

  if (cam == NULL)
    return -1;
  g_mutex_lock (&lock);
  cam->stalled = stalled != 0;
  n = cam->sinks->len;
  g_mutex_unlock (&lock);
  return n;
}

int
camsim_push_eos (int id)
{
  Cam *cam = cam_get (id);
  guint i;
  int n = 0;

  if (cam == NULL)
    return -1;
  /* appsrc's end_of_stream is thread-safe; the lock orders it against the
   * pump so no frame follows the EOS. */
  g_mutex_lock (&lock);
  for (i = 0; i < cam->sinks->len; i++) {
    Sink *s = g_ptr_array_index (cam->sinks, i);
    if (s->eos)
      continue;
    if (gst_app_src_end_of_stream (GST_APP_SRC (s->appsrc)) == GST_FLOW_OK)
      n++;
    /* The stream ends only when every source of the media has ended. */
    if (s->audio)
      gst_app_src_end_of_stream (GST_APP_SRC (s->audio));
    s->eos = TRUE;
  }
  cam->eos = TRUE;
  g_mutex_unlock (&lock);
  return n;
}

int
camsim_disconnect (int id)
{
  if (cam_get (id) == NULL)
    return -1;
  /* Closing clients touches their watches on the server's context. */
  return run_on_loop (do_disconnect, id);
}

int
camsim_set_size (int id, int width, int height)
{
  Cam *cam = cam_get (id);
  guint i;

  if (cam == NULL)
    return -1;
  for (i = 0; i < clips->len; i++) {
    Clip *c = clip_get (i);
    if (c->width == width && c->height == height) {
      g_mutex_lock (&lock);
      cam->next_clip = i;
      g_mutex_unlock (&lock);
      return 0;
    }
  }
  return -3;
}

int
camsim_set_corrupt (int id, int ppm, int mode)
{
  Cam *cam = cam_get (id);

  if (cam == NULL)
    return -1;
  g_atomic_int_set (&cam->corrupt_mode, mode);
  g_atomic_int_set (&cam->corrupt_ppm, ppm);
  return 0;
}

static GstRTSPFilterResult
count_session (GstRTSPSessionPool * pool, GstRTSPSession * sess, gpointer data)
{
  Match *m = data;

  m->found = FALSE;
  gst_rtsp_session_filter (sess, match_session_media, m);
  if (m->found)
    m->count++;
  return GST_RTSP_FILTER_KEEP;
}

int
camsim_status (int id, camsim_cam_status * out)
{
  Cam *cam = cam_get (id);
  GstRTSPSessionPool *pool;
  Match m = { id, FALSE, 0 };

  if (cam == NULL)
    return -1;
  /* The pool and session filters are MT-safe; run without our lock so no
   * lock order between theirs and ours exists. */
  pool = gst_rtsp_server_get_session_pool (server);
  gst_rtsp_session_pool_filter (pool, count_session, &m);
  g_object_unref (pool);

  g_mutex_lock (&lock);
  out->sources = cam->sinks->len;
  out->clients = m.count;
  out->frames_pushed = cam->pushed;
  out->stalled = cam->stalled;
  out->eos = cam->eos;
  out->width = clip_get (cam->clip)->width;
  out->height = clip_get (cam->clip)->height;
  out->next_width = clip_get (cam->next_clip)->width;
  out->next_height = clip_get (cam->next_clip)->height;
  g_mutex_unlock (&lock);
  out->corrupt_ppm = g_atomic_int_get (&cam->corrupt_ppm);
  out->corrupt_mode = g_atomic_int_get (&cam->corrupt_mode);
  out->rtp_dropped = (guint) g_atomic_int_get (&cam->rtp_dropped);
  out->rtp_damaged = (guint) g_atomic_int_get (&cam->rtp_damaged);
  return 0;
}
