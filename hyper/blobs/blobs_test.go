package blobs_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/hyperos/hyperos/internal/fixture"

	"github.com/hyperos/hyperos/hyper/bee/memcore"
	"github.com/hyperos/hyperos/hyper/blobs"
)

// Fixtures come from hyper/testdata/node/drive-blobs.js.

type blobFixture struct {
	Blobs []struct {
		Kind   string   `json:"kind"`
		ID     blobs.ID `json:"id"`
		Size   int      `json:"size"`
		SHA256 string   `json:"sha256"`
		Ranges []struct {
			Start  int64  `json:"start"`
			Length int    `json:"length"`
			SHA256 string `json:"sha256"`
		} `json:"ranges"`
	} `json:"blobs"`
	Blocks []string `json:"blocks"`
}

func loadFixture(t testing.TB) *blobFixture {
	t.Helper()
	var f blobFixture
	fixture.LoadGzipJSON(t, "testdata/blobs.json.gz", &f)
	return &f
}

func (f *blobFixture) core(t testing.TB) *memcore.Core {
	var blocks [][]byte
	for _, h := range f.Blocks {
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatal(err)
		}
		blocks = append(blocks, b)
	}
	return memcore.FromBlocks(blocks)
}

// content is the byte pattern of the Node script.
func content(seed, size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(seed*131 + i*7 + (i>>8)*13)
	}
	return b
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// seekCore adds a Seeker computed from block lengths, standing in for a
// Hypercore's Merkle-tree seek.
type seekCore struct {
	*memcore.Core
	lengths []uint64
}

func (s *seekCore) Seek(_ context.Context, off uint64) (uint64, uint64, error) {
	for i, l := range s.lengths {
		if off < l {
			return uint64(i), off, nil
		}
		off -= l
	}
	return 0, 0, io.EOF
}

func TestReadNodeWrittenBlobs(t *testing.T) {
	f := loadFixture(t)
	ctx := context.Background()
	mc := f.core(t)
	var lengths []uint64
	for _, b := range mc.Blocks() {
		lengths = append(lengths, uint64(len(b)))
	}
	cores := map[string]blobs.Core{"plain": mc, "seeker": &seekCore{Core: mc, lengths: lengths}}
	for name, core := range cores {
		t.Run(name, func(t *testing.T) {
			bl := blobs.New(core, nil)
			for _, b := range f.Blobs {
				got, err := bl.Get(ctx, b.ID)
				if err != nil {
					t.Fatalf("%s %+v: %v", b.Kind, b.ID, err)
				}
				if len(got) != b.Size || sum(got) != b.SHA256 {
					t.Errorf("%s: got %d bytes %s, want %d %s", b.Kind, len(got), sum(got), b.Size, b.SHA256)
				}
				for _, r := range b.Ranges {
					// A fresh reader each time so that no cached block
					// hides a wrong seek.
					rd := bl.NewReader(ctx, b.ID)
					buf := make([]byte, r.Length)
					if _, err := rd.ReadAt(buf, r.Start); err != nil {
						t.Fatalf("%s range %d+%d: %v", b.Kind, r.Start, r.Length, err)
					}
					if sum(buf) != r.SHA256 {
						t.Errorf("%s range %d+%d differs", b.Kind, r.Start, r.Length)
					}
				}
				// Streaming in small reads gives the same bytes.
				var out bytes.Buffer
				if _, err := io.CopyBuffer(&out, struct{ io.Reader }{bl.NewReader(ctx, b.ID)}, make([]byte, 777)); err != nil {
					t.Fatal(err)
				}
				if sum(out.Bytes()) != b.SHA256 {
					t.Errorf("%s: streamed bytes differ", b.Kind)
				}
			}
		})
	}
}

func TestWriteSameBlocksAsNode(t *testing.T) {
	f := loadFixture(t)
	ctx := context.Background()
	core := memcore.New()
	bl := blobs.New(core, nil)
	small := blobs.New(core, &blobs.Options{BlockSize: 1000})
	seeds := map[string][][2]int{"put": {{1, 0}, {2, 1}, {3, 65536}, {4, 65537}, {5, 200000}}}
	i := 0
	for _, b := range f.Blobs {
		var id blobs.ID
		var err error
		switch b.Kind {
		case "put":
			s := seeds["put"][i]
			i++
			id, err = bl.Put(ctx, content(s[0], s[1]))
		case "blockSize1000":
			id, err = small.Put(ctx, content(6, 10000))
		case "uneven":
			data := content(7, 150000)
			w := bl.NewWriter()
			cuts := []int{0, 10, 70000, 70001, 140000, 150000}
			for j := 1; j < len(cuts); j++ {
				if err := w.WriteBlock(data[cuts[j-1]:cuts[j]]); err != nil {
					t.Fatal(err)
				}
			}
			err = w.Close()
			id = w.ID()
		case "blockMap":
			w := bl.NewWriterWith(ctx, blobs.WriterOptions{BlockMap: true})
			if _, err := w.Write(content(8, 140000)); err != nil {
				t.Fatal(err)
			}
			err = w.Close()
			id = w.ID()
		case "dedup":
			prev := f.Blobs[len(f.Blobs)-2].ID
			w := bl.NewWriterWith(ctx, blobs.WriterOptions{Dedup: true, Previous: &prev})
			if _, err := w.Write(append(content(8, 65536), content(9, 74464)...)); err != nil {
				t.Fatal(err)
			}
			err = w.Close()
			id = w.ID()
		default:
			t.Fatalf("unknown kind %q", b.Kind)
		}
		if err != nil {
			t.Fatal(err)
		}
		if id != b.ID {
			t.Errorf("%s: id %+v, Node wrote %+v", b.Kind, id, b.ID)
		}
		wantJSON, _ := json.Marshal(b.ID)
		if gotJSON, _ := json.Marshal(id); !bytes.Equal(gotJSON, wantJSON) {
			t.Errorf("%s: id JSON %s, want %s", b.Kind, gotJSON, wantJSON)
		}
	}
	got := core.Blocks()
	for j, b := range got {
		if hex.EncodeToString(b) != f.Blocks[j] {
			t.Fatalf("block %d differs", j)
		}
	}
	if len(got) != len(f.Blocks) {
		t.Fatalf("wrote %d blocks, Node wrote %d", len(got), len(f.Blocks))
	}
}

// Node's id JSON (from BlobWriteStream) puts byteOffset second.
func TestIDJSONOrder(t *testing.T) {
	id := blobs.ID{BlockOffset: 1, BlockLength: 2, ByteOffset: 3, ByteLength: 4}
	b, err := json.Marshal(id)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"blockOffset":1,"byteOffset":3,"blockLength":2,"byteLength":4}`; string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
	id.BlockMap = true
	b, _ = json.Marshal(id)
	var back blobs.ID
	if err := json.Unmarshal(b, &back); err != nil || back != id {
		t.Fatalf("round trip %s: %+v %v", b, back, err)
	}
	for _, bad := range []string{`{}`, `{"blockOffset":1,"byteOffset":3,"blockLength":2}`, `{"blockOffset":-1,"byteOffset":3,"blockLength":2,"byteLength":4}`, `[]`, `{"blockOffset":1e300,"byteOffset":3,"blockLength":2,"byteLength":4}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
}

// A range read fetches only the blocks covering it.
func TestRangeFetchesOnlyCoveringBlocks(t *testing.T) {
	ctx := context.Background()
	core := memcore.New()
	bl := blobs.New(core, &blobs.Options{BlockSize: 100})
	if _, err := bl.Put(ctx, content(1, 50)); err != nil {
		t.Fatal(err)
	}
	data := content(2, 1050)
	id, err := bl.Put(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	if id.BlockOffset != 1 || id.BlockLength != 11 || id.ByteOffset != 50 {
		t.Fatalf("id %+v", id)
	}
	cases := []struct {
		off, n int
		blocks int64
	}{
		{0, 1, 1}, {99, 2, 2}, {100, 100, 1}, {150, 300, 4}, {1000, 50, 1}, {1049, 1, 1}, {0, 1050, 11},
	}
	for _, c := range cases {
		r := bl.NewReader(ctx, id)
		before := core.Gets.Load()
		buf := make([]byte, c.n)
		if _, err := r.ReadAt(buf, int64(c.off)); err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		if !bytes.Equal(buf, data[c.off:c.off+c.n]) {
			t.Fatalf("%+v: wrong bytes", c)
		}
		if got := core.Gets.Load() - before; got != c.blocks {
			t.Errorf("%+v: fetched %d blocks, want %d", c, got, c.blocks)
		}
	}
	// Reading past the end reports io.EOF with the bytes there are.
	r := bl.NewReader(ctx, id)
	buf := make([]byte, 10)
	n, err := r.ReadAt(buf, 1045)
	if n != 5 || err != io.EOF || !bytes.Equal(buf[:5], data[1045:]) {
		t.Fatalf("ReadAt past end: %d %v", n, err)
	}
	// Seek + Read.
	if _, err := r.Seek(-10, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(rest, data[1040:]) {
		t.Fatalf("read after seek: %v", err)
	}
}

// A blob whose blocks are not the reader's block size is still read
// correctly on a core that cannot seek (blocks are then learnt in order).
func TestForeignBlockSizeWithoutSeeker(t *testing.T) {
	ctx := context.Background()
	core := memcore.New()
	w := blobs.New(core, &blobs.Options{BlockSize: 300})
	data := content(3, 1000)
	id, err := w.Put(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	r := blobs.New(core, &blobs.Options{BlockSize: 256})
	for _, off := range []int{0, 299, 300, 600, 999, 17} {
		buf := make([]byte, min(50, 1000-off))
		if _, err := r.NewReader(ctx, id).ReadAt(buf, int64(off)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, data[off:off+len(buf)]) {
			t.Fatalf("offset %d: wrong bytes", off)
		}
	}
}

// Blocks shorter than the id claims are an error, not silent truncation.
func TestCorruptBlob(t *testing.T) {
	ctx := context.Background()
	core := memcore.FromBlocks([][]byte{make([]byte, 10), make([]byte, 3)})
	bl := blobs.New(core, &blobs.Options{BlockSize: 10})
	if _, err := bl.Get(ctx, blobs.ID{BlockOffset: 0, BlockLength: 2, ByteLength: 15}); err == nil {
		t.Fatal("short blob read without error")
	}
	if _, err := bl.Get(ctx, blobs.ID{BlockOffset: 1, BlockLength: 5, ByteLength: 40}); err == nil {
		t.Fatal("blob past the core read without error")
	}
}

func BenchmarkReadAt64K(b *testing.B) {
	ctx := context.Background()
	core := memcore.New()
	bl := blobs.New(core, nil)
	data := content(1, 8<<20)
	id, err := bl.Put(ctx, data)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	r := bl.NewReader(ctx, id)
	for i := 0; b.Loop(); i++ {
		off := int64(i*4099) % int64(len(data)-len(buf))
		if _, err := r.ReadAt(buf, off); err != nil {
			b.Fatal(err)
		}
	}
}

// offsetCore is a seekCore that also knows where each block starts, as a
// Hypercore does from a block's proof; it counts the Seeks (round trips to a
// peer in a real core).
type offsetCore struct {
	seekCore
	seeks int
}

func (o *offsetCore) Seek(ctx context.Context, off uint64) (uint64, uint64, error) {
	o.seeks++
	return o.seekCore.Seek(ctx, off)
}

func (o *offsetCore) BlockOffset(index uint64) (uint64, bool) {
	var at uint64
	for i, l := range o.lengths {
		if uint64(i) == index {
			return at, true
		}
		at += l
	}
	return 0, false
}

// Random reads of a blob written with the reader's block size guess each
// block's position and check it, with no Seek; a blob whose blocks lie
// about that (one of the guessed length at another offset) is still read
// right, through Seeks.
func TestRandomReadsGuessAndCheck(t *testing.T) {
	ctx := context.Background()
	for name, sizes := range map[string][]int{
		"uniform":    {256, 256, 256, 100},
		"misleading": {128, 256, 384}, // 768 bytes in 3 blocks fits the arithmetic; block 1 has 256 bytes but starts at 128
	} {
		t.Run(name, func(t *testing.T) {
			mc := memcore.New()
			var data []byte
			var lengths []uint64
			for i, n := range sizes {
				b := content(i+1, n)
				data = append(data, b...)
				lengths = append(lengths, uint64(n))
				if _, err := mc.Append(b); err != nil {
					t.Fatal(err)
				}
			}
			core := &offsetCore{seekCore: seekCore{Core: mc, lengths: lengths}}
			id := blobs.ID{BlockOffset: 0, BlockLength: uint64(len(sizes)), ByteOffset: 0, ByteLength: uint64(len(data))}
			r := blobs.New(core, &blobs.Options{BlockSize: 256})
			for _, off := range []int{300, 10, 700, 129, 256, 0} {
				if off >= len(data) {
					continue
				}
				buf := make([]byte, min(40, len(data)-off))
				if _, err := r.NewReader(ctx, id).ReadAt(buf, int64(off)); err != nil {
					t.Fatalf("offset %d: %v", off, err)
				}
				if !bytes.Equal(buf, data[off:off+len(buf)]) {
					t.Fatalf("offset %d: wrong bytes", off)
				}
			}
			if name == "uniform" && core.seeks != 0 {
				t.Errorf("%d seeks for a blob of the reader's block size", core.seeks)
			}
			if name == "misleading" && core.seeks == 0 {
				t.Error("no seek for blocks of other sizes: the guess was not checked")
			}
		})
	}
}

// gatedCore holds every Get until n of them are waiting at once, so a
// test using it finishes only if that many reads fetch concurrently (a
// reader that fetched one block at a time would hang it).
type gatedCore struct {
	*offsetCore
	n       int
	mu      sync.Mutex
	waiting int
	open    chan struct{}
	entered chan struct{} // if set, gets a value as each Get starts waiting
}

func (g *gatedCore) Get(ctx context.Context, index uint64) ([]byte, error) {
	g.mu.Lock()
	g.waiting++
	if g.waiting == g.n {
		close(g.open)
	}
	g.mu.Unlock()
	if g.entered != nil {
		g.entered <- struct{}{}
	}
	select {
	case <-g.open:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.offsetCore.Get(ctx, index)
}

// Concurrent ReadAt calls on one Reader fetch their blocks at the same
// time, each still checked, and return the right bytes.
func TestConcurrentReadsFetchTogether(t *testing.T) {
	ctx := context.Background()
	mc := memcore.New()
	const blocks, bs = 8, 256
	var data []byte
	var lengths []uint64
	for i := range blocks {
		b := content(i+1, bs)
		data = append(data, b...)
		lengths = append(lengths, bs)
		if _, err := mc.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	core := &gatedCore{offsetCore: &offsetCore{seekCore: seekCore{Core: mc, lengths: lengths}}, n: blocks, open: make(chan struct{})}
	id := blobs.ID{BlockOffset: 0, BlockLength: blocks, ByteOffset: 0, ByteLength: uint64(len(data))}
	r := blobs.New(core, &blobs.Options{BlockSize: bs}).NewReader(ctx, id)
	var wg sync.WaitGroup
	errs := make([]error, blocks)
	for i := range blocks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			off := i*bs + 10
			buf := make([]byte, 100)
			if _, err := r.ReadAt(buf, int64(off)); err != nil {
				errs[i] = err
			} else if !bytes.Equal(buf, data[off:off+100]) {
				errs[i] = fmt.Errorf("offset %d: wrong bytes", off)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if core.seeks != 0 {
		t.Errorf("%d seeks for a blob of the reader's block size", core.seeks)
	}
}

// ReadAtContext gives up on a block it waits for when its context ends,
// whatever the reader's own context.
func TestReadAtContextEnds(t *testing.T) {
	mc := memcore.New()
	data := content(1, 256)
	if _, err := mc.Append(data); err != nil {
		t.Fatal(err)
	}
	core := &gatedCore{offsetCore: &offsetCore{seekCore: seekCore{Core: mc, lengths: []uint64{256}}}, n: 2,
		open: make(chan struct{}), entered: make(chan struct{}, 1)}
	id := blobs.ID{BlockOffset: 0, BlockLength: 1, ByteOffset: 0, ByteLength: 256}
	r := blobs.New(core, &blobs.Options{BlockSize: 256}).NewReader(context.Background(), id)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-core.entered
		cancel()
	}()
	if _, err := r.ReadAtContext(ctx, make([]byte, 10), 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}
