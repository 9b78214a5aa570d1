//go:build darwin && !cgo

package tray

import (
	"context"
	"errors"
)

// Run cannot show a menu-bar item in this build: fyne.io/systray's macOS code
// is Objective-C reached through cgo, and this binary was built with
// CGO_ENABLED=0 (as cross-compiles from Linux are).
func Run(ctx context.Context, o Options) error {
	return errors.New("this hyperos was built without cgo, and the macOS menu-bar tray needs it: build on a Mac with CGO_ENABLED=1 (Xcode command line tools installed), see the README's Tray section")
}
