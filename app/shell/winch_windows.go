package shell

import (
	"time"

	"golang.org/x/term"
)

// followSize polls the console size: Windows consoles send no resize signal to a
// process that reads them through a handle.
func followSize(fd int, fn func(w, h int)) (stop func()) {
	done := make(chan struct{})
	go func() {
		lw, lh, _ := term.GetSize(fd)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if w, h, err := term.GetSize(fd); err == nil && (w != lw || h != lh) {
					lw, lh = w, h
					fn(w, h)
				}
			}
		}
	}()
	return func() { close(done) }
}
