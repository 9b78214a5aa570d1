package merkle

import (
	"math/rand/v2"
	"testing"
)

// TestLeafHashes checks the paired hashing against LeafHash for lengths
// around every block boundary and some large blocks, with and without
// the assembly.
func TestLeafHashes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var lengths []int
	for n := 0; n <= 600; n++ {
		lengths = append(lengths, n)
	}
	lengths = append(lengths, 4096, 65536, 65536+119, 65536+120, 1<<20+5)
	check := func(t *testing.T) {
		for _, n := range lengths {
			blocks := make([][]byte, 3)
			for i := range blocks {
				blocks[i] = make([]byte, n)
				for j := range blocks[i] {
					blocks[i][j] = byte(rng.Uint32())
				}
			}
			got := LeafHashes(blocks)
			for i, b := range blocks {
				if got[i] != LeafHash(b) {
					t.Fatalf("length %d, block %d: paired hash differs", n, i)
				}
			}
		}
		// Unequal lengths are hashed one by one.
		got := LeafHashes([][]byte{make([]byte, 10), make([]byte, 11)})
		if got[0] != LeafHash(make([]byte, 10)) || got[1] != LeafHash(make([]byte, 11)) {
			t.Fatal("unequal lengths")
		}
	}
	t.Run("as built", check)
	if haveBlake2bAsm {
		haveBlake2bAsm = false
		defer func() { haveBlake2bAsm = true }()
		t.Run("portable", check)
	}
}

func BenchmarkLeafHashes(b *testing.B) {
	blocks := [][]byte{make([]byte, 65536), make([]byte, 65536)}
	b.SetBytes(2 * 65536)
	for i := 0; i < b.N; i++ {
		LeafHashes(blocks)
	}
}

func BenchmarkLeafHash(b *testing.B) {
	block := make([]byte, 65536)
	b.SetBytes(65536)
	for i := 0; i < b.N; i++ {
		LeafHash(block)
	}
}

// FuzzLeafHashes holds the paired assembly hash to LeafHash for any two
// blocks of one length.
func FuzzLeafHashes(f *testing.F) {
	f.Add([]byte("a"), []byte("b"))
	f.Add(make([]byte, 129), make([]byte, 129))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		n := min(len(a), len(b))
		a, b = a[:n], b[:n]
		got := LeafHashes([][]byte{a, b})
		if got[0] != LeafHash(a) || got[1] != LeafHash(b) {
			t.Fatalf("length %d: the paired hash differs from LeafHash", n)
		}
	})
}
