package bee_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"reflect"
	"testing"

	"github.com/hyperos/hyperos/hyper/bee"
	"github.com/hyperos/hyperos/hyper/bee/memcore"
)

func addFixtureBlocks(f *testing.F) [][]byte {
	fx := loadFixture(f)
	var blocks [][]byte
	for _, h := range fx.Single.Blocks[:60] {
		b, _ := hex.DecodeString(h)
		blocks = append(blocks, b)
	}
	for _, h := range fx.Batch.Blocks[:10] {
		b, _ := hex.DecodeString(h)
		blocks = append(blocks, b)
	}
	return blocks
}

func FuzzDecodeNode(f *testing.F) {
	for _, b := range addFixtureBlocks(f)[1:] {
		f.Add(b)
	}
	f.Add([]byte{0x0a, 0x00, 0x12, 0x00, 0x1a, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := bee.DecodeNode(b)
		if err != nil {
			return
		}
		again, err := bee.DecodeNode(n.Encode())
		if err != nil {
			t.Fatalf("re-encoded node does not decode: %v", err)
		}
		if !bytes.Equal(again.Index, n.Index) || !bytes.Equal(again.Key, n.Key) || !bytes.Equal(again.Value, n.Value) || (again.Value == nil) != (n.Value == nil) {
			t.Fatalf("round trip changed the node: %+v vs %+v", n, again)
		}
		if levels, err := bee.DecodeIndex(n.Index); err == nil {
			back, err := bee.DecodeIndex(bee.EncodeIndex(levels))
			if err != nil || !sameLevels(levels, back) {
				t.Fatalf("index round trip: %v %+v %+v", err, levels, back)
			}
		}
	})
}

func sameLevels(a, b []bee.Level) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i].Keys) != len(b[i].Keys) || len(a[i].Children) != len(b[i].Children) {
			return false
		}
		if len(a[i].Keys) > 0 && !reflect.DeepEqual(a[i].Keys, b[i].Keys) {
			return false
		}
		if len(a[i].Children) > 0 && !reflect.DeepEqual(a[i].Children, b[i].Children) {
			return false
		}
	}
	return true
}

func FuzzDecodeIndex(f *testing.F) {
	for _, b := range addFixtureBlocks(f)[1:] {
		if n, err := bee.DecodeNode(b); err == nil {
			f.Add(n.Index)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		levels, err := bee.DecodeIndex(b)
		if err != nil {
			return
		}
		enc := bee.EncodeIndex(levels)
		back, err := bee.DecodeIndex(enc)
		if err != nil || !sameLevels(levels, back) {
			t.Fatalf("round trip: %v", err)
		}
		// Our encoding is canonical: encoding it again changes nothing.
		if !bytes.Equal(bee.EncodeIndex(back), enc) {
			t.Fatal("encoding is not stable")
		}
	})
}

func FuzzDecodeHeader(f *testing.F) {
	f.Add([]byte("\x0a\x08hyperbee"))
	f.Add([]byte("\x0a\x08hyperbee\x12\x00"))
	f.Add([]byte("\x0a\x08hyperbee\x12\x06\x0a\x01x\x12\x01y"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := bee.DecodeHeader(b)
		if err != nil {
			return
		}
		again, err := bee.DecodeHeader(h.Encode())
		if err != nil || again.Protocol != h.Protocol || (again.Metadata == nil) != (h.Metadata == nil) {
			t.Fatalf("round trip: %v %+v %+v", err, h, again)
		}
		if h.Metadata != nil && (!bytes.Equal(h.Metadata.ContentFeed, again.Metadata.ContentFeed) || !bytes.Equal(h.Metadata.UserData, again.Metadata.UserData)) {
			t.Fatalf("metadata round trip: %+v %+v", h.Metadata, again.Metadata)
		}
	})
}

// FuzzTree reads and writes a bee made of arbitrary blocks: it must return
// errors, never panic or loop, whatever the blocks say.
func FuzzTree(f *testing.F) {
	blocks := addFixtureBlocks(f)
	var seed []byte
	for _, b := range blocks[1:12] {
		seed = append(seed, byte(len(b)))
		seed = append(seed, b...)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		core := memcore.New()
		core.Append([]byte("\x0a\x08hyperbee"))
		for len(data) > 0 && core.Length() < 40 {
			n := min(int(data[0]), len(data)-1)
			core.Append(data[1 : 1+n])
			data = data[1+n:]
		}
		ctx := context.Background()
		b := bee.New(core, nil)
		for _, k := range [][]byte{[]byte("k0001"), []byte("k0200"), {}, {0xff}} {
			b.Get(ctx, k)
		}
		for _, rev := range []bool{false, true} {
			it := b.Range(bee.RangeOptions{Reverse: rev, GTE: []byte("k01")})
			for i := 0; i < 1000; i++ {
				e, err := it.Next(ctx)
				if err != nil || e == nil {
					break
				}
			}
		}
		if v := b.Version(); v > 3 {
			b.Checkout(v).Diff(ctx, b.Checkout(v/2), bee.RangeOptions{})
		}
		b.Put(ctx, []byte("k0150"), []byte("x"))
		b.Del(ctx, []byte("k0001"))
		bt := b.Batch()
		bt.Put(ctx, []byte("a"), nil)
		bt.Del(ctx, []byte("k0002"))
		bt.Flush()
	})
}
