// Package blobs implements Hyperblobs 2: large byte strings stored as runs of
// blocks in a Hypercore and named by a blob id, compatible with Node's
// hyperblobs (npm "hyperblobs" 2.x) as used by Hyperdrive 13.
//
// A blob is appended as consecutive blocks of at most BlockSize bytes
// (64 KiB by default); its id records where the run starts and how long it
// is in blocks and bytes. Readers fetch only the blocks covering the bytes
// they ask for, which is what makes lazy, sparse reading of a large file
// over the network possible.
package blobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/crypto/blake2b"
)

// DefaultBlockSize is hyperblobs' DEFAULT_BLOCK_SIZE.
const DefaultBlockSize = 1 << 16

// appendBatch is how many blocks Node's write stream collects before one
// append. Block bytes do not depend on it, but matching it keeps the
// sequence of appends (and so of signed lengths) the same as Node's.
const appendBatch = 16

// Core is the part of a Hypercore that blobs need. hyper/core's cores
// satisfy it.
type Core interface {
	Get(ctx context.Context, index uint64) ([]byte, error)
	Length() uint64
	// ByteLength is the total size of all blocks; a new blob's
	// ByteOffset is the ByteLength before it is written.
	ByteLength() uint64
	Append(blocks ...[]byte) (uint64, error)
}

// Seeker is optionally implemented by cores that can map a byte offset of
// the whole core to (block index, offset within that block) from their
// Merkle tree, as Node's core.seek does. Readers use it to find the blocks
// covering a byte range of a blob whose blocks are not all the same size
// without fetching the blocks before it.
type Seeker interface {
	Seek(ctx context.Context, byteOffset uint64) (index, relative uint64, err error)
}

// BlockOffsetter is optionally implemented by cores that know, without a
// round trip, where a block they hold starts (hyper/core's cores do, from
// the block's proof). Readers then fetch the block at the position a fixed
// block size predicts and check it, where a Seek would cost a round trip to
// a peer before every random read.
type BlockOffsetter interface {
	BlockOffset(index uint64) (offset uint64, ok bool)
}

// ID names a blob. Hyperdrive stores it as JSON inside a file's entry, with
// the fields in the order MarshalJSON writes them.
type ID struct {
	BlockOffset uint64
	BlockLength uint64
	ByteOffset  uint64
	ByteLength  uint64
	// BlockMap means the blocks of the id hold a map of the content
	// blocks (hyperblobs' dedup/blockMap mode) instead of the content.
	BlockMap bool
}

// MarshalJSON writes the id as Node's BlobWriteStream builds it:
// blockOffset, byteOffset, blockLength, byteLength, then blockMap only when
// set. The order is part of the bytes a drive entry hashes to.
func (id ID) MarshalJSON() ([]byte, error) {
	b := fmt.Appendf(nil, `{"blockOffset":%d,"byteOffset":%d,"blockLength":%d,"byteLength":%d`,
		id.BlockOffset, id.ByteOffset, id.BlockLength, id.ByteLength)
	if id.BlockMap {
		b = append(b, `,"blockMap":true`...)
	}
	return append(b, '}'), nil
}

// UnmarshalJSON accepts the fields in any order, as Node does.
func (id *ID) UnmarshalJSON(b []byte) error {
	var v struct {
		BlockOffset *uint64 `json:"blockOffset"`
		BlockLength *uint64 `json:"blockLength"`
		ByteOffset  *uint64 `json:"byteOffset"`
		ByteLength  *uint64 `json:"byteLength"`
		BlockMap    bool    `json:"blockMap"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("blobs: decode id: %w", err)
	}
	if v.BlockOffset == nil || v.BlockLength == nil || v.ByteOffset == nil || v.ByteLength == nil {
		return fmt.Errorf("blobs: decode id: missing field in %s", b)
	}
	const maxSafe = 1<<53 - 1
	if *v.BlockOffset > maxSafe || *v.BlockLength > maxSafe || *v.ByteOffset > maxSafe || *v.ByteLength > maxSafe {
		return fmt.Errorf("blobs: decode id: value out of range in %s", b)
	}
	*id = ID{BlockOffset: *v.BlockOffset, BlockLength: *v.BlockLength, ByteOffset: *v.ByteOffset, ByteLength: *v.ByteLength, BlockMap: v.BlockMap}
	return nil
}

// Options configure Blobs.
type Options struct {
	// BlockSize is the size blobs are split into when written; 0 means
	// DefaultBlockSize.
	BlockSize int
}

// Blobs stores blobs in a core. Writers are serialised, as in Node, so
// that each blob is one contiguous run of blocks.
type Blobs struct {
	core      Core
	blockSize int
	wmu       sync.Mutex
}

// New returns Blobs over core.
func New(core Core, opts *Options) *Blobs {
	b := &Blobs{core: core, blockSize: DefaultBlockSize}
	if opts != nil && opts.BlockSize > 0 {
		b.blockSize = opts.BlockSize
	}
	return b
}

// Core returns the underlying core.
func (b *Blobs) Core() Core { return b.core }

// BlockSize is the size blobs are split into.
func (b *Blobs) BlockSize() int { return b.blockSize }

// Put appends data as one blob and returns its id.
func (b *Blobs) Put(ctx context.Context, data []byte) (ID, error) {
	w := b.NewWriter()
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return ID{}, err
	}
	if err := w.Close(); err != nil {
		return ID{}, err
	}
	return w.ID(), nil
}

// Writer streams one blob into the core. It holds the blobs' write lock
// from the first Write (or Close) until Close or Abort, so the blob's
// blocks are contiguous. Data is cut into BlockSize blocks regardless of
// how the writes are sized, so streaming a file gives the same blocks as
// Put with the whole file, and the same blocks as Node's drive.put.
type Writer struct {
	b      *Blobs
	ctx    context.Context
	opts   WriterOptions
	locked bool
	closed bool
	id     ID
	buf    []byte   // partial block
	batch  [][]byte // full blocks not yet appended
	err    error

	blocks []MapEntry            // block map mode: the content blocks, in order
	hashes map[[32]byte]MapEntry // dedup mode: known blocks by hash
}

// WriterOptions select hyperblobs' block-map mode.
type WriterOptions struct {
	// BlockMap stores, after the content, a map of the content blocks,
	// and makes the id name the map (ID.BlockMap) instead of the content.
	BlockMap bool
	// Dedup (which implies BlockMap) stores a block only once: a block
	// equal to one written earlier in this blob, or to a block of
	// Previous, is referenced from the map instead of appended again.
	// Updating a large file then appends only the blocks that changed.
	Dedup bool
	// Previous is the blob this one replaces, for Dedup.
	Previous *ID
}

// NewWriter starts a blob.
func (b *Blobs) NewWriter() *Writer {
	return &Writer{b: b, ctx: context.Background()}
}

// NewWriterWith starts a blob in block-map or dedup mode, as Node's
// createWriteStream({ blockMap, dedup, blob }). ctx bounds reading
// Previous's blocks.
func (b *Blobs) NewWriterWith(ctx context.Context, opts WriterOptions) *Writer {
	if opts.Dedup {
		opts.BlockMap = true
	}
	return &Writer{b: b, ctx: ctx, opts: opts}
}

func (w *Writer) open() error {
	if w.locked {
		return w.err
	}
	w.b.wmu.Lock()
	w.locked = true
	w.id.BlockOffset = w.b.core.Length()
	w.id.ByteOffset = w.b.core.ByteLength()
	w.id.BlockMap = w.opts.BlockMap
	if w.opts.Dedup {
		w.hashes = make(map[[32]byte]MapEntry)
		if w.opts.Previous != nil {
			if err := w.loadPrevious(*w.opts.Previous); err != nil {
				w.err = err
			}
		}
	}
	return w.err
}

// loadPrevious hashes every content block of the previous blob, as
// Node's dedup does, so equal blocks can be referenced instead of stored.
func (w *Writer) loadPrevious(prev ID) error {
	var entries []MapEntry
	if prev.BlockMap {
		r := w.b.NewReader(w.ctx, prev)
		if err := r.loadLayout(); err != nil {
			return fmt.Errorf("blobs: dedup against %+v: %w", prev, err)
		}
		for i, idx := range r.mapIdx {
			entries = append(entries, MapEntry{Index: idx, ByteLength: r.starts[i+1] - r.starts[i]})
		}
	} else {
		for i := uint64(0); i < prev.BlockLength; i++ {
			entries = append(entries, MapEntry{Index: prev.BlockOffset + i})
		}
	}
	for _, e := range entries {
		blk, err := w.b.core.Get(w.ctx, e.Index)
		if err != nil {
			return fmt.Errorf("blobs: dedup: read block %d: %w", e.Index, err)
		}
		if !prev.BlockMap {
			e.ByteLength = uint64(len(blk))
		}
		w.hashes[blake2b.Sum256(blk)] = e
	}
	return nil
}

// emit adds one block: to the map (referencing an equal block if
// deduplicating) and, unless it is a duplicate, to the next append.
func (w *Writer) emit(blk []byte) error {
	if w.opts.BlockMap {
		e := MapEntry{Index: w.b.core.Length() + uint64(len(w.batch)), ByteLength: uint64(len(blk))}
		if w.hashes != nil {
			h := blake2b.Sum256(blk)
			if old, ok := w.hashes[h]; ok {
				w.blocks = append(w.blocks, old)
				return nil
			}
			w.hashes[h] = e
		}
		w.blocks = append(w.blocks, e)
	}
	w.batch = append(w.batch, blk)
	if len(w.batch) >= appendBatch {
		return w.flush()
	}
	return nil
}

// Write adds p to the blob.
func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errors.New("blobs: write to a closed writer")
	}
	if err := w.open(); err != nil {
		return 0, err
	}
	n := len(p)
	bs := w.b.blockSize
	for len(p) > 0 {
		var blk []byte
		if len(w.buf) == 0 && len(p) >= bs {
			blk = append([]byte(nil), p[:bs]...)
			p = p[bs:]
		} else {
			take := min(bs-len(w.buf), len(p))
			w.buf = append(w.buf, p[:take]...)
			p = p[take:]
			if len(w.buf) < bs {
				continue
			}
			blk, w.buf = w.buf, nil
		}
		if err := w.emit(blk); err != nil {
			return n - len(p), err
		}
	}
	return n, nil
}

// WriteBlock adds p as exactly one block (any partial block buffered by
// Write is ended first). It is how Node's blob write stream stores each
// chunk written to it, for callers that need the same block boundaries.
func (w *Writer) WriteBlock(p []byte) error {
	if w.closed {
		return errors.New("blobs: write to a closed writer")
	}
	if err := w.open(); err != nil {
		return err
	}
	if len(w.buf) > 0 {
		blk := w.buf
		w.buf = nil
		if err := w.emit(blk); err != nil {
			return err
		}
	}
	return w.emit(append([]byte(nil), p...))
}

func (w *Writer) flush() error {
	if len(w.batch) == 0 {
		return nil
	}
	if _, err := w.b.core.Append(w.batch...); err != nil {
		w.err = fmt.Errorf("blobs: append: %w", err)
		return w.err
	}
	w.batch = w.batch[:0]
	return nil
}

// mapEntriesPerBlock is how many entries Node puts in one block-map block.
const mapEntriesPerBlock = 8192

// Close appends what is left and fixes the blob's id. In block-map mode
// it then appends the map, and the id names the map's blocks.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	err := w.open()
	defer w.release()
	if err != nil {
		return err
	}
	if len(w.buf) > 0 {
		blk := w.buf
		w.buf = nil
		if err := w.emit(blk); err != nil {
			return err
		}
	}
	if err := w.flush(); err != nil {
		return err
	}
	if w.opts.BlockMap {
		// An empty blob gets no map blocks at all, as in Node.
		var maps [][]byte
		for i := 0; i < len(w.blocks); i += mapEntriesPerBlock {
			m, err := EncodeBlockMap(w.blocks[i:min(len(w.blocks), i+mapEntriesPerBlock)])
			if err != nil {
				return err
			}
			maps = append(maps, m)
		}
		w.id.BlockOffset = w.b.core.Length()
		w.id.ByteOffset = w.b.core.ByteLength()
		if _, err := w.b.core.Append(maps...); err != nil {
			w.err = fmt.Errorf("blobs: append block map: %w", err)
			return w.err
		}
	}
	w.id.BlockLength = w.b.core.Length() - w.id.BlockOffset
	w.id.ByteLength = w.b.core.ByteLength() - w.id.ByteOffset
	return nil
}

// Abort releases the writer without finishing the blob. Blocks already
// appended stay in the core (a core cannot shrink here) but no id names
// them.
func (w *Writer) Abort() {
	if !w.closed {
		w.err = errors.New("blobs: writer aborted")
	}
	w.release()
}

func (w *Writer) release() {
	w.closed = true
	if w.locked {
		w.locked = false
		w.b.wmu.Unlock()
	}
}

// ID is the blob's id; valid after a successful Close.
func (w *Writer) ID() ID { return w.id }

// Get returns the whole blob.
func (b *Blobs) Get(ctx context.Context, id ID) ([]byte, error) {
	r := b.NewReader(ctx, id)
	size, err := r.Size()
	if err != nil {
		return nil, err
	}
	// The id may come from an untrusted peer: grow with the data actually
	// read instead of trusting its length up front.
	var buf bytes.Buffer
	buf.Grow(int(min(size, 64<<20)))
	if _, err := io.Copy(&buf, r); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
