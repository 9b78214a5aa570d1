package flat

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"
)

// fixture is produced by hyper/testdata/node/core-flat.js from the real
// flat-tree package, so these tests pin our math to Node's.
type fixture struct {
	Indexes []struct {
		Index, Depth, Offset, Parent, Sibling uint64
		LeftChild, RightChild                 int64
		Spans                                 [2]uint64
		Count, CountLeaves                    uint64
	}
	FullRoots []struct {
		Length uint64
		Roots  []uint64
	}
	Iterators []struct {
		Start uint64
		Steps []struct {
			Op                    string
			Ret                   uint64
			Index, Offset, Factor uint64
			Contains              []bool
		}
	}
	Walks []struct {
		Length uint64
		Roots  []uint64
	}
}

func loadFixture(t *testing.T) fixture {
	t.Helper()
	b, err := os.ReadFile("testdata/flat.json")
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Indexes) == 0 || len(f.Iterators) == 0 {
		t.Fatal("empty fixture")
	}
	return f
}

func TestIndexFunctionsMatchNode(t *testing.T) {
	f := loadFixture(t)
	for _, c := range f.Indexes {
		i := c.Index
		check := func(name string, got, want uint64) {
			t.Helper()
			if got != want {
				t.Errorf("%s(%d) = %d, want %d", name, i, got, want)
			}
		}
		check("Depth", Depth(i), c.Depth)
		check("Offset", Offset(i), c.Offset)
		check("Parent", Parent(i), c.Parent)
		check("Sibling", Sibling(i), c.Sibling)
		l, r := Spans(i)
		check("LeftSpan", l, c.Spans[0])
		check("RightSpan", r, c.Spans[1])
		check("Count", Count(i), c.Count)
		check("CountLeaves", CountLeaves(i), c.CountLeaves)
		check("Index", Index(c.Depth, c.Offset), i)
		lc, ok := LeftChild(i)
		if ok != (c.LeftChild >= 0) || (ok && lc != uint64(c.LeftChild)) {
			t.Errorf("LeftChild(%d) = %d,%v want %d", i, lc, ok, c.LeftChild)
		}
		rc, ok := RightChild(i)
		if ok != (c.RightChild >= 0) || (ok && rc != uint64(c.RightChild)) {
			t.Errorf("RightChild(%d) = %d,%v want %d", i, rc, ok, c.RightChild)
		}
	}
}

func TestFullRootsMatchNode(t *testing.T) {
	f := loadFixture(t)
	for _, c := range f.FullRoots {
		got := FullRoots(2 * c.Length)
		if len(got) == 0 && len(c.Roots) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, c.Roots) {
			t.Errorf("FullRoots(2*%d) = %v, want %v", c.Length, got, c.Roots)
		}
	}
	for _, w := range f.Walks {
		var got []uint64
		for it := NewIterator(0); it.FullRoot(2 * w.Length); it.NextTree() {
			got = append(got, it.Index)
		}
		if !reflect.DeepEqual(got, w.Roots) {
			t.Errorf("FullRoot walk for %d = %v, want %v", w.Length, got, w.Roots)
		}
	}
	if FullRoots(3) != nil {
		t.Error("odd index must yield nil")
	}
}

func TestIteratorMatchesNode(t *testing.T) {
	f := loadFixture(t)
	probes := []uint64{0, 3, 7, 12, 30}
	for _, c := range f.Iterators {
		it := NewIterator(c.Start)
		for n, s := range c.Steps {
			var ret uint64
			switch s.Op {
			case "parent":
				ret = it.Parent()
			case "sibling":
				ret = it.Sibling()
			case "leftChild":
				ret = it.LeftChild()
			case "rightChild":
				ret = it.RightChild()
			case "next":
				ret = it.Next()
			case "prev":
				ret = it.Prev()
			case "rightSpan":
				ret = it.RightSpan()
			case "leftSpan":
				ret = it.LeftSpan()
			case "nextTree":
				ret = it.NextTree()
			default:
				t.Fatalf("unknown op %q", s.Op)
			}
			if ret != s.Ret || it.Index != s.Index || it.Offset != s.Offset || it.Factor != s.Factor {
				t.Fatalf("start %d step %d %s: got ret=%d %+v want ret=%d idx=%d off=%d fac=%d",
					c.Start, n, s.Op, ret, *it, s.Ret, s.Index, s.Offset, s.Factor)
			}
			for k, p := range probes {
				if it.Contains(p) != s.Contains[k] {
					t.Fatalf("start %d step %d: Contains(%d) = %v", c.Start, n, p, !s.Contains[k])
				}
			}
		}
	}
}
