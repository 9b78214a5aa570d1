package blobs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"reflect"
	"testing"

	"github.com/hyperos/hyperos/hyper/bee/memcore"
	"github.com/hyperos/hyperos/hyper/blobs"
)

func FuzzIDJSON(f *testing.F) {
	f.Add(`{"blockOffset":1,"byteOffset":3,"blockLength":2,"byteLength":4}`)
	f.Add(`{"byteLength":4,"blockLength":2,"blockOffset":1,"byteOffset":3,"blockMap":true}`)
	f.Add(`{"blockOffset":9007199254740991,"byteOffset":0,"blockLength":0,"byteLength":0}`)
	f.Fuzz(func(t *testing.T, s string) {
		var id blobs.ID
		if err := json.Unmarshal([]byte(s), &id); err != nil {
			return
		}
		b, err := json.Marshal(id)
		if err != nil {
			t.Fatal(err)
		}
		var back blobs.ID
		if err := json.Unmarshal(b, &back); err != nil || back != id {
			t.Fatalf("round trip of %s via %s: %+v %v", s, b, back, err)
		}
	})
}

func FuzzDecodeBlockMap(f *testing.F) {
	seed, _ := blobs.EncodeBlockMap([]blobs.MapEntry{{Index: 1, ByteLength: 65536}, {Index: 300, ByteLength: 7}})
	f.Add(seed)
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := blobs.DecodeBlockMap(b)
		if err != nil {
			return
		}
		enc, err := blobs.EncodeBlockMap(m)
		if err != nil {
			t.Fatal(err)
		}
		back, err := blobs.DecodeBlockMap(enc)
		if err != nil || len(back) != len(m) || (len(m) > 0 && !reflect.DeepEqual(back, m)) {
			t.Fatalf("round trip: %v %+v %+v", err, m, back)
		}
	})
}

// FuzzReader reads arbitrary ids over arbitrary blocks: errors are fine,
// panics, hangs and reads past the id are not.
func FuzzReader(f *testing.F) {
	f.Add([]byte("hello world, this is a blob"), uint8(3), uint8(0), uint8(2), uint16(20), false, uint16(5), uint8(9))
	m, _ := blobs.EncodeBlockMap([]blobs.MapEntry{{Index: 0, ByteLength: 4}, {Index: 1, ByteLength: 4}})
	f.Add(append(m, []byte("0123456789")...), uint8(5), uint8(1), uint8(1), uint16(8), true, uint16(3), uint8(4))
	f.Fuzz(func(t *testing.T, data []byte, nblocks, off, length uint8, bytes uint16, blockMap bool, at uint16, n uint8) {
		core := memcore.New()
		if nblocks == 0 {
			nblocks = 1
		}
		step := max(1, len(data)/int(nblocks))
		for i := 0; i < len(data); i += step {
			core.Append(data[i:min(len(data), i+step)])
		}
		id := blobs.ID{BlockOffset: uint64(off), BlockLength: uint64(length), ByteLength: uint64(bytes), BlockMap: blockMap}
		bl := blobs.New(core, &blobs.Options{BlockSize: 7})
		if got, err := bl.Get(context.Background(), id); err == nil && !blockMap && uint64(len(got)) != id.ByteLength {
			t.Fatalf("Get returned %d bytes for an id of %d", len(got), id.ByteLength)
		}
		r := bl.NewReader(context.Background(), id)
		buf := make([]byte, n)
		k, err := r.ReadAt(buf, int64(at))
		if err == nil && k != len(buf) {
			t.Fatalf("short read %d of %d without error", k, len(buf))
		}
		if err == io.EOF && k == len(buf) && len(buf) > 0 {
			t.Fatalf("EOF with a full buffer")
		}
	})
}

// FuzzWriteRead writes arbitrary content in every mode and reads it back,
// whole and in ranges.
func FuzzWriteRead(f *testing.F) {
	f.Add([]byte("hello hello hello hello"), uint8(5), uint8(0), uint16(3), uint8(7))
	f.Add(make([]byte, 300), uint8(16), uint8(2), uint16(100), uint8(50))
	f.Fuzz(func(t *testing.T, data []byte, bs uint8, mode uint8, at uint16, n uint8) {
		ctx := context.Background()
		core := memcore.New()
		bl := blobs.New(core, &blobs.Options{BlockSize: int(bs%32) + 1})
		prevData := append([]byte("prefix"), data...)
		prev, err := bl.Put(ctx, prevData)
		if err != nil {
			t.Fatal(err)
		}
		opts := blobs.WriterOptions{BlockMap: mode%3 == 1, Dedup: mode%3 == 2}
		if mode&4 != 0 {
			opts.Previous = &prev
		}
		w := bl.NewWriterWith(ctx, opts)
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := bl.Get(ctx, w.ID())
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back %q (%v), wrote %q", got, err, data)
		}
		if size, err := bl.ByteLength(ctx, w.ID()); err != nil || size != uint64(len(data)) {
			t.Fatalf("ByteLength %d %v, want %d", size, err, len(data))
		}
		if int(at) < len(data) {
			buf := make([]byte, min(int(n), len(data)-int(at)))
			if _, err := bl.NewReader(ctx, w.ID()).ReadAt(buf, int64(at)); err != nil || !bytes.Equal(buf, data[int(at):int(at)+len(buf)]) {
				t.Fatalf("ReadAt(%d, %d): %q %v", at, len(buf), buf, err)
			}
		}
		if again, err := bl.Get(ctx, prev); err != nil || !bytes.Equal(again, prevData) {
			t.Fatalf("previous blob changed: %v", err)
		}
	})
}
