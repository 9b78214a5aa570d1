package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHomeMovesEverything(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HYPEROS_HOME", home)
	p, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{p.ConfigFile(), p.Key(), p.DataDisk(), p.StatusFile(), p.AccelNote(), p.LogDir()} {
		if !strings.HasPrefix(f, home+string(filepath.Separator)) {
			t.Errorf("%s is outside HYPEROS_HOME", f)
		}
	}
}

func TestSaveLoad(t *testing.T) {
	t.Setenv("HYPEROS_HOME", t.TempDir())
	p, _ := Default()
	if _, err := Load(p); err != ErrNotInitialized {
		t.Fatalf("load before init: %v", err)
	}
	if err := Save(p, Settings{Name: "x", MemoryMB: 2048}); err != nil {
		t.Fatal(err)
	}
	s, err := Load(p)
	if err != nil || s.Name != "x" || s.MemoryMB != 2048 || s.CPUs != 2 || s.DiskGB != 20 {
		t.Fatalf("%+v %v", s, err)
	}
	if fi, _ := os.Stat(p.ConfigFile()); fi.Mode().Perm() != 0o600 {
		t.Fatalf("config mode %v", fi.Mode())
	}
	os.WriteFile(p.ConfigFile(), []byte("{"), 0o600)
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged config: %v", err)
	}
}

func mkImage(t *testing.T, dir string) {
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "vmlinuz"), []byte("k"), 0o644)
	os.WriteFile(filepath.Join(dir, "initrd.img"), []byte("i"), 0o644)
}

func TestFindImageOrder(t *testing.T) {
	s := Settings{Arch: "amd64"}
	root := t.TempDir()
	// A source checkout with a built image, the binary installed elsewhere.
	checkout := filepath.Join(root, "src")
	os.MkdirAll(filepath.Join(checkout, "image"), 0o755)
	os.WriteFile(filepath.Join(checkout, "image", "build.sh"), nil, 0o755)
	sub := filepath.Join(checkout, "cmd", "hyperos")
	os.MkdirAll(sub, 0o755)
	exe := filepath.Join(root, "prefix", "bin", "hyperos")
	t.Setenv("HYPEROS_IMAGE_DIR", "")

	if _, err := FindImage(s, exe, sub); err == nil || !strings.Contains(err.Error(), "make image") {
		t.Fatalf("no image yet: %v", err)
	}
	mkImage(t, filepath.Join(checkout, "build", "hyperos-amd64"))
	img, err := FindImage(s, exe, sub)
	if err != nil || img.From != "source checkout" {
		t.Fatalf("checkout: %+v %v", img, err)
	}
	mkImage(t, filepath.Join(root, "prefix", "share", "hyperos", "amd64"))
	if img, err = FindImage(s, exe, sub); err != nil || img.From != "installed" {
		t.Fatalf("installed beats checkout: %+v %v", img, err)
	}
	env := filepath.Join(root, "env")
	mkImage(t, env)
	t.Setenv("HYPEROS_IMAGE_DIR", env)
	if img, err = FindImage(s, exe, sub); err != nil || img.From != "HYPEROS_IMAGE_DIR" {
		t.Fatalf("env beats installed: %+v %v", img, err)
	}
	s.Kernel, s.Initrd = filepath.Join(env, "vmlinuz"), filepath.Join(env, "initrd.img")
	if img, err = FindImage(s, exe, sub); err != nil || img.From != "settings" {
		t.Fatalf("settings beat all: %+v %v", img, err)
	}
	s.Initrd = ""
	if _, err = FindImage(s, exe, sub); err == nil {
		t.Fatal("a kernel without an initrd was accepted")
	}
}
