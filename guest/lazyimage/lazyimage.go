// Package lazyimage exposes a container image whose blocks arrive on demand: a
// read returns local data when present and otherwise fetches the covering blocks
// from a Source (peers, verified), keeps them in a sparse cache file and returns.
// Writes never reach the shared image: they go to a persistent copy-on-write
// overlay, so a container's changes survive restarts while the image stays the
// one everybody verifies.
//
// On disk, in Options.Dir: cache.data and overlay.data are sparse files the size
// of the image; cache.bits and overlay.bits say which blocks of each hold data.
// A bitmap is only ever written after the data it describes is synced, and
// replaced atomically, so a crash can lose unsynced work but never makes a block
// read as present when it is not.
package lazyimage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// Source is where missing blocks come from. ReadAt must return only verified data.
type Source interface {
	Size() int64
	ReadAt(ctx context.Context, p []byte, off int64) (int, error)
}

// PageSize is the overlay's granularity: a partial write copies the rest of its
// page from the image first.
const PageSize = 4096

// Options shape an Image.
type Options struct {
	Dir       string // where the cache and overlay live (on the data disk)
	BlockSize int    // fetch granularity; default 64 KiB, a Hyperdrive blob block
	Readahead int    // blocks fetched ahead of a sequential reader; default 16, 0 disables
	// MissReadahead is how many blocks after a read that had to fetch are
	// fetched with it, sequential or not; 0 disables. Files in an image
	// mostly lie in consecutive blocks, so the block after a miss is often
	// read soon, though rarely by the very next read (which is what
	// Readahead waits for).
	MissReadahead int
	// ReadaheadInflight bounds the readahead fetches in flight at once;
	// default 4, about what a 100 Mbit/s link carries in a 20 ms round
	// trip. Readahead beyond that would only queue on the link in front of
	// the next read that misses, which then waits for all of it.
	ReadaheadInflight int
	// CacheSyncBytes is how much newly fetched data may accumulate before the cache
	// bitmap is saved, in the background (a crash re-fetches about this much);
	// default 8 MiB.
	CacheSyncBytes int64
}

// Stats are the figures a container's status shows.
type Stats struct {
	Size    int64 `json:"size"`
	Fetched int64 `json:"fetched"` // bytes fetched from the source by this Image
	Cached  int64 `json:"cached"`  // bytes of the image held locally
	Written int64 `json:"written"` // bytes held in the overlay
}

// Image is a lazily fetched, locally writable view of a Source.
type Image struct {
	src   Source
	opt   Options
	size  int64
	cache *bitmapFile
	over  *bitmapFile

	mu       sync.Mutex
	inflight map[int64]*fetch // block -> fetch in progress
	raSlots  chan struct{}    // one token per readahead fetch in flight
	lastEnd  int64            // end of the previous read, to spot sequential access
	unsynced int64            // fetched bytes whose cache bits are not yet saved

	pageLocks [64]sync.Mutex // for first writes to a page, by page number modulo 64

	fetched atomic.Int64
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type fetch struct {
	done chan struct{}
	err  error
}

// Open opens (or creates) the cache and overlay for src in opt.Dir.
func Open(src Source, opt Options) (*Image, error) {
	if opt.BlockSize == 0 {
		opt.BlockSize = 64 << 10
	}
	if opt.BlockSize%PageSize != 0 || opt.BlockSize <= 0 {
		return nil, fmt.Errorf("block size %d must be a positive multiple of %d", opt.BlockSize, PageSize)
	}
	if opt.Readahead < 0 {
		opt.Readahead = 0
	}
	if opt.MissReadahead < 0 {
		opt.MissReadahead = 0
	}
	if opt.ReadaheadInflight <= 0 {
		opt.ReadaheadInflight = 4
	}
	if opt.CacheSyncBytes == 0 {
		opt.CacheSyncBytes = 8 << 20
	}
	if err := os.MkdirAll(opt.Dir, 0o700); err != nil {
		return nil, err
	}
	size := src.Size()
	if size < 0 {
		return nil, errors.New("source has a negative size")
	}
	cache, err := openBitmapFile(filepath.Join(opt.Dir, "cache"), size, int64(opt.BlockSize))
	if err != nil {
		return nil, err
	}
	over, err := openBitmapFile(filepath.Join(opt.Dir, "overlay"), size, PageSize)
	if err != nil {
		cache.close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Image{src: src, opt: opt, size: size, cache: cache, over: over,
		inflight: map[int64]*fetch{}, raSlots: make(chan struct{}, opt.ReadaheadInflight), ctx: ctx, cancel: cancel}, nil
}

// Size is the image's size in bytes.
func (im *Image) Size() int64 { return im.size }

// Stats reports sizes and transfer so far.
func (im *Image) Stats() Stats {
	return Stats{
		Size:    im.size,
		Fetched: im.fetched.Load(),
		Cached:  min(im.cache.count()*int64(im.opt.BlockSize), im.size),
		Written: im.over.count() * PageSize,
	}
}

// ReadAt reads the image as the container sees it: overlay pages first, then the
// cache, fetching what is missing.
func (im *Image) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= im.size {
		return 0, io.EOF
	}
	want := p
	if int64(len(want)) > im.size-off {
		want = want[:im.size-off]
	}
	// The read's own blocks are asked for first, readahead after them, so
	// that on the link the read never waits behind its readahead.
	missed := im.fetchRead(off, int64(len(want)))
	im.noteRead(off, int64(len(want)), missed)
	n := 0
	for n < len(want) {
		pos := off + int64(n)
		page := pos / PageSize
		end := min((page+1)*PageSize, off+int64(len(want)))
		chunk := want[n : n+int(end-pos)]
		if im.over.has(page) {
			if _, err := im.over.data.ReadAt(chunk, pos); err != nil {
				return n, fmt.Errorf("read overlay: %w", err)
			}
		} else {
			if err := im.ensure(ctx, pos/int64(im.opt.BlockSize)); err != nil {
				return n, err
			}
			if _, err := im.cache.data.ReadAt(chunk, pos); err != nil && !errors.Is(err, io.EOF) {
				return n, fmt.Errorf("read cache: %w", err)
			}
		}
		n += len(chunk)
	}
	if len(want) < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// fetchRead starts fetching, all at once, the missing blocks of a read
// (which then waits for them): one round trip for a read that spans
// several blocks rather than one per block. It reports whether any block
// was missing. The fetches are the image's, not the read's: a block other
// readers may wait for is not failed by one read's cancellation.
func (im *Image) fetchRead(off, n int64) (missed bool) {
	bs := int64(im.opt.BlockSize)
	last := (off + n - 1) / bs
	for b := off / bs; b <= last; b++ {
		if im.cache.has(b) || im.written(max(off, b*bs), min(off+n, (b+1)*bs)) {
			continue
		}
		missed = true
		if im.fetching(b) {
			continue
		}
		im.wg.Add(1)
		go func() {
			defer im.wg.Done()
			im.ensure(im.ctx, b)
		}()
	}
	return missed
}

// written reports whether every page of [from, to) is in the overlay: a
// read there needs nothing from the image (a replayed journal, say, reads
// back what the container wrote).
func (im *Image) written(from, to int64) bool {
	for page := from / PageSize; page*PageSize < to; page++ {
		if !im.over.has(page) {
			return false
		}
	}
	return true
}

// fetching reports whether block b is being fetched.
func (im *Image) fetching(b int64) bool {
	im.mu.Lock()
	defer im.mu.Unlock()
	_, ok := im.inflight[b]
	return ok
}

// noteRead starts readahead: Readahead blocks when a read continues where
// the previous one ended, at least MissReadahead when it missed. It
// fetches the missing blocks of that window, nearest first, as long as
// there are readahead slots. A full window is not queued: the next read
// moves it on.
func (im *Image) noteRead(off, n int64, missed bool) {
	im.mu.Lock()
	sequential := off == im.lastEnd && off != 0
	im.lastEnd = off + n
	im.mu.Unlock()
	ahead := 0
	if sequential {
		ahead = im.opt.Readahead
	}
	if missed {
		ahead = max(ahead, im.opt.MissReadahead)
	}
	bs := int64(im.opt.BlockSize)
	first := (off + n + bs - 1) / bs
	for b := first; b < first+int64(ahead) && b*bs < im.size; b++ {
		if im.cache.has(b) || im.fetching(b) {
			continue
		}
		select {
		case im.raSlots <- struct{}{}:
		default:
			return
		}
		im.wg.Add(1)
		go func(b int64) {
			defer im.wg.Done()
			defer func() { <-im.raSlots }()
			im.ensure(im.ctx, b)
		}(b)
	}
}

// Prefetch fetches every missing block, one at a time, until ctx ends: the
// background fill for an idle link.
func (im *Image) Prefetch(ctx context.Context) error {
	bs := int64(im.opt.BlockSize)
	for b := int64(0); b*bs < im.size; b++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := im.ensure(ctx, b); err != nil {
			return err
		}
	}
	return im.syncCache()
}

// ensure makes block b present in the cache, fetching it once however many
// readers ask at the same time.
func (im *Image) ensure(ctx context.Context, b int64) error {
	if im.cache.has(b) {
		return nil
	}
	im.mu.Lock()
	// Again under the lock: a fetch that ended since the check above has
	// set the bit before leaving inflight, and must not be fetched twice.
	if im.cache.has(b) {
		im.mu.Unlock()
		return nil
	}
	if f, ok := im.inflight[b]; ok {
		im.mu.Unlock()
		select {
		case <-f.done:
			return f.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f := &fetch{done: make(chan struct{})}
	im.inflight[b] = f
	im.mu.Unlock()

	f.err = im.fetchBlock(ctx, b)
	im.mu.Lock()
	delete(im.inflight, b)
	im.mu.Unlock()
	close(f.done)
	return f.err
}

func (im *Image) fetchBlock(ctx context.Context, b int64) error {
	bs := int64(im.opt.BlockSize)
	off := b * bs
	buf := make([]byte, min(bs, im.size-off))
	n, err := im.src.ReadAt(ctx, buf, off)
	if n < len(buf) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("fetch block %d: %w", b, err)
	}
	if _, err := im.cache.data.WriteAt(buf, off); err != nil {
		return fmt.Errorf("store block %d: %w", b, err)
	}
	im.cache.set(b)
	im.fetched.Add(int64(len(buf)))
	im.mu.Lock()
	im.unsynced += int64(len(buf))
	save := im.unsynced >= im.opt.CacheSyncBytes
	if save {
		im.unsynced = 0
	}
	im.mu.Unlock()
	if save {
		// In the background: the read that crossed the mark has its data,
		// and saving the bitmap (an fsync of the data first) would hold it
		// up for as long as all the fetches since the last save took to
		// write back. A failed save leaves the bits dirty for the next.
		im.wg.Add(1)
		go func() {
			defer im.wg.Done()
			im.syncCache()
		}()
	}
	return nil
}

func (im *Image) syncCache() error { return im.cache.sync() }

// WriteAt writes to the overlay. A page written in part is first filled from the
// image, so the overlay always holds whole pages.
func (im *Image) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > im.size {
		return 0, fmt.Errorf("write at %d+%d is outside the %d-byte image", off, len(p), im.size)
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		page := pos / PageSize
		end := min((page+1)*PageSize, off+int64(len(p)))
		chunk := p[n : n+int(end-pos)]
		var err error
		if im.over.has(page) {
			if _, err = im.over.data.WriteAt(chunk, pos); err == nil {
				im.over.noteWrite()
			}
		} else {
			err = im.firstWrite(ctx, page, chunk, pos)
		}
		if err != nil {
			return n, fmt.Errorf("write overlay: %w", err)
		}
		n += len(chunk)
	}
	return n, nil
}

// firstWrite writes to a page not yet in the overlay, filling the rest of it
// from the image. It holds the page's lock: two writes to different parts of a
// new page arrive at once (a filesystem with 1 KiB blocks on a loop device
// doing direct I/O sends them so), and the second copy-up must not bring back
// image bytes over the first write. Once a page's bit is set its copy-up is
// done, so later writes need no lock.
func (im *Image) firstWrite(ctx context.Context, page int64, chunk []byte, pos int64) error {
	l := &im.pageLocks[page%int64(len(im.pageLocks))]
	l.Lock()
	defer l.Unlock()
	pageOff := page * PageSize
	switch {
	case im.over.has(page), len(chunk) == PageSize:
		if _, err := im.over.data.WriteAt(chunk, pos); err != nil {
			return err
		}
	default:
		full := make([]byte, min(PageSize, im.size-pageOff))
		if _, err := im.ReadAt(ctx, full, pageOff); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		copy(full[pos-pageOff:], chunk)
		if _, err := im.over.data.WriteAt(full, pageOff); err != nil {
			return err
		}
	}
	im.over.set(page)
	return nil
}

// Sync makes every write so far durable: the overlay's data, then its bitmap.
func (im *Image) Sync() error {
	if err := im.over.sync(); err != nil {
		return err
	}
	return im.syncCache()
}

// Close waits for readahead, saves both bitmaps and closes the files.
func (im *Image) Close() error {
	im.cancel()
	im.wg.Wait()
	err := im.Sync()
	im.cache.close()
	im.over.close()
	return err
}

// Discard removes the overlay (and keeps the cache): what --ephemeral does at
// the end, and what `container rm` does together with removing the cache.
func Discard(dir string) error {
	for _, f := range []string{"overlay.data", "overlay.bits"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}
