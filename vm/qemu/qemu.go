// Package qemu runs HyperOS under QEMU: KVM on Linux, HVF on macOS, WHPX on
// Windows, and TCG (software emulation) everywhere as the fallback. A guest that
// prints nothing on its console within ProgressTimeout is restarted under TCG,
// because nested KVM on some hosts hangs silently instead of failing.
package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hyperos/hyperos/vm"
)

// DefaultProgressTimeout is how long a hardware-accelerated guest may stay silent
// before it is judged hung. A working KVM guest prints its first kernel line well
// within a second.
const DefaultProgressTimeout = 20 * time.Second

// Driver runs one VM under QEMU.
type Driver struct {
	Spec vm.Spec
	// Binary overrides the QEMU executable (default qemu-system-<arch> on PATH).
	Binary string
	// ProgressTimeout overrides DefaultProgressTimeout.
	ProgressTimeout time.Duration
	// AccelNote, when set, is a file recording that hardware acceleration hung on
	// this host since its last reboot, so later boots go straight to TCG.
	AccelNote string
	// Wrapper, when set, is a command prefix QEMU runs under, for example
	// {"ip", "netns", "exec", "NS"} to put it in a network namespace: a tap
	// device belongs to one namespace and QEMU must open it from there. The
	// wrapper must exec QEMU (not fork it), so that -daemonize and the pid file
	// still describe QEMU itself.
	Wrapper []string
	// Accels, when set, replaces the accelerators to try in order (tests use it
	// to exercise the fallback with real QEMU processes).
	Accels []string
	Log    *slog.Logger

	accel string
}

// New returns a driver for spec.
func New(spec vm.Spec) *Driver {
	return &Driver{Spec: spec, Log: slog.Default()}
}

// Accel is the accelerator the last Start settled on.
func (d *Driver) Accel() string { return d.accel }

func (d *Driver) binary() (string, error) {
	name := d.Binary
	if name == "" {
		name = "qemu-system-" + qemuArch(d.Spec.Arch)
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found: %s", name, installHint(d.Spec.Arch))
	}
	return p, nil
}

func qemuArch(arch string) string {
	if arch == "arm64" {
		return "aarch64"
	}
	return "x86_64"
}

// accelerators lists what to try, fastest first.
func (d *Driver) accelerators() []string {
	if len(d.Accels) > 0 {
		return d.Accels
	}
	if d.Spec.Accel != "" {
		return []string{d.Spec.Accel}
	}
	var out []string
	if hw := hardwareAccel(d.Spec.Arch); hw != "" && !d.hwNotedBroken() {
		out = append(out, hw)
	}
	return append(out, "tcg")
}

// Args returns the QEMU command line for accel, without the binary.
func (d *Driver) Args(accel string) ([]string, error) {
	s := d.Spec
	for _, p := range []string{s.Kernel, s.Initrd, s.Dir, s.DataDisk} {
		if strings.Contains(p, ",") {
			return nil, fmt.Errorf("path %q contains a comma, which QEMU options cannot carry safely", p)
		}
	}
	mac := s.Net.MAC
	if mac == "" {
		mac = vm.MACFor(s.Name)
	}
	machine, cpu := "q35", "max"
	if s.Arch == "arm64" {
		machine = "virt"
	}
	if accel != "tcg" {
		cpu = "host"
		if runtime.GOOS == "linux" && s.Arch != "arm64" {
			// Some nested hosts reject -cpu host's MSRs; the default model is safer
			// and still fast.
			cpu = "max"
		}
	}
	accelOpt := accel
	if accel == "tcg" {
		accelOpt = "tcg,thread=multi"
	}
	args := []string{
		"-name", "hyperos-" + s.Name,
		"-machine", machine,
		"-accel", accelOpt,
		"-cpu", cpu,
		"-m", strconv.Itoa(s.MemoryMB),
		"-smp", strconv.Itoa(s.CPUs),
		"-nodefaults", "-no-user-config", "-display", "none",
		"-kernel", s.Kernel,
		"-initrd", s.Initrd,
		"-append", s.Cmdline,
		"-chardev", "file,id=console,path=" + s.ConsoleLog(),
		"-serial", "chardev:console",
		"-device", "virtio-rng-pci",
		"-qmp", "unix:" + d.qmpPath() + ",server=on,wait=off",
		"-pidfile", s.PidFile(),
	}
	switch s.Net.Mode {
	case "", "user":
		nd := "user,id=net0"
		if s.Net.SSHPort > 0 {
			nd += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:22", s.Net.SSHPort)
		}
		args = append(args, "-netdev", nd)
	case "bridge":
		if s.Net.Tap == "" {
			return nil, errors.New("bridge networking needs a tap device")
		}
		args = append(args, "-netdev", "tap,id=net0,ifname="+s.Net.Tap+",script=no,downscript=no")
	default:
		return nil, fmt.Errorf("unknown network mode %q (user or bridge)", s.Net.Mode)
	}
	args = append(args, "-device", "virtio-net-pci,netdev=net0,mac="+mac)
	if s.DataDisk != "" {
		args = append(args,
			"-drive", "if=none,id=data,format=raw,discard=unmap,file="+s.DataDisk,
			"-device", "virtio-blk-pci,drive=data,serial=hyperos-data")
	}
	return args, nil
}

// accelHint says how to get hardware acceleration working.
func accelHint(accel string) string {
	switch accel {
	case "whpx":
		return "turn on the Windows feature 'Windows Hypervisor Platform' and reboot"
	case "hvf":
		return "macOS's Hypervisor.framework refused; check that no other hypervisor holds it"
	case "kvm":
		return "check that /dev/kvm is usable (your user in group kvm, virtualization enabled in the firmware)"
	}
	return ""
}

func (d *Driver) qmpPath() string { return filepath.Join(d.Spec.Dir, "qmp.sock") }

// Start boots the VM detached and returns once the guest has shown signs of life
// (or, under TCG, once QEMU runs).
func (d *Driver) Start(ctx context.Context) error {
	if err := d.Spec.Validate(); err != nil {
		return err
	}
	if st, _ := d.State(); st == vm.Running {
		return fmt.Errorf("vm %s is already running (pid %d)", d.Spec.Name, d.Pid())
	}
	bin, err := d.binary()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(d.Spec.Dir, 0o700); err != nil {
		return err
	}
	accels := d.accelerators()
	var lastErr error
	for i, accel := range accels {
		last := i == len(accels)-1
		if err := d.launchRetrying(ctx, bin, accel); err != nil {
			lastErr = err
			if last || !accelFailure(err) {
				return err
			}
			d.Log.Warn("hardware acceleration failed, falling back to TCG", "accel", accel, "err", err, "hint", accelHint(accel))
			continue
		}
		d.accel = accel
		if last {
			return nil
		}
		ok, why := d.progress(ctx)
		if ok {
			return nil
		}
		if ctx.Err() != nil {
			d.Kill()
			return ctx.Err()
		}
		d.Log.Warn("guest made no progress, restarting under TCG", "accel", accel, "reason", why)
		d.noteHWBroken()
		d.Kill()
		lastErr = errors.New(why)
	}
	return lastErr
}

// launchError is QEMU failing to start: what it printed, apart from how it
// exited, so that the cause can be told.
type launchError struct {
	accel  string
	err    error
	stderr string
}

func (e *launchError) Error() string {
	return fmt.Sprintf("qemu (%s): %v: %s", e.accel, e.err, e.stderr)
}

func (e *launchError) Unwrap() error { return e.err }

// accelFailure tells a QEMU that failed because of its accelerator (worth a
// retry under TCG) from one that failed for another reason, such as a port in
// use, which TCG would not fix and a silent fallback would only slow down.
func accelFailure(err error) bool {
	var le *launchError
	if !errors.As(err, &le) {
		return false
	}
	msg := strings.ToLower(le.stderr)
	for _, w := range []string{"kvm", "hvf", "whpx", "accel", "hypervisor", "msr", "virtualization", "hv_error"} {
		if strings.Contains(msg, w) {
			return true
		}
	}
	// QEMU that dies without a word under a hardware accelerator is most
	// likely the accelerator too.
	return msg == ""
}

// launchRetrying is launch, tried again for a few seconds while the SSH port
// is still held: a VM killed and started again at once may find its forward
// not yet released.
func (d *Driver) launchRetrying(ctx context.Context, bin, accel string) error {
	for i := 0; ; i++ {
		err := d.launch(ctx, bin, accel)
		var le *launchError
		if err == nil || i == 20 || !errors.As(err, &le) || !strings.Contains(le.stderr, "host forwarding") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (d *Driver) launch(ctx context.Context, bin, accel string) error {
	args, err := d.Args(accel)
	if err != nil {
		return err
	}
	os.Remove(d.Spec.PidFile())
	os.Remove(d.qmpPath())
	if err := os.WriteFile(d.Spec.ConsoleLog(), nil, 0o600); err != nil {
		return fmt.Errorf("console log: %w", err)
	}
	d.Log.Info("starting qemu", "vm", d.Spec.Name, "accel", accel)
	if len(d.Wrapper) > 0 {
		args = append(append(slices.Clone(d.Wrapper[1:]), bin), args...)
		bin = d.Wrapper[0]
	}
	var stderr bytes.Buffer
	if err := startDetached(ctx, bin, args, &stderr); err != nil {
		return &launchError{accel: accel, err: err, stderr: strings.TrimSpace(stderr.String())}
	}
	return nil
}

// progress waits for the console log to grow while QEMU is alive.
func (d *Driver) progress(ctx context.Context) (bool, string) {
	timeout := d.ProgressTimeout
	if timeout == 0 {
		timeout = DefaultProgressTimeout
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if vm.ConsoleSize(d.Spec.ConsoleLog()) > 0 {
			return true, ""
		}
		if st, _ := d.State(); st != vm.Running {
			return false, fmt.Sprintf("qemu exited under %s before the guest printed anything", d.accel)
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err().Error()
		case <-deadline.C:
			return false, fmt.Sprintf("the guest printed nothing in %s under %s", timeout, d.accel)
		case <-tick.C:
		}
	}
}

// Pid returns the running QEMU's pid, or 0.
func (d *Driver) Pid() int {
	b, err := os.ReadFile(d.Spec.PidFile())
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	if !isOurQEMU(pid, "hyperos-"+d.Spec.Name) {
		return 0
	}
	return pid
}

// State reports running when the pid file names a live QEMU of this VM; a stale
// pid file (QEMU killed, host rebooted, pid reused) reads as stopped.
func (d *Driver) State() (vm.State, error) {
	if d.Pid() != 0 {
		return vm.Running, nil
	}
	return vm.Stopped, nil
}

// Stop presses the ACPI power button and waits for QEMU to exit.
func (d *Driver) Stop(ctx context.Context) error {
	if d.Pid() == 0 {
		return vm.ErrNotRunning
	}
	if err := qmpCommand(ctx, d.qmpPath(), "system_powerdown"); err != nil {
		return fmt.Errorf("ask the guest to power off: %w", err)
	}
	return d.Wait(ctx)
}

// Kill ends QEMU at once.
func (d *Driver) Kill() error {
	pid := d.Pid()
	if pid == 0 {
		return vm.ErrNotRunning
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	if err := p.Kill(); err != nil {
		return fmt.Errorf("kill qemu %d: %w", pid, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return d.Wait(ctx)
}

// Wait returns when QEMU has exited.
func (d *Driver) Wait(ctx context.Context) error {
	pid := d.Pid()
	if pid == 0 {
		return nil
	}
	if err := waitExit(ctx, pid, func() bool { return isOurQEMU(pid, "hyperos-"+d.Spec.Name) }); err != nil {
		return fmt.Errorf("wait for qemu %d: %w", pid, err)
	}
	os.Remove(d.Spec.PidFile())
	return nil
}

// hwNotedBroken reports whether acceleration hung earlier since this host booted.
func (d *Driver) hwNotedBroken() bool {
	if d.AccelNote == "" {
		return false
	}
	b, err := os.ReadFile(d.AccelNote)
	return err == nil && strings.TrimSpace(string(b)) == hostBootID()
}

func (d *Driver) noteHWBroken() {
	if d.AccelNote == "" {
		return
	}
	os.MkdirAll(filepath.Dir(d.AccelNote), 0o700)
	os.WriteFile(d.AccelNote, []byte(hostBootID()+"\n"), 0o600)
}
