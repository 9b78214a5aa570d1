//go:build !windows

package tray

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// StartDetached starts argv in a session of its own with no terminal, so that
// it outlives the tray: "Start HyperOS service" when the service is not
// installed runs `hyperos daemon` this way.
func StartDetached(argv []string, logFile string) error {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
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
	go cmd.Wait()
	return nil
}
