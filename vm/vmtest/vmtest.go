// Package vmtest boots the real HyperOS image in QEMU for end-to-end tests: one
// helper shared by every package's e2e tests, so that they find the image, pick a
// port and pin the host key the same way the product does.
package vmtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hyperos/hyperos/guest/ready"
	"github.com/hyperos/hyperos/vm"
	"github.com/hyperos/hyperos/vm/qemu"
	"golang.org/x/crypto/ssh"
)

// Require skips the test, or fails it under CI=true where a skip would hide
// breakage.
func Require(t testing.TB, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("prerequisite missing in CI: %s", why)
	}
	t.Skipf("prerequisite missing: %s", why)
}

// Arch is the image architecture the tests boot.
func Arch() string {
	if a := os.Getenv("HYPEROS_TEST_ARCH"); a != "" {
		return a
	}
	return runtime.GOARCH
}

// ImageDir finds the built image: $HYPEROS_IMAGE_DIR, else build/hyperos-<arch>
// in the source tree holding this package.
func ImageDir(t testing.TB) string {
	t.Helper()
	return ImageDirFor(t, Arch())
}

// ImageDirFor is ImageDir for another architecture's image.
func ImageDirFor(t testing.TB, arch string) string {
	t.Helper()
	dir := os.Getenv("HYPEROS_IMAGE_DIR")
	if dir == "" || arch != Arch() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir = filepath.Join(root, "build", "hyperos-"+arch)
	}
	kernel := "vmlinuz"
	if arch == "arm64" {
		kernel = "Image"
	}
	_, errK := os.Stat(filepath.Join(dir, kernel))
	_, errI := os.Stat(filepath.Join(dir, "initrd.img"))
	Require(t, errK == nil && errI == nil, "no image in "+dir+": run 'make image'")
	return dir
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Options shape a test VM.
type Options struct {
	Name     string
	DataDisk string // path; "" makes a fresh sparse one, "-" attaches none
	// Cmdline replaces the HyperOS part of the command line (host=, sshkey=) with
	// raw text, for tests of bad input.
	Cmdline  string
	MemoryMB int
	Arch     string // default: Arch()
}

// VM is a booted test VM.
type VM struct {
	T       testing.TB
	Driver  *qemu.Driver
	Spec    vm.Spec
	Signer  ssh.Signer
	Ready   ready.Info
	SSHAddr string
	offset  int64
}

// Boot starts a VM and waits for its ready line. The VM is killed when the test
// ends.
func Boot(t testing.TB, o Options) *VM {
	t.Helper()
	if o.Arch == "" {
		o.Arch = Arch()
	}
	img := ImageDirFor(t, o.Arch)
	_, err := os.Stat("/usr/bin/qemu-system-" + map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[o.Arch])
	Require(t, err == nil, "QEMU for "+o.Arch+" is not installed (apt-get install qemu-system-x86 qemu-system-arm)")
	dir := t.TempDir()
	if o.Name == "" {
		o.Name = "hyperos-test"
	}
	keyPath := filepath.Join(dir, "id_ed25519")
	signer, err := vm.GenerateKey(keyPath, "test@hyperos")
	if err != nil {
		t.Fatal(err)
	}
	console := "ttyS0"
	kernel := filepath.Join(img, "vmlinuz")
	if o.Arch == "arm64" {
		console, kernel = "ttyAMA0", filepath.Join(img, "Image")
	}
	var line string
	if o.Cmdline != "" {
		line = "console=" + console + " panic=-1 " + o.Cmdline
	} else {
		line, err = vm.BuildCmdline(console, o.Name, vm.AuthorizedKey(signer))
		if err != nil {
			t.Fatal(err)
		}
	}
	switch o.DataDisk {
	case "":
		o.DataDisk = filepath.Join(dir, "data.img")
		f, err := os.Create(o.DataDisk)
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(2 << 30)
		f.Close()
	case "-":
		o.DataDisk = ""
	}
	if o.MemoryMB == 0 {
		o.MemoryMB = 1024
	}
	port := FreePort(t)
	spec := vm.Spec{
		Name: o.Name, Arch: o.Arch, Kernel: kernel, Initrd: filepath.Join(img, "initrd.img"),
		Cmdline: line, MemoryMB: o.MemoryMB, CPUs: 2, DataDisk: o.DataDisk,
		Dir: filepath.Join(dir, "vm"), Net: vm.Network{Mode: "user", SSHPort: port},
	}
	d := qemu.New(spec)
	d.AccelNote = filepath.Join(os.TempDir(), "hyperos-test-accel-note")
	v := &VM{T: t, Driver: d, Spec: spec, Signer: signer, SSHAddr: fmt.Sprintf("127.0.0.1:%d", port)}
	t.Cleanup(func() {
		if d.Pid() != 0 {
			d.Kill()
		}
		if t.Failed() {
			b, _ := os.ReadFile(spec.ConsoleLog())
			t.Logf("console log of %s (last 6000 bytes):\n%s", o.Name, tail(string(b), 6000))
		}
	})
	v.Start()
	return v
}

// On returns the VM bound to t, for use inside a subtest: a failure then ends the
// subtest, not its parent.
func (v *VM) On(t testing.TB) *VM {
	c := *v
	c.T = t
	return &c
}

// Start boots the (stopped) VM and waits for the ready line.
func (v *VM) Start() {
	v.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	if err := v.Driver.Start(ctx); err != nil {
		v.T.Fatalf("start vm: %v", err)
	}
	v.offset = 0
	v.WaitReady(ctx)
	v.T.Logf("%s ready in %s under %s", v.Spec.Name, time.Since(start).Round(time.Millisecond), v.Driver.Accel())
}

// WaitReady waits for the next ready line on the console.
func (v *VM) WaitReady(ctx context.Context) ready.Info {
	v.T.Helper()
	info, off, err := vm.WaitReady(ctx, v.Spec.ConsoleLog(), v.offset, func() bool { return v.Driver.Pid() != 0 })
	if err != nil {
		v.T.Fatal(err)
	}
	v.offset = off
	v.Ready = info
	return info
}

// Dial opens an SSH connection verified against the ready line's host keys.
func (v *VM) Dial() (*ssh.Client, error) {
	keys, err := v.Ready.PublicKeys()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return vm.Dial(ctx, v.SSHAddr, v.Signer, keys)
}

// Run runs a command over SSH and fails the test on error.
func (v *VM) Run(cmd string) string {
	v.T.Helper()
	c, err := v.Dial()
	if err != nil {
		v.T.Fatalf("ssh: %v", err)
	}
	defer c.Close()
	out, err := vm.Run(c, cmd)
	if err != nil {
		v.T.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	return out
}

// Console returns the console log so far.
func (v *VM) Console() string {
	b, _ := os.ReadFile(v.Spec.ConsoleLog())
	return string(b)
}

// Halt stops the VM gracefully and waits for QEMU to exit.
func (v *VM) Halt() {
	v.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := v.Driver.Stop(ctx); err != nil {
		v.T.Fatalf("halt: %v", err)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// Contains fails the test unless out contains want.
func Contains(t testing.TB, what, out, want string) {
	t.Helper()
	if !strings.Contains(out, want) {
		t.Fatalf("%s: %q not found in:\n%s", what, want, out)
	}
}
