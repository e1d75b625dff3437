package liveconfig

import (
	"context"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// settle is how long the files must be quiet before a reload: an editor's
// save is several events (write, chmod, rename), and a half-written file
// must not be read.
const settle = 250 * time.Millisecond

// Start reads the API's cameras from Redis (retrying until Redis answers,
// then again every syncEvery, so that a change another gstcapture on the
// same Redis made runs here too) and watches the configuration file,
// reloading it on every change, until ctx ends. SIGHUP is the caller's: it
// calls Reload.
func (c *Controller) Start(ctx context.Context) {
	go c.syncAPI(ctx)
	if c.running.File == "" {
		return
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		c.log.Error("config file not watched: send SIGHUP to reload it", "file", c.running.File, "error", err.Error())
		return
	}
	names := c.watched()
	for dir := range names {
		if err := w.Add(dir); err != nil {
			c.log.Error("config file not watched: send SIGHUP to reload it", "dir", dir, "error", err.Error())
		}
	}
	go c.watch(ctx, w, names)
}

// watched is the set of names to watch, by directory: the file and the
// tokens file. A directory is watched rather than the file, because an
// editor replaces the file (rename over it) and Kubernetes swaps a
// ConfigMap's "..data" symlink, either of which ends a watch on the file.
func (c *Controller) watched() map[string]map[string]bool {
	out := map[string]map[string]bool{}
	add := func(path string) {
		if path == "" {
			return
		}
		if !filepath.IsAbs(path) && path != c.running.File {
			path = filepath.Join(filepath.Dir(c.running.File), path)
		}
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		dir := filepath.Dir(path)
		if out[dir] == nil {
			out[dir] = map[string]bool{"..data": true}
		}
		out[dir][filepath.Base(path)] = true
	}
	add(c.running.File)
	add(c.running.HTTP.Auth.TokensFile)
	return out
}

// watch reloads after each burst of events on the watched names.
func (c *Controller) watch(ctx context.Context, w *fsnotify.Watcher, names map[string]map[string]bool) {
	defer w.Close()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			dir, _ := filepath.Abs(filepath.Dir(ev.Name))
			if names[dir][filepath.Base(ev.Name)] {
				timer.Reset(settle)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			c.log.Warn("config file watch: events may have been missed; send SIGHUP to reload", "error", err.Error())
			timer.Reset(settle)
		case <-timer.C:
			c.Reload("file changed")
		}
	}
}
