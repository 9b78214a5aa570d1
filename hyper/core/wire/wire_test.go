package wire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"testing"

	"github.com/hyperos/hyperos/hyper/compact"
)

// The fixture is produced by hyper/testdata/node/core-wire.js with the real
// hypercore/lib/messages.js encoders.

type hexBuf struct{ Hex string }

func (h *hexBuf) bytes(t *testing.T) []byte {
	if h == nil {
		return nil
	}
	b, err := hex.DecodeString(h.Hex)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (h *hexBuf) b32(t *testing.T) (out [32]byte) {
	copy(out[:], h.bytes(t))
	return
}

type jNode struct {
	Index, Size uint64
	Hash        hexBuf
}

func nodes(t *testing.T, in []jNode) []Node {
	if in == nil {
		return nil
	}
	out := make([]Node, 0, len(in))
	for _, n := range in {
		out = append(out, Node{Index: n.Index, Size: n.Size, Hash: n.Hash.b32(t)})
	}
	return out
}

type jManifest struct {
	Version    uint64
	AllowPatch bool
	Quorum     uint64
	Signers    []struct{ Namespace, PublicKey hexBuf }
	Prologue   *struct {
		Hash   hexBuf
		Length uint64
	}
	Linked   []hexBuf
	UserData *hexBuf
}

func (j *jManifest) toGo(t *testing.T) *Manifest {
	if j == nil {
		return nil
	}
	m := &Manifest{Version: j.Version, AllowPatch: j.AllowPatch, Quorum: j.Quorum, Signers: []Signer{}}
	for _, s := range j.Signers {
		m.Signers = append(m.Signers, Signer{Namespace: s.Namespace.b32(t), PublicKey: s.PublicKey.b32(t)})
	}
	if j.Prologue != nil {
		m.Prologue = &Prologue{Hash: j.Prologue.Hash.b32(t), Length: j.Prologue.Length}
	}
	if j.Linked != nil {
		m.Linked = [][32]byte{}
		for _, l := range j.Linked {
			m.Linked = append(m.Linked, l.b32(t))
		}
	}
	if j.UserData != nil {
		m.UserData = j.UserData.bytes(t)
	}
	return m
}

type jMessage struct {
	Type  string
	Hex   string
	Value struct {
		// request fields are parsed separately: Block differs from data's
		// sync
		Fork, Length, RemoteLength                                 uint64
		CanUpgrade, Uploading, Downloading, HasManifest, AllowPush bool
		// request
		ID       uint64
		Manifest json.RawMessage
		Priority uint64
		// cancel, data, noData
		Request uint64
		Reason  uint64
		// want, range, bitfield
		Start    uint64
		Any      bool
		Drop     bool
		Bitfield []uint32
		// extension
		Name    string
		Message hexBuf
	}
}

type jData struct {
	Block *struct {
		Index uint64
		Value hexBuf
		Nodes []jNode
	}
	Hash *struct {
		Index uint64
		Nodes []jNode
	}
	Seek *struct {
		Bytes uint64
		Nodes []jNode
	}
	Upgrade *struct {
		Start, Length          uint64
		Nodes, AdditionalNodes []jNode
		Signature              *hexBuf
	}
	Manifest *jManifest
}

func toMessage(t *testing.T, raw []byte, j *jMessage) Message {
	v := &j.Value
	switch j.Type {
	case "sync":
		return &Sync{Fork: v.Fork, Length: v.Length, RemoteLength: v.RemoteLength, CanUpgrade: v.CanUpgrade,
			Uploading: v.Uploading, Downloading: v.Downloading, HasManifest: v.HasManifest, AllowPush: v.AllowPush}
	case "request":
		r := &Request{ID: v.ID, Fork: v.Fork, Priority: v.Priority, Manifest: string(v.Manifest) == "true"}
		var jr struct {
			Block   *struct{ Index, Nodes uint64 }
			Hash    *struct{ Index, Nodes uint64 }
			Seek    *struct{ Bytes, Padding uint64 }
			Upgrade *struct{ Start, Length uint64 }
		}
		if err := json.Unmarshal(raw, &jr); err != nil {
			t.Fatal(err)
		}
		v := &jr
		if v.Block != nil {
			r.Block = &RequestBlock{Index: v.Block.Index, Nodes: v.Block.Nodes}
		}
		if v.Hash != nil {
			r.Hash = &RequestBlock{Index: v.Hash.Index, Nodes: v.Hash.Nodes}
		}
		if v.Seek != nil {
			r.Seek = &RequestSeek{Bytes: v.Seek.Bytes, Padding: v.Seek.Padding}
		}
		if v.Upgrade != nil {
			r.Upgrade = &RequestUpgrade{Start: v.Upgrade.Start, Length: v.Upgrade.Length}
		}
		return r
	case "cancel":
		return &Cancel{Request: v.Request}
	case "data":
		var jd jData
		if err := json.Unmarshal(raw, &jd); err != nil {
			t.Fatal(err)
		}
		d := &Data{Request: v.Request, Fork: v.Fork, Manifest: jd.Manifest.toGo(t)}
		if b := jd.Block; b != nil {
			d.Block = &DataBlock{Index: b.Index, Value: b.Value.bytes(t), Nodes: nodes(t, b.Nodes)}
		}
		if h := jd.Hash; h != nil {
			d.Hash = &DataHash{Index: h.Index, Nodes: nodes(t, h.Nodes)}
		}
		if s := jd.Seek; s != nil {
			d.Seek = &DataSeek{Bytes: s.Bytes, Nodes: nodes(t, s.Nodes)}
		}
		if u := jd.Upgrade; u != nil {
			d.Upgrade = &DataUpgrade{Start: u.Start, Length: u.Length, Nodes: nodes(t, u.Nodes),
				AdditionalNodes: nodes(t, u.AdditionalNodes), Signature: u.Signature.bytes(t)}
		}
		return d
	case "noData":
		return &NoData{Request: v.Request, Reason: v.Reason}
	case "want":
		return &Want{Start: v.Start, Length: v.Length, Any: v.Any}
	case "unwant":
		return &Unwant{Start: v.Start, Length: v.Length, Any: v.Any}
	case "bitfield":
		return &Bitfield{Start: v.Start, Bitfield: v.Bitfield}
	case "range":
		return &Range{Drop: v.Drop, Start: v.Start, Length: v.Length}
	case "extension":
		return &Extension{Name: v.Name, Message: v.Message.bytes(t)}
	}
	t.Fatalf("unknown type %q", j.Type)
	return nil
}

type fixture struct {
	Messages  []json.RawMessage
	Manifests []struct {
		Value jManifest
		Hex   string
	}
	Multisig []struct {
		V     int
		Value json.RawMessage
		Hex   string
	}
	Handshake []struct {
		Value struct {
			Seeks      bool
			Capability hexBuf
		}
		Hex string
	}
}

func load(t *testing.T) fixture {
	t.Helper()
	b, err := os.ReadFile("testdata/messages.json")
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

func unhex(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMessagesMatchNode(t *testing.T) {
	f := load(t)
	seen := map[MessageType]bool{}
	for i, raw := range f.Messages {
		var j jMessage
		if err := json.Unmarshal(raw, &j); err != nil {
			t.Fatal(err)
		}
		var wrap struct{ Value json.RawMessage }
		json.Unmarshal(raw, &wrap)
		want := toMessage(t, wrap.Value, &j)
		seen[want.Type()] = true
		if want.Type().String() != j.Type {
			t.Errorf("#%d: type name %q != %q", i, want.Type(), j.Type)
		}
		got, err := Marshal(want)
		if err != nil {
			t.Fatalf("#%d %s: %v", i, j.Type, err)
		}
		if hex.EncodeToString(got) != j.Hex {
			t.Errorf("#%d %s: encode\n got %x\nwant %s", i, j.Type, got, j.Hex)
		}
		dec, err := Unmarshal(want.Type(), unhex(t, j.Hex))
		if err != nil {
			t.Fatalf("#%d %s: %v", i, j.Type, err)
		}
		if !reflect.DeepEqual(normalize(dec), normalize(want)) {
			t.Errorf("#%d %s: decode\n got %+v\nwant %+v", i, j.Type, dec, want)
		}
	}
	if len(seen) != int(NumMessageTypes) {
		t.Errorf("fixture covers %d of %d message types", len(seen), NumMessageTypes)
	}
}

// normalize re-encodes and decodes so that nil-vs-empty differences that
// the encoding cannot express (empty block value, empty node arrays) do not
// make DeepEqual fail while real differences still do.
func normalize(m Message) Message {
	b, err := Marshal(m)
	if err != nil {
		panic(err)
	}
	out, err := Unmarshal(m.Type(), b)
	if err != nil {
		panic(err)
	}
	return out
}

func TestManifestsMatchNode(t *testing.T) {
	f := load(t)
	for i, c := range f.Manifests {
		want := c.Value.toGo(t)
		got, err := MarshalManifest(want)
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got) != c.Hex {
			t.Errorf("#%d encode\n got %x\nwant %s", i, got, c.Hex)
		}
		dec, err := UnmarshalManifest(unhex(t, c.Hex))
		if err != nil {
			t.Fatalf("#%d: %v", i, err)
		}
		if !reflect.DeepEqual(dec, want) {
			t.Errorf("#%d decode\n got %+v\nwant %+v", i, dec, want)
		}
	}
}

func TestManifestRejects(t *testing.T) {
	good, _ := hex.DecodeString("0100000101004144eea531e483d54e0c14f4ca68e0644f355343ff6fcb0f005200e12cd747cbfd1724385aa0c75b64fb78cd602fa1d991fdebf76b13c58ed702eac835e9f618")
	if _, err := UnmarshalManifest(good); err != nil {
		t.Fatal(err)
	}
	bad := func(name string, b []byte, want error) {
		t.Helper()
		_, err := UnmarshalManifest(b)
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if want != nil && !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
	}
	v := bytes.Clone(good)
	v[0] = 4
	bad("version 4", v, ErrInvalid)
	h := bytes.Clone(good)
	h[2] = 1
	bad("hash id 1", h, ErrInvalid)
	s := bytes.Clone(good)
	s[5] = 1
	bad("signature id 1", s, ErrInvalid)
	bad("truncated", good[:len(good)-1], compact.ErrOutOfBounds)
	bad("trailing", append(bytes.Clone(good), 0), nil)
	bad("v0 type 3", []byte{0, 0, 3}, ErrInvalid)
}

func TestMultiSignatureMatchesNode(t *testing.T) {
	f := load(t)
	for i, c := range f.Multisig {
		raw := unhex(t, c.Hex)
		if c.V == 1 {
			ms, err := UnmarshalMultiSignature(raw)
			if err != nil {
				t.Fatal(err)
			}
			back, _ := MarshalMultiSignature(ms)
			if !bytes.Equal(back, raw) {
				t.Errorf("#%d v1 round trip\n got %x\nwant %x", i, back, raw)
			}
			var jv struct {
				Proofs []struct{ Signer, Patch uint64 }
				Patch  []jNode
			}
			json.Unmarshal(c.Value, &jv)
			if len(ms.Proofs) != len(jv.Proofs) || len(ms.Patch) != len(jv.Patch) {
				t.Fatalf("#%d: shape mismatch", i)
			}
			for k, p := range jv.Proofs {
				if ms.Proofs[k].Signer != p.Signer || ms.Proofs[k].Patch != p.Patch {
					t.Errorf("#%d proof %d: %+v", i, k, ms.Proofs[k])
				}
			}
			if !reflect.DeepEqual(ms.Patch, nodes(t, jv.Patch)) {
				t.Errorf("#%d patch mismatch", i)
			}
		} else {
			ms, err := UnmarshalMultiSignatureV0(raw)
			if err != nil {
				t.Fatal(err)
			}
			back, _ := MarshalMultiSignatureV0(ms)
			if !bytes.Equal(back, raw) {
				t.Errorf("#%d v0 round trip\n got %x\nwant %x", i, back, raw)
			}
			if ms.Proofs[0].Patch == nil || ms.Proofs[0].Patch.Start != 4 || ms.Proofs[1].Patch != nil {
				t.Errorf("#%d v0 patch decode: %+v", i, ms.Proofs)
			}
		}
	}
}

func TestHandshakeMatchesNode(t *testing.T) {
	f := load(t)
	for _, c := range f.Handshake {
		h := &Handshake{Seeks: c.Value.Seeks, Capability: c.Value.Capability.b32(t)}
		if got := hex.EncodeToString(MarshalHandshake(h)); got != c.Hex {
			t.Errorf("handshake %s want %s", got, c.Hex)
		}
		d, err := UnmarshalHandshake(unhex(t, c.Hex))
		if err != nil || *d != *h {
			t.Errorf("decode handshake %+v %v", d, err)
		}
	}
	if _, err := UnmarshalHandshake([]byte{1, 2, 3}); err == nil {
		t.Error("short handshake accepted")
	}
}

// TestProbeFrames decodes frames captured from a real Node session
// (reference/hypercore-probes/probe-out.json, §8 of the hypercore map).
func TestProbeFrames(t *testing.T) {
	req := unhex(t, "18010000"+"02")
	m, err := Unmarshal(TypeRequest, req)
	if err != nil {
		t.Fatal(err)
	}
	r := m.(*Request)
	if !r.Manifest || r.Upgrade == nil || r.Upgrade.Length != 2 || r.ID != 1 {
		t.Errorf("request: %+v", r)
	}
	w, err := Unmarshal(TypeWant, unhex(t, "00fe00002000"))
	if err != nil || w.(*Want).Length != 1<<21 {
		t.Errorf("want: %+v %v", w, err)
	}
}

func TestUnmarshalRejectsTruncation(t *testing.T) {
	f := load(t)
	for _, raw := range f.Messages {
		var j jMessage
		json.Unmarshal(raw, &j)
		b := unhex(t, j.Hex)
		typ := MessageType(0)
		for ; typ < NumMessageTypes; typ++ {
			if typ.String() == j.Type {
				break
			}
		}
		for n := 0; n < len(b); n++ {
			m, err := Unmarshal(typ, b[:n])
			if err != nil {
				continue
			}
			// Some prefixes are valid messages in their own right (optional
			// trailing flags, raw extension bodies); they must then re-encode
			// to a prefix-consistent value, never panic.
			if _, err := Marshal(m); err != nil {
				t.Errorf("%s prefix %d decoded but does not re-encode: %v", j.Type, n, err)
			}
		}
	}
	if _, err := Unmarshal(NumMessageTypes, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown type: %v", err)
	}
}
