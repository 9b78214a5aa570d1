package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Skipf("host file missing: %v", err)
	}
	defer in.Close()
	os.MkdirAll(filepath.Dir(dst), 0o755)
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	out.Close()
}

// TestPruneKeepsWhatIsLinked uses the host's own ELF files: /usr/bin/true needs
// libc, nothing needs libz, and a kept soname survives unreferenced.
func TestPruneKeepsWhatIsLinked(t *testing.T) {
	root := t.TempDir()
	lib := "usr/lib/x86_64-linux-gnu"
	if _, err := os.Stat("/" + lib + "/libc.so.6"); err != nil {
		t.Skip("not an x86_64 Debian host")
	}
	copyFile(t, "/usr/bin/true", filepath.Join(root, "usr/bin/true"))
	for _, l := range []string{"libc.so.6", "libz.so.1", "libpthread.so.0"} {
		real, err := filepath.EvalSymlinks("/" + lib + "/" + l)
		if err != nil {
			t.Skipf("host lacks %s", l)
		}
		copyFile(t, real, filepath.Join(root, lib, filepath.Base(real)))
		if filepath.Base(real) != l {
			os.Symlink(filepath.Base(real), filepath.Join(root, lib, l))
		}
	}
	removed, freed, err := prune(root, []string{"libpthread.so"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || filepath.Base(removed[0])[:7] != "libz.so" || freed == 0 {
		t.Fatalf("removed %v (%d bytes)", removed, freed)
	}
	for _, keep := range []string{"libc.so.6", "libpthread.so.0"} {
		if _, err := os.Stat(filepath.Join(root, lib, keep)); err != nil {
			t.Errorf("%s removed: %v", keep, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(root, lib, "libz.so.1")); !os.IsNotExist(err) {
		t.Errorf("dangling libz symlink left: %v", err)
	}
}
