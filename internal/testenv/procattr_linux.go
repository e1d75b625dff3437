package testenv

import "syscall"

// procAttr kills the child when the test binary dies without running its
// cleanups (panic, -timeout), so no redis-server outlives a test run.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
