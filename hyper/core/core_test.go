package core

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/hyperos/hyperos/hyper/core/merkle"
	"github.com/hyperos/hyperos/hyper/core/store"
	"github.com/hyperos/hyperos/hyper/core/wire"
)

// nodeCore is the 37-block core of ../merkle/testdata/merkle.json, made by
// hyper/testdata/node/core-merkle.js with Node's hypercore.
type nodeCore struct {
	Key, Manifest, Signature, Seed, TreeHash string
	Length                                   uint64
	Blocks                                   []string
	Proofs                                   []struct {
		Request string
		Error   *string
		Data    string
	}
}

func loadNodeCore(t *testing.T, which string) *nodeCore {
	t.Helper()
	raw, err := os.ReadFile("merkle/testdata/merkle.json")
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]json.RawMessage
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	var c nodeCore
	if err := json.Unmarshal(f[which], &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func key32(t *testing.T, s string) (k [32]byte) {
	copy(k[:], unhex(t, s))
	return
}

func (c *nodeCore) blocks(t *testing.T) [][]byte {
	var out [][]byte
	for _, b := range c.Blocks {
		out = append(out, unhex(t, b))
	}
	return out
}

// TestWriterMatchesNode appends Node's blocks in Node's batches and checks
// the key and the exact signature bytes Node produced.
func TestWriterMatchesNode(t *testing.T) {
	nc := loadNodeCore(t, "core")
	priv := ed25519.NewKeyFromSeed(unhex(t, nc.Seed))
	c, err := Create(store.NewMemory(), priv, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Key() != key32(t, nc.Key) {
		t.Fatalf("key %x", c.Key())
	}
	blocks := nc.blocks(t)
	if _, err := c.Append(blocks[:10]...); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Append(blocks[10:30]...); err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks[30:] {
		if _, err := c.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	tr := c.Tree()
	if tr.Length != nc.Length || tr.Hash() != key32(t, nc.TreeHash) {
		t.Fatalf("length %d hash %x", tr.Length, tr.Hash())
	}
	if !bytes.Equal(tr.Signature, unhex(t, nc.Signature)) {
		t.Fatalf("signature\n got %x\nwant %s", tr.Signature, nc.Signature)
	}
	enc, _ := wire.MarshalManifest(c.Manifest())
	if hex.EncodeToString(enc) != nc.Manifest {
		t.Fatalf("manifest %x", enc)
	}
	for i, b := range blocks {
		got, err := c.Get(context.Background(), uint64(i))
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("get %d: %v", i, err)
		}
	}
	if _, err := c.Get(context.Background(), 37); !errors.Is(err, ErrOutOfBounds) {
		t.Fatalf("get past end: %v", err)
	}
	// Go's seeder answers Node's requests with Node's bytes.
	for i, p := range nc.Proofs {
		m, _ := wire.Unmarshal(wire.TypeRequest, unhex(t, p.Request))
		d, _, err := c.Proof(m.(*wire.Request))
		if p.Error != nil {
			if err == nil {
				t.Errorf("proof #%d: Node refused (%s), Go answered", i, *p.Error)
			}
			continue
		}
		if err != nil {
			t.Errorf("proof #%d: %v", i, err)
			continue
		}
		got, _ := wire.Marshal(d)
		if hex.EncodeToString(got) != p.Data {
			t.Errorf("proof #%d:\n got %x\nwant %s", i, got, p.Data)
		}
	}
}

func TestCompatWriterMatchesNode(t *testing.T) {
	nc := loadNodeCore(t, "compat")
	priv := ed25519.NewKeyFromSeed(unhex(t, nc.Seed))
	c, err := Create(store.NewMemory(), priv, CreateOptions{Compat: true})
	if err != nil {
		t.Fatal(err)
	}
	if c.Key() != key32(t, nc.Key) || !c.Compat() || c.Manifest() != nil {
		t.Fatalf("compat key %x", c.Key())
	}
	if _, err := c.Append(nc.blocks(t)...); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.Tree().Signature, unhex(t, nc.Signature)) {
		t.Fatal("compat signature differs from Node's")
	}
}

// TestReaderAppliesNodeProofs starts a reader from just the key, learns
// the manifest and head from Node's upgrade+manifest proof, then applies
// Node's block proofs.
func TestReaderAppliesNodeProofs(t *testing.T) {
	nc := loadNodeCore(t, "core")
	key := key32(t, nc.Key)
	blocks := nc.blocks(t)
	var upgrade *wire.Data
	var blockProofs []*wire.Data
	for _, p := range nc.Proofs {
		if p.Error != nil {
			continue
		}
		m, err := wire.Unmarshal(wire.TypeData, unhex(t, p.Data))
		if err != nil {
			t.Fatal(err)
		}
		d := m.(*wire.Data)
		if d.Manifest != nil {
			upgrade = d
		} else if d.Block != nil && d.Upgrade == nil {
			blockProofs = append(blockProofs, d)
		}
	}
	if upgrade == nil || len(blockProofs) == 0 {
		t.Fatal("fixture lacks proofs")
	}
	ok := 0
	for _, d := range blockProofs {
		r, err := NewReader(store.NewMemory(), key, nil)
		if err != nil {
			t.Fatal(err)
		}
		// without the manifest the signature cannot verify
		noManifest := *upgrade
		noManifest.Manifest = nil
		if err := r.Apply(&noManifest); err == nil {
			t.Fatal("upgrade verified without the manifest")
		}
		if err := r.Apply(upgrade); err != nil {
			t.Fatal(err)
		}
		if r.Length() != nc.Length || r.Manifest() == nil {
			t.Fatalf("reader length %d", r.Length())
		}
		err = r.Apply(d)
		idx := d.Block.Index
		if err != nil {
			// the proof assumed nodes this reader lacks: nothing stored
			if r.Has(idx) {
				t.Fatalf("block %d stored after a failed proof", idx)
			}
			continue
		}
		ok++
		got, err := r.Get(context.Background(), idx)
		if err != nil || !bytes.Equal(got, blocks[idx]) {
			t.Fatalf("block %d after proof: %v", idx, err)
		}
	}
	if ok < 5 {
		t.Fatalf("only %d block proofs applied", ok)
	}
}

func TestWriterPersistsAndReopens(t *testing.T) {
	dir := t.TempDir()
	st, err := store.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, 32))
	c, err := Create(st, priv, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if _, err := c.Append([]byte{byte(i)}, bytes.Repeat([]byte{byte(i)}, i)); err != nil {
			t.Fatal(err)
		}
	}
	key, tr := c.Key(), c.Tree()
	c.Close()
	st, err = store.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err = Open(st)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Key() != key || c.Length() != 40 || c.Tree().Hash() != tr.Hash() || !c.Writable() || c.ContiguousLength() != 40 {
		t.Fatalf("reopened: %d", c.Length())
	}
	if _, err := c.Append([]byte("more")); err != nil {
		t.Fatal(err)
	}
	v, err := merkle.NewVerifier(key, c.Manifest())
	if err != nil {
		t.Fatal(err)
	}
	if !v.Verify(merkle.NewBatch(c.Tree()), c.Tree().Signature) {
		t.Fatal("signature after reopen does not verify")
	}
	got, err := c.Get(context.Background(), 39)
	if err != nil || !bytes.Equal(got, bytes.Repeat([]byte{19}, 19)) {
		t.Fatalf("get 39: %x %v", got, err)
	}
}

// corruptingStore hands out a damaged copy of one block, as a failing disk
// might, to check that Core re-verifies what it reads.
type corruptingStore struct {
	store.Storage
	bad uint64
}

func (s *corruptingStore) GetBlock(i uint64) ([]byte, bool, error) {
	v, ok, err := s.Storage.GetBlock(i)
	if ok && i == s.bad {
		v = append(bytes.Clone(v[:len(v)-1]), v[len(v)-1]^1)
	}
	return v, ok, err
}

func TestCorruptBlockNotReturned(t *testing.T) {
	mem := store.NewMemory()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{6}, 32))
	c, err := Create(mem, priv, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.Append([]byte("one"), []byte("two"), []byte("three"))
	c2, err := Open(&corruptingStore{Storage: mem, bad: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Get(context.Background(), 1); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt block: %v", err)
	}
	if _, _, err := c2.Proof(&wire.Request{Block: &wire.RequestBlock{Index: 1}}); err == nil {
		t.Fatal("corrupt block served")
	}
	if v, err := c2.Get(context.Background(), 2); err != nil || string(v) != "three" {
		t.Fatal(err)
	}
}

// TestDiskDamageNotReturned flips a byte of a block in a Dir store's
// blocks file: Core skips its own re-hash for a self-checking store, so
// the store's checksum must catch it, for Get and for serving peers.
func TestDiskDamageNotReturned(t *testing.T) {
	dir := t.TempDir()
	st, err := store.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	c, err := Create(st, priv, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Append([]byte("first block"), []byte("second block")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	raw, err := os.ReadFile(dir + "/blocks")
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(raw, []byte("second"))
	raw[i] ^= 1
	if err := os.WriteFile(dir+"/blocks", raw, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err = store.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err = Open(st)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Get(context.Background(), 1); !isCorrupt(err) {
		t.Fatalf("damaged block: %v", err)
	}
	if _, _, err := c.Proof(&wire.Request{Block: &wire.RequestBlock{Index: 1}}); err == nil {
		t.Fatal("damaged block served")
	}
	if v, err := c.Get(context.Background(), 0); err != nil || string(v) != "first block" {
		t.Fatalf("intact block: %q %v", v, err)
	}
}

// TestGetWaitsForReplication checks that Get on a reader waits for Apply
// and honours its context.
func TestGetWaitsForReplication(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, 32))
	w, _ := Create(store.NewMemory(), priv, CreateOptions{})
	w.Append([]byte("a"), []byte("b"))
	r, err := NewReader(store.NewMemory(), w.Key(), w.Manifest())
	if err != nil {
		t.Fatal(err)
	}
	up, _, err := w.Proof(&wire.Request{Upgrade: &wire.RequestUpgrade{Start: 0, Length: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(up); err != nil {
		t.Fatal(err)
	}
	asked := make(chan uint64, 1)
	r.SetFetcher(func(i uint64) {
		select {
		case asked <- i:
		default:
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := r.Get(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("get without data: %v", err)
	}
	done := make(chan []byte)
	go func() {
		v, _ := r.Get(context.Background(), 1)
		done <- v
	}()
	i := <-asked
	n, _ := r.MissingNodes(i)
	d, _, err := w.Proof(&wire.Request{Block: &wire.RequestBlock{Index: i, Nodes: n}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(d); err != nil {
		t.Fatal(err)
	}
	if v := <-done; string(v) != "b" {
		t.Fatalf("got %q", v)
	}
}

func TestCreateRejectsForeignManifest(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	m := merkle.DefaultSignerManifest([32]byte{1})
	if _, err := Create(store.NewMemory(), priv, CreateOptions{Manifest: m}); err == nil {
		t.Fatal("core created with a manifest the key cannot sign for")
	}
	st := store.NewMemory()
	if _, err := Create(st, priv, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(st, priv, CreateOptions{}); err == nil {
		t.Fatal("second core created in the same store")
	}
	r, err := Open(st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewReader(st, [32]byte{2}, nil); err == nil {
		t.Fatal("reader for another key opened a writer's store")
	}
	_ = r
}

// TestGetWakesPerBlock runs a Get for each of 64 blocks and applies the
// blocks in shuffled order: each Get must return its own block, woken by
// that block alone. The periodic retry is pushed out of reach, so a
// missed wake-up shows as a Get that never returns.
func TestGetWakesPerBlock(t *testing.T) {
	defer func(d time.Duration) { fetchRetry = d }(fetchRetry)
	fetchRetry = time.Hour
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	w, _ := Create(store.NewMemory(), priv, CreateOptions{})
	const n = 64
	for i := 0; i < n; i++ {
		if _, err := w.Append([]byte(fmt.Sprint("block ", i))); err != nil {
			t.Fatal(err)
		}
	}
	r, err := NewReader(store.NewMemory(), w.Key(), w.Manifest())
	if err != nil {
		t.Fatal(err)
	}
	up, _, err := w.Proof(&wire.Request{Upgrade: &wire.RequestUpgrade{Start: 0, Length: n}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(up); err != nil {
		t.Fatal(err)
	}
	asked := make(chan uint64, n)
	r.SetFetcher(func(i uint64) { asked <- i })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errs := make(chan error, n)
	for i := uint64(0); i < n; i++ {
		go func() {
			v, err := r.Get(ctx, i)
			if err == nil && string(v) != fmt.Sprint("block ", i) {
				err = fmt.Errorf("block %d is %q", i, v)
			}
			errs <- err
		}()
	}
	// Apply each block once all Gets have asked, in random order.
	var order []uint64
	for len(order) < n {
		order = append(order, <-asked)
	}
	rand.New(rand.NewPCG(1, 1)).Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
	for _, i := range order {
		nodes, _ := r.MissingNodes(i)
		d, _, err := w.Proof(&wire.Request{Block: &wire.RequestBlock{Index: i, Nodes: nodes}})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Apply(d); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
