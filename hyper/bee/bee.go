// Package bee implements Hyperbee 2: an append-only B-tree stored one entry
// per block in a Hypercore, readable by and written identically to Node's
// hyperbee (npm "hyperbee" 2.x).
//
// Every put or delete appends one block holding the key, the value and the
// tree nodes the write rewrote; the root of version v is level 0 of block
// v-1. Node peers read a Go-written bee by following exactly those pointers,
// and a Hyperdrive's Merkle tree (and so its signature) covers these bytes,
// so the writer here reproduces Node's splits, merges and index layout
// block for block rather than only producing an equivalent tree.
//
// Keys and values are raw bytes; key order is bytewise. Encodings such as
// Hyperdrive's ("files\x00" + path, JSON values) live in the callers.
package bee

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
)

// Core is the part of a Hypercore a Hyperbee needs. It is defined here so
// that this package does not depend on a particular core implementation;
// hyper/core's cores satisfy it.
type Core interface {
	// Get returns block index. It may block until the block is available.
	Get(ctx context.Context, index uint64) ([]byte, error)
	// Length is the number of blocks.
	Length() uint64
	// Append adds blocks atomically and returns the new length.
	Append(blocks ...[]byte) (uint64, error)
}

// ErrReadOnly is returned by writes to a checkout.
var ErrReadOnly = errors.New("bee: read-only checkout")

// Entry is one key as returned by reads.
type Entry struct {
	// Seq is the block that wrote this key.
	Seq   uint64
	Key   []byte
	Value []byte
}

// Options configure a Bee.
type Options struct {
	// Metadata is written into the header when the bee is empty on the
	// first write. Hyperdrive passes an empty, non-nil Metadata.
	Metadata *Metadata
}

// Bee is a Hyperbee over a core. Reads may run concurrently with each
// other and with one writer; writes are serialised.
type Bee struct {
	core Core
	opts Options

	wmu sync.Mutex // held by the single writer (Node's tree lock)

	cmu     sync.Mutex
	cache   map[uint64]*record
	lastLen uint64
}

// record is a decoded entry block, shared read-only between operations.
// Most blocks are read only for their key (binary search), so the index is
// decoded on first use.
type record struct {
	key   []byte
	value []byte

	once     sync.Once
	rawIndex []byte
	levels   []Level
	err      error
}

func (r *record) index() ([]Level, error) {
	r.once.Do(func() {
		r.levels, r.err = DecodeIndex(r.rawIndex)
		r.rawIndex = nil
	})
	return r.levels, r.err
}

// maxCachedRecords bounds the decoded-block cache. When it is full an
// arbitrary entry is evicted (map order), which keeps hot upper tree
// levels likely to stay without the bookkeeping of an LRU.
const maxCachedRecords = 1 << 14

// New opens a bee over core. Nothing is written until the first write.
func New(core Core, opts *Options) *Bee {
	b := &Bee{core: core, cache: make(map[uint64]*record)}
	if opts != nil {
		b.opts = *opts
	}
	return b
}

// Core returns the underlying core.
func (b *Bee) Core() Core { return b.core }

// Version is the current version: the core length, but at least 1 (an
// empty bee and a bee holding only its header both have no entries).
func (b *Bee) Version() uint64 {
	return max(1, b.core.Length())
}

// Header reads and decodes block 0.
func (b *Bee) Header(ctx context.Context) (*Header, error) {
	if b.core.Length() == 0 {
		return nil, nil
	}
	blk, err := b.core.Get(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("bee: read header: %w", err)
	}
	h, err := DecodeHeader(blk)
	if err != nil {
		return nil, fmt.Errorf("bee: %w", err)
	}
	return h, nil
}

func (b *Bee) record(ctx context.Context, seq uint64) (*record, error) {
	if seq == 0 {
		return nil, fmt.Errorf("%w: block 0 is the header, not an entry", errCorrupt)
	}
	length := b.core.Length()
	b.cmu.Lock()
	if length < b.lastLen {
		// The core was truncated: cached blocks may have been replaced.
		clear(b.cache)
	}
	b.lastLen = length
	r := b.cache[seq]
	b.cmu.Unlock()
	if r != nil {
		return r, nil
	}
	blk, err := b.core.Get(ctx, seq)
	if err != nil {
		return nil, fmt.Errorf("bee: read block %d: %w", seq, err)
	}
	n, err := DecodeNode(blk)
	if err != nil {
		return nil, fmt.Errorf("bee: block %d: %w", seq, err)
	}
	r = &record{key: n.Key, value: n.Value, rawIndex: n.Index}
	b.cmu.Lock()
	for k := range b.cache {
		if len(b.cache) < maxCachedRecords {
			break
		}
		delete(b.cache, k)
	}
	b.cache[seq] = r
	b.cmu.Unlock()
	return r, nil
}

// Get returns the entry for key at the current version, or nil.
func (b *Bee) Get(ctx context.Context, key []byte) (*Entry, error) {
	return b.Checkout(0).Get(ctx, key)
}

// GetBySeq returns the key and value written by block seq.
func (b *Bee) GetBySeq(ctx context.Context, seq uint64) (*Entry, error) {
	r, err := b.record(ctx, seq)
	if err != nil {
		return nil, err
	}
	e := &blockEntry{seq: seq, key: r.key, value: r.value}
	return e.entry(), nil
}

// Put sets key to value, appending one block. A nil value is stored as
// absent (as Node stores null); pass []byte{} for an empty value.
func (b *Bee) Put(ctx context.Context, key, value []byte) error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	o := b.newOp(ctx, true)
	if err := o.put(ctx, key, value); err != nil {
		return fmt.Errorf("bee: put: %w", err)
	}
	return nil
}

// Del removes key, appending one block, or does nothing if it is absent.
func (b *Bee) Del(ctx context.Context, key []byte) error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	o := b.newOp(ctx, true)
	if err := o.del(ctx, key); err != nil {
		return fmt.Errorf("bee: del: %w", err)
	}
	return nil
}

// Range returns an iterator over the current version.
func (b *Bee) Range(opts RangeOptions) *Iterator {
	return b.Checkout(0).Range(opts)
}

// List collects a range at the current version.
func (b *Bee) List(ctx context.Context, opts RangeOptions) ([]Entry, error) {
	return b.Checkout(0).List(ctx, opts)
}

// Checkout returns a read-only view of the bee at version (its length at
// some earlier time). Version 0 means the version at the time of each read.
func (b *Bee) Checkout(version uint64) *Snapshot {
	return &Snapshot{bee: b, version: version}
}

// Snapshot is a read-only view at a fixed version.
type Snapshot struct {
	bee     *Bee
	version uint64
}

// Version is the snapshot's version.
func (s *Snapshot) Version() uint64 {
	if s.version == 0 {
		return s.bee.Version()
	}
	return max(1, s.version)
}

func (s *Snapshot) op(ctx context.Context) *op {
	o := s.bee.newOp(ctx, true)
	o.checkout = s.Version()
	return o
}

// Get returns the entry for key, or nil if it is absent.
func (s *Snapshot) Get(ctx context.Context, key []byte) (*Entry, error) {
	e, err := s.op(ctx).get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("bee: get: %w", err)
	}
	return e, nil
}

// Range returns an iterator over the snapshot.
func (s *Snapshot) Range(opts RangeOptions) *Iterator {
	return newIterator(s.op(context.Background()), opts)
}

// List collects a range.
func (s *Snapshot) List(ctx context.Context, opts RangeOptions) ([]Entry, error) {
	return s.Range(opts).Collect(ctx)
}

// op is one read or write against the tree: Node's Batch. A single put or
// delete uses an op with autoFlush; Batch keeps one op across many writes.
type op struct {
	bee       *Bee
	autoFlush bool
	checkout  uint64 // 0: live
	blocks    map[uint64]*blockEntry
	length    int // pending (unflushed) entries
}

func (b *Bee) newOp(_ context.Context, autoFlush bool) *op {
	return &op{bee: b, autoFlush: autoFlush, blocks: make(map[uint64]*blockEntry)}
}

func (o *op) version() uint64 {
	if o.checkout != 0 {
		return max(1, o.checkout)
	}
	return max(1, o.bee.core.Length()+uint64(o.length))
}

func (o *op) getBlock(ctx context.Context, seq uint64) (*blockEntry, error) {
	if e := o.blocks[seq]; e != nil {
		return e, nil
	}
	r, err := o.bee.record(ctx, seq)
	if err != nil {
		return nil, err
	}
	e := &blockEntry{seq: seq, op: o, key: r.key, value: r.value, rec: r}
	if len(o.blocks)-o.length < maxCachedBlocks {
		o.blocks[seq] = e
	}
	return e, nil
}

func (o *op) getKey(ctx context.Context, seq uint64) ([]byte, error) {
	if e := o.blocks[seq]; e != nil {
		return e.key, nil
	}
	r, err := o.bee.record(ctx, seq)
	if err != nil {
		return nil, err
	}
	return r.key, nil
}

func (o *op) getRoot(ctx context.Context, ensureHeader bool) (*treeNode, error) {
	if ensureHeader && o.bee.core.Length() == 0 {
		h := Header{Protocol: "hyperbee", Metadata: o.bee.opts.Metadata}
		if _, err := o.bee.core.Append(h.Encode()); err != nil {
			return nil, fmt.Errorf("append header: %w", err)
		}
	}
	v := o.version()
	if v < 2 {
		return nil, nil
	}
	if v-1 >= o.bee.core.Length()+uint64(o.length) {
		return nil, fmt.Errorf("bee: version %d is beyond the core length %d", v, o.bee.core.Length())
	}
	blk, err := o.getBlock(ctx, v-1)
	if err != nil {
		return nil, err
	}
	return blk.getTreeNode(0)
}

func (o *op) get(ctx context.Context, k []byte) (*Entry, error) {
	node, err := o.getRoot(ctx, false)
	if err != nil || node == nil {
		return nil, err
	}
	for depth := 0; ; depth++ {
		if depth > maxDepth {
			return nil, fmt.Errorf("%w: tree deeper than %d", errCorrupt, maxDepth)
		}
		if node.block.isTarget(k) {
			del, err := node.block.isDeletion()
			if err != nil {
				return nil, err
			}
			if del {
				return nil, nil
			}
			return node.block.entry(), nil
		}
		i, found, err := node.search(ctx, k)
		if err != nil {
			return nil, err
		}
		if found {
			blk, err := node.getKeyNode(ctx, i)
			if err != nil {
				return nil, err
			}
			return blk.entry(), nil
		}
		if len(node.children) == 0 {
			return nil, nil
		}
		if i >= len(node.children) {
			return nil, fmt.Errorf("%w: %d keys but %d children", errCorrupt, len(node.keys), len(node.children))
		}
		if node, err = node.getChildNode(ctx, i); err != nil {
			return nil, err
		}
	}
}

// entry copies the key and value out, since they alias cached blocks that
// other readers share.
func (e *blockEntry) entry() *Entry {
	out := &Entry{Seq: e.seq, Key: append([]byte{}, e.key...)}
	if e.value != nil {
		out.Value = append([]byte{}, e.value...)
	}
	return out
}

func (o *op) nextSeq() uint64 {
	return o.bee.core.Length() + uint64(o.length)
}

func (o *op) put(ctx context.Context, k, v []byte) error {
	if o.checkout != 0 {
		return ErrReadOnly
	}
	if k == nil {
		k = []byte{}
	}
	root, err := o.getRoot(ctx, true)
	if err != nil {
		return err
	}
	node := root
	if node == nil {
		node = newTreeNode(nil)
		root = node
	}
	seq := o.nextSeq()
	target := &key{seq: seq, value: k, loaded: true}
	var stack []*treeNode
	for len(node.children) > 0 {
		if len(stack) > maxDepth {
			return fmt.Errorf("%w: tree deeper than %d", errCorrupt, maxDepth)
		}
		stack = append(stack, node)
		node.changed = true
		i, found, err := node.search(ctx, k)
		if err != nil {
			return err
		}
		if found {
			node.keys[i] = target
			node.changed = true
			return o.appendEntry(root, seq, k, v, false)
		}
		if i >= len(node.children) {
			return fmt.Errorf("%w: %d keys but %d children", errCorrupt, len(node.keys), len(node.children))
		}
		if node, err = node.getChildNode(ctx, i); err != nil {
			return err
		}
	}
	fits, err := node.insertKey(ctx, target, nil)
	if err != nil {
		return err
	}
	for !fits {
		median, right, err := node.split(ctx)
		if err != nil {
			return err
		}
		if len(stack) > 0 {
			parent := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if fits, err = parent.insertKey(ctx, median, right); err != nil {
				return err
			}
			node = parent
		} else {
			root = newTreeNode(node.block)
			root.keys = append(root.keys, median)
			root.children = append(root.children, &child{value: node}, &child{value: right})
			fits = true
		}
	}
	return o.appendEntry(root, seq, k, v, false)
}

func (o *op) del(ctx context.Context, k []byte) error {
	if o.checkout != 0 {
		return ErrReadOnly
	}
	if k == nil {
		k = []byte{}
	}
	node, err := o.getRoot(ctx, true)
	if err != nil || node == nil {
		return err
	}
	seq := o.nextSeq()
	var stack []*treeNode
	for {
		if len(stack) > maxDepth {
			return fmt.Errorf("%w: tree deeper than %d", errCorrupt, maxDepth)
		}
		stack = append(stack, node)
		i, found, err := node.search(ctx, k)
		if err != nil {
			return err
		}
		if found {
			if len(node.children) > 0 {
				if i+1 >= len(node.children) {
					return fmt.Errorf("%w: %d keys but %d children", errCorrupt, len(node.keys), len(node.children))
				}
				if err := setKeyToNearestLeaf(ctx, node, i, &stack); err != nil {
					return err
				}
			} else {
				node.removeKey(i)
			}
			// Marked late so that deleting an absent key rewrites nothing.
			for _, n := range stack {
				n.changed = true
			}
			root, err := rebalance(ctx, stack)
			if err != nil {
				return err
			}
			return o.appendEntry(root, seq, k, nil, true)
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

// appendEntry lays out the rewritten nodes and either appends the block or,
// inside a batch, keeps it pending so later writes can rewrite its nodes.
func (o *op) appendEntry(root *treeNode, seq uint64, k, v []byte, deleted bool) error {
	var index []*child
	root.indexChanges(&index, seq)
	index[0] = &child{seq: seq, offset: 0, value: root}
	if !o.autoFlush {
		blk := &blockEntry{seq: seq, op: o, key: k, value: v, pending: index, batch: true, deleted: deleted}
		root.block = blk
		o.length++
		o.blocks[seq] = blk
		root.updateChildren(seq, blk)
		return nil
	}
	n := Node{Index: deflate(index), Key: k, Value: v}
	if _, err := o.bee.core.Append(n.Encode()); err != nil {
		return fmt.Errorf("append block %d: %w", seq, err)
	}
	return nil
}

// Batch groups writes into one append. Node lays out a batch's blocks
// differently from the same writes made one by one (nodes rewritten later
// in the batch are dropped from earlier blocks), and this reproduces that.
// A Batch holds the bee's write lock from its first write until Flush or
// Close.
type Batch struct {
	bee    *Bee
	op     *op
	locked bool
}

// Batch starts a batch.
func (b *Bee) Batch() *Batch {
	return &Batch{bee: b}
}

func (bt *Batch) lock(ctx context.Context) {
	if !bt.locked {
		bt.bee.wmu.Lock()
		bt.locked = true
		bt.op = bt.bee.newOp(ctx, false)
	}
}

// Put adds a put to the batch.
func (bt *Batch) Put(ctx context.Context, key, value []byte) error {
	bt.lock(ctx)
	if err := bt.op.put(ctx, key, value); err != nil {
		return fmt.Errorf("bee: batch put: %w", err)
	}
	return nil
}

// Del adds a delete to the batch. Deleting an absent key adds nothing.
func (bt *Batch) Del(ctx context.Context, key []byte) error {
	bt.lock(ctx)
	if err := bt.op.del(ctx, key); err != nil {
		return fmt.Errorf("bee: batch del: %w", err)
	}
	return nil
}

// Get reads through the batch, seeing its pending writes: the newest
// pending write of key if there is one, else the committed value.
//
// Node's batch.get walks the in-memory tree instead, and can return a
// deleted key's old value when a split-off node still lives in the block
// that wrote the key (the check that catches this for committed versions
// only looks at the root's block, which in a batch is a pending entry).
// Reads do not affect the blocks written, so Go answers correctly here.
func (bt *Batch) Get(ctx context.Context, key []byte) (*Entry, error) {
	o := bt.op
	if o == nil {
		return bt.bee.Get(ctx, key)
	}
	base := bt.bee.core.Length()
	for i := o.length - 1; i >= 0; i-- {
		e := o.blocks[base+uint64(i)]
		if e == nil || !bytes.Equal(e.key, key) {
			continue
		}
		if e.deleted {
			return nil, nil
		}
		return e.entry(), nil
	}
	return bt.bee.Checkout(base).Get(ctx, key)
}

// Len is the number of pending entries.
func (bt *Batch) Len() int {
	if bt.op == nil {
		return 0
	}
	return bt.op.length
}

// Flush appends the pending entries as one append and releases the lock.
func (bt *Batch) Flush() error {
	if !bt.locked {
		return nil
	}
	defer bt.Close()
	if bt.op.length == 0 {
		return nil
	}
	blocks := bt.op.toBlocks(bt.bee.core.Length())
	if _, err := bt.bee.core.Append(blocks...); err != nil {
		return fmt.Errorf("bee: flush batch: %w", err)
	}
	return nil
}

// Close drops any pending entries and releases the lock.
func (bt *Batch) Close() {
	if bt.locked {
		bt.op = nil
		bt.locked = false
		bt.bee.wmu.Unlock()
	}
}

// toBlocks encodes the pending entries. Every entry but the last drops the
// root slot and any node rewritten by a later entry, filling holes from the
// end of its index, exactly as Node's Batch.toBlocks does.
func (o *op) toBlocks(base uint64) [][]byte {
	out := make([][]byte, o.length)
	for i := 0; i < o.length; i++ {
		seq := base + uint64(i)
		e := o.blocks[seq]
		idx := e.pending
		if i < o.length-1 {
			idx[0] = nil
			j := 0
			for j < len(idx) {
				c := idx[j]
				if c != nil && c.seq == seq {
					c.offset = j
					j++
					continue
				}
				last := idx[len(idx)-1]
				idx = idx[:len(idx)-1]
				if j < len(idx) {
					idx[j] = last
				}
			}
			e.pending = idx
		}
		n := Node{Index: deflate(idx), Key: e.key, Value: e.value}
		out[i] = n.Encode()
	}
	return out
}

// compareKeys is the key order: bytewise, as b4a.compare.
func compareKeys(a, b []byte) int { return bytes.Compare(a, b) }

// HistoryEntry is one block of the bee's log.
type HistoryEntry struct {
	Entry
	// Deleted marks a delete; Value is then nil.
	Deleted bool
}

// HistoryOptions select blocks of the log by seq.
type HistoryOptions struct {
	// GTE is the first seq (default 1, the first entry after the header).
	GTE uint64
	// LT is the end (default: the snapshot's version).
	LT uint64
	// Reverse walks from the end.
	Reverse bool
	// Limit caps the result; 0 means no limit.
	Limit int
}

// History returns the writes in seq order (the log, not the tree), as
// Node's createHistoryStream: each block's key, value and whether it was a
// delete.
func (s *Snapshot) History(ctx context.Context, opts HistoryOptions) ([]HistoryEntry, error) {
	v := s.Version()
	lo, hi := max(opts.GTE, 1), v
	if opts.LT != 0 {
		hi = min(opts.LT, v)
	}
	var out []HistoryEntry
	for i := uint64(0); lo+i < hi && (opts.Limit <= 0 || len(out) < opts.Limit); i++ {
		seq := lo + i
		if opts.Reverse {
			seq = hi - 1 - i
		}
		r, err := s.bee.record(ctx, seq)
		if err != nil {
			return out, fmt.Errorf("bee: history: %w", err)
		}
		e := &blockEntry{seq: seq, key: r.key, value: r.value, rec: r}
		del, err := e.isDeletion()
		if err != nil {
			return out, fmt.Errorf("bee: history: %w", err)
		}
		out = append(out, HistoryEntry{Entry: *e.entry(), Deleted: del})
	}
	return out, nil
}
