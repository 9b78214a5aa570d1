package bee_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/hyperos/hyperos/hyper/bee"
	"github.com/hyperos/hyperos/hyper/bee/memcore"
)

// TestAgainstModel runs random puts, deletes and batches and checks every
// read against a map, at the latest version and at an old checkout.
func TestAgainstModel(t *testing.T) {
	ctx := context.Background()
	for seed := uint64(1); seed <= 8; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 99))
			core := memcore.New()
			b := bee.New(core, nil)
			model := map[string]string{}
			var snapVersion uint64
			var snapModel map[string]string
			keyspace := 50 + r.IntN(400)
			randKey := func() []byte { return fmt.Appendf(nil, "%x", r.IntN(keyspace)*7919) }
			for step := 0; step < 1500; step++ {
				switch x := r.IntN(10); {
				case x < 5:
					k, v := randKey(), fmt.Appendf(nil, "v%d", step)
					if err := b.Put(ctx, k, v); err != nil {
						t.Fatal(err)
					}
					model[string(k)] = string(v)
				case x < 8:
					k := randKey()
					before := core.Length()
					if err := b.Del(ctx, k); err != nil {
						t.Fatal(err)
					}
					_, had := model[string(k)]
					if before == 0 {
						before = 1 // the header is written even for a delete, as in Node
					}
					if grew := core.Length() > before; grew != had {
						t.Fatalf("del %s: appended=%v but key present=%v", k, grew, had)
					}
					delete(model, string(k))
				default:
					bt := b.Batch()
					for i := r.IntN(30); i >= 0; i-- {
						k := randKey()
						if r.IntN(3) == 0 {
							if err := bt.Del(ctx, k); err != nil {
								t.Fatal(err)
							}
							delete(model, string(k))
						} else {
							v := fmt.Appendf(nil, "b%d.%d", step, i)
							if err := bt.Put(ctx, k, v); err != nil {
								t.Fatal(err)
							}
							model[string(k)] = string(v)
						}
						// Reads through the batch see its writes.
						e, err := bt.Get(ctx, k)
						if err != nil {
							t.Fatal(err)
						}
						if want, ok := model[string(k)]; ok != (e != nil) || (ok && string(e.Value) != want) {
							t.Fatalf("batch get %s = %v, want %q", k, e, want)
						}
					}
					if err := bt.Flush(); err != nil {
						t.Fatal(err)
					}
				}
				if step == 700 {
					snapVersion, snapModel = b.Version(), maps(model)
				}
			}
			check(t, b.Checkout(0), model, r)
			check(t, b.Checkout(snapVersion), snapModel, r)
			// Deleting everything leaves an empty tree.
			for k := range model {
				if err := b.Del(ctx, []byte(k)); err != nil {
					t.Fatal(err)
				}
			}
			check(t, b.Checkout(0), map[string]string{}, r)
		})
	}
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func check(t *testing.T, s *bee.Snapshot, model map[string]string, r *rand.Rand) {
	t.Helper()
	ctx := context.Background()
	keys := make([]string, 0, len(model))
	for k := range model {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	all, err := s.List(ctx, bee.RangeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(keys) {
		t.Fatalf("v%d: list has %d keys, model %d", s.Version(), len(all), len(keys))
	}
	for i, e := range all {
		if string(e.Key) != keys[i] || string(e.Value) != model[keys[i]] {
			t.Fatalf("v%d: list[%d] = %s=%s, want %s=%s", s.Version(), i, e.Key, e.Value, keys[i], model[keys[i]])
		}
		g, err := s.Get(ctx, e.Key)
		if err != nil || g == nil || g.Seq != e.Seq || !bytes.Equal(g.Value, e.Value) {
			t.Fatalf("v%d: get %s = %+v %v, list said %+v", s.Version(), e.Key, g, err, e)
		}
	}
	// Absent keys (never written, or deleted) are absent.
	for i := 0; i < 500; i++ {
		k := fmt.Sprintf("%x", i*7919)
		if _, ok := model[k]; ok {
			continue
		}
		g, err := s.Get(ctx, []byte(k))
		if err != nil || g != nil {
			t.Fatalf("v%d: get %s of an absent key = %+v %v", s.Version(), k, g, err)
		}
	}
	for i := 0; i < 50 && len(keys) > 1; i++ {
		lo, hi := keys[r.IntN(len(keys))], keys[r.IntN(len(keys))]
		if lo > hi {
			lo, hi = hi, lo
		}
		var want []string
		for _, k := range keys {
			if k > lo && k <= hi {
				want = append(want, k)
			}
		}
		rev := r.IntN(2) == 0
		limit := r.IntN(5)
		got, err := s.List(ctx, bee.RangeOptions{GT: []byte(lo), LTE: []byte(hi), Reverse: rev, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		if rev {
			slices.Reverse(want)
		}
		if limit > 0 && len(want) > limit {
			want = want[:limit]
		}
		if len(got) != len(want) {
			t.Fatalf("range (%s, %s] rev=%v limit=%d: %d entries, want %d", lo, hi, rev, limit, len(got), len(want))
		}
		for j := range got {
			if string(got[j].Key) != want[j] {
				t.Fatalf("range (%s, %s] rev=%v: entry %d = %s, want %s", lo, hi, rev, j, got[j].Key, want[j])
			}
		}
	}
}

// Readers run alongside a writer; run with -race.
func TestConcurrentReadersAndWriter(t *testing.T) {
	ctx := context.Background()
	b := bee.New(memcore.New(), nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 400; i++ {
			if err := b.Put(ctx, fmt.Appendf(nil, "k%04d", i*37%400), []byte("v")); err != nil {
				t.Error(err)
				return
			}
			if i%5 == 0 {
				if err := b.Del(ctx, fmt.Appendf(nil, "k%04d", i*11%400)); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				v := b.Version()
				if _, err := b.Checkout(v).Get(ctx, fmt.Appendf(nil, "k%04d", i%400)); err != nil {
					t.Error(err)
					return
				}
				if i%20 == 0 {
					if _, err := b.Checkout(v).List(ctx, bee.RangeOptions{Limit: 50}); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

// Diff agrees with comparing full listings, and between nearby versions it
// reads only a few blocks.
func TestDiffAgainstListings(t *testing.T) {
	ctx := context.Background()
	core := memcore.New()
	b := bee.New(core, nil)
	r := rand.New(rand.NewPCG(5, 5))
	for i := 0; i < 3000; i++ {
		k := fmt.Appendf(nil, "%05d", r.IntN(1500))
		var err error
		if r.IntN(4) == 0 {
			err = b.Del(ctx, k)
		} else {
			err = b.Put(ctx, k, fmt.Appendf(nil, "%d", i))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	n := b.Version()
	for _, pair := range [][2]uint64{{n, n - 1}, {n - 500, n}, {2, n}, {n, 2}, {1000, 1700}} {
		fresh := bee.New(core, nil) // nothing cached: count real reads
		left, right := fresh.Checkout(pair[0]), fresh.Checkout(pair[1])
		before := core.Gets.Load()
		got, err := left.Diff(ctx, right, bee.RangeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if pair == [2]uint64{n, n - 1} && core.Gets.Load()-before > 40 {
			t.Errorf("diff of adjacent versions read %d blocks", core.Gets.Load()-before)
		}
		want := listDiff(t, left, right)
		if len(got) != len(want) {
			t.Fatalf("diff %v: %d entries, listings say %d", pair, len(got), len(want))
		}
		for i := range got {
			if !sameSeq(got[i].Left, want[i].Left) || !sameSeq(got[i].Right, want[i].Right) {
				t.Fatalf("diff %v entry %d: %+v, want %+v", pair, i, got[i], want[i])
			}
		}
	}
}

func sameSeq(a, b *bee.Entry) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Seq == b.Seq && bytes.Equal(a.Key, b.Key)
}

func listDiff(t *testing.T, left, right *bee.Snapshot) []bee.DiffEntry {
	ctx := context.Background()
	l, err := left.List(ctx, bee.RangeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := right.List(ctx, bee.RangeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []bee.DiffEntry
	i, j := 0, 0
	for i < len(l) || j < len(r) {
		switch {
		case j == len(r) || (i < len(l) && bytes.Compare(l[i].Key, r[j].Key) < 0):
			out = append(out, bee.DiffEntry{Left: &l[i]})
			i++
		case i == len(l) || bytes.Compare(l[i].Key, r[j].Key) > 0:
			out = append(out, bee.DiffEntry{Right: &r[j]})
			j++
		default:
			if l[i].Seq != r[j].Seq {
				out = append(out, bee.DiffEntry{Left: &l[i], Right: &r[j]})
			}
			i++
			j++
		}
	}
	return out
}
