// Package vfkit runs HyperOS on macOS under Apple's Virtualization.framework
// through the vfkit binary (crc-org/vfkit), the default driver on macOS: it needs
// no root and no kernel extension, and NAT networking comes with a DHCP server
// (bootpd) whose leases vm/lease reads. vfkit is driven by its command line and
// its REST API on a unix socket, so nothing here needs cgo.
package vfkit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/hyperos/hyperos/vm"
)

// Console is the guest console vfkit's virtio-serial device provides; the kernel
// command line must name it (console=hvc0) or the ready line never reaches the log.
const Console = "hvc0"

// maxSocketPath is the longest unix socket path macOS accepts: sun_path is 104
// bytes including the terminating NUL.
const maxSocketPath = 103

// hostArch is the architecture of the machine running vfkit; Virtualization.framework
// runs only guests of that architecture. A variable so that tests can pick one.
var hostArch = runtime.GOARCH

// Driver runs one VM under vfkit.
type Driver struct {
	Spec vm.Spec
	// Binary overrides the vfkit executable. When empty, a vfkit next to the
	// running program (the app bundle's copy, signed with the virtualization
	// entitlement) is preferred to one on PATH.
	Binary string
	Log    *slog.Logger
}

// New returns a driver for spec.
func New(spec vm.Spec) *Driver {
	return &Driver{Spec: spec, Log: slog.Default()}
}

func (d *Driver) log() *slog.Logger {
	if d.Log != nil {
		return d.Log
	}
	return slog.Default()
}

// SocketPath is vfkit's REST API socket.
func (d *Driver) SocketPath() string { return filepath.Join(d.Spec.Dir, "vfkit.sock") }

// LogPath is where vfkit's own output (not the guest's console) goes.
func (d *Driver) LogPath() string { return filepath.Join(d.Spec.Dir, "vfkit.log") }

func (d *Driver) rest() *restClient { return newRESTClient(d.SocketPath()) }

func (d *Driver) binary() (string, error) {
	if d.Binary != "" {
		p, err := exec.LookPath(d.Binary)
		if err != nil {
			return "", fmt.Errorf("vfkit binary %s: %w", d.Binary, err)
		}
		return p, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "vfkit")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath("vfkit")
	if err != nil {
		return "", errors.New("vfkit not found next to hyperos or on PATH: reinstall HyperOS or run 'brew install vfkit'")
	}
	return p, nil
}

// Args returns vfkit's command line, without the binary. Every value is one argv
// element and no shell is involved. The kernel, initrd and command line use the
// older --kernel/--initrd/--kernel-cmdline flags because --bootloader
// linux,cmdline="…" strips the quotes around sshkey="…" and splits on commas;
// the legacy flags pass the command line through verbatim.
func (d *Driver) Args() ([]string, error) {
	s := d.Spec
	abs := func(what, p string) (string, error) {
		if p == "" {
			return "", fmt.Errorf("no %s", what)
		}
		a, err := filepath.Abs(p)
		if err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		return a, nil
	}
	kernel, err := abs("kernel", s.Kernel)
	if err != nil {
		return nil, err
	}
	initrd, err := abs("initrd", s.Initrd)
	if err != nil {
		return nil, err
	}
	dir, err := abs("VM directory", s.Dir)
	if err != nil {
		return nil, err
	}
	if !hasConsole(s.Cmdline, Console) {
		return nil, fmt.Errorf("kernel command line %q: vfkit's console is %s, so it must say console=%s", s.Cmdline, Console, Console)
	}
	switch s.Net.Mode {
	case "", "nat":
		// Spec.Net.SSHPort is a QEMU user-mode forward; under NAT the guest is
		// reached at its leased address, so there is nothing to forward.
	default:
		// "user" promises QEMU's port forward on 127.0.0.1, which NAT has not.
		return nil, fmt.Errorf("network mode %q: vfkit supports NAT only (leave the mode empty and find the guest's address with vm/lease)", s.Net.Mode)
	}
	mac := s.Net.MAC
	if mac == "" {
		mac = vm.MACFor(s.Name)
	}
	consoleLog := filepath.Join(dir, filepath.Base(s.ConsoleLog()))
	sock := filepath.Join(dir, filepath.Base(d.SocketPath()))
	if err := checkSocketPath(sock); err != nil {
		return nil, err
	}
	// Values inside a --device option are comma-separated key=value pairs, and
	// vfkit treats quotes specially: such paths cannot be passed safely.
	for _, p := range []string{consoleLog, s.DataDisk} {
		if strings.ContainsAny(p, ",\"") {
			return nil, fmt.Errorf("path %q contains a comma or a quote, which vfkit device options cannot carry", p)
		}
	}
	args := []string{
		"--cpus", strconv.Itoa(s.CPUs),
		"--memory", strconv.Itoa(s.MemoryMB),
		"--kernel", kernel,
		"--initrd", initrd,
		"--kernel-cmdline", s.Cmdline,
		"--device", "virtio-net,nat,mac=" + mac,
		"--device", "virtio-serial,logFilePath=" + consoleLog,
	}
	if s.DataDisk != "" {
		disk, err := abs("data disk", s.DataDisk)
		if err != nil {
			return nil, err
		}
		// deviceId becomes the disk's serial in the guest, where hyperos-guest
		// looks for "hyperos-data" as it does under QEMU.
		args = append(args, "--device", "virtio-blk,path="+disk+",deviceId=hyperos-data")
	}
	args = append(args,
		"--device", "virtio-rng",
		"--restful-uri", restURI(sock),
		"--pidfile", filepath.Join(dir, filepath.Base(s.PidFile())),
	)
	return args, nil
}

// restURI is the --restful-uri value for a socket path. vfkit parses it as a URL,
// so the path is percent-encoded: a state directory under "Application Support"
// has a space, and a '%', '?' or '#' would otherwise change the path it binds.
func restURI(sock string) string {
	return (&url.URL{Scheme: "unix", Path: sock}).String()
}

func hasConsole(cmdline, console string) bool {
	for _, f := range strings.Fields(cmdline) {
		if f == "console="+console {
			return true
		}
	}
	return false
}

// checkSocketPath refuses a socket path macOS cannot bind, which vfkit would
// otherwise report only after it started.
func checkSocketPath(p string) error {
	if len(p) > maxSocketPath {
		return fmt.Errorf("vfkit socket path %s is %d bytes, over the %d macOS allows for a unix socket: use a shorter VM directory", p, len(p), maxSocketPath)
	}
	return nil
}

// arm64Magic is "ARM\x64" at offset 0x38 of an uncompressed arm64 Linux Image.
var arm64Magic = []byte{0x41, 0x52, 0x4d, 0x64}

// CheckKernel checks that an arm64 kernel is an uncompressed Image: on Apple
// Silicon Virtualization.framework cannot boot a compressed kernel (vfkit
// refuses it, and older versions hang). x86 kernels are booted as they are.
func CheckKernel(path, arch string) error {
	if arch != "arm64" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("kernel: %w", err)
	}
	defer f.Close()
	const headLen = 0x40
	head := make([]byte, headLen)
	n, _ := f.ReadAt(head, 0)
	head = head[:n]
	if n == headLen && string(head[0x38:0x3c]) == string(arm64Magic) {
		return nil
	}
	what := "has no ARM\\x64 magic at offset 0x38"
	switch {
	case n >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		what = "is gzip-compressed"
	case n >= 8 && string(head[:2]) == "MZ" && string(head[4:8]) == "zimg":
		what = "is an EFI zboot (compressed) image"
	case n < headLen:
		what = "is too short to be a kernel"
	}
	return fmt.Errorf("kernel %s %s: Virtualization.framework boots only an uncompressed arm64 Image (use the Image file of the arm64 build, not vmlinuz)", path, what)
}

// preflight catches what vfkit would fail on, with errors that say what to do.
func (d *Driver) preflight() error {
	if err := d.Spec.Validate(); err != nil {
		return err
	}
	arch := d.Spec.Arch
	if arch == "" {
		arch = hostArch
	}
	if arch != hostArch {
		return fmt.Errorf("a %s guest cannot run on this %s Mac: Virtualization.framework runs only guests of the host's architecture", arch, hostArch)
	}
	if err := CheckKernel(d.Spec.Kernel, arch); err != nil {
		return err
	}
	if d.Spec.DataDisk != "" {
		if _, err := os.Stat(d.Spec.DataDisk); err != nil {
			return fmt.Errorf("data disk: %w (create it with vm.CreateDisk)", err)
		}
	}
	_, err := d.Args()
	return err
}

// Start boots the VM detached (vfkit in its own session, so it outlives the
// caller) and returns once vfkit reports the VM running.
func (d *Driver) Start(ctx context.Context) error {
	if err := supported(); err != nil {
		return err
	}
	if err := d.preflight(); err != nil {
		return err
	}
	if d.Pid() != 0 {
		return fmt.Errorf("vm %s is already running (pid %d)", d.Spec.Name, d.Pid())
	}
	bin, err := d.binary()
	if err != nil {
		return err
	}
	args, err := d.Args()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(d.Spec.Dir, 0o700); err != nil {
		return fmt.Errorf("vm directory: %w", err)
	}
	os.Remove(d.SocketPath())
	os.Remove(d.Spec.PidFile())
	// A fresh console log, so that a ready line from the last boot is not
	// mistaken for this one's.
	if err := os.WriteFile(d.Spec.ConsoleLog(), nil, 0o600); err != nil {
		return fmt.Errorf("console log: %w", err)
	}
	d.log().Info("starting vfkit", "vm", d.Spec.Name, "binary", bin)
	pid, exited, err := startProcess(bin, args, d.LogPath())
	if err != nil {
		return fmt.Errorf("start vfkit: %w", err)
	}
	return d.waitRunning(ctx, pid, exited)
}

// waitRunning waits for the REST API to report the VM running. vfkit has no
// readiness notification, so the socket is asked every 100 ms until it answers;
// the wait ends early when vfkit exits.
func (d *Driver) waitRunning(ctx context.Context, pid int, exited <-chan error) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := d.rest().State(ctx)
		if err == nil && st.Running() {
			return nil
		}
		select {
		case werr := <-exited:
			return fmt.Errorf("vfkit exited at start (%v): %s", werr, d.logTail())
		case <-ctx.Done():
			killProcess(pid)
			return fmt.Errorf("waiting for vfkit to start the VM: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

func (d *Driver) logTail() string {
	b, _ := os.ReadFile(d.LogPath())
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	if s == "" {
		return "no output in " + d.LogPath()
	}
	return s
}

// Pid returns the running vfkit's pid from its pid file, or 0 when there is none
// or the pid now belongs to another program.
func (d *Driver) Pid() int {
	b, err := os.ReadFile(d.Spec.PidFile())
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || !isVfkit(pid) {
		return 0
	}
	return pid
}

// State reports running while vfkit lives and its VM is not stopped.
func (d *Driver) State() (vm.State, error) {
	if d.Pid() == 0 {
		return vm.Stopped, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := d.rest().State(ctx)
	if err != nil {
		// vfkit lives but does not answer (yet): it still holds the VM.
		return vm.Running, nil
	}
	if st.Stopped() {
		return vm.Stopped, nil
	}
	return vm.Running, nil
}

// Stop asks the guest to power off through the REST API and waits for vfkit to
// exit (it does once the VM has stopped). Without the API it sends SIGTERM, on
// which vfkit asks the guest the same way.
func (d *Driver) Stop(ctx context.Context) error {
	pid := d.Pid()
	if pid == 0 {
		return vm.ErrNotRunning
	}
	if err := d.rest().SetState(ctx, Stop); err != nil {
		d.log().Warn("vfkit REST stop failed, sending SIGTERM", "err", err)
		if err := termProcess(pid); err != nil {
			return fmt.Errorf("stop vfkit %d: %w", pid, err)
		}
	}
	return d.Wait(ctx)
}

// Kill stops the VM at once: HardStop through the REST API, then SIGKILL if vfkit
// is still there after a few seconds.
func (d *Driver) Kill() error {
	pid := d.Pid()
	if pid == 0 {
		return vm.ErrNotRunning
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := d.rest().SetState(ctx, HardStop)
	if err == nil {
		err = d.Wait(ctx)
	}
	cancel()
	if err == nil {
		return nil
	}
	if err := killProcess(pid); err != nil {
		return fmt.Errorf("kill vfkit %d: %w", pid, err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return d.Wait(ctx)
}

// Wait returns when vfkit has exited.
func (d *Driver) Wait(ctx context.Context) error {
	pid := d.Pid()
	if pid == 0 {
		return nil
	}
	if err := waitExit(ctx, pid); err != nil {
		return fmt.Errorf("wait for vfkit %d: %w", pid, err)
	}
	os.Remove(d.Spec.PidFile())
	return nil
}

var _ vm.Driver = (*Driver)(nil)
