package merkle

import (
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/hyperos/hyperos/hyper/core/flat"
	"github.com/hyperos/hyperos/hyper/core/wire"
)

type testCore struct {
	tree   *Tree
	nodes  NodeMap
	blocks [][]byte
	v      *Verifier
	priv   ed25519.PrivateKey
}

func newTestCore(t testing.TB, rng *rand.Rand, length int) *testCore {
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(rng.IntN(256))
	}
	priv := ed25519.NewKeyFromSeed(seed)
	var pub [32]byte
	copy(pub[:], priv.Public().(ed25519.PublicKey))
	m := DefaultSignerManifest(pub)
	key, _ := ManifestHash(m)
	v, err := NewVerifier(key, m)
	if err != nil {
		t.Fatal(err)
	}
	b := NewBatch(&Tree{})
	tc := &testCore{nodes: NodeMap{}, v: v, priv: priv}
	for i := 0; i < length; i++ {
		blk := make([]byte, rng.IntN(40))
		for k := range blk {
			blk[k] = byte(rng.IntN(256))
		}
		tc.blocks = append(tc.blocks, blk)
		b.Append(blk)
	}
	sig, err := v.Sign(b, priv)
	if err != nil {
		t.Fatal(err)
	}
	b.Signature = sig
	for _, n := range b.Nodes {
		tc.nodes[n.Index] = n
	}
	tc.tree = b.Tree()
	return tc
}

// reader returns the state of a reader that verified everything up to length.
func (tc *testCore) reader(t testing.TB, length uint64) (*Tree, NodeMap) {
	known := NodeMap{}
	for i, n := range tc.nodes {
		if flat.RightSpan(i) < 2*length {
			known[i] = n
		}
	}
	tr := &Tree{Fork: tc.tree.Fork, Length: length}
	if length > 0 {
		roots, err := RootsAt(known, length)
		if err != nil {
			t.Fatal(err)
		}
		tr.Roots, tr.ByteLength = roots, TotalSize(roots)
	}
	return tr, known
}

// TestRandomProofsRoundTrip generates proofs in Go for random requests
// from random reader positions, and verifies them in Go: whatever the
// generator accepts must verify and must only teach true nodes.
func TestRandomProofsRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	verified := 0
	for round := 0; round < 40; round++ {
		length := 1 + rng.IntN(300)
		tc := newTestCore(t, rng, length)
		for q := 0; q < 60; q++ {
			rl := uint64(rng.IntN(length + 1))
			reader, known := tc.reader(t, rl)
			var req ProofRequest
			if rl < uint64(length) {
				req.Upgrade = &wire.RequestUpgrade{Start: rl, Length: uint64(1 + rng.IntN(length-int(rl)))}
			}
			switch rng.IntN(3) {
			case 0:
				idx := uint64(rng.IntN(length))
				if req.Upgrade == nil && idx >= rl {
					idx = uint64(rng.IntN(int(max(rl, 1))))
				}
				nodes, err := MissingNodes(known, 2*idx, rl)
				if err != nil {
					t.Fatal(err)
				}
				req.Block = &wire.RequestBlock{Index: idx, Nodes: nodes}
			case 1:
				if total := tc.tree.ByteLength; total > 0 {
					req.Seek = &wire.RequestSeek{Bytes: uint64(rng.IntN(int(total)))}
				}
			}
			d, err := GenerateProof(tc.tree, tc.nodes, req)
			if err != nil {
				continue // e.g. a block beyond the reader's length without upgrade
			}
			if d.Block != nil {
				d.Block.Value = tc.blocks[d.Block.Index]
			}
			b, err := Verify(reader, known, d, tc.v)
			if err != nil {
				t.Fatalf("len %d reader %d req %+v: %v", length, rl, describe(req), err)
			}
			for _, n := range b.Nodes {
				if tc.nodes[n.Index] != n {
					t.Fatalf("learned a false node %d", n.Index)
				}
			}
			verified++
		}
	}
	if verified < 1000 {
		t.Fatalf("only %d proofs verified", verified)
	}
}

func describe(r ProofRequest) string {
	s := ""
	if r.Block != nil {
		s += fmt.Sprintf("block %+v ", *r.Block)
	}
	if r.Seek != nil {
		s += fmt.Sprintf("seek %+v ", *r.Seek)
	}
	if r.Upgrade != nil {
		s += fmt.Sprintf("upgrade %+v", *r.Upgrade)
	}
	return s
}

// FuzzVerify feeds arbitrary data messages to a reader of the fixture
// core. Nothing may panic, and anything accepted may only teach nodes of
// the real tree: forging a proof would take a hash collision.
func FuzzVerify(f *testing.F) {
	fx := loadFixture(f)
	for _, p := range fx.Core.Proofs {
		if p.Error == nil {
			f.Add(uint8(0), p.Data.bytes(f))
			f.Add(uint8(20), p.Data.bytes(f))
		}
	}
	_, all := coreState(f, &fx.Core)
	v := fx.Core.verifier(f)
	readers := map[uint64][2]any{}
	f.Fuzz(func(t *testing.T, at uint8, data []byte) {
		m, err := wire.Unmarshal(wire.TypeData, data)
		if err != nil {
			return
		}
		rl := uint64(at) % (fx.Core.Length + 1)
		r, ok := readers[rl]
		if !ok {
			tr, known := readerFor(t, &fx.Core, rl)
			r = [2]any{tr, known}
			readers[rl] = r
		}
		b, err := Verify(r[0].(*Tree).Clone(), r[1].(NodeMap), m.(*wire.Data), v)
		if err != nil {
			return
		}
		for _, n := range b.Nodes {
			if all[n.Index] != n {
				t.Fatalf("accepted a false node %+v", n)
			}
		}
	})
}

func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{64, 4096, 65536} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			blk := make([]byte, size)
			b.SetBytes(int64(size))
			batch := NewBatch(&Tree{})
			for i := 0; i < b.N; i++ {
				batch.Append(blk)
				if len(batch.Nodes) > 4096 {
					batch.Nodes = batch.Nodes[:0]
				}
			}
		})
	}
}

func BenchmarkVerifyBlockUpgrade(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	tc := newTestCore(b, rng, 10000)
	reader, known := tc.reader(b, 0)
	d, err := GenerateProof(tc.tree, tc.nodes, ProofRequest{Block: &wire.RequestBlock{Index: 4321}, Upgrade: &wire.RequestUpgrade{Start: 0, Length: 10000}})
	if err != nil {
		b.Fatal(err)
	}
	d.Block.Value = tc.blocks[4321]
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Verify(reader, known, d, tc.v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyBlock(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	tc := newTestCore(b, rng, 10000)
	reader, _ := tc.reader(b, 10000)
	roots := NodeMap{}
	for _, r := range reader.Roots {
		roots[r.Index] = r
	}
	nodes, _ := MissingNodes(roots, 2*4321, 10000)
	d, err := GenerateProof(tc.tree, tc.nodes, ProofRequest{Block: &wire.RequestBlock{Index: 4321, Nodes: nodes}})
	if err != nil {
		b.Fatal(err)
	}
	d.Block.Value = tc.blocks[4321]
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Verify(reader, roots, d, tc.v); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzGenerateProof throws arbitrary requests at a seeder's proof
// generator: it must never panic or loop, and whatever it produces for a
// block request with an upgrade from 0 must verify for a fresh reader.
func FuzzGenerateProof(f *testing.F) {
	fx := loadFixture(f)
	full, all := coreState(f, &fx.Core)
	v := fx.Core.verifier(f)
	blocks := fx.Core.Blocks
	f.Add(uint8(1), uint64(3), uint64(0), uint64(0), uint64(0), uint64(0), uint64(37))
	f.Add(uint8(4), uint64(0), uint64(0), uint64(100), uint64(1), uint64(0), uint64(37))
	f.Add(uint8(2), uint64(7), uint64(2), uint64(0), uint64(0), uint64(16), uint64(21))
	f.Fuzz(func(t *testing.T, flags uint8, index, nodes, bytes, padding, start, length uint64) {
		var req ProofRequest
		if flags&1 != 0 {
			req.Block = &wire.RequestBlock{Index: index, Nodes: nodes}
		} else if flags&2 != 0 {
			req.Hash = &wire.RequestBlock{Index: index, Nodes: nodes}
		}
		if flags&4 != 0 {
			req.Seek = &wire.RequestSeek{Bytes: bytes, Padding: padding}
		}
		if flags&8 != 0 || flags&1 == 0 {
			req.Upgrade = &wire.RequestUpgrade{Start: start, Length: length}
		}
		d, err := GenerateProof(full, all, req)
		if err != nil {
			return
		}
		if req.Block != nil && req.Upgrade != nil && req.Upgrade.Start == 0 && req.Seek == nil && d.Block != nil && index < uint64(len(blocks)) {
			d.Block.Value = blocks[index].bytes(t)
			if _, err := Verify(&Tree{}, NodeMap{}, d, v); err != nil {
				t.Fatalf("generated proof for %+v does not verify: %v", describe(req), err)
			}
		}
	})
}
