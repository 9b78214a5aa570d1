//go:build linux

// Package imagetest gives end-to-end tests a small bootable Debian container
// image, the kind `hyperos image create` makes for a user. It is built once
// (mmdebstrap, a few minutes) and cached under build/cache/container/RECIPE; test
// packages that run in parallel share one build through a file lock.
package imagetest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/hyperos/hyperos/app/imagecreate"
	"github.com/hyperos/hyperos/vm/vmtest"
)

// recipe names the cached image's build; change it when what
// imagecreate.Create makes changes, so that tests stop using an old image.
const recipe = "4k"

// Debian returns the path of the cached Debian image (systemd, hostname
// "debian"), building it first if needed.
func Debian(t testing.TB) string {
	t.Helper()
	vmtest.Require(t, os.Geteuid() == 0, "making a container image needs root")
	_, err := exec.LookPath("mmdebstrap")
	vmtest.Require(t, err == nil, "mmdebstrap is not installed")
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "build", "cache", "container")
	img := filepath.Join(dir, recipe, "debian.img")
	if err := os.MkdirAll(filepath.Dir(img), 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(img); err == nil {
		return img
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	tmp := img + ".new"
	os.Remove(tmp)
	if _, err := imagecreate.Create(ctx, imagecreate.Options{Out: tmp, Hostname: "debian", DebCache: filepath.Join(dir, "debs"),
		Progress: func(s string) { t.Log(s) }}); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, img); err != nil {
		t.Fatal(err)
	}
	return img
}
