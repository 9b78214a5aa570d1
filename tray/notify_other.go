//go:build !linux

package tray

import (
	"context"
	"fmt"

	"github.com/gen2brain/beeep"
	"github.com/hyperos/hyperos/resources"
)

// beeepNotifier uses beeep on macOS (Notification Center through purego, no
// cgo) and Windows (toast notifications). The D-Bus trap of the Linux backend
// does not exist there, but beeep still takes no context, so the call runs in
// a goroutine and Notify returns when ctx ends even if beeep never does; the
// Limiter keeps at most one such call in flight.
type beeepNotifier struct{ icon []byte }

func newPlatformNotifier() Notifier {
	beeep.AppName = "HyperOS"
	b, _ := resources.Icon("linux", resources.Online) // a colour PNG for the bubble
	return &beeepNotifier{icon: b}
}

func (n *beeepNotifier) Notify(ctx context.Context, title, body string) error {
	done := make(chan error, 1)
	go func() { done <- beeep.Notify(title, body, n.icon) }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("beeep notify: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("notification not shown: %w", ctx.Err())
	}
}
