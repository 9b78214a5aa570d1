package merkle

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/hyperos/hyperos/hyper/core/flat"
	"github.com/hyperos/hyperos/hyper/core/wire"
)

// Errors returned for bad proofs. They mirror hypercore-errors so that a
// log line reads the same on both implementations.
var (
	// ErrInvalidOperation: a proof names the wrong nodes or a request asks
	// for something that cannot be proven.
	ErrInvalidOperation = errors.New("merkle: invalid operation")
	// ErrInvalidProof: a proof is well-formed but inconsistent.
	ErrInvalidProof = errors.New("merkle: invalid proof")
	// ErrInvalidChecksum: a proof does not hash to a node we trust.
	ErrInvalidChecksum = errors.New("merkle: invalid checksum")
	// ErrInvalidSignature: an upgrade is not signed by the manifest's signers.
	ErrInvalidSignature = errors.New("merkle: invalid signature")
	// ErrNodeMissing: a node needed to build a proof is not stored.
	ErrNodeMissing = errors.New("merkle: tree node missing")
)

// NodeGetter looks up stored, already-verified tree nodes. ok is false when
// the node is not stored; err is for storage failures only.
type NodeGetter interface {
	GetNode(index uint64) (n Node, ok bool, err error)
}

// NodeMap is an in-memory NodeGetter, handy for tests and for proofs over
// nodes that have not been persisted yet.
type NodeMap map[uint64]Node

// GetNode implements NodeGetter.
func (m NodeMap) GetNode(index uint64) (Node, bool, error) {
	n, ok := m[index]
	return n, ok, nil
}

func mustNode(g NodeGetter, index uint64) (Node, error) {
	n, ok, err := g.GetNode(index)
	if err != nil {
		return Node{}, fmt.Errorf("read tree node %d: %w", index, err)
	}
	if !ok {
		return Node{}, fmt.Errorf("tree node %d: %w", index, ErrNodeMissing)
	}
	return n, nil
}

// Tree is the trusted head of a core: its signed length, fork and roots.
// Everything else about the tree is derived from stored nodes.
type Tree struct {
	Fork       uint64
	Length     uint64
	ByteLength uint64
	Roots      []Node
	// Signature over (tree hash, Length, Fork) in the manifest's format.
	Signature []byte
	// Prologue, if set, pins the tree hash at Prologue.Length.
	Prologue *Prologue
}

// Prologue pins a prefix of a static core.
type Prologue = wire.Prologue

// Hash returns the tree hash of the roots, the value that gets signed.
func (t *Tree) Hash() [32]byte { return TreeHash(t.Roots) }

// Clone returns a deep copy so that batches never alias a live tree.
func (t *Tree) Clone() *Tree {
	c := *t
	c.Roots = append([]Node(nil), t.Roots...)
	c.Signature = bytes.Clone(t.Signature)
	return &c
}

// Batch is a tree being grown, by appending blocks (a writer) or by
// applying a verified upgrade proof (a reader). Nodes lists every node the
// batch created or verified, which is what must be stored on commit.
type Batch struct {
	Fork       uint64
	Length     uint64
	ByteLength uint64
	Roots      []Node
	Signature  []byte
	Nodes      []Node
	// Upgraded is true once the batch changed the roots.
	Upgraded bool
	Prologue *Prologue

	// TreeLength and TreeFork record the tree the batch started from.
	TreeLength, TreeFork uint64

	hashCached *[32]byte
}

// NewBatch starts a batch on top of t (which is not modified).
func NewBatch(t *Tree) *Batch {
	return &Batch{
		Fork:       t.Fork,
		Length:     t.Length,
		ByteLength: t.ByteLength,
		Roots:      append([]Node(nil), t.Roots...),
		Signature:  t.Signature,
		Prologue:   t.Prologue,
		TreeLength: t.Length,
		TreeFork:   t.Fork,
	}
}

// Clone returns an independent copy of b.
func (b *Batch) Clone() *Batch {
	c := *b
	c.Roots = append([]Node(nil), b.Roots...)
	c.Nodes = append([]Node(nil), b.Nodes...)
	c.hashCached = nil
	return &c
}

// Tree returns the tree the batch describes.
func (b *Batch) Tree() *Tree {
	return &Tree{
		Fork:       b.Fork,
		Length:     b.Length,
		ByteLength: b.ByteLength,
		Roots:      append([]Node(nil), b.Roots...),
		Signature:  bytes.Clone(b.Signature),
		Prologue:   b.Prologue,
	}
}

// Hash returns the tree hash of the batch's roots.
func (b *Batch) Hash() [32]byte {
	if b.hashCached == nil {
		h := TreeHash(b.Roots)
		b.hashCached = &h
	}
	return *b.hashCached
}

// Signable returns what a v1 signer signs for this batch (ctx is the
// manifest hash, or the signer namespace for v0 manifests).
func (b *Batch) Signable(ctx [32]byte) []byte {
	return Signable(ctx, b.Hash(), b.Length, b.Fork)
}

// SignableCompat returns what a compat signer signs for this batch.
func (b *Batch) SignableCompat(legacy bool) []byte {
	return SignableCompat(b.Hash(), b.Length, b.Fork, legacy)
}

// Append adds one block to the tree, creating its leaf and any parents
// that become complete.
func (b *Batch) Append(data []byte) {
	head := b.Length * 2
	b.appendRoot(LeafNode(head, data), flat.NewIterator(head))
}

// appendRoot pushes node (at it's position) as a new right-most root and
// merges equal-sized roots upward, leaving it on the last root.
func (b *Batch) appendRoot(node Node, it *flat.Iterator) {
	b.hashCached = nil
	b.Upgraded = true
	b.Length += it.Factor / 2
	b.ByteLength += node.Size
	b.Roots = append(b.Roots, node)
	b.Nodes = append(b.Nodes, node)
	for len(b.Roots) > 1 {
		a := b.Roots[len(b.Roots)-1]
		l := b.Roots[len(b.Roots)-2]
		if it.Sibling() != l.Index {
			it.Sibling() // undo, so it stays on the last root
			break
		}
		p := ParentNode(it.Parent(), a, l)
		b.Nodes = append(b.Nodes, p)
		b.Roots = b.Roots[:len(b.Roots)-2]
		b.Roots = append(b.Roots, p)
	}
}

// Get returns a node from the batch's new nodes or from g.
func (b *Batch) Get(g NodeGetter, index uint64) (Node, bool, error) {
	if index >= b.Length*2 {
		return Node{}, false, nil
	}
	for _, n := range b.Nodes {
		if n.Index == index {
			return n, true, nil
		}
	}
	if g == nil {
		return Node{}, false, nil
	}
	return g.GetNode(index)
}

// Commitable reports whether the batch still applies to t: a batch that
// upgraded must start from exactly t, others only from the same fork.
func (b *Batch) Commitable(t *Tree) bool {
	if b.TreeFork != t.Fork {
		return false
	}
	if b.Upgraded {
		return b.TreeLength == t.Length
	}
	return b.TreeLength <= t.Length
}

// RootsAt returns the roots of the tree at length, read from g. It is how a
// writer that only persisted nodes recovers its head.
func RootsAt(g NodeGetter, length uint64) ([]Node, error) {
	idx := flat.FullRoots(2 * length)
	roots := make([]Node, 0, len(idx))
	for _, i := range idx {
		n, err := mustNode(g, i)
		if err != nil {
			return nil, fmt.Errorf("roots at length %d: %w", length, err)
		}
		roots = append(roots, n)
	}
	return roots, nil
}

// TotalSize sums node sizes: for roots this is the byte length of the core.
func TotalSize(nodes []Node) uint64 {
	var s uint64
	for _, n := range nodes {
		s += n.Size
	}
	return s
}

// ByteOffset returns the byte offset at which the subtree at flat index
// starts, using the tree's roots and stored nodes.
func ByteOffset(t *Tree, g NodeGetter, index uint64) (uint64, error) {
	if index == 2*t.Length {
		return t.ByteLength, nil
	}
	if index&1 == 1 {
		index = flat.LeftSpan(index)
	}
	var head, offset uint64
	for _, root := range t.Roots {
		head += 2 * (root.Index - head + 1)
		if index >= head {
			offset += root.Size
			continue
		}
		it := flat.NewIterator(root.Index)
		for steps := 0; it.Index != index; steps++ {
			if steps > 128 {
				return 0, fmt.Errorf("byte offset of %d: %w", index, ErrInvalidOperation)
			}
			if index < it.Index {
				it.LeftChild()
			} else {
				l, err := mustNode(g, it.LeftChild())
				if err != nil {
					return 0, err
				}
				offset += l.Size
				it.Sibling()
			}
		}
		return offset, nil
	}
	return 0, fmt.Errorf("byte offset of %d beyond length %d: %w", index, t.Length, ErrInvalidOperation)
}
