package bee_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/hyperos/hyperos/internal/fixture"

	"github.com/hyperos/hyperos/hyper/bee"
	"github.com/hyperos/hyperos/hyper/bee/memcore"
)

// The fixtures come from hyper/testdata/node/drive-bee.js, run against the
// pinned Node hyperbee.

type fixtureOp struct {
	Op     string  `json:"op"`
	Key    string  `json:"key"`
	Value  *string `json:"value"`
	Length uint64  `json:"length"`
	Batch  int     `json:"batch"`
	Result *struct {
		Seq   uint64 `json:"seq"`
		Value string `json:"value"`
	} `json:"result"`
}

type fixtureEntry struct {
	Seq   uint64 `json:"seq"`
	Key   string `json:"key"`
	Value string `json:"value"`
}

type fixtureQuery struct {
	Version uint64 `json:"version"`
	Gets    []struct {
		Key    string `json:"key"`
		Result *struct {
			Seq   uint64 `json:"seq"`
			Value string `json:"value"`
		} `json:"result"`
	} `json:"gets"`
	Ranges []struct {
		Range   map[string]any `json:"range"`
		Entries []fixtureEntry `json:"entries"`
	} `json:"ranges"`
}

type fixtureSet struct {
	Ops     []fixtureOp    `json:"ops"`
	Blocks  []string       `json:"blocks"`
	Queries []fixtureQuery `json:"queries"`
	History []struct {
		Opts struct {
			GTE     uint64 `json:"gte"`
			LT      uint64 `json:"lt"`
			Reverse bool   `json:"reverse"`
			Limit   int    `json:"limit"`
		} `json:"opts"`
		Entries []struct {
			Type  string  `json:"type"`
			Seq   uint64  `json:"seq"`
			Key   string  `json:"key"`
			Value *string `json:"value"`
		} `json:"entries"`
	} `json:"history"`
	Diffs []struct {
		Left    uint64         `json:"left"`
		Right   uint64         `json:"right"`
		Range   map[string]any `json:"range"`
		Entries []struct {
			Left  *fixtureEntry `json:"left"`
			Right *fixtureEntry `json:"right"`
		} `json:"entries"`
	} `json:"diffs"`
}

type beeFixture struct {
	Single fixtureSet `json:"single"`
	Batch  fixtureSet `json:"batch"`
	Mixed  fixtureSet `json:"mixed"`
}

func loadFixture(t testing.TB) *beeFixture {
	t.Helper()
	var f beeFixture
	fixture.LoadGzipJSON(t, "testdata/bee.json.gz", &f)
	return &f
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	return fixture.Unhex(t, s)
}

func blocksOf(t testing.TB, hs []string) [][]byte {
	out := make([][]byte, len(hs))
	for i, h := range hs {
		out[i] = unhex(t, h)
	}
	return out
}

func rangeOpts(t testing.TB, m map[string]any) bee.RangeOptions {
	var o bee.RangeOptions
	for k, v := range m {
		switch k {
		case "gt":
			o.GT = unhex(t, v.(string))
		case "gte":
			o.GTE = unhex(t, v.(string))
		case "lt":
			o.LT = unhex(t, v.(string))
		case "lte":
			o.LTE = unhex(t, v.(string))
		case "reverse":
			o.Reverse = v.(bool)
		case "limit":
			o.Limit = int(v.(float64))
		default:
			t.Fatalf("unknown range option %q", k)
		}
	}
	return o
}

// checkQueries runs every recorded get and range against b.
func checkQueries(t *testing.T, b *bee.Bee, queries []fixtureQuery) {
	ctx := context.Background()
	for _, q := range queries {
		snap := b.Checkout(q.Version)
		for _, g := range q.Gets {
			e, err := snap.Get(ctx, unhex(t, g.Key))
			if err != nil {
				t.Fatalf("v%d get %s: %v", q.Version, g.Key, err)
			}
			switch {
			case g.Result == nil && e != nil:
				t.Errorf("v%d get %s: got seq %d, want nothing", q.Version, g.Key, e.Seq)
			case g.Result != nil && e == nil:
				t.Errorf("v%d get %s: got nothing, want seq %d", q.Version, g.Key, g.Result.Seq)
			case g.Result != nil && (e.Seq != g.Result.Seq || hex.EncodeToString(e.Value) != g.Result.Value):
				t.Errorf("v%d get %s: got seq %d value %x, want seq %d value %s", q.Version, g.Key, e.Seq, e.Value, g.Result.Seq, g.Result.Value)
			}
		}
		for _, r := range q.Ranges {
			got, err := snap.List(ctx, rangeOpts(t, r.Range))
			if err != nil {
				t.Fatalf("v%d range %v: %v", q.Version, r.Range, err)
			}
			if len(got) != len(r.Entries) {
				t.Errorf("v%d range %v: got %d entries, want %d", q.Version, r.Range, len(got), len(r.Entries))
				continue
			}
			for i, w := range r.Entries {
				g := got[i]
				if g.Seq != w.Seq || hex.EncodeToString(g.Key) != w.Key || hex.EncodeToString(g.Value) != w.Value {
					t.Errorf("v%d range %v entry %d: got {%d %x %x}, want {%d %s %s}", q.Version, r.Range, i, g.Seq, g.Key, g.Value, w.Seq, w.Key, w.Value)
					break
				}
			}
		}
	}
}

func TestReadNodeWrittenBee(t *testing.T) {
	f := loadFixture(t)
	for name, set := range map[string]fixtureSet{"single": f.Single, "batch": f.Batch, "mixed": f.Mixed} {
		t.Run(name, func(t *testing.T) {
			core := memcore.FromBlocks(blocksOf(t, set.Blocks))
			b := bee.New(core, nil)
			h, err := b.Header(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if h.Protocol != "hyperbee" || h.Metadata != nil {
				t.Fatalf("header = %+v", h)
			}
			checkQueries(t, b, set.Queries)
		})
	}
}

func compareBlocks(t *testing.T, got [][]byte, want []string) {
	t.Helper()
	n := min(len(got), len(want))
	for i := 0; i < n; i++ {
		if hex.EncodeToString(got[i]) != want[i] {
			t.Fatalf("block %d differs:\n got %x\nwant %s", i, got[i], want[i])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("wrote %d blocks, Node wrote %d", len(got), len(want))
	}
}

func opValue(t testing.TB, op fixtureOp) []byte {
	if op.Value == nil {
		t.Fatalf("put without a value")
	}
	return unhex(t, *op.Value)
}

func TestWriteSameBlocksAsNode(t *testing.T) {
	f := loadFixture(t)
	ctx := context.Background()
	core := memcore.New()
	b := bee.New(core, nil)
	for i, op := range f.Single.Ops {
		var err error
		switch op.Op {
		case "put":
			err = b.Put(ctx, unhex(t, op.Key), opValue(t, op))
		case "del":
			err = b.Del(ctx, unhex(t, op.Key))
		}
		if err != nil {
			t.Fatalf("op %d: %v", i, err)
		}
		if core.Length() != op.Length {
			compareBlocks(t, core.Blocks(), f.Single.Blocks[:min(int(op.Length), len(f.Single.Blocks))])
			t.Fatalf("op %d (%s %s): length %d, Node had %d", i, op.Op, op.Key, core.Length(), op.Length)
		}
	}
	compareBlocks(t, core.Blocks(), f.Single.Blocks)
	checkQueries(t, b, f.Single.Queries)
}

func TestBatchSameBlocksAsNode(t *testing.T) {
	f := loadFixture(t)
	for name, set := range map[string]fixtureSet{"batch": f.Batch, "mixed": f.Mixed} {
		t.Run(name, func(t *testing.T) { replayBatches(t, set) })
	}
}

// replayBatches performs ops grouped into batches by their batch number (0
// for single writes), checking reads through each batch against Node's.
func replayBatches(t *testing.T, set fixtureSet) {
	ctx := context.Background()
	core := memcore.New()
	b := bee.New(core, nil)
	var bt *bee.Batch
	cur := 0
	flush := func() {
		if bt != nil {
			if err := bt.Flush(); err != nil {
				t.Fatal(err)
			}
			bt = nil
		}
	}
	model := map[string]string{}
	nodeStale := 0
	for i, op := range set.Ops {
		if op.Batch != cur {
			flush()
			cur = op.Batch
		}
		if op.Batch != 0 && bt == nil {
			bt = b.Batch()
		}
		switch op.Op {
		case "put":
			model[op.Key] = *op.Value
		case "del":
			delete(model, op.Key)
		}
		var err error
		switch {
		case op.Op == "get":
			e, err := bt.Get(ctx, unhex(t, op.Key))
			if err != nil {
				t.Fatal(err)
			}
			want, ok := model[op.Key]
			if (e != nil) != ok || (ok && hex.EncodeToString(e.Value) != want) {
				t.Fatalf("op %d: batch get %s = %+v, want %q", i, op.Key, e, want)
			}
			if (e == nil) != (op.Result == nil) || (e != nil && (e.Seq != op.Result.Seq || hex.EncodeToString(e.Value) != op.Result.Value)) {
				// Node's batch.get can return a deleted key's old
				// value (see Batch.Get); that is the only allowed
				// difference.
				if e != nil || op.Result == nil {
					t.Fatalf("op %d: batch get %s = %+v, Node got %+v", i, op.Key, e, op.Result)
				}
				nodeStale++
			}
		case op.Batch == 0 && op.Op == "put":
			err = b.Put(ctx, unhex(t, op.Key), opValue(t, op))
		case op.Batch == 0:
			err = b.Del(ctx, unhex(t, op.Key))
		case op.Op == "put":
			err = bt.Put(ctx, unhex(t, op.Key), opValue(t, op))
		default:
			err = bt.Del(ctx, unhex(t, op.Key))
		}
		if err != nil {
			t.Fatalf("op %d: %v", i, err)
		}
	}
	flush()
	if nodeStale > 1 {
		t.Errorf("%d batch gets differ from Node's; expected at most the one known stale read", nodeStale)
	}
	compareBlocks(t, core.Blocks(), set.Blocks)
	checkQueries(t, b, set.Queries)
}

// The 20-put/1-delete bee from the shared reference vectors, written by a
// different script: an independent check of the same encoder.
func TestReferenceVectors(t *testing.T) {
	raw, err := os.ReadFile("/work/shared/reference/hypercore-probes/vectors.json")
	if err != nil {
		t.Skip("shared reference vectors not present:", err)
	}
	var v struct {
		Hyperbee struct {
			Blocks  []string `json:"blocks"`
			Lookups map[string]*struct {
				Seq   uint64 `json:"seq"`
				Value string `json:"value"`
			} `json:"lookups"`
		} `json:"hyperbee"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b := bee.New(memcore.FromBlocks(blocksOf(t, v.Hyperbee.Blocks)), nil)
	for k, want := range v.Hyperbee.Lookups {
		e, err := b.Get(ctx, []byte(k))
		if err != nil {
			t.Fatal(err)
		}
		if (e == nil) != (want == nil) || (e != nil && (e.Seq != want.Seq || string(e.Value) != want.Value)) {
			t.Errorf("get %q = %+v, want %+v", k, e, want)
		}
	}
}

func TestReferenceVectorsWrite(t *testing.T) {
	raw, err := os.ReadFile("/work/shared/reference/hypercore-probes/vectors.json")
	if err != nil {
		t.Skip("shared reference vectors not present:", err)
	}
	var v struct {
		Hyperbee struct {
			Blocks []string `json:"blocks"`
		} `json:"hyperbee"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	// The same operations as vectors.js.
	ctx := context.Background()
	core := memcore.New()
	b := bee.New(core, nil)
	for i := 0; i < 20; i++ {
		k := fmt.Sprintf("k%02d", (i*7)%20)
		if err := b.Put(ctx, []byte(k), []byte(fmt.Sprintf("v%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Del(ctx, []byte("k07")); err != nil {
		t.Fatal(err)
	}
	compareBlocks(t, core.Blocks(), v.Hyperbee.Blocks)
}

func sameFixtureEntry(e *bee.Entry, w *fixtureEntry) bool {
	if e == nil || w == nil {
		return e == nil && w == nil
	}
	return e.Seq == w.Seq && hex.EncodeToString(e.Key) == w.Key && hex.EncodeToString(e.Value) == w.Value
}

func TestDiffLikeNode(t *testing.T) {
	f := loadFixture(t)
	ctx := context.Background()
	b := bee.New(memcore.FromBlocks(blocksOf(t, f.Single.Blocks)), nil)
	if len(f.Single.Diffs) == 0 {
		t.Fatal("no diffs in the fixture")
	}
	for _, d := range f.Single.Diffs {
		got, err := b.Checkout(d.Left).Diff(ctx, b.Checkout(d.Right), rangeOpts(t, d.Range))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(d.Entries) {
			t.Errorf("diff %d..%d %v: %d entries, Node %d", d.Left, d.Right, d.Range, len(got), len(d.Entries))
			continue
		}
		for i, w := range d.Entries {
			if !sameFixtureEntry(got[i].Left, w.Left) || !sameFixtureEntry(got[i].Right, w.Right) {
				t.Errorf("diff %d..%d %v entry %d: got {%+v %+v}, Node {%+v %+v}", d.Left, d.Right, d.Range, i, got[i].Left, got[i].Right, w.Left, w.Right)
				break
			}
		}
	}
}

func TestHistoryLikeNode(t *testing.T) {
	f := loadFixture(t)
	ctx := context.Background()
	b := bee.New(memcore.FromBlocks(blocksOf(t, f.Single.Blocks)), nil)
	if len(f.Single.History) == 0 {
		t.Fatal("no history in the fixture")
	}
	for _, h := range f.Single.History {
		o := h.Opts
		got, err := b.Checkout(0).History(ctx, bee.HistoryOptions{GTE: o.GTE, LT: o.LT, Reverse: o.Reverse, Limit: o.Limit})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(h.Entries) {
			t.Fatalf("history %+v: %d entries, Node %d", o, len(got), len(h.Entries))
		}
		for i, w := range h.Entries {
			g := got[i]
			wantVal := ""
			if w.Value != nil {
				wantVal = *w.Value
			}
			if g.Seq != w.Seq || hex.EncodeToString(g.Key) != w.Key || g.Deleted != (w.Type == "del") || hex.EncodeToString(g.Value) != wantVal || (g.Value == nil) != (w.Value == nil) {
				t.Fatalf("history %+v entry %d: %+v, Node %+v", o, i, g, w)
			}
		}
	}
}
