//go:build !windows

package tray

import "os/exec"

// setNewConsole has nothing to do outside Windows: terminals make their own
// windows.
func setNewConsole(*exec.Cmd, bool) {}
