package vfkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// startProcess runs vfkit in a session of its own, so that it survives the
// caller's terminal and process group, with its output in logPath. It returns
// vfkit's pid and a channel that receives its exit while this process lives (the
// goroutine waiting on it also reaps it, so that no zombie is left).
func startProcess(bin string, args []string, logPath string) (int, <-chan error, error) {
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, nil, fmt.Errorf("vfkit log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return cmd.Process.Pid, done, nil
}

func supported() error { return nil }

// szomb is p_stat of a process that exited and was not yet reaped (sys/proc.h).
const szomb = 5

// isVfkit checks that pid is alive and runs a program named vfkit (or vfkit-something), so that a
// stale pid file whose pid was reused is not taken for the VM.
func isVfkit(pid int) bool {
	kp, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if err != nil || kp.Proc.P_pid != int32(pid) || kp.Proc.P_stat == szomb {
		return false
	}
	comm := string(kp.Proc.P_comm[:])
	if i := strings.IndexByte(comm, 0); i >= 0 {
		comm = comm[:i]
	}
	return strings.HasPrefix(comm, "vfkit")
}

func termProcess(pid int) error { return unix.Kill(pid, unix.SIGTERM) }

func killProcess(pid int) error { return unix.Kill(pid, unix.SIGKILL) }

// waitExit waits for pid to exit with a kqueue NOTE_EXIT filter, so no polling
// is needed; the wait wakes once a second only to look at ctx.
func waitExit(ctx context.Context, pid int) error {
	kq, err := unix.Kqueue()
	if err != nil {
		return fmt.Errorf("kqueue: %w", err)
	}
	defer unix.Close(kq)
	ev := unix.Kevent_t{Ident: uint64(pid), Filter: unix.EVFILT_PROC, Flags: unix.EV_ADD | unix.EV_ONESHOT, Fflags: unix.NOTE_EXIT}
	if _, err := unix.Kevent(kq, []unix.Kevent_t{ev}, nil, nil); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil // already gone
		}
		return fmt.Errorf("watch pid %d: %w", pid, err)
	}
	out := make([]unix.Kevent_t, 1)
	for {
		wait := time.Second
		if dl, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(dl))
		}
		if wait <= 0 {
			return ctx.Err()
		}
		ts := unix.NsecToTimespec(int64(wait))
		n, err := unix.Kevent(kq, nil, out, &ts)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("wait for pid %d: %w", pid, err)
		}
		if n > 0 || !isVfkit(pid) {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}
