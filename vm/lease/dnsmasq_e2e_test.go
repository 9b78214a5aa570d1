//go:build e2e && linux

// End-to-end test of the dnsmasq lease source: a real dnsmasq serves DHCP on a
// bridge in a network namespace made by the test, the real HyperOS image boots in
// QEMU on a tap device on that bridge, and the watcher must find the VM's lease by
// its fixed MAC and the hostname the guest sent.
package lease_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hyperos/hyperos/vm"
	"github.com/hyperos/hyperos/vm/lease"
	"github.com/hyperos/hyperos/vm/qemu"
	"github.com/hyperos/hyperos/vm/vmtest"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

func run(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// needDnsmasq installs dnsmasq-base when it is missing and the test may (root,
// apt-get present); otherwise the test skips, or fails under CI=true.
func needDnsmasq(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("dnsmasq"); err == nil {
		return p
	}
	if _, err := exec.LookPath("apt-get"); err == nil && os.Geteuid() == 0 {
		out, err := exec.Command("apt-get", "install", "-y", "dnsmasq-base").CombinedOutput()
		if err != nil {
			t.Logf("apt-get install dnsmasq-base: %v\n%s", err, out)
		}
	}
	p, err := exec.LookPath("dnsmasq")
	vmtest.Require(t, err == nil, "dnsmasq is not installed (apt-get install dnsmasq-base)")
	return p
}

func TestDnsmasqLeaseE2E(t *testing.T) {
	vmtest.Require(t, os.Geteuid() == 0, "root is needed for network namespaces and tap devices")
	_, err := exec.LookPath("ip")
	vmtest.Require(t, err == nil, "iproute2 is not installed")
	_, err = os.Stat("/dev/net/tun")
	vmtest.Require(t, err == nil, "/dev/net/tun is missing")
	dnsmasq := needDnsmasq(t)
	img := vmtest.ImageDir(t)
	qemuBin := "qemu-system-" + map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[vmtest.Arch()]
	_, err = exec.LookPath(qemuBin)
	vmtest.Require(t, err == nil, qemuBin+" is not installed")

	// The namespace, bridge and tap belong to this test and go with it.
	ns := fmt.Sprintf("hyperos-lease-%d", os.Getpid())
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
		}
	})
	in := func(args ...string) { t.Helper(); run(t, append([]string{"ip", "netns", "exec", ns}, args...)...) }
	in("ip", "link", "set", "lo", "up")
	in("ip", "link", "add", "br0", "type", "bridge")
	in("ip", "addr", "add", "10.77.0.1/24", "dev", "br0")
	in("ip", "link", "set", "br0", "up")
	in("ip", "tuntap", "add", "dev", "tap0", "mode", "tap")
	in("ip", "link", "set", "tap0", "master", "br0")
	in("ip", "link", "set", "tap0", "up")

	dir := t.TempDir()
	leaseFile := filepath.Join(dir, "dnsmasq.leases")
	var dlog bytes.Buffer
	dm := exec.Command("ip", "netns", "exec", ns, dnsmasq,
		"--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--port=0", // DHCP only, no DNS
		"--interface=br0", "--bind-interfaces",
		"--dhcp-range=10.77.0.50,10.77.0.150,255.255.255.0,1h",
		"--dhcp-leasefile="+leaseFile, "--pid-file="+filepath.Join(dir, "dnsmasq.pid"),
		"--log-facility=-", "--log-dhcp")
	dm.Stdout, dm.Stderr = &dlog, &dlog
	if err := dm.Start(); err != nil {
		t.Fatalf("start dnsmasq: %v", err)
	}
	dmDone := make(chan error, 1)
	go func() { dmDone <- dm.Wait() }()
	t.Cleanup(func() {
		dm.Process.Kill()
		<-dmDone
		if t.Failed() {
			t.Logf("dnsmasq log:\n%s", dlog.String())
		}
	})

	// The VM, in bridge mode on the namespace's tap.
	name := "lease-e2e-1"
	signer, err := vm.GenerateKey(filepath.Join(dir, "id_ed25519"), "test@hyperos")
	if err != nil {
		t.Fatal(err)
	}
	console, kernel := "ttyS0", filepath.Join(img, "vmlinuz")
	if vmtest.Arch() == "arm64" {
		console, kernel = "ttyAMA0", filepath.Join(img, "Image")
	}
	line, err := vm.BuildCmdline(console, name, vm.AuthorizedKey(signer))
	if err != nil {
		t.Fatal(err)
	}
	spec := vm.Spec{
		Name: name, Arch: vmtest.Arch(), Kernel: kernel, Initrd: filepath.Join(img, "initrd.img"),
		Cmdline: line, MemoryMB: 1024, CPUs: 2, Dir: filepath.Join(dir, "vm"),
		Net: vm.Network{Mode: "bridge", Tap: "tap0"},
	}
	d := qemu.New(spec)
	d.Wrapper = []string{"ip", "netns", "exec", ns}
	d.AccelNote = filepath.Join(os.TempDir(), "hyperos-test-accel-note")
	t.Cleanup(func() {
		if d.Pid() != 0 {
			d.Kill()
		}
		if t.Failed() {
			b, _ := os.ReadFile(spec.ConsoleLog())
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("console log (tail):\n%s", b)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	mac, err := net.ParseMAC(vm.MACFor(name))
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		l   lease.Lease
		err error
	}
	found := make(chan result, 1)
	go func() {
		l, err := lease.Dnsmasq(leaseFile).Wait(ctx, mac, name)
		found <- result{l, err}
	}()
	start := time.Now()
	if err := d.Start(ctx); err != nil {
		t.Fatalf("start vm: %v", err)
	}
	r := <-found
	if r.err != nil {
		t.Fatal(r.err)
	}
	l := r.l
	t.Logf("lease after %s under %s: %+v", time.Since(start).Round(time.Millisecond), d.Accel(), l)
	if l.Source != lease.SourceDnsmasq || !bytes.Equal(l.MAC, mac) || l.Hostname != name ||
		!netip.MustParsePrefix("10.77.0.0/24").Contains(l.IP) {
		t.Fatalf("lease %+v: want mac %s, hostname %s, an address in 10.77.0.0/24", l, mac, name)
	}

	// The hostname alone finds the same lease: the guest sent its name.
	byName, err := lease.Dnsmasq(leaseFile).Wait(ctx, nil, name)
	if err != nil || byName.IP != l.IP {
		t.Fatalf("by hostname: %+v %v, want %s", byName, err, l.IP)
	}

	// The guest agrees: a ready line lists the leased address (the first one may
	// come before DHCP has answered).
	var offset int64
	for {
		rl, info, off, err := lease.WaitReady(ctx, spec.ConsoleLog(), offset, func() bool { return d.Pid() != 0 }, mac)
		if err != nil {
			t.Fatal(err)
		}
		offset = off
		if !slices.Contains(info.IPs, l.IP.String()) {
			t.Logf("ready line without the leased address yet: %v", info.IPs)
			continue
		}
		if rl.Hostname != name {
			t.Fatalf("ready line hostname %q", rl.Hostname)
		}
		keys, err := info.PublicKeys()
		if err != nil {
			t.Fatal(err)
		}
		// And the leased address answers SSH, with the host key the console
		// announced, from inside the namespace.
		out := sshRun(t, ns, netip.AddrPortFrom(l.IP, 22).String(), signer, keys, "hostname; ip -4 -o addr show")
		if !strings.HasPrefix(out, name+"\n") || !strings.Contains(out, " "+l.IP.String()+"/24 ") {
			t.Fatalf("over ssh to %s:\n%s", l.IP, out)
		}
		t.Logf("ssh to %s in %s with the pinned host key:\n%s", l.IP, ns, out)
		break
	}
}

// sshRun runs cmd on the guest over SSH. The TCP socket is made on an OS thread
// that joined the namespace; the thread is never unlocked, so it ends with the
// goroutine instead of going back to the pool in the wrong namespace. Once the
// socket exists the namespace no longer matters.
func sshRun(t *testing.T, ns, addr string, signer ssh.Signer, keys []ssh.PublicKey, cmd string) string {
	t.Helper()
	type dialed struct {
		c   net.Conn
		err error
	}
	ch := make(chan dialed, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			ch <- dialed{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- dialed{nil, fmt.Errorf("setns: %w", err)}
			return
		}
		c, err := net.DialTimeout("tcp", addr, time.Minute)
		ch <- dialed{c, err}
	}()
	d := <-ch
	if d.err != nil {
		t.Fatalf("connect to %s in %s: %v", addr, ns, d.err)
	}
	conn, chans, reqs, err := ssh.NewClientConn(d.c, addr, &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: vm.PinnedHostKey(keys),
		Timeout:         time.Minute,
	})
	if err != nil {
		d.c.Close()
		t.Fatalf("ssh %s: %v", addr, err)
	}
	c := ssh.NewClient(conn, chans, reqs)
	defer c.Close()
	out, err := vm.Run(c, cmd)
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	return out
}
