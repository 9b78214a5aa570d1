package merkle

import (
	"bytes"
	"fmt"

	"github.com/hyperos/hyperos/hyper/core/flat"
	"github.com/hyperos/hyperos/hyper/core/wire"
)

// nodeQueue hands out proof nodes in the order the verifier expects them;
// extra is an already-verified subtree root that may stand in for one node.
type nodeQueue struct {
	nodes []Node
	i     int
	extra *Node
}

func (q *nodeQueue) remaining() int {
	n := len(q.nodes) - q.i
	if q.extra != nil {
		n++
	}
	return n
}

func (q *nodeQueue) shift(index uint64) (Node, error) {
	if q.extra != nil && q.extra.Index == index {
		n := *q.extra
		q.extra = nil
		return n, nil
	}
	if q.i >= len(q.nodes) {
		return Node{}, fmt.Errorf("expected node %d, got none: %w", index, ErrInvalidOperation)
	}
	n := q.nodes[q.i]
	if n.Index != index {
		return Node{}, fmt.Errorf("expected node %d, got node %d: %w", index, n.Index, ErrInvalidOperation)
	}
	q.i++
	return n, nil
}

// maxFactor keeps iterator arithmetic far from overflow on hostile proofs.
const maxFactor = 1 << 56

// walkUp hashes root upward with the queued siblings until the queue is
// empty, recording every node it trusts from now on.
func walkUp(it *flat.Iterator, root Node, q *nodeQueue, nodes *[]Node) (Node, error) {
	for q.remaining() > 0 {
		if it.Factor >= maxFactor {
			return Node{}, fmt.Errorf("proof climbs too high: %w", ErrInvalidOperation)
		}
		n, err := q.shift(it.Sibling())
		if err != nil {
			return Node{}, err
		}
		root = ParentNode(it.Parent(), root, n)
		*nodes = append(*nodes, n, root)
	}
	return root, nil
}

// verifyTree hashes the block (or node) and seek parts of a proof up to
// the subtree root they imply. It returns nil when the proof has neither.
// The nodes it used are appended to nodes; they become trusted only once
// the returned root is matched against a signed tree.
func verifyTree(p *wire.Data, leaf *[32]byte, nodes *[]Node) (*Node, error) {
	var (
		index   uint64
		value   []byte
		isBlock bool
		uNodes  []Node
		have    bool
	)
	switch {
	case p.Block != nil:
		if p.Block.Index > 1<<62 {
			return nil, fmt.Errorf("block index %d: %w", p.Block.Index, ErrInvalidOperation)
		}
		index, value, isBlock, uNodes, have = 2*p.Block.Index, p.Block.Value, true, p.Block.Nodes, true
	case p.Hash != nil:
		index, uNodes, have = p.Hash.Index, p.Hash.Nodes, true
	}
	if !have && (p.Seek == nil || len(p.Seek.Nodes) == 0) {
		return nil, nil
	}
	var root *Node
	if p.Seek != nil && len(p.Seek.Nodes) > 0 {
		it := flat.NewIterator(p.Seek.Nodes[0].Index)
		q := &nodeQueue{nodes: p.Seek.Nodes}
		first, err := q.shift(it.Index)
		if err != nil {
			return nil, fmt.Errorf("seek proof: %w", err)
		}
		*nodes = append(*nodes, first)
		r, err := walkUp(it, first, q, nodes)
		if err != nil {
			return nil, fmt.Errorf("seek proof: %w", err)
		}
		root = &r
	}
	if !have {
		return root, nil
	}
	it := flat.NewIterator(index)
	q := &nodeQueue{nodes: uNodes, extra: root}
	var start Node
	switch {
	case isBlock && leaf != nil:
		start = Node{Index: index, Size: uint64(len(value)), Hash: *leaf}
	case isBlock:
		start = LeafNode(index, value)
	default:
		var err error
		if start, err = q.shift(index); err != nil {
			return nil, fmt.Errorf("hash proof: %w", err)
		}
	}
	*nodes = append(*nodes, start)
	r, err := walkUp(it, start, q, nodes)
	if err != nil {
		return nil, fmt.Errorf("block proof: %w", err)
	}
	return &r, nil
}

// verifyUpgrade applies an upgrade proof to batch: it rebuilds the roots at
// Start+Length from the batch's own roots, the upgrade nodes and blockRoot,
// then extends them with the additional nodes. It reports whether blockRoot
// was consumed (and so is now covered by the signature check that follows).
func verifyUpgrade(p *wire.Data, blockRoot *Node, b *Batch) (bool, error) {
	u := p.Upgrade
	if b.Prologue != nil && u.Start < b.Prologue.Length && (u.Start != 0 || u.Length < b.Prologue.Length) {
		return false, fmt.Errorf("upgrade does not satisfy prologue: %w", ErrInvalidProof)
	}
	if u.Start > 1<<52 || u.Length > 1<<52 {
		return false, fmt.Errorf("upgrade %d+%d: %w", u.Start, u.Length, ErrInvalidOperation)
	}
	q := &nodeQueue{nodes: u.Nodes, extra: blockRoot}
	grow := len(b.Roots) > 0
	i := 0
	to := 2 * (u.Start + u.Length)
	it := flat.NewIterator(0)
	for ; it.FullRoot(to); it.NextTree() {
		if i < len(b.Roots) && b.Roots[i].Index == it.Index {
			i++
			continue
		}
		if grow {
			grow = false
			root := it.Index
			if i < len(b.Roots) {
				it.Seek(b.Roots[len(b.Roots)-1].Index)
				for it.Index != root {
					if it.Factor >= maxFactor {
						return false, fmt.Errorf("upgrade does not reach root %d: %w", root, ErrInvalidOperation)
					}
					n, err := q.shift(it.Sibling())
					if err != nil {
						return false, fmt.Errorf("upgrade proof: %w", err)
					}
					b.appendRoot(n, it)
				}
				continue
			}
		}
		n, err := q.shift(it.Index)
		if err != nil {
			return false, fmt.Errorf("upgrade proof: %w", err)
		}
		b.appendRoot(n, it)
	}
	if b.Prologue != nil && b.Length == b.Prologue.Length {
		if b.Hash() != b.Prologue.Hash {
			return false, fmt.Errorf("tree hash differs from prologue: %w", ErrInvalidProof)
		}
	}
	if len(b.Roots) == 0 {
		return false, fmt.Errorf("empty upgrade: %w", ErrInvalidProof)
	}
	extra := u.AdditionalNodes
	it.Seek(b.Roots[len(b.Roots)-1].Index)
	i = 0
	for i < len(extra) && extra[i].Index == it.Sibling() {
		if it.Factor >= maxFactor {
			return false, fmt.Errorf("additional nodes climb too high: %w", ErrInvalidOperation)
		}
		b.appendRoot(extra[i], it)
		i++
	}
	for i < len(extra) {
		n := extra[i]
		i++
		for n.Index != it.Index {
			if it.Factor == 2 {
				return false, fmt.Errorf("unexpected additional node %d: %w", n.Index, ErrInvalidOperation)
			}
			it.LeftChild()
		}
		b.appendRoot(n, it)
		if it.Factor >= maxFactor {
			return false, fmt.Errorf("additional nodes climb too high: %w", ErrInvalidOperation)
		}
		it.Sibling()
	}
	b.Signature = bytes.Clone(u.Signature)
	b.Fork = p.Fork
	return q.extra == nil, nil
}

// Verify checks a received proof against the trusted tree t and the nodes
// stored in g, and returns the batch of newly trusted nodes (and, for an
// upgrade, the new head). Nothing is trusted unless it hashes up to a node
// already stored or to roots whose signature v accepts; the caller stores
// the batch's nodes and, if Upgraded, adopts batch.Tree().
//
// A proof for another fork is refused unless t is empty, in which case the
// signed fork is adopted (a fresh reader has nothing to conflict with).
func Verify(t *Tree, g NodeGetter, p *wire.Data, v *Verifier) (*Batch, error) {
	return VerifyHashed(t, g, p, v, nil)
}

// VerifyHashed is Verify with the block's leaf hash computed beforehand:
// leaf, if not nil, must be LeafHash(p.Block.Value). Hashing the block is
// most of the cost of verifying it, and a caller that serialises Verify
// under a lock can do it before taking the lock.
func VerifyHashed(t *Tree, g NodeGetter, p *wire.Data, v *Verifier, leaf *[32]byte) (*Batch, error) {
	if p.Fork != t.Fork && t.Length > 0 {
		return nil, fmt.Errorf("proof for fork %d, tree is at fork %d: %w", p.Fork, t.Fork, ErrInvalidProof)
	}
	b := NewBatch(t)
	unverified, err := verifyTree(p, leaf, &b.Nodes)
	if err != nil {
		return nil, err
	}
	if p.Upgrade != nil {
		if v == nil {
			return nil, fmt.Errorf("upgrade without a verifier: %w", ErrInvalidSignature)
		}
		consumed, err := verifyUpgrade(p, unverified, b)
		if err != nil {
			return nil, err
		}
		if consumed {
			unverified = nil
		}
		if !v.Verify(b, b.Signature) {
			return nil, fmt.Errorf("upgrade to length %d: %w", b.Length, ErrInvalidSignature)
		}
		if b.Length <= t.Length {
			// A signed but not newer head: keep ours, after checking that the
			// proof agrees with what we already trust.
			for _, r := range b.Roots {
				have, ok, err := b.getStored(g, t, r.Index)
				if err != nil {
					return nil, err
				}
				if !ok || have.Hash != r.Hash || have.Size != r.Size {
					return nil, fmt.Errorf("signed root %d conflicts with local tree: %w", r.Index, ErrInvalidChecksum)
				}
			}
			b.Upgraded = false
			b.Length, b.ByteLength, b.Roots, b.Signature, b.Fork = t.Length, t.ByteLength, append([]Node(nil), t.Roots...), t.Signature, t.Fork
			b.hashCached = nil
		}
	}
	if unverified != nil {
		have, ok, err := b.getStored(g, t, unverified.Index)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("no trusted node %d to check the proof against: %w", unverified.Index, ErrInvalidChecksum)
		}
		if have.Hash != unverified.Hash || have.Size != unverified.Size {
			return nil, fmt.Errorf("node %d: %w", unverified.Index, ErrInvalidChecksum)
		}
	}
	return b, nil
}

// getStored looks a trusted node up among t's roots and then in g.
func (b *Batch) getStored(g NodeGetter, t *Tree, index uint64) (Node, bool, error) {
	for _, r := range t.Roots {
		if r.Index == index {
			return r, true, nil
		}
	}
	if g == nil {
		return Node{}, false, nil
	}
	n, ok, err := g.GetNode(index)
	if err != nil {
		return Node{}, false, fmt.Errorf("read tree node %d: %w", index, err)
	}
	return n, ok, nil
}

// MissingNodes counts how many ancestors of the node at index (exclusive)
// are absent from g below the roots of a tree of the given length: the
// `nodes` value a reader puts in a block request so that the seeder sends
// just enough of the uncle path.
func MissingNodes(g NodeGetter, index, length uint64) (uint64, error) {
	head := 2 * length
	it := flat.NewIterator(index)
	if it.Index+it.Factor/2-1 >= head {
		return 0, nil
	}
	var cnt uint64
	for !it.Contains(head) {
		_, ok, err := g.GetNode(it.Index)
		if err != nil {
			return 0, fmt.Errorf("read tree node %d: %w", it.Index, err)
		}
		if ok {
			break
		}
		cnt++
		if cnt > maxWalk {
			return 0, fmt.Errorf("missing nodes for %d at %d: %w", index, length, ErrInvalidOperation)
		}
		it.Parent()
	}
	return cnt, nil
}
