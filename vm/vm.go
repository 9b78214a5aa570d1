// Package vm boots HyperOS and reaches it: the boot spec, the Driver interface each
// hypervisor package implements, the console ready-line reader and the SSH client
// that verifies the pinned host key.
package vm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/hyperos/hyperos/guest/cmdline"
)

// State is what a driver reports about its VM.
type State string

const (
	Stopped State = "stopped"
	Running State = "running"
)

// Spec is everything needed to boot one VM.
type Spec struct {
	Name     string // VM name; also the guest hostname
	Arch     string // amd64 or arm64
	Kernel   string
	Initrd   string
	Cmdline  string // complete kernel command line, see BuildCmdline
	MemoryMB int
	CPUs     int
	DataDisk string // raw disk image with serial hyperos-data; "" for none
	Dir      string // directory for the pid file, sockets and console log
	Net      Network
	// Accel forces an accelerator ("kvm", "hvf", "whpx", "tcg"); "" picks the
	// fastest that works and falls back to TCG.
	Accel string
}

// Network says how the guest is connected.
type Network struct {
	// Mode is "user" (QEMU user-mode networking, the default), "bridge" (a tap
	// device on a bridge with dnsmasq, Linux only) or "nat" (vfkit's NAT with
	// macOS's bootpd handing out addresses).
	Mode    string
	SSHPort int    // user mode: host port on 127.0.0.1 forwarded to the guest's 22
	MAC     string // fixed MAC, derived from the name when empty
	Tap     string // bridge mode: tap device name
}

// ConsoleLog is where the driver writes the guest's primary console.
func (s Spec) ConsoleLog() string { return filepath.Join(s.Dir, "console.log") }

// PidFile is where the driver records the hypervisor process.
func (s Spec) PidFile() string { return filepath.Join(s.Dir, "vm.pid") }

// Validate checks the spec before anything is started, so that mistakes show up
// as clear errors rather than as a hypervisor failing half-way.
func (s Spec) Validate() error {
	if err := cmdline.ValidHost(s.Name); err != nil {
		return fmt.Errorf("vm name: %w", err)
	}
	for _, f := range []struct{ what, path string }{{"kernel", s.Kernel}, {"initrd", s.Initrd}} {
		if f.path == "" {
			return fmt.Errorf("no %s given", f.what)
		}
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("%s: %w (build the image with 'make image')", f.what, err)
		}
	}
	if strings.ContainsAny(s.Cmdline, "\n\x00") || len(s.Cmdline) > 2048 {
		return errors.New("kernel command line has a newline, a NUL or is over 2048 bytes")
	}
	if s.MemoryMB < 256 {
		return fmt.Errorf("memory %d MB: HyperOS needs at least 256 MB", s.MemoryMB)
	}
	if s.CPUs < 1 {
		return fmt.Errorf("cpus %d: at least 1", s.CPUs)
	}
	if s.Dir == "" {
		return errors.New("no VM directory")
	}
	if s.Net.MAC != "" {
		if _, err := net.ParseMAC(s.Net.MAC); err != nil {
			return fmt.Errorf("mac: %w", err)
		}
	}
	return nil
}

// BuildCmdline returns the kernel command line for a VM: the console for the
// hypervisor, then host= and sshkey= (validated), then extra parameters.
func BuildCmdline(console, host, authorizedKey string, extra ...string) (string, error) {
	p, err := cmdline.Build(cmdline.Params{Host: host, SSHKey: authorizedKey})
	if err != nil {
		return "", err
	}
	parts := []string{"console=" + console, "panic=-1", p}
	for _, e := range extra {
		if strings.ContainsAny(e, "\"\n\x00 ") {
			return "", fmt.Errorf("kernel parameter %q: quotes, spaces and newlines are not allowed", e)
		}
		parts = append(parts, e)
	}
	return strings.Join(parts, " "), nil
}

// MACFor derives a stable, locally administered unicast MAC from a VM name, so
// that DHCP servers keep giving the same VM the same lease.
func MACFor(name string) string {
	h := fnv32(name)
	return fmt.Sprintf("52:54:%02x:%02x:%02x:%02x", byte(h>>24), byte(h>>16), byte(h>>8), byte(h))
}

func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// Driver runs one VM. Start returns once the hypervisor runs detached (the VM
// outlives the process that started it); a Driver made later for the same Spec
// finds it again through the pid file.
type Driver interface {
	Start(ctx context.Context) error
	// Stop asks the guest to power off and waits for the hypervisor to exit.
	Stop(ctx context.Context) error
	// Kill ends the hypervisor at once.
	Kill() error
	// Wait returns when the hypervisor process has exited.
	Wait(ctx context.Context) error
	State() (State, error)
	// Pid is the hypervisor's process id, 0 when not running.
	Pid() int
}

// ErrNotRunning is returned by Stop, Kill and Wait when there is no VM.
var ErrNotRunning = errors.New("vm is not running")
