package drive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/hyperos/hyperos/internal/fixture"

	"github.com/hyperos/hyperos/hyper/bee/memcore"
	"github.com/hyperos/hyperos/hyper/core/merkle"
	"github.com/hyperos/hyperos/hyper/core/wire"
)

// Fixtures come from hyper/testdata/node/drive-drive.js.

type fixtureEntry struct {
	Seq   uint64          `json:"seq"`
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

type fixtureOp struct {
	Op          string      `json:"op"`
	Path        string      `json:"path"`
	Size        int         `json:"size"`
	Seed        int         `json:"seed"`
	Executable  bool        `json:"executable"`
	Metadata    *string     `json:"metadata"`
	Target      string      `json:"target"`
	PatchAt     int         `json:"patchAt"`
	Version     uint64      `json:"version"`
	BlobsLength uint64      `json:"blobsLength"`
	Ops         []fixtureOp `json:"ops"`
}

type driveFixture struct {
	Key           string      `json:"key"`
	Manifest      string      `json:"manifest"`
	BlobsKey      string      `json:"blobsKey"`
	BlobsManifest string      `json:"blobsManifest"`
	DBTreeHash    string      `json:"dbTreeHash"`
	DBSignature   string      `json:"dbSignature"`
	BlobsTreeHash string      `json:"blobsTreeHash"`
	BlobsSig      string      `json:"blobsSignature"`
	Ops           []fixtureOp `json:"ops"`
	Queries       []struct {
		Version uint64 `json:"version"`
		Entries []struct {
			Path   string        `json:"path"`
			Entry  *fixtureEntry `json:"entry"`
			Follow struct {
				Entry *fixtureEntry `json:"entry"`
				Error string        `json:"error"`
			} `json:"follow"`
		} `json:"entries"`
		Files []struct {
			Path   string `json:"path"`
			Size   int    `json:"size"`
			SHA256 string `json:"sha256"`
		} `json:"files"`
		Lists []struct {
			Folder    string         `json:"folder"`
			Recursive bool           `json:"recursive"`
			Entries   []fixtureEntry `json:"entries"`
		} `json:"lists"`
		Readdirs []struct {
			Folder string   `json:"folder"`
			Names  []string `json:"names"`
		} `json:"readdirs"`
	} `json:"queries"`
	Diffs []struct {
		From    uint64 `json:"from"`
		Version uint64 `json:"version"`
		Folder  string `json:"folder"`
		Entries []struct {
			Left  *fixtureEntry `json:"left"`
			Right *fixtureEntry `json:"right"`
		} `json:"entries"`
	} `json:"diffs"`
	DBBlocks   []string `json:"dbBlocks"`
	BlobBlocks []string `json:"blobBlocks"`
}

func loadFixture(t testing.TB) *driveFixture {
	t.Helper()
	var f driveFixture
	fixture.LoadGzipJSON(t, "testdata/drive.json.gz", &f)
	return &f
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	return fixture.Unhex(t, s)
}

func coreOf(t testing.TB, hs []string) *memcore.Core {
	var blocks [][]byte
	for _, h := range hs {
		blocks = append(blocks, unhex(t, h))
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

func sameEntry(t *testing.T, what string, got *Entry, want *fixtureEntry) {
	t.Helper()
	if (got == nil) != (want == nil) {
		t.Errorf("%s: got %+v, want %+v", what, got, want)
		return
	}
	if got == nil {
		return
	}
	wv, err := DecodeValue(want.Value)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != want.Seq || got.Key != want.Key || got.Value.Executable != wv.Executable || got.Value.Linkname != wv.Linkname {
		t.Errorf("%s: got {%d %s %+v}, want {%d %s %s}", what, got.Seq, got.Key, got.Value, want.Seq, want.Key, want.Value)
		return
	}
	if (got.Value.Blob == nil) != (wv.Blob == nil) || (got.Value.Blob != nil && *got.Value.Blob != *wv.Blob) {
		t.Errorf("%s: blob %+v, want %+v", what, got.Value.Blob, wv.Blob)
	}
	gm, wm := normOrNull(t, got.Value.Metadata), normOrNull(t, wv.Metadata)
	if gm != wm {
		t.Errorf("%s: metadata %s, want %s", what, gm, wm)
	}
}

func normOrNull(t *testing.T, m json.RawMessage) string {
	if m == nil {
		return "null"
	}
	b, err := normalizeJSON(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func checkQueries(t *testing.T, d *Drive, f *driveFixture) {
	ctx := context.Background()
	for _, q := range f.Queries {
		c := d.Checkout(q.Version)
		for _, e := range q.Entries {
			got, err := c.Entry(ctx, e.Path)
			if err != nil {
				t.Fatalf("v%d entry %q: %v", q.Version, e.Path, err)
			}
			sameEntry(t, "entry "+e.Path, got, e.Entry)
			fol, err := c.Resolve(ctx, e.Path)
			if e.Follow.Error != "" {
				if !errors.Is(err, ErrRecursiveSymlink) {
					t.Errorf("v%d follow %q: got %v, want %s", q.Version, e.Path, err, e.Follow.Error)
				}
				continue
			}
			if err != nil {
				t.Fatalf("v%d follow %q: %v", q.Version, e.Path, err)
			}
			sameEntry(t, "follow "+e.Path, fol, e.Follow.Entry)
		}
		for _, file := range q.Files {
			data, err := c.Get(ctx, file.Path)
			if err != nil {
				t.Fatalf("v%d get %q: %v", q.Version, file.Path, err)
			}
			if len(data) != file.Size || sum(data) != file.SHA256 {
				t.Errorf("v%d get %q: %d bytes %s, want %d %s", q.Version, file.Path, len(data), sum(data), file.Size, file.SHA256)
			}
			r, err := c.Open(ctx, file.Path)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := io.CopyBuffer(&buf, struct{ io.Reader }{r}, make([]byte, 1000)); err != nil {
				t.Fatal(err)
			}
			if sum(buf.Bytes()) != file.SHA256 {
				t.Errorf("v%d stream %q differs", q.Version, file.Path)
			}
		}
		for _, l := range q.Lists {
			got, err := c.List(ctx, l.Folder, l.Recursive)
			if err != nil {
				t.Fatalf("v%d list %q: %v", q.Version, l.Folder, err)
			}
			if len(got) != len(l.Entries) {
				t.Errorf("v%d list %q recursive=%v: %d entries, want %d", q.Version, l.Folder, l.Recursive, len(got), len(l.Entries))
				continue
			}
			for i := range got {
				sameEntry(t, "list "+l.Folder, &got[i], &l.Entries[i])
			}
		}
		for _, r := range q.Readdirs {
			got, err := c.Readdir(ctx, r.Folder)
			if err != nil {
				t.Fatalf("v%d readdir %q: %v", q.Version, r.Folder, err)
			}
			if len(got) != len(r.Names) {
				t.Errorf("v%d readdir %q: %q, want %q", q.Version, r.Folder, got, r.Names)
				continue
			}
			for i := range got {
				if got[i] != r.Names[i] {
					t.Errorf("v%d readdir %q: %q, want %q", q.Version, r.Folder, got, r.Names)
					break
				}
			}
		}
	}
}

func TestReadNodeWrittenDrive(t *testing.T) {
	f := loadFixture(t)
	d := New(coreOf(t, f.DBBlocks), coreOf(t, f.BlobBlocks), nil)
	h, err := d.Bee().Header(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if h.Protocol != "hyperbee" || h.Metadata == nil || h.Metadata.ContentFeed != nil || h.Metadata.UserData != nil {
		t.Fatalf("header %+v", h)
	}
	checkQueries(t, d, f)
}

func TestBlobsKeyFromManifest(t *testing.T) {
	f := loadFixture(t)
	m, err := wire.UnmarshalManifest(unhex(t, f.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	key, err := merkle.ManifestHash(m)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(key[:]) != f.Key {
		t.Fatalf("db key %x, want %s", key, f.Key)
	}
	bm, err := wire.MarshalManifest(BlobsManifest(m, key))
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(bm) != f.BlobsManifest {
		t.Fatalf("blobs manifest %x, want %s", bm, f.BlobsManifest)
	}
	bk, err := BlobsKey(context.Background(), coreOf(t, f.DBBlocks), key, m)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(bk[:]) != f.BlobsKey {
		t.Fatalf("blobs key %x, want %s", bk, f.BlobsKey)
	}
	// A compat db (no manifest) without a contentFeed has no blobs key.
	if _, err := BlobsKey(context.Background(), coreOf(t, f.DBBlocks), key, nil); !errors.Is(err, ErrNoBlobsKey) {
		t.Fatalf("compat db: %v", err)
	}
	// A contentFeed in the header wins.
	db := memcore.New()
	cf := bytes.Repeat([]byte{7}, 32)
	w := New(db, memcore.New(), &Options{ContentFeed: cf})
	if err := w.Put(context.Background(), "/x", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	bk, err = BlobsKey(context.Background(), db, key, m)
	if err != nil || !bytes.Equal(bk[:], cf) {
		t.Fatalf("contentFeed key %x %v", bk, err)
	}
}

// The single-file drive of the shared reference probe (a different
// script and primary key).
func TestReferenceProbe(t *testing.T) {
	raw, err := os.ReadFile("/work/shared/reference/hypercore-probes/probe-out.json")
	if err != nil {
		t.Skip("shared reference probe not present:", err)
	}
	var p struct {
		DriveKeyHex            string   `json:"driveKeyHex"`
		DBManifestEncodedHex   string   `json:"dbManifestEncodedHex"`
		BlobsKeyHex            string   `json:"blobsKeyHex"`
		BlobsManifestEncodeHex string   `json:"blobsManifestEncodedHex"`
		DBBlocksHex            []string `json:"dbBlocksHex"`
		BlobsBlock0Hex         string   `json:"blobsBlock0Hex"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m, err := wire.UnmarshalManifest(unhex(t, p.DBManifestEncodedHex))
	if err != nil {
		t.Fatal(err)
	}
	bk, err := BlobsKey(ctx, coreOf(t, p.DBBlocksHex), [32]byte(unhex(t, p.DriveKeyHex)), m)
	if err != nil || hex.EncodeToString(bk[:]) != p.BlobsKeyHex {
		t.Fatalf("blobs key %x %v, want %s", bk, err, p.BlobsKeyHex)
	}
	d := New(coreOf(t, p.DBBlocksHex), coreOf(t, []string{p.BlobsBlock0Hex}), nil)
	data, err := d.Get(ctx, "hello.txt")
	if err != nil || string(data) != "hello world\n" {
		t.Fatalf("get: %q %v", data, err)
	}
	// Writing the same file gives the same blocks.
	db, bl := memcore.New(), memcore.New()
	w := New(db, bl, nil)
	if err := w.Put(ctx, "/hello.txt", []byte("hello world\n"), nil); err != nil {
		t.Fatal(err)
	}
	for i, b := range db.Blocks() {
		if hex.EncodeToString(b) != p.DBBlocksHex[i] {
			t.Fatalf("db block %d: %x, want %s", i, b, p.DBBlocksHex[i])
		}
	}
}

func replay(t *testing.T, ctx context.Context, w interface {
	Put(context.Context, string, []byte, *PutOptions) error
	PutReader(context.Context, string, io.Reader, *PutOptions) error
	Symlink(context.Context, string, string, json.RawMessage) error
	Del(context.Context, string) error
}, op fixtureOp) {
	t.Helper()
	var meta json.RawMessage
	if op.Metadata != nil {
		meta = json.RawMessage(*op.Metadata)
	}
	var err error
	switch op.Op {
	case "put":
		err = w.Put(ctx, op.Path, content(op.Seed, op.Size), &PutOptions{Executable: op.Executable, Metadata: meta})
	case "putDedup":
		data := content(op.Seed, op.Size)
		if op.PatchAt >= 0 {
			data[op.PatchAt] ^= 0xff
		}
		err = w.PutReader(ctx, op.Path, bytes.NewReader(data), &PutOptions{Dedup: true})
	case "symlink":
		err = w.Symlink(ctx, op.Path, op.Target, meta)
	case "del":
		err = w.Del(ctx, op.Path)
	default:
		t.Fatalf("unknown op %q", op.Op)
	}
	if err != nil {
		t.Fatalf("%s %s: %v", op.Op, op.Path, err)
	}
}

func TestWriteSameBlocksAsNode(t *testing.T) {
	f := loadFixture(t)
	ctx := context.Background()
	db, bl := memcore.New(), memcore.New()
	d := New(db, bl, nil)
	for i, op := range f.Ops {
		if op.Op == "batch" {
			b, err := d.Batch()
			if err != nil {
				t.Fatal(err)
			}
			for _, bop := range op.Ops {
				replay(t, ctx, b, bop)
			}
			if err := b.Flush(); err != nil {
				t.Fatal(err)
			}
		} else {
			replay(t, ctx, d, op)
		}
		if d.Version() != op.Version || bl.Length() != op.BlobsLength {
			t.Fatalf("op %d (%s %s): version %d blobs %d, Node had %d %d", i, op.Op, op.Path, d.Version(), bl.Length(), op.Version, op.BlobsLength)
		}
	}
	for name, pair := range map[string]struct {
		got  [][]byte
		want []string
	}{"db": {db.Blocks(), f.DBBlocks}, "blobs": {bl.Blocks(), f.BlobBlocks}} {
		if len(pair.got) != len(pair.want) {
			t.Fatalf("%s: %d blocks, Node wrote %d", name, len(pair.got), len(pair.want))
		}
		for i, b := range pair.got {
			if hex.EncodeToString(b) != pair.want[i] {
				t.Fatalf("%s block %d:\n got %x\nwant %s", name, i, b, pair.want[i])
			}
		}
	}
	checkQueries(t, d, f)
}

func TestDiffLikeNode(t *testing.T) {
	f := loadFixture(t)
	ctx := context.Background()
	d := New(coreOf(t, f.DBBlocks), coreOf(t, f.BlobBlocks), nil)
	if len(f.Diffs) == 0 {
		t.Fatal("no diffs in the fixture")
	}
	for _, w := range f.Diffs {
		from := d
		if w.From != 0 {
			from = d.Checkout(w.From)
		}
		got, err := from.Diff(ctx, w.Version, w.Folder)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(w.Entries) {
			t.Errorf("diff %d..%d %s: %d entries, Node %d", w.From, w.Version, w.Folder, len(got), len(w.Entries))
			continue
		}
		for i := range got {
			sameEntry(t, "diff left", got[i].Left, w.Entries[i].Left)
			sameEntry(t, "diff right", got[i].Right, w.Entries[i].Right)
		}
	}
}
