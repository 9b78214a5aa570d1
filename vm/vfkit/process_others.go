//go:build !darwin

package vfkit

import (
	"context"
	"errors"
)

// errNotMac is what every process operation says off macOS: vfkit is a front end
// to Apple's Virtualization.framework, which exists only there.
var errNotMac = errors.New("vfkit runs only on macOS (Apple Virtualization.framework); use the qemu driver on this system")

func supported() error { return errNotMac }

func startProcess(bin string, args []string, logPath string) (int, <-chan error, error) {
	return 0, nil, errNotMac
}

// isVfkit is false: no vfkit can be running here, so a pid file is always stale.
func isVfkit(pid int) bool { return false }

func termProcess(pid int) error { return errNotMac }

func killProcess(pid int) error { return errNotMac }

func waitExit(ctx context.Context, pid int) error { return errNotMac }
