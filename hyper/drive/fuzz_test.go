package drive

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"strings"
	"testing"

	"github.com/hyperos/hyperos/hyper/bee/memcore"
)

func FuzzDecodeValue(f *testing.F) {
	f.Add([]byte(`{"executable":false,"linkname":null,"blob":{"blockOffset":0,"byteOffset":0,"blockLength":1,"byteLength":12},"metadata":null}`))
	f.Add([]byte(`{"executable":1,"linkname":"../x","blob":null,"metadata":{"a":[1,2e30]}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := DecodeValue(b)
		if err != nil {
			return
		}
		enc, err := v.Encode()
		if err != nil {
			return // e.g. a linkname that is not UTF-8
		}
		if !json.Valid(enc) {
			t.Fatalf("encoded entry is not JSON: %s", enc)
		}
		back, err := DecodeValue(enc)
		if err != nil {
			t.Fatalf("re-encoded entry does not decode: %v (%s)", err, enc)
		}
		if back.Executable != v.Executable || back.Linkname != v.Linkname || (back.Blob == nil) != (v.Blob == nil) || (v.Blob != nil && *back.Blob != *v.Blob) {
			t.Fatalf("round trip changed %+v to %+v", v, back)
		}
		again, err := back.Encode()
		if err != nil || string(again) != string(enc) {
			t.Fatalf("encoding is not stable: %s vs %s (%v)", enc, again, err)
		}
	})
}

func FuzzNormalizeJSON(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[true,null,"x"],"2":{"z":1e21}}`, `-0`, `"\u2028"`, `[1.5e-7, 123456789012345680000]`, `{"a":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := normalizeJSON(b)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("%q normalised to invalid JSON %q", b, out)
		}
		again, err := normalizeJSON(out)
		if err != nil || string(again) != string(out) {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", b, out, again, err)
		}
	})
}

func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/a/b", "a\\b/../c", "c:/x", "http://h/x", "./.", "/ñ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := NormalizePath(s)
		if err != nil {
			return
		}
		if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//") || strings.Contains(p, "\\") {
			t.Fatalf("%q normalised to %q", s, p)
		}
		for _, n := range strings.Split(p[1:], "/") {
			if n == "." || n == ".." {
				t.Fatalf("%q normalised to %q", s, p)
			}
		}
		if again, err := NormalizePath(p); err != nil || again != p {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", s, p, again, err)
		}
	})
}

// FuzzDrive reads a drive whose db blocks are arbitrary: every listing
// and lookup must end with a result or an error.
func FuzzDrive(f *testing.F) {
	fx := loadFixture(f)
	var seed []byte
	for _, h := range fx.DBBlocks[1:8] {
		b, _ := hex.DecodeString(h)
		seed = append(seed, byte(len(b)))
		seed = append(seed, b...)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		db := memcore.New()
		db.Append([]byte("\x0a\x08hyperbee\x12\x00"))
		for len(data) > 0 && db.Length() < 30 {
			n := min(int(data[0]), len(data)-1)
			db.Append(data[1 : 1+n])
			data = data[1+n:]
		}
		bl := memcore.FromBlocks([][]byte{[]byte("hello world\n"), make([]byte, 100)})
		ctx := context.Background()
		d := New(db, bl, nil)
		d.Readdir(ctx, "/")
		d.List(ctx, "/", true)
		d.List(ctx, "/", false)
		d.Resolve(ctx, "/hello.txt")
		d.Get(ctx, "/README.md")
		d.Diff(ctx, 2, "/")
		fsys := d.FS(ctx)
		n := 0
		fs.WalkDir(fsys, ".", func(p string, de fs.DirEntry, err error) error {
			if n++; n > 1000 {
				return fs.SkipAll
			}
			if err == nil && !de.IsDir() {
				fs.ReadFile(fsys, p)
			}
			return nil
		})
	})
}
