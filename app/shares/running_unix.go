//go:build !windows

package shares

import (
	"errors"
	"syscall"
)

// running reports whether pid is a live process (signal 0 checks without
// sending anything; EPERM means it exists but is another user's).
func running(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
