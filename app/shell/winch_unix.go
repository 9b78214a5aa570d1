//go:build !windows

package shell

import (
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// followSize calls fn whenever the terminal is resized (SIGWINCH).
func followSize(fd int, fn func(w, h int)) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, unix.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-ch:
				if w, h, err := term.GetSize(fd); err == nil {
					fn(w, h)
				}
			}
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}
