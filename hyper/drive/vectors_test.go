package drive

import (
	"compress/gzip"
	"encoding/json"
	"os"
	"testing"
)

// Path and JSON vectors computed by Node (unix-path-resolve and
// JSON.stringify(JSON.parse(s))) in drive-drive.js.
type vectors struct {
	Paths []struct {
		In       string `json:"in"`
		Resolved struct {
			Out   *string `json:"out"`
			Error string  `json:"error"`
		} `json:"resolved"`
		FromLink struct {
			Out   *string `json:"out"`
			Error string  `json:"error"`
		} `json:"fromLink"`
	} `json:"paths"`
	JSON []struct {
		In  string `json:"in"`
		Out string `json:"out"`
	} `json:"json"`
}

func loadVectors(t *testing.T) *vectors {
	fh, err := os.Open("testdata/drive.json.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	zr, err := gzip.NewReader(fh)
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.NewDecoder(zr).Decode(&v); err != nil {
		t.Fatal(err)
	}
	if len(v.Paths) == 0 || len(v.JSON) == 0 {
		t.Fatal("no vectors in the fixture")
	}
	return &v
}

func TestPathVectors(t *testing.T) {
	for _, p := range loadVectors(t).Paths {
		got, err := resolvePath("/", p.In)
		switch {
		case p.Resolved.Out == nil && err == nil:
			t.Errorf("resolve(/, %q) = %q, Node failed: %s", p.In, got, p.Resolved.Error)
		case p.Resolved.Out != nil && (err != nil || got != *p.Resolved.Out):
			t.Errorf("resolve(/, %q) = %q %v, want %q", p.In, got, err, *p.Resolved.Out)
		}
		got, err = resolvePath("/a/b/link", p.In)
		switch {
		case p.FromLink.Out == nil && err == nil:
			t.Errorf("resolve(/a/b/link, %q) = %q, Node failed: %s", p.In, got, p.FromLink.Error)
		case p.FromLink.Out != nil && (err != nil || got != *p.FromLink.Out):
			t.Errorf("resolve(/a/b/link, %q) = %q %v, want %q", p.In, got, err, *p.FromLink.Out)
		}
		// NormalizePath is the same, except that the root is refused.
		n, err := NormalizePath(p.In)
		if p.Resolved.Out != nil && *p.Resolved.Out == "/" {
			if err == nil {
				t.Errorf("NormalizePath(%q) = %q, want an error for the root", p.In, n)
			}
		} else if p.Resolved.Out != nil && n != *p.Resolved.Out {
			t.Errorf("NormalizePath(%q) = %q %v", p.In, n, err)
		}
	}
	if _, err := NormalizePath("a\xffb"); err == nil {
		t.Error("invalid UTF-8 accepted")
	}
}

func TestJSONVectors(t *testing.T) {
	for _, v := range loadVectors(t).JSON {
		got, err := normalizeJSON([]byte(v.In))
		if err != nil {
			t.Errorf("%s: %v", v.In, err)
			continue
		}
		if string(got) != v.Out {
			t.Errorf("%s: got %s, want %s", v.In, got, v.Out)
		}
	}
	for _, bad := range []string{"", "{", `{"a":}`, "[1,]", "1 2", "nul", `{"a":1}}`} {
		if _, err := normalizeJSON([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
