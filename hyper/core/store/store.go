// Package store keeps a Hypercore's verified state: block values, tree
// nodes, which blocks are present, and the header (key, manifest, signed
// head, and a writer's secret key).
//
// Two implementations share the Storage interface: Memory for tests and
// throw-away readers, and Dir, a crash-safe on-disk format of our own (see
// dir.go). Storage never verifies anything; the core only hands it data it
// has already verified, and Dir re-checks only what the disk itself could
// have damaged.
package store

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/hyperos/hyperos/hyper/compact"
	"github.com/hyperos/hyperos/hyper/core/flat"
	"github.com/hyperos/hyperos/hyper/core/wire"
)

// ErrClosed is returned by a Storage after Close.
var ErrClosed = errors.New("store: closed")

// ErrLocked means another process (or another open Dir) uses the store.
var ErrLocked = errors.New("store: locked")

// ErrCorrupt reports on-disk damage that checksums caught.
var ErrCorrupt = errors.New("store: corrupt")

// Header is everything about a core that is not a block or a tree node.
type Header struct {
	Key [32]byte
	// Manifest is nil for a compat core whose manifest was never received.
	Manifest *wire.Manifest
	// Fork, Length and Signature are the signed head; the roots are read
	// from the stored nodes.
	Fork, Length uint64
	Signature    []byte
	// SecretKey is a writer's Ed25519 private key (64 bytes), nil for readers.
	SecretKey []byte
}

// Clone returns a deep copy.
func (h *Header) Clone() *Header {
	if h == nil {
		return nil
	}
	c := *h
	c.Signature = bytes.Clone(h.Signature)
	c.SecretKey = bytes.Clone(h.SecretKey)
	if h.Manifest != nil {
		raw, err := wire.MarshalManifest(h.Manifest)
		if err == nil {
			c.Manifest, _ = wire.UnmarshalManifest(raw)
		}
	}
	return &c
}

// MarshalHeader encodes h with compact-encoding: key, flags, then the
// optional manifest, fork, length, signature and secret key.
func MarshalHeader(h *Header) ([]byte, error) {
	e := compact.NewEncoder(nil)
	e.Uint(1) // version of this record
	e.Fixed32(h.Key[:])
	var flags uint64
	if h.Manifest != nil {
		flags |= 1
	}
	e.Uint(flags)
	if h.Manifest != nil {
		wire.EncodeManifest(e, h.Manifest)
	}
	e.Uint(h.Fork)
	e.Uint(h.Length)
	e.Buffer(h.Signature)
	e.Buffer(h.SecretKey)
	b, err := e.Finish()
	if err != nil {
		return nil, fmt.Errorf("encode header: %w", err)
	}
	return b, nil
}

// UnmarshalHeader decodes a header written by MarshalHeader.
func UnmarshalHeader(b []byte) (*Header, error) {
	d := compact.NewDecoder(b)
	v, err := d.Uint()
	if err != nil {
		return nil, fmt.Errorf("decode header: %w", err)
	}
	if v != 1 {
		return nil, fmt.Errorf("decode header: version %d: %w", v, ErrCorrupt)
	}
	h := &Header{}
	if h.Key, err = d.Fixed32(); err != nil {
		return nil, fmt.Errorf("decode header: %w", err)
	}
	flags, err := d.Uint()
	if err != nil {
		return nil, fmt.Errorf("decode header: %w", err)
	}
	if flags&1 != 0 {
		if h.Manifest, err = wire.DecodeManifest(d); err != nil {
			return nil, fmt.Errorf("decode header manifest: %w", err)
		}
	}
	h.Fork, _ = d.Uint()
	h.Length, _ = d.Uint()
	sig, _ := d.Buffer()
	sk, err := d.Buffer()
	if err != nil {
		return nil, fmt.Errorf("decode header: %w", err)
	}
	if err := d.Done(); err != nil {
		return nil, fmt.Errorf("decode header: %w", err)
	}
	if len(sig) > 0 {
		h.Signature = bytes.Clone(sig)
	}
	if len(sk) > 0 {
		h.SecretKey = bytes.Clone(sk)
	}
	return h, nil
}

// Block is one block value to store.
type Block struct {
	Index uint64
	Value []byte
}

// Batch is one atomic, durable update: after Commit returns nil, all of it
// survives a crash; if Commit fails or the process dies during it, none of
// it is visible after reopening.
type Batch struct {
	// Truncate, if set, is applied first: it removes every block at index
	// ≥ *Truncate and every node that is not part of the tree of that
	// length, so that nothing from an abandoned fork can later be taken
	// for a trusted node or a valid block.
	Truncate *uint64
	// Drop removes single blocks (applied after Truncate, before Blocks),
	// e.g. a damaged copy that is to be fetched again.
	Drop   []uint64
	Blocks []Block
	// Owned hands the Blocks' values to the store: the caller will never
	// modify them, so Memory keeps them instead of copying.
	Owned bool
	Nodes []wire.Node
	// Header, if not nil, replaces the stored header.
	Header *Header
}

// Storage is what a core needs from its persistence layer.
type Storage interface {
	// Header returns the stored header, or nil for a new, empty store.
	Header() (*Header, error)
	// GetNode returns a stored tree node.
	GetNode(index uint64) (n wire.Node, ok bool, err error)
	// GetBlock returns a stored block value (the caller must not modify it).
	GetBlock(index uint64) (value []byte, ok bool, err error)
	// HasBlock reports whether a block is stored.
	HasBlock(index uint64) bool
	// Commit applies b atomically and durably.
	Commit(b *Batch) error
	// Close releases the storage; later calls fail with ErrClosed.
	Close() error
}

// SelfChecking is implemented by a Storage whose GetBlock only ever
// returns the exact bytes that were committed, or an error: Memory keeps
// its own copies in RAM, and Dir checks a CRC-32C of every block it reads
// back. A core trusts such a store's blocks without hashing them again;
// blocks from any other Storage are re-checked against their leaf hash.
type SelfChecking interface {
	Storage
	// BlocksSelfChecked is a marker; it always returns true.
	BlocksSelfChecked() bool
}

// Memory is a Storage that lives in RAM.
type Memory struct {
	mu     sync.RWMutex
	header *Header
	nodes  map[uint64]wire.Node
	blocks map[uint64][]byte
	closed bool
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{nodes: map[uint64]wire.Node{}, blocks: map[uint64][]byte{}}
}

// Header implements Storage.
func (m *Memory) Header() (*Header, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	return m.header.Clone(), nil
}

// GetNode implements Storage.
func (m *Memory) GetNode(index uint64) (wire.Node, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return wire.Node{}, false, ErrClosed
	}
	n, ok := m.nodes[index]
	return n, ok, nil
}

// GetBlock implements Storage.
func (m *Memory) GetBlock(index uint64) ([]byte, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, false, ErrClosed
	}
	b, ok := m.blocks[index]
	return b, ok, nil
}

// BlocksSelfChecked implements SelfChecking: blocks never leave RAM.
func (m *Memory) BlocksSelfChecked() bool { return true }

// HasBlock implements Storage.
func (m *Memory) HasBlock(index uint64) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, ok := m.blocks[index]
	return ok
}

// Commit implements Storage.
func (m *Memory) Commit(b *Batch) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if b.Truncate != nil {
		truncateMaps(*b.Truncate, m.nodes, m.blocks)
	}
	for _, i := range b.Drop {
		delete(m.blocks, i)
	}
	for _, blk := range b.Blocks {
		if b.Owned {
			m.blocks[blk.Index] = blk.Value[:len(blk.Value):len(blk.Value)]
		} else {
			m.blocks[blk.Index] = bytes.Clone(blk.Value)
		}
	}
	for _, n := range b.Nodes {
		m.nodes[n.Index] = n
	}
	if b.Header != nil {
		m.header = b.Header.Clone()
	}
	return nil
}

// outsideTree reports whether the node at index is not part of the tree
// of the given length (its span reaches past the last block).
func outsideTree(index, length uint64) bool {
	return flat.RightSpan(index) >= 2*length
}

func truncateMaps[V any](length uint64, nodes map[uint64]wire.Node, blocks map[uint64]V) {
	for i := range nodes {
		if outsideTree(i, length) {
			delete(nodes, i)
		}
	}
	for i := range blocks {
		if i >= length {
			delete(blocks, i)
		}
	}
}

// Close implements Storage.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
