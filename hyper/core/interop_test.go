package core

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/hyperos/hyperos/internal/nodetest"

	"github.com/hyperos/hyperos/hyper/core/merkle"
	"github.com/hyperos/hyperos/hyper/core/store"
	"github.com/hyperos/hyperos/hyper/core/wire"
)

// requireNode returns the node binary with the pinned packages installed; see
// hyper/internal/nodetest.
func requireNode(t *testing.T) string {
	t.Helper()
	return nodetest.Require(t)
}

type nodeVerdict struct {
	OK     bool
	Error  *string
	Length uint64
	Has    bool
}

func runNodeVerify(t *testing.T, key [32]byte, proofs []*wire.Data) []nodeVerdict {
	node := requireNode(t)
	in := struct {
		Key    string   `json:"key"`
		Proofs []string `json:"proofs"`
	}{Key: hex.EncodeToString(key[:])}
	for _, p := range proofs {
		b, err := wire.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		in.Proofs = append(in.Proofs, hex.EncodeToString(b))
	}
	raw, _ := json.Marshal(in)
	cmd := nodetest.Command(t, node, "core-verify.js")
	cmd.Stdin = bytes.NewReader(raw)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node core-verify.js: %v", err)
	}
	var verdicts []nodeVerdict
	if err := json.Unmarshal(out, &verdicts); err != nil {
		t.Fatalf("node output %q: %v", out, err)
	}
	if len(verdicts) != len(proofs) {
		t.Fatalf("node answered %d of %d proofs", len(verdicts), len(proofs))
	}
	return verdicts
}

// TestNodeVerifiesGoProofs serves a random Go core to Node's verifier the
// way a reader would ask for it: an upgrade with the manifest, then block,
// seek and hash proofs sized by what the reader holds (tracked by a Go
// replica fed the same proofs), plus tampered copies Node must refuse.
func TestNodeVerifiesGoProofs(t *testing.T) {
	t.Run("manifest", func(t *testing.T) { testNodeVerifiesGoProofs(t, false) })
	t.Run("compat", func(t *testing.T) { testNodeVerifiesGoProofs(t, true) })
}

func testNodeVerifiesGoProofs(t *testing.T, compat bool) {
	rng := rand.New(rand.NewPCG(5, 6))
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x5a}, 32))
	w, err := Create(store.NewMemory(), priv, CreateOptions{Compat: compat})
	if err != nil {
		t.Fatal(err)
	}
	var blocks [][]byte
	for i := 0; i < 300; i++ {
		b := make([]byte, 1+rng.IntN(200))
		for k := range b {
			b[k] = byte(rng.IntN(256))
		}
		blocks = append(blocks, b)
	}
	w.Append(blocks[:123]...)
	w.Append(blocks[123:]...)
	mirror, err := NewReader(store.NewMemory(), w.Key(), nil)
	if err != nil {
		t.Fatal(err)
	}

	type step struct {
		d       *wire.Data
		want    bool
		tampers bool
	}
	var steps []step
	add := func(req *wire.Request) {
		d, _, err := w.Proof(req)
		if err != nil {
			t.Fatalf("proof %+v: %v", req, err)
		}
		// a tampered copy first; Node must refuse it and learn nothing
		raw, _ := wire.Marshal(d)
		m, _ := wire.Unmarshal(wire.TypeData, raw)
		bad := m.(*wire.Data)
		switch {
		case bad.Block != nil:
			bad.Block.Value = append(bad.Block.Value, 1)
		case bad.Upgrade != nil:
			bad.Upgrade.Signature[3] ^= 1
		case bad.Hash != nil:
			bad.Hash.Nodes[len(bad.Hash.Nodes)-1].Hash[0] ^= 1
		default:
			t.Fatalf("no way to tamper with %+v", bad)
		}
		steps = append(steps, step{d: bad, tampers: true})
		if err := mirror.Apply(d); err != nil {
			t.Fatalf("go mirror rejects %+v: %v", req, err)
		}
		steps = append(steps, step{d: d, want: true})
	}
	add(&wire.Request{ID: 1, Block: &wire.RequestBlock{Index: 17}, Upgrade: &wire.RequestUpgrade{Start: 0, Length: 300}, Manifest: true})
	for _, i := range []uint64{0, 299, 150, 151, 64, 200, 18, 16} {
		n, err := mirror.MissingNodes(i)
		if err != nil {
			t.Fatal(err)
		}
		add(&wire.Request{ID: 2, Block: &wire.RequestBlock{Index: i, Nodes: n}})
	}
	n, _ := mirror.MissingNodes(100)
	add(&wire.Request{ID: 3, Block: &wire.RequestBlock{Index: 100, Nodes: n}, Seek: &wire.RequestSeek{Bytes: 10000}})
	hn, err := merkle.MissingNodes(mirror.st, 2*230+1, 300)
	if err != nil {
		t.Fatal(err)
	}
	add(&wire.Request{ID: 4, Hash: &wire.RequestBlock{Index: 2*230 + 1, Nodes: hn}})

	var proofs []*wire.Data
	for _, s := range steps {
		proofs = append(proofs, s.d)
	}
	verdicts := runNodeVerify(t, w.Key(), proofs)
	for i, v := range verdicts {
		s := steps[i]
		if s.tampers {
			if v.OK {
				t.Errorf("step %d: Node accepted a tampered proof", i)
			}
			continue
		}
		if !v.OK {
			errMsg := ""
			if v.Error != nil {
				errMsg = *v.Error
			}
			t.Errorf("step %d: Node rejected a Go proof (%s): %+v", i, errMsg, s.d)
		}
		if s.d.Block != nil && !v.Has {
			t.Errorf("step %d: Node did not store block %d", i, s.d.Block.Index)
		}
		if v.Length != 300 {
			t.Errorf("step %d: Node reader at length %d", i, v.Length)
		}
	}
}
