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
} camsim_clip_params;

typedef struct {
  int sources;            /* appsrcs of live media for this camera */
  int clients;            /* RTSP sessions using this camera's media */
  uint64_t frames_pushed; /* buffers accepted by this camera's appsrcs */
  int stalled;
  int eos;                /* end-of-stream was pushed to the current media */
} camsim_cam_status;

/* Initialises GStreamer. Call once, first. */
void camsim_init (void);

/* Encodes the clip into memory. Blocks for as long as the encode takes
 * (bounded by an internal deadline). Returns 0 on success, otherwise -1 and
 * a message in *err that the caller frees with camsim_free. */
int camsim_encode_clip (const camsim_clip_params * p, char **err);

/* Number of frames and keyframes in the encoded clip. */
int camsim_clip_frames (void);
int camsim_clip_keyframes (void);
/* The clip's caps as a string; free with camsim_free. */
char *camsim_clip_caps (void);

/* Creates the RTSP server with mounts /cam1../camN and binds its socket.
 * user/password may be NULL for no authentication. Returns the bound port,
 * or -1 with *err set. */
int camsim_server_start (const char *host, const char *port, int cameras,
    const char *user, const char *password, char **err);

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

/* Fills *out for camera cam. Returns -1 for an unknown camera. */
int camsim_status (int cam, camsim_cam_status * out);

void camsim_free (void *p);

#endif
