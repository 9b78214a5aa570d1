package core

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"testing"

	"github.com/hyperos/hyperos/hyper/core/store"
)

// BenchmarkAppend measures Core.Append end to end: hashing, tree update,
// Ed25519 signing and the store commit (fsync for Dir). The Memory store
// keeps every block, so its long runs also measure heap growth.
func BenchmarkAppend(b *testing.B) {
	for _, tc := range []struct {
		name  string
		size  int
		batch int
		dir   bool
	}{
		{"mem/4KiB/x1", 4096, 1, false},
		{"mem/4KiB/x64", 4096, 64, false},
		{"mem/64KiB/x16", 65536, 16, false},
		{"dir/4KiB/x1", 4096, 1, true},
		{"dir/64KiB/x16", 65536, 16, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var st store.Storage = store.NewMemory()
			if tc.dir {
				d, err := store.OpenDir(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				st = d
			}
			priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
			c, err := Create(st, priv, CreateOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			blocks := make([][]byte, tc.batch)
			for i := range blocks {
				blocks[i] = bytes.Repeat([]byte{byte(i)}, tc.size)
			}
			b.SetBytes(int64(tc.size * tc.batch))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Append(blocks...); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReplicate measures a sparse reader fetching every block of a
// 64 KiB-block core from a seeder over an in-memory link: wire encoding,
// proof generation, verification and storage.
func BenchmarkReplicate(b *testing.B) {
	const n, size = 256, 65536
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32))
	w, _ := Create(store.NewMemory(), priv, CreateOptions{})
	for i := 0; i < n; i++ {
		w.Append(bytes.Repeat([]byte(fmt.Sprint(i)), size/len(fmt.Sprint(i))))
	}
	b.SetBytes(int64(n) * size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, _ := NewReader(store.NewMemory(), w.Key(), nil)
		connectBench(b, NewReplicator(w), NewReplicator(r))
		ctx := context.Background()
		for j := uint64(0); j < n; j++ {
			if _, err := r.Get(ctx, j); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// connectBench is connect for benchmarks: links close when b finishes.
func connectBench(b *testing.B, a, c *Replicator) {
	ab := &link{ch: make(chan []byte, 4096), done: make(chan struct{}), errs: make(chan error, 16)}
	ca := &link{ch: make(chan []byte, 4096), done: make(chan struct{}), errs: make(chan error, 16)}
	pa := a.AddPeer(ab.send)
	pc := c.AddPeer(ca.send)
	go ab.run(pc)
	go ca.run(pa)
	b.Cleanup(func() { pa.Close(); pc.Close(); close(ab.done); close(ca.done) })
	pa.Open()
	pc.Open()
}
