//go:build amd64 && !purego

package secretstream

import (
	"encoding/binary"

	"golang.org/x/sys/cpu"
)

// haveChachaAsm: chachaXOR512 can run (it needs AVX-512F and VL). Tests
// turn it off to check the portable path.
var haveChachaAsm = cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL

// chachaXOR512 XORs n 512-byte chunks of src with the ChaCha20 keystream
// of state (constants, key, counter, nonce as RFC 8439 lays them out) into
// dst, eight blocks per chunk, and leaves state[12] at the next counter.
// dst and src may be the same.
//
//go:noescape
func chachaXOR512(dst, src *byte, n int, state *[16]uint32)

// chachaXOR XORs p in place with the ChaCha20 keystream of key and nonce
// from block counter on, and reports whether it could: without the
// assembly it does nothing and returns false. A tail shorter than 512
// bytes goes through a chunk on the stack.
func chachaXOR(p []byte, key *[32]byte, nonce *[12]byte, counter uint32) bool {
	if !haveChachaAsm {
		return false
	}
	st := [16]uint32{0x61707865, 0x3320646e, 0x79622d32, 0x6b206574}
	for i := 0; i < 8; i++ {
		st[4+i] = binary.LittleEndian.Uint32(key[4*i:])
	}
	st[12] = counter
	for i := 0; i < 3; i++ {
		st[13+i] = binary.LittleEndian.Uint32(nonce[4*i:])
	}
	full := len(p) / 512
	if full > 0 {
		chachaXOR512(&p[0], &p[0], full, &st) // advances st[12]
	}
	if rest := p[full*512:]; len(rest) > 0 {
		var chunk [512]byte
		copy(chunk[:], rest)
		chachaXOR512(&chunk[0], &chunk[0], 1, &st)
		copy(rest, chunk[:len(rest)])
	}
	return true
}
