package drive

import (
	"context"
	"io"
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/hyperos/hyperos/hyper/bee/memcore"
)

func TestFS(t *testing.T) {
	ctx := context.Background()
	d := New(memcore.New(), memcore.New(), nil)
	files := map[string][]byte{
		"/README.md":      []byte("read me\n"),
		"/src/main.go":    []byte("package main\n"),
		"/src/lib/a.txt":  content(1, 70000),
		"/bin/tool":       []byte("#!/bin/sh\n"),
		"/empty":          {},
		"/docs/x/y/z.txt": []byte("z"),
		"/unicode/ñ☃.txt": []byte("snow"),
	}
	for p, b := range files {
		if err := d.Put(ctx, p, b, &PutOptions{Executable: p == "/bin/tool"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Symlink(ctx, "/link", "/README.md", nil); err != nil {
		t.Fatal(err)
	}
	fsys := d.FS(ctx)
	if err := fstest.TestFS(fsys, "README.md", "src/main.go", "src/lib/a.txt", "bin/tool", "empty", "docs/x/y/z.txt", "unicode/ñ☃.txt", "link"); err != nil {
		t.Fatal(err)
	}
	b, err := fs.ReadFile(fsys, "src/lib/a.txt")
	if err != nil || string(b) != string(files["/src/lib/a.txt"]) {
		t.Fatalf("ReadFile: %v", err)
	}
	st, err := fs.Stat(fsys, "bin/tool")
	if err != nil || st.Mode() != 0o755 || st.Size() != int64(len(files["/bin/tool"])) {
		t.Fatalf("stat: %v %v", st, err)
	}
	lst, err := fs.Lstat(fsys, "link")
	if err != nil || lst.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("lstat link: %v %v", lst, err)
	}
	if target, err := fs.ReadLink(fsys, "link"); err != nil || target != "/README.md" {
		t.Fatalf("readlink: %q %v", target, err)
	}
	if _, err := fsys.Open("nope"); !errorsIsNotExist(err) {
		t.Fatalf("open missing: %v", err)
	}
	f, err := fsys.Open("src/lib/a.txt")
	if err != nil {
		t.Fatal(err)
	}
	ra := f.(io.ReaderAt)
	buf := make([]byte, 10)
	if _, err := ra.ReadAt(buf, 65530); err != nil || string(buf) != string(files["/src/lib/a.txt"][65530:65540]) {
		t.Fatalf("ReadAt: %v", err)
	}
}

func errorsIsNotExist(err error) bool {
	pe, ok := err.(*fs.PathError)
	return ok && pe.Err == fs.ErrNotExist
}

// The Node-written fixture drive, through io/fs.
func TestFSOnNodeDrive(t *testing.T) {
	f := loadFixture(t)
	d := New(coreOf(t, f.DBBlocks), coreOf(t, f.BlobBlocks), nil)
	fsys := d.FS(context.Background())
	// The root holds dangling and looping symlinks on purpose, which
	// fstest cannot open, so check the folders without them.
	for dir, want := range map[string]string{"docs": "x/y/z.txt", "many": "sub/deeper/file", "src": "main.go", "unicode": "ñoño ☃.txt"} {
		sub, err := fs.Sub(fsys, dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := fstest.TestFS(sub, want); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
	}
	for _, name := range []string{"README.md", "big.bin", "batch/two", "abs-link", "empty.txt"} {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			t.Fatal(err)
		}
		st, err := fs.Stat(fsys, name)
		if err != nil || st.Size() != int64(len(data)) {
			t.Fatalf("%s: read %d bytes, stat says %v (%v)", name, len(data), st, err)
		}
	}
	if _, err := fsys.Open("loop1"); err == nil {
		t.Fatal("looping symlink opened")
	}
	names, err := fs.ReadDir(fsys, ".")
	if err != nil || len(names) != 17 { // 16 names plus fresh-dedup.bin
		t.Fatalf("root: %d entries %v", len(names), err)
	}
}
