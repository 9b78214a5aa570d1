package share

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hyperos/hyperos/hyper/corestore"
	"github.com/hyperos/hyperos/hyper/link"
	"github.com/hyperos/hyperos/hyper/peer"
	"github.com/hyperos/hyperos/internal/nodetest"
)

// requireNode returns the node binary with the pinned packages installed,
// or skips (fails under CI=true); see hyper/internal/nodetest.
func requireNode(t testing.TB) string {
	t.Helper()
	return nodetest.Require(t)
}

// nodePeer is a running share-peer.js.
type nodePeer struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan []byte
	done  chan struct{}
}

func startNode(t testing.TB, args ...string) *nodePeer {
	t.Helper()
	node := requireNode(t)
	cmd := nodetest.Command(t, node, "share-peer.js", args...)
	return startProcess(t, cmd)
}

// startProcess runs cmd, which answers in JSON lines on stdout and exits
// when its stdin closes.
func startProcess(t testing.TB, cmd *exec.Cmd) *nodePeer {
	t.Helper()
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &nodePeer{cmd: cmd, stdin: in, lines: make(chan []byte, 16), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(outp)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			p.lines <- append([]byte(nil), sc.Bytes()...)
		}
		close(p.lines)
	}()
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
	return p
}

// stop ends the process: closing stdin makes it exit; kill if it lingers.
func (p *nodePeer) stop() {
	p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// next decodes the next output line into v.
func (p *nodePeer) next(t testing.TB, timeout time.Duration, v any) {
	t.Helper()
	select {
	case line, ok := <-p.lines:
		if !ok {
			t.Fatal("the Node peer exited without answering")
		}
		if err := json.Unmarshal(line, v); err != nil {
			t.Fatalf("Node peer said %q: %v", line, err)
		}
	case <-time.After(timeout):
		t.Fatal("the Node peer did not answer in time")
	}
}

type nodeEntry struct {
	Size       uint64  `json:"size"`
	SHA256     string  `json:"sha256"`
	Executable bool    `json:"executable"`
	Linkname   *string `json:"linkname"`
}

type nodeSeed struct {
	Key     string                `json:"key"`
	Port    int                   `json:"port"`
	Version uint64                `json:"version"`
	Entries map[string]*nodeEntry `json:"entries"`
}

func (s *nodeSeed) addr() string { return fmt.Sprintf("127.0.0.1:%d", s.Port) }

func (s *nodeSeed) key(t testing.TB) link.Key {
	k, err := link.ParseKey(s.Key)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// checkAgainstNode compares a drive read through Go with what Node wrote:
// every path, size, digest, executable bit and symlink target.
func checkAgainstNode(t *testing.T, ctx context.Context, d *Drive, want map[string]*nodeEntry) {
	t.Helper()
	entries, err := d.List(ctx, "/", true)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Key)
		w := want[e.Key]
		if w == nil {
			t.Errorf("Go lists %s, Node does not", e.Key)
			continue
		}
		if e.Value.Executable != w.Executable {
			t.Errorf("%s: executable %v, Node %v", e.Key, e.Value.Executable, w.Executable)
		}
		if w.Linkname != nil {
			if e.Value.Linkname != *w.Linkname {
				t.Errorf("%s: link %q, Node %q", e.Key, e.Value.Linkname, *w.Linkname)
			}
			continue
		}
		b, err := d.Get(ctx, e.Key)
		if err != nil {
			t.Fatalf("%s: %v", e.Key, err)
		}
		if uint64(len(b)) != w.Size || (w.SHA256 != "" && sha(b) != w.SHA256) {
			t.Errorf("%s: %d bytes %s, Node %d bytes %s", e.Key, len(b), sha(b), w.Size, w.SHA256)
		}
	}
	if len(got) != len(want) {
		var names []string
		for n := range want {
			names = append(names, n)
		}
		sort.Strings(names)
		t.Errorf("Go lists %d entries, Node %d: %v vs %v", len(got), len(want), got, names)
	}
}

// TestNodeWritesGoReads: Node writes a drive over several versions (nested
// folders, a file over 64 KiB, executables, symlinks, an overwrite and
// deletes, 60 files in a batch, and a 2 MB file) and seeds it over TCP;
// Go reads every entry, random reads fetch only the blocks they cover,
// and a full fetch writes the tree out.
func TestNodeWritesGoReads(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := startNode(t, "seed", "mixed+big:2000000")
	var seed nodeSeed
	n.next(t, 30*time.Second, &seed)

	st := corestore.NewMemory([32]byte{1}, nil)
	defer st.Close()
	conns := dial(t, st, seed.addr())
	d, err := OpenRemote(ctx, st, seed.key(t), conns)
	if err != nil {
		t.Fatal(err)
	}
	if d.Version() != seed.Version {
		t.Fatalf("Go sees version %d, Node wrote %d", d.Version(), seed.Version)
	}

	// Random reads: 4 KiB at a few offsets of the 2 MB file fetch one or
	// two blocks each, not the file.
	r, err := d.Open(ctx, "/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	id := r.ID()
	big := make([]byte, 2000000)
	for i := range big {
		big[i] = byte(9*131 + i*7 + (i>>8)*13)
	}
	for _, off := range []int64{1_000_000, 65_530, 1_999_000} {
		buf := make([]byte, 4096)
		n, err := r.ReadAt(buf, off)
		if err != nil && n != min(4096, len(big)-int(off)) {
			t.Fatalf("read at %d: %d %v", off, n, err)
		}
		if string(buf[:n]) != string(big[off:off+int64(n)]) {
			t.Fatalf("read at %d: wrong bytes", off)
		}
	}
	var held uint64
	for i := id.BlockOffset; i < id.BlockOffset+id.BlockLength; i++ {
		if d.Blobs.Has(i) {
			held++
		}
	}
	if held == 0 || held > 5 {
		t.Errorf("three 4 KiB reads fetched %d of the file's %d blocks", held, id.BlockLength)
	}

	checkAgainstNode(t, ctx, d, seed.Entries)
	names, err := d.Readdir(ctx, "/docs")
	if err != nil || strings.Join(names, ",") != "a,exactly-64k.bin,large.bin" {
		t.Errorf("readdir /docs: %v %v", names, err)
	}

	dest := filepath.Join(t.TempDir(), "out")
	res, err := Fetch(ctx, d, link.Link{Key: seed.key(t), Path: "/"}, dest, &FetchOptions{Conns: conns})
	if err != nil {
		t.Fatal(err)
	}
	for name, e := range seed.Entries {
		p := filepath.Join(dest, filepath.FromSlash(strings.TrimPrefix(name, "/")))
		if e.Linkname != nil {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil || sha(b) != e.SHA256 && e.Size > 0 {
			t.Errorf("%s on disk: %v", name, err)
		}
		if fi, err := os.Stat(p); err == nil && runtime.GOOS != "windows" && (fi.Mode()&0o100 != 0) != e.Executable {
			t.Errorf("%s: mode %v, executable %v", name, fi.Mode(), e.Executable)
		}
	}
	if got, err := os.Readlink(filepath.Join(dest, "links", "readme")); err != nil || got != filepath.FromSlash("../README.md") {
		t.Errorf("/links/readme: %q %v", got, err)
	}
	// ../../../etc/passwd from /links resolves, as Hyperdrive resolves it
	// (clamped at the root), to the drive's own /etc/passwd: inside DEST.
	if got, err := os.Readlink(filepath.Join(dest, "links", "outside")); err != nil || got != filepath.FromSlash("../etc/passwd") {
		t.Errorf("/links/outside: %q %v", got, err)
	}
	if len(res.Skipped) != 0 {
		t.Errorf("skipped %v", res.Skipped)
	}
}

// goDrive writes a tree with everything a drive can hold, shares it twice
// (the second time with an edit, a delete and a new file) and returns the
// final expected entries.
func goDrive(t *testing.T, root string) (src string, want map[string][]byte, exec []string) {
	src = filepath.Join(root, "src")
	want = map[string][]byte{
		"README.md":           pattern(1, 1200),
		"bin/tool":            pattern(2, 5000),
		"docs/a/b/c/deep.txt": pattern(3, 333),
		"docs/large.bin":      pattern(4, 200*1024+17),
		"empty":               {},
		"gone.txt":            []byte("soon gone"),
	}
	for i := 0; i < 40; i++ {
		want[fmt.Sprintf("many/f%03d", i)] = pattern(100+i, 40+i*13)
	}
	writeTree(t, src, want, "bin/tool")
	if err := os.MkdirAll(filepath.Join(src, "links"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../README.md", filepath.Join(src, "links", "readme")); err != nil {
		t.Fatal(err)
	}
	return src, want, []string{"bin/tool"}
}

type nodeRead struct {
	Version uint64                `json:"version"`
	Entries map[string]*nodeEntry `json:"entries"`
	Readdir map[string][]string   `json:"readdir"`
}

// TestGoWritesNodeReads: Go shares a tree (two versions) and seeds it;
// Node's hyperdrive reads every file, listing and link. Then a second Node
// reader waits for a version the Go writer appends while it is connected.
func TestGoWritesNodeReads(t *testing.T) {
	requireNode(t)
	tmp := t.TempDir()
	src, want, _ := goDrive(t, tmp)
	s := startSeeder(t, filepath.Join(tmp, "seed"), src)
	ctx := context.Background()
	os.Remove(filepath.Join(src, "gone.txt"))
	delete(want, "gone.txt")
	want["README.md"] = pattern(7, 1500)
	want["new/one"] = []byte("new")
	writeTree(t, src, map[string][]byte{"README.md": want["README.md"], "new/one": want["new/one"]})
	res, err := Publish(ctx, s.d, src)
	if err != nil {
		t.Fatal(err)
	}
	key := s.d.Key()
	_, port, _ := net.SplitHostPort(s.addr)
	n := startNode(t, "read", key.Hex(), port)
	var got nodeRead
	n.next(t, 45*time.Second, &got)
	if got.Version != res.Version {
		t.Errorf("Node read version %d, Go wrote %d", got.Version, res.Version)
	}
	for name, data := range want {
		e := got.Entries["/"+name]
		if e == nil || e.Size != uint64(len(data)) || (len(data) > 0 && e.SHA256 != sha(data)) {
			t.Errorf("Node read /%s as %+v", name, e)
		}
	}
	if e := got.Entries["/bin/tool"]; e == nil || !e.Executable {
		t.Errorf("Node sees /bin/tool as %+v", e)
	}
	if e := got.Entries["/links/readme"]; e == nil || e.Linkname == nil || *e.Linkname != "../README.md" {
		t.Errorf("Node sees /links/readme as %+v", e)
	}
	if len(got.Entries) != len(want)+1 {
		t.Errorf("Node lists %d entries, want %d", len(got.Entries), len(want)+1)
	}
	if strings.Join(got.Readdir["/docs"], ",") != "a,large.bin" || len(got.Readdir["/many"]) != 40 {
		t.Errorf("Node readdir: %v", got.Readdir)
	}

	// A Node reader that connects now and waits for the next version,
	// which the Go writer appends while it is connected.
	n2 := startNode(t, "read", key.Hex(), port, "--version", fmt.Sprint(res.Version+1), "--only", "/late.bin,/README.md")
	var ready struct{ Ready uint64 }
	n2.next(t, 45*time.Second, &ready)
	if ready.Ready != res.Version {
		t.Fatalf("second Node reader synced to version %d, want %d", ready.Ready, res.Version)
	}
	writeTree(t, src, map[string][]byte{"late.bin": pattern(11, 300000)})
	res2, err := Publish(ctx, s.d, src)
	if err != nil {
		t.Fatal(err)
	}
	var late nodeRead
	n2.next(t, 45*time.Second, &late)
	if late.Version < res2.Version {
		t.Errorf("Node saw version %d, Go appended %d", late.Version, res2.Version)
	}
	if e := late.Entries["/late.bin"]; e == nil || e.SHA256 != sha(pattern(11, 300000)) {
		t.Errorf("Node read the appended file as %+v", e)
	}
}

// TestNodeAndGoSeedOneDrive: a Go reader connects to a Node seeder and a
// Go seeder of the same Node-written drive, reads half of it, loses the
// Node seeder and finishes from the Go one.
func TestNodeAndGoSeedOneDrive(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := startNode(t, "seed", "mixed+big:3000000")
	var seed nodeSeed
	n.next(t, 30*time.Second, &seed)
	key := seed.key(t)
	l := link.Link{Key: key, Path: "/"}

	// A Go mirror: fetch everything from Node, then seed it.
	mirror := corestore.NewMemory([32]byte{2}, nil)
	defer mirror.Close()
	md, err := OpenRemote(ctx, mirror, key, dial(t, mirror, seed.addr()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Fetch(ctx, md, l, filepath.Join(t.TempDir(), "mirror"), nil); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- peer.Serve(sctx, ln, mirror, nil) }()
	defer func() { stop(); <-served }()

	st := corestore.NewMemory([32]byte{3}, &corestore.Options{RequestTimeout: 2 * time.Second})
	defer st.Close()
	conns := dial(t, st, seed.addr(), ln.Addr().String())
	d, err := OpenRemote(ctx, st, key, conns)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := d.List(ctx, "/", true)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		if i == len(entries)/2 {
			n.stop() // the Node seeder goes away mid-download
			select {
			case <-conns[0].Done():
			case <-ctx.Done():
				t.Fatal("the Node seeder's connection did not end")
			}
		}
		w := seed.Entries[e.Key]
		if w == nil || w.Linkname != nil {
			continue
		}
		b, err := d.Get(ctx, e.Key)
		if err != nil {
			t.Fatalf("%s: %v", e.Key, err)
		}
		if sha(b) != w.SHA256 && w.Size > 0 {
			t.Errorf("%s: wrong content", e.Key)
		}
	}
	if conns[1].Err() != nil {
		t.Errorf("the Go seeder's connection ended: %v", conns[1].Err())
	}
}
