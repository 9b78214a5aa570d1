package share

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hyperos/hyperos/hyper/core"
	"github.com/hyperos/hyperos/hyper/corestore"
	"github.com/hyperos/hyperos/hyper/drive"
	"github.com/hyperos/hyperos/hyper/link"
	"github.com/hyperos/hyperos/hyper/peer"
)

// pattern is the deterministic content the Node helper writes too.
func pattern(seed, size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(seed*131 + i*7 + (i>>8)*13)
	}
	return b
}

func writeTree(t *testing.T, dir string, files map[string][]byte, exec ...string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range exec {
		if err := os.Chmod(filepath.Join(dir, filepath.FromSlash(name)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// seeder publishes src from a store in its own dir and serves it.
type seeder struct {
	st   *corestore.Store
	d    *Drive
	addr string
	stop func()
}

func startSeeder(t *testing.T, dir, src string) *seeder {
	t.Helper()
	st, err := corestore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(src)
	d, err := OpenWritable(st, DriveNamespace(abs))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Publish(context.Background(), d, abs); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- peer.Serve(ctx, ln, st, nil) }()
	s := &seeder{st: st, d: d, addr: ln.Addr().String()}
	var stopped bool
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		st.Close()
	}
	t.Cleanup(s.stop)
	return s
}

func dial(t *testing.T, st *corestore.Store, addrs ...string) []*peer.Conn {
	t.Helper()
	var conns []*peer.Conn
	for _, a := range addrs {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := peer.Dial(ctx, a, st, nil)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns = append(conns, c)
	}
	return conns
}

// checkTree compares the files under dir with want (name → content).
func checkTree(t *testing.T, dir string, want map[string][]byte) {
	t.Helper()
	got := map[string]bool{}
	filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() || de.Type()&fs.ModeSymlink != 0 {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		got[filepath.ToSlash(rel)] = true
		return nil
	})
	for name, data := range want {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !bytes.Equal(b, data) {
			t.Errorf("%s: %d bytes differ from the %d shared", name, len(b), len(data))
		}
		delete(got, name)
	}
	for name := range got {
		t.Errorf("unexpected file %s", name)
	}
}

func TestShareGetGoToGo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	files := map[string][]byte{
		"a.txt":            []byte("hello\n"),
		"bin/run":          pattern(1, 3000),
		"deep/er/big.bin":  pattern(2, 1<<20+5),
		"deep/empty":       nil,
		"ü space/note.txt": pattern(3, 100),
	}
	writeTree(t, src, files, "bin/run")
	if err := os.Symlink("../a.txt", filepath.Join(src, "deep", "toa")); err != nil {
		t.Fatal(err)
	}
	s := startSeeder(t, filepath.Join(tmp, "seed"), src)

	st, err := corestore.Open(filepath.Join(tmp, "get"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	conns := dial(t, st, s.addr)
	d, err := OpenRemote(ctx, st, s.d.Key(), conns)
	if err != nil {
		t.Fatal(err)
	}
	var last Progress
	dest := filepath.Join(tmp, "out")
	res, err := Fetch(ctx, d, link.Link{Key: s.d.Key(), Path: "/"}, dest, &FetchOptions{Conns: conns, Progress: func(p Progress) { last = p }})
	if err != nil {
		t.Fatal(err)
	}
	checkTree(t, dest, files)
	if res.Files != len(files) || last.BytesDone != last.Bytes || last.FilesDone != len(files) {
		t.Errorf("result %+v, last progress %+v", res, last)
	}
	if fi, err := os.Stat(filepath.Join(dest, "bin", "run")); err != nil || (runtime.GOOS != "windows" && fi.Mode().Perm() != 0o755) {
		t.Errorf("executable: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(dest, "a.txt")); err != nil || (runtime.GOOS != "windows" && fi.Mode().Perm() != 0o644) {
		t.Errorf("plain file mode: %v %v", fi.Mode(), err)
	}
	if target, err := os.Readlink(filepath.Join(dest, "deep", "toa")); err != nil || target != filepath.FromSlash("../a.txt") {
		t.Errorf("symlink: %q %v", target, err)
	}

	// One file, into an existing directory and under a new name.
	one := link.Link{Key: s.d.Key(), Path: "/deep/er/big.bin"}
	if res, err := Fetch(ctx, d, one, tmp, nil); err != nil || res.Dest != filepath.Join(tmp, "big.bin") {
		t.Fatalf("file into dir: %+v %v", res, err)
	}
	if res, err := Fetch(ctx, d, one, filepath.Join(tmp, "renamed"), nil); err != nil || res.Bytes != 1<<20+5 {
		t.Fatalf("file to name: %+v %v", res, err)
	}
	if _, err := Fetch(ctx, d, link.Link{Key: s.d.Key(), Path: "/nope"}, filepath.Join(tmp, "x"), nil); !errors.Is(err, drive.ErrNotFound) {
		t.Fatalf("missing path: %v", err)
	}
}

// TestReshare: sharing the same path again keeps the key, writes a new
// version only for real changes, and a reader following the link sees it.
func TestReshare(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	writeTree(t, src, map[string][]byte{"keep": pattern(1, 70000), "change": []byte("v1"), "drop": []byte("x")})
	st, err := corestore.Open(filepath.Join(tmp, "store"), nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := OpenWritable(st, DriveNamespace(src))
	if err != nil {
		t.Fatal(err)
	}
	r1, err := Publish(ctx, d, src)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Added != 3 || r1.Link.Path != "/" {
		t.Fatalf("first publish: %+v", r1)
	}
	r2, err := Publish(ctx, d, src)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Version != r1.Version || r2.Added+r2.Updated+r2.Deleted != 0 {
		t.Fatalf("unchanged publish wrote: %+v after %+v", r2, r1)
	}
	st.Close()

	writeTree(t, src, map[string][]byte{"change": []byte("v2"), "new": []byte("n")})
	os.Remove(filepath.Join(src, "drop"))
	st, err = corestore.Open(filepath.Join(tmp, "store"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d, err = OpenWritable(st, DriveNamespace(src))
	if err != nil {
		t.Fatal(err)
	}
	r3, err := Publish(ctx, d, src)
	if err != nil {
		t.Fatal(err)
	}
	if r3.Link.Key != r1.Link.Key || r3.Version <= r1.Version || r3.Added != 1 || r3.Updated != 1 || r3.Deleted != 1 {
		t.Fatalf("re-share: %+v, first %+v", r3, r1)
	}
	out := filepath.Join(tmp, "out")
	if _, err := Fetch(ctx, d, r3.Link, out, nil); err != nil {
		t.Fatal(err)
	}
	checkTree(t, out, map[string][]byte{"keep": pattern(1, 70000), "change": []byte("v2"), "new": []byte("n")})

	// A symlink to the tree shares the tree.
	via := filepath.Join(tmp, "via")
	if err := os.Symlink(src, via); err != nil {
		t.Fatal(err)
	}
	vd, err := OpenWritable(st, DriveNamespace(via))
	if err != nil {
		t.Fatal(err)
	}
	if rv, err := Publish(ctx, vd, via); err != nil || rv.Added != 3 {
		t.Fatalf("share through a symlink: %+v %v", rv, err)
	}

	// A single file is shared as /<name>.
	f := filepath.Join(tmp, "single.iso")
	os.WriteFile(f, []byte("iso"), 0o644)
	fd, err := OpenWritable(st, DriveNamespace(f))
	if err != nil {
		t.Fatal(err)
	}
	rf, err := Publish(ctx, fd, f)
	if err != nil || rf.Link.Path != "/single.iso" || rf.Link.Key == r1.Link.Key {
		t.Fatalf("file share: %+v %v", rf, err)
	}
}

// TestResume stops a fetch halfway, reopens the store as a new process
// would, and finishes from another seeder; then reads it all offline.
func TestResume(t *testing.T) {
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	files := map[string][]byte{"big": pattern(5, 4<<20), "small": []byte("s")}
	writeTree(t, src, files)
	s := startSeeder(t, filepath.Join(tmp, "seed"), src)
	key := s.d.Key()
	l := link.Link{Key: key, Path: "/"}
	getDir := filepath.Join(tmp, "get")
	dest := filepath.Join(tmp, "out")

	st, err := corestore.Open(getDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d, err := OpenRemote(ctx, st, key, dial(t, st, s.addr))
	if err != nil {
		t.Fatal(err)
	}
	// Stop once a quarter of the blocks are in: progress callbacks are
	// throttled, block events are not.
	var got atomic.Int64
	d.Blobs.OnEvent(func(ev core.Event) {
		if ev.HasBlock && got.Add(1) == int64(d.Blobs.Length()/4) {
			cancel()
		}
	})
	_, err = Fetch(ctx, d, l, dest, &FetchOptions{ReadAhead: 4})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted fetch: %v", err)
	}
	had := countBlocks(d.Blobs)
	if had == 0 || had == d.Blobs.Length() {
		t.Fatalf("after the interruption the store holds %d of %d blocks", had, d.Blobs.Length())
	}
	if _, err := os.Stat(filepath.Join(dest, "big")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a partial file is visible under its name: %v", err)
	}
	st.Close()

	st, err = corestore.Open(getDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	blobsKey := d.Blobs.Key()
	bc, err := st.Get(blobsKey)
	if err != nil {
		t.Fatal(err)
	}
	// Replication goes on until the store closes, so blocks in flight when
	// had was counted may have landed since; none counted may be lost.
	if n := countBlocks(bc); n < had || n == bc.Length() {
		t.Fatalf("reopened store holds %d of %d blocks, had %d", n, bc.Length(), had)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel2()
	conns := dial(t, st, s.addr)
	d, err = OpenRemote(ctx2, st, key, conns)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Fetch(ctx2, d, l, dest, &FetchOptions{Conns: conns}); err != nil {
		t.Fatal(err)
	}
	checkTree(t, dest, files)
	s.stop()
	st.Close()

	// Everything is verified and local now: no peer needed.
	st, err = corestore.Open(getDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d, err = OpenRemote(ctx2, st, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	dest2 := filepath.Join(tmp, "offline")
	if _, err := Fetch(ctx2, d, l, dest2, nil); err != nil {
		t.Fatal(err)
	}
	checkTree(t, dest2, files)
}

func countBlocks(c *corestore.Core) uint64 {
	var n uint64
	for i := uint64(0); i < c.Length(); i++ {
		if c.Has(i) {
			n++
		}
	}
	return n
}

// TestFetchStaysInDest writes a drive with hostile names and links (as a
// malicious writer could, bypassing Hyperdrive's normalisation) and checks
// that nothing lands outside the destination.
func TestFetchStaysInDest(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	st := corestore.NewMemory([32]byte{7}, nil)
	d, err := OpenWritable(st, corestore.DefaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, "/ok/file", []byte("fine"), nil); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"/ok/up":       "../../../../etc/passwd",
		"/ok/abs-in":   "/ok/file",
		"/ok/rel-in":   "file",
		"/ok/to-root":  "/",
		"/ok/dotdot":   "..",
		"/ok/nul":      "fi\x00le",
		"/ok/backs":    `..\..\x`,
		"/ok/deep/esc": "../../..",
	} {
		if err := d.Symlink(ctx, name, target, nil); err != nil {
			t.Fatal(err)
		}
	}
	dest := filepath.Join(tmp, "dest")
	res, err := Fetch(ctx, d, link.Link{Key: d.Key(), Path: "/ok"}, dest, nil)
	if err != nil {
		t.Fatal(err)
	}
	skipped := strings.Join(res.Skipped, "\n")
	for _, name := range []string{"/ok/up", "/ok/to-root", "/ok/dotdot", "/ok/nul", "/ok/backs", "/ok/deep/esc"} {
		if !strings.Contains(skipped, name+" ->") {
			t.Errorf("%s was not refused; skipped:\n%s", name, skipped)
		}
	}
	for _, name := range []string{"abs-in", "rel-in"} {
		b, err := os.ReadFile(filepath.Join(dest, name))
		if err != nil || string(b) != "fine" {
			t.Errorf("%s: %q %v", name, b, err)
		}
	}

	// Raw db keys that Hyperdrive itself would never write.
	for _, bad := range []string{"/../escape", "/a/../../escape", "/a\\..\\..\\escape"} {
		st := corestore.NewMemory([32]byte{8}, nil)
		d, err := OpenWritable(st, corestore.DefaultNamespace)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Put(ctx, "/fine", []byte("x"), nil); err != nil {
			t.Fatal(err)
		}
		v := drive.Value{}
		enc, _ := v.Encode()
		if err := d.Bee().Put(ctx, append([]byte("files\x00"), bad...), enc); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(tmp, fmt.Sprintf("bad-%x", sha256.Sum256([]byte(bad))))
		_, err = Fetch(ctx, d, link.Link{Key: d.Key(), Path: "/"}, out, nil)
		if !errors.Is(err, ErrUnsafePath) {
			t.Errorf("key %q: %v", bad, err)
		}
		if _, err := os.Stat(filepath.Join(tmp, "escape")); err == nil {
			t.Fatalf("key %q escaped the destination", bad)
		}
	}

	// A file under a directory that is a symlink on disk is refused.
	out := filepath.Join(tmp, "planted")
	os.MkdirAll(out, 0o755)
	if err := os.Symlink(tmp, filepath.Join(out, "ok")); err != nil {
		t.Fatal(err)
	}
	if _, err := Fetch(ctx, d, link.Link{Key: d.Key(), Path: "/"}, out, nil); !errors.Is(err, ErrUnsafePath) {
		t.Fatalf("write through a planted symlink: %v", err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "file")); err == nil {
		t.Fatal("wrote through a planted symlink")
	}
	_ = hex.EncodeToString
}
