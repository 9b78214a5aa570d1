package secretstream

import (
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/chacha20poly1305"
)

// protocolName is the Noise protocol name noise-handshake builds for the
// XX pattern with noise-curve-ed. It is shorter than the hash, so it is
// used directly (zero-padded) as the initial handshake hash.
const protocolName = "Noise_XX_Ed25519_ChaChaPoly_BLAKE2b"

const hashLen = 64

// Sizes of the three XX messages with empty payloads.
const (
	msg1Len = 32
	msg2Len = 32 + 32 + 16 + 16
	msg3Len = 32 + 16 + 16
)

func newBlake2b512() hash.Hash {
	h, err := blake2b.New512(nil)
	if err != nil {
		panic(err) // only fails for keys over 64 bytes
	}
	return h
}

// symmetricState is the Noise SymmetricState with BLAKE2b and ChaChaPoly.
// The chaining key stays 64 bytes; cipher keys are the first 32 bytes of
// HKDF outputs, as in noise-handshake.
type symmetricState struct {
	h      [hashLen]byte
	ck     [hashLen]byte
	k      [32]byte
	hasKey bool
	n      uint64
}

func (s *symmetricState) init() {
	copy(s.h[:], protocolName)
	s.ck = s.h
	s.mixHash(nil) // empty prologue
}

func (s *symmetricState) mixHash(data []byte) {
	h := newBlake2b512()
	h.Write(s.h[:])
	h.Write(data)
	h.Sum(s.h[:0])
}

// hkdf2 is Noise's HKDF with two outputs over HMAC-BLAKE2b.
func hkdf2(ck, ikm []byte) (t1, t2 [hashLen]byte) {
	mac := hmac.New(newBlake2b512, ck)
	mac.Write(ikm)
	prk := mac.Sum(nil)
	mac = hmac.New(newBlake2b512, prk)
	mac.Write([]byte{1})
	mac.Sum(t1[:0])
	mac.Reset()
	mac.Write(t1[:])
	mac.Write([]byte{2})
	mac.Sum(t2[:0])
	return t1, t2
}

func (s *symmetricState) mixKey(ikm []byte) {
	ck, k := hkdf2(s.ck[:], ikm)
	s.ck = ck
	copy(s.k[:], k[:32])
	s.hasKey = true
	s.n = 0
}

// nonce is 4 zero bytes then the counter, little-endian, as in Noise.
func (s *symmetricState) nonce() []byte {
	var n [chacha20poly1305.NonceSize]byte
	binary.LittleEndian.PutUint64(n[4:], s.n)
	return n[:]
}

func (s *symmetricState) encryptAndHash(pt []byte) []byte {
	ct := pt
	if s.hasKey {
		aead, err := chacha20poly1305.New(s.k[:])
		if err != nil {
			panic(err) // key is always 32 bytes
		}
		ct = aead.Seal(nil, s.nonce(), pt, s.h[:])
		s.n++
	}
	s.mixHash(ct)
	return ct
}

func (s *symmetricState) decryptAndHash(ct []byte) ([]byte, error) {
	pt := ct
	if s.hasKey {
		aead, err := chacha20poly1305.New(s.k[:])
		if err != nil {
			panic(err)
		}
		pt, err = aead.Open(nil, s.nonce(), ct, s.h[:])
		if err != nil {
			return nil, errors.New("noise: message authentication failed")
		}
		s.n++
	}
	s.mixHash(ct)
	return pt, nil
}

func (s *symmetricState) split() (k1, k2 [32]byte) {
	t1, t2 := hkdf2(s.ck[:], nil)
	copy(k1[:], t1[:32])
	copy(k2[:], t2[:32])
	return k1, k2
}

// handshake runs Noise XX with empty payloads, one message at a time.
// Each side calls writeMessage/readMessage in the order of the pattern:
// initiator: write, read, write; responder: read, write, read.
type handshake struct {
	sym       symmetricState
	initiator bool
	s         KeyPair
	e         KeyPair
	re, rs    []byte
	step      int

	// Results, set when complete.
	complete bool
	tx, rx   [32]byte
	hash     [hashLen]byte
}

func newHandshake(initiator bool, static, ephemeral KeyPair) *handshake {
	hs := &handshake{initiator: initiator, s: static, e: ephemeral}
	hs.sym.init()
	return hs
}

func (hs *handshake) dh(local KeyPair, remote []byte) error {
	out, err := dh(local.Private, remote)
	if err != nil {
		return fmt.Errorf("noise handshake: %w", err)
	}
	hs.sym.mixKey(out)
	return nil
}

func (hs *handshake) finish() {
	k1, k2 := hs.sym.split()
	if hs.initiator {
		hs.tx, hs.rx = k1, k2
	} else {
		hs.tx, hs.rx = k2, k1
	}
	hs.hash = hs.sym.h
	hs.complete = true
}

// writeMessage produces the next handshake message (unframed).
func (hs *handshake) writeMessage() ([]byte, error) {
	var out []byte
	switch {
	case hs.initiator && hs.step == 0: // -> e
		out = append(out, hs.e.Public...)
		hs.sym.mixHash(hs.e.Public)
	case !hs.initiator && hs.step == 1: // <- e, ee, s, es
		out = append(out, hs.e.Public...)
		hs.sym.mixHash(hs.e.Public)
		if err := hs.dh(hs.e, hs.re); err != nil {
			return nil, err
		}
		out = append(out, hs.sym.encryptAndHash(hs.s.Public)...)
		if err := hs.dh(hs.s, hs.re); err != nil {
			return nil, err
		}
	case hs.initiator && hs.step == 2: // -> s, se
		out = append(out, hs.sym.encryptAndHash(hs.s.Public)...)
		if err := hs.dh(hs.s, hs.re); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("noise handshake: not our turn to write at step %d", hs.step)
	}
	out = append(out, hs.sym.encryptAndHash(nil)...)
	hs.step++
	if hs.step == 3 {
		hs.finish()
	}
	return out, nil
}

// readMessage consumes the peer's next handshake message (unframed). Like
// noise-handshake, bytes after the tokens are the (encrypted) payload; it
// is authenticated and ignored.
func (hs *handshake) readMessage(msg []byte) error {
	take := func(n int) ([]byte, error) {
		if len(msg) < n {
			return nil, fmt.Errorf("noise handshake: message %d is too short", hs.step+1)
		}
		b := msg[:n:n]
		msg = msg[n:]
		return b, nil
	}
	switch {
	case !hs.initiator && hs.step == 0: // -> e
		re, err := take(32)
		if err != nil {
			return err
		}
		hs.re = re
		hs.sym.mixHash(re)
	case hs.initiator && hs.step == 1: // <- e, ee, s, es
		re, err := take(32)
		if err != nil {
			return err
		}
		hs.re = re
		hs.sym.mixHash(re)
		if err := hs.dh(hs.e, hs.re); err != nil {
			return err
		}
		ct, err := take(32 + 16)
		if err != nil {
			return err
		}
		if hs.rs, err = hs.sym.decryptAndHash(ct); err != nil {
			return fmt.Errorf("noise handshake: responder static key: %w", err)
		}
		if err := hs.dh(hs.e, hs.rs); err != nil {
			return err
		}
	case !hs.initiator && hs.step == 2: // -> s, se
		ct, err := take(32 + 16)
		if err != nil {
			return err
		}
		if hs.rs, err = hs.sym.decryptAndHash(ct); err != nil {
			return fmt.Errorf("noise handshake: initiator static key: %w", err)
		}
		if err := hs.dh(hs.e, hs.rs); err != nil {
			return err
		}
	default:
		return fmt.Errorf("noise handshake: not our turn to read at step %d", hs.step)
	}
	if _, err := hs.sym.decryptAndHash(msg); err != nil {
		return fmt.Errorf("noise handshake: payload of message %d: %w", hs.step+1, err)
	}
	hs.step++
	if hs.step == 3 {
		hs.finish()
	}
	return nil
}
