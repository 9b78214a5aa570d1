package link

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

type nodeFixture struct {
	Encode []struct {
		Key string `json:"key"`
		Z32 string `json:"z32"`
	} `json:"encode"`
	Decode []struct {
		In    string `json:"in"`
		OK    bool   `json:"ok"`
		Key   string `json:"key"`
		Error string `json:"error"`
	} `json:"decode"`
}

func loadFixture(t *testing.T) nodeFixture {
	t.Helper()
	raw, err := os.ReadFile("testdata/node-link.json")
	if err != nil {
		t.Fatal(err)
	}
	var f nodeFixture
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Encode) == 0 || len(f.Decode) == 0 {
		t.Fatal("empty fixture")
	}
	return f
}

func TestNodeEncode(t *testing.T) {
	for _, c := range loadFixture(t).Encode {
		k, err := ParseKey(c.Key)
		if err != nil {
			t.Fatalf("ParseKey(hex %s): %v", c.Key, err)
		}
		if k.String() != c.Z32 {
			t.Errorf("z32(%s) = %s, node %s", c.Key, k.String(), c.Z32)
		}
		if len(c.Z32) != 52 {
			t.Errorf("node z32 length %d", len(c.Z32))
		}
		k2, err := ParseKey(c.Z32)
		if err != nil || k2 != k {
			t.Errorf("ParseKey(%s) = %s, %v", c.Z32, k2.Hex(), err)
		}
		if k.Hex() != c.Key {
			t.Errorf("Hex = %s, want %s", k.Hex(), c.Key)
		}
	}
}

// nonCanonicalZ32 is the one input Node accepts that we refuse on purpose:
// a z32 id whose unused trailing bits are set (see the package doc).
const nonCanonicalZ32 = "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyn"

func TestNodeDecode(t *testing.T) {
	for _, c := range loadFixture(t).Decode {
		k, err := ParseKey(c.In)
		if c.In == nonCanonicalZ32 {
			if !c.OK {
				t.Fatalf("fixture changed: Node now rejects %s", c.In)
			}
			if !errors.Is(err, ErrInvalidKey) {
				t.Errorf("non-canonical z32 accepted: %v", err)
			}
			continue
		}
		if (err == nil) != c.OK {
			t.Errorf("ParseKey(%q): err %v, node ok=%v (%s)", c.In, err, c.OK, c.Error)
			continue
		}
		if err != nil && !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ParseKey(%q) error %v does not wrap ErrInvalidKey", c.In, err)
		}
		if c.OK && k.Hex() != c.Key {
			t.Errorf("ParseKey(%q) = %s, node %s", c.In, k.Hex(), c.Key)
		}
	}
}

func TestParse(t *testing.T) {
	f := loadFixture(t)
	z, h := f.Encode[2].Z32, f.Encode[2].Key
	cases := []struct {
		in, path string
	}{
		{"hyper://" + z, "/"},
		{"hyper://" + z + "/", "/"},
		{"hyper://" + h + "/a/b.txt", "/a/b.txt"},
		{"dat://" + h + "/a/b/", "/a/b"},
		{"HYPER://" + strings.ToUpper(z) + "/x", "/x"},
		{"hyper://" + z + "//a/./b", "/a/b"},
		{"hyper://" + z + "/with%20space/%C3%A9", "/with space/é"},
		{"hyper://" + z + "/100%25", "/100%"},
	}
	for _, c := range cases {
		l, err := Parse(c.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if l.Key.Hex() != h || l.Path != c.path {
			t.Errorf("Parse(%q) = %s %q, want %s %q", c.in, l.Key.Hex(), l.Path, h, c.path)
		}
		// Formatting and parsing again gives the same link.
		l2, err := Parse(l.String())
		if err != nil || l2 != l {
			t.Errorf("round trip of %q via %q = %+v, %v", c.in, l.String(), l2, err)
		}
	}
}

func TestParseRejects(t *testing.T) {
	z := loadFixture(t).Encode[2].Z32
	bad := []string{
		"",
		z,
		"hyper:" + z,
		"http://" + z + "/",
		"hyper://" + z[:51] + "/",
		"hyper://" + z + "/../etc/passwd",
		"hyper://" + z + "/a/../../b",
		"hyper://" + z + "/a/%2e%2e/b",
		"hyper://" + z + "/a%2fb",
		"hyper://" + z + "/a%00b",
		"hyper://" + z + "/a\\b",
		"hyper://" + z + "/a%5cb",
		"hyper://" + z + "/%ff",
		"hyper://" + z + "/%zz",
		"hyper://" + z + "/a?version=3",
		"hyper://" + z + "#frag",
		"hyper://" + z + ":80/",
		"hyper://user@" + z + "/",
		"hyper://" + nonCanonicalZ32 + "/",
	}
	for _, s := range bad {
		if l, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) accepted: %+v", s, l)
		} else if !errors.Is(err, ErrInvalidLink) && !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Parse(%q) error %v wraps neither sentinel", s, err)
		}
	}
}

func TestNewAndString(t *testing.T) {
	var k Key
	k[0] = 1
	l, err := New(k, "images/a b?.tar")
	if err != nil {
		t.Fatal(err)
	}
	if l.Path != "/images/a b?.tar" {
		t.Errorf("path %q", l.Path)
	}
	s := l.String()
	if !strings.HasPrefix(s, "hyper://"+k.String()+"/images/a%20b%3F.tar") {
		t.Errorf("String = %q", s)
	}
	back, err := Parse(s)
	if err != nil || back != l {
		t.Errorf("Parse(String) = %+v, %v", back, err)
	}
	if _, err := New(k, "/a/../b"); err == nil {
		t.Error("New accepted ..")
	}
	if (Link{Key: k}).String() != "hyper://"+k.String()+"/" {
		t.Errorf("empty path formats as %q", Link{Key: k}.String())
	}
}

func TestKeyText(t *testing.T) {
	var k Key
	for i := range k {
		k[i] = byte(i * 7)
	}
	b, err := json.Marshal(map[string]Key{"k": k})
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]Key
	if err := json.Unmarshal(b, &back); err != nil || back["k"] != k {
		t.Fatalf("json round trip: %s %v", b, err)
	}
	if !(Key{}).IsZero() || k.IsZero() {
		t.Error("IsZero")
	}
}
