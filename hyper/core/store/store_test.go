package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/hyperos/hyperos/hyper/core/wire"
)

func testHeader(length uint64) *Header {
	h := &Header{Fork: 1, Length: length, Signature: bytes.Repeat([]byte{byte(length)}, 68)}
	h.Key[0] = 0xaa
	h.Manifest = &wire.Manifest{Version: 1, Quorum: 1, Signers: []wire.Signer{{PublicKey: [32]byte{1, 2, 3}}}}
	if length%2 == 0 {
		h.SecretKey = bytes.Repeat([]byte{7}, 64)
	}
	return h
}

// history is a deterministic sequence of commits and the state each
// leaves behind, used to check what a store must hold after a crash.
type history struct {
	batches []*Batch
}

func makeHistory(rng *rand.Rand, n int) *history {
	h := &history{}
	var next uint64
	for i := 0; i < n; i++ {
		b := &Batch{}
		if i > 0 && rng.IntN(8) == 0 {
			t := uint64(rng.IntN(int(next) + 1))
			b.Truncate = &t
			next = t
		}
		if next > 0 && rng.IntN(6) == 0 {
			b.Drop = append(b.Drop, uint64(rng.IntN(int(next))))
		}
		for k := rng.IntN(4); k > 0; k-- {
			v := make([]byte, rng.IntN(300))
			for j := range v {
				v[j] = byte(rng.IntN(256))
			}
			b.Blocks = append(b.Blocks, Block{Index: next, Value: v})
			next++
		}
		for k := rng.IntN(5); k > 0; k-- {
			var nd wire.Node
			nd.Index = uint64(rng.IntN(1000))
			nd.Size = uint64(rng.IntN(1 << 20))
			for j := range nd.Hash {
				nd.Hash[j] = byte(rng.IntN(256))
			}
			b.Nodes = append(b.Nodes, nd)
		}
		if rng.IntN(3) == 0 || i == 0 {
			b.Header = testHeader(next)
		}
		h.batches = append(h.batches, b)
	}
	return h
}

// state is what a store must contain after the first n commits.
type state struct {
	header *Header
	nodes  map[uint64]wire.Node
	blocks map[uint64][]byte
}

func (h *history) stateAfter(n int) state {
	s := state{nodes: map[uint64]wire.Node{}, blocks: map[uint64][]byte{}}
	for _, b := range h.batches[:n] {
		if b.Truncate != nil {
			truncateMaps(*b.Truncate, s.nodes, s.blocks)
		}
		for _, i := range b.Drop {
			delete(s.blocks, i)
		}
		for _, blk := range b.Blocks {
			s.blocks[blk.Index] = blk.Value
		}
		for _, nd := range b.Nodes {
			s.nodes[nd.Index] = nd
		}
		if b.Header != nil {
			s.header = b.Header
		}
	}
	return s
}

// checkExact requires st to hold exactly s.
func checkExact(t *testing.T, st Storage, s state) {
	t.Helper()
	h, err := st.Header()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h, s.header) {
		t.Fatalf("header\n got %+v\nwant %+v", h, s.header)
	}
	for i := uint64(0); i < 1000; i++ {
		n, ok, err := st.GetNode(i)
		if err != nil {
			t.Fatal(err)
		}
		want, wok := s.nodes[i]
		if ok != wok || n != want {
			t.Fatalf("node %d: got %v %+v want %v", i, ok, n, wok)
		}
	}
	for i := uint64(0); i < 1000; i++ {
		v, ok, err := st.GetBlock(i)
		if err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		want, wok := s.blocks[i]
		if ok != wok || !bytes.Equal(v, want) || st.HasBlock(i) != wok {
			t.Fatalf("block %d: got %v want %v", i, ok, wok)
		}
	}
}

func TestMemoryAndDirRoundTrip(t *testing.T) {
	h := makeHistory(rand.New(rand.NewPCG(1, 1)), 50)
	dir := t.TempDir()
	for name, open := range map[string]func() Storage{
		"memory": func() Storage { return NewMemory() },
		"dir": func() Storage {
			d, err := OpenDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			return d
		},
	} {
		t.Run(name, func(t *testing.T) {
			st := open()
			checkExact(t, st, h.stateAfter(0))
			for i, b := range h.batches {
				if err := st.Commit(b); err != nil {
					t.Fatal(err)
				}
				if i%10 == 0 {
					checkExact(t, st, h.stateAfter(i+1))
				}
			}
			checkExact(t, st, h.stateAfter(len(h.batches)))
			st.Close()
			if _, _, err := st.GetBlock(0); !errors.Is(err, ErrClosed) {
				t.Errorf("after close: %v", err)
			}
		})
	}
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	checkExact(t, d, h.stateAfter(len(h.batches)))
}

type sizes struct{ log, blocks int64 }

func fileSize(t *testing.T, p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// buildStore commits h into dir, recording the file sizes after each
// acknowledged commit.
func buildStore(t *testing.T, dir string, h *history) []sizes {
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	acked := []sizes{{fileSize(t, filepath.Join(dir, "log")), fileSize(t, filepath.Join(dir, "blocks"))}}
	for _, b := range h.batches {
		if err := d.Commit(b); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, sizes{fileSize(t, filepath.Join(dir, "log")), fileSize(t, filepath.Join(dir, "blocks"))})
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	return acked
}

func copyDir(t *testing.T, from, to string) {
	for _, name := range []string{"log", "blocks"} {
		b, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func cut(t *testing.T, p string, size int64, garbage []byte) {
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	if len(garbage) > 0 {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(garbage)
		f.Close()
	}
}

// TestCrashLosesNothingAcknowledged simulates a crash during commit k+1:
// both files are cut anywhere after what commit k made durable, optionally
// followed by junk (a torn sector). Reopening must show exactly commits
// 1..k, or 1..k+1 when its frame happened to survive whole, and the store
// must keep working.
func TestCrashLosesNothingAcknowledged(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	h := makeHistory(rng, 40)
	golden := t.TempDir()
	acked := buildStore(t, golden, h)
	for trial := 0; trial < 300; trial++ {
		k := rng.IntN(len(h.batches))
		dir := t.TempDir()
		copyDir(t, golden, dir)
		final := acked[len(acked)-1]
		logCut := acked[k].log + rng.Int64N(acked[k+1].log-acked[k].log+1)
		blkCut := acked[k].blocks + rng.Int64N(final.blocks-acked[k].blocks+1)
		if logCut == acked[k+1].log && blkCut < acked[k+1].blocks {
			// the log frame cannot be durable before the values it names
			blkCut = acked[k+1].blocks
		}
		var junk []byte
		if rng.IntN(2) == 0 {
			junk = make([]byte, 1+rng.IntN(64))
			for i := range junk {
				junk[i] = byte(rng.IntN(256))
			}
		}
		cut(t, filepath.Join(dir, "log"), logCut, junk)
		cut(t, filepath.Join(dir, "blocks"), blkCut, junk)

		d, err := OpenDir(dir)
		if err != nil {
			t.Fatalf("trial %d: reopen: %v", trial, err)
		}
		want := k
		if logCut == acked[k+1].log {
			want = k + 1
		}
		checkExact(t, d, h.stateAfter(want))
		// the store keeps working after recovery
		if err := d.Commit(h.batches[want%len(h.batches)]); err != nil {
			t.Fatal(err)
		}
		d.Close()
		d, err = OpenDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		extra := &history{batches: append(append([]*Batch{}, h.batches[:want]...), h.batches[want%len(h.batches)])}
		checkExact(t, d, extra.stateAfter(len(extra.batches)))
		d.Close()
	}
}

// TestDamageNeverReturnsWrongData cuts or flips bytes anywhere, even in
// acknowledged data (disk damage rather than a crash). The store may lose
// data, but whatever it returns must be what was written.
func TestDamageNeverReturnsWrongData(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	h := makeHistory(rng, 30)
	golden := t.TempDir()
	buildStore(t, golden, h)
	// values a node/block index ever had: an older value is allowed
	// (the damage may cut the log before a later overwrite).
	everNodes := map[wire.Node]bool{}
	everBlocks := map[string]bool{}
	for _, b := range h.batches {
		for _, n := range b.Nodes {
			everNodes[n] = true
		}
		for _, blk := range b.Blocks {
			everBlocks[fmt.Sprint(blk.Index, blk.Value)] = true
		}
	}
	for trial := 0; trial < 300; trial++ {
		dir := t.TempDir()
		copyDir(t, golden, dir)
		name := []string{"log", "blocks"}[rng.IntN(2)]
		p := filepath.Join(dir, name)
		size := fileSize(t, p)
		if rng.IntN(2) == 0 {
			cut(t, p, rng.Int64N(size+1), nil)
		} else {
			f, _ := os.OpenFile(p, os.O_RDWR, 0)
			off := rng.Int64N(size)
			var b [1]byte
			f.ReadAt(b[:], off)
			b[0] ^= byte(1 + rng.IntN(255))
			f.WriteAt(b[:], off)
			f.Close()
		}
		d, err := OpenDir(dir)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("trial %d: open failed without ErrCorrupt: %v", trial, err)
			}
			continue
		}
		for i := uint64(0); i < 1000; i++ {
			v, ok, err := d.GetBlock(i)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("block %d: %v", i, err)
				}
				continue
			}
			if ok && !everBlocks[fmt.Sprint(i, v)] {
				t.Fatalf("trial %d: block %d returned damaged bytes", trial, i)
			}
			if n, ok, _ := d.GetNode(i); ok && !everNodes[n] {
				t.Fatalf("trial %d: node %d is not one that was written", trial, i)
			}
		}
		if hd, _ := d.Header(); hd != nil {
			found := false
			for _, b := range h.batches {
				if b.Header != nil && reflect.DeepEqual(b.Header, hd) {
					found = true
				}
			}
			if !found {
				t.Fatalf("trial %d: header %+v was never written", trial, hd)
			}
		}
		d.Close()
	}
}

func TestNotAStore(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "log"), []byte("something else entirely"), 0o600)
	if _, err := OpenDir(dir); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("foreign file: %v", err)
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []*Header{testHeader(3), testHeader(4), {Length: 0}} {
		b, err := MarshalHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnmarshalHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, h) {
			t.Errorf("got %+v want %+v", got, h)
		}
		for n := 0; n < len(b); n++ {
			if _, err := UnmarshalHeader(b[:n]); err == nil {
				t.Errorf("truncated header (%d of %d) accepted", n, len(b))
			}
		}
	}
}

func FuzzHeader(f *testing.F) {
	b, _ := MarshalHeader(testHeader(3))
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := UnmarshalHeader(data)
		if err != nil {
			return
		}
		b, err := MarshalHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		h2, err := UnmarshalHeader(b)
		if err != nil || !reflect.DeepEqual(h, h2) {
			t.Fatalf("unstable header: %v", err)
		}
	})
}

// FuzzOpenDir replays arbitrary log and blocks files: no panic, and any
// block returned must pass the CRC recorded in a checksummed frame.
func FuzzOpenDir(f *testing.F) {
	seedDir := f.TempDir()
	d, err := OpenDir(seedDir)
	if err != nil {
		f.Fatal(err)
	}
	h := makeHistory(rand.New(rand.NewPCG(3, 3)), 5)
	for _, b := range h.batches {
		d.Commit(b)
	}
	d.Close()
	lg, _ := os.ReadFile(filepath.Join(seedDir, "log"))
	bl, _ := os.ReadFile(filepath.Join(seedDir, "blocks"))
	f.Add(lg[magicLen:], bl[magicLen:])
	f.Fuzz(func(t *testing.T, logBody, blocksBody []byte) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "log"), append([]byte(logMagic), logBody...), 0o600)
		os.WriteFile(filepath.Join(dir, "blocks"), append([]byte(blocksMagic), blocksBody...), 0o600)
		d, err := OpenDir(dir)
		if err != nil {
			return
		}
		defer d.Close()
		for i := range d.refs {
			if _, _, err := d.GetBlock(i); err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatal(err)
			}
		}
		if err := d.Commit(&Batch{Blocks: []Block{{Index: 1, Value: []byte("x")}}}); err != nil {
			t.Fatal(err)
		}
		v, ok, err := d.GetBlock(1)
		if err != nil || !ok || string(v) != "x" {
			t.Fatalf("commit after replay: %q %v %v", v, ok, err)
		}
	})
}

func BenchmarkDirCommit(b *testing.B) {
	for _, size := range []int{4096, 65536} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			d, err := OpenDir(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			v := make([]byte, size)
			b.SetBytes(int64(size))
			for i := 0; i < b.N; i++ {
				if err := d.Commit(&Batch{Blocks: []Block{{Index: uint64(i), Value: v}}, Nodes: []wire.Node{{Index: uint64(2 * i)}}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var _ = io.EOF

// FuzzLogFrames runs the log replay on arbitrary bytes in memory (fast,
// unlike FuzzOpenDir which pays for files and fsyncs): it must not panic,
// must stop at a frame boundary, and whatever it applied must come from
// frames whose checksums hold.
func FuzzLogFrames(f *testing.F) {
	seedDir := f.TempDir()
	d, err := OpenDir(seedDir)
	if err != nil {
		f.Fatal(err)
	}
	h := makeHistory(rand.New(rand.NewPCG(4, 4)), 6)
	for _, b := range h.batches {
		d.Commit(b)
	}
	d.Close()
	lg, _ := os.ReadFile(filepath.Join(seedDir, "log"))
	f.Add(lg[magicLen:])
	f.Fuzz(func(t *testing.T, body []byte) {
		data := append([]byte(logMagic), body...)
		d := &Dir{nodes: map[uint64]wire.Node{}, refs: map[uint64]blockRef{}}
		end, err := d.scanFrames(bytes.NewReader(data), uint64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		if end < magicLen || end > uint64(len(data)) {
			t.Fatalf("end %d outside 8..%d", end, len(data))
		}
		// replaying the intact prefix alone gives the same state
		d2 := &Dir{nodes: map[uint64]wire.Node{}, refs: map[uint64]blockRef{}}
		end2, _ := d2.scanFrames(bytes.NewReader(data[:end]), end)
		if end2 != end || !reflect.DeepEqual(d.nodes, d2.nodes) || !reflect.DeepEqual(d.refs, d2.refs) || !reflect.DeepEqual(d.header, d2.header) {
			t.Fatal("replay of the intact prefix differs")
		}
	})
}

func TestCompaction(t *testing.T) {
	h := makeHistory(rand.New(rand.NewPCG(11, 11)), 60)
	dir := t.TempDir()
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range h.batches[:40] {
		if err := d.Commit(b); err != nil {
			t.Fatal(err)
		}
	}
	before := fileSize(t, filepath.Join(dir, "log"))
	if err := d.Compact(); err != nil {
		t.Fatal(err)
	}
	if after := fileSize(t, filepath.Join(dir, "log")); after >= before {
		t.Errorf("log did not shrink: %d -> %d", before, after)
	}
	checkExact(t, d, h.stateAfter(40))
	for _, b := range h.batches[40:] {
		if err := d.Commit(b); err != nil {
			t.Fatal(err)
		}
	}
	d.Close()
	// an interrupted compaction leaves a partial file that must be ignored
	os.WriteFile(filepath.Join(dir, compactName), []byte(logMagic+"garbage"), 0o600)
	d, err = OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	checkExact(t, d, h.stateAfter(60))
	if _, err := os.Stat(filepath.Join(dir, compactName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover compaction file: %v", err)
	}
}

// TestAutoCompaction mimics a writer that rewrites the header on every
// append: the log must stay near the size of the live state.
func TestAutoCompaction(t *testing.T) {
	old := autoCompactMin
	autoCompactMin = 4096
	defer func() { autoCompactMin = old }()
	dir := t.TempDir()
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var last *Header
	for i := 0; i < 300; i++ {
		last = testHeader(uint64(i))
		if err := d.Commit(&Batch{Blocks: []Block{{Index: uint64(i), Value: []byte{byte(i)}}}, Header: last}); err != nil {
			t.Fatal(err)
		}
	}
	if sz := fileSize(t, filepath.Join(dir, "log")); uint64(sz) > 4*d.liveSize()+autoCompactMin {
		t.Errorf("log is %d bytes for %d live", sz, d.liveSize())
	}
	d.Close()
	d, err = OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if h, _ := d.Header(); !reflect.DeepEqual(h, last) {
		t.Fatal("header lost across compactions")
	}
	for i := 0; i < 300; i++ {
		if v, ok, err := d.GetBlock(uint64(i)); err != nil || !ok || v[0] != byte(i) {
			t.Fatalf("block %d lost across compactions", i)
		}
	}
}

func TestDirIsLocked(t *testing.T) {
	dir := t.TempDir()
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDir(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
	d.Close()
	d2, err := OpenDir(dir)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	d2.Close()
}

// commitGroupNow commits batches as one group, as the leader of
// concurrent Commits would, and returns each one's result.
func commitGroupNow(d *Dir, batches []*Batch) []error {
	group := make([]*pendingCommit, len(batches))
	for i, b := range batches {
		group[i] = &pendingCommit{b: b, done: make(chan error, 1)}
	}
	d.commitGroup(group)
	errs := make([]error, len(batches))
	for i, p := range group {
		errs[i] = <-p.done
	}
	return errs
}

// TestGroupCrashLosesNothingAcknowledged is TestCrashLosesNothingAcknowledged
// for grouped commits: a crash while group g+1 is written may keep any
// prefix of its frames whose bytes all survived, never a frame without the
// block values it names, and never less than groups 1..g.
func TestGroupCrashLosesNothingAcknowledged(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 3))
	h := makeHistory(rng, 60)
	// Split the history into groups of 1 to 6 commits.
	var groups [][]*Batch
	for i := 0; i < len(h.batches); {
		n := min(1+rng.IntN(6), len(h.batches)-i)
		groups = append(groups, h.batches[i:i+n])
		i += n
	}
	golden := t.TempDir()
	d, err := OpenDir(golden)
	if err != nil {
		t.Fatal(err)
	}
	acked := []sizes{{fileSize(t, filepath.Join(golden, "log")), fileSize(t, filepath.Join(golden, "blocks"))}}
	for gi, g := range groups {
		for i, err := range commitGroupNow(d, g) {
			if err != nil {
				t.Fatalf("group %d commit %d: %v", gi, i, err)
			}
		}
		acked = append(acked, sizes{fileSize(t, filepath.Join(golden, "log")), fileSize(t, filepath.Join(golden, "blocks"))})
	}
	d.Close()
	// Where each commit's frame ends in the log, for deciding which of a
	// cut group's commits survived.
	frameEnd := make([]int64, 0, len(h.batches))
	var before []int // commits before group g
	off := acked[0].log
	done := 0
	for _, g := range groups {
		before = append(before, done)
		for _, b := range g {
			st, err := stage(b, 0)
			if err != nil {
				t.Fatal(err)
			}
			off += int64(len(st.frame))
			frameEnd = append(frameEnd, off)
		}
		done += len(g)
	}
	if off != acked[len(acked)-1].log {
		t.Fatalf("frames end at %d, log is %d bytes", off, acked[len(acked)-1].log)
	}
	final := acked[len(acked)-1]
	for trial := 0; trial < 300; trial++ {
		g := rng.IntN(len(groups))
		dir := t.TempDir()
		copyDir(t, golden, dir)
		logCut := acked[g].log + rng.Int64N(acked[g+1].log-acked[g].log+1)
		blkCut := acked[g].blocks + rng.Int64N(final.blocks-acked[g].blocks+1)
		if logCut > acked[g].log && blkCut < acked[g+1].blocks {
			// the group's frames are written only after all its values
			// are durable
			blkCut = acked[g+1].blocks
		}
		var junk []byte
		if rng.IntN(2) == 0 {
			junk = make([]byte, 1+rng.IntN(64))
			for i := range junk {
				junk[i] = byte(rng.IntN(256))
			}
		}
		cut(t, filepath.Join(dir, "log"), logCut, junk)
		cut(t, filepath.Join(dir, "blocks"), blkCut, junk)
		d, err := OpenDir(dir)
		if err != nil {
			t.Fatalf("trial %d: reopen: %v", trial, err)
		}
		want := before[g]
		for want < len(frameEnd) && frameEnd[want] <= logCut {
			want++
		}
		checkExact(t, d, h.stateAfter(want))
		d.Close()
	}
}

// TestConcurrentCommits commits from many goroutines at once, so that
// commits are grouped: every acknowledged commit is readable at once and
// after reopening.
func TestConcurrentCommits(t *testing.T) {
	dir := t.TempDir()
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 16, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				idx := uint64(w*each + i)
				v := bytes.Repeat([]byte{byte(idx)}, 100+int(idx))
				b := &Batch{Blocks: []Block{{Index: idx, Value: v}}, Nodes: []wire.Node{{Index: 2 * idx, Size: uint64(len(v))}}}
				if err := d.Commit(b); err != nil {
					errs <- err
					return
				}
				if got, ok, err := d.GetBlock(idx); err != nil || !ok || !bytes.Equal(got, v) {
					errs <- fmt.Errorf("block %d not readable once acknowledged: %v %v", idx, ok, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	d.Close()
	d, err = OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for idx := uint64(0); idx < workers*each; idx++ {
		want := bytes.Repeat([]byte{byte(idx)}, 100+int(idx))
		if got, ok, err := d.GetBlock(idx); err != nil || !ok || !bytes.Equal(got, want) {
			t.Fatalf("block %d after reopen: %v %v", idx, ok, err)
		}
		if n, ok, _ := d.GetNode(2 * idx); !ok || n.Size != uint64(len(want)) {
			t.Fatalf("node %d after reopen: %v %+v", 2*idx, ok, n)
		}
	}
}

// snapshot is a store's files as a crash would find them.
type snapshot map[string][]byte

func takeSnapshot(t *testing.T, dir string) snapshot {
	s := snapshot{}
	for _, name := range []string{"log", "blocks", unsyncedName} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if err == nil {
			s[name] = b
		}
	}
	return s
}

func (s snapshot) restore(t *testing.T, dir string) {
	for name, b := range s {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// damageAfter loses what a crash may lose of b past durable: it is cut
// somewhere, or a stretch of it reads as zeros (pages never written back),
// or both.
func damageAfter(rng *rand.Rand, b []byte, durable int) []byte {
	if len(b) <= durable {
		return b
	}
	b = bytes.Clone(b)
	if rng.IntN(2) == 0 {
		from := durable + rng.IntN(len(b)-durable)
		to := from + rng.IntN(len(b)-from+1)
		clear(b[from:to])
	}
	if rng.IntN(2) == 0 {
		b = b[:durable+rng.IntN(len(b)-durable+1)]
	}
	return b
}

// TestDeferredCrashNeverClaimsLostBlocks crashes a store that defers the
// syncs of block-only commits: anything of its files past the last
// durable commit may be lost or zeroed. Reopened, it must hold everything
// durable, a prefix of the later commits (nodes exactly as after one of
// them), and only blocks it can return: a block whose bytes were lost is
// dropped, never reported as present.
func TestDeferredCrashNeverClaimsLostBlocks(t *testing.T) {
	old := deferSyncBytes
	deferSyncBytes = 2000 // a forced sync now and then, as in a long run
	defer func() { deferSyncBytes = old }()
	rng := rand.New(rand.NewPCG(5, 21))
	h := makeHistory(rng, 80)
	// Mostly block-only commits, which are the ones deferred.
	for i, b := range h.batches {
		if i > 0 && b.Truncate == nil && len(b.Drop) == 0 && rng.IntN(4) != 0 {
			b.Header = nil
		}
	}
	dir := t.TempDir()
	d, err := OpenDirWith(dir, DirOptions{DeferSync: true})
	if err != nil {
		t.Fatal(err)
	}
	type point struct {
		snap              snapshot
		durable           int // commits made durable so far
		durLog, durBlocks int // their file sizes
	}
	var points []point
	durable, durLog, durBlocks := 0, magicLen, magicLen
	deferredSeen := false
	for i, b := range h.batches {
		if err := d.Commit(b); err != nil {
			t.Fatal(err)
		}
		s := takeSnapshot(t, dir)
		if len(s[unsyncedName]) == 0 {
			durable, durLog, durBlocks = i+1, len(s["log"]), len(s["blocks"])
		} else {
			deferredSeen = true
			if !deferrable(b) {
				t.Fatalf("commit %d has a header, truncation or drop but was deferred", i)
			}
		}
		points = append(points, point{s, durable, durLog, durBlocks})
	}
	if !deferredSeen {
		t.Fatal("no commit was deferred")
	}
	for trial := 0; trial < 300; trial++ {
		k := rng.IntN(len(points))
		p := points[k]
		crashed := snapshot{"log": damageAfter(rng, p.snap["log"], p.durLog),
			"blocks": damageAfter(rng, p.snap["blocks"], p.durBlocks)}
		if u, ok := p.snap[unsyncedName]; ok {
			crashed[unsyncedName] = u
		}
		tdir := t.TempDir()
		crashed.restore(t, tdir)
		d, err := OpenDir(tdir)
		if err != nil {
			t.Fatalf("trial %d: reopen: %v", trial, err)
		}
		checkDeferredCrash(t, d, h, p.durable, k+1)
		// Repaired, the store works and needs no repair again.
		if err := d.Commit(&Batch{Header: testHeader(1)}); err != nil {
			t.Fatal(err)
		}
		d.Close()
		if u, _ := os.ReadFile(filepath.Join(tdir, unsyncedName)); len(u) != 0 {
			t.Fatalf("trial %d: deferred-sync record left after recovery", trial)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if u, _ := os.ReadFile(filepath.Join(dir, unsyncedName)); len(u) != 0 {
		t.Fatal("deferred-sync record left after Close")
	}
	d, err = OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	checkExact(t, d, h.stateAfter(len(h.batches)))
}

// checkDeferredCrash requires st to be in the state after some commit j in
// [durable, acked], except that blocks committed after durable may be
// missing, and every block it says it holds to be readable.
func checkDeferredCrash(t *testing.T, st Storage, h *history, durable, acked int) {
	t.Helper()
	hd, _ := st.Header()
	if want := h.stateAfter(acked).header; !reflect.DeepEqual(hd, want) {
		t.Fatalf("header\n got %+v\nwant %+v", hd, want)
	}
	blocks := map[uint64][]byte{}
	for i := uint64(0); i < 1000; i++ {
		v, ok, err := st.GetBlock(i)
		if err != nil {
			t.Fatalf("block %d: %v (the store claims a block it cannot return)", i, err)
		}
		if ok != st.HasBlock(i) {
			t.Fatalf("block %d: HasBlock %v, GetBlock %v", i, st.HasBlock(i), ok)
		}
		if ok {
			blocks[i] = v
		}
	}
	for i, want := range h.stateAfter(durable).blocks {
		if !bytes.Equal(blocks[i], want) {
			t.Fatalf("durable block %d lost or changed", i)
		}
	}
	for j := durable; j <= acked; j++ {
		s := h.stateAfter(j)
		same := true
		for i := uint64(0); i < 1000 && same; i++ {
			n, ok, _ := st.GetNode(i)
			want, wok := s.nodes[i]
			same = ok == wok && n == want
		}
		for i, v := range blocks {
			same = same && bytes.Equal(v, s.blocks[i])
		}
		if same {
			return
		}
	}
	t.Fatalf("nodes and blocks match no commit from %d to %d", durable, acked)
}
