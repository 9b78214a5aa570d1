package bee

import (
	"bytes"
	"context"
	"fmt"
)

// DiffEntry is one key that differs between two versions: the entry on
// each side, nil where the key is absent.
type DiffEntry struct {
	Left, Right *Entry
}

// Diff lists, in key order, the keys whose entries differ between this
// snapshot (left) and other (right), as Node's createDiffStream does. Two
// entries are the same when they were written by the same block. Subtrees
// the two versions share (same block and level) are skipped without being
// read, so diffing nearby versions of a large, sparsely replicated bee
// fetches only the blocks that changed. Range bounds filter the result;
// Limit caps it.
func (s *Snapshot) Diff(ctx context.Context, other *Snapshot, opts RangeOptions) ([]DiffEntry, error) {
	d := &differ{left: newCursor(s.op(ctx)), right: newCursor(other.op(ctx))}
	if err := d.left.open(ctx); err != nil {
		return nil, fmt.Errorf("bee: diff: %w", err)
	}
	if err := d.right.open(ctx); err != nil {
		return nil, fmt.Errorf("bee: diff: %w", err)
	}
	var out []DiffEntry
	for opts.Limit <= 0 || len(out) < opts.Limit {
		e, err := d.next(ctx)
		if err != nil {
			return out, fmt.Errorf("bee: diff: %w", err)
		}
		if e == nil {
			return out, nil
		}
		k := e.Left
		if k == nil {
			k = e.Right
		}
		if above(k.Key, opts) {
			return out, nil // keys only grow from here
		}
		if below(k.Key, opts) {
			continue
		}
		out = append(out, *e)
	}
	return out, nil
}

func below(k []byte, o RangeOptions) bool {
	if o.GT != nil {
		return bytes.Compare(k, o.GT) <= 0
	}
	return o.GTE != nil && bytes.Compare(k, o.GTE) < 0
}

func above(k []byte, o RangeOptions) bool {
	if o.LT != nil {
		return bytes.Compare(k, o.LT) >= 0
	}
	return o.LTE != nil && bytes.Compare(k, o.LTE) > 0
}

// position is a place in one tree node during an in-order walk: i odd is
// key i>>1, i even is child i>>1 (not yet expanded). parent is the
// position in the parent node, which has already moved past this child, so
// its key bounds this subtree from above.
type position struct {
	node   *treeNode
	parent *position
	i      int
}

func newPosition(n *treeNode, parent *position) *position {
	p := &position{node: n, parent: parent}
	if len(n.children) == 0 {
		p.i = 1
	}
	return p
}

func (p *position) isKey() bool { return p.i&1 == 1 }

func (p *position) valid() bool {
	n := p.i >> 1
	if p.isKey() {
		return n < len(p.node.keys)
	}
	return n < len(p.node.children)
}

// advance moves to the next key or child and reports whether one is left.
func (p *position) advance() bool {
	p.i++
	if !p.isKey() && len(p.node.children) == 0 {
		p.i++
	}
	return p.valid()
}

// ident names what the position points at: a key's block, or a child's
// (block, level). Equal idents in two versions are the same data.
func (p *position) ident() (seq uint64, offset int, key bool) {
	n := p.i >> 1
	if p.isKey() {
		return p.node.keys[n].seq, 0, true
	}
	c := p.node.children[n]
	return c.seq, c.offset, false
}

// bound is the smallest key known to be above everything at this
// position (the key itself for a key); nil means no bound.
func (p *position) bound(ctx context.Context) ([]byte, error) {
	for q := p; q != nil; q = q.parent {
		if n := q.i >> 1; n < len(q.node.keys) {
			return q.node.getKey(ctx, n)
		}
	}
	return nil, nil
}

// compareBounds orders bounds with nil (unbounded) last.
func compareBounds(a, b []byte) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	return bytes.Compare(a, b)
}

type cursor struct {
	op    *op
	stack []*position
}

func newCursor(o *op) *cursor { return &cursor{op: o} }

func (c *cursor) open(ctx context.Context) error {
	root, err := c.op.getRoot(ctx, false)
	if err != nil || root == nil || len(root.keys) == 0 {
		return err
	}
	c.stack = append(c.stack, newPosition(root, nil))
	return nil
}

func (c *cursor) peek() *position {
	if len(c.stack) == 0 {
		return nil
	}
	return c.stack[len(c.stack)-1]
}

// skip passes over the current key or subtree without reading it.
func (c *cursor) skip() {
	if top := c.peek(); top != nil && !top.advance() {
		c.stack = c.stack[:len(c.stack)-1]
	}
}

// step moves forward once: it returns the key's block when the position
// was a key, or expands the child and returns nil.
func (c *cursor) step(ctx context.Context) (*blockEntry, error) {
	top := c.peek()
	if top == nil {
		return nil, nil
	}
	if len(c.stack) > maxDepth {
		return nil, fmt.Errorf("%w: tree deeper than %d", errCorrupt, maxDepth)
	}
	isKey, n := top.isKey(), top.i>>1
	if !top.advance() {
		c.stack = c.stack[:len(c.stack)-1]
	}
	if isKey {
		return c.op.getBlock(ctx, top.node.keys[n].seq)
	}
	if len(top.node.children) != len(top.node.keys)+1 {
		return nil, fmt.Errorf("%w: %d keys but %d children", errCorrupt, len(top.node.keys), len(top.node.children))
	}
	child, err := top.node.getChildNode(ctx, n)
	if err != nil {
		return nil, err
	}
	if len(child.keys) > 0 {
		c.stack = append(c.stack, newPosition(child, top))
	}
	return nil, nil
}

// nextKey returns the next key's entry, expanding subtrees on the way.
func (c *cursor) nextKey(ctx context.Context) (*Entry, error) {
	for c.peek() != nil {
		b, err := c.step(ctx)
		if err != nil {
			return nil, err
		}
		if b != nil {
			return b.entry(), nil
		}
	}
	return nil, nil
}

type differ struct {
	left, right *cursor
}

func (d *differ) next(ctx context.Context) (*DiffEntry, error) {
	a, b := d.left, d.right
	for {
		l, r := a.peek(), b.peek()
		switch {
		case l == nil && r == nil:
			return nil, nil
		case l == nil:
			e, err := b.nextKey(ctx)
			if err != nil || e == nil {
				return nil, err
			}
			return &DiffEntry{Right: e}, nil
		case r == nil:
			e, err := a.nextKey(ctx)
			if err != nil || e == nil {
				return nil, err
			}
			return &DiffEntry{Left: e}, nil
		}
		ls, lo, lk := l.ident()
		rs, ro, rk := r.ident()
		if ls == rs && lo == ro && lk == rk {
			a.skip() // shared: identical on both sides
			b.skip()
			continue
		}
		// A key against a subtree: open the subtree to line them up.
		if lk != rk {
			var err error
			if lk {
				_, err = b.step(ctx)
			} else {
				_, err = a.step(ctx)
			}
			if err != nil {
				return nil, err
			}
			continue
		}
		lb, err := l.bound(ctx)
		if err != nil {
			return nil, err
		}
		rb, err := r.bound(ctx)
		if err != nil {
			return nil, err
		}
		c := compareBounds(lb, rb)
		if lk { // two keys
			switch {
			case c == 0:
				le, err := a.nextKey(ctx)
				if err != nil {
					return nil, err
				}
				re, err := b.nextKey(ctx)
				if err != nil {
					return nil, err
				}
				return &DiffEntry{Left: le, Right: re}, nil
			case c < 0:
				le, err := a.nextKey(ctx)
				return &DiffEntry{Left: le}, err
			default:
				re, err := b.nextKey(ctx)
				return &DiffEntry{Right: re}, err
			}
		}
		// Two different subtrees: open the one reaching further (both
		// when they end at the same key).
		if c >= 0 {
			if _, err := a.step(ctx); err != nil {
				return nil, err
			}
		}
		if c <= 0 {
			if _, err := b.step(ctx); err != nil {
				return nil, err
			}
		}
	}
}
