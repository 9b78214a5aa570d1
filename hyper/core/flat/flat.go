// Package flat implements the flat-tree layout that Hypercore uses to address
// the nodes of its Merkle tree in one linear index space.
//
// Leaves (blocks) sit at even indexes (block i at 2i) and parents at odd
// indexes; the depth of a node is the number of trailing one bits of its
// index. Every function here mirrors the semantics of the npm package
// flat-tree 1.x exactly, because proofs on the wire name nodes by these
// indexes and an off-by-one would make us incompatible with Node peers.
package flat

import "math/bits"

// Depth returns the depth of the node at index (0 for leaves).
func Depth(index uint64) uint64 {
	return uint64(bits.TrailingZeros64(^index))
}

// Offset returns the position of index among the nodes of its depth.
func Offset(index uint64) uint64 {
	if index&1 == 0 {
		return index / 2
	}
	d := Depth(index)
	return ((index+1)>>d - 1) / 2
}

// Index returns the flat index of the node at depth and offset.
func Index(depth, offset uint64) uint64 {
	return (1+2*offset)<<depth - 1
}

// Parent returns the index of the parent of index.
func Parent(index uint64) uint64 {
	d := Depth(index)
	return Index(d+1, Offset(index)>>1)
}

// Sibling returns the index of the other child of index's parent.
func Sibling(index uint64) uint64 {
	d := Depth(index)
	o := Offset(index)
	if o&1 == 1 {
		return Index(d, o-1)
	}
	return Index(d, o+1)
}

// LeftChild returns the left child of a parent node; ok is false for leaves.
func LeftChild(index uint64) (child uint64, ok bool) {
	if index&1 == 0 {
		return 0, false
	}
	d := Depth(index)
	return Index(d-1, Offset(index)*2), true
}

// RightChild returns the right child of a parent node; ok is false for leaves.
func RightChild(index uint64) (child uint64, ok bool) {
	if index&1 == 0 {
		return 0, false
	}
	d := Depth(index)
	return Index(d-1, 1+Offset(index)*2), true
}

// LeftSpan returns the left-most leaf index covered by index.
func LeftSpan(index uint64) uint64 {
	if index&1 == 0 {
		return index
	}
	d := Depth(index)
	return Offset(index) << (d + 1)
}

// RightSpan returns the right-most leaf index covered by index.
func RightSpan(index uint64) uint64 {
	if index&1 == 0 {
		return index
	}
	d := Depth(index)
	return (Offset(index)+1)<<(d+1) - 2
}

// Spans returns LeftSpan and RightSpan together.
func Spans(index uint64) (left, right uint64) {
	return LeftSpan(index), RightSpan(index)
}

// Count returns how many nodes (leaves and parents) the subtree at index holds.
func Count(index uint64) uint64 {
	if index&1 == 0 {
		return 1
	}
	return 1<<(Depth(index)+1) - 1
}

// CountLeaves returns how many leaves the subtree at index holds.
func CountLeaves(index uint64) uint64 {
	return (Count(index) + 1) / 2
}

// FullRoots returns the roots of a tree whose first unused leaf index is
// index (so a core of length n has FullRoots(2n)), largest subtree first.
// index must be even; odd indexes return nil, as flat-tree throws for them.
func FullRoots(index uint64) []uint64 {
	if index&1 == 1 {
		return nil
	}
	var out []uint64
	n := index / 2
	var offset uint64
	for n > 0 {
		factor := uint64(1) << (63 - bits.LeadingZeros64(n))
		out = append(out, offset+factor-1)
		offset += 2 * factor
		n -= factor
	}
	return out
}

// Iterator walks the tree in place. Its fields match flat-tree's iterator:
// Factor is twice the number of leaves the current node spans.
type Iterator struct {
	Index  uint64
	Offset uint64
	Factor uint64
}

// NewIterator returns an iterator positioned at index.
func NewIterator(index uint64) *Iterator {
	it := &Iterator{}
	it.Seek(index)
	return it
}

// Seek moves the iterator to index.
func (it *Iterator) Seek(index uint64) {
	it.Index = index
	if index&1 == 1 {
		it.Offset = Offset(index)
		it.Factor = 1 << (Depth(index) + 1)
	} else {
		it.Offset = index / 2
		it.Factor = 2
	}
}

// IsLeft reports whether the current node is a left child.
func (it *Iterator) IsLeft() bool { return it.Offset&1 == 0 }

// IsRight reports whether the current node is a right child.
func (it *Iterator) IsRight() bool { return it.Offset&1 == 1 }

// Contains reports whether index lies inside the current node's subtree.
func (it *Iterator) Contains(index uint64) bool {
	switch {
	case index > it.Index:
		return index < it.Index+it.Factor/2
	case index < it.Index:
		// written as an addition: Index-Factor/2 can underflow at the left edge
		return index+it.Factor/2 > it.Index
	default:
		return true
	}
}

// Prev moves to the previous node at the same depth (stays put at offset 0).
func (it *Iterator) Prev() uint64 {
	if it.Offset == 0 {
		return it.Index
	}
	it.Offset--
	it.Index -= it.Factor
	return it.Index
}

// Next moves to the next node at the same depth.
func (it *Iterator) Next() uint64 {
	it.Offset++
	it.Index += it.Factor
	return it.Index
}

// Count returns the number of nodes in the current subtree.
func (it *Iterator) Count() uint64 {
	if it.Index&1 == 0 {
		return 1
	}
	return it.Factor - 1
}

// CountLeaves returns the number of leaves in the current subtree.
func (it *Iterator) CountLeaves() uint64 { return (it.Count() + 1) / 2 }

// Sibling moves to the sibling of the current node.
func (it *Iterator) Sibling() uint64 {
	if it.IsLeft() {
		return it.Next()
	}
	return it.Prev()
}

// Parent moves to the parent of the current node.
func (it *Iterator) Parent() uint64 {
	if it.Offset&1 == 1 {
		it.Index -= it.Factor / 2
		it.Offset = (it.Offset - 1) / 2
	} else {
		it.Index += it.Factor / 2
		it.Offset /= 2
	}
	it.Factor *= 2
	return it.Index
}

// LeftSpan moves to the left-most leaf of the current subtree.
func (it *Iterator) LeftSpan() uint64 {
	it.Index = it.Index - it.Factor/2 + 1
	it.Offset = it.Index / 2
	it.Factor = 2
	return it.Index
}

// RightSpan moves to the right-most leaf of the current subtree.
func (it *Iterator) RightSpan() uint64 {
	it.Index = it.Index + it.Factor/2 - 1
	it.Offset = it.Index / 2
	it.Factor = 2
	return it.Index
}

// PeekRightSpan returns the right-most leaf of the current subtree without moving.
func (it *Iterator) PeekRightSpan() uint64 { return it.Index + it.Factor/2 - 1 }

// PeekLeftSpan returns the left-most leaf of the current subtree without moving.
func (it *Iterator) PeekLeftSpan() uint64 { return it.Index - it.Factor/2 + 1 }

// LeftChild moves to the left child (stays put on a leaf).
func (it *Iterator) LeftChild() uint64 {
	if it.Factor == 2 {
		return it.Index
	}
	it.Factor /= 2
	it.Index -= it.Factor / 2
	it.Offset *= 2
	return it.Index
}

// RightChild moves to the right child (stays put on a leaf).
func (it *Iterator) RightChild() uint64 {
	if it.Factor == 2 {
		return it.Index
	}
	it.Factor /= 2
	it.Index += it.Factor / 2
	it.Offset = 2*it.Offset + 1
	return it.Index
}

// NextTree moves to the first leaf after the current subtree.
func (it *Iterator) NextTree() uint64 {
	it.Index = it.Index + it.Factor/2 + 1
	it.Offset = it.Index / 2
	it.Factor = 2
	return it.Index
}

// FullRoot grows the current leaf into the largest full root that ends
// before index, the way flat-tree does when enumerating roots left to right.
// It returns false when there is no further root before index.
func (it *Iterator) FullRoot(index uint64) bool {
	if index <= it.Index || it.Index&1 == 1 {
		return false
	}
	for index > it.Index+it.Factor+it.Factor/2 {
		it.Index += it.Factor / 2
		it.Factor *= 2
		it.Offset /= 2
	}
	return true
}
