//go:build !linux && (!darwin || cgo)

package tray

// platformCheck has nothing to check on Windows and macOS: the notification
// area and the menu bar are always there.
func platformCheck() error { return nil }
