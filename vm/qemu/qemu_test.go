package qemu

import (
	"errors"
	"strings"
	"testing"

	"github.com/hyperos/hyperos/vm"
)

func spec() vm.Spec {
	return vm.Spec{
		Name: "simon", Arch: "amd64", Kernel: "/img/vmlinuz", Initrd: "/img/initrd.img",
		Cmdline: `console=ttyS0 host=simon sshkey="ssh-ed25519 AAAA x"`, MemoryMB: 1024, CPUs: 2,
		DataDisk: "/vm/data.img", Dir: "/vm", Net: vm.Network{SSHPort: 2222},
	}
}

func argValue(args []string, flag string) []string {
	var out []string
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			out = append(out, args[i+1])
		}
	}
	return out
}

func TestArgs(t *testing.T) {
	d := New(spec())
	args, err := d.Args("tcg")
	if err != nil {
		t.Fatal(err)
	}
	// The command line is one argument, quotes intact: no shell ever sees it.
	if got := argValue(args, "-append"); len(got) != 1 || got[0] != spec().Cmdline {
		t.Fatalf("-append %q", got)
	}
	if got := argValue(args, "-accel"); got[0] != "tcg,thread=multi" {
		t.Fatalf("-accel %q", got)
	}
	nd := strings.Join(argValue(args, "-netdev"), " ")
	if !strings.Contains(nd, "hostfwd=tcp:127.0.0.1:2222-:22") {
		t.Fatalf("ssh forward must bind loopback only: %s", nd)
	}
	devs := strings.Join(argValue(args, "-device"), " ")
	for _, want := range []string{"virtio-blk-pci,drive=data,serial=hyperos-data", "mac=" + vm.MACFor("simon"), "virtio-rng-pci"} {
		if !strings.Contains(devs, want) {
			t.Errorf("devices lack %q: %s", want, devs)
		}
	}
	if got := argValue(args, "-name"); got[0] != "hyperos-simon" {
		t.Fatalf("-name %q: ps and isOurQEMU rely on it", got)
	}
	args, _ = d.Args("kvm")
	if got := argValue(args, "-accel"); got[0] != "kvm" {
		t.Fatalf("kvm: %q", got)
	}
}

func TestArgsRefuseCommasInPaths(t *testing.T) {
	s := spec()
	s.DataDisk = "/vm/a,b.img"
	if _, err := New(s).Args("tcg"); err == nil {
		t.Fatal("a comma in a path would let it inject QEMU options")
	}
}

func TestArm64Machine(t *testing.T) {
	s := spec()
	s.Arch = "arm64"
	args, _ := New(s).Args("tcg")
	if got := argValue(args, "-machine"); got[0] != "virt" {
		t.Fatalf("arm64 machine %q", got)
	}
}

func TestAcceleratorOrder(t *testing.T) {
	s := spec()
	s.Accel = "tcg"
	if got := New(s).accelerators(); len(got) != 1 || got[0] != "tcg" {
		t.Fatalf("forced tcg: %v", got)
	}
	s.Accel = ""
	got := New(s).accelerators()
	if got[len(got)-1] != "tcg" {
		t.Fatalf("tcg must be the last resort: %v", got)
	}
}

func TestAccelNoteSkipsHardwareAfterAHang(t *testing.T) {
	d := New(spec())
	d.AccelNote = t.TempDir() + "/note"
	if hostBootID() == "" {
		t.Skip("no boot id on this host")
	}
	d.noteHWBroken()
	if got := d.accelerators(); len(got) != 1 || got[0] != "tcg" {
		t.Fatalf("after a noted hang: %v", got)
	}
}

func TestAccelFailure(t *testing.T) {
	for stderr, want := range map[string]bool{
		"qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69":               true,
		"Could not access KVM kernel module: Permission denied":                    true,
		"qemu-system-x86_64: -accel whpx: WHPX: No accelerator found, hr=00000000": true,
		"qemu-system-aarch64: -accel hvf: Error: HV_ERROR":                         true,
		"": true,
		"qemu-system-x86_64: -netdev user,id=net0,hostfwd=tcp:127.0.0.1:36483-:22: Could not set up host forwarding rule 'tcp:127.0.0.1:36483-:22'": false,
		"qemu-system-x86_64: -drive file=/x/data.img: Could not open '/x/data.img': No such file or directory":                                      false,
	} {
		err := &launchError{accel: "kvm", err: errors.New("exit status 1"), stderr: stderr}
		if got := accelFailure(err); got != want {
			t.Errorf("%q: accelFailure = %v, want %v", stderr, got, want)
		}
	}
	if accelFailure(errors.New("kvm")) {
		t.Error("an error that is not QEMU's own counts")
	}
}
