package blobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/hyperos/hyperos/hyper/compact"
)

// maxMapBlocks is hyperblobs' limit on the blocks of a block map.
const maxMapBlocks = 64

// ErrCorrupt is wrapped when blocks do not match the blob id describing
// them (a short block, a map pointing outside the core).
var ErrCorrupt = errors.New("blobs: blob does not match its id")

// Reader reads one blob. It implements io.Reader, io.Seeker and
// io.ReaderAt, and fetches only the blocks that cover the bytes asked for,
// remembering the last block so that small sequential reads do not fetch
// it again. ReadAt may be called concurrently, and concurrent calls fetch
// their blocks at the same time: a lazily read disk image has many reads
// (and readahead) waiting on the network at once, and serving them one
// after another would cost a round trip each.
type Reader struct {
	b   *Blobs
	ctx context.Context
	id  ID

	// posMu guards pos, for Read and Seek.
	posMu sync.Mutex
	pos   int64

	// mu guards what the reader has learnt about the blob's layout and the
	// last block it fetched. It is not held while a content block is
	// fetched (only while the layout is learnt: a block map, a Seek, or
	// blocks read in order to learn their sizes).
	mu       sync.Mutex
	layout   bool
	size     uint64
	mapIdx   []uint64 // block map: block index of each content block
	starts   []uint64 // start offset (within the blob) of each content block, plus the end
	linear   bool     // block sizes unknown: learn them in order
	curIdx   uint64
	cur      []byte
	haveCur  bool
	curStart uint64
}

// NewReader returns a reader of the blob. ctx bounds every block fetch.
func (b *Blobs) NewReader(ctx context.Context, id ID) *Reader {
	return &Reader{b: b, ctx: ctx, id: id}
}

// ID is the blob read.
func (r *Reader) ID() ID { return r.id }

// Size is the blob's length in bytes. For a block-map blob it reads the
// map.
func (r *Reader) Size() (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.loadLayout(); err != nil {
		return 0, err
	}
	return r.size, nil
}

func (r *Reader) loadLayout() error {
	if r.layout {
		return nil
	}
	id := r.id
	if id.BlockMap {
		if err := r.loadMap(); err != nil {
			return err
		}
		r.layout = true
		return nil
	}
	r.size = id.ByteLength
	if id.BlockLength == 0 && id.ByteLength != 0 {
		return fmt.Errorf("%w: %d bytes in no blocks", ErrCorrupt, id.ByteLength)
	}
	r.layout = true
	return nil
}

func (r *Reader) loadMap() error {
	id := r.id
	if id.BlockLength > maxMapBlocks {
		return fmt.Errorf("blobs: block map of %d blocks is too large", id.BlockLength)
	}
	r.starts = []uint64{0}
	for i := uint64(0); i < id.BlockLength; i++ {
		blk, err := r.b.core.Get(r.ctx, id.BlockOffset+i)
		if err != nil {
			return fmt.Errorf("blobs: read block map %d: %w", id.BlockOffset+i, err)
		}
		entries, err := DecodeBlockMap(blk)
		if err != nil {
			return err
		}
		for _, e := range entries {
			end := r.starts[len(r.starts)-1] + e.ByteLength
			if end < e.ByteLength || end > 1<<53-1 {
				return fmt.Errorf("%w: block map overflows", ErrCorrupt)
			}
			r.mapIdx = append(r.mapIdx, e.Index)
			r.starts = append(r.starts, end)
		}
	}
	r.size = r.starts[len(r.starts)-1]
	return nil
}

// MapEntry is one content block named by a block map.
type MapEntry struct {
	Index      uint64
	ByteLength uint64
}

// DecodeBlockMap decodes one block of a hyperblobs block map: a
// compact-encoded version (0) and an array of (index, byteLength).
func DecodeBlockMap(blk []byte) ([]MapEntry, error) {
	d := compact.NewDecoder(blk)
	v, err := d.Uint()
	if err != nil {
		return nil, fmt.Errorf("blobs: decode block map: %w", err)
	}
	if v != 0 {
		return nil, fmt.Errorf("blobs: unsupported block map version %d", v)
	}
	entries, err := compact.Array(d, func(d *compact.Decoder) (MapEntry, error) {
		var e MapEntry
		var err error
		if e.Index, err = d.Uint(); err != nil {
			return e, err
		}
		e.ByteLength, err = d.Uint()
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("blobs: decode block map: %w", err)
	}
	return entries, nil
}

// EncodeBlockMap encodes entries as one block-map block.
func EncodeBlockMap(entries []MapEntry) ([]byte, error) {
	e := compact.NewEncoder(nil)
	e.Uint(0)
	e.ArrayLen(len(entries))
	for _, m := range entries {
		e.Uint(m.Index)
		e.Uint(m.ByteLength)
	}
	b, err := e.Finish()
	if err != nil {
		return nil, fmt.Errorf("blobs: encode block map: %w", err)
	}
	return b, nil
}

// locate finds the block holding byte off of the blob: its core index,
// the blob offset where that block starts, and the block's expected length
// (0 when unknown). seek asks for a Seek rather than the arithmetic guess
// (after a guess proved wrong). mu is held.
func (r *Reader) locate(off uint64, seek bool) (idx, start, want uint64, err error) {
	id := r.id
	if id.BlockMap {
		i := sort.Search(len(r.starts)-1, func(i int) bool { return r.starts[i+1] > off })
		return r.mapIdx[i], r.starts[i], r.starts[i+1] - r.starts[i], nil
	}
	// Sequential reads: the next block starts where the cached one ends.
	if r.haveCur && off == r.curStart+uint64(len(r.cur)) && r.curIdx+1 < id.BlockOffset+id.BlockLength {
		return r.curIdx + 1, off, 0, nil
	}
	if id.BlockLength == 1 {
		return id.BlockOffset, 0, id.ByteLength, nil
	}
	bs := uint64(r.b.blockSize)
	// Written with our block size (as drive.put and Node's hyperblobs do),
	// the position is arithmetic; fetch checks the guess: the block's
	// length always, its offset where the core can tell it.
	arithmetic := !r.linear && id.ByteLength > (id.BlockLength-1)*bs && id.ByteLength <= id.BlockLength*bs
	guess := func() (idx, start, want uint64, err error) {
		n := off / bs
		want = bs
		if n == id.BlockLength-1 {
			want = id.ByteLength - n*bs
		}
		return id.BlockOffset + n, n * bs, want, nil
	}
	if _, checkable := r.b.core.(BlockOffsetter); checkable && arithmetic && !seek {
		return guess()
	}
	if s, ok := r.b.core.(Seeker); ok {
		i, rel, err := s.Seek(r.ctx, id.ByteOffset+off)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("blobs: seek to byte %d: %w", id.ByteOffset+off, err)
		}
		if i < id.BlockOffset || i >= id.BlockOffset+id.BlockLength || rel > off {
			return 0, 0, 0, fmt.Errorf("%w: byte %d seeks to block %d outside the blob", ErrCorrupt, off, i)
		}
		return i, off - rel, 0, nil
	}
	if arithmetic {
		return guess()
	}
	r.linear = true
	return r.locateLinear(off)
}

// locateLinear learns block sizes in order; it is the fallback for blobs
// written with another block size on a core that cannot seek.
func (r *Reader) locateLinear(off uint64) (idx, start, want uint64, err error) {
	id := r.id
	if len(r.starts) == 0 {
		r.starts = []uint64{0}
	}
	for {
		n := len(r.starts) - 1 // blocks whose length is known
		if r.starts[n] > off {
			i := sort.Search(n, func(i int) bool { return r.starts[i+1] > off })
			return id.BlockOffset + uint64(i), r.starts[i], r.starts[i+1] - r.starts[i], nil
		}
		if uint64(n) >= id.BlockLength {
			return 0, 0, 0, fmt.Errorf("%w: blocks hold fewer than %d bytes", ErrCorrupt, off+1)
		}
		idx := id.BlockOffset + uint64(n)
		blk, err := r.fetch(r.ctx, idx, r.starts[n], 0, true)
		if err != nil {
			return 0, 0, 0, err
		}
		r.cur, r.curIdx, r.curStart, r.haveCur = blk, idx, r.starts[n], true
		r.starts = append(r.starts, r.starts[n]+uint64(len(blk)))
	}
}

// fetch gets block idx from the core and checks it against what locate
// expected of it: want bytes (when not 0) starting at blob offset start.
// linear is r.linear as locate saw it. It does not touch the reader's
// state, so it runs without mu.
func (r *Reader) fetch(ctx context.Context, idx, start, want uint64, linear bool) ([]byte, error) {
	blk, err := r.b.core.Get(ctx, idx)
	if err != nil {
		return nil, fmt.Errorf("blobs: read block %d: %w", idx, err)
	}
	if want != 0 && uint64(len(blk)) != want {
		if !r.id.BlockMap && !linear {
			// The arithmetic guess was wrong: the blob was written
			// with another block size.
			return nil, errGuessWrong
		}
		return nil, fmt.Errorf("%w: block %d has %d bytes, want %d", ErrCorrupt, idx, len(blk), want)
	}
	if bo, ok := r.b.core.(BlockOffsetter); ok && want != 0 && !r.id.BlockMap && !linear {
		// A block of the guessed length may still sit elsewhere (blocks
		// of other sizes before it): its proof says where it starts.
		if at, known := bo.BlockOffset(idx); !known || at != r.id.ByteOffset+start {
			return nil, errGuessWrong
		}
	}
	return blk, nil
}

var errGuessWrong = errors.New("blobs: block size guess was wrong")

// ReadAt reads len(p) bytes at off within the blob.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("blobs: negative offset")
	}
	return r.readAt(r.ctx, p, uint64(off))
}

// ReadAtContext is ReadAt that also gives up, on the blocks it waits
// for, when ctx ends: a read whose caller went away (an interrupted
// request, a closed image) does not wait for a peer that may never answer.
func (r *Reader) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("blobs: negative offset")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(r.ctx, cancel)
	defer stop()
	return r.readAt(ctx, p, uint64(off))
}

func (r *Reader) readAt(ctx context.Context, p []byte, off uint64) (int, error) {
	r.mu.Lock()
	err := r.loadLayout()
	size := r.size
	r.mu.Unlock()
	if err != nil {
		return 0, err
	}
	n := 0
	seek := false
	for n < len(p) && off < size {
		r.mu.Lock()
		idx, start, want, err := r.locate(off, seek)
		linear := r.linear
		var blk []byte
		if err == nil && r.haveCur && r.curIdx == idx {
			blk = r.cur
		}
		r.mu.Unlock()
		if err != nil {
			return n, err
		}
		if blk == nil {
			blk, err = r.fetch(ctx, idx, start, want, linear)
			if errors.Is(err, errGuessWrong) {
				if _, ok := r.b.core.(Seeker); ok {
					seek = true // this position seeks; later ones guess again
				} else {
					r.mu.Lock()
					r.linear = true
					r.mu.Unlock()
				}
				continue
			}
			if err != nil {
				return n, err
			}
			r.mu.Lock()
			r.cur, r.curIdx, r.curStart, r.haveCur = blk, idx, start, true
			r.mu.Unlock()
		}
		seek = false
		rel := off - start
		if rel >= uint64(len(blk)) {
			return n, fmt.Errorf("%w: block %d has %d bytes, byte %d of it was asked for", ErrCorrupt, idx, len(blk), rel)
		}
		end := min(uint64(len(blk)), rel+(size-off))
		c := copy(p[n:], blk[rel:end])
		n += c
		off += uint64(c)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	r.posMu.Lock()
	defer r.posMu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	n, err := r.readAt(r.ctx, p, uint64(r.pos))
	r.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// Seek implements io.Seeker.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	r.posMu.Lock()
	defer r.posMu.Unlock()
	var base int64
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		base = r.pos
	case io.SeekEnd:
		size, err := r.Size()
		if err != nil {
			return 0, err
		}
		base = int64(size)
	default:
		return 0, fmt.Errorf("blobs: bad whence %d", whence)
	}
	if base+offset < 0 {
		return 0, errors.New("blobs: seek before the start")
	}
	r.pos = base + offset
	return r.pos, nil
}

// ByteLength is the size of the blob's content: the id's ByteLength, or
// for a block-map blob (whose id measures the map) the sum of the mapped
// blocks, which takes reading the map.
func (b *Blobs) ByteLength(ctx context.Context, id ID) (uint64, error) {
	if !id.BlockMap || id.BlockLength == 0 {
		return id.ByteLength, nil
	}
	return b.NewReader(ctx, id).Size()
}
