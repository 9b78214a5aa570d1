package secretstream

import (
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"errors"

	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/poly1305"
)

// This file is libsodium's crypto_secretstream_xchacha20poly1305, which
// NoiseSecretStream uses for the data phase. Go has no implementation, and
// it is not the same construction as XChaCha20-Poly1305 AEAD: the tag byte
// is encrypted in a block of its own, the MAC covers that whole 64-byte
// block, the nonce evolves with every message, and the padding after the
// ciphertext is computed as (16 - (64 + mlen)) mod 16, i.e. mlen mod 16
// zero bytes, which differs from RFC 8439's pad16.

const (
	ssKeyBytes    = 32
	ssHeaderBytes = 24
	// ssABytes is the overhead per message: one tag byte and a 16-byte MAC.
	ssABytes = 17

	tagMessage = 0x00
	tagPush    = 0x01
	tagRekey   = 0x02
	tagFinal   = tagPush | tagRekey
)

var errStreamAuth = errors.New("secretstream: message authentication failed")

// ssState is the state of one direction of a secretstream.
type ssState struct {
	k     [32]byte
	nonce [12]byte // 4-byte LE counter ‖ 8-byte inonce
	// aead is ChaCha20-Poly1305 keyed with aeadKey, made when k changes.
	aead    cipher.AEAD
	aeadKey [32]byte
}

// init derives the state from a key and header as
// crypto_secretstream_xchacha20poly1305_init_push/pull do.
func (s *ssState) init(key, header []byte) {
	k, err := chacha20.HChaCha20(key, header[:16])
	if err != nil {
		panic(err) // sizes are fixed by the callers
	}
	copy(s.k[:], k)
	s.resetCounter()
	copy(s.nonce[4:], header[16:24])
}

func (s *ssState) resetCounter() {
	binary.LittleEndian.PutUint32(s.nonce[:4], 1)
}

func (s *ssState) cipher(counter uint32) *chacha20.Cipher {
	c, err := chacha20.NewUnauthenticatedCipher(s.k[:], s.nonce[:])
	if err != nil {
		panic(err)
	}
	if counter != 0 {
		c.SetCounter(counter)
	}
	return c
}

// rekey replaces the key and inonce with themselves XORed with keystream.
func (s *ssState) rekey() {
	var buf [40]byte
	copy(buf[:32], s.k[:])
	copy(buf[32:], s.nonce[4:])
	s.cipher(0).XORKeyStream(buf[:], buf[:])
	copy(s.k[:], buf[:32])
	copy(s.nonce[4:], buf[32:])
	s.resetCounter()
}

// advance updates the state after a message with the given MAC and tag.
func (s *ssState) advance(mac []byte, tag byte) {
	for i := 0; i < 8; i++ {
		s.nonce[4+i] ^= mac[i]
	}
	c := binary.LittleEndian.Uint32(s.nonce[:4]) + 1
	binary.LittleEndian.PutUint32(s.nonce[:4], c)
	if tag&tagRekey != 0 || c == 0 {
		s.rekey()
	}
}

var zeroPad [16]byte

// Sealing and opening use IETF ChaCha20-Poly1305 (which has vectorised
// assembly) only for its ChaCha20: with the same key and 12-byte nonce it
// encrypts from block counter 1, exactly as secretstream does, so the
// AEAD's ciphertext of (64-byte tag block ‖ message) is secretstream's.
// Its own tag is discarded: secretstream's MAC pads the ciphertext
// differently (see above), so it is computed separately with Poly1305
// keyed by block 0.
//
// Both work in place on a buffer laid out as
//
//	buf[0:63]                 scratch (overwritten)
//	buf[63]                   the encrypted tag byte
//	buf[64:64+mlen]           message / ciphertext
//	buf[64+mlen:80+mlen]      MAC
//
// so that buf[63:] is the wire message (after the uint24 length).

// Where our own ChaCha20 assembly runs (amd64 with AVX-512, see
// chacha_amd64.s), the message is XORed with the keystream from counter
// 2 directly instead, which spares the AEAD's unused Poly1305.

// sealHeadroom is how many scratch bytes precede a message in place.
const sealHeadroom = 63

// aeadFor returns the ChaCha20-Poly1305 instance for the current key.
func (s *ssState) aeadFor() cipher.AEAD {
	if s.aead == nil || s.aeadKey != s.k {
		a, err := chacha20poly1305.New(s.k[:])
		if err != nil {
			panic(err) // the key size is fixed
		}
		s.aead, s.aeadKey = a, s.k
	}
	return s.aead
}

// keystream returns ChaCha20 blocks 0 and 1 for the current key and nonce:
// the Poly1305 key and the keystream the tag block is encrypted with.
func (s *ssState) keystream() (ks [128]byte) {
	if !chachaXOR(ks[:], &s.k, &s.nonce, 0) {
		s.cipher(0).XORKeyStream(ks[:], ks[:])
	}
	return ks
}

// xorFrom XORs p in place with the keystream from block counter on.
func (s *ssState) xorFrom(p []byte, counter uint32) {
	if !chachaXOR(p, &s.k, &s.nonce, counter) {
		s.cipher(counter).XORKeyStream(p, p)
	}
}

// mac is secretstream's Poly1305 over the encrypted tag block and ct.
func mac(polyKey *[32]byte, block, ct []byte) (out [16]byte) {
	m := poly1305.New(polyKey)
	m.Write(block)
	m.Write(ct)
	m.Write(zeroPad[:len(ct)%16]) // libsodium: (0x10 - 64 + mlen) & 0xf
	var lens [16]byte
	binary.LittleEndian.PutUint64(lens[8:], uint64(64+len(ct)))
	m.Write(lens[:])
	m.Sum(out[:0])
	return out
}

// seal encrypts the message in buf[64:len(buf)-16] with tag, in place
// (layout above), leaving the wire message in buf[63:].
func (s *ssState) seal(buf []byte, tag byte) {
	mlen := len(buf) - 64 - 16
	ks := s.keystream()
	var polyKey [32]byte
	copy(polyKey[:], ks[:32])
	block := buf[:64]
	if haveChachaAsm {
		copy(block, ks[64:128]) // the tag block [tag, 0…] encrypted
		block[0] ^= tag
		s.xorFrom(buf[64:64+mlen], 2)
	} else {
		clear(block)
		block[0] = tag
		// Encrypts the tag block and the message from counter 1; the
		// AEAD's tag lands in buf[64+mlen:] and is replaced by ours below.
		s.aeadFor().Seal(buf[:0], s.nonce[:], buf[:64+mlen], nil)
	}
	m := mac(&polyKey, block, buf[64:64+mlen])
	buf[63] = block[0]
	copy(buf[64+mlen:], m[:])
	s.advance(m[:], tag)
}

// open authenticates and decrypts the wire message in buf[63:] in place
// (layout above): the plaintext lands in buf[64:len(buf)-16]. The state
// only advances when the message is authentic.
func (s *ssState) open(buf []byte) (tag byte, err error) {
	if len(buf) < sealHeadroom+ssABytes {
		return 0, errStreamAuth
	}
	mlen := len(buf) - 64 - 16
	ks := s.keystream()
	var polyKey [32]byte
	copy(polyKey[:], ks[:32])
	// The encrypted tag block: its first byte was sent, the rest is the
	// keystream of block 1 (the plaintext block is zero after the tag).
	block := ks[64:128]
	tag = buf[63] ^ block[0]
	block[0] = buf[63]
	m := mac(&polyKey, block, buf[64:64+mlen])
	if subtle.ConstantTimeCompare(m[:], buf[64+mlen:]) != 1 {
		return 0, errStreamAuth
	}
	if haveChachaAsm {
		s.xorFrom(buf[64:64+mlen], 2)
	} else {
		// XOR with the keystream from counter 1; buf[:64] and the MAC
		// are overwritten with junk.
		s.aeadFor().Seal(buf[:0], s.nonce[:], buf[:64+mlen], nil)
	}
	s.advance(m[:], tag)
	return tag, nil
}

// push encrypts msg with tag, appending len(msg)+ssABytes bytes to dst.
func (s *ssState) push(dst, msg []byte, tag byte) []byte {
	n := len(dst)
	dst = append(dst, 0)
	dst = append(dst, msg...)
	dst = append(dst, zeroPad[:]...)
	if n < sealHeadroom {
		buf := make([]byte, sealHeadroom+len(dst)-n)
		copy(buf[sealHeadroom:], dst[n:])
		s.seal(buf, tag)
		copy(dst[n:], buf[sealHeadroom:])
		return dst
	}
	// Borrow the 63 bytes before the message as scratch.
	var save [sealHeadroom]byte
	copy(save[:], dst[n-sealHeadroom:n])
	s.seal(dst[n-sealHeadroom:], tag)
	copy(dst[n-sealHeadroom:n], save[:])
	return dst
}

// pull authenticates and decrypts in (tag byte ‖ ciphertext ‖ MAC) into
// dst[:len(in)-ssABytes], which may alias in[1:]. The state only advances
// when the message is authentic.
func (s *ssState) pull(dst, in []byte) (tag byte, err error) {
	if len(in) < ssABytes {
		return 0, errStreamAuth
	}
	buf := make([]byte, sealHeadroom+len(in))
	copy(buf[sealHeadroom:], in)
	if tag, err = s.open(buf); err != nil {
		return 0, err
	}
	copy(dst[:len(in)-ssABytes], buf[64:len(buf)-16])
	return tag, nil
}
