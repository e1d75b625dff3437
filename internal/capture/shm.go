package capture

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"

	"gstcapture/internal/config"
	"gstcapture/internal/shm"
)

// prepareShm resolves shm.group and, when a camera of the file uses
// delivery shm, checks shm.dir; then it removes the segments no live
// gstcapture holds (left by one that died). A camera the API adds later
// with delivery shm finds a bad directory at its first frame instead
// (dropped as shm_error, with the error in the log).
func (s *Service) prepareShm(cfg *config.Config) error {
	s.shmGID = -1
	if g := cfg.Shm.Group; g != "" {
		gid, err := lookupGroup(g)
		if err != nil {
			return fmt.Errorf("shm.group: %w", err)
		}
		s.shmGID = gid
	}
	used := false
	for _, c := range cfg.Cameras {
		used = used || (c.Enabled && c.Settings.Delivery == config.DeliveryShm)
	}
	dir := cfg.Shm.Dir
	if used {
		if err := checkDir(dir); err != nil {
			return fmt.Errorf("shm.dir: %w", err)
		}
	}
	removed, err := shm.Sweep(dir)
	switch {
	case err != nil && used:
		return fmt.Errorf("shm.dir: %w", err)
	case len(removed) > 0:
		s.log.Info("delivery shm: removed segments left by a gstcapture that is gone", "dir", dir, "segments", removed)
	}
	return nil
}

// lookupGroup returns the id of group g, a name or a number.
func lookupGroup(g string) (int, error) {
	if id, err := strconv.Atoi(g); err == nil && id >= 0 {
		return id, nil
	}
	gr, err := user.LookupGroup(g)
	if err != nil {
		return 0, fmt.Errorf("group %q: %w", g, err)
	}
	return strconv.Atoi(gr.Gid)
}

// checkDir checks that dir is a directory this process may create files in.
func checkDir(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if err := syscall.Access(dir, 2|1); err != nil { // W_OK|X_OK
		return fmt.Errorf("%s: cannot create files there: %w", dir, err)
	}
	return nil
}
