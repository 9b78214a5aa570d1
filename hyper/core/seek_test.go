package core

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hyperos/hyperos/hyper/core/store"
	"github.com/hyperos/hyperos/hyper/core/wire"
)

// bruteSeek is the reference: walk the block sizes.
func bruteSeek(blocks [][]byte, bytes uint64) (uint64, uint64) {
	for i, b := range blocks {
		if bytes < uint64(len(b)) {
			return uint64(i), bytes
		}
		bytes -= uint64(len(b))
	}
	return uint64(len(blocks)), 0
}

// seekOffsets picks offsets at block edges and in between.
func seekOffsets(rng *rand.Rand, blocks [][]byte) []uint64 {
	var total uint64
	var out []uint64
	for _, b := range blocks {
		out = append(out, total, total+uint64(len(b))/2)
		total += uint64(len(b))
	}
	out = append(out, total)
	for i := 0; i < 50; i++ {
		out = append(out, uint64(rng.IntN(int(total)+1)))
	}
	return out
}

func TestSeekLocal(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	w, blocks := newWriter(t, 20, 77)
	// a few empty blocks make the edge cases interesting
	empty := [][]byte{{}, {}, []byte("after two empty blocks")}
	w.Append(empty...)
	blocks = append(blocks, empty...)
	ctx := context.Background()
	for _, off := range seekOffsets(rng, blocks) {
		i, rel, err := w.Seek(ctx, off)
		if err != nil {
			t.Fatalf("seek %d: %v", off, err)
		}
		// With empty blocks several blocks start at the same offset and
		// Node's tree walk may name any of them, so check the meaning:
		// block i starts at off-rel and holds byte off (or is empty/last).
		var start uint64
		for _, b := range blocks[:min(i, uint64(len(blocks)))] {
			start += uint64(len(b))
		}
		if start+rel != off {
			t.Fatalf("seek %d = (%d, %d): block starts at %d", off, i, rel, start)
		}
		if i < uint64(len(blocks)) && rel >= uint64(len(blocks[i])) && !(rel == 0 && len(blocks[i]) == 0) {
			t.Fatalf("seek %d = (%d, %d): offset outside block of %d bytes", off, i, rel, len(blocks[i]))
		}
		if wi, wrel := bruteSeek(blocks, off); wrel != 0 && (i != wi || rel != wrel) {
			t.Fatalf("seek %d = (%d, %d), want (%d, %d)", off, i, rel, wi, wrel)
		}
	}
	if _, _, err := w.Seek(ctx, w.ByteLength()+1); !errors.Is(err, ErrOutOfBounds) {
		t.Fatalf("seek past the end: %v", err)
	}
}

// TestSeekSparseReader seeks on a reader that holds no blocks: the way
// down the tree comes from peers as hash+seek proofs, and no block is
// downloaded.
func TestSeekSparseReader(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	w, blocks := newWriter(t, 21, 300)
	r, _ := NewReader(store.NewMemory(), w.Key(), nil)
	var seekRequests atomic.Int64
	tap := func(m wire.Message) wire.Message {
		if q, ok := m.(*wire.Request); ok && q.Seek != nil && q.Hash != nil {
			seekRequests.Add(1)
		}
		return m
	}
	connect(t, NewReplicator(r), NewReplicator(w), tap)
	waitFor(t, "upgrade", func() bool { return r.Length() == 300 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, off := range seekOffsets(rng, blocks)[:120] {
		i, rel, err := r.Seek(ctx, off)
		if err != nil {
			t.Fatalf("seek %d: %v", off, err)
		}
		if wi, wrel := bruteSeek(blocks, off); i != wi || rel != wrel {
			t.Fatalf("seek %d = (%d, %d), want (%d, %d)", off, i, rel, wi, wrel)
		}
	}
	for i := uint64(0); i < 300; i++ {
		if r.Has(i) {
			t.Fatalf("seeking downloaded block %d", i)
		}
	}
	if n := seekRequests.Load(); n == 0 || n > 200 {
		t.Fatalf("%d hash+seek requests for 120 seeks", n)
	}
	t.Logf("%d hash+seek requests", seekRequests.Load())
}
