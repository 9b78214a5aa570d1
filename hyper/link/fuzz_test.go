package link

import (
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that every accepted link is
// canonical (formats and re-parses to itself) and never carries a ".."
// segment or a relative path.
func FuzzParse(f *testing.F) {
	f.Add("hyper://98qrn4kgun53pokagzen3ephpa3zd9niyrngnhxkahhi1naamqay/a/b")
	f.Add("dat://f9dc41694698b796c15835d02ca1bc6e3371fc5501046171eac739590b185bb0/x%20y")
	f.Add("hyper://98qrn4kgun53pokagzen3ephpa3zd9niyrngnhxkahhi1naamqay/../a")
	f.Add("hyper://yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyn")
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Parse(s)
		if err != nil {
			return
		}
		if !strings.HasPrefix(l.Path, "/") {
			t.Fatalf("relative path %q from %q", l.Path, s)
		}
		for _, seg := range strings.Split(l.Path, "/") {
			if seg == ".." || seg == "." {
				t.Fatalf("path %q from %q has a dot segment", l.Path, s)
			}
		}
		back, err := Parse(l.String())
		if err != nil {
			t.Fatalf("Parse(%q) of formatted %q: %v", l.String(), s, err)
		}
		if back != l {
			t.Fatalf("round trip %q -> %+v -> %+v", s, l, back)
		}
		if k, err := ParseKey(l.Key.Hex()); err != nil || k != l.Key {
			t.Fatalf("hex round trip: %v", err)
		}
	})
}

// FuzzParseKey checks that accepted keys round-trip through both spellings.
func FuzzParseKey(f *testing.F) {
	f.Add("98qrn4kgun53pokagzen3ephpa3zd9niyrngnhxkahhi1naamqay")
	f.Add("f9dc41694698b796c15835d02ca1bc6e3371fc5501046171eac739590b185bb0")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			return
		}
		if !strings.EqualFold(k.String(), s) && !strings.EqualFold(k.Hex(), s) {
			t.Fatalf("ParseKey(%q) = %s / %s, neither matches", s, k.String(), k.Hex())
		}
	})
}
