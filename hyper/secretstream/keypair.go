package secretstream

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"fmt"

	"filippo.io/edwards25519"
)

// KeyPair is a static Noise identity. Hyperswarm uses Ed25519 signing key
// pairs for Noise (noise-curve-ed), so the same key pair can sign and
// take part in the handshake; Private is in the 64-byte seed‖public layout
// shared by crypto/ed25519 and libsodium.
type KeyPair struct {
	Public  ed25519.PublicKey
	Private ed25519.PrivateKey
}

// GenerateKeyPair returns a fresh random key pair.
func GenerateKeyPair() (KeyPair, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return KeyPair{}, fmt.Errorf("generate noise key pair: %w", err)
	}
	return KeyPair{Public: pub, Private: priv}, nil
}

// KeyPairFromSeed derives the key pair libsodium's crypto_sign_seed_keypair
// derives from a 32-byte seed, so a Go and a Node peer given the same seed
// have the same identity.
func KeyPairFromSeed(seed []byte) (KeyPair, error) {
	if len(seed) != ed25519.SeedSize {
		return KeyPair{}, fmt.Errorf("noise key pair seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	return KeyPair{Public: priv.Public().(ed25519.PublicKey), Private: priv}, nil
}

func (kp KeyPair) valid() error {
	if len(kp.Private) != ed25519.PrivateKeySize || len(kp.Public) != ed25519.PublicKeySize {
		return errors.New("key pair must have a 64-byte private and a 32-byte public key")
	}
	return nil
}

// errBadPoint is returned for remote keys libsodium's
// crypto_scalarmult_ed25519_noclamp would refuse.
var errBadPoint = errors.New("remote key is not a canonical main-subgroup Ed25519 point")

// lMinusOne is the group order minus one, as a scalar: [ℓ-1]P + P = [ℓ]P,
// which is the identity exactly when P has no torsion component.
var lMinusOne = func() *edwards25519.Scalar {
	one := edwards25519.NewScalar()
	b := [32]byte{1}
	if _, err := one.SetCanonicalBytes(b[:]); err != nil {
		panic(err)
	}
	return edwards25519.NewScalar().Negate(one)
}()

// dh is noise-curve-ed's Diffie-Hellman: the clamped SHA-512 of the seed
// times the remote public key, as an Edwards point (no conversion to
// Montgomery form). Like libsodium it refuses non-canonical encodings,
// small-order points, points outside the prime-order subgroup and an
// identity result, so that a peer cannot force a predictable secret.
func dh(priv ed25519.PrivateKey, remote []byte) ([]byte, error) {
	if len(remote) != 32 {
		return nil, errBadPoint
	}
	p, err := edwards25519.NewIdentityPoint().SetBytes(remote)
	if err != nil {
		return nil, errBadPoint
	}
	// SetBytes accepts non-canonical y (y ≥ 2^255-19); libsodium does not.
	if string(p.Bytes()) != string(remote) {
		return nil, errBadPoint
	}
	id := edwards25519.NewIdentityPoint()
	if edwards25519.NewIdentityPoint().MultByCofactor(p).Equal(id) == 1 {
		return nil, errBadPoint
	}
	check := edwards25519.NewIdentityPoint().ScalarMult(lMinusOne, p)
	if check.Add(check, p).Equal(id) != 1 {
		return nil, errBadPoint
	}
	h := sha512.Sum512(priv.Seed())
	s, err := edwards25519.NewScalar().SetBytesWithClamping(h[:32])
	if err != nil {
		return nil, fmt.Errorf("noise dh scalar: %w", err)
	}
	out := edwards25519.NewIdentityPoint().ScalarMult(s, p)
	if out.Equal(id) == 1 {
		return nil, errBadPoint
	}
	return out.Bytes(), nil
}
