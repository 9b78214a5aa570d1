package core

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/hyperos/hyperos/hyper/core/store"
	"github.com/hyperos/hyperos/hyper/core/wire"
)

// truncFixture is testdata/truncate.json from hyper/testdata/node/core-truncate.js.
type truncFixture struct {
	Seed, Key string
	Blocks    []string
	More      []string
	Fork0     struct{ Signature string }
	Truncated struct {
		Length, Fork        uint64
		Signature, TreeHash string
	}
	Fork1 struct {
		Length, Fork        uint64
		Signature, TreeHash string
	}
	ReorgProof string
}

func loadTrunc(t *testing.T) *truncFixture {
	raw, err := os.ReadFile("testdata/truncate.json")
	if err != nil {
		t.Fatal(err)
	}
	var f truncFixture
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	return &f
}

func hexList(t *testing.T, in []string) [][]byte {
	var out [][]byte
	for _, h := range in {
		out = append(out, unhex(t, h))
	}
	return out
}

// TestTruncateMatchesNode truncates and regrows a core exactly as the Node
// fixture did and compares the signatures, which cover the fork id.
func TestTruncateMatchesNode(t *testing.T) {
	f := loadTrunc(t)
	w, err := Create(store.NewMemory(), ed25519.NewKeyFromSeed(unhex(t, f.Seed)), CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if w.Key() != key32(t, f.Key) {
		t.Fatal("key")
	}
	w.Append(hexList(t, f.Blocks)...)
	if !bytes.Equal(w.Tree().Signature, unhex(t, f.Fork0.Signature)) {
		t.Fatal("fork 0 signature")
	}
	if err := w.Truncate(14); err != nil {
		t.Fatal(err)
	}
	tr := w.Tree()
	if tr.Length != f.Truncated.Length || tr.Fork != f.Truncated.Fork || !bytes.Equal(tr.Signature, unhex(t, f.Truncated.Signature)) {
		t.Fatalf("after truncate: length %d fork %d sig %x", tr.Length, tr.Fork, tr.Signature)
	}
	if w.Has(14) || !w.Has(13) {
		t.Fatal("truncate kept or lost the wrong blocks")
	}
	if _, err := w.Get(context.Background(), 15); !errors.Is(err, ErrOutOfBounds) {
		t.Fatalf("get past the truncation: %v", err)
	}
	w.Append(hexList(t, f.More)...)
	tr = w.Tree()
	if tr.Length != f.Fork1.Length || tr.Fork != 1 || !bytes.Equal(tr.Signature, unhex(t, f.Fork1.Signature)) {
		t.Fatalf("after regrowth: length %d sig %x", tr.Length, tr.Signature)
	}
	// Go now serves Node's reorg proof byte for byte
	m, _ := wire.Unmarshal(wire.TypeData, unhex(t, f.ReorgProof))
	nd := m.(*wire.Data)
	d, _, err := w.Proof(&wire.Request{ID: 1, Fork: 1, Block: &wire.RequestBlock{Index: 16}, Upgrade: &wire.RequestUpgrade{Start: 0, Length: 18}})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := wire.Marshal(d)
	b, _ := wire.Marshal(nd)
	if !bytes.Equal(a, b) {
		t.Fatalf("reorg proof\n got %x\nwant %x", a, b)
	}
	if _, err := w.Append(); err != nil || w.Truncate(99) == nil {
		t.Fatal("truncate beyond length accepted")
	}
}

// TestReaderFollowsNodeFork gives a reader all of fork 0, then Node's
// fork-1 proof: it must switch forks, drop what it can no longer vouch
// for, and never again return a fork-0 block. (Fork 1's first root spans
// blocks 0-15, which includes changed blocks, so nothing old is kept: we
// keep only whole unchanged root trees.)
func TestReaderFollowsNodeFork(t *testing.T) {
	f := loadTrunc(t)
	old, err := Create(store.NewMemory(), ed25519.NewKeyFromSeed(unhex(t, f.Seed)), CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fork0 := hexList(t, f.Blocks)
	old.Append(fork0...)
	r, _ := NewReader(store.NewMemory(), old.Key(), nil)
	up, _, _ := old.Proof(&wire.Request{Upgrade: &wire.RequestUpgrade{Start: 0, Length: 20}, Manifest: true})
	if err := r.Apply(up); err != nil {
		t.Fatal(err)
	}
	for i := uint64(0); i < 20; i++ {
		n, _ := r.MissingNodes(i)
		d, _, err := old.Proof(&wire.Request{Block: &wire.RequestBlock{Index: i, Nodes: n}})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Apply(d); err != nil {
			t.Fatal(err)
		}
	}
	if r.ContiguousLength() != 20 {
		t.Fatal("reader incomplete")
	}
	m, _ := wire.Unmarshal(wire.TypeData, unhex(t, f.ReorgProof))
	reorg := m.(*wire.Data)
	// a tampered fork proof changes nothing
	bad, _ := wire.Unmarshal(wire.TypeData, unhex(t, f.ReorgProof))
	bad.(*wire.Data).Upgrade.Signature[9] ^= 1
	if err := r.Apply(bad.(*wire.Data)); err == nil || r.Fork() != 0 || !r.Has(19) {
		t.Fatalf("tampered fork proof applied: %v", err)
	}
	if err := r.Apply(reorg); err != nil {
		t.Fatal(err)
	}
	if r.Fork() != 1 || r.Length() != 18 {
		t.Fatalf("reader at fork %d length %d", r.Fork(), r.Length())
	}
	more := hexList(t, f.More)
	if got, err := r.Get(context.Background(), 16); err != nil || !bytes.Equal(got, more[2]) {
		t.Fatalf("new block 16: %q %v", got, err)
	}
	if _, err := r.Get(context.Background(), 0); !errors.Is(err, ErrNotAvailable) {
		t.Fatalf("old block 0 after the reorg: %v", err)
	}
	for i := uint64(0); i < 20; i++ {
		if i == 16 {
			continue
		}
		if r.Has(i) {
			t.Fatalf("block %d of the old fork survived the reorg", i)
		}
	}
	// an old-fork proof is now refused
	d, _, _ := old.Proof(&wire.Request{Block: &wire.RequestBlock{Index: 15, Nodes: 4}})
	if err := r.Apply(d); err == nil {
		t.Fatal("old-fork block accepted after the reorg")
	}
}

// TestReplicatedTruncation runs a Go writer that truncates while a Go
// reader follows it over the replication protocol.
func TestReplicatedTruncation(t *testing.T) {
	w, blocks := newWriter(t, 0x45, 30)
	r, _ := NewReader(store.NewMemory(), w.Key(), nil)
	connect(t, NewReplicator(w), NewReplicator(r), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waitFor(t, "upgrade", func() bool { return r.Length() == 30 })
	for _, i := range []uint64{3, 20, 29} {
		if got, err := r.Get(ctx, i); err != nil || !bytes.Equal(got, blocks[i]) {
			t.Fatalf("get %d: %v", i, err)
		}
	}
	if err := w.Truncate(18); err != nil {
		t.Fatal(err)
	}
	w.Append([]byte("new 18"), []byte("new 19"), []byte("new 20"), []byte("new 21"))
	waitFor(t, "fork 1", func() bool { return r.Fork() == 1 && r.Length() == 22 })
	// fork 1's first root (blocks 0-15) is unchanged and kept; block 20 of
	// fork 0 is gone until fetched again from fork 1
	if !r.Has(3) || r.Has(20) {
		t.Fatalf("after the reorg: has(3)=%v has(20)=%v", r.Has(3), r.Has(20))
	}
	got, err := r.Get(ctx, 20)
	if err != nil || string(got) != "new 20" {
		t.Fatalf("new block 20: %q %v", got, err)
	}
	if got, err := r.Get(ctx, 3); err != nil || !bytes.Equal(got, blocks[3]) {
		t.Fatalf("old block 3: %q %v", got, err)
	}
}
