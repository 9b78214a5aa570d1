package qemu

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/windows"
)

// hardwareAccel offers WHPX; if the Windows Hypervisor Platform feature is off,
// QEMU fails at once and Start falls back to TCG, saying why.
func hardwareAccel(arch string) string {
	if hostArch() != arch {
		return ""
	}
	return "whpx"
}

func installHint(string) string {
	return "install QEMU for Windows (winget install SoftwareFreedomConservancy.QEMU) and enable the Windows Hypervisor Platform feature"
}

func hostBootID() string {
	boot := time.Now().Add(-time.Duration(windows.DurationSinceBoot()))
	return boot.Truncate(time.Minute).UTC().Format(time.RFC3339)
}

// startDetached starts QEMU in its own process group with no console, waits a
// moment for early failures (Windows QEMU has no -daemonize), and lets it go.
func startDetached(ctx context.Context, bin string, args []string, stderr *bytes.Buffer) error {
	cmd := exec.Command(bin, args...)
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		CreationFlags: windows.CREATE_NEW_PROCESS_GROUP | windows.DETACHED_PROCESS,
		HideWindow:    true,
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			err = errors.New("qemu exited at once")
		}
		return err
	case <-time.After(2 * time.Second):
		return cmd.Process.Release()
	case <-ctx.Done():
		cmd.Process.Kill()
		return ctx.Err()
	}
}

func isOurQEMU(pid int, name string) bool {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if err != nil {
		return false
	}
	defer windows.CloseHandle(h)
	var code uint32
	if windows.GetExitCodeProcess(h, &code) != nil || code != 259 { // STILL_ACTIVE
		return false
	}
	buf := make([]uint16, windows.MAX_PATH)
	n := uint32(len(buf))
	if windows.QueryFullProcessImageName(h, 0, &buf[0], &n) != nil {
		return false
	}
	return strings.HasPrefix(strings.ToLower(filepath.Base(windows.UTF16ToString(buf[:n]))), "qemu-system")
}

func waitExit(ctx context.Context, pid int, alive func() bool) error {
	return pollExit(ctx, alive)
}
