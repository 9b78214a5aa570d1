package bee

import (
	"context"
	"fmt"
)

// RangeOptions select a key range. A nil bound is absent; a non-nil empty
// slice is a real bound (the empty key), as an empty Buffer is in Node.
// When both GT and GTE are set GT wins, and likewise LT over LTE, matching
// Node.
type RangeOptions struct {
	GT, GTE, LT, LTE []byte
	// Reverse iterates from the largest key down.
	Reverse bool
	// Limit is the maximum number of entries; 0 means no limit.
	Limit int
}

// Iterator walks a range in key order. It is a port of Node's
// RangeIterator so that ranges give the same entries, in the same order,
// with the same bound handling.
type Iterator struct {
	op      *op
	opts    RangeOptions
	stack   []iterFrame
	opened  bool
	done    bool
	limit   int // -1: unlimited
	gIncl   bool
	gKey    []byte
	lIncl   bool
	lKey    []byte
	reverse bool
	seen    map[nodeID]bool
}

// nodeID names a committed tree node; a valid tree never reaches one twice,
// so seeing one again means a hostile core made the pointers loop.
type nodeID struct {
	seq    uint64
	offset int
}

type iterFrame struct {
	node *treeNode
	i    int
}

func newIterator(o *op, opts RangeOptions) *Iterator {
	it := &Iterator{op: o, opts: opts, limit: -1, reverse: opts.Reverse}
	if opts.Limit > 0 {
		it.limit = opts.Limit
	}
	it.gIncl = opts.GT == nil
	it.gKey = opts.GT
	if it.gKey == nil {
		it.gKey = opts.GTE
	}
	it.lIncl = opts.LT == nil
	it.lKey = opts.LT
	if it.lKey == nil {
		it.lKey = opts.LTE
	}
	return it
}

func (it *Iterator) open(ctx context.Context) error {
	it.opened = true
	node, err := it.op.getRoot(ctx, false)
	if err != nil || node == nil {
		return err
	}
	incl, start := it.gIncl, it.gKey
	if it.reverse {
		incl, start = it.lIncl, it.lKey
	}
	if start == nil {
		i := 0
		if it.reverse {
			i = len(node.keys) << 1
		}
		it.stack = append(it.stack, iterFrame{node, i})
		return nil
	}
	for depth := 0; ; depth++ {
		if depth > maxDepth {
			return fmt.Errorf("%w: tree deeper than %d", errCorrupt, maxDepth)
		}
		f := iterFrame{node: node}
		if it.reverse {
			f.i = len(node.keys) << 1
		}
		i, found, err := node.search(ctx, start)
		if err != nil {
			return err
		}
		if found {
			switch {
			case incl:
				f.i = i*2 + 1
			case it.reverse:
				f.i = i * 2
			default:
				f.i = i*2 + 2
			}
			it.stack = append(it.stack, f)
			return nil
		}
		if it.reverse {
			f.i = 2*i - 1
		} else {
			f.i = 2*i + 1
		}
		if f.i >= 0 && f.i <= len(node.keys)<<1 {
			it.stack = append(it.stack, f)
		}
		if len(node.children) == 0 {
			return nil
		}
		if i >= len(node.children) {
			return fmt.Errorf("%w: %d keys but %d children", errCorrupt, len(node.keys), len(node.children))
		}
		if node, err = node.getChildNode(ctx, i); err != nil {
			return err
		}
	}
}

// Next returns the next entry, or nil at the end of the range.
func (it *Iterator) Next(ctx context.Context) (*Entry, error) {
	if it.done {
		return nil, nil
	}
	if !it.opened {
		if err := it.open(ctx); err != nil {
			it.done = true
			return nil, fmt.Errorf("bee: range: %w", err)
		}
	}
	e, err := it.next(ctx)
	if err != nil {
		it.done = true
		return nil, fmt.Errorf("bee: range: %w", err)
	}
	if e == nil {
		it.done = true
	}
	return e, nil
}

func (it *Iterator) next(ctx context.Context) (*Entry, error) {
	end, incl := it.lKey, it.lIncl
	if it.reverse {
		end, incl = it.gKey, it.gIncl
	}
	for len(it.stack) > 0 && (it.limit == -1 || it.limit > 0) {
		if len(it.stack) > maxDepth {
			return nil, fmt.Errorf("%w: tree deeper than %d", errCorrupt, maxDepth)
		}
		top := &it.stack[len(it.stack)-1]
		isKey := top.i&1 == 1
		var n int
		if it.reverse {
			if top.i < 0 {
				n = len(top.node.keys)
			} else {
				n = top.i >> 1
				top.i--
			}
		} else {
			n = top.i >> 1
			top.i++
		}
		if !isKey {
			if len(top.node.children) == 0 {
				continue
			}
			if n >= len(top.node.children) {
				return nil, fmt.Errorf("%w: %d keys but %d children", errCorrupt, len(top.node.keys), len(top.node.children))
			}
			node, err := top.node.getChildNode(ctx, n)
			if err != nil {
				return nil, err
			}
			if node.block != nil && !node.block.batch {
				id := nodeID{node.block.seq, node.offset}
				if it.seen == nil {
					it.seen = make(map[nodeID]bool)
				}
				if it.seen[id] {
					return nil, fmt.Errorf("%w: node %d/%d is reached twice", errCorrupt, id.seq, id.offset)
				}
				it.seen[id] = true
			}
			i := 0
			if it.reverse {
				i = len(node.keys) << 1
			}
			it.stack = append(it.stack, iterFrame{node, i})
			continue
		}
		if n >= len(top.node.keys) {
			it.stack = it.stack[:len(it.stack)-1]
			continue
		}
		blk, err := top.node.getKeyNode(ctx, n)
		if err != nil {
			return nil, err
		}
		if end != nil {
			c := compareKeys(blk.key, end)
			var stop bool
			switch {
			case c == 0:
				stop = !incl
			case it.reverse:
				stop = c < 0
			default:
				stop = c > 0
			}
			if stop {
				it.limit = 0
				break
			}
		}
		if it.limit > 0 {
			it.limit--
		}
		return blk.entry(), nil
	}
	return nil, nil
}

// Collect reads the rest of the range.
func (it *Iterator) Collect(ctx context.Context) ([]Entry, error) {
	var out []Entry
	for {
		e, err := it.Next(ctx)
		if err != nil {
			return out, err
		}
		if e == nil {
			return out, nil
		}
		out = append(out, *e)
	}
}
