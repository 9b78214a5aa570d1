package core

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"testing"

	"github.com/hyperos/hyperos/hyper/core/store"
	"github.com/hyperos/hyperos/hyper/core/wire"
)

// fuzzFrames encodes messages as type ‖ u16 length ‖ body for the fuzzer.
func fuzzFrames(ms ...wire.Message) []byte {
	var out []byte
	for _, m := range ms {
		b, err := wire.Marshal(m)
		if err != nil {
			panic(err)
		}
		out = append(out, byte(m.Type()), byte(len(b)), byte(len(b)>>8))
		out = append(out, b...)
	}
	return out
}

func fuzzWriter(f *testing.F) (*Core, [][]byte) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x42}, 32))
	w, err := Create(store.NewMemory(), priv, CreateOptions{})
	if err != nil {
		f.Fatal(err)
	}
	var blocks [][]byte
	for i := 0; i < 50; i++ {
		blocks = append(blocks, []byte(fmt.Sprintf("fuzz block %d", i)))
	}
	if _, err := w.Append(blocks...); err != nil {
		f.Fatal(err)
	}
	return w, blocks
}

// FuzzPeer feeds arbitrary message sequences to a seeder and to a reader.
// Nothing may panic, the seeder's core must not change, and the reader may
// only ever hold the writer's real blocks and signed length.
func FuzzPeer(f *testing.F) {
	w, blocks := fuzzWriter(f)
	up, _, _ := w.Proof(&wire.Request{ID: 1, Upgrade: &wire.RequestUpgrade{Start: 0, Length: 50}, Manifest: true})
	blk, _, _ := w.Proof(&wire.Request{ID: 1, Block: &wire.RequestBlock{Index: 3, Nodes: 5}})
	f.Add(fuzzFrames(
		&wire.Sync{Length: 50, CanUpgrade: true, Uploading: true, HasManifest: true},
		&wire.Range{Start: 0, Length: 50},
		up, blk,
		&wire.Request{ID: 7, Block: &wire.RequestBlock{Index: 3}},
		&wire.Want{Start: 0, Length: 1 << 21},
		&wire.NoData{Request: 1, Reason: 1},
		&wire.Bitfield{Start: 0, Bitfield: []uint32{0xff}},
	))
	key := w.Key()
	wtree := w.Tree()
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(store.NewMemory(), key, nil)
		if err != nil {
			t.Fatal(err)
		}
		rr := NewReplicator(r)
		rp := rr.AddPeer(func(wire.Message) error { return nil })
		rp.Open()
		rr.fetch(3)
		wr := NewReplicator(w)
		wp := wr.AddPeer(func(wire.Message) error { return nil })
		wp.Open()
		for len(data) >= 3 {
			typ := wire.MessageType(data[0] % byte(wire.NumMessageTypes))
			n := int(data[1]) | int(data[2])<<8
			data = data[3:]
			if n > len(data) {
				n = len(data)
			}
			body := data[:n]
			data = data[n:]
			m, err := wire.Unmarshal(typ, body)
			if err != nil {
				continue
			}
			rp.Handle(m)
			wp.Handle(m)
		}
		wp.Close()
		if w.Length() != 50 || w.Tree().Hash() != wtree.Hash() {
			t.Fatal("seeder core changed")
		}
		if l := r.Length(); l != 0 && l != 50 {
			t.Fatalf("reader at unsigned length %d", l)
		}
		for i := uint64(0); i < 50; i++ {
			if v, ok, err := r.local(i); err != nil || (ok && !bytes.Equal(v, blocks[i])) {
				t.Fatalf("reader holds a false block %d: %v", i, err)
			}
		}
	})
}

// TestHaveMatchesNaiveSet checks the remote-availability tracker against a
// plain set under random ranges, drops and huge hostile lengths.
func TestHaveMatchesNaiveSet(t *testing.T) {
	var h have
	naive := map[uint64]bool{}
	seed := uint64(12345)
	rnd := func(n uint64) uint64 {
		seed = seed*6364136223846793005 + 1442695040888963407
		return (seed >> 33) % n
	}
	for step := 0; step < 3000; step++ {
		start, length := rnd(700), rnd(90)
		v := rnd(3) != 0
		h.setRange(start, length, v)
		for i := start; i < start+length; i++ {
			naive[i] = v
		}
		for i := uint64(0); i < 900; i++ {
			if h.get(i) != naive[i] {
				t.Fatalf("step %d: index %d: got %v want %v", step, i, h.get(i), naive[i])
			}
		}
	}
	h.setRange(1<<40, 1<<50, true)
	h.setRange(0, ^uint64(0), true)
	if !h.get(1<<62) || len(h.words) > maxSparseBits/64 {
		t.Fatal("huge ranges mishandled")
	}
}
