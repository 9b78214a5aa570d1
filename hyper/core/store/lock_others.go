//go:build !unix && !windows

package store

import (
	"fmt"
	"os"
	"runtime"
)

// lockFile cannot protect the store on this platform, so Dir refuses to
// open rather than risk two writers interleaving the log.
func lockFile(f *os.File) error {
	return fmt.Errorf("lock %s: file locking is not implemented on %s", f.Name(), runtime.GOOS)
}
