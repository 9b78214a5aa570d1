package lazyimage

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func require(t *testing.T, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("prerequisite missing in CI: %s", why)
	}
	t.Skip(why)
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestExt4ThroughFUSEAndLoop is the path systemd-nspawn --image takes: a real
// ext4 image, served lazily through FUSE, attached to a loop device and mounted.
// Reading one file must fetch a small part of the image; a file written through
// the mount must survive unmounting and a fresh Image over the same directory.
func TestExt4ThroughFUSEAndLoop(t *testing.T) {
	_, errF := os.Stat("/dev/fuse")
	_, errL := exec.LookPath("losetup")
	_, errM := exec.LookPath("mkfs.ext4")
	require(t, os.Geteuid() == 0 && errF == nil && errL == nil && errM == nil, "needs root, /dev/fuse, losetup and mkfs.ext4")

	// An image with a known file, made by mkfs.ext4 -d from a directory.
	tree := t.TempDir()
	payload := bytes.Repeat([]byte("hyperos live boot "), 4000)
	os.MkdirAll(filepath.Join(tree, "etc"), 0o755)
	os.WriteFile(filepath.Join(tree, "etc", "os-release"), payload, 0o644)
	big := make([]byte, 8<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	os.WriteFile(filepath.Join(tree, "big.bin"), big, 0o644)
	imgPath := filepath.Join(t.TempDir(), "image.img")
	sh(t, "truncate", "-s", "64M", imgPath)
	sh(t, "mkfs.ext4", "-q", "-F", "-d", tree, imgPath)
	raw, err := os.ReadFile(imgPath)
	if err != nil {
		t.Fatal(err)
	}
	src := &memSource{data: raw, perBlk: map[int64]int{}, blkSize: 64 << 10}
	state := t.TempDir()

	run := func(check func(mnt string)) {
		im, err := Open(src, Options{Dir: state})
		if err != nil {
			t.Fatal(err)
		}
		fuseDir := t.TempDir()
		srv, err := Mount(im, fuseDir, "image.img")
		if err != nil {
			t.Fatal(err)
		}
		loop := sh(t, "losetup", "-f", "--show", filepath.Join(fuseDir, "image.img"))
		mnt := t.TempDir()
		sh(t, "mount", "-t", "ext4", loop, mnt)
		func() {
			defer func() {
				sh(t, "umount", mnt)
				sh(t, "losetup", "-d", loop)
				srv.Unmount()
				if err := im.Close(); err != nil {
					t.Error(err)
				}
			}()
			check(mnt)
		}()
	}

	run(func(mnt string) {
		got, err := os.ReadFile(filepath.Join(mnt, "etc", "os-release"))
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("read through the lazy image: %v", err)
		}
		if f := src.bytes.Load(); f > int64(len(raw))/4 {
			t.Fatalf("reading one small file fetched %d of %d bytes", f, len(raw))
		}
		t.Logf("mount + one 72 KB file fetched %d KB of a %d KB image", src.bytes.Load()>>10, len(raw)>>10)
		if err := os.WriteFile(filepath.Join(mnt, "written-in-container"), []byte("kept"), 0o644); err != nil {
			t.Fatal(err)
		}
		sh(t, "sync")
	})
	run(func(mnt string) {
		got, err := os.ReadFile(filepath.Join(mnt, "written-in-container"))
		if err != nil || string(got) != "kept" {
			t.Fatalf("write lost across remount: %q %v", got, err)
		}
		gotBig, err := os.ReadFile(filepath.Join(mnt, "big.bin"))
		if err != nil || !bytes.Equal(gotBig, big) {
			t.Fatalf("big file: %v", err)
		}
	})
	// The shared image itself was never written.
	again, _ := os.ReadFile(imgPath)
	if !bytes.Equal(again, raw) || !bytes.Equal(src.data, raw) {
		t.Fatal("the source image changed")
	}
}
