/* camsim.h: the GStreamer side of the camera simulator.
 *
 * The clip is encoded once, then the same encoded access units are replayed
 * to every RTSP mount. All functions are safe to call from any thread unless
 * stated otherwise (camsim_encode_clip and camsim_server_start run once at
 * start-up); GLib work that must run on the server's main context is
 * marshalled there through an idle source. */
#ifndef CAMSIM_H
#define CAMSIM_H

#include <stdint.h>

typedef struct {
  int h265;          /* 0: H.264 (x264enc), 1: H.265 (x265enc) */
  int width, height;
  int fps;
  int gop;           /* frames between IDR frames */
  int bitrate_kbps;
  int clip_frames;   /* a whole number of GOPs */
  int bframes;       /* B-frames between references, 0: none */
} camsim_clip_params;

typedef struct {
  int sources;            /* appsrcs of live media for this camera */
  int clients;            /* RTSP sessions using this camera's media */
  uint64_t frames_pushed; /* buffers accepted by this camera's appsrcs */
  int stalled;
  int eos;                /* end-of-stream was pushed to the current media */
  int width, height;      /* size of the clip being sent */
  int next_width, next_height; /* size after a pending switch (else the same) */
  int corrupt_ppm;        /* RTP packets per million dropped or damaged */
  int corrupt_mode;       /* CAMSIM_CORRUPT_* */
  unsigned rtp_dropped;   /* RTP packets dropped by corruption so far */
  unsigned rtp_damaged;   /* RTP packets damaged by corruption so far */
} camsim_cam_status;

/* What corruption does to a chosen packet. */
enum {
  CAMSIM_CORRUPT_MIX = 0,       /* drop or damage, even odds */
  CAMSIM_CORRUPT_DROP = 1,
  CAMSIM_CORRUPT_DAMAGE = 2,
};

typedef struct {
  const char *host, *port;
  int cameras;
  const char *user, *password; /* NULL: no authentication */
  const char *tls_cert, *tls_key; /* PEM files; NULL: plain rtsp */
  int tcp_only;                /* refuse UDP transports */
  int audio;                   /* add a G.711 audio stream */
} camsim_server_opts;

/* Initialises GStreamer. Call once, first. */
void camsim_init (void);

/* Encodes a clip into memory. The first call sets the clip every camera
 * starts with; each further call adds a clip of another size (same codec,
 * fps, gop and length) that cameras can switch to. Blocks for as long as
 * the encode takes (bounded by an internal deadline). Returns 0 on success,
 * otherwise -1 and a message in *err that the caller frees with
 * camsim_free. */
int camsim_encode_clip (const camsim_clip_params * p, char **err);

/* Encodes the audio clip (G.711 A-law, 8 kHz, one buffer per video frame of
 * the first clip). Call after the first camsim_encode_clip, before
 * camsim_server_start with audio set. Returns 0 or -1 with *err set. */
int camsim_encode_audio (char **err);

/* Number of frames and keyframes in the first clip. */
int camsim_clip_frames (void);
int camsim_clip_keyframes (void);
/* The clip's caps as a string; free with camsim_free. */
char *camsim_clip_caps (void);

/* Creates the RTSP server with mounts /cam1../camN and binds its socket.
 * Returns the bound port, or -1 with *err set. */
int camsim_server_start (const camsim_server_opts * o, char **err);

/* Runs the GLib main loop on the calling thread until camsim_quit. */
void camsim_run (void);

/* Closes all RTSP clients and stops camsim_run. */
void camsim_quit (void);

/* Control operations on camera cam (1-based). They return -1 for an unknown
 * camera, -2 when the main loop did not answer in time, otherwise a count
 * (appsrcs or clients affected). */
int camsim_set_stalled (int cam, int stalled);
int camsim_push_eos (int cam);
int camsim_disconnect (int cam);

/* Switches camera cam to the clip of size width x height at its next GOP
 * start. Returns -1 for an unknown camera, -3 when no clip has that size. */
int camsim_set_size (int cam, int width, int height);

/* From now on, each RTP packet of camera cam is dropped or damaged with
 * probability ppm per million (0 stops it). Returns -1 for an unknown
 * camera. */
int camsim_set_corrupt (int cam, int ppm, int mode);

/* Fills *out for camera cam. Returns -1 for an unknown camera. */
int camsim_status (int cam, camsim_cam_status * out);

void camsim_free (void *p);

#endif
