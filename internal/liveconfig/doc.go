// Package liveconfig owns the live camera set: the configuration file,
// watched and reloaded on a change or SIGHUP (validated whole first, then
// applied per camera, so that a camera whose effective settings did not
// change is not touched), and the cameras of the camera API, kept in a
// Redis hash (redis.cameras_key) so that they survive a restart. Every
// change reaches the capture service as one Apply of the whole set, one
// at a time; /health shows the configuration's generation and the last
// reload's result.
//
// It implements health.CameraAdmin, and imports internal/config,
// internal/capture (Changes, its errors), internal/health (the types of
// its answers) and internal/telemetry (the reload results).
package liveconfig
