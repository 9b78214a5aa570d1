//go:build !windows

package config

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
)

// maxSocketPath is the longest unix socket path the kernel takes: sun_path is
// 104 bytes on macOS and the BSDs and 108 on Linux, NUL included.
func maxSocketPath() int {
	if runtime.GOOS == "linux" {
		return 107
	}
	return 103
}

// Socket returns the local API's unix socket: run/hyperos.sock in the state dir,
// or, when that path is too long for the platform (deep home directories on
// macOS), hyperos-<uid>/<id>.sock under the runtime dir ($XDG_RUNTIME_DIR, else
// the per-user temporary dir). The daemon and every client compute the same
// path, so nothing has to be written down to find it.
func (p Paths) Socket() (string, error) {
	primary := filepath.Join(p.State, "run", "hyperos.sock")
	if len(primary) <= maxSocketPath() {
		return primary, nil
	}
	base := os.Getenv("XDG_RUNTIME_DIR")
	if base == "" {
		base = os.TempDir()
	}
	fallback := filepath.Join(base, "hyperos-"+strconv.Itoa(os.Getuid()), p.homeID()+".sock")
	if len(fallback) <= maxSocketPath() {
		return fallback, nil
	}
	return "", &ErrSocketPathTooLong{Tried: []string{primary, fallback}, Limit: maxSocketPath()}
}
