package cpio

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func makeTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "etc/ssh"), 0o755))
	must(os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("hyperos\n"), 0o644))
	must(os.WriteFile(filepath.Join(root, "etc/ssh/key"), []byte("secret"), 0o600))
	must(os.WriteFile(filepath.Join(root, "odd"), []byte("abc"), 0o755))
	must(os.Chmod(filepath.Join(root, "odd"), 0o755|os.ModeSetuid))
	must(os.Symlink("etc/hostname", filepath.Join(root, "link")))
	must(os.WriteFile(filepath.Join(root, "empty"), nil, 0o644))
	return root
}

func pack(t *testing.T, root string, mtime time.Time) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf, mtime)
	if err := w.AddDevice("dev/console", 0o600, CharDevice, 5, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddTree(root, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestSameTreeSameBytes checks reproducibility: on-disk times must not leak in.
func TestSameTreeSameBytes(t *testing.T) {
	root := makeTree(t)
	a := pack(t, root, time.Unix(1700000000, 0))
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(root, "etc/hostname"), later, later); err != nil {
		t.Fatal(err)
	}
	b := pack(t, root, time.Unix(1700000000, 0))
	if !bytes.Equal(a, b) {
		t.Fatal("packing the same tree twice gave different archives")
	}
	c := pack(t, root, time.Unix(1700000001, 0))
	if bytes.Equal(a, c) {
		t.Fatal("the epoch does not reach the archive")
	}
}

// TestGNUCpioReadsIt extracts the archive with GNU cpio, an independent reader.
func TestGNUCpioReadsIt(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("cpio not installed")
		}
		t.Skip("cpio not installed")
	}
	root := makeTree(t)
	data := pack(t, root, time.Unix(1700000000, 0))
	out := t.TempDir()
	cmd := exec.Command("cpio", "-i", "-d", "--no-absolute-filenames", "--quiet", "-t", "-v")
	cmd.Dir = out
	cmd.Stdin = bytes.NewReader(data)
	listing, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, listing)
	}
	for _, want := range []string{"dev/console", "etc/ssh/key", "link -> etc/hostname", "-rwsr-xr-x", "crw-------"} {
		if !bytes.Contains(listing, []byte(want)) {
			t.Errorf("listing lacks %q:\n%s", want, listing)
		}
	}
	cmd = exec.Command("cpio", "-i", "-d", "--no-absolute-filenames", "--quiet", "-u")
	cmd.Dir = out
	cmd.Stdin = bytes.NewReader(data)
	if msg, err := cmd.CombinedOutput(); err != nil && !bytes.Contains(msg, []byte("dev/console")) {
		t.Fatalf("cpio -i: %v\n%s", err, msg)
	}
	got, err := os.ReadFile(filepath.Join(out, "etc/hostname"))
	if err != nil || string(got) != "hyperos\n" {
		t.Fatalf("etc/hostname = %q, %v", got, err)
	}
	if fi, err := os.Stat(filepath.Join(out, "etc/ssh/key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("etc/ssh/key mode: %v %v", fi, err)
	}
	if target, err := os.Readlink(filepath.Join(out, "link")); err != nil || target != "etc/hostname" {
		t.Fatalf("link = %q, %v", target, err)
	}
}

func TestRejectsBadNames(t *testing.T) {
	w := NewWriter(&bytes.Buffer{}, time.Unix(0, 0))
	for _, name := range []string{"", "/abs", "a\x00b"} {
		if err := w.WriteHeader(Header{Name: name}); err == nil {
			t.Errorf("name %q accepted", name)
		}
	}
}
