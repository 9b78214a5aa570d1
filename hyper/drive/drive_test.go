package drive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/hyperos/hyperos/hyper/bee/memcore"
)

func TestPutReaderSameAsPut(t *testing.T) {
	ctx := context.Background()
	data := content(9, 200_001)
	db1, bl1 := memcore.New(), memcore.New()
	db2, bl2 := memcore.New(), memcore.New()
	a, b := New(db1, bl1, nil), New(db2, bl2, nil)
	if err := a.Put(ctx, "/f", data, &PutOptions{Executable: true}); err != nil {
		t.Fatal(err)
	}
	// A reader handing out odd-sized pieces must give the same blocks.
	r := iotest.HalfReader(bytes.NewReader(data))
	if err := b.PutReader(ctx, "f", r, &PutOptions{Executable: true}); err != nil {
		t.Fatal(err)
	}
	for name, pair := range map[string][2]*memcore.Core{"db": {db1, db2}, "blobs": {bl1, bl2}} {
		x, y := pair[0].Blocks(), pair[1].Blocks()
		if len(x) != len(y) {
			t.Fatalf("%s: %d vs %d blocks", name, len(x), len(y))
		}
		for i := range x {
			if !bytes.Equal(x[i], y[i]) {
				t.Fatalf("%s block %d differs", name, i)
			}
		}
	}
	// A failing reader writes no entry.
	err := b.PutReader(ctx, "/g", iotest.ErrReader(errors.New("boom")), nil)
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("PutReader with a failing reader: %v", err)
	}
	if ok, _ := b.Exists(ctx, "/g"); ok {
		t.Fatal("entry written for a failed stream")
	}
}

// Reading part of a large file fetches only the blocks it covers (plus
// the db blocks of the lookup).
func TestOpenFetchesOnlyCoveringBlocks(t *testing.T) {
	ctx := context.Background()
	db, bl := memcore.New(), memcore.New()
	d := New(db, bl, nil)
	data := content(3, 10<<16+5)
	if err := d.Put(ctx, "/big", data, nil); err != nil {
		t.Fatal(err)
	}
	r, err := d.Open(ctx, "/big")
	if err != nil {
		t.Fatal(err)
	}
	before := bl.Gets.Load()
	buf := make([]byte, 100)
	if _, err := r.ReadAt(buf, 5<<16-50); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, data[5<<16-50:5<<16+50]) {
		t.Fatal("wrong bytes")
	}
	if n := bl.Gets.Load() - before; n != 2 {
		t.Fatalf("fetched %d blobs blocks for a read spanning 2", n)
	}
	if _, err := r.Seek(10<<16, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	tail, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(tail, data[10<<16:]) {
		t.Fatalf("tail: %v", err)
	}
}

func TestEntriesAndErrors(t *testing.T) {
	ctx := context.Background()
	d := New(memcore.New(), memcore.New(), nil)
	if err := d.Put(ctx, "/", []byte("x"), nil); !errors.Is(err, ErrInvalidPath) {
		t.Fatalf("put /: %v", err)
	}
	if _, err := d.Entry(ctx, "/a/../.."); !errors.Is(err, ErrInvalidPath) {
		t.Fatalf("entry with too many '..': %v", err)
	}
	if err := d.Symlink(ctx, "/l", "", nil); err == nil {
		t.Fatal("empty symlink target accepted")
	}
	blobsBefore := d.Blobs().Core().Length()
	if err := d.Put(ctx, "/m", []byte("x"), &PutOptions{Metadata: json.RawMessage(`{"a":`)}); err == nil {
		t.Fatal("invalid metadata accepted")
	}
	if d.Blobs().Core().Length() != blobsBefore {
		t.Fatal("content written before the metadata was rejected")
	}
	if _, err := d.Open(ctx, "/missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open missing: %v", err)
	}
	if b, err := d.Get(ctx, "/missing"); b != nil || err != nil {
		t.Fatalf("get missing: %q %v", b, err)
	}

	meta := json.RawMessage(`{"mode": 493, "tags":["x"]}`)
	if err := d.Put(ctx, "bin/run", []byte("#!/bin/sh\n"), &PutOptions{Executable: true, Metadata: meta}); err != nil {
		t.Fatal(err)
	}
	if err := d.Symlink(ctx, "/bin/alias", "/bin/run", nil); err != nil {
		t.Fatal(err)
	}
	if err := d.PutEntry(ctx, "/bare", Value{Metadata: json.RawMessage(`"hello"`)}); err != nil {
		t.Fatal(err)
	}
	e, err := d.Entry(ctx, "/bin/run")
	if err != nil || e == nil || !e.Value.Executable || string(e.Value.Metadata) != `{"mode":493,"tags":["x"]}` {
		t.Fatalf("entry: %+v %v", e, err)
	}
	l, err := d.Entry(ctx, "/bin/alias")
	if err != nil || !l.Value.IsSymlink() || l.Value.Blob != nil {
		t.Fatalf("symlink: %+v %v", l, err)
	}
	// Symlinks are not followed by Get, and are by Resolve.
	if b, err := d.Get(ctx, "/bin/alias"); b != nil || err != nil {
		t.Fatalf("get symlink: %q %v", b, err)
	}
	res, err := d.Resolve(ctx, "/bin/alias")
	if err != nil || res.Key != "/bin/run" {
		t.Fatalf("resolve: %+v %v", res, err)
	}
	r, err := d.Open(ctx, "/bare")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(r); err != nil || len(b) != 0 {
		t.Fatalf("entry without a blob reads %q %v", b, err)
	}
	names, err := d.Readdir(ctx, "/")
	if err != nil || strings.Join(names, ",") != "bare,bin" {
		t.Fatalf("readdir: %q %v", names, err)
	}
	// Checkouts are read-only and see the past.
	old := d.Checkout(d.Version() - 1)
	if err := old.Put(ctx, "/x", nil, nil); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("put on checkout: %v", err)
	}
	if _, err := old.Batch(); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("batch on checkout: %v", err)
	}
	if ok, _ := old.Exists(ctx, "/bare"); ok {
		t.Fatal("checkout sees a later entry")
	}
	if err := d.Del(ctx, "/bin/run"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := d.Exists(ctx, "/bin/run"); ok {
		t.Fatal("deleted entry still there")
	}
	// ListFunc stops on the callback's error.
	stop := errors.New("stop")
	n := 0
	err = d.ListFunc(ctx, "/", true, func(Entry) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("ListFunc: %v after %d", err, n)
	}
}
