package drive

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"testing"

	"golang.org/x/crypto/blake2b"

	"github.com/hyperos/hyperos/hyper/bee"
	"github.com/hyperos/hyperos/hyper/blobs"
	"github.com/hyperos/hyperos/hyper/core"
	"github.com/hyperos/hyperos/hyper/core/merkle"
	"github.com/hyperos/hyperos/hyper/core/store"
)

// hyper/core's cores are what this package is meant to run on.
var (
	_ bee.Core   = (*core.Core)(nil)
	_ blobs.Core = (*core.Core)(nil)
	_ DBCore     = (*core.Core)(nil)
)

// corestoreKeyPair derives a named key pair as Node's corestore does
// (default namespace), so the test can create the same cores Node did.
func corestoreKeyPair(t *testing.T, primary []byte, name string) ed25519.PrivateKey {
	h, err := blake2b.New256(primary)
	if err != nil {
		t.Fatal(err)
	}
	h.Write(merkle.Namespace("corestore", 1)[0][:])
	h.Write(make([]byte, 32))
	h.Write([]byte(name))
	return ed25519.NewKeyFromSeed(h.Sum(nil))
}

// TestWriteOnRealCores writes the fixture drive onto signed hyper/core
// cores created from the same key pair as Node's, checking that the keys
// (db and derived blobs) and every block come out as Node's.
func TestWriteOnRealCores(t *testing.T) {
	f := loadFixture(t)
	ctx := context.Background()
	priv := corestoreKeyPair(t, bytesOf(2, 32), "db")
	db, err := core.Create(store.NewMemory(), priv, core.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if k := db.Key(); hex.EncodeToString(k[:]) != f.Key {
		t.Fatalf("db key %x, Node's is %s", k, f.Key)
	}
	bm := BlobsManifest(db.Manifest(), db.Key())
	bc, err := core.Create(store.NewMemory(), priv, core.CreateOptions{Manifest: bm})
	if err != nil {
		t.Fatal(err)
	}
	if k := bc.Key(); hex.EncodeToString(k[:]) != f.BlobsKey {
		t.Fatalf("blobs key %x, Node's is %s", k, f.BlobsKey)
	}
	d := New(db, bc, nil)
	for _, op := range f.Ops {
		if op.Op == "batch" {
			b, err := d.Batch()
			if err != nil {
				t.Fatal(err)
			}
			for _, bop := range op.Ops {
				replay(t, ctx, b, bop)
			}
			if err := b.Flush(); err != nil {
				t.Fatal(err)
			}
			continue
		}
		replay(t, ctx, d, op)
	}
	k, err := BlobsKeyOf(ctx, db)
	if err != nil || k != bc.Key() {
		t.Fatalf("BlobsKey from the written db: %x %v", k, err)
	}
	for name, c := range map[string]*core.Core{"db": db, "blobs": bc} {
		want := f.DBBlocks
		if name == "blobs" {
			want = f.BlobBlocks
		}
		if c.Length() != uint64(len(want)) {
			t.Fatalf("%s: length %d, Node's %d", name, c.Length(), len(want))
		}
		for i := range want {
			b, err := c.Get(ctx, uint64(i))
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(b) != want[i] {
				t.Fatalf("%s block %d differs", name, i)
			}
		}
	}
	// Ed25519 signatures are deterministic, so a drive written by the
	// same operations with the same key pair is signed identically.
	for name, c := range map[string]*core.Core{"db": db, "blobs": bc} {
		wantHash, wantSig := f.DBTreeHash, f.DBSignature
		if name == "blobs" {
			wantHash, wantSig = f.BlobsTreeHash, f.BlobsSig
		}
		tr := c.Tree()
		h := tr.Hash()
		if hex.EncodeToString(h[:]) != wantHash || hex.EncodeToString(tr.Signature) != wantSig {
			t.Errorf("%s: tree hash %x signature %x, Node's %s %s", name, h, tr.Signature, wantHash, wantSig)
		}
	}
	checkQueries(t, d, f)
}

func bytesOf(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}
