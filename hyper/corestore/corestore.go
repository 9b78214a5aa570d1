// Package corestore is a Corestore-like home for Hypercores: it derives
// writable cores' key pairs from one secret primary key by name, as Node's
// corestore 7 does (so a Go and a Node store with the same primary key
// create the same cores), keeps every core it opens in its own crash-safe
// hyper/core/store directory, and opens cores by key or discovery key.
//
// Every core in a Store comes with one core.Replicator, so any number of
// connections (hyper/peer) can attach to the same core: that is how a
// reader fails over from one peer to another. The Store also tells
// connections about cores opened after they started (OnOpen), because a
// Hyperdrive reader learns its blobs core only after the db's first block,
// and Node's corestore opens such cores on every live connection too.
//
// On disk (Open):
//
//	DIR/primary-key        32 random bytes, mode 0600
//	DIR/cores/<dkey hex>/  one hyper/core/store.Dir per core, named by
//	                       discovery key so that a remote's channel open
//	                       (which carries only the discovery key) finds it
package corestore

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/hyperos/hyperos/hyper/core"
	"github.com/hyperos/hyperos/hyper/core/merkle"
	"github.com/hyperos/hyperos/hyper/core/store"
	"github.com/hyperos/hyperos/hyper/core/wire"
)

// nsCorestore is crypto.namespace('corestore', 1)[0], mixed into every
// derived seed so that the primary key is never used directly.
var nsCorestore = merkle.Namespace("corestore", 1)[0]

// permsMatter is false where file modes do not describe access (Windows
// uses ACLs; the state dir is in the user's profile there).
var permsMatter = runtime.GOOS != "windows"

// DefaultNamespace is corestore's root namespace: 32 zero bytes.
var DefaultNamespace [32]byte

// ErrNotFound is returned when a discovery key names no core in the store.
var ErrNotFound = errors.New("corestore: no such core")

// Core is a core held by a Store, with the replicator that every
// connection attaches to.
type Core struct {
	*core.Core
	Replicator *core.Replicator
}

// Options configure a Store.
type Options struct {
	// RequestTimeout is how long a replication request may stay
	// unanswered before it is cancelled and given to another peer
	// (core.DefaultRequestTimeout when zero). Tests with stalling peers
	// shorten it.
	RequestTimeout time.Duration
	// DeferSync stores fetched blocks without an fsync each (see
	// store.DirOptions.DeferSync): for a store that caches what peers
	// serve, where a block lost in a crash is fetched and verified again.
	// Signed heads and appends stay durable when committed.
	DeferSync bool
}

// Store holds cores. It is safe for concurrent use.
type Store struct {
	dir     string // "" keeps everything in memory
	primary [32]byte
	opts    Options

	mu      sync.Mutex
	cores   map[[32]byte]*Core // by discovery key
	onOpen  map[int]func(*Core)
	nextSub int
	closed  bool
}

// Open opens (creating if needed) the store in dir. The primary key is
// made on first use and kept in dir with mode 0600; losing it means losing
// the ability to append to the cores derived from it.
func Open(dir string, opts *Options) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "cores"), 0o700); err != nil {
		return nil, fmt.Errorf("corestore: %w", err)
	}
	primary, err := loadPrimaryKey(filepath.Join(dir, "primary-key"))
	if err != nil {
		return nil, err
	}
	s := newStore(primary, opts)
	s.dir = dir
	return s, nil
}

// NewMemory returns a store that keeps its cores in memory, with the given
// primary key (as Node's `new Corestore(storage, { primaryKey })`).
func NewMemory(primary [32]byte, opts *Options) *Store {
	return newStore(primary, opts)
}

func newStore(primary [32]byte, opts *Options) *Store {
	s := &Store{primary: primary, cores: map[[32]byte]*Core{}, onOpen: map[int]func(*Core){}}
	if opts != nil {
		s.opts = *opts
	}
	return s
}

// loadPrimaryKey reads the primary key, or creates it. A key file with
// looser permissions than 0600 is refused on Unix rather than silently
// used, since anyone who can read it can sign as every core of the store.
func loadPrimaryKey(path string) ([32]byte, error) {
	var key [32]byte
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if len(b) != 32 {
			return key, fmt.Errorf("corestore: primary key %s is %d bytes, want 32", path, len(b))
		}
		if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 && permsMatter {
			return key, fmt.Errorf("corestore: primary key %s is readable by others (mode %v); chmod 600 it", path, st.Mode().Perm())
		}
		copy(key[:], b)
		return key, nil
	case !errors.Is(err, fs.ErrNotExist):
		return key, fmt.Errorf("corestore: %w", err)
	}
	if _, err := rand.Read(key[:]); err != nil {
		return key, fmt.Errorf("corestore: primary key: %w", err)
	}
	// Write aside and link into place, so that two processes racing to
	// create the key agree on one of them.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".primary-key-*")
	if err != nil {
		return key, fmt.Errorf("corestore: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil && permsMatter {
		tmp.Close()
		return key, fmt.Errorf("corestore: %w", err)
	}
	if _, err := tmp.Write(key[:]); err != nil {
		tmp.Close()
		return key, fmt.Errorf("corestore: write primary key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return key, fmt.Errorf("corestore: write primary key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return key, fmt.Errorf("corestore: write primary key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadPrimaryKey(path)
		}
		// Filesystems without hard links: rename is still atomic.
		if err := os.Rename(tmp.Name(), path); err != nil {
			return key, fmt.Errorf("corestore: write primary key: %w", err)
		}
	}
	return key, nil
}

// Namespace derives a child namespace as corestore's store.namespace(name)
// does: BLAKE2b-256(ns ‖ name).
func Namespace(ns [32]byte, name string) [32]byte {
	h, _ := blake2b.New256(nil)
	h.Write(ns[:])
	h.Write([]byte(name))
	return [32]byte(h.Sum(nil))
}

// KeyPair derives the key pair of the core called name in namespace ns:
// the Ed25519 key whose seed is BLAKE2b-256 keyed by the primary key over
// NS_CORESTORE ‖ ns ‖ name (corestore's createKeyPair).
func (s *Store) KeyPair(ns [32]byte, name string) ed25519.PrivateKey {
	h, _ := blake2b.New256(s.primary[:])
	h.Write(nsCorestore[:])
	h.Write(ns[:])
	h.Write([]byte(name))
	return ed25519.NewKeyFromSeed(h.Sum(nil))
}

// storage returns the storage for the core with discovery key dk.
func (s *Store) storage(dk [32]byte) (store.Storage, error) {
	if s.dir == "" {
		return store.NewMemory(), nil
	}
	d, err := store.OpenDirWith(filepath.Join(s.dir, "cores", hex.EncodeToString(dk[:])), store.DirOptions{DeferSync: s.opts.DeferSync})
	if err != nil {
		return nil, fmt.Errorf("corestore: core %x: %w", dk[:8], err)
	}
	return d, nil
}

// Writable returns the writable core called name in namespace ns, creating
// it (with the default single-signer manifest, as corestore does) on first
// use.
func (s *Store) Writable(ns [32]byte, name string) (*Core, error) {
	return s.CreateWith(s.KeyPair(ns, name), nil)
}

// CreateWith returns the writable core signed by priv under manifest m
// (nil: the default single-signer manifest), creating it on first use.
// Hyperdrive's blobs core is made this way: the db's key pair under a
// derived manifest.
func (s *Store) CreateWith(priv ed25519.PrivateKey, m *wire.Manifest) (*Core, error) {
	if m == nil {
		m = merkle.DefaultSignerManifest([32]byte(priv.Public().(ed25519.PublicKey)))
	}
	key, err := merkle.ManifestHash(m)
	if err != nil {
		return nil, fmt.Errorf("corestore: %w", err)
	}
	return s.open(key, func(st store.Storage, h *store.Header) (*core.Core, error) {
		if h == nil {
			return core.Create(st, priv, core.CreateOptions{Manifest: m})
		}
		if !bytes.Equal(h.SecretKey, priv) {
			return nil, fmt.Errorf("core %x is stored without its secret key", key[:8])
		}
		return core.Open(st)
	})
}

// Get returns the core with key, opening a sparse replica if the store
// does not hold it yet. A core the store created stays writable.
func (s *Store) Get(key [32]byte) (*Core, error) {
	return s.open(key, func(st store.Storage, h *store.Header) (*core.Core, error) {
		return core.NewReader(st, key, nil)
	})
}

// ByDiscoveryKey returns the core with discovery key dk if the store holds
// it (open, or on disk from an earlier run), and ErrNotFound otherwise.
// Connections use it to answer a remote's channel open.
func (s *Store) ByDiscoveryKey(dk [32]byte) (*Core, error) {
	key, err := s.storedKey(dk)
	if err != nil {
		return nil, err
	}
	return s.Get(key)
}

// storedKey finds the key of the core with discovery key dk, open or on
// disk. It holds the store's lock while it reads a stored header, as open
// does while it opens storage: a core's files are locked while open, and a
// probe racing an open of the same core would find them locked by its own
// process.
func (s *Store) storedKey(dk [32]byte) ([32]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return [32]byte{}, fmt.Errorf("corestore: %w", store.ErrClosed)
	}
	if c := s.cores[dk]; c != nil {
		return c.Key(), nil
	}
	// Only look at directories that exist: opening storage would create
	// one for every discovery key a remote cares to name.
	if s.dir == "" || !s.hasDir(dk) {
		return [32]byte{}, ErrNotFound
	}
	st, err := s.storage(dk)
	if err != nil {
		return [32]byte{}, err
	}
	defer st.Close()
	h, err := st.Header()
	if err == nil && h == nil {
		err = ErrNotFound
	}
	if err != nil {
		return [32]byte{}, fmt.Errorf("corestore: core %x: %w", dk[:8], err)
	}
	return h.Key, nil
}

func (s *Store) hasDir(dk [32]byte) bool {
	fi, err := os.Stat(filepath.Join(s.dir, "cores", hex.EncodeToString(dk[:])))
	return err == nil && fi.IsDir()
}

// open finds or opens the core with key; mk makes the core from its
// storage and stored header (nil for a new store).
func (s *Store) open(key [32]byte, mk func(store.Storage, *store.Header) (*core.Core, error)) (*Core, error) {
	dk := merkle.DiscoveryKey(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("corestore: %w", store.ErrClosed)
	}
	if c := s.cores[dk]; c != nil {
		if c.Key() != key {
			return nil, fmt.Errorf("corestore: discovery key collision for %x", key[:8])
		}
		return c, nil
	}
	st, err := s.storage(dk)
	if err != nil {
		return nil, err
	}
	h, err := st.Header()
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("corestore: core %x: %w", key[:8], err)
	}
	if h != nil && h.Key != key {
		st.Close()
		return nil, fmt.Errorf("corestore: core directory %x holds core %x", dk[:8], h.Key[:8])
	}
	cc, err := mk(st, h)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("corestore: core %x: %w", key[:8], err)
	}
	r := core.NewReplicator(cc)
	r.RequestTimeout = s.opts.RequestTimeout
	c := &Core{Core: cc, Replicator: r}
	s.cores[dk] = c
	subs := make([]func(*Core), 0, len(s.onOpen))
	for _, f := range s.onOpen {
		subs = append(subs, f)
	}
	// Tell connections outside the lock: they open channels, which may
	// call back into the store.
	s.mu.Unlock()
	for _, f := range subs {
		f(c)
	}
	s.mu.Lock()
	return c, nil
}

// Cores returns the cores open now.
func (s *Store) Cores() []*Core {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Core, 0, len(s.cores))
	for _, c := range s.cores {
		out = append(out, c)
	}
	return out
}

// OnOpen calls f (on the opening goroutine) for every core opened from now
// on, until the returned function is called.
func (s *Store) OnOpen(f func(*Core)) (cancel func()) {
	s.mu.Lock()
	id := s.nextSub
	s.nextSub++
	s.onOpen[id] = f
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.onOpen, id)
		s.mu.Unlock()
	}
}

// Close closes every core. Connections should be closed first.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for _, c := range s.cores {
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("corestore: close core %x: %w", c.DiscoveryKey(), err))
		}
	}
	return errors.Join(errs...)
}
