package merkle

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"

	"github.com/hyperos/hyperos/hyper/core/flat"
	"github.com/hyperos/hyperos/hyper/core/wire"
)

// The fixtures come from hyper/testdata/node/core-merkle.js, which drives
// the real hypercore 11 MerkleTree, Verifier and multisig code.

type hx string

func (h hx) bytes(t testing.TB) []byte {
	t.Helper()
	b, err := hex.DecodeString(string(h))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (h hx) b32(t testing.TB) (o [32]byte) {
	t.Helper()
	b := h.bytes(t)
	if len(b) != 32 {
		t.Fatalf("want 32 bytes, got %d", len(b))
	}
	copy(o[:], b)
	return
}

type jNode struct {
	Index, Size uint64
	Hash        hx
}

func toNodes(t testing.TB, in []jNode) []Node {
	out := make([]Node, 0, len(in))
	for _, n := range in {
		out = append(out, Node{Index: n.Index, Size: n.Size, Hash: n.Hash.b32(t)})
	}
	return out
}

type jProof struct {
	Request hx
	Error   *string
	Data    hx
}

type jCore struct {
	Key, DiscoveryKey, Manifest hx
	Compat                      bool
	Length, Fork, ByteLength    uint64
	Blocks                      []hx
	Roots, Nodes                []jNode
	TreeHash, Signature, Seed   hx
	Proofs                      []jProof
}

type fixture struct {
	Hashes struct {
		Namespaces []hx
		Leaves     []struct{ Data, Hash hx }
		Parent, ParentSwapped, Tree, DiscoveryKey,
		CapabilityInitiator, CapabilityResponder hx
	}
	Core     jCore
	Compat   jCore
	Multisig struct {
		Seeds                     []hx
		Manifest, Key             hx
		Length                    uint64
		Roots                     []jNode
		Signature, PlainSignature hx
		Verified                  bool
		PlainLength               uint64
	}
}

func (c jCore) ptr() *jCore { return &c }

func loadFixture(t testing.TB) *fixture {
	t.Helper()
	b, err := os.ReadFile("testdata/merkle.json")
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Core.Proofs) == 0 || len(f.Compat.Proofs) == 0 {
		t.Fatal("fixture has no proofs")
	}
	return &f
}

// coreState rebuilds a fixture core: its trusted tree at full length and
// every node.
func coreState(t testing.TB, c *jCore) (*Tree, NodeMap) {
	nodes := NodeMap{}
	for _, n := range toNodes(t, c.Nodes) {
		nodes[n.Index] = n
	}
	tr := &Tree{Fork: c.Fork, Length: c.Length, ByteLength: c.ByteLength, Roots: toNodes(t, c.Roots), Signature: c.Signature.bytes(t)}
	return tr, nodes
}

func (c *jCore) manifest(t testing.TB) *wire.Manifest {
	m, err := wire.UnmarshalManifest(c.Manifest.bytes(t))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (c *jCore) verifier(t testing.TB) *Verifier {
	var m *wire.Manifest
	if !c.Compat {
		m = c.manifest(t)
	}
	v, err := NewVerifier(c.Key.b32(t), m)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestHashesMatchNode(t *testing.T) {
	f := loadFixture(t)
	h := f.Hashes
	for i, ns := range h.Namespaces {
		if hypercoreNS[i] != ns.b32(t) {
			t.Errorf("namespace %d", i)
		}
	}
	for _, l := range h.Leaves {
		if LeafHash(l.Data.bytes(t)) != l.Hash.b32(t) {
			t.Errorf("leaf hash of %d bytes", len(l.Data)/2)
		}
	}
	a := Node{Index: 0, Size: 3, Hash: [32]byte{1: 0}}
	for i := range a.Hash {
		a.Hash[i] = 1
	}
	b := Node{Index: 2, Size: 4}
	for i := range b.Hash {
		b.Hash[i] = 2
	}
	if ParentHash(a, b) != h.Parent.b32(t) || ParentHash(b, a) != h.ParentSwapped.b32(t) {
		t.Error("parent hash")
	}
	r1, r2 := Node{Index: 7, Size: 100}, Node{Index: 9, Size: 5}
	for i := range r1.Hash {
		r1.Hash[i], r2.Hash[i] = 4, 5
	}
	if TreeHash([]Node{r1, r2}) != h.Tree.b32(t) {
		t.Error("tree hash")
	}
	var k [32]byte
	for i := range k {
		k[i] = 6
	}
	if DiscoveryKey(k) != h.DiscoveryKey.b32(t) {
		t.Error("discovery key")
	}
	hs := bytes.Repeat([]byte{8}, 64)
	ci, _ := Capability(true, k, hs)
	cr, _ := Capability(false, k, hs)
	if ci != h.CapabilityInitiator.b32(t) || cr != h.CapabilityResponder.b32(t) {
		t.Error("capability")
	}
}

func seedKey(t testing.TB, seed hx) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(seed.bytes(t))
}

// TestWriterMatchesNode appends the fixture blocks in Go and checks every
// node, the roots, the key and the exact signature bytes.
func testWriter(t *testing.T, c *jCore) {
	priv := seedKey(t, c.Seed)
	var pub [32]byte
	copy(pub[:], priv.Public().(ed25519.PublicKey))
	b := NewBatch(&Tree{})
	for _, blk := range c.Blocks {
		b.Append(blk.bytes(t))
	}
	want, _ := coreState(t, c)
	got := map[uint64]Node{}
	for _, n := range b.Nodes {
		got[n.Index] = n
	}
	if len(got) != len(c.Nodes) {
		t.Errorf("%d nodes, want %d", len(got), len(c.Nodes))
	}
	for _, n := range c.Nodes {
		if got[n.Index].Hash != n.Hash.b32(t) || got[n.Index].Size != n.Size {
			t.Errorf("node %d differs", n.Index)
		}
	}
	if b.Length != want.Length || b.ByteLength != want.ByteLength || b.Hash() != c.TreeHash.b32(t) {
		t.Errorf("length/byteLength/hash: %d %d", b.Length, b.ByteLength)
	}
	var m *wire.Manifest
	key := pub
	if !c.Compat {
		m = DefaultSignerManifest(pub)
		enc, _ := wire.MarshalManifest(m)
		if !bytes.Equal(enc, c.Manifest.bytes(t)) {
			t.Fatalf("manifest %x", enc)
		}
		key, _ = ManifestHash(m)
	}
	if key != c.Key.b32(t) {
		t.Fatalf("key %x", key)
	}
	if DiscoveryKey(key) != c.DiscoveryKey.b32(t) {
		t.Error("discovery key")
	}
	v, err := NewVerifier(key, m)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := v.Sign(b, priv)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sig, c.Signature.bytes(t)) {
		t.Errorf("signature\n got %x\nwant %s", sig, c.Signature)
	}
	if !v.Verify(b, sig) {
		t.Error("own signature does not verify")
	}
	b.Fork = 1
	b.hashCached = nil
	if v.Verify(b, sig) {
		t.Error("signature verified for another fork")
	}
}

func TestWriterMatchesNode(t *testing.T) {
	f := loadFixture(t)
	t.Run("manifest", func(t *testing.T) { testWriter(t, &f.Core) })
	t.Run("compat", func(t *testing.T) { testWriter(t, &f.Compat) })
}

func decodeRequest(t testing.TB, h hx) *wire.Request {
	m, err := wire.Unmarshal(wire.TypeRequest, h.bytes(t))
	if err != nil {
		t.Fatal(err)
	}
	return m.(*wire.Request)
}

func proofRequest(r *wire.Request) ProofRequest {
	return ProofRequest{Block: r.Block, Hash: r.Hash, Seek: r.Seek, Upgrade: r.Upgrade}
}

// TestGenerateMatchesNode generates every fixture proof in Go and compares
// the encoded data message byte for byte; requests Node refuses must be
// refused too.
func TestGenerateMatchesNode(t *testing.T) {
	f := loadFixture(t)
	for _, c := range []*jCore{&f.Core, &f.Compat} {
		tr, nodes := coreState(t, c)
		for i, p := range c.Proofs {
			req := decodeRequest(t, p.Request)
			d, err := GenerateProof(tr, nodes, proofRequest(req))
			if p.Error != nil {
				if err == nil {
					t.Errorf("core %s proof #%d (%x): Node says %s, Go generated %+v", c.Key[:8], i, p.Request.bytes(t), *p.Error, d)
				}
				continue
			}
			if err != nil {
				t.Errorf("proof #%d (%x): %v", i, p.Request.bytes(t), err)
				continue
			}
			d.Request = req.ID
			if d.Block != nil {
				d.Block.Value = c.Blocks[d.Block.Index].bytes(t)
			}
			if req.Manifest {
				d.Manifest = c.manifest(t)
			}
			got, err := wire.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, p.Data.bytes(t)) {
				t.Errorf("core %s proof #%d (%x):\n got %x\nwant %s", c.Key[:8], i, p.Request.bytes(t), got, p.Data)
			}
		}
	}
}

// readerFor builds the state of a reader that knows the tree at length
// (nodes entirely inside it) — the position from which it requested p.
func readerFor(t testing.TB, c *jCore, length uint64) (*Tree, NodeMap) {
	full, all := coreState(t, c)
	if length == full.Length {
		return full, all
	}
	known := NodeMap{}
	for i, n := range all {
		if flat.RightSpan(i) < 2*length {
			known[i] = n
		}
	}
	tr := &Tree{Fork: c.Fork, Length: length}
	if length > 0 {
		roots, err := RootsAt(known, length)
		if err != nil {
			t.Fatal(err)
		}
		tr.Roots = roots
		tr.ByteLength = TotalSize(roots)
	}
	return tr, known
}

type nodeProof struct {
	req    *wire.Request
	data   *wire.Data
	reader *Tree
	nodes  NodeMap
}

func nodeProofs(t testing.TB, c *jCore) []nodeProof {
	var out []nodeProof
	for _, p := range c.Proofs {
		if p.Error != nil {
			continue
		}
		req := decodeRequest(t, p.Request)
		m, err := wire.Unmarshal(wire.TypeData, p.Data.bytes(t))
		if err != nil {
			t.Fatal(err)
		}
		d := m.(*wire.Data)
		length := c.Length
		if d.Upgrade != nil {
			length = d.Upgrade.Start
		}
		tr, nodes := readerFor(t, c, length)
		out = append(out, nodeProof{req, d, tr, nodes})
	}
	return out
}

// TestVerifyNodeProofs verifies every Node-produced proof from the
// position the reader asked from, and checks what it then trusts.
func TestVerifyNodeProofs(t *testing.T) {
	f := loadFixture(t)
	for _, c := range []*jCore{&f.Core, &f.Compat} {
		v := c.verifier(t)
		full, all := coreState(t, c)
		for i, np := range nodeProofs(t, c) {
			b, err := Verify(np.reader, np.nodes, np.data, v)
			if err != nil {
				t.Errorf("proof #%d (%+v): %v", i, np.req, err)
				continue
			}
			for _, n := range b.Nodes {
				if all[n.Index] != n {
					t.Errorf("proof #%d: trusted node %d differs from the real tree", i, n.Index)
				}
			}
			if np.data.Upgrade != nil {
				if !b.Upgraded && np.data.Upgrade.Start+np.data.Upgrade.Length > np.reader.Length {
					t.Errorf("proof #%d: not upgraded", i)
				}
				if b.Upgraded && (b.Length != full.Length || b.Hash() != full.Hash()) {
					t.Errorf("proof #%d: upgraded to %d, want %d", i, b.Length, full.Length)
				}
			}
		}
	}
}

// tamperings returns copies of d each with one byte of evidence changed.
func tamperings(d *wire.Data) []*wire.Data {
	var out []*wire.Data
	clone := func() *wire.Data {
		raw, _ := wire.Marshal(d)
		m, _ := wire.Unmarshal(wire.TypeData, raw)
		return m.(*wire.Data)
	}
	lists := func(c *wire.Data) [][]Node {
		var l [][]Node
		if c.Block != nil {
			l = append(l, c.Block.Nodes)
		}
		if c.Hash != nil {
			l = append(l, c.Hash.Nodes)
		}
		if c.Seek != nil {
			l = append(l, c.Seek.Nodes)
		}
		if c.Upgrade != nil {
			l = append(l, c.Upgrade.Nodes, c.Upgrade.AdditionalNodes)
		}
		return l
	}
	for li, l := range lists(d) {
		for ni := range l {
			c := clone()
			lists(c)[li][ni].Hash[ni%32] ^= 1
			out = append(out, c)
			c = clone()
			lists(c)[li][ni].Size++
			out = append(out, c)
		}
	}
	if d.Block != nil {
		c := clone()
		c.Block.Value = append(c.Block.Value, 0)
		out = append(out, c)
		c = clone()
		c.Block.Index ^= 1
		out = append(out, c)
	}
	if d.Upgrade != nil {
		c := clone()
		c.Upgrade.Signature[len(c.Upgrade.Signature)-5] ^= 0x80
		out = append(out, c)
		c = clone()
		c.Upgrade.Signature = nil
		out = append(out, c)
		c = clone()
		c.Fork++
		out = append(out, c)
	}
	return out
}

func TestTamperedProofsRejected(t *testing.T) {
	f := loadFixture(t)
	for _, c := range []*jCore{&f.Core, &f.Compat} {
		v := c.verifier(t)
		for i, np := range nodeProofs(t, c) {
			for k, bad := range tamperings(np.data) {
				if _, err := Verify(np.reader, np.nodes, bad, v); err == nil {
					t.Errorf("proof #%d tampering %d accepted: %+v", i, k, bad)
				}
			}
		}
	}
}

func TestWrongKeyAndForkRejected(t *testing.T) {
	f := loadFixture(t)
	c := &f.Core
	other := c.manifest(t)
	other.Signers[0].PublicKey[0] ^= 1
	okey, _ := ManifestHash(other)
	wrong, err := NewVerifier(okey, other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewVerifier(okey, c.manifest(t)); err == nil {
		t.Error("manifest accepted for a key it does not hash to")
	}
	for _, np := range nodeProofs(t, c) {
		if np.data.Upgrade == nil {
			continue
		}
		if _, err := Verify(np.reader, np.nodes, np.data, wrong); err == nil {
			t.Errorf("proof verified under another signer")
		}
		forked := *np.reader
		forked.Fork = 2
		if forked.Length > 0 {
			if _, err := Verify(&forked, np.nodes, np.data, c.verifier(t)); err == nil {
				t.Errorf("proof for fork 0 accepted by a fork-2 tree")
			}
		}
	}
}

func TestMultisigMatchesNode(t *testing.T) {
	f := loadFixture(t)
	ms := f.Multisig
	if !ms.Verified {
		t.Fatal("Node did not verify its own multisig fixture")
	}
	m, err := wire.UnmarshalManifest(ms.Manifest.bytes(t))
	if err != nil {
		t.Fatal(err)
	}
	key := ms.Key.b32(t)
	if h, _ := ManifestHash(m); h != key {
		t.Fatal("manifest hash")
	}
	v, err := NewVerifier(key, m)
	if err != nil {
		t.Fatal(err)
	}
	_, all := coreState(t, &f.Core)
	b30 := NewBatch(&Tree{Length: ms.Length, Roots: toNodes(t, ms.Roots)})
	// the patch upgrade in the verifier needs no stored nodes: all from the blob
	_ = all
	sig := ms.Signature.bytes(t)
	if !v.Verify(b30, sig) {
		t.Fatal("patched 2-of-3 multisig not verified")
	}
	for i := range sig {
		bad := bytes.Clone(sig)
		bad[i] ^= 0x01
		if v.Verify(b30, bad) {
			t.Errorf("multisig with byte %d flipped verified", i)
		}
	}
	full, _ := coreState(t, &f.Core)
	bf := NewBatch(full)
	if !v.Verify(bf, ms.PlainSignature.bytes(t)) {
		t.Error("plain 2-of-3 multisig not verified")
	}
	if v.Verify(b30, ms.PlainSignature.bytes(t)) {
		t.Error("multisig for length 37 verified at 30")
	}
	// one signer is below quorum; the same signer twice is refused
	one, _ := wire.UnmarshalMultiSignature(ms.PlainSignature.bytes(t))
	one.Proofs = one.Proofs[:1]
	raw, _ := wire.MarshalMultiSignature(one)
	if v.Verify(bf, raw) {
		t.Error("1 of 3 signatures met a quorum of 2")
	}
	one.Proofs = append(one.Proofs, one.Proofs[0])
	raw, _ = wire.MarshalMultiSignature(one)
	if v.Verify(bf, raw) {
		t.Error("duplicate signer counted twice")
	}
	// Go signing of the same batch assembles to Node's bytes
	p1 := seedKey(t, ms.Seeds[1])
	p2 := seedKey(t, ms.Seeds[2])
	s1, _ := v.Sign(bf, p1)
	s2, _ := v.Sign(bf, p2)
	blob, err := Assemble(map[uint64][]byte{1: s1, 2: s2})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(blob, ms.PlainSignature.bytes(t)) {
		t.Errorf("assembled\n got %x\nwant %s", blob, ms.PlainSignature)
	}
}

// TestVectorsCore checks the 5-block core of the shared vectors.json
// (copied to testdata/vectors-core.json).
func TestVectorsCore(t *testing.T) {
	b, err := os.ReadFile("testdata/vectors-core.json")
	if err != nil {
		t.Fatal(err)
	}
	var vc struct {
		Core struct {
			Seed, Manifest, Key, DiscoveryKey, TreeHash, Signable, Signature hx
			Blocks                                                           []hx
			Roots, Nodes                                                     []jNode
			Proofs                                                           []struct{ Request, Data hx }
		}
		CompatCore struct{ Seed, Key, TreeHash, Signable80, Signature hx }
	}
	if err := json.Unmarshal(b, &vc); err != nil {
		t.Fatal(err)
	}
	c := vc.Core
	priv := seedKey(t, c.Seed)
	var pub [32]byte
	copy(pub[:], priv.Public().(ed25519.PublicKey))
	m := DefaultSignerManifest(pub)
	key, _ := ManifestHash(m)
	if key != c.Key.b32(t) || DiscoveryKey(key) != c.DiscoveryKey.b32(t) {
		t.Fatal("key or discovery key")
	}
	batch := NewBatch(&Tree{})
	for _, blk := range c.Blocks {
		batch.Append(blk.bytes(t))
	}
	if batch.Hash() != c.TreeHash.b32(t) || !bytes.Equal(batch.Signable(key), c.Signable.bytes(t)) {
		t.Fatal("tree hash or signable")
	}
	v, _ := NewVerifier(key, m)
	sig, _ := v.Sign(batch, priv)
	if !bytes.Equal(sig, c.Signature.bytes(t)) {
		t.Fatal("signature")
	}
	tr := batch.Tree()
	tr.Signature = sig
	nodes := NodeMap{}
	for _, n := range batch.Nodes {
		nodes[n.Index] = n
	}
	for i, p := range c.Proofs {
		req := decodeRequest(t, p.Request)
		d, err := GenerateProof(tr, nodes, proofRequest(req))
		if err != nil {
			t.Fatal(err)
		}
		d.Request = req.ID
		if d.Block != nil {
			d.Block.Value = c.Blocks[d.Block.Index].bytes(t)
		}
		if req.Manifest {
			d.Manifest = m
		}
		got, _ := wire.Marshal(d)
		if !bytes.Equal(got, p.Data.bytes(t)) {
			t.Errorf("vectors proof #%d\n got %x\nwant %s", i, got, p.Data)
		}
	}
	cc := vc.CompatCore
	cpriv := seedKey(t, cc.Seed)
	var ckey [32]byte
	copy(ckey[:], cpriv.Public().(ed25519.PublicKey))
	if ckey != cc.Key.b32(t) {
		t.Fatal("compat key")
	}
	cb := NewBatch(&Tree{})
	for _, s := range []string{"a", "b", "c"} {
		cb.Append([]byte(s))
	}
	cv, _ := NewVerifier(ckey, nil)
	if cb.Hash() != cc.TreeHash.b32(t) || !bytes.Equal(cb.SignableCompat(false), cc.Signable80.bytes(t)) {
		t.Fatal("compat hash/signable")
	}
	csig, _ := cv.Sign(cb, cpriv)
	if !bytes.Equal(csig, cc.Signature.bytes(t)) || !cv.Verify(cb, csig) {
		t.Fatal("compat signature")
	}
}

// TestStaticPrologueCore checks a signer-less manifest that pins the first
// 20 blocks by tree hash (Node's static cores): the manifest encodes and
// hashes as in Node, the prologue length verifies without a signature,
// other lengths do not, and a reader accepts exactly the pinned upgrade.
func TestStaticPrologueCore(t *testing.T) {
	raw, err := os.ReadFile("testdata/merkle.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Static struct {
			Manifest, Key          hx
			Length                 uint64
			Roots                  []jNode
			Verified, VerifiedFull bool
		}
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	s := f.Static
	if !s.Verified || s.VerifiedFull {
		t.Fatal("unexpected Node verdicts in fixture")
	}
	m, err := wire.UnmarshalManifest(s.Manifest.bytes(t))
	if err != nil {
		t.Fatal(err)
	}
	if m.Prologue == nil || m.Prologue.Length != 20 || m.Quorum != 0 || len(m.Signers) != 0 {
		t.Fatalf("manifest %+v", m)
	}
	v, err := NewVerifier(s.Key.b32(t), m)
	if err != nil {
		t.Fatal(err)
	}
	b20 := NewBatch(&Tree{Length: 20, Roots: toNodes(t, s.Roots)})
	if !v.Verify(b20, nil) {
		t.Error("prologue length not accepted")
	}
	full, all := coreState(t, loadFixture(t).Core.ptr())
	if v.Verify(NewBatch(full), nil) || v.Verify(NewBatch(full), full.Signature) {
		t.Error("length beyond the prologue accepted without a valid signer")
	}
	// a seeder holding exactly the prologue serves it to a fresh reader
	seed := &Tree{Length: 20, Roots: toNodes(t, s.Roots), ByteLength: TotalSize(toNodes(t, s.Roots)), Prologue: m.Prologue}
	p, err := GenerateProof(seed, all, ProofRequest{Block: &wire.RequestBlock{Index: 7}, Upgrade: &wire.RequestUpgrade{Start: 0, Length: 20}})
	if err != nil {
		t.Fatal(err)
	}
	blocks := loadFixture(t).Core.Blocks
	p.Block.Value = blocks[7].bytes(t)
	reader := &Tree{Prologue: m.Prologue}
	b, err := Verify(reader, NodeMap{}, p, v)
	if err != nil {
		t.Fatalf("prologue upgrade: %v", err)
	}
	if b.Length != 20 || b.Hash() != m.Prologue.Hash {
		t.Fatalf("reader at %d", b.Length)
	}
	// an upgrade that stops short of the prologue is refused
	short, err := GenerateProof(&Tree{Length: 20, Roots: seed.Roots, ByteLength: seed.ByteLength}, all, ProofRequest{Upgrade: &wire.RequestUpgrade{Start: 0, Length: 10}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(&Tree{Prologue: m.Prologue}, NodeMap{}, short, v); err == nil {
		t.Error("partial prologue upgrade accepted")
	}
}

// TestVersion0Manifests checks legacy v0 manifests against Node: a single
// signer signs over its namespace with a raw signature, two signers use the
// multiSignaturev0 blob; Go's signatures and assembly match Node's bytes.
func TestVersion0Manifests(t *testing.T) {
	raw, err := os.ReadFile("testdata/merkle.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		V0 []struct {
			Manifest, Key, Signature hx
			Verified                 bool
		}
		Multisig struct{ Seeds []hx }
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.V0) != 2 {
		t.Fatal("fixture lacks v0 manifests")
	}
	full, _ := coreState(t, loadFixture(t).Core.ptr())
	for i, c := range f.V0 {
		if !c.Verified {
			t.Fatalf("#%d: Node did not verify its own fixture", i)
		}
		m, err := wire.UnmarshalManifest(c.Manifest.bytes(t))
		if err != nil {
			t.Fatal(err)
		}
		if m.Version != 0 {
			t.Fatalf("#%d: version %d", i, m.Version)
		}
		v, err := NewVerifier(c.Key.b32(t), m)
		if err != nil {
			t.Fatal(err)
		}
		b := NewBatch(full)
		sig := c.Signature.bytes(t)
		if !v.Verify(b, sig) {
			t.Errorf("#%d: Node's v0 signature not verified", i)
		}
		bad := bytes.Clone(sig)
		bad[10] ^= 4 // inside the (first) signature
		if v.Verify(b, bad) {
			t.Errorf("#%d: damaged v0 signature verified", i)
		}
		var sigs [][64]byte
		for k := range m.Signers {
			s, err := v.Sign(b, seedKey(t, f.Multisig.Seeds[k]))
			if err != nil {
				t.Fatal(err)
			}
			var a [64]byte
			copy(a[:], s)
			sigs = append(sigs, a)
		}
		var got []byte
		if len(sigs) == 1 {
			got = sigs[0][:]
		} else {
			ms := &wire.MultiSignatureV0{Patch: []Node{}}
			for k, s := range sigs {
				ms.Proofs = append(ms.Proofs, wire.SignatureProofV0{Signer: uint64(k), Signature: s})
			}
			got, _ = wire.MarshalMultiSignatureV0(ms)
		}
		if !bytes.Equal(got, sig) {
			t.Errorf("#%d: Go v0 signature\n got %x\nwant %x", i, got, sig)
		}
	}
}
