package lazyimage

import (
	"bytes"
	"context"
	"io"
	"math/rand"
	"os"
	"sync"
	"sync/atomic"
	"testing"
)

// memSource serves an image from memory and counts what it is asked for.
type memSource struct {
	data    []byte
	reads   atomic.Int64
	bytes   atomic.Int64
	mu      sync.Mutex
	perBlk  map[int64]int
	blkSize int64
}

func newMemSource(size int, seed int64) *memSource {
	b := make([]byte, size)
	rand.New(rand.NewSource(seed)).Read(b)
	return &memSource{data: b, perBlk: map[int64]int{}, blkSize: 64 << 10}
}

func (m *memSource) Size() int64 { return int64(len(m.data)) }

func (m *memSource) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	m.reads.Add(1)
	m.bytes.Add(int64(len(p)))
	m.mu.Lock()
	m.perBlk[off/m.blkSize]++
	m.mu.Unlock()
	return copy(p, m.data[off:]), nil
}

func open(t *testing.T, src Source, dir string) *Image {
	t.Helper()
	im, err := Open(src, Options{Dir: dir, Readahead: -1})
	if err != nil {
		t.Fatal(err)
	}
	return im
}

func TestReadsFetchOnlyWhatTheyNeed(t *testing.T) {
	src := newMemSource(10<<20+123, 1) // not a multiple of the block size
	im := open(t, src, t.TempDir())
	defer im.Close()
	ctx := context.Background()
	r := rand.New(rand.NewSource(2))
	for i := 0; i < 50; i++ {
		off := r.Int63n(src.Size())
		buf := make([]byte, 1+r.Intn(9000))
		n, err := im.ReadAt(ctx, buf, off)
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if !bytes.Equal(buf[:n], src.data[off:off+int64(n)]) {
			t.Fatalf("read at %d differs", off)
		}
	}
	if got := im.Stats().Fetched; got > 50*2*(64<<10) || got >= src.Size() {
		t.Fatalf("fetched %d bytes for 50 small reads", got)
	}
	// Reading the same places again fetches nothing.
	before := src.bytes.Load()
	r = rand.New(rand.NewSource(2))
	for i := 0; i < 50; i++ {
		off := r.Int63n(src.Size())
		buf := make([]byte, 1+r.Intn(9000))
		im.ReadAt(ctx, buf, off)
	}
	if src.bytes.Load() != before {
		t.Fatal("cached blocks were fetched again")
	}
	// The tail block is short, and reading past the end says EOF.
	buf := make([]byte, 500)
	n, err := im.ReadAt(ctx, buf, src.Size()-100)
	if n != 100 || err != io.EOF || !bytes.Equal(buf[:100], src.data[src.Size()-100:]) {
		t.Fatalf("tail read: %d %v", n, err)
	}
}

func TestConcurrentReadersFetchABlockOnce(t *testing.T) {
	src := newMemSource(4<<20, 3)
	im := open(t, src, t.TempDir())
	defer im.Close()
	// Many rounds on fresh blocks: a reader that looks just as another's
	// fetch ends must find the block, not fetch it again.
	for b := int64(1); b < 64; b++ {
		var wg sync.WaitGroup
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 4096)
				im.ReadAt(context.Background(), buf, b<<16+100)
			}()
		}
		wg.Wait()
		if c := src.perBlk[b]; c != 1 {
			t.Fatalf("block %d fetched %d times", b, c)
		}
	}
}

func TestSequentialReadahead(t *testing.T) {
	src := newMemSource(8<<20, 4)
	im, err := Open(src, Options{Dir: t.TempDir(), Readahead: 8, ReadaheadInflight: 8})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	im.ReadAt(context.Background(), buf, 0)
	im.ReadAt(context.Background(), buf, 64<<10) // sequential: fetch ahead
	im.Close()                                   // waits for readahead
	if got := im.Stats().Cached; got < 10*(64<<10) {
		t.Fatalf("readahead cached only %d bytes", got)
	}
}

func TestWritesGoToTheOverlayAndPersist(t *testing.T) {
	src := newMemSource(1<<20, 5)
	dir := t.TempDir()
	im := open(t, src, dir)
	ctx := context.Background()
	// A write inside one page, and one spanning two pages.
	if _, err := im.WriteAt(ctx, []byte("hello"), 10); err != nil {
		t.Fatal(err)
	}
	if _, err := im.WriteAt(ctx, bytes.Repeat([]byte{0xAB}, 100), 4096-50); err != nil {
		t.Fatal(err)
	}
	if err := im.Sync(); err != nil {
		t.Fatal(err)
	}
	// Simulate a crash: no Close; a new Image reads the files as they are.
	want := bytes.Clone(src.data[:8192])
	copy(want[10:], "hello")
	copy(want[4096-50:], bytes.Repeat([]byte{0xAB}, 100))
	im2 := open(t, src, dir)
	got := make([]byte, 8192)
	if _, err := im2.ReadAt(ctx, got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("synced writes lost or the rest of their pages wrong after a crash")
	}
	if !bytes.Equal(src.data[:8192], newMemSource(1<<20, 5).data[:8192]) {
		t.Fatal("the source was written")
	}
	if s := im2.Stats(); s.Written != 2*PageSize {
		t.Fatalf("written %d", s.Written)
	}
	im.Close()
	im2.Close()
	if err := Discard(dir); err != nil {
		t.Fatal(err)
	}
	im3 := open(t, src, dir)
	defer im3.Close()
	im3.ReadAt(ctx, got, 0)
	if !bytes.Equal(got, src.data[:8192]) {
		t.Fatal("Discard left overlay data")
	}
	if _, err := im3.WriteAt(ctx, []byte("x"), src.Size()); err == nil {
		t.Fatal("a write past the end was accepted")
	}
}

func TestUnsyncedBitsNeverOutliveTheirData(t *testing.T) {
	src := newMemSource(1<<20, 6)
	dir := t.TempDir()
	im := open(t, src, dir)
	im.WriteAt(context.Background(), []byte("not synced"), 0)
	// Crash without Sync: the bitmap on disk must not claim the page.
	im2 := open(t, src, dir)
	got := make([]byte, 10)
	im2.ReadAt(context.Background(), got, 0)
	if !bytes.Equal(got, src.data[:10]) {
		t.Fatalf("an unsynced write is visible after a crash: %q", got)
	}
	im.Close()
	im2.Close()
}

func TestBitmapForAnotherImageIsDropped(t *testing.T) {
	dir := t.TempDir()
	a := newMemSource(1<<20, 7)
	im := open(t, a, dir)
	buf := make([]byte, 100)
	im.ReadAt(context.Background(), buf, 0)
	im.Close()
	b := newMemSource(2<<20, 8) // a new version of the image
	im2 := open(t, b, dir)
	defer im2.Close()
	im2.ReadAt(context.Background(), buf, 0)
	if !bytes.Equal(buf, b.data[:100]) {
		t.Fatal("a cache of another image was trusted")
	}
}

func FuzzBitmapDecode(f *testing.F) {
	b := &bitmapFile{size: 1 << 20, unit: 4096, bits: make([]uint64, 4)}
	b.bits[1] = 0xff
	f.Add(b.encode())
	f.Fuzz(func(t *testing.T, raw []byte) {
		c := &bitmapFile{size: 1 << 20, unit: 4096, bits: make([]uint64, 4)}
		if c.decode(raw) == nil && !bytes.Equal(c.encode(), raw) {
			t.Fatal("accepted a bitmap that does not re-encode to itself")
		}
	})
}

// Writers that fsync at the same time, then a crash (no Close): every write
// whose Sync returned is there when the files are opened again.
func TestConcurrentSyncsAreDurable(t *testing.T) {
	for round := 0; round < 20; round++ {
		src := newMemSource(1<<20, 9)
		dir := t.TempDir()
		im := open(t, src, dir)
		ctx := context.Background()
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < 4; i++ {
					page := int64(w*4 + i)
					if _, err := im.WriteAt(ctx, bytes.Repeat([]byte{byte(page + 1)}, PageSize), page*PageSize); err != nil {
						t.Error(err)
						return
					}
					if err := im.Sync(); err != nil {
						t.Error(err)
						return
					}
				}
			}(w)
		}
		wg.Wait()
		again := open(t, src, dir) // the first is never closed: a crash
		buf := make([]byte, PageSize)
		for page := int64(0); page < 32; page++ {
			if _, err := again.ReadAt(ctx, buf, page*PageSize); err != nil {
				t.Fatal(err)
			}
			if buf[0] != byte(page+1) || buf[PageSize-1] != byte(page+1) {
				t.Fatalf("round %d: page %d lost after its Sync returned", round, page)
			}
		}
	}
}

// Writes to different parts of one page at the same time (a filesystem with
// 1 KiB blocks on a loop device doing direct I/O sends them so) all land: the
// copy-up of a partly written page must not bring back image bytes over a
// neighbour's write.
func TestConcurrentPartialWritesToAPage(t *testing.T) {
	const pages, parts = 64, 4
	src := newMemSource(1<<20, 10)
	im := open(t, src, t.TempDir())
	defer im.Close()
	ctx := context.Background()
	part := PageSize / parts
	var wg sync.WaitGroup
	for p := 0; p < parts; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for page := int64(0); page < pages; page++ {
				buf := bytes.Repeat([]byte{byte(p + 1)}, part)
				if _, err := im.WriteAt(ctx, buf, page*PageSize+int64(p*part)); err != nil {
					t.Error(err)
					return
				}
			}
		}(p)
	}
	wg.Wait()
	buf := make([]byte, PageSize)
	for page := int64(0); page < pages; page++ {
		if _, err := im.ReadAt(ctx, buf, page*PageSize); err != nil {
			t.Fatal(err)
		}
		for p := 0; p < parts; p++ {
			if got := buf[p*part]; got != byte(p+1) {
				t.Fatalf("page %d: part %d reads %d, not its write %d", page, p, got, p+1)
			}
		}
	}
}

// An overwrite of a page already in the overlay changes no bit, and Sync must
// still make its data durable: a journal that wraps onto its own blocks
// writes only such pages, and its commits were lost when the VM was killed.
func TestSyncAfterOverwriteSyncsTheData(t *testing.T) {
	src := newMemSource(1<<20, 11)
	im := open(t, src, t.TempDir())
	defer im.Close()
	var syncs atomic.Int64
	im.over.syncData = func(f *os.File) error { syncs.Add(1); return f.Sync() }
	ctx := context.Background()
	page := bytes.Repeat([]byte{1}, PageSize)
	if _, err := im.WriteAt(ctx, page, 0); err != nil {
		t.Fatal(err)
	}
	if err := im.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := im.Sync(); err != nil { // nothing written since: nothing to do
		t.Fatal(err)
	}
	if got := syncs.Load(); got != 1 {
		t.Fatalf("first write and two syncs: %d data syncs, want 1", got)
	}
	for _, w := range [][]byte{bytes.Repeat([]byte{2}, PageSize), {3, 3, 3}} { // whole and partial overwrites
		before := syncs.Load()
		if _, err := im.WriteAt(ctx, w, 0); err != nil {
			t.Fatal(err)
		}
		if err := im.Sync(); err != nil {
			t.Fatal(err)
		}
		if syncs.Load() != before+1 {
			t.Fatalf("an overwrite of %d bytes of a present page was not synced", len(w))
		}
	}
}

// gatedSource is a memSource whose reads of blocks from gateFrom on wait
// until open is closed; started receives one value per such read begun.
type gatedSource struct {
	*memSource
	gateFrom int64
	open     chan struct{}
	started  chan int64
}

func (g *gatedSource) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if b := off / g.blkSize; b >= g.gateFrom {
		g.started <- b
		<-g.open
	}
	return g.memSource.ReadAt(ctx, p, off)
}

// Readahead keeps at most ReadaheadInflight fetches in flight and does
// not queue the rest of its window: queued on the link, they would delay
// the next read that misses.
func TestReadaheadInflightIsBounded(t *testing.T) {
	src := &gatedSource{memSource: newMemSource(8<<20, 6), gateFrom: 2, open: make(chan struct{}), started: make(chan int64, 64)}
	im, err := Open(src, Options{Dir: t.TempDir(), Readahead: 8, ReadaheadInflight: 2})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	im.ReadAt(context.Background(), buf, 0)
	im.ReadAt(context.Background(), buf, 64<<10) // sequential: readahead of blocks 2 and 3 only
	close(src.open)
	im.Close()
	var ahead int
	for b, n := range src.perBlk {
		if b >= 2 {
			ahead += n
		}
	}
	if ahead != 2 {
		t.Fatalf("readahead fetched %d blocks, want 2 (its in-flight bound)", ahead)
	}
}

// A read spanning several missing blocks fetches them all at once: the
// source here answers none until three are asked for, so a read that
// fetched one block after another would never finish.
func TestSpanningReadFetchesBlocksTogether(t *testing.T) {
	src := &gatedSource{memSource: newMemSource(1<<20, 7), gateFrom: 0, open: make(chan struct{}), started: make(chan int64, 64)}
	go func() {
		for range 3 {
			<-src.started
		}
		close(src.open)
	}()
	im := open(t, src, t.TempDir())
	defer im.Close()
	buf := make([]byte, 2*(64<<10)+100)
	off := int64(64<<10 - 50) // blocks 0, 1, 2 and 3
	if _, err := im.ReadAt(context.Background(), buf, off); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, src.data[off:off+int64(len(buf))]) {
		t.Fatal("wrong bytes")
	}
}

// A read that misses also fetches the next MissReadahead blocks, even when
// it does not continue the previous read; a read that hits fetches none.
func TestMissReadahead(t *testing.T) {
	src := newMemSource(2<<20, 8)
	im, err := Open(src, Options{Dir: t.TempDir(), MissReadahead: 2})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	im.ReadAt(context.Background(), buf, 5<<16+100)  // misses block 5: 6 and 7 come along
	im.ReadAt(context.Background(), buf, 12<<16+100) // misses block 12: 13 and 14
	im.Close()
	im, err = Open(src, Options{Dir: im.opt.Dir, MissReadahead: 2})
	if err != nil {
		t.Fatal(err)
	}
	im.ReadAt(context.Background(), buf, 6<<16) // a hit: nothing more
	im.Close()
	want := map[int64]int{5: 1, 6: 1, 7: 1, 12: 1, 13: 1, 14: 1}
	src.mu.Lock()
	defer src.mu.Unlock()
	for b, n := range src.perBlk {
		if want[b] != n {
			t.Errorf("block %d fetched %d times, want %d", b, n, want[b])
		}
	}
	if len(src.perBlk) != len(want) {
		t.Errorf("fetched blocks %v, want %v", src.perBlk, want)
	}
}

// Reading back what the container wrote fetches nothing from the image,
// even across blocks the cache does not hold.
func TestReadsOfWrittenPagesFetchNothing(t *testing.T) {
	src := newMemSource(1<<20, 12)
	im := open(t, src, t.TempDir())
	defer im.Close()
	ctx := context.Background()
	// Two whole blocks' worth of pages, straddling a block boundary.
	data := bytes.Repeat([]byte{5}, 2*(64<<10))
	off := int64(32 << 10)
	if _, err := im.WriteAt(ctx, data, off); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if _, err := im.ReadAt(ctx, got, off); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
	im.wg.Wait() // any fetch the read started
	if n := src.reads.Load(); n != 0 {
		t.Fatalf("reading written pages asked the source %d times", n)
	}
}
