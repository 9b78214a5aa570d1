package tray

import (
	"context"

	"fyne.io/systray"
)

// runLoop shows the tray until ctx ends. On Linux, systray's "native start"
// exports the item on D-Bus and returns; only after it has returned are the
// item's properties (icon, tooltip) live. systray.Run would start the menu
// code concurrently with that export, and an icon or tooltip set in between
// is silently lost (fyne.io/systray reads them into the exported spec, then
// publishes the spec: a change between the two goes nowhere). So the
// controller starts only once start has returned and the items exist.
func runLoop(ctx context.Context, stop func(), build, ready func()) {
	built := make(chan struct{})
	start, end := systray.RunWithExternalLoop(func() {
		build()
		close(built)
	}, stop)
	start()
	<-built
	ready()
	<-ctx.Done()
	end()
}
