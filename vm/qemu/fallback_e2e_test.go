//go:build e2e

package qemu_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hyperos/hyperos/vm"
	"github.com/hyperos/hyperos/vm/qemu"
	"github.com/hyperos/hyperos/vm/vmtest"
)

// TestSilentGuestIsRestarted boots a real kernel whose console goes elsewhere, so
// that the log stays empty as it does when nested KVM hangs: the driver must give
// up on the first accelerator, note it, and start again with the next.
func TestSilentGuestIsRestarted(t *testing.T) {
	img := vmtest.ImageDir(t)
	dir := t.TempDir()
	spec := vm.Spec{
		Name: "silent", Arch: vmtest.Arch(), Kernel: filepath.Join(img, "vmlinuz"), Initrd: filepath.Join(img, "initrd.img"),
		Cmdline: "console=ttyS1 panic=-1", MemoryMB: 512, CPUs: 1, Dir: filepath.Join(dir, "vm"),
	}
	d := qemu.New(spec)
	var logs bytes.Buffer
	d.Log = slog.New(slog.NewTextHandler(&logs, nil))
	d.Accels = []string{"tcg", "tcg"}
	d.ProgressTimeout = 3 * time.Second
	d.AccelNote = filepath.Join(dir, "note")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Kill()
	if !strings.Contains(logs.String(), "guest made no progress") {
		t.Fatalf("no fallback logged:\n%s", logs.String())
	}
	if _, err := os.Stat(d.AccelNote); err != nil {
		t.Fatalf("the hang was not noted: %v", err)
	}
	if st, _ := d.State(); st != vm.Running || d.Accel() != "tcg" {
		t.Fatalf("after fallback: %s under %s", st, d.Accel())
	}
	if err := d.Kill(); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.State(); st != vm.Stopped {
		t.Fatalf("after kill: %s", st)
	}
}
