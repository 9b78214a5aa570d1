//go:build amd64 && !purego

package merkle

import (
	"encoding/binary"

	"golang.org/x/sys/cpu"
)

// haveBlake2bAsm: blake2b2 can run (it needs AVX-512F and VL). Tests turn
// it off to check the portable path.
var haveBlake2bAsm = cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL

// blake2b2 runs the BLAKE2b compression of n 128-byte blocks of x into the
// state h[0:8] and of y into h[8:16], side by side. t is the byte counter
// before the first block; it grows by 128 per block. If final is not 0,
// the last block is compressed as the final one.
//
//go:noescape
func blake2b2(h *[16]uint64, x, y *byte, n int, t uint64, final uint64)

// BLAKE2b-256's initial state: the IV with the parameter block (digest
// length 32, no key, fanout 1, depth 1) folded into the first word.
var blake2b256IV = [8]uint64{
	0x6a09e667f3bcc908 ^ 0x01010020, 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b, 0xa54ff53a5f1d36f1,
	0x510e527fade682d1, 0x9b05688c2b3e6c1f, 0x1f83d9abfb41bd6b, 0x5be0cd19137e2179,
}

// leafHash2 is LeafHash of x and of y, which are as long as each other,
// computed together by blake2b2. The hashed message is 0x00 ‖ u64le(len)
// ‖ data: its first block takes a 9-byte header and 119 data bytes, the
// full blocks after it come straight from data, and the last block (1 to
// 128 bytes) is padded with zeros.
func leafHash2(x, y []byte) (hx, hy [32]byte) {
	var h [16]uint64
	copy(h[0:8], blake2b256IV[:])
	copy(h[8:16], blake2b256IV[:])
	n := len(x)
	total := uint64(9 + n)
	var bx, by [128]byte
	bx[0], by[0] = leafType, leafType
	binary.LittleEndian.PutUint64(bx[1:9], uint64(n))
	binary.LittleEndian.PutUint64(by[1:9], uint64(n))
	if total <= 128 {
		copy(bx[9:], x)
		copy(by[9:], y)
		blake2b2(&h, &bx[0], &by[0], 1, total-128, 1)
	} else {
		copy(bx[9:], x[:119])
		copy(by[9:], y[:119])
		blake2b2(&h, &bx[0], &by[0], 1, 0, 0)
		rx, ry := x[119:], y[119:]
		full := (len(rx) - 1) / 128 // the last block keeps 1 to 128 bytes
		if full > 0 {
			blake2b2(&h, &rx[0], &ry[0], full, 128, 0)
		}
		clear(bx[:])
		clear(by[:])
		copy(bx[:], rx[full*128:])
		copy(by[:], ry[full*128:])
		blake2b2(&h, &bx[0], &by[0], 1, total-128, 1)
	}
	for i := 0; i < 4; i++ {
		binary.LittleEndian.PutUint64(hx[8*i:], h[i])
		binary.LittleEndian.PutUint64(hy[8*i:], h[8+i])
	}
	return hx, hy
}
