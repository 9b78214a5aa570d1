package tray

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// detachedProcess and createNewProcessGroup keep the started service alive
// and windowless after the tray exits.
const (
	detachedProcess       = 0x00000008
	createNewProcessGroup = 0x00000200
)

// StartDetached starts argv without a console, outliving the tray: "Start
// HyperOS service" when the service is not installed runs `hyperos daemon`
// this way.
func StartDetached(argv []string, logFile string) error {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: detachedProcess | createNewProcessGroup, HideWindow: true}
	if logFile != "" {
		f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("open %s for the service's output: %w", logFile, err)
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	// Nothing waits for it: release the handle at once.
	return cmd.Process.Release()
}
