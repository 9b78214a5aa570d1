package vm

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestCreateDisk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "data.img")
	if err := CreateDisk(path, 0); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != DefaultDiskSize || fi.Mode().Perm() != 0o600 {
		t.Fatalf("size %d mode %v", fi.Size(), fi.Mode())
	}
	// Blocks in use, where the platform's stat has them (every unix).
	if v := reflect.Indirect(reflect.ValueOf(fi.Sys())); v.Kind() == reflect.Struct {
		if b := v.FieldByName("Blocks"); b.IsValid() && b.Int()*512 >= 1<<20 {
			t.Fatalf("disk is not sparse: %d blocks", b.Int())
		}
	}

	// An existing disk is kept as it is, content and size.
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("state"), 4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := CreateDisk(path, 1<<20); err != nil {
		t.Fatal(err)
	}
	fi, _ = os.Stat(path)
	b := make([]byte, 5)
	f, _ = os.Open(path)
	f.ReadAt(b, 4096)
	f.Close()
	if fi.Size() != DefaultDiskSize || string(b) != "state" {
		t.Fatalf("existing disk changed: size %d content %q", fi.Size(), b)
	}

	small := filepath.Join(t.TempDir(), "small.img")
	if err := CreateDisk(small, 1<<20); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(small); fi.Size() != 1<<20 {
		t.Fatalf("size %d", fi.Size())
	}
	if err := CreateDisk(filepath.Join(t.TempDir(), "odd.img"), 1000); err == nil {
		t.Fatal("accepted a size that is not whole sectors")
	}
	if err := CreateDisk(t.TempDir(), 1<<20); err == nil {
		t.Fatal("accepted a directory as a disk")
	}
}
