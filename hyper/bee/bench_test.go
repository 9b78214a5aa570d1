package bee_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/hyperos/hyperos/hyper/bee"
	"github.com/hyperos/hyperos/hyper/bee/memcore"
)

func benchKey(i uint64) []byte {
	return fmt.Appendf(nil, "files\x00/dir%03d/file-%08x", i%97, i*2654435761%(1<<32))
}

func filledBee(b *testing.B, n int) *bee.Bee {
	b.Helper()
	ctx := context.Background()
	bt := bee.New(memcore.New(), nil)
	batch := bt.Batch()
	for i := 0; i < n; i++ {
		if err := batch.Put(ctx, benchKey(uint64(i)), []byte(`{"executable":false,"linkname":null,"blob":null,"metadata":null}`)); err != nil {
			b.Fatal(err)
		}
		if batch.Len() == 1000 {
			if err := batch.Flush(); err != nil {
				b.Fatal(err)
			}
			batch = bt.Batch()
		}
	}
	if err := batch.Flush(); err != nil {
		b.Fatal(err)
	}
	return bt
}

func BenchmarkGet(b *testing.B) {
	const n = 100000
	bt := filledBee(b, n)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	for b.Loop() {
		e, err := bt.Get(ctx, benchKey(r.Uint64N(n)))
		if err != nil || e == nil {
			b.Fatal(err, e)
		}
	}
}

func BenchmarkPut(b *testing.B) {
	bt := filledBee(b, 10000)
	ctx := context.Background()
	var i uint64 = 10000
	for b.Loop() {
		var v [8]byte
		binary.LittleEndian.PutUint64(v[:], i)
		if err := bt.Put(ctx, benchKey(i), v[:]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkRange1000(b *testing.B) {
	bt := filledBee(b, 100000)
	ctx := context.Background()
	for b.Loop() {
		it := bt.Range(bee.RangeOptions{GTE: []byte("files\x00/dir050/"), Limit: 1000})
		n := 0
		for {
			e, err := it.Next(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if e == nil {
				break
			}
			n++
		}
		if n != 1000 {
			b.Fatalf("%d entries", n)
		}
	}
}
