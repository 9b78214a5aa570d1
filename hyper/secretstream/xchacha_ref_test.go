package secretstream

import (
	"bytes"
	"crypto/subtle"
	"encoding/binary"
	"math/rand/v2"
	"strconv"
	"testing"

	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/poly1305"
)

// refPush is the straightforward construction (generic ChaCha20 block by
// block) that push and pull are checked against.
// It encrypts msg with tag, appending len(msg)+ssABytes bytes to dst.
func (s *ssState) refPush(dst, msg []byte, tag byte) []byte {
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
func (s *ssState) refPull(dst, in []byte) (tag byte, err error) {
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

// TestSealMatchesReference checks push and pull against the block-by-block
// construction for every message length up to a few blocks and some large
// ones, with rekeying tags mixed in, and with dst having and lacking room
// in front of the message.
func TestSealMatchesReference(t *testing.T) {
	t.Run("assembly="+strconv.FormatBool(haveChachaAsm), testSealMatchesReference)
	if haveChachaAsm {
		haveChachaAsm = false
		defer func() { haveChachaAsm = true }()
		t.Run("assembly=false", testSealMatchesReference)
	}
}

func testSealMatchesReference(t *testing.T) {
	key, header := bytes.Repeat([]byte{3}, 32), bytes.Repeat([]byte{5}, 24)
	var a, ref, pa, pref ssState
	a.init(key, header)
	ref.init(key, header)
	pa.init(key, header)
	pref.init(key, header)
	rng := rand.New(rand.NewPCG(1, 2))
	lengths := []int{}
	for n := 0; n <= 300; n++ {
		lengths = append(lengths, n)
	}
	lengths = append(lengths, 511, 512, 513, 1023, 1024, 1025, 1535, 4095, 4096, 65536, 65536+300, 1<<20+7)
	for i, n := range lengths {
		msg := make([]byte, n)
		for j := range msg {
			msg[j] = byte(rng.Uint32())
		}
		tag := byte(tagMessage)
		if i%37 == 36 {
			tag = tagRekey
		}
		prefix := make([]byte, i%100) // 0..99 bytes already in dst
		for j := range prefix {
			prefix[j] = byte(j)
		}
		got := a.push(bytes.Clone(prefix), msg, tag)
		want := ref.refPush(bytes.Clone(prefix), msg, tag)
		if !bytes.Equal(got, want) {
			t.Fatalf("message %d (%d bytes, %d in dst): push differs from the reference", i, n, len(prefix))
		}
		ct := got[len(prefix):]
		out := make([]byte, len(ct))
		gtag, err := pa.pull(out, ct)
		if err != nil || gtag != tag || !bytes.Equal(out[:n], msg) {
			t.Fatalf("message %d (%d bytes): pull: tag %d, %v", i, n, gtag, err)
		}
		rout := make([]byte, len(ct))
		if _, err := pref.refPull(rout, ct); err != nil {
			t.Fatalf("message %d: reference pull: %v", i, err)
		}
		// One flipped bit anywhere must fail authentication.
		if n > 0 {
			bad := bytes.Clone(ct)
			bad[rng.IntN(len(bad))] ^= 1 << rng.IntN(8)
			var probe ssState = pa
			probe.aead = nil
			if _, err := probe.pull(make([]byte, len(bad)), bad); err == nil {
				t.Fatalf("message %d: a flipped bit was accepted", i)
			}
		}
	}
	if a.k != ref.k || a.nonce != ref.nonce || pa.k != ref.k || pa.nonce != ref.nonce {
		t.Fatal("states diverged from the reference")
	}
}

// TestChaChaAsm checks the assembly keystream against x/crypto's ChaCha20
// for several keys, nonces, counters and lengths (where it runs at all).
func TestChaChaAsm(t *testing.T) {
	if !haveChachaAsm {
		t.Skip("no ChaCha20 assembly on this machine")
	}
	rng := rand.New(rand.NewPCG(5, 8))
	for trial := 0; trial < 40; trial++ {
		var key [32]byte
		var nonce [12]byte
		for i := range key {
			key[i] = byte(rng.Uint32())
		}
		for i := range nonce {
			nonce[i] = byte(rng.Uint32())
		}
		counter := rng.Uint32N(1 << 20)
		src := make([]byte, rng.IntN(20*512))
		for i := range src {
			src[i] = byte(rng.Uint32())
		}
		want := refXOR(t, &key, &nonce, counter, src)
		got := bytes.Clone(src)
		if !chachaXOR(got, &key, &nonce, counter) {
			t.Fatal("the assembly did not run")
		}
		if !bytes.Equal(got, want) {
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("trial %d (%d bytes, counter %d): first difference at byte %d", trial, len(got), counter, i)
				}
			}
		}
	}
}

// FuzzChaChaAsm holds the assembly to x/crypto's keystream for any key,
// nonce, counter and length the fuzzer finds.
func FuzzChaChaAsm(f *testing.F) {
	f.Add(make([]byte, 44), uint32(1), make([]byte, 513))
	f.Fuzz(func(t *testing.T, kn []byte, counter uint32, src []byte) {
		if !haveChachaAsm {
			t.Skip("no ChaCha20 assembly on this machine")
		}
		if len(kn) < 44 || uint64(counter)+uint64(len(src))/64+1 >= 1<<32 {
			return // x/crypto refuses a counter that would wrap
		}
		var key [32]byte
		var nonce [12]byte
		copy(key[:], kn)
		copy(nonce[:], kn[32:])
		want := refXOR(t, &key, &nonce, counter, src)
		got := bytes.Clone(src)
		chachaXOR(got, &key, &nonce, counter)
		if !bytes.Equal(got, want) {
			t.Fatalf("%d bytes from counter %d: the assembly differs from x/crypto", len(src), counter)
		}
	})
}

// refXOR is src XORed with x/crypto's ChaCha20 keystream from counter on.
func refXOR(t *testing.T, key *[32]byte, nonce *[12]byte, counter uint32, src []byte) []byte {
	t.Helper()
	c, err := chacha20.NewUnauthenticatedCipher(key[:], nonce[:])
	if err != nil {
		t.Fatal(err)
	}
	c.SetCounter(counter)
	out := make([]byte, len(src))
	c.XORKeyStream(out, src)
	return out
}
