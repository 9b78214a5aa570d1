package secretstream

import (
	"crypto/subtle"
	"encoding/binary"
	"errors"

	"golang.org/x/crypto/chacha20"
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

// push encrypts msg with tag, appending len(msg)+ssABytes bytes to dst.
func (s *ssState) push(dst, msg []byte, tag byte) []byte {
	c := s.cipher(0)
	var block [64]byte
	var polyKey [32]byte
	var block0 [64]byte
	c.XORKeyStream(block0[:], block0[:]) // the whole of block 0, so the next is block 1
	copy(polyKey[:], block0[:32])
	block[0] = tag
	c.XORKeyStream(block[:], block[:]) // block 1
	n := len(dst)
	dst = append(dst, block[0])
	dst = append(dst, msg...)
	ct := dst[n+1:]
	c.XORKeyStream(ct, ct) // from block 2
	m := poly1305.New(&polyKey)
	m.Write(block[:])
	m.Write(ct)
	m.Write(zeroPad[:len(ct)%16]) // libsodium: (0x10 - 64 + mlen) & 0xf
	var lens [16]byte
	binary.LittleEndian.PutUint64(lens[8:], uint64(64+len(ct)))
	m.Write(lens[:])
	dst = m.Sum(dst)
	s.advance(dst[len(dst)-16:], tag)
	return dst
}

// pull authenticates and decrypts in (tag byte ‖ ciphertext ‖ MAC) into
// dst[:len(in)-ssABytes], which may alias in[1:]. The state only advances
// when the message is authentic.
func (s *ssState) pull(dst, in []byte) (tag byte, err error) {
	if len(in) < ssABytes {
		return 0, errStreamAuth
	}
	mlen := len(in) - ssABytes
	ct := in[1 : 1+mlen]
	c := s.cipher(0)
	var block [64]byte
	var polyKey [32]byte
	var block0 [64]byte
	c.XORKeyStream(block0[:], block0[:]) // the whole of block 0, so the next is block 1
	copy(polyKey[:], block0[:32])
	block[0] = in[0]
	c.XORKeyStream(block[:], block[:])
	tag = block[0]
	block[0] = in[0]
	m := poly1305.New(&polyKey)
	m.Write(block[:])
	m.Write(ct)
	m.Write(zeroPad[:mlen%16]) // libsodium: (0x10 - 64 + mlen) & 0xf
	var lens [16]byte
	binary.LittleEndian.PutUint64(lens[8:], uint64(64+mlen))
	m.Write(lens[:])
	var mac [16]byte
	m.Sum(mac[:0])
	if subtle.ConstantTimeCompare(mac[:], in[1+mlen:]) != 1 {
		return 0, errStreamAuth
	}
	c.XORKeyStream(dst[:mlen], ct)
	s.advance(mac[:], tag)
	return tag, nil
}
