package merkle

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/hyperos/hyperos/hyper/core/flat"
	"github.com/hyperos/hyperos/hyper/core/wire"
)

// ErrBadManifest reports a manifest that cannot describe a core.
var ErrBadManifest = errors.New("merkle: bad manifest")

// ManifestHash is the core key of a non-compat core:
// BLAKE2b-256(NS_MANIFEST ‖ encode(manifest)).
func ManifestHash(m *wire.Manifest) ([32]byte, error) {
	enc, err := wire.MarshalManifest(m)
	if err != nil {
		return [32]byte{}, err
	}
	h := newHash()
	h.Write(NSManifest[:])
	h.Write(enc)
	return sum(h), nil
}

// DefaultSignerManifest is the manifest hypercore 11 gives a core created
// from one key pair: version 1, quorum 1, one Ed25519 signer in the
// default namespace.
func DefaultSignerManifest(publicKey [32]byte) *wire.Manifest {
	return &wire.Manifest{
		Version: 1,
		Quorum:  1,
		Signers: []wire.Signer{{Signature: wire.SignatureEd25519, Namespace: DefaultNamespace, PublicKey: publicKey}},
	}
}

// ValidateManifest applies the checks of Verifier.createManifest: a quorum
// no larger than the signer list, and linked/userData only from version 2.
func ValidateManifest(m *wire.Manifest) error {
	if m == nil {
		return fmt.Errorf("nil manifest: %w", ErrBadManifest)
	}
	if m.Hash != wire.HashBlake2b {
		return fmt.Errorf("hash %d: %w", m.Hash, ErrBadManifest)
	}
	if m.Quorum > uint64(len(m.Signers)) {
		return fmt.Errorf("quorum %d above %d signers: %w", m.Quorum, len(m.Signers), ErrBadManifest)
	}
	if m.Version < 2 && (m.UserData != nil || len(m.Linked) > 0) {
		return fmt.Errorf("userData/linked need version 2: %w", ErrBadManifest)
	}
	return nil
}

// IsCompat reports whether key is a compat (v10-style) core key for m:
// a single signer whose public key is the core key.
func IsCompat(key [32]byte, m *wire.Manifest) bool {
	return m != nil && len(m.Signers) == 1 && m.Signers[0].PublicKey == key
}

// Verifier checks upgrade signatures for one core, following
// hypercore/lib/verifier.js: compat cores verify a raw Ed25519 signature
// over the 80-byte signable; manifest cores verify a multisignature blob
// with a quorum of distinct signers over the 112-byte signable, optionally
// patched; prologue cores accept the prologue's tree hash unsigned.
type Verifier struct {
	Key        [32]byte
	Manifest   *wire.Manifest
	Compat     bool
	Legacy     bool
	Version    uint64
	AllowPatch bool
	Quorum     uint64
	Signers    []wire.Signer
	Prologue   *wire.Prologue
}

// NewVerifier returns the verifier for a core with key and manifest. A nil
// manifest means a compat core whose only signer is the key itself.
func NewVerifier(key [32]byte, m *wire.Manifest) (*Verifier, error) {
	if m == nil {
		m = DefaultSignerManifest(key)
		m.Version = 0 // compat signers behave as version 0
	}
	compat := IsCompat(key, m)
	if !compat {
		h, err := ManifestHash(m)
		if err != nil {
			return nil, err
		}
		if h != key {
			return nil, fmt.Errorf("manifest hash %x is not the core key %x: %w", h[:4], key[:4], ErrBadManifest)
		}
	}
	if err := ValidateManifest(m); err != nil {
		return nil, err
	}
	v := &Verifier{Key: key, Manifest: m, Compat: compat, Signers: m.Signers}
	if compat {
		v.Version = 0
		v.Quorum = 1
	} else {
		v.Version = m.Version
		v.AllowPatch = m.AllowPatch
		v.Quorum = m.Quorum
		v.Prologue = m.Prologue
	}
	return v, nil
}

// ManifestForKey decides which manifest a reader adopts for key, given the
// one a remote sent (possibly nil). A sent manifest must hash to the key or
// be compat-style for it; with none, the core is assumed compat, as
// hypercore's _verifyBatchUpgrade does.
func ManifestForKey(key [32]byte, sent *wire.Manifest) (*wire.Manifest, error) {
	if sent == nil {
		return nil, nil
	}
	if IsCompat(key, sent) {
		return sent, nil
	}
	h, err := ManifestHash(sent)
	if err != nil {
		return nil, err
	}
	if h != key {
		return nil, fmt.Errorf("manifest does not hash to the core key: %w", ErrBadManifest)
	}
	return sent, nil
}

func (v *Verifier) signable(b *Batch, s wire.Signer) []byte {
	if v.Compat {
		return b.SignableCompat(v.Legacy)
	}
	if v.Version == 0 {
		return b.Signable(s.Namespace)
	}
	return b.Signable(v.Key)
}

func (v *Verifier) verifySigner(b *Batch, s wire.Signer, sig []byte) bool {
	if len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(ed25519.PublicKey(s.PublicKey[:]), v.signable(b, s), sig)
}

// Verify reports whether signature signs batch b.
func (v *Verifier) Verify(b *Batch, signature []byte) bool {
	if v.Version == 0 {
		if signature == nil || len(v.Signers) == 0 {
			return false
		}
		if v.Compat || (!v.AllowPatch && len(v.Signers) == 1) {
			return v.verifySigner(b, v.Signers[0], signature)
		}
		return v.verifyMulti(b, signature)
	}
	if v.Prologue != nil && b.Length <= v.Prologue.Length {
		return b.Length == v.Prologue.Length && b.Hash() == v.Prologue.Hash
	}
	return v.verifyMulti(b, signature)
}

func (v *Verifier) verifyMulti(b *Batch, signature []byte) bool {
	if signature == nil || v.Quorum == 0 {
		return false
	}
	var proofs []wire.SignatureProof
	var patch []Node
	if v.Version >= 1 {
		ms, err := wire.UnmarshalMultiSignature(signature)
		if err != nil {
			return false
		}
		proofs, patch = ms.Proofs, ms.Patch
	} else {
		ms, err := wire.UnmarshalMultiSignatureV0(signature)
		if err != nil {
			return false
		}
		for _, p := range ms.Proofs {
			var n uint64
			if p.Patch != nil {
				n = p.Patch.Length
			}
			proofs = append(proofs, wire.SignatureProof{Signer: p.Signer, Signature: p.Signature, Patch: n})
		}
		patch = ms.Patch
	}
	if uint64(len(proofs)) < v.Quorum {
		return false
	}
	var nodes map[uint64]Node
	if v.AllowPatch && len(patch) > 0 {
		nodes = make(map[uint64]Node, len(patch))
		for _, n := range patch {
			nodes[n.Index] = n
		}
	}
	tried := make([]bool, len(v.Signers))
	for i := uint64(0); i < v.Quorum; i++ {
		in := proofs[i]
		tree := b
		if in.Patch > 0 && v.AllowPatch {
			tree = b.Clone()
			up, ok := patchUpgrade(nodes, b.Length, in.Patch)
			if !ok {
				return false
			}
			if _, err := verifyUpgrade(&wire.Data{Fork: tree.Fork, Upgrade: up}, nil, tree); err != nil {
				return false
			}
		}
		if in.Signer >= uint64(len(v.Signers)) || tried[in.Signer] {
			return false
		}
		tried[in.Signer] = true
		if !v.verifySigner(tree, v.Signers[in.Signer], in.Signature[:]) {
			return false
		}
	}
	return true
}

// patchUpgrade builds the upgrade from start by length blocks out of the
// shared patch nodes of a multisignature (verifier.js generateUpgrade).
func patchUpgrade(patch map[uint64]Node, start, length uint64) (*wire.DataUpgrade, bool) {
	if length > 1<<52 || start > 1<<52 {
		return nil, false
	}
	u := &wire.DataUpgrade{Start: start, Length: length, AdditionalNodes: []Node{}}
	from := start * 2
	to := from + length*2
	set := false
	for it := flat.NewIterator(0); it.FullRoot(to); it.NextTree() {
		if it.Index+it.Factor/2 < from {
			continue
		}
		if !set && from >= 2 && it.Contains(from-2) {
			set = true
			root := it.Index
			target := from - 2
			it.Seek(target)
			for it.Index != root {
				it.Sibling()
				if it.Index > target {
					n, ok := patch[it.Index]
					if !ok {
						return nil, false
					}
					u.Nodes = append(u.Nodes, n)
				}
				it.Parent()
			}
			continue
		}
		set = true
		n, ok := patch[it.Index]
		if !ok {
			return nil, false
		}
		u.Nodes = append(u.Nodes, n)
	}
	return u, true
}

// Sign signs batch b with priv, which must belong to one of the signers.
// Compat and v0 cores get the raw 64-byte signature; a v1+ core with a
// single signer gets the assembled 68-byte multisignature, as Node writes
// it. For multi-signer cores the raw signature is returned and the caller
// collects a quorum with Assemble.
func (v *Verifier) Sign(b *Batch, priv ed25519.PrivateKey) ([]byte, error) {
	pub, ok := priv.Public().(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("sign: not an ed25519 key")
	}
	for i, s := range v.Signers {
		if !bytes.Equal(s.PublicKey[:], pub) {
			continue
		}
		sig := ed25519.Sign(priv, v.signable(b, s))
		if len(v.Signers) != 1 || v.Version == 0 {
			return sig, nil
		}
		var proof wire.SignatureProof
		proof.Signer = uint64(i)
		copy(proof.Signature[:], sig)
		return wire.MarshalMultiSignature(&wire.MultiSignature{Proofs: []wire.SignatureProof{proof}, Patch: []Node{}})
	}
	return nil, fmt.Errorf("sign: public key is not a declared signer: %w", ErrBadManifest)
}

// Assemble combines raw signatures from several signers (all over the same
// length, so without patches) into a v1 multisignature blob.
func Assemble(sigs map[uint64][]byte) ([]byte, error) {
	ms := &wire.MultiSignature{Patch: []Node{}}
	for i := uint64(0); len(ms.Proofs) < len(sigs); i++ {
		sig, ok := sigs[i]
		if !ok {
			if i > 1<<20 {
				break
			}
			continue
		}
		if len(sig) != ed25519.SignatureSize {
			return nil, fmt.Errorf("assemble: signer %d signature is %d bytes", i, len(sig))
		}
		var p wire.SignatureProof
		p.Signer = i
		copy(p.Signature[:], sig)
		ms.Proofs = append(ms.Proofs, p)
	}
	return wire.MarshalMultiSignature(ms)
}
