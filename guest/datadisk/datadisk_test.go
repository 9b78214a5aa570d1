package datadisk

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func disk(t *testing.T, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

func classify(t *testing.T, p string) Kind {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	k, err := Classify(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestClassify(t *testing.T) {
	blank := disk(t, 64<<20)
	if k := classify(t, blank); k != Blank {
		t.Fatalf("sparse disk: %v", k)
	}
	// Data near the end (a GPT backup header, say) makes the disk not blank.
	tail := disk(t, 64<<20)
	f, _ := os.OpenFile(tail, os.O_WRONLY, 0)
	f.WriteAt([]byte("EFI PART"), 64<<20-512)
	f.Close()
	if k := classify(t, tail); k != Other {
		t.Fatalf("data at the end: %v", k)
	}
	head := disk(t, 64<<20)
	f, _ = os.OpenFile(head, os.O_WRONLY, 0)
	f.WriteAt([]byte{0x55, 0xaa}, 510)
	f.Close()
	if k := classify(t, head); k != Other {
		t.Fatalf("partition table: %v", k)
	}
	small := disk(t, 4096)
	if k := classify(t, small); k != Blank {
		t.Fatalf("tiny blank disk: %v", k)
	}
}

func TestClassifyRealExt4(t *testing.T) {
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("mkfs.ext4 missing (apt-get install e2fsprogs)")
		}
		t.Skip("mkfs.ext4 missing")
	}
	p := disk(t, 64<<20)
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", p).CombinedOutput(); err != nil {
		t.Fatalf("mkfs: %v %s", err, out)
	}
	if k := classify(t, p); k != Ext4 {
		t.Fatalf("ext4 disk: %v", k)
	}
}

func TestPrepareRefusesUnknownData(t *testing.T) {
	p := disk(t, 16<<20)
	f, _ := os.OpenFile(p, os.O_WRONLY, 0)
	f.WriteAt([]byte("precious"), 1<<20)
	f.Close()
	err := Prepare(context.Background(), p, t.TempDir(), t.Logf)
	if err == nil {
		t.Fatal("a disk holding data was prepared")
	}
	b := make([]byte, 8)
	f, _ = os.Open(p)
	f.ReadAt(b, 1<<20)
	f.Close()
	if string(b) != "precious" {
		t.Fatal("data was overwritten")
	}
}

func TestFindBySerial(t *testing.T) {
	sys := t.TempDir()
	os.MkdirAll(filepath.Join(sys, "block/vda"), 0o755)
	os.MkdirAll(filepath.Join(sys, "block/vdb"), 0o755)
	os.WriteFile(filepath.Join(sys, "block/vda/serial"), []byte("other\n"), 0o644)
	os.WriteFile(filepath.Join(sys, "block/vdb/serial"), []byte("hyperos-data\n"), 0o644)
	dev, err := Find(context.Background(), sys, Serial, time.Second)
	if err != nil || dev != "/dev/vdb" {
		t.Fatalf("Find = %q, %v", dev, err)
	}
	// No virtio disk pending: no wait, no device.
	start := time.Now()
	dev, err = Find(context.Background(), t.TempDir(), Serial, time.Minute)
	if err != nil || dev != "" || time.Since(start) > 30*time.Second {
		t.Fatalf("Find on empty sysfs = %q, %v", dev, err)
	}
}
