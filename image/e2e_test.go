//go:build e2e

// End-to-end tests of the built image: each boots it in QEMU (KVM when it works,
// TCG otherwise) with user networking and an SSH port forward.
package image_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hyperos/hyperos/vm"
	"github.com/hyperos/hyperos/vm/vmtest"
	"golang.org/x/crypto/ssh"
)

// TestImageBoot runs the checks that can share one VM, then reboots it with the
// same data disk.
func TestImageBoot(t *testing.T) {
	t.Parallel()
	v := vmtest.Boot(t, vmtest.Options{Name: "simon-mittens-7"})

	t.Run("ReadyLine", func(t *testing.T) {
		if v.Ready.Hostname != "simon-mittens-7" {
			t.Fatalf("ready line hostname %q", v.Ready.Hostname)
		}
		if len(v.Ready.HostKeys) != 1 || !strings.HasPrefix(v.Ready.HostKeys[0], "ssh-ed25519 ") {
			t.Fatalf("ready line host keys %q", v.Ready.HostKeys)
		}
		if v.Ready.Version == "" {
			t.Fatal("ready line has no version")
		}
	})
	t.Run("HostnameAndKeyFromCmdline", func(t *testing.T) {
		out := v.On(t).Run("hostname; cat /etc/hostname; stat -c '%a %U' /root/.ssh/authorized_keys /root/.ssh; cat /root/.ssh/authorized_keys")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		want := []string{"simon-mittens-7", "simon-mittens-7", "600 root", "700 root", vm.AuthorizedKey(v.Signer)}
		if strings.Join(lines, "\n") != strings.Join(want, "\n") {
			t.Fatalf("got:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
		}
	})
	t.Run("HostKeyMatchesReadyLine", func(t *testing.T) {
		out := strings.TrimSpace(v.On(t).Run("cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub"))
		if out != v.Ready.HostKeys[0] {
			t.Fatalf("sshd key %q, ready line %q", out, v.Ready.HostKeys[0])
		}
		// And a different pinned key is refused.
		other, err := vm.GenerateKey(filepath.Join(t.TempDir(), "k"), "x")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err = vm.Dial(ctx, v.SSHAddr, v.Signer, []ssh.PublicKey{other.PublicKey()})
		if !errors.Is(err, vm.ErrHostKeyMismatch) {
			t.Fatalf("dial with a wrong pinned key: %v", err)
		}
	})
	t.Run("MotdOnLogin", func(t *testing.T) {
		c, err := v.On(t).Dial()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		s.Stdout = &out
		s.Stdin = strings.NewReader("echo END-OF-SESSION; exit\n")
		if err := s.Shell(); err != nil {
			t.Fatal(err)
		}
		s.Wait()
		vmtest.Contains(t, "login output", out.String(), "Welcome to HyperOS Linux!")
		vmtest.Contains(t, "login output", out.String(), "END-OF-SESSION")
	})
	t.Run("ContainerTools", func(t *testing.T) {
		out := v.On(t).Run("systemd-nspawn --version | head -1; test -c /dev/fuse && echo fuse-ok; modprobe overlay && grep -w overlay /proc/filesystems; machinectl list --no-legend >/dev/null && echo machinectl-ok")
		for _, want := range []string{"systemd 25", "fuse-ok", "overlay", "machinectl-ok"} {
			vmtest.Contains(t, "container tools", out, want)
		}
	})
	t.Run("NoForbiddenContent", func(t *testing.T) {
		out := v.On(t).Run("for p in /usr/bin/apt /usr/bin/apt-get /var/lib/dpkg /usr/bin/perl /usr/share/doc /usr/share/man /usr/share/locale; do test -e $p && echo present: $p; done; ls /etc/ssh/ssh_host_*; true")
		if strings.Contains(out, "present:") {
			t.Fatalf("image holds what it must not:\n%s", out)
		}
		if strings.Count(out, "ssh_host_") != 2 { // the ed25519 key and its .pub, made at boot
			t.Fatalf("host keys: %s", out)
		}
	})
	t.Run("ModulesAndNetwork", func(t *testing.T) {
		out := v.On(t).Run("lsmod | cut -d' ' -f1 | sort | tr '\\n' ' '; echo; systemctl is-system-running || true; ip -4 -o addr show scope global")
		for _, m := range []string{"virtio_net", "virtio_blk", "fuse", "nf_tables", "ext4"} {
			vmtest.Contains(t, "modules", out, m)
		}
		vmtest.Contains(t, "system state", out, "running")
		vmtest.Contains(t, "address", out, "10.0.2.15")
	})

	// Data disk: formatted on first boot, mounted, and kept across a reboot.
	out := v.Run("findmnt -no SOURCE,FSTYPE /var/lib/hyperos; echo precious > /var/lib/hyperos/keep; sync; cat /var/lib/hyperos/keep")
	vmtest.Contains(t, "data disk", out, "ext4")
	vmtest.Contains(t, "data disk", out, "precious")
	vmtest.Contains(t, "console", v.Console(), "is blank")
	firstKey := v.Ready.HostKeys[0]
	v.Halt()
	if st, _ := v.Driver.State(); st != vm.Stopped {
		t.Fatalf("after halt the VM is %s", st)
	}
	v.Start()
	t.Run("DataSurvivesReboot", func(t *testing.T) {
		out := v.On(t).Run("cat /var/lib/hyperos/keep; findmnt -no FSTYPE /var/lib/hyperos")
		vmtest.Contains(t, "after reboot", out, "precious")
		if strings.Contains(v.Console(), "is blank") {
			t.Fatal("the data disk was formatted again")
		}
		if v.Ready.HostKeys[0] != firstKey {
			t.Fatal("the host key changed across a reboot with the same data disk")
		}
	})
}

// TestImageRefusesBadInput boots with hostile command-line values and a data disk
// that holds foreign data: the guest must boot, install no key, and not touch
// the disk.
func TestImageRefusesBadInput(t *testing.T) {
	t.Parallel()
	disk := filepath.Join(t.TempDir(), "foreign.img")
	payload := []byte("this disk holds someone's data")
	f, err := os.Create(disk)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(512 << 20)
	f.WriteAt(payload, 0)
	f.Close()
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	bad := `host=$(touch${IFS}/pwned) sshkey="` + key + `\";touch /pwned2;\""`
	v := vmtest.Boot(t, vmtest.Options{Name: "bad-input", Cmdline: bad, DataDisk: disk})

	if v.Ready.Hostname != "hyperos" {
		t.Fatalf("hostname %q, want the image default", v.Ready.Hostname)
	}
	console := v.Console()
	vmtest.Contains(t, "console", console, "host= ignored")
	vmtest.Contains(t, "console", console, "sshkey= ignored")
	vmtest.Contains(t, "console", console, "root has no authorized key")
	vmtest.Contains(t, "console", console, "left untouched")
	_, err = v.Dial()
	if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("ssh with no authorized key: %v", err)
	}
	v.Halt()
	got := make([]byte, len(payload))
	f, _ = os.Open(disk)
	f.ReadAt(got, 0)
	f.Close()
	if !bytes.Equal(got, payload) {
		t.Fatalf("the foreign disk was modified: %q", got)
	}
}

// TestImageBootArm64 boots the arm64 image (an uncompressed Image, as Apple's
// Virtualization framework needs) under qemu-system-aarch64, emulated here.
func TestImageBootArm64(t *testing.T) {
	t.Parallel()
	img := vmtest.ImageDirFor(t, "arm64")
	b, err := os.ReadFile(filepath.Join(img, "Image"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 0x40 || string(b[0x38:0x3c]) != "ARM\x64" {
		t.Fatal("Image is not an uncompressed arm64 kernel (no ARM\\x64 magic at 0x38)")
	}
	if size := int64(len(b)) + fileSize(t, filepath.Join(img, "initrd.img")); size > 50e6 {
		t.Errorf("arm64 image is %.1f MB, over the 50 MB promise", float64(size)/1e6)
	}
	v := vmtest.Boot(t, vmtest.Options{Name: "arm-cat", Arch: "arm64"})
	out := v.Run("uname -m; hostname; findmnt -no FSTYPE /var/lib/hyperos; systemd-nspawn --version | head -1; test -c /dev/fuse && echo fuse-ok")
	for _, want := range []string{"aarch64", "arm-cat", "ext4", "systemd 25", "fuse-ok"} {
		vmtest.Contains(t, "arm64 guest", out, want)
	}
}

func fileSize(t *testing.T, p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
