package procs

import (
	"fmt"
	"syscall"
)

// RaiseFileLimit lifts this process's RLIMIT_NOFILE to want, or as far as it
// is allowed, and returns the limit now in force. Processes it starts inherit
// the limit. Go raises the soft limit to the hard one by itself; raising the
// hard limit needs privileges (CI runs as root), so that is tried first.
func RaiseFileLimit(want uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("read open-file limit: %w", err)
	}
	if lim.Cur >= want {
		// Set all the same: Go gives the processes it starts the soft
		// limit the program began with, unless the program set one itself.
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("raise open-file limit: %w", err)
		}
		return lim.Cur, nil
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: max(want, lim.Max), Max: max(want, lim.Max)}); err == nil {
		return max(want, lim.Max), nil
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("raise open-file limit: %w", err)
	}
	return lim.Cur, nil
}
