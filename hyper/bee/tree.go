package bee

import (
	"bytes"
	"context"
	"errors"
	"fmt"
)

// B-tree shape, fixed by Node's hyperbee (index.js: T = 5). Changing any of
// these changes the blocks written and breaks byte compatibility.
const (
	treeT       = 5
	minKeys     = treeT - 1
	maxChildren = minKeys*2 + 1
)

// maxDepth guards descents against a hostile core whose child pointers form
// a cycle. A tree of 2^53 keys with at least 5 children per inner node is
// far shallower than this.
const maxDepth = 64

// maxCachedBlocks mirrors the per-batch block cache of Node (128 committed
// blocks beyond the pending ones). It only bounds memory; the written bytes
// do not depend on it.
const maxCachedBlocks = 128

// errCorrupt is wrapped when block contents are well-formed protobuf but do
// not describe a valid tree (a child offset past the index, a cycle).
var errCorrupt = errors.New("bee: corrupt tree")

// The types below are a deliberately literal port of the object graph in
// hyperbee/index.js (Key, Child, TreeNode, BlockEntry, Batch). Node's write
// path decides which tree nodes are rewritten, and in which order they are
// laid out in a block's index, through object identity and in-place
// mutation (the changed flag, Child.seq/offset rewritten by indexChanges,
// toBlocks compacting a batch). Reproducing the same blocks is only
// practical by mutating the same shapes in the same order, so the port
// keeps Node's structure and names rather than a more idiomatic B-tree.

// key is a reference to the block holding a key; the key bytes are loaded
// lazily and cached, since most comparisons need only a few of them.
type key struct {
	seq    uint64
	value  []byte
	loaded bool
}

// child is an edge to a tree node stored at levels[offset] of block seq.
// value caches the loaded node; once a node is rewritten its edge is
// re-pointed at the new block by indexChanges.
type child struct {
	seq    uint64
	offset int
	value  *treeNode
}

// treeNode is one B-tree node. block is the block it was read from (or, for
// a node created by this write, a block used only to resolve key seqs).
type treeNode struct {
	block    *blockEntry
	offset   int
	keys     []*key
	children []*child
	changed  bool
}

func newTreeNode(block *blockEntry) *treeNode {
	return &treeNode{block: block, changed: true}
}

// level is the decoded form of one index level with fresh key and child
// objects, as Node's Pointers builds it.
type level struct {
	keys     []*key
	children []*child
}

// blockEntry is one block as seen by an operation: a committed block read
// from the core, or (pending != nil) an entry of an unflushed batch.
type blockEntry struct {
	seq   uint64
	op    *op
	key   []byte
	value []byte
	rec   *record
	index []*level

	pending []*child
	batch   bool
	deleted bool // a pending delete
}

func (e *blockEntry) isTarget(k []byte) bool {
	return !e.batch && bytes.Equal(e.key, k)
}

// levelAt builds the key and child objects of one index level on first
// use (Node's Pointers does all levels at once; only the ones walked
// matter, and building them lazily saves most of a lookup's allocations).
func (e *blockEntry) levelAt(offset int) (*level, error) {
	levels, err := e.rec.index()
	if err != nil {
		return nil, fmt.Errorf("block %d: %w", e.seq, err)
	}
	if e.index == nil {
		e.index = make([]*level, len(levels))
	}
	if offset < 0 || offset >= len(levels) {
		return nil, fmt.Errorf("%w: block %d has %d levels, child points at level %d", errCorrupt, e.seq, len(levels), offset)
	}
	if lv := e.index[offset]; lv != nil {
		return lv, nil
	}
	l := levels[offset]
	keys := make([]key, len(l.Keys))
	lv := &level{keys: make([]*key, len(l.Keys))}
	for j, s := range l.Keys {
		keys[j].seq = s
		lv.keys[j] = &keys[j]
	}
	if len(l.Children) > 0 {
		children := make([]child, len(l.Children)/2)
		lv.children = make([]*child, len(children))
		for j := range children {
			children[j] = child{seq: l.Children[2*j], offset: int(l.Children[2*j+1])}
			lv.children[j] = &children[j]
		}
	}
	e.index[offset] = lv
	return lv, nil
}

// isDeletion reports whether the block records a delete: no value, and its
// own seq is not one of the keys of the tree it wrote.
func (e *blockEntry) isDeletion() (bool, error) {
	if e.value != nil || e.batch {
		return false, nil
	}
	levels, err := e.rec.index()
	if err != nil {
		return false, fmt.Errorf("block %d: %w", e.seq, err)
	}
	for _, l := range levels {
		for _, k := range l.Keys {
			if k == e.seq {
				return false, nil
			}
		}
	}
	return true, nil
}

func (e *blockEntry) getTreeNode(offset int) (*treeNode, error) {
	if e.batch {
		if offset < 0 || offset >= len(e.pending) || e.pending[offset] == nil {
			return nil, fmt.Errorf("%w: batch entry %d has no level %d", errCorrupt, e.seq, offset)
		}
		return e.pending[offset].value, nil
	}
	l, err := e.levelAt(offset)
	if err != nil {
		return nil, err
	}
	if len(l.children) > 0 && len(l.children) != len(l.keys)+1 {
		return nil, fmt.Errorf("%w: block %d level %d has %d keys and %d children", errCorrupt, e.seq, offset, len(l.keys), len(l.children))
	}
	return &treeNode{
		block:    e,
		offset:   offset,
		keys:     append([]*key(nil), l.keys...),
		children: append([]*child(nil), l.children...),
	}, nil
}

func (n *treeNode) getKey(ctx context.Context, i int) ([]byte, error) {
	k := n.keys[i]
	if k.loaded {
		return k.value, nil
	}
	var v []byte
	if n.block != nil && k.seq == n.block.seq {
		v = n.block.key
	} else {
		var err error
		o := n.opOf()
		if o == nil {
			return nil, fmt.Errorf("%w: key %d of a detached node", errCorrupt, k.seq)
		}
		v, err = o.getKey(ctx, k.seq)
		if err != nil {
			return nil, err
		}
	}
	k.value, k.loaded = v, true
	return v, nil
}

func (n *treeNode) opOf() *op {
	if n.block == nil {
		return nil
	}
	return n.block.op
}

func (n *treeNode) getChildNode(ctx context.Context, i int) (*treeNode, error) {
	c := n.children[i]
	if c.value != nil {
		return c.value, nil
	}
	var blk *blockEntry
	if n.block != nil && c.seq == n.block.seq {
		blk = n.block
	} else {
		o := n.opOf()
		if o == nil {
			return nil, fmt.Errorf("%w: child of a detached node", errCorrupt)
		}
		var err error
		if blk, err = o.getBlock(ctx, c.seq); err != nil {
			return nil, err
		}
	}
	tn, err := blk.getTreeNode(c.offset)
	if err != nil {
		return nil, err
	}
	c.value = tn
	return tn, nil
}

func (n *treeNode) getKeyNode(ctx context.Context, i int) (*blockEntry, error) {
	o := n.opOf()
	if o == nil {
		return nil, fmt.Errorf("%w: key of a detached node", errCorrupt)
	}
	return o.getBlock(ctx, n.keys[i].seq)
}

// search binary-searches the node's keys for k. It returns the index of an
// equal key and true, or the child slot to descend into and false.
func (n *treeNode) search(ctx context.Context, k []byte) (int, bool, error) {
	s, e := 0, len(n.keys)
	for s < e {
		mid := (s + e) >> 1
		kv, err := n.getKey(ctx, mid)
		if err != nil {
			return 0, false, err
		}
		c := bytes.Compare(k, kv)
		if c == 0 {
			return mid, true, nil
		}
		if c < 0 {
			e = mid
		} else {
			s = mid + 1
		}
	}
	return s, false, nil
}

// insertKey adds k (and, for a split, the new right sibling after it). It
// reports whether the node still fits.
func (n *treeNode) insertKey(ctx context.Context, k *key, right *treeNode) (bool, error) {
	i, found, err := n.search(ctx, k.value)
	if err != nil {
		return false, err
	}
	if found {
		// Node's default (alwaysDuplicate) rewrites the key even when
		// the value is unchanged.
		n.changed = true
		n.keys[i] = k
		return true, nil
	}
	n.keys = insertAt(n.keys, i, k)
	if right != nil {
		n.children = insertAt(n.children, i+1, &child{value: right})
	}
	n.changed = true
	return len(n.keys) < maxChildren, nil
}

func (n *treeNode) removeKey(i int) {
	n.keys = removeAt(n.keys, i)
	if len(n.children) > 0 {
		n.children[i+1].seq = 0 // mark as freed, as Node does
		n.children = removeAt(n.children, i+1)
	}
	n.changed = true
}

func (n *treeNode) siblings(ctx context.Context, parent *treeNode) (left *treeNode, index int, right *treeNode, err error) {
	for i, c := range parent.children {
		if c.value != n {
			continue
		}
		if i > 0 {
			if left, err = parent.getChildNode(ctx, i-1); err != nil {
				return nil, 0, nil, err
			}
		}
		if i < len(parent.children)-1 {
			if right, err = parent.getChildNode(ctx, i+1); err != nil {
				return nil, 0, nil, err
			}
		}
		return left, i, right, nil
	}
	return nil, 0, nil, fmt.Errorf("%w: node is not a child of its parent", errCorrupt)
}

func (n *treeNode) merge(other *treeNode, median *key) {
	n.changed = true
	n.keys = append(n.keys, median)
	n.keys = append(n.keys, other.keys...)
	n.children = append(n.children, other.children...)
}

func (n *treeNode) split(ctx context.Context) (*key, *treeNode, error) {
	half := len(n.keys) >> 1
	right := newTreeNode(n.block)
	for len(right.keys) < half {
		right.keys = append(right.keys, n.keys[len(n.keys)-1])
		n.keys = n.keys[:len(n.keys)-1]
	}
	reverse(right.keys)
	// The median moves up and is compared there, so load it now.
	if _, err := n.getKey(ctx, len(n.keys)-1); err != nil {
		return nil, nil, err
	}
	median := n.keys[len(n.keys)-1]
	n.keys = n.keys[:len(n.keys)-1]
	if len(n.children) > 0 {
		for len(right.children) < half+1 {
			right.children = append(right.children, n.children[len(n.children)-1])
			n.children = n.children[:len(n.children)-1]
		}
		reverse(right.children)
	}
	n.changed = true
	return median, right, nil
}

// indexChanges lays out this node and every changed descendant in index,
// depth first, re-pointing their edges at block seq. It returns this
// node's offset.
func (n *treeNode) indexChanges(index *[]*child, seq uint64) int {
	offset := len(*index)
	*index = append(*index, nil)
	n.changed = false
	for _, c := range n.children {
		if c.value == nil || !c.value.changed {
			continue
		}
		c.seq = seq
		c.offset = c.value.indexChanges(index, seq)
		(*index)[c.offset] = c
	}
	return offset
}

func (n *treeNode) updateChildren(seq uint64, block *blockEntry) {
	for _, c := range n.children {
		if c.value == nil || c.seq != seq {
			continue
		}
		c.value.block = block
		c.value.updateChildren(seq, block)
	}
}

func leafSize(ctx context.Context, n *treeNode, goLeft bool) (int, error) {
	for depth := 0; len(n.children) > 0; depth++ {
		if depth > maxDepth {
			return 0, fmt.Errorf("%w: tree deeper than %d", errCorrupt, maxDepth)
		}
		i := len(n.children) - 1
		if goLeft {
			i = 0
		}
		var err error
		if n, err = n.getChildNode(ctx, i); err != nil {
			return 0, err
		}
	}
	return len(n.keys), nil
}

// setKeyToNearestLeaf replaces the key at index of an inner node with its
// in-order neighbour taken from the smaller of the two adjacent leaves.
func setKeyToNearestLeaf(ctx context.Context, n *treeNode, index int, stack *[]*treeNode) error {
	left, err := n.getChildNode(ctx, index)
	if err != nil {
		return err
	}
	right, err := n.getChildNode(ctx, index+1)
	if err != nil {
		return err
	}
	ls, err := leafSize(ctx, left, false)
	if err != nil {
		return err
	}
	rs, err := leafSize(ctx, right, true)
	if err != nil {
		return err
	}
	if ls < rs {
		*stack = append(*stack, right)
		for len(right.children) > 0 {
			if right, err = right.getChildNode(ctx, 0); err != nil {
				return err
			}
			*stack = append(*stack, right)
		}
		if len(right.keys) == 0 {
			return fmt.Errorf("%w: empty leaf", errCorrupt)
		}
		n.keys[index] = right.keys[0]
		right.keys = removeAt(right.keys, 0)
		return nil
	}
	*stack = append(*stack, left)
	for len(left.children) > 0 {
		if left, err = left.getChildNode(ctx, len(left.children)-1); err != nil {
			return err
		}
		*stack = append(*stack, left)
	}
	if len(left.keys) == 0 {
		return fmt.Errorf("%w: empty leaf", errCorrupt)
	}
	n.keys[index] = left.keys[len(left.keys)-1]
	left.keys = left.keys[:len(left.keys)-1]
	return nil
}

// rebalance restores the minimum fill after a removal by borrowing from a
// sibling or merging with one, walking up the stack. It returns the new
// root, which is the old root's only child if the tree shrank.
func rebalance(ctx context.Context, stack []*treeNode) (*treeNode, error) {
	root := stack[0]
	for len(stack) > 1 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		parent := stack[len(stack)-1]
		if len(n.keys) >= minKeys {
			return root, nil
		}
		left, index, right, err := n.siblings(ctx, parent)
		if err != nil {
			return nil, err
		}
		if left != nil && len(left.keys) > minKeys {
			left.changed = true
			n.keys = insertAt(n.keys, 0, parent.keys[index-1])
			if len(left.children) > 0 {
				n.children = insertAt(n.children, 0, left.children[len(left.children)-1])
				left.children = left.children[:len(left.children)-1]
			}
			parent.keys[index-1] = left.keys[len(left.keys)-1]
			left.keys = left.keys[:len(left.keys)-1]
			return root, nil
		}
		if right != nil && len(right.keys) > minKeys {
			right.changed = true
			n.keys = append(n.keys, parent.keys[index])
			if len(right.children) > 0 {
				n.children = append(n.children, right.children[0])
				right.children = removeAt(right.children, 0)
			}
			parent.keys[index] = right.keys[0]
			right.keys = removeAt(right.keys, 0)
			return root, nil
		}
		if left != nil {
			index--
			right = n
		} else {
			left = n
		}
		if right == nil || index < 0 || index >= len(parent.keys) {
			return nil, fmt.Errorf("%w: node without siblings below a parent", errCorrupt)
		}
		left.merge(right, parent.keys[index])
		parent.removeKey(index)
	}
	if len(root.keys) == 0 && len(root.children) > 0 {
		return root.getChildNode(ctx, 0)
	}
	return root, nil
}

func insertAt[T any](s []T, i int, v T) []T {
	var zero T
	s = append(s, zero)
	copy(s[i+1:], s[i:])
	s[i] = v
	return s
}

func removeAt[T any](s []T, i int) []T {
	copy(s[i:], s[i+1:])
	var zero T
	s[len(s)-1] = zero
	return s[:len(s)-1]
}

func reverse[T any](s []T) {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
}

// deflate encodes the levels listed in index.
func deflate(index []*child) []byte {
	levels := make([]Level, len(index))
	for i, c := range index {
		n := c.value
		l := Level{Keys: make([]uint64, len(n.keys))}
		for j, k := range n.keys {
			l.Keys[j] = k.seq
		}
		if len(n.children) > 0 {
			l.Children = make([]uint64, 0, 2*len(n.children))
			for _, ch := range n.children {
				l.Children = append(l.Children, ch.seq, uint64(ch.offset))
			}
		}
		levels[i] = l
	}
	return EncodeIndex(levels)
}
