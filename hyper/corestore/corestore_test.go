package corestore

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hyperos/hyperos/hyper/core/merkle"
)

// TestKeyPairMatchesNode derives the db core of hyper/drive's fixture, which
// Node's corestore created with primaryKey 0x02×32: the same name must give
// the same core key here.
func TestKeyPairMatchesNode(t *testing.T) {
	fh, err := os.Open("../drive/testdata/drive.json.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	zr, err := gzip.NewReader(fh)
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Key string }
	if err := json.NewDecoder(zr).Decode(&f); err != nil {
		t.Fatal(err)
	}
	s := NewMemory([32]byte(bytes.Repeat([]byte{2}, 32)), nil)
	c, err := s.Writable(DefaultNamespace, "db")
	if err != nil {
		t.Fatal(err)
	}
	if k := c.Key(); hex.EncodeToString(k[:]) != f.Key {
		t.Fatalf("db key %x, Node's corestore made %s", k, f.Key)
	}
	if !c.Writable() {
		t.Fatal("named core is not writable")
	}
}

// TestPersistence reopens a store: same primary key (0600), the same
// writable core with its blocks, and cores found by discovery key.
func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ns := Namespace(DefaultNamespace, "x")
	c, err := s.Writable(ns, "db")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Append([]byte("one"), []byte("two")); err != nil {
		t.Fatal(err)
	}
	key, dk := c.Key(), c.DiscoveryKey()
	var opened []*Core
	cancel := s.OnOpen(func(c *Core) { opened = append(opened, c) })
	other, err := s.Get([32]byte{9})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if len(opened) != 1 || opened[0] != other {
		t.Fatalf("OnOpen saw %d cores", len(opened))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "primary-key")); err != nil || (permsMatter && fi.Mode().Perm() != 0o600) {
		t.Fatalf("primary key file: %v %v", fi, err)
	}

	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c2, err := s.ByDiscoveryKey(dk)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Key() != key || !c2.Writable() || c2.Length() != 2 {
		t.Fatalf("reopened core: key %x writable %v length %d", c2.Key(), c2.Writable(), c2.Length())
	}
	if again, _ := s.Writable(ns, "db"); again != c2 {
		t.Fatal("Writable after ByDiscoveryKey opened a second copy")
	}
	if _, err := s.ByDiscoveryKey(merkle.DiscoveryKey([32]byte{1})); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown discovery key: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "cores"))
	if len(entries) != 2 {
		t.Fatalf("a lookup of an unknown core left %d core dirs", len(entries))
	}
}

// TestLoosePrimaryKeyRefused: a world-readable primary key is an error,
// not something to use quietly.
func TestLoosePrimaryKeyRefused(t *testing.T) {
	if !permsMatter {
		t.Skip("file modes do not carry access rights here")
	}
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.Chmod(filepath.Join(dir, "primary-key"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, nil); err == nil {
		t.Fatal("opened a store whose primary key others can read")
	}
}

// A remote's channel open (ByDiscoveryKey) arriving while the same core is
// being opened (Get) must not open its storage a second time: the second
// open finds the files locked, and either call failed with "in use by
// another process" although no other process was there.
func TestByDiscoveryKeyDuringGet(t *testing.T) {
	key := [32]byte{7}
	dk := merkle.DiscoveryKey(key)
	for i := 0; i < 200; i++ {
		s, err := Open(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			for {
				c, err := s.ByDiscoveryKey(dk)
				switch {
				case errors.Is(err, ErrNotFound):
					continue
				case err != nil:
					done <- err
				case c.Key() != key:
					done <- errors.New("ByDiscoveryKey returned another core")
				default:
					done <- nil
				}
				return
			}
		}()
		if _, err := s.Get(key); err != nil {
			t.Fatalf("round %d: Get: %v", i, err)
		}
		if err := <-done; err != nil {
			t.Fatalf("round %d: ByDiscoveryKey: %v", i, err)
		}
		s.Close()
	}
}
