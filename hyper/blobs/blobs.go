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

// ErrNotFound is returned when a blob's blocks are outside the core.
var ErrNotFound = errors.New("blobs: blob is not in the core")

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
	locked bool
	closed bool
	id     ID
	buf    []byte   // partial block
	batch  [][]byte // full blocks not yet appended
	err    error
}

// NewWriter starts a blob.
func (b *Blobs) NewWriter() *Writer {
	return &Writer{b: b}
}

func (w *Writer) open() {
	if w.locked {
		return
	}
	w.b.wmu.Lock()
	w.locked = true
	w.id.BlockOffset = w.b.core.Length()
	w.id.ByteOffset = w.b.core.ByteLength()
}

// Write adds p to the blob.
func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errors.New("blobs: write to a closed writer")
	}
	if w.err != nil {
		return 0, w.err
	}
	w.open()
	n := len(p)
	bs := w.b.blockSize
	for len(p) > 0 {
		if len(w.buf) == 0 && len(p) >= bs {
			w.batch = append(w.batch, append([]byte(nil), p[:bs]...))
			p = p[bs:]
		} else {
			take := min(bs-len(w.buf), len(p))
			w.buf = append(w.buf, p[:take]...)
			p = p[take:]
			if len(w.buf) == bs {
				w.batch = append(w.batch, w.buf)
				w.buf = nil
			}
		}
		if len(w.batch) >= appendBatch {
			if err := w.flush(); err != nil {
				return n - len(p), err
			}
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
	if w.err != nil {
		return w.err
	}
	w.open()
	if len(w.buf) > 0 {
		w.batch = append(w.batch, w.buf)
		w.buf = nil
	}
	w.batch = append(w.batch, append([]byte(nil), p...))
	if len(w.batch) >= appendBatch {
		return w.flush()
	}
	return nil
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

// Close appends what is left and fixes the blob's id.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.open()
	defer w.release()
	if w.err != nil {
		return w.err
	}
	if len(w.buf) > 0 {
		w.batch = append(w.batch, w.buf)
		w.buf = nil
	}
	if err := w.flush(); err != nil {
		return err
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
