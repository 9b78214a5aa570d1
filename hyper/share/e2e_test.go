//go:build e2e

package share

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hyperos/hyperos/hyper/corestore"
	"github.com/hyperos/hyperos/hyper/link"
)

// TestNodeWrites100MB: Node writes the mixed drive plus a 100 MB file and
// seeds it; Go fetches everything into an on-disk store (as hyperos get
// does), checks every file against Node's digests, then fetches again from
// the store alone.
func TestNodeWrites100MB(t *testing.T) {
	const size = 100 << 20
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	n := startNode(t, "seed", "mixed+big:104857600")
	var seed nodeSeed
	n.next(t, 3*time.Minute, &seed)
	if e := seed.Entries["/big.bin"]; e == nil || e.Size != size {
		t.Fatalf("Node wrote /big.bin as %+v", e)
	}
	tmp := t.TempDir()
	st, err := corestore.Open(filepath.Join(tmp, "store"), nil)
	if err != nil {
		t.Fatal(err)
	}
	conns := dial(t, st, seed.addr())
	d, err := OpenRemote(ctx, st, seed.key(t), conns)
	if err != nil {
		t.Fatal(err)
	}
	checkAgainstNode(t, ctx, d, seed.Entries)
	dest := filepath.Join(tmp, "out")
	l := link.Link{Key: seed.key(t), Path: "/"}
	if _, err := Fetch(ctx, d, l, dest, &FetchOptions{Conns: conns}); err != nil {
		t.Fatal(err)
	}
	for name, e := range seed.Entries {
		if e.Linkname != nil {
			continue
		}
		f, err := os.Open(filepath.Join(dest, filepath.FromSlash(name[1:])))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		io.Copy(h, f)
		f.Close()
		if e.Size > 0 && hex.EncodeToString(h.Sum(nil)) != e.SHA256 {
			t.Errorf("%s differs from Node's", name)
		}
	}
	n.stop()
	for _, c := range conns {
		c.Close()
	}
	st.Close()

	st, err = corestore.Open(filepath.Join(tmp, "store"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d, err = OpenRemote(ctx, st, seed.key(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	one := filepath.Join(tmp, "again.bin")
	if _, err := Fetch(ctx, d, link.Link{Key: seed.key(t), Path: "/big.bin"}, one, nil); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(one)
	if sha(b) != seed.Entries["/big.bin"].SHA256 {
		t.Error("the offline copy of /big.bin differs")
	}
}
