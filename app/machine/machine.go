// Package machine is the lifecycle of the user's HyperOS VM: init, boot (and wait
// until it is online), status, halt, kill and SSH. The CLI uses it directly; the
// daemon wraps it in its state machine.
package machine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/hyperos/hyperos/app/config"
	"github.com/hyperos/hyperos/guest/cmdline"
	"github.com/hyperos/hyperos/guest/ready"
	"github.com/hyperos/hyperos/vm"
	"github.com/hyperos/hyperos/vm/lease"
	"github.com/hyperos/hyperos/vm/qemu"
	"github.com/hyperos/hyperos/vm/vfkit"
	"golang.org/x/crypto/ssh"
)

// Machine is the VM of one HyperOS home.
type Machine struct {
	Paths    config.Paths
	Settings config.Settings
	Log      *slog.Logger
	// Exe and WD help find the image (beside the binary, or in a checkout).
	Exe, WD string
}

// Status is what `hyperos status` shows.
type Status struct {
	Name     string    `json:"name"`
	State    vm.State  `json:"state"`
	Pid      int       `json:"pid,omitempty"`
	Hostname string    `json:"hostname,omitempty"`
	IPs      []string  `json:"ips,omitempty"`
	SSH      string    `json:"ssh,omitempty"` // address that reaches the guest's sshd
	Driver   string    `json:"driver,omitempty"`
	Accel    string    `json:"accel,omitempty"`
	BootedAt time.Time `json:"booted_at,omitzero"`
	HostKeys []string  `json:"hostkeys,omitempty"`
	Console  string    `json:"console_log,omitempty"`
}

// IP is the address to show a user: the guest's first announced address.
func (s Status) IP() string {
	if len(s.IPs) > 0 {
		return s.IPs[0]
	}
	return ""
}

// runtimeInfo is saved at boot so that later commands reach the same VM.
type runtimeInfo struct {
	SSHPort  int        `json:"ssh_port"`
	Accel    string     `json:"accel"`
	Driver   string     `json:"driver"`
	BootedAt time.Time  `json:"booted_at"`
	Ready    ready.Info `json:"ready"`
}

// Init creates the settings and the SSH key pair for a new VM.
func Init(p config.Paths, s config.Settings, force bool) error {
	if _, err := os.Stat(p.ConfigFile()); err == nil && !force {
		return fmt.Errorf("HyperOS is already initialized in %s (use --force to start over)", p.Config)
	}
	if s.Name == "" {
		s.Name = RandomName()
	}
	if err := cmdline.ValidHost(s.Name); err != nil {
		return err
	}
	s.Defaults()
	if err := os.MkdirAll(p.VMDir(), 0o700); err != nil {
		return err
	}
	if force {
		os.Remove(p.Key())
		os.Remove(p.Key() + ".pub")
		os.Remove(p.HostKeys())
	}
	if _, err := os.Stat(p.Key()); errors.Is(err, fs.ErrNotExist) {
		if _, err := vm.GenerateKey(p.Key(), "hyperos@"+s.Name); err != nil {
			return err
		}
	}
	return config.Save(p, s)
}

// Open loads the machine of p.
func Open(p config.Paths) (*Machine, error) {
	s, err := config.Load(p)
	if err != nil {
		return nil, err
	}
	exe, _ := os.Executable()
	wd, _ := os.Getwd()
	return &Machine{Paths: p, Settings: s, Log: slog.Default(), Exe: exe, WD: wd}, nil
}

// driverName is the configured driver, or the platform's best: vfkit (Apple's
// Virtualization framework) on macOS when it is installed, QEMU elsewhere.
func (m *Machine) driverName() string {
	if m.Settings.Driver != "" {
		return m.Settings.Driver
	}
	if runtime.GOOS == "darwin" {
		if _, err := exec.LookPath("vfkit"); err == nil {
			return "vfkit"
		}
		if exe, err := os.Executable(); err == nil {
			if _, err := os.Stat(filepath.Join(filepath.Dir(exe), "vfkit")); err == nil {
				return "vfkit"
			}
		}
	}
	return "qemu"
}

func (m *Machine) console() string {
	if m.driverName() == "vfkit" {
		return vfkit.Console
	}
	if m.Settings.Arch == "arm64" {
		return "ttyAMA0"
	}
	return "ttyS0"
}

// spec builds the boot spec; sshPort 0 means "no forward" (used for state queries).
func (m *Machine) spec(img config.Image, cmd string, sshPort int) vm.Spec {
	return vm.Spec{
		Name: m.Settings.Name, Arch: m.Settings.Arch,
		Kernel: img.Kernel, Initrd: img.Initrd, Cmdline: cmd,
		MemoryMB: m.Settings.MemoryMB, CPUs: m.Settings.CPUs,
		DataDisk: m.Paths.DataDisk(), Dir: m.Paths.VMDir(),
		Net:   vm.Network{Mode: "user", SSHPort: sshPort},
		Accel: m.Settings.Accel,
	}
}

func (m *Machine) driver(spec vm.Spec) (vm.Driver, error) {
	switch m.driverName() {
	case "qemu":
		d := qemu.New(spec)
		d.AccelNote = m.Paths.AccelNote()
		d.Log = m.Log
		return d, nil
	case "vfkit":
		spec.Net = vm.Network{Mode: "nat"}
		d := vfkit.New(spec)
		d.Log = m.Log
		return d, nil
	default:
		return nil, fmt.Errorf("driver %q is not available on %s", m.driverName(), runtime.GOOS)
	}
}

// stateDriver is a driver good enough to query, stop or kill a running VM.
func (m *Machine) stateDriver() vm.Driver {
	d, err := m.driver(m.spec(config.Image{}, "", 0))
	if err != nil {
		return nil
	}
	return d
}

func (m *Machine) loadRuntime() (runtimeInfo, error) {
	var ri runtimeInfo
	b, err := os.ReadFile(m.Paths.StatusFile())
	if err != nil {
		return ri, err
	}
	return ri, json.Unmarshal(b, &ri)
}

// Status reports the VM's state; a VM killed from outside, or a stale pid file
// left by a crash, reads as stopped.
func (m *Machine) Status() Status {
	st := Status{Name: m.Settings.Name, State: vm.Stopped, Driver: m.driverName(), Console: filepath.Join(m.Paths.VMDir(), "console.log")}
	d := m.stateDriver()
	if d == nil {
		return st
	}
	if pid := d.Pid(); pid != 0 {
		st.State, st.Pid = vm.Running, pid
		if ri, err := m.loadRuntime(); err == nil {
			st.Hostname, st.IPs, st.HostKeys = ri.Ready.Hostname, ri.Ready.IPs, ri.Ready.HostKeys
			st.Accel, st.BootedAt = ri.Accel, ri.BootedAt
			if ri.SSHPort != 0 {
				st.SSH = fmt.Sprintf("127.0.0.1:%d", ri.SSHPort)
			} else if ip := firstIPv4(ri.Ready.IPs); ip != "" {
				st.SSH = net.JoinHostPort(ip, "22")
			}
		}
	}
	return st
}

// Boot starts the VM and returns once it is online (its ready line seen and its
// host key pinned). Booting a running VM returns its status.
func (m *Machine) Boot(ctx context.Context, progress func(string)) (Status, error) {
	if progress == nil {
		progress = func(string) {}
	}
	if st := m.Status(); st.State == vm.Running && st.Hostname != "" {
		return st, nil
	} else if st.State == vm.Running {
		return st, fmt.Errorf("vm %s is starting or was started by something else (pid %d): wait, or run 'hyperos kill'", st.Name, st.Pid)
	}
	img, err := config.FindImage(m.Settings, m.Exe, m.WD)
	if err != nil {
		return Status{}, err
	}
	signer, err := vm.LoadKey(m.Paths.Key())
	if errors.Is(err, fs.ErrNotExist) {
		return Status{}, config.ErrNotInitialized
	} else if err != nil {
		return Status{}, err
	}
	if err := vm.CreateDisk(m.Paths.DataDisk(), int64(m.Settings.DiskGB)<<30); err != nil {
		return Status{}, err
	}
	cmd, err := vm.BuildCmdline(m.console(), m.Settings.Name, vm.AuthorizedKey(signer))
	if err != nil {
		return Status{}, err
	}
	port, err := freePort()
	if err != nil {
		return Status{}, err
	}
	spec := m.spec(img, cmd, port)
	d, err := m.driver(spec)
	if err != nil {
		return Status{}, err
	}
	os.Remove(m.Paths.StatusFile())
	progress(fmt.Sprintf("Booting %s (%s image, %d MB, %d CPUs)", m.Settings.Name, img.From, m.Settings.MemoryMB, m.Settings.CPUs))
	start := time.Now()
	if err := d.Start(ctx); err != nil {
		return Status{}, fmt.Errorf("boot %s: %w", m.Settings.Name, err)
	}
	accel := ""
	if a, ok := d.(interface{ Accel() string }); ok {
		accel = a.Accel()
	}
	if accel == "tcg" {
		progress("No hardware acceleration: running under software emulation (TCG), which is slower")
	}
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				progress(fmt.Sprintf("still booting (%s)…", time.Since(start).Round(time.Second)))
			}
		}
	}()
	info, err := m.waitOnline(ctx, d, spec)
	if err != nil {
		d.Kill()
		return Status{}, fmt.Errorf("boot %s: %w", m.Settings.Name, err)
	}
	if err := m.pin(info); err != nil {
		return Status{}, err
	}
	if m.driverName() != "qemu" {
		port = 0 // reached at its own address, not through a forward
	}
	ri := runtimeInfo{SSHPort: port, Accel: accel, Driver: m.driverName(), BootedAt: start, Ready: info}
	b, _ := json.MarshalIndent(ri, "", "  ")
	if err := config.WriteFileAtomic(m.Paths.StatusFile(), b, 0o600); err != nil {
		return Status{}, err
	}
	progress(fmt.Sprintf("Online in %s", time.Since(start).Round(100*time.Millisecond)))
	return m.Status(), nil
}

// waitOnline waits for the ready line. Under QEMU's user networking the guest is
// reached through the SSH forward, so the first ready line will do; on a NAT or
// bridged network the host needs the guest's own address, which may come with a
// later ready line (after DHCP) or first in the DHCP server's lease file.
func (m *Machine) waitOnline(ctx context.Context, d vm.Driver, spec vm.Spec) (ready.Info, error) {
	alive := func() bool { return d.Pid() != 0 }
	info, off, err := vm.WaitReady(ctx, spec.ConsoleLog(), 0, alive)
	if err != nil || m.driverName() == "qemu" {
		return info, err
	}
	mac, _ := net.ParseMAC(vm.MACFor(spec.Name))
	leases := make(chan lease.Lease, 1)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if runtime.GOOS == "darwin" {
		go func() {
			if l, err := lease.Bootpd(lease.BootpdPath).Wait(lctx, mac, spec.Name); err == nil {
				leases <- l
			}
		}()
	}
	readies := make(chan ready.Info)
	errs := make(chan error, 1)
	go func() {
		for off := off; ; {
			i, o, err := vm.WaitReady(lctx, spec.ConsoleLog(), off, alive)
			if err != nil {
				errs <- err
				return
			}
			off = o
			select {
			case readies <- i:
			case <-lctx.Done():
				return
			}
		}
	}()
	for firstIPv4(info.IPs) == "" {
		select {
		case i := <-readies:
			info = i
		case l := <-leases:
			info.IPs = append([]string{l.IP.String()}, info.IPs...)
		case err := <-errs:
			return info, err
		}
	}
	return info, nil
}

func firstIPv4(ips []string) string {
	for _, ip := range ips {
		if a := net.ParseIP(ip); a != nil && a.To4() != nil {
			return ip
		}
	}
	return ""
}

// pin records the host keys from the ready line. The console is a private channel
// from the hypervisor, so the key it carries is the guest's own; a changed key
// (the data disk was replaced) is logged, not silently accepted twice.
func (m *Machine) pin(info ready.Info) error {
	if old, err := os.ReadFile(m.Paths.HostKeys()); err == nil {
		if strings.TrimSpace(string(old)) != strings.Join(info.HostKeys, "\n") {
			m.Log.Warn("the VM's SSH host key changed (new data disk?); pinning the key it announced", "keys", info.HostKeys)
		}
	}
	return config.WriteFileAtomic(m.Paths.HostKeys(), []byte(strings.Join(info.HostKeys, "\n")+"\n"), 0o600)
}

// PinnedKeys reads the pinned host keys.
func (m *Machine) PinnedKeys() ([]ssh.PublicKey, error) {
	b, err := os.ReadFile(m.Paths.HostKeys())
	if err != nil {
		return nil, fmt.Errorf("no pinned host key (boot the VM first): %w", err)
	}
	var keys []ssh.PublicKey
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("%s is damaged: %w", m.Paths.HostKeys(), err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// ErrNotRunning is returned when the VM is needed but stopped.
var ErrNotRunning = errors.New("HyperOS is not running: start it with 'hyperos boot'")

// Dial opens a verified SSH connection to the running VM.
func (m *Machine) Dial(ctx context.Context) (*ssh.Client, error) {
	st := m.Status()
	if st.State != vm.Running {
		return nil, ErrNotRunning
	}
	if st.SSH == "" {
		return nil, fmt.Errorf("vm %s is running but has not announced itself yet: wait, or see %s", st.Name, st.Console)
	}
	signer, err := vm.LoadKey(m.Paths.Key())
	if err != nil {
		return nil, err
	}
	keys, err := m.PinnedKeys()
	if err != nil {
		return nil, err
	}
	c, err := vm.Dial(ctx, st.SSH, signer, keys)
	if errors.Is(err, vm.ErrHostKeyMismatch) {
		return nil, fmt.Errorf("%w; the pinned keys are in %s. If you did not rebuild the VM, something else is answering on %s", err, m.Paths.HostKeys(), st.SSH)
	}
	return c, err
}

// Halt shuts the guest down gracefully and waits for the hypervisor to exit. When
// the hypervisor cannot pass the request on, it asks the guest over SSH.
func (m *Machine) Halt(ctx context.Context) error {
	d := m.stateDriver()
	if d == nil || d.Pid() == 0 {
		return ErrNotRunning
	}
	stopCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	err := d.Stop(stopCtx)
	if err == nil {
		return nil
	}
	m.Log.Warn("graceful stop through the hypervisor failed; asking the guest over ssh", "err", err)
	c, derr := m.Dial(ctx)
	if derr != nil {
		return fmt.Errorf("halt: %v; and over ssh: %w", err, derr)
	}
	s, serr := c.NewSession()
	if serr == nil {
		s.Start("systemctl poweroff")
		s.Close()
	}
	c.Close()
	return d.Wait(ctx)
}

// Wait returns when the hypervisor has exited, at once when it is not running.
// The daemon's supervisor uses it to notice a VM dying.
func (m *Machine) Wait(ctx context.Context) error {
	d := m.stateDriver()
	if d == nil {
		return nil
	}
	return d.Wait(ctx)
}

// Kill ends the hypervisor at once.
func (m *Machine) Kill() error {
	d := m.stateDriver()
	if d == nil || d.Pid() == 0 {
		return ErrNotRunning
	}
	return d.Kill()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
