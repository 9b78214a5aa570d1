//go:build !linux && (!darwin || cgo)

package tray

import (
	"context"

	"fyne.io/systray"
)

// runLoop shows the tray until ctx ends, running the platform's event loop on
// this (the main) thread, as macOS requires.
func runLoop(ctx context.Context, stop func(), build, ready func()) {
	go func() {
		<-ctx.Done()
		systray.Quit()
	}()
	systray.Run(func() {
		build()
		ready()
	}, stop)
}
