//go:build e2e

package share

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
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

// TestGoWrites100MBNodeReads: Go shares a tree with a 100 MB file from an
// on-disk store (two versions); Node's hyperdrive reads every entry and
// digests every file.
func TestGoWrites100MBNodeReads(t *testing.T) {
	requireNode(t)
	tmp := t.TempDir()
	src, want, _ := goDrive(t, tmp)
	f, err := os.Create(filepath.Join(src, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), &patternReader{size: 100 << 20}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s := startSeeder(t, filepath.Join(tmp, "seed"), src)
	os.Remove(filepath.Join(src, "gone.txt"))
	delete(want, "gone.txt")
	res, err := Publish(context.Background(), s.d, src)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(s.addr, ":")
	n := startNode(t, "read", s.d.Key().Hex(), port)
	var got nodeRead
	n.next(t, 4*time.Minute, &got)
	if got.Version != res.Version {
		t.Errorf("Node read version %d, Go wrote %d", got.Version, res.Version)
	}
	if e := got.Entries["/big.bin"]; e == nil || e.Size != 100<<20 || e.SHA256 != hex.EncodeToString(h.Sum(nil)) {
		t.Errorf("Node read /big.bin as %+v", e)
	}
	for name, data := range want {
		if e := got.Entries["/"+name]; e == nil || e.Size != uint64(len(data)) || (len(data) > 0 && e.SHA256 != sha(data)) {
			t.Errorf("Node read /%s as %+v", name, e)
		}
	}
	if _, ok := got.Entries["/gone.txt"]; ok {
		t.Error("Node still sees the deleted /gone.txt")
	}
}
