package qemu

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"
)

func hardwareAccel(arch string) string {
	if hostArch() != arch {
		return ""
	}
	if v, err := unix.SysctlUint32("kern.hv_support"); err != nil || v != 1 {
		return ""
	}
	return "hvf"
}

func installHint(string) string {
	return "install QEMU with 'brew install qemu', or use the vfkit driver"
}

func hostBootID() string {
	tv, err := unix.SysctlTimeval("kern.boottime")
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%d.%d", tv.Sec, tv.Usec)
}

func startDetached(ctx context.Context, bin string, args []string, stderr *bytes.Buffer) error {
	cmd := exec.CommandContext(ctx, bin, append(args, "-daemonize")...)
	cmd.Stderr = stderr
	cmd.Stdout = stderr
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true}
	return cmd.Run()
}

// isOurQEMU checks that pid is alive and runs a QEMU binary; macOS offers no cheap
// way to read another process's arguments.
func isOurQEMU(pid int, name string) bool {
	kp, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if err != nil || kp.Proc.P_pid != int32(pid) {
		return false
	}
	comm := unix.ByteSliceToString(kp.Proc.P_comm[:])
	return strings.HasPrefix(comm, "qemu-system")
}

func waitExit(ctx context.Context, pid int, alive func() bool) error {
	return pollExit(ctx, alive)
}
