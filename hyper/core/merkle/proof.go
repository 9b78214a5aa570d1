package merkle

import (
	"fmt"

	"github.com/hyperos/hyperos/hyper/core/flat"
	"github.com/hyperos/hyperos/hyper/core/wire"
)

// ProofRequest is what a remote asks a seeder to prove; it is the proof
// part of a wire.Request.
type ProofRequest struct {
	Block   *wire.RequestBlock
	Hash    *wire.RequestBlock
	Seek    *wire.RequestSeek
	Upgrade *wire.RequestUpgrade
}

// maxWalk bounds every tree walk: no path in a 2^53-leaf tree is longer,
// so a longer walk means a hostile or inconsistent argument.
const maxWalk = 128

// indexed is a block or hash request normalised to a flat index.
type indexed struct {
	value     bool // a block request: the leaf itself is sent as a value
	index     uint64
	nodes     uint64
	lastIndex uint64 // last block covered
}

// pending collects proof nodes; the *Set flags reproduce the null-versus-
// empty distinction of Node's TreeProof, which decides where nodes go.
type pending struct {
	node, seek, upgrade, additional             []Node
	nodeSet, seekSet, upgradeSet, additionalSet bool
}

type prover struct {
	t *Tree
	g NodeGetter
	p pending
}

func (pr *prover) get(index uint64) (Node, error) { return mustNode(pr.g, index) }

// GenerateProof builds the proof for req against tree t, reading nodes from
// g, exactly as hypercore's generateProof does: the block's (or node's)
// uncle path up to the subtree the requester already trusts, seek nodes,
// the nodes that upgrade the requester from Upgrade.Start to
// Upgrade.Start+Upgrade.Length, and additional nodes up to t's length. The
// block value itself is not filled in; the caller adds it.
func GenerateProof(t *Tree, g NodeGetter, req ProofRequest) (*wire.Data, error) {
	out := &wire.Data{Fork: t.Fork}
	upgrade := req.Upgrade
	if t.Prologue != nil && upgrade != nil {
		u := *upgrade
		if u.Start < t.Prologue.Length {
			u.Start = 0
			u.Length = t.Prologue.Length
		}
		upgrade = &u
	}
	head := 2 * t.Length
	var from, to uint64 = 0, head
	if upgrade != nil {
		from = upgrade.Start * 2
		to = from + upgrade.Length*2
		if upgrade.Length > (1<<62) || upgrade.Start > (1<<62) {
			return nil, fmt.Errorf("upgrade %d+%d: %w", upgrade.Start, upgrade.Length, ErrInvalidOperation)
		}
	}
	var node *indexed
	switch {
	case req.Block != nil:
		if req.Block.Index > 1<<62 {
			return nil, fmt.Errorf("block %d: %w", req.Block.Index, ErrInvalidOperation)
		}
		node = &indexed{value: true, index: req.Block.Index * 2, nodes: req.Block.Nodes, lastIndex: req.Block.Index}
	case req.Hash != nil:
		node = &indexed{index: req.Hash.Index, nodes: req.Hash.Nodes, lastIndex: flat.RightSpan(req.Hash.Index) / 2}
	}
	if head == 0 {
		return out, nil
	}
	if upgrade != nil && (from >= to || to > head) {
		return nil, fmt.Errorf("upgrade %d+%d at length %d: %w", upgrade.Start, upgrade.Length, t.Length, ErrInvalidOperation)
	}
	if req.Seek != nil && upgrade != nil && node != nil && node.index >= from {
		return nil, fmt.Errorf("seek together with block/hash inside the upgrade: %w", ErrInvalidOperation)
	}

	pr := &prover{t: t, g: g}
	subTree := head
	if node != nil && (upgrade == nil || node.lastIndex < upgrade.Start) {
		var err error
		if subTree, err = nodesToRoot(node.index, node.nodes, to); err != nil {
			return nil, err
		}
		seekRoot := head
		if req.Seek != nil {
			if seekRoot, err = pr.seekUntrustedTree(subTree, req.Seek.Bytes, req.Seek.Padding); err != nil {
				return nil, err
			}
		}
		if err := pr.blockAndSeekProof(node, req.Seek != nil, seekRoot, subTree); err != nil {
			return nil, err
		}
	} else if (node != nil || req.Seek != nil) && upgrade != nil {
		if req.Seek != nil {
			var err error
			if subTree, err = pr.seekFromHead(to, req.Seek.Bytes, req.Seek.Padding); err != nil {
				return nil, err
			}
		} else {
			subTree = node.index
		}
	}
	if upgrade != nil {
		if err := pr.upgradeProof(node, req.Seek != nil, from, to, subTree); err != nil {
			return nil, err
		}
		if head > to {
			if err := pr.additionalUpgradeProof(to, head); err != nil {
				return nil, err
			}
		}
	}

	p := &pr.p
	switch {
	case req.Block != nil:
		if !p.nodeSet {
			return nil, fmt.Errorf("block %d: %w", req.Block.Index, ErrInvalidOperation)
		}
		out.Block = &wire.DataBlock{Index: req.Block.Index, Nodes: nonNil(p.node)}
	case req.Hash != nil:
		if !p.nodeSet {
			return nil, fmt.Errorf("hash %d: %w", req.Hash.Index, ErrInvalidOperation)
		}
		out.Hash = &wire.DataHash{Index: req.Hash.Index, Nodes: nonNil(p.node)}
	}
	if req.Seek != nil && p.seekSet {
		out.Seek = &wire.DataSeek{Bytes: req.Seek.Bytes, Nodes: nonNil(p.seek)}
	}
	if upgrade != nil {
		out.Upgrade = &wire.DataUpgrade{
			Start:           upgrade.Start,
			Length:          upgrade.Length,
			Nodes:           nonNil(p.upgrade),
			AdditionalNodes: nonNil(p.additional),
			Signature:       t.Signature,
		}
	}
	return out, nil
}

func nonNil(n []Node) []Node {
	if n == nil {
		return []Node{}
	}
	return n
}

// nodesToRoot climbs nodes levels from index; the result must stay inside
// the tree of length to/2 or the requester asked for nodes that don't exist.
func nodesToRoot(index, nodes, to uint64) (uint64, error) {
	if nodes > maxWalk {
		return 0, fmt.Errorf("%d nodes requested: %w", nodes, ErrInvalidOperation)
	}
	it := flat.NewIterator(index)
	for i := uint64(0); i < nodes; i++ {
		it.Parent()
		if it.Contains(to) {
			return 0, fmt.Errorf("nodes out of bounds: %w", ErrInvalidOperation)
		}
	}
	return it.Index, nil
}

func (pr *prover) seekProof(seekRoot, root uint64) error {
	it := flat.NewIterator(seekRoot)
	n, err := pr.get(it.Index)
	if err != nil {
		return err
	}
	pr.p.seek = []Node{n}
	pr.p.seekSet = true
	for steps := 0; it.Index != root; steps++ {
		if steps > maxWalk {
			return fmt.Errorf("seek proof from %d to %d: %w", seekRoot, root, ErrInvalidOperation)
		}
		n, err := pr.get(it.Sibling())
		if err != nil {
			return err
		}
		pr.p.seek = append(pr.p.seek, n)
		it.Parent()
	}
	return nil
}

func (pr *prover) blockAndSeekProof(node *indexed, seek bool, seekRoot, root uint64) error {
	if node == nil {
		return pr.seekProof(seekRoot, root)
	}
	it := flat.NewIterator(node.index)
	pr.p.node = []Node{}
	pr.p.nodeSet = true
	if !node.value {
		n, err := pr.get(it.Index)
		if err != nil {
			return err
		}
		pr.p.node = append(pr.p.node, n)
	}
	for steps := 0; it.Index != root; steps++ {
		if steps > maxWalk {
			return fmt.Errorf("block proof from %d to %d: %w", node.index, root, ErrInvalidOperation)
		}
		it.Sibling()
		if seek && it.Contains(seekRoot) && it.Index != seekRoot {
			if err := pr.seekProof(seekRoot, it.Index); err != nil {
				return err
			}
		} else {
			n, err := pr.get(it.Index)
			if err != nil {
				return err
			}
			pr.p.node = append(pr.p.node, n)
		}
		it.Parent()
	}
	return nil
}

func (pr *prover) upgradeProof(node *indexed, seek bool, from, to, subTree uint64) error {
	p := &pr.p
	if from == 0 {
		p.upgrade, p.upgradeSet = []Node{}, true
	}
	for it := flat.NewIterator(0); it.FullRoot(to); it.NextTree() {
		if it.Index+it.Factor/2 < from {
			continue // the requester already has this root
		}
		if !p.upgradeSet && from >= 2 && it.Contains(from-2) {
			// connect the requester's last root to this one
			p.upgrade, p.upgradeSet = []Node{}, true
			root := it.Index
			target := from - 2
			it.Seek(target)
			for steps := 0; it.Index != root; steps++ {
				if steps > maxWalk {
					return fmt.Errorf("upgrade proof to %d: %w", root, ErrInvalidOperation)
				}
				it.Sibling()
				if it.Index > target {
					if !p.nodeSet && !p.seekSet && it.Contains(subTree) {
						if err := pr.blockAndSeekProof(node, seek, subTree, it.Index); err != nil {
							return err
						}
					} else {
						n, err := pr.get(it.Index)
						if err != nil {
							return err
						}
						p.upgrade = append(p.upgrade, n)
					}
				}
				it.Parent()
			}
			continue
		}
		if !p.upgradeSet {
			p.upgrade, p.upgradeSet = []Node{}, true
		}
		// a block/seek proof inside this root replaces the root itself
		if !p.nodeSet && !p.seekSet && it.Contains(subTree) {
			if err := pr.blockAndSeekProof(node, seek, subTree, it.Index); err != nil {
				return err
			}
			continue
		}
		n, err := pr.get(it.Index)
		if err != nil {
			return err
		}
		p.upgrade = append(p.upgrade, n)
	}
	return nil
}

func (pr *prover) additionalUpgradeProof(from, to uint64) error {
	p := &pr.p
	if from == 0 {
		p.additional, p.additionalSet = []Node{}, true
	}
	for it := flat.NewIterator(0); it.FullRoot(to); it.NextTree() {
		if it.Index+it.Factor/2 < from {
			continue
		}
		if !p.additionalSet && from >= 2 && it.Contains(from-2) {
			p.additional, p.additionalSet = []Node{}, true
			root := it.Index
			target := from - 2
			it.Seek(target)
			for steps := 0; it.Index != root; steps++ {
				if steps > maxWalk {
					return fmt.Errorf("additional upgrade proof to %d: %w", root, ErrInvalidOperation)
				}
				it.Sibling()
				if it.Index > target {
					n, err := pr.get(it.Index)
					if err != nil {
						return err
					}
					p.additional = append(p.additional, n)
				}
				it.Parent()
			}
			continue
		}
		if !p.additionalSet {
			p.additional, p.additionalSet = []Node{}, true
		}
		n, err := pr.get(it.Index)
		if err != nil {
			return err
		}
		p.additional = append(p.additional, n)
	}
	return nil
}

// unpaddedSize is a node's byte size when every block counts padding
// bytes less; ok is false when padding exceeds the size (a bad request).
func unpaddedSize(n Node, padding, leaves uint64) (uint64, bool) {
	if padding == 0 {
		return n.Size, true
	}
	if padding > n.Size || padding*leaves > n.Size {
		return 0, false
	}
	return n.Size - padding*leaves, true
}

// seekFromHead finds the node to prove for a seek to bytes in the tree of
// length head/2, trusting that the tree holds that many bytes.
func (pr *prover) seekFromHead(head, bytes, padding uint64) (uint64, error) {
	for _, root := range flat.FullRoots(head) {
		n, err := pr.get(root)
		if err != nil {
			return 0, err
		}
		size, ok := unpaddedSize(n, padding, flat.CountLeaves(root))
		if !ok {
			return 0, fmt.Errorf("seek padding %d: %w", padding, ErrInvalidOperation)
		}
		if bytes == size {
			return root, nil
		}
		if bytes > size {
			bytes -= size
			continue
		}
		return pr.seekTrustedTree(root, bytes, padding)
	}
	return head, nil
}

// seekTrustedTree descends from root towards the block holding bytes,
// stopping at the first node it does not have.
func (pr *prover) seekTrustedTree(root, bytes, padding uint64) (uint64, error) {
	if bytes == 0 {
		return root, nil
	}
	it := flat.NewIterator(root)
	for steps := 0; it.Index&1 == 1; steps++ {
		if steps > maxWalk {
			return 0, fmt.Errorf("seek in %d: %w", root, ErrInvalidOperation)
		}
		l, ok, err := pr.g.GetNode(it.LeftChild())
		if err != nil {
			return 0, fmt.Errorf("read tree node %d: %w", it.Index, err)
		}
		if !ok {
			it.Parent()
			return it.Index, nil
		}
		size, ok := unpaddedSize(l, padding, it.CountLeaves())
		if !ok {
			return 0, fmt.Errorf("seek padding %d: %w", padding, ErrInvalidOperation)
		}
		if size == bytes {
			return it.Index, nil
		}
		if size > bytes {
			continue
		}
		bytes -= size
		it.Sibling()
	}
	return it.Index, nil
}

// seekUntrustedTree checks that bytes falls inside root before descending.
func (pr *prover) seekUntrustedTree(root, bytes, padding uint64) (uint64, error) {
	offset, err := ByteOffset(pr.t, pr.g, root)
	if err != nil {
		return 0, err
	}
	if padding > 0 {
		pad := padding * (flat.LeftSpan(root) / 2)
		if pad > offset {
			return 0, fmt.Errorf("seek padding %d: %w", padding, ErrInvalidOperation)
		}
		offset -= pad
	}
	if offset > bytes {
		return 0, fmt.Errorf("seek to %d before subtree %d: %w", bytes, root, ErrInvalidOperation)
	}
	if offset == bytes {
		return root, nil
	}
	bytes -= offset
	n, err := pr.get(root)
	if err != nil {
		return 0, err
	}
	size, ok := unpaddedSize(n, padding, flat.CountLeaves(root))
	if !ok || size <= bytes {
		return 0, fmt.Errorf("seek to %d beyond subtree %d: %w", bytes, root, ErrInvalidOperation)
	}
	return pr.seekTrustedTree(root, bytes, padding)
}
