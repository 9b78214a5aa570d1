package qemu

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func hardwareAccel(arch string) string {
	want := "amd64"
	if arch == "arm64" {
		want = "arm64"
	}
	if hostArch() != want {
		return ""
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return ""
	}
	f.Close()
	return "kvm"
}

func installHint(arch string) string {
	if arch == "arm64" {
		return "install it with 'sudo apt-get install qemu-system-arm'"
	}
	return "install it with 'sudo apt-get install qemu-system-x86'"
}

func hostBootID() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
}

// startDetached runs QEMU with -daemonize: the parent returns once the VM is set
// up (with QEMU's own error on failure), and the VM lives on in its own session.
func startDetached(ctx context.Context, bin string, args []string, stderr *bytes.Buffer) error {
	cmd := exec.CommandContext(ctx, bin, append(args, "-daemonize")...)
	cmd.Stderr = stderr
	cmd.Stdout = stderr
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true}
	return cmd.Run()
}

// isOurQEMU checks that pid is alive and is the QEMU named name, so that a pid
// reused by another process after a crash is not mistaken for the VM.
func isOurQEMU(pid int, name string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
			return false
		}
	}
	return bytes.Contains(b, []byte("\x00"+name+"\x00")) || bytes.Contains(b, []byte("\x00"+name+","))
}

// waitExit waits on a pidfd, so that no polling is needed.
func waitExit(ctx context.Context, pid int, alive func() bool) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return pollExit(ctx, alive)
	}
	defer unix.Close(fd)
	for {
		ms := 1000
		if dl, ok := ctx.Deadline(); ok {
			ms = int(min(time.Until(dl), time.Second) / time.Millisecond)
			if ms <= 0 {
				return context.DeadlineExceeded
			}
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, ms)
		if err != nil && err != unix.EINTR {
			return err
		}
		if n > 0 || !alive() {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// List finds every HyperOS QEMU on this host, whoever started it, by the
// "-name hyperos-NAME" QEMU gets from Args.
func List() ([]Process, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []Process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) == 0 || !strings.Contains(args[0], "qemu-system") {
			continue
		}
		p := Process{Pid: pid}
		for i := 0; i+1 < len(args); i++ {
			switch args[i] {
			case "-name":
				p.Name, _ = strings.CutPrefix(strings.Split(args[i+1], ",")[0], "hyperos-")
				if !strings.HasPrefix(args[i+1], "hyperos-") {
					p.Name = ""
				}
			case "-pidfile":
				p.Dir = filepath.Dir(args[i+1])
			case "-accel":
				p.Accel = strings.Split(args[i+1], ",")[0]
			}
		}
		if p.Name != "" && isOurQEMU(pid, "hyperos-"+p.Name) {
			out = append(out, p)
		}
	}
	return out, nil
}
