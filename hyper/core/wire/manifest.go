// Package wire defines the data that Hypercore 11 peers exchange and sign —
// tree nodes, manifests, multisignatures and the ten replication messages —
// with compact-encoding codecs that produce exactly the bytes of
// hypercore/lib/messages.js.
//
// It holds no cryptography: hashing and verification live in
// hyper/core/merkle, which builds on these types. Decoders never panic and
// reject anything Node would reject (unknown hash or signature algorithms,
// unknown manifest versions, over-long arrays); they ignore trailing bytes
// as Node does, so a newer peer that appends fields can still talk to us.
package wire

import (
	"errors"
	"fmt"

	"github.com/hyperos/hyperos/hyper/compact"
)

// ErrInvalid marks a structurally valid encoding whose content Node would
// refuse (unknown algorithm, version or type).
var ErrInvalid = errors.New("wire: invalid value")

// Node is one Merkle tree node: its flat-tree index, the byte size of the
// subtree it covers and its BLAKE2b-256 hash.
type Node struct {
	Index uint64
	Size  uint64
	Hash  [32]byte
}

// EncodeNode appends n as uint index, uint size, fixed32 hash.
func EncodeNode(e *compact.Encoder, n Node) {
	e.Uint(n.Index)
	e.Uint(n.Size)
	e.Fixed32(n.Hash[:])
}

// DecodeNode reads a node written by EncodeNode.
func DecodeNode(d *compact.Decoder) (Node, error) {
	var n Node
	n.Index, _ = d.Uint()
	n.Size, _ = d.Uint()
	h, err := d.Fixed32()
	if err != nil {
		return Node{}, fmt.Errorf("decode node: %w", err)
	}
	n.Hash = h
	return n, nil
}

// EncodeNodes appends an array of nodes.
func EncodeNodes(e *compact.Encoder, nodes []Node) {
	e.ArrayLen(len(nodes))
	for _, n := range nodes {
		EncodeNode(e, n)
	}
}

// DecodeNodes reads an array of nodes; it never returns nil on success so
// that "present but empty" survives a round trip.
func DecodeNodes(d *compact.Decoder) ([]Node, error) {
	return compact.Array(d, DecodeNode)
}

// Hash and signature algorithm ids; Node only defines one of each.
const (
	HashBlake2b      = 0
	SignatureEd25519 = 0
)

// Signer is one key allowed to sign a core's tree.
type Signer struct {
	// Signature is the algorithm id; only SignatureEd25519 exists.
	Signature uint64
	// Namespace separates signatures made by one key for different uses;
	// normally the hypercore DEFAULT_NAMESPACE.
	Namespace [32]byte
	PublicKey [32]byte
}

// Prologue pins the first Length blocks of a core to a known tree hash; a
// manifest with a prologue and no signers describes a static core.
type Prologue struct {
	Hash   [32]byte
	Length uint64
}

// Manifest describes who may sign a core. For non-compat cores the core
// key is the hash of its encoding, so every field here is part of the
// core's identity.
type Manifest struct {
	Version    uint64
	Hash       uint64 // HashBlake2b
	AllowPatch bool
	Quorum     uint64
	Signers    []Signer
	Prologue   *Prologue
	// Linked and UserData (version ≥ 2) are absent when nil and present,
	// possibly empty, otherwise; the distinction changes the encoding.
	Linked   [][32]byte
	UserData []byte
}

const (
	manifestPatch    = 1
	manifestPrologue = 2
	manifestLinked   = 4
	manifestUserData = 8
)

func encodeSigner(e *compact.Encoder, s Signer) {
	e.Uint(s.Signature)
	e.Fixed32(s.Namespace[:])
	e.Fixed32(s.PublicKey[:])
}

func decodeSigner(d *compact.Decoder) (Signer, error) {
	var s Signer
	sig, err := d.Uint()
	if err != nil {
		return s, fmt.Errorf("decode signer: %w", err)
	}
	if sig != SignatureEd25519 {
		return s, fmt.Errorf("decode signer: unknown signature id %d: %w", sig, ErrInvalid)
	}
	s.Namespace, _ = d.Fixed32()
	s.PublicKey, err = d.Fixed32()
	if err != nil {
		return s, fmt.Errorf("decode signer: %w", err)
	}
	return s, nil
}

func encodeSigners(e *compact.Encoder, ss []Signer) {
	e.ArrayLen(len(ss))
	for _, s := range ss {
		encodeSigner(e, s)
	}
}

// EncodeManifest appends m in the layout of messages.js `manifest`
// (version 0 uses the older `manifestv0` layout).
func EncodeManifest(e *compact.Encoder, m *Manifest) {
	e.Uint(m.Version)
	if m.Version == 0 {
		e.Uint(m.Hash)
		switch {
		case m.Prologue != nil && len(m.Signers) == 0:
			e.Uint(0)
			e.Fixed32(m.Prologue.Hash[:])
		case m.Quorum == 1 && len(m.Signers) == 1 && !m.AllowPatch:
			e.Uint(1)
			encodeSigner(e, m.Signers[0])
		default:
			e.Uint(2)
			e.Uint(boolUint(m.AllowPatch))
			e.Uint(m.Quorum)
			encodeSigners(e, m.Signers)
		}
		return
	}
	var flags uint64
	if m.AllowPatch {
		flags |= manifestPatch
	}
	if m.Prologue != nil {
		flags |= manifestPrologue
	}
	if m.Linked != nil {
		flags |= manifestLinked
	}
	if m.UserData != nil {
		flags |= manifestUserData
	}
	e.Uint(flags)
	e.Uint(m.Hash)
	e.Uint(m.Quorum)
	encodeSigners(e, m.Signers)
	if m.Prologue != nil {
		e.Fixed32(m.Prologue.Hash[:])
		e.Uint(m.Prologue.Length)
	}
	if m.Linked != nil {
		e.ArrayLen(len(m.Linked))
		for _, k := range m.Linked {
			e.Fixed32(k[:])
		}
	}
	if m.UserData != nil {
		e.Buffer(m.UserData)
	}
}

// MarshalManifest returns the encoding of m; the core key of a non-compat
// core is the hash of exactly these bytes.
func MarshalManifest(m *Manifest) ([]byte, error) {
	e := compact.NewEncoder(nil)
	EncodeManifest(e, m)
	b, err := e.Finish()
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return b, nil
}

// UnmarshalManifest decodes a manifest and refuses trailing bytes, since a
// stored or hashed manifest must be exactly one value.
func UnmarshalManifest(b []byte) (*Manifest, error) {
	d := compact.NewDecoder(b)
	m, err := DecodeManifest(d)
	if err != nil {
		return nil, err
	}
	if err := d.Done(); err != nil {
		return nil, fmt.Errorf("decode manifest: %w", err)
	}
	return m, nil
}

// DecodeManifest reads a manifest written by EncodeManifest.
func DecodeManifest(d *compact.Decoder) (*Manifest, error) {
	version, err := d.Uint()
	if err != nil {
		return nil, fmt.Errorf("decode manifest version: %w", err)
	}
	if version == 0 {
		return decodeManifestV0(d)
	}
	if version > 3 {
		return nil, fmt.Errorf("decode manifest: unknown version %d: %w", version, ErrInvalid)
	}
	m := &Manifest{Version: version}
	flags, _ := d.Uint()
	hash, err := d.Uint()
	if err != nil {
		return nil, fmt.Errorf("decode manifest: %w", err)
	}
	if hash != HashBlake2b {
		return nil, fmt.Errorf("decode manifest: unknown hash id %d: %w", hash, ErrInvalid)
	}
	m.AllowPatch = flags&manifestPatch != 0
	if m.Quorum, err = d.Uint(); err != nil {
		return nil, fmt.Errorf("decode manifest quorum: %w", err)
	}
	if m.Signers, err = compact.Array(d, decodeSigner); err != nil {
		return nil, fmt.Errorf("decode manifest signers: %w", err)
	}
	if flags&manifestPrologue != 0 {
		p := &Prologue{}
		p.Hash, _ = d.Fixed32()
		if p.Length, err = d.Uint(); err != nil {
			return nil, fmt.Errorf("decode manifest prologue: %w", err)
		}
		m.Prologue = p
	}
	if flags&manifestLinked != 0 {
		if m.Linked, err = compact.Array(d, (*compact.Decoder).Fixed32); err != nil {
			return nil, fmt.Errorf("decode manifest linked: %w", err)
		}
	}
	if flags&manifestUserData != 0 {
		ud, err := d.Buffer()
		if err != nil {
			return nil, fmt.Errorf("decode manifest userData: %w", err)
		}
		m.UserData = append([]byte{}, ud...)
	}
	return m, nil
}

func decodeManifestV0(d *compact.Decoder) (*Manifest, error) {
	hash, err := d.Uint()
	if err != nil {
		return nil, fmt.Errorf("decode manifest v0: %w", err)
	}
	if hash != HashBlake2b {
		return nil, fmt.Errorf("decode manifest v0: unknown hash id %d: %w", hash, ErrInvalid)
	}
	typ, err := d.Uint()
	if err != nil {
		return nil, fmt.Errorf("decode manifest v0 type: %w", err)
	}
	m := &Manifest{Version: 0}
	switch typ {
	case 0:
		h, err := d.Fixed32()
		if err != nil {
			return nil, fmt.Errorf("decode manifest v0 prologue: %w", err)
		}
		m.Prologue = &Prologue{Hash: h}
		m.Signers = []Signer{}
	case 1:
		s, err := decodeSigner(d)
		if err != nil {
			return nil, fmt.Errorf("decode manifest v0: %w", err)
		}
		m.Quorum = 1
		m.Signers = []Signer{s}
	case 2:
		flags, _ := d.Uint()
		m.AllowPatch = flags&1 != 0
		m.Quorum, _ = d.Uint()
		if m.Signers, err = compact.Array(d, decodeSigner); err != nil {
			return nil, fmt.Errorf("decode manifest v0 signers: %w", err)
		}
	default:
		return nil, fmt.Errorf("decode manifest v0: unknown type %d: %w", typ, ErrInvalid)
	}
	return m, nil
}

func boolUint(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// MultiSignature is the signature blob of manifest cores (version ≥ 1):
// one entry per signer that signed, plus the tree nodes shared by patches.
// Even a single-signer core sends this 68-byte form, not a bare signature.
type MultiSignature struct {
	Proofs []SignatureProof
	Patch  []Node
}

// SignatureProof is one signer's contribution. Patch > 0 means the signer
// signed a length shorter by Patch blocks and the verifier must rebuild the
// tree at that length from the shared patch nodes.
type SignatureProof struct {
	Signer    uint64
	Signature [64]byte
	Patch     uint64
}

// MarshalMultiSignature encodes s as messages.js `multiSignature`.
func MarshalMultiSignature(s *MultiSignature) ([]byte, error) {
	e := compact.NewEncoder(nil)
	e.ArrayLen(len(s.Proofs))
	for _, p := range s.Proofs {
		e.Uint(p.Signer)
		e.Fixed64(p.Signature[:])
		e.Uint(p.Patch)
	}
	EncodeNodes(e, s.Patch)
	b, err := e.Finish()
	if err != nil {
		return nil, fmt.Errorf("encode multisignature: %w", err)
	}
	return b, nil
}

// UnmarshalMultiSignature decodes a `multiSignature` blob. Trailing bytes
// are ignored, as Node's c.decode does for this type.
func UnmarshalMultiSignature(b []byte) (*MultiSignature, error) {
	d := compact.NewDecoder(b)
	proofs, err := compact.Array(d, func(d *compact.Decoder) (SignatureProof, error) {
		var p SignatureProof
		p.Signer, _ = d.Uint()
		p.Signature, _ = d.Fixed64()
		var err error
		p.Patch, err = d.Uint()
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("decode multisignature proofs: %w", err)
	}
	patch, err := DecodeNodes(d)
	if err != nil {
		return nil, fmt.Errorf("decode multisignature patch: %w", err)
	}
	return &MultiSignature{Proofs: proofs, Patch: patch}, nil
}

// MultiSignatureV0 is the older blob used by version-0 manifests, where
// each proof carries its own patch description as indexes into Patch.
type MultiSignatureV0 struct {
	Proofs []SignatureProofV0
	Patch  []Node
}

// SignatureProofV0 is one signer's entry in a MultiSignatureV0.
type SignatureProofV0 struct {
	Signer    uint64
	Signature [64]byte
	Patch     *PatchV0
}

// PatchV0 lists, by position in MultiSignatureV0.Patch, the nodes that
// upgrade from Start by Length blocks.
type PatchV0 struct {
	Start, Length uint64
	Nodes         []uint64
}

// MarshalMultiSignatureV0 encodes s as messages.js `multiSignaturev0`.
func MarshalMultiSignatureV0(s *MultiSignatureV0) ([]byte, error) {
	e := compact.NewEncoder(nil)
	e.ArrayLen(len(s.Proofs))
	for _, p := range s.Proofs {
		e.Uint(boolUint(p.Patch != nil))
		e.Uint(p.Signer)
		e.Fixed64(p.Signature[:])
		if p.Patch != nil {
			e.Uint(p.Patch.Start)
			e.Uint(p.Patch.Length)
			e.ArrayLen(len(p.Patch.Nodes))
			for _, n := range p.Patch.Nodes {
				e.Uint(n)
			}
		}
	}
	EncodeNodes(e, s.Patch)
	b, err := e.Finish()
	if err != nil {
		return nil, fmt.Errorf("encode multisignature v0: %w", err)
	}
	return b, nil
}

// UnmarshalMultiSignatureV0 decodes a `multiSignaturev0` blob.
func UnmarshalMultiSignatureV0(b []byte) (*MultiSignatureV0, error) {
	d := compact.NewDecoder(b)
	proofs, err := compact.Array(d, func(d *compact.Decoder) (SignatureProofV0, error) {
		var p SignatureProofV0
		flags, _ := d.Uint()
		p.Signer, _ = d.Uint()
		sig, err := d.Fixed64()
		if err != nil {
			return p, err
		}
		p.Signature = sig
		if flags&1 != 0 {
			pt := &PatchV0{}
			pt.Start, _ = d.Uint()
			pt.Length, _ = d.Uint()
			if pt.Nodes, err = compact.Array(d, (*compact.Decoder).Uint); err != nil {
				return p, err
			}
			p.Patch = pt
		}
		return p, nil
	})
	if err != nil {
		return nil, fmt.Errorf("decode multisignature v0 proofs: %w", err)
	}
	patch, err := DecodeNodes(d)
	if err != nil {
		return nil, fmt.Errorf("decode multisignature v0 patch: %w", err)
	}
	return &MultiSignatureV0{Proofs: proofs, Patch: patch}, nil
}
