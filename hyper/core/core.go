// Package core is a Hypercore 11 append-only log: a writer that appends,
// hashes and signs blocks, and a sparse reader that holds only the blocks
// and tree nodes it has verified. Both persist through hyper/core/store and
// speak the wire format of hyper/core/wire, so they interoperate with Node
// peers (the tests run Node's own replicator against this code).
//
// The pieces, bottom up:
//
//	hyper/core/flat    flat-tree index math
//	hyper/core/wire    Node, Manifest, MultiSignature and the ten
//	                   replication messages, with compact-encoding codecs
//	hyper/core/merkle  hashes, core key, discovery key, capability,
//	                   signables, tree batches, GenerateProof, Verify and
//	                   the Verifier (compat, v0, v1 multisig, prologue)
//	hyper/core/store   Storage: Memory, and Dir (crash-safe, on disk)
//	hyper/core         Core (Create, NewReader, Open; Append, Truncate, Get,
//	                   Seek, Proof, Apply) and Replicator/Peer
//	                   (message-driven replication)
//
// The layer above (Hyperbee, Hyperdrive) sees a core through the Blocks
// interface. Replication is transport-agnostic: a Peer takes a send
// function and is fed incoming messages through Handle, so hyper/mux only
// has to carry wire.Message values on a "hypercore/alpha" channel whose id
// is DiscoveryKey and whose open payload is Handshake/CheckHandshake.
package core

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hyperos/hyperos/hyper/core/flat"
	"github.com/hyperos/hyperos/hyper/core/merkle"
	"github.com/hyperos/hyperos/hyper/core/store"
	"github.com/hyperos/hyperos/hyper/core/wire"
)

// Blocks is the view of a core that Hyperbee and Hyperdrive build on.
type Blocks interface {
	// Get returns block index, waiting (until ctx ends) for replication to
	// deliver it if it is within the known length but not stored yet. The
	// returned bytes have been verified against the signed tree and must
	// not be modified.
	Get(ctx context.Context, index uint64) ([]byte, error)
	// Length is the signed length of the core as far as we know.
	Length() uint64
	// Append adds blocks to a writable core and returns the new length.
	Append(blocks ...[]byte) (uint64, error)
}

var (
	// ErrNotWritable: Append on a core without its secret key.
	ErrNotWritable = errors.New("core: not writable")
	// ErrOutOfBounds: a block beyond the signed length.
	ErrOutOfBounds = errors.New("core: block index out of bounds")
	// ErrNotAvailable: a block we do not have and cannot fetch.
	ErrNotAvailable = errors.New("core: block not available")
	// ErrCorrupt: a stored block does not match its verified hash.
	ErrCorrupt = errors.New("core: stored block is corrupt")
)

// fetchRetry is how often a waiting Get re-asks its fetcher.
var fetchRetry = 500 * time.Millisecond // a variable so that tests can rule the retries out

// Core is one Hypercore, writable or a sparse replica.
type Core struct {
	// gate lets plain block applies commit to the store concurrently,
	// without mu, so that a store can group their commits (one fsync for
	// many blocks): they hold it shared; every other change to the store
	// (append, truncate, upgrade, reorg, manifest, drop) holds it
	// exclusively, so none overlaps a block still being committed.
	// Lock order: gate, then mu.
	gate     sync.RWMutex
	mu       sync.RWMutex
	st       store.Storage
	key      [32]byte
	dkey     [32]byte
	manifest *wire.Manifest
	verifier *merkle.Verifier
	tree     *merkle.Tree
	priv     ed25519.PrivateKey
	// changed is closed (and replaced) whenever the head or the tree
	// changes, waking every Get and Seek that waits.
	changed chan struct{}
	// blockWaiters wake the Gets waiting for one block: a stored block
	// closes only its own channel, so a reader with many Gets in flight
	// is not woken for every block. Cleared on every broadcast.
	blockWaiters map[uint64]chan struct{}
	// seekers counts Seeks waiting for tree nodes; while there are any,
	// a stored block (whose proof brings nodes) wakes everyone.
	seekers int
	// fetcher asks replication for a missing block; nil when unreplicated.
	fetcher func(index uint64)
	// seekFetcher asks replication for the nodes under a tree node that a
	// Seek needs; nil when unreplicated.
	seekFetcher func(node, bytes uint64)
	listeners   []func(Event)
	// contiguous is the number of blocks stored from 0 without a gap.
	contiguous uint64
	// selfChecked: st implements store.SelfChecking.
	selfChecked bool
}

// Event tells replication what changed locally.
type Event struct {
	// Appended is set when the signed head changed: an Append, a
	// verified upgrade, or a truncation (a new fork).
	Appended bool
	// Block is the index of a block just stored, when HasBlock is set.
	Block    uint64
	HasBlock bool
}

// CreateOptions configure a new writable core.
type CreateOptions struct {
	// Compat makes the key the public key, v10-style, with raw 64-byte
	// signatures and no manifest on the wire. The default is a v1
	// manifest core as `new Hypercore()` creates.
	Compat bool
	// Manifest overrides the default single-signer manifest; the secret
	// key must belong to one of its signers, and the quorum must be 1 for
	// Append to produce complete signatures.
	Manifest *wire.Manifest
}

// Create makes a new writable core in an empty store.
func Create(st store.Storage, priv ed25519.PrivateKey, opts CreateOptions) (*Core, error) {
	if h, err := st.Header(); err != nil {
		return nil, fmt.Errorf("create core: %w", err)
	} else if h != nil {
		return nil, fmt.Errorf("create core: store already holds core %x", h.Key[:8])
	}
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("create core: secret key is %d bytes", len(priv))
	}
	var pub [32]byte
	copy(pub[:], priv.Public().(ed25519.PublicKey))
	m := opts.Manifest
	var key [32]byte
	switch {
	case opts.Compat:
		key, m = pub, nil
	default:
		if m == nil {
			m = merkle.DefaultSignerManifest(pub)
		}
		if err := merkle.ValidateManifest(m); err != nil {
			return nil, fmt.Errorf("create core: %w", err)
		}
		signer := false
		for _, s := range m.Signers {
			signer = signer || s.PublicKey == pub
		}
		if !signer {
			return nil, fmt.Errorf("create core: the secret key is not one of the manifest's signers")
		}
		var err error
		if key, err = merkle.ManifestHash(m); err != nil {
			return nil, fmt.Errorf("create core: %w", err)
		}
	}
	h := &store.Header{Key: key, Manifest: m, SecretKey: bytes.Clone(priv)}
	if err := st.Commit(&store.Batch{Header: h}); err != nil {
		return nil, fmt.Errorf("create core: %w", err)
	}
	return Open(st)
}

// NewReader opens (or starts) a replica of the core with key. A manifest,
// if known, may be given; otherwise it is learned from the first verified
// upgrade, or the core is taken to be compat.
func NewReader(st store.Storage, key [32]byte, m *wire.Manifest) (*Core, error) {
	h, err := st.Header()
	if err != nil {
		return nil, fmt.Errorf("open reader: %w", err)
	}
	if h != nil {
		if h.Key != key {
			return nil, fmt.Errorf("open reader: store holds core %x, not %x", h.Key[:8], key[:8])
		}
		return Open(st)
	}
	if m != nil {
		if _, err := merkle.NewVerifier(key, m); err != nil {
			return nil, fmt.Errorf("open reader: %w", err)
		}
	}
	if err := st.Commit(&store.Batch{Header: &store.Header{Key: key, Manifest: m}}); err != nil {
		return nil, fmt.Errorf("open reader: %w", err)
	}
	return Open(st)
}

// Open loads an existing core from st.
func Open(st store.Storage) (*Core, error) {
	h, err := st.Header()
	if err != nil {
		return nil, fmt.Errorf("open core: %w", err)
	}
	if h == nil {
		return nil, fmt.Errorf("open core: store is empty")
	}
	c := &Core{st: st, key: h.Key, dkey: merkle.DiscoveryKey(h.Key), changed: make(chan struct{})}
	if sc, ok := st.(store.SelfChecking); ok && sc.BlocksSelfChecked() {
		c.selfChecked = true
	}
	if err := c.setManifest(h.Manifest); err != nil {
		return nil, fmt.Errorf("open core %x: %w", h.Key[:8], err)
	}
	if len(h.SecretKey) > 0 {
		if len(h.SecretKey) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("open core: stored secret key is %d bytes", len(h.SecretKey))
		}
		c.priv = ed25519.PrivateKey(bytes.Clone(h.SecretKey))
	}
	c.tree = &merkle.Tree{Fork: h.Fork, Length: h.Length, Signature: h.Signature}
	if c.manifest != nil && c.manifest.Prologue != nil {
		c.tree.Prologue = c.manifest.Prologue
	}
	if h.Length > 0 {
		roots, err := merkle.RootsAt(st, h.Length)
		if err != nil {
			return nil, fmt.Errorf("open core %x: %w", h.Key[:8], err)
		}
		c.tree.Roots = roots
		c.tree.ByteLength = merkle.TotalSize(roots)
	}
	for c.contiguous < c.tree.Length && st.HasBlock(c.contiguous) {
		c.contiguous++
	}
	return c, nil
}

func (c *Core) setManifest(m *wire.Manifest) error {
	v, err := merkle.NewVerifier(c.key, m)
	if err != nil {
		return err
	}
	c.manifest, c.verifier = m, v
	return nil
}

// Key is the core's public identifier (the manifest hash, or the public
// key for compat cores).
func (c *Core) Key() [32]byte { return c.key }

// DiscoveryKey is the topic under which peers find each other.
func (c *Core) DiscoveryKey() [32]byte { return c.dkey }

// Manifest returns the core's manifest, or nil for a compat core.
func (c *Core) Manifest() *wire.Manifest {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.manifest == nil || c.verifier.Compat {
		return nil
	}
	return c.manifest
}

// Compat reports whether the core's key is its signer's public key.
func (c *Core) Compat() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.verifier.Compat
}

// Writable reports whether this core can Append.
func (c *Core) Writable() bool { return c.priv != nil }

// Length implements Blocks.
func (c *Core) Length() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.tree.Length
}

// ByteLength is the total size of the blocks up to Length.
func (c *Core) ByteLength() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.tree.ByteLength
}

// Fork is the core's fork id (bumped by truncations).
func (c *Core) Fork() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.tree.Fork
}

// ContiguousLength is how many blocks from 0 are stored without a gap.
func (c *Core) ContiguousLength() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.contiguous
}

// Tree returns a copy of the signed head.
func (c *Core) Tree() *merkle.Tree {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.tree.Clone()
}

// Has reports whether block index is stored locally.
func (c *Core) Has(index uint64) bool { return c.st.HasBlock(index) }

// OnEvent registers f to be called (without locks held) after local
// changes; replication uses it to advertise new data.
func (c *Core) OnEvent(f func(Event)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.listeners = append(c.listeners, f)
}

// SetFetcher installs the function Get calls to ask replication for a
// missing block (nil to remove it).
func (c *Core) SetFetcher(f func(index uint64)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fetcher = f
}

// SetSeekFetcher installs the function Seek calls to ask replication for
// the tree nodes below node on the way to byte offset bytes (nil to remove).
func (c *Core) SetSeekFetcher(f func(node, bytes uint64)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seekFetcher = f
}

// Seek finds the block holding byte offset bytes of the core (all blocks
// concatenated) and the offset within it, as Node's core.seek does; an
// offset equal to ByteLength gives (Length, 0). It walks the verified tree
// nodes, so a sparse replica learns the way from peers (hash and seek
// proofs) without downloading the blocks before the offset.
func (c *Core) Seek(ctx context.Context, bytes uint64) (index, relative uint64, err error) {
	// While a Seek runs, every stored block wakes waiters: its proof may
	// bring the tree nodes the Seek waits for.
	c.mu.Lock()
	c.seekers++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.seekers--
		c.mu.Unlock()
	}()
	for {
		c.mu.RLock()
		tree := c.tree.Clone()
		changed := c.changed
		fetch := c.seekFetcher
		c.mu.RUnlock()
		if bytes > tree.ByteLength {
			return 0, 0, fmt.Errorf("seek to byte %d of %d: %w", bytes, tree.ByteLength, ErrOutOfBounds)
		}
		idx, rel, missing, err := localSeek(tree, c.st, bytes)
		if err != nil {
			return 0, 0, fmt.Errorf("seek to byte %d: %w", bytes, err)
		}
		if !missing {
			return idx, rel, nil
		}
		if fetch == nil {
			return 0, 0, fmt.Errorf("seek to byte %d needs tree node %d: %w", bytes, idx, ErrNotAvailable)
		}
		fetch(idx, bytes)
		retry := time.NewTimer(fetchRetry)
		select {
		case <-ctx.Done():
			retry.Stop()
			return 0, 0, fmt.Errorf("seek to byte %d: %w", bytes, ctx.Err())
		case <-changed:
		case <-retry.C:
		}
		retry.Stop()
	}
}

// BlockOffset returns the byte offset at which block index starts, from the
// tree nodes held here; ok is false when some are not. It never waits and
// never asks a peer: after a verified Get the nodes are all here, since the
// block's proof brought the left siblings along its path. Readers use it to
// check a guessed position instead of paying a round trip for a Seek.
func (c *Core) BlockOffset(index uint64) (offset uint64, ok bool) {
	c.mu.RLock()
	tree := c.tree.Clone()
	c.mu.RUnlock()
	if index >= tree.Length {
		return 0, false
	}
	off, err := merkle.ByteOffset(tree, c.st, 2*index)
	return off, err == nil
}

// localSeek walks the roots and stored nodes towards bytes (ByteSeeker in
// merkle-tree.js, without padding). It returns a block index and offset,
// or, with missing set, the flat index of the node whose children are not
// stored yet.
func localSeek(t *merkle.Tree, g merkle.NodeGetter, bytes uint64) (idx, rel uint64, missing bool, err error) {
	if bytes == 0 {
		return 0, 0, false, nil
	}
	for _, root := range t.Roots {
		if bytes == root.Size {
			return flat.RightSpan(root.Index)/2 + 1, 0, false, nil
		}
		if bytes > root.Size {
			bytes -= root.Size
			continue
		}
		it := flat.NewIterator(root.Index)
		for it.Index&1 == 1 {
			l, ok, err := g.GetNode(it.LeftChild())
			if err != nil {
				return 0, 0, false, err
			}
			if !ok {
				it.Parent()
				return it.Index, 0, true, nil
			}
			switch {
			case l.Size == bytes:
				return it.RightSpan()/2 + 1, 0, false, nil
			case l.Size > bytes:
				continue
			}
			bytes -= l.Size
			it.Sibling()
		}
		return it.Index / 2, bytes, false, nil
	}
	return 0, 0, false, fmt.Errorf("byte offset beyond the roots: %w", ErrOutOfBounds)
}

// notifyLocked wakes waiters; it returns the listeners to call once the
// lock is released.
func (c *Core) notifyLocked() []func(Event) {
	close(c.changed)
	c.changed = make(chan struct{})
	for i, w := range c.blockWaiters {
		close(w)
		delete(c.blockWaiters, i)
	}
	return append([]func(Event){}, c.listeners...)
}

// notifyBlockLocked wakes the Gets waiting for block index (everyone, if
// a Seek waits); it returns the listeners to call once the lock is
// released.
func (c *Core) notifyBlockLocked(index uint64) []func(Event) {
	if c.seekers > 0 {
		return c.notifyLocked()
	}
	if w := c.blockWaiters[index]; w != nil {
		close(w)
		delete(c.blockWaiters, index)
	}
	return append([]func(Event){}, c.listeners...)
}

// blockWaiterLocked returns the channel closed when block index may have
// been stored. mu is held for writing.
func (c *Core) blockWaiterLocked(index uint64) <-chan struct{} {
	w := c.blockWaiters[index]
	if w == nil {
		if c.blockWaiters == nil {
			c.blockWaiters = map[uint64]chan struct{}{}
		}
		w = make(chan struct{})
		c.blockWaiters[index] = w
	}
	return w
}

func emit(ls []func(Event), ev Event) {
	for _, l := range ls {
		l(ev)
	}
}

// Append implements Blocks: it hashes the blocks into the tree, signs the
// new head and commits blocks, nodes and head durably before returning.
func (c *Core) Append(blocks ...[]byte) (uint64, error) {
	if c.priv == nil {
		return 0, ErrNotWritable
	}
	c.gate.Lock()
	gated := true
	defer func() {
		if gated {
			c.gate.Unlock()
		}
	}()
	c.mu.Lock()
	if len(blocks) == 0 {
		defer c.mu.Unlock()
		return c.tree.Length, nil
	}
	b := merkle.NewBatch(c.tree)
	sb := &store.Batch{}
	for _, blk := range blocks {
		sb.Blocks = append(sb.Blocks, store.Block{Index: b.Length, Value: blk})
		b.Append(blk)
	}
	sig, err := c.verifier.Sign(b, c.priv)
	if err != nil {
		c.mu.Unlock()
		return 0, fmt.Errorf("append: %w", err)
	}
	b.Signature = sig
	sb.Nodes = b.Nodes
	sb.Header = c.header(b.Tree())
	if err := c.st.Commit(sb); err != nil {
		c.mu.Unlock()
		return 0, fmt.Errorf("append: %w", err)
	}
	c.tree = b.Tree()
	c.advanceContiguous()
	length := c.tree.Length
	ls := c.notifyLocked()
	c.mu.Unlock()
	gated = false
	c.gate.Unlock()
	emit(ls, Event{Appended: true})
	return length, nil
}

// Truncate cuts a writable core back to length and moves it to the next
// fork, as Node's core.truncate does. Readers notice the new fork in sync
// and re-verify from the signed new head; blocks past length are deleted.
func (c *Core) Truncate(length uint64) error {
	if c.priv == nil {
		return ErrNotWritable
	}
	c.gate.Lock()
	gated := true
	defer func() {
		if gated {
			c.gate.Unlock()
		}
	}()
	c.mu.Lock()
	if length > c.tree.Length {
		c.mu.Unlock()
		return fmt.Errorf("truncate to %d beyond length %d: %w", length, c.tree.Length, ErrOutOfBounds)
	}
	roots, err := merkle.RootsAt(c.st, length)
	if err != nil {
		c.mu.Unlock()
		return fmt.Errorf("truncate: %w", err)
	}
	t := &merkle.Tree{Fork: c.tree.Fork + 1, Length: length, Roots: roots, ByteLength: merkle.TotalSize(roots), Prologue: c.tree.Prologue}
	sig, err := c.verifier.Sign(merkle.NewBatch(t), c.priv)
	if err != nil {
		c.mu.Unlock()
		return fmt.Errorf("truncate: %w", err)
	}
	t.Signature = sig
	if err := c.st.Commit(&store.Batch{Truncate: &length, Header: c.header(t)}); err != nil {
		c.mu.Unlock()
		return fmt.Errorf("truncate: %w", err)
	}
	c.tree = t
	c.contiguous = min(c.contiguous, length)
	ls := c.notifyLocked()
	c.mu.Unlock()
	gated = false
	c.gate.Unlock()
	emit(ls, Event{Appended: true})
	return nil
}

// header is the store header for tree t.
func (c *Core) header(t *merkle.Tree) *store.Header {
	return &store.Header{Key: c.key, Manifest: c.manifest, Fork: t.Fork, Length: t.Length, Signature: t.Signature, SecretKey: c.priv}
}

func (c *Core) advanceContiguous() {
	for c.contiguous < c.tree.Length && c.st.HasBlock(c.contiguous) {
		c.contiguous++
	}
}

// Get implements Blocks.
func (c *Core) Get(ctx context.Context, index uint64) ([]byte, error) {
	for {
		c.mu.RLock()
		length := c.tree.Length
		changed := c.changed
		fetch := c.fetcher
		c.mu.RUnlock()
		v, ok, err := c.local(index)
		if ok {
			return v, nil
		}
		if err != nil {
			if fetch == nil || !isCorrupt(err) {
				return nil, err
			}
			// A replica can heal: forget the damaged copy and fetch it again.
			if err := c.drop(index); err != nil {
				return nil, err
			}
		}
		if fetch == nil {
			if index >= length {
				return nil, fmt.Errorf("block %d of %d: %w", index, length, ErrOutOfBounds)
			}
			return nil, fmt.Errorf("block %d: %w", index, ErrNotAvailable)
		}
		// Wait for this block only; it is stored before its waiters are
		// woken, so one stored in between is seen by the check below.
		c.mu.Lock()
		stored := c.blockWaiterLocked(index)
		c.mu.Unlock()
		if c.st.HasBlock(index) {
			continue
		}
		fetch(index)
		// Wake up now and then even if nothing changed, so that the fetcher
		// can notice a request that timed out and ask someone else.
		retry := time.NewTimer(fetchRetry)
		select {
		case <-ctx.Done():
			retry.Stop()
			return nil, fmt.Errorf("get block %d: %w", index, ctx.Err())
		case <-changed:
		case <-stored:
		case <-retry.C:
		}
		retry.Stop()
	}
}

func isCorrupt(err error) bool {
	return errors.Is(err, ErrCorrupt) || errors.Is(err, store.ErrCorrupt)
}

// drop forgets a stored block (its tree nodes stay: they are still true).
func (c *Core) drop(index uint64) error {
	c.gate.Lock()
	defer c.gate.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.st.Commit(&store.Batch{Drop: []uint64{index}}); err != nil {
		return fmt.Errorf("drop damaged block %d: %w", index, err)
	}
	c.contiguous = min(c.contiguous, index)
	return nil
}

// local returns a stored block after checking it against its verified
// leaf node, so that disk damage is reported rather than returned. The
// leaf hash is recomputed only for a store that does not check its blocks
// itself (store.SelfChecking); otherwise every read, including every
// block served to peers, would hash the block again.
func (c *Core) local(index uint64) ([]byte, bool, error) {
	if !c.st.HasBlock(index) {
		return nil, false, nil
	}
	v, ok, err := c.st.GetBlock(index)
	if err != nil {
		return nil, false, fmt.Errorf("read block %d: %w", index, err)
	}
	if !ok {
		return nil, false, nil
	}
	leaf, ok, err := c.st.GetNode(2 * index)
	if err != nil {
		return nil, false, fmt.Errorf("read leaf of block %d: %w", index, err)
	}
	if !ok || leaf.Size != uint64(len(v)) || (!c.selfChecked && leaf.Hash != merkle.LeafHash(v)) {
		return nil, false, fmt.Errorf("block %d: %w", index, ErrCorrupt)
	}
	return v, true, nil
}

// MissingNodes is the `nodes` count a block request should carry: how
// many of the block's ancestors this replica lacks.
func (c *Core) MissingNodes(index uint64) (uint64, error) {
	c.mu.RLock()
	length := c.tree.Length
	c.mu.RUnlock()
	return merkle.MissingNodes(c.st, 2*index, length)
}

// Proof answers a request the way a Node seeder does: the data message
// (with block value and, if asked, the manifest), or a NoData reason when
// the request cannot be served. An empty proof (say, a seek that finds
// nothing) is still sent as data, as Node does.
func (c *Core) Proof(req *wire.Request) (*wire.Data, uint64, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var manifest *wire.Manifest
	if req.Manifest && c.manifest != nil && !c.verifier.Compat {
		manifest = c.manifest
	}
	if req.Fork != c.tree.Fork || (req.Block != nil && !c.st.HasBlock(req.Block.Index)) {
		if manifest != nil {
			return &wire.Data{Request: req.ID, Fork: c.tree.Fork, Manifest: manifest}, 0, nil
		}
		return nil, wire.ReasonNotAvailable, fmt.Errorf("request %d: fork %d or block not available", req.ID, req.Fork)
	}
	d, err := merkle.GenerateProof(c.tree, c.st, merkle.ProofRequest{Block: req.Block, Hash: req.Hash, Seek: req.Seek, Upgrade: req.Upgrade})
	if err != nil {
		return nil, wire.ReasonInvalidRequest, fmt.Errorf("request %d: %w", req.ID, err)
	}
	d.Request = req.ID
	d.Manifest = manifest
	if d.Block != nil {
		v, ok, err := c.local(d.Block.Index)
		if err != nil || !ok {
			return nil, wire.ReasonNotAvailable, fmt.Errorf("request %d: block %d unreadable: %v", req.ID, d.Block.Index, err)
		}
		d.Block.Value = v
	}
	return d, 0, nil
}

// ErrManifestMismatch: a remote sent a manifest that is not this core's.
var ErrManifestMismatch = errors.New("core: manifest does not match key")

// Apply verifies a data message from a remote and stores what it proves:
// the block, the proof nodes and, for an upgrade, the new signed head. It
// stores nothing if any part fails verification.
//
// The store may keep d's block value: the caller must not modify it
// afterwards. The block's leaf hash is computed before the core is
// locked, so that several goroutines applying blocks hash them in
// parallel.
func (c *Core) Apply(d *wire.Data) error {
	var leaf *[32]byte
	if d.Block != nil {
		h := merkle.LeafHash(d.Block.Value)
		leaf = &h
	}
	return c.apply(d, leaf)
}

// ApplyHashed is Apply for a caller that has hashed the block already:
// leaf must be merkle.LeafHash(d.Block.Value) (merkle.LeafHashes hashes
// two blocks in the time of one).
func (c *Core) ApplyHashed(d *wire.Data, leaf [32]byte) error {
	if d.Block == nil {
		return c.apply(d, nil)
	}
	return c.apply(d, &leaf)
}

func (c *Core) apply(d *wire.Data, leaf *[32]byte) (err error) {
	if d.Upgrade == nil {
		if done, err := c.applyBlock(d, leaf); done {
			return err
		}
	}
	c.gate.Lock()
	gated := true
	defer func() {
		if gated {
			c.gate.Unlock()
		}
	}()
	c.mu.Lock()
	locked := true
	defer func() {
		if locked {
			c.mu.Unlock()
		}
	}()
	verifier := c.verifier
	manifest := c.manifest
	if d.Manifest != nil && (c.manifest == nil || c.verifier.Compat) {
		m, err := merkle.ManifestForKey(c.key, d.Manifest)
		if err != nil {
			return fmt.Errorf("apply data: %w", ErrManifestMismatch)
		}
		if verifier, err = merkle.NewVerifier(c.key, m); err != nil {
			return fmt.Errorf("apply data: %w", err)
		}
		manifest = m
	}
	if d.Block == nil && d.Hash == nil && d.Seek == nil && d.Upgrade == nil {
		if manifest != c.manifest {
			if err := c.st.Commit(&store.Batch{Header: &store.Header{Key: c.key, Manifest: manifest, Fork: c.tree.Fork, Length: c.tree.Length, Signature: c.tree.Signature, SecretKey: c.priv}}); err != nil {
				return fmt.Errorf("store manifest: %w", err)
			}
			c.manifest, c.verifier = manifest, verifier
		}
		return nil
	}
	if d.Fork != c.tree.Fork && c.tree.Length > 0 {
		return c.reorgLocked(d, verifier, manifest, &locked, &gated)
	}
	b, err := merkle.VerifyHashed(c.tree, c.st, d, verifier, leaf)
	if err != nil {
		return fmt.Errorf("apply data for request %d: %w", d.Request, err)
	}
	sb := &store.Batch{Nodes: b.Nodes, Owned: true}
	if d.Block != nil {
		sb.Blocks = []store.Block{{Index: d.Block.Index, Value: d.Block.Value}}
	}
	tree := c.tree
	if b.Upgraded {
		tree = b.Tree()
		if tree.Prologue == nil {
			tree.Prologue = c.tree.Prologue
		}
	}
	if b.Upgraded || manifest != c.manifest {
		sb.Header = &store.Header{Key: c.key, Manifest: manifest, Fork: tree.Fork, Length: tree.Length, Signature: tree.Signature, SecretKey: c.priv}
	}
	if err := c.st.Commit(sb); err != nil {
		return fmt.Errorf("store verified data: %w", err)
	}
	c.tree = tree
	c.manifest, c.verifier = manifest, verifier
	c.advanceContiguous()
	ls := c.notifyLocked()
	locked = false
	c.mu.Unlock()
	gated = false
	c.gate.Unlock()
	if b.Upgraded {
		emit(ls, Event{Appended: true})
	}
	if d.Block != nil {
		emit(ls, Event{Block: d.Block.Index, HasBlock: true})
	}
	return nil
}

// applyBlock is Apply for the common case, a block or hash proof against
// the current head that changes neither head nor manifest: it verifies
// under mu, commits without it (gate is held shared), and only then
// records and announces the block. It reports done=false, having changed
// nothing, when d needs the exclusive path.
func (c *Core) applyBlock(d *wire.Data, leaf *[32]byte) (done bool, err error) {
	c.gate.RLock()
	gated := true
	defer func() {
		if gated {
			c.gate.RUnlock()
		}
	}()
	c.mu.Lock()
	if (d.Manifest != nil && (c.manifest == nil || c.verifier.Compat)) ||
		(d.Block == nil && d.Hash == nil && d.Seek == nil) ||
		(d.Fork != c.tree.Fork && c.tree.Length > 0) {
		c.mu.Unlock()
		return false, nil
	}
	b, err := merkle.VerifyHashed(c.tree, c.st, d, c.verifier, leaf)
	c.mu.Unlock()
	if err != nil {
		return true, fmt.Errorf("apply data for request %d: %w", d.Request, err)
	}
	if b.Upgraded {
		return false, nil // cannot happen without an upgrade proof; be safe
	}
	sb := &store.Batch{Nodes: b.Nodes, Owned: true}
	if d.Block != nil {
		sb.Blocks = []store.Block{{Index: d.Block.Index, Value: d.Block.Value}}
	}
	if err := c.st.Commit(sb); err != nil {
		return true, fmt.Errorf("store verified data: %w", err)
	}
	c.mu.Lock()
	c.advanceContiguous()
	var ls []func(Event)
	if d.Block != nil {
		ls = c.notifyBlockLocked(d.Block.Index)
	} else {
		ls = c.notifyLocked() // new tree nodes, as a Seek may wait for
	}
	c.mu.Unlock()
	gated = false
	c.gate.RUnlock()
	if d.Block != nil {
		emit(ls, Event{Block: d.Block.Index, HasBlock: true})
	}
	return true, nil
}

// reorgLocked moves a replica to a newer fork of the core: the proof must
// carry a signed upgrade from 0, so it is verified against an empty tree.
// Everything after the first new root that differs from what we hold is
// dropped (more than strictly needed, but never a stale node or block),
// then the new head and the proof's nodes are stored, in one commit.
func (c *Core) reorgLocked(d *wire.Data, verifier *merkle.Verifier, manifest *wire.Manifest, locked, gated *bool) error {
	if d.Fork < c.tree.Fork {
		return fmt.Errorf("apply data: proof for old fork %d, core at %d: %w", d.Fork, c.tree.Fork, merkle.ErrInvalidProof)
	}
	if d.Upgrade == nil || d.Upgrade.Start != 0 {
		return fmt.Errorf("apply data: fork %d without a full upgrade: %w", d.Fork, merkle.ErrInvalidProof)
	}
	b, err := merkle.Verify(&merkle.Tree{Prologue: c.tree.Prologue}, nil, d, verifier)
	if err != nil {
		return fmt.Errorf("apply fork %d: %w", d.Fork, err)
	}
	var ancestors uint64
	for _, r := range b.Roots {
		if flat.RightSpan(r.Index) >= 2*c.tree.Length {
			break
		}
		have, ok, err := c.st.GetNode(r.Index)
		if err != nil {
			return fmt.Errorf("apply fork %d: %w", d.Fork, err)
		}
		if !ok || have != r {
			break
		}
		ancestors = flat.RightSpan(r.Index)/2 + 1
	}
	tree := b.Tree()
	if tree.Prologue == nil {
		tree.Prologue = c.tree.Prologue
	}
	sb := &store.Batch{Truncate: &ancestors, Nodes: b.Nodes,
		Header: &store.Header{Key: c.key, Manifest: manifest, Fork: tree.Fork, Length: tree.Length, Signature: tree.Signature, SecretKey: c.priv}}
	if d.Block != nil {
		sb.Blocks = []store.Block{{Index: d.Block.Index, Value: d.Block.Value}}
	}
	if err := c.st.Commit(sb); err != nil {
		return fmt.Errorf("store fork %d: %w", d.Fork, err)
	}
	c.tree = tree
	c.manifest, c.verifier = manifest, verifier
	c.contiguous = min(c.contiguous, ancestors)
	c.advanceContiguous()
	ls := c.notifyLocked()
	*locked = false
	c.mu.Unlock()
	*gated = false
	c.gate.Unlock()
	emit(ls, Event{Appended: true})
	if d.Block != nil {
		emit(ls, Event{Block: d.Block.Index, HasBlock: true})
	}
	return nil
}

// Close closes the underlying storage, once every Apply still storing a
// block has finished (and announced it).
func (c *Core) Close() error {
	c.gate.Lock()
	defer c.gate.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.Close()
}

var _ Blocks = (*Core)(nil)
