package merkle

// LeafHashes returns LeafHash of each block. Where the BLAKE2b assembly
// runs (amd64 with AVX-512), blocks of equal length are hashed two at a
// time, side by side, which takes about as long as hashing one.
func LeafHashes(blocks [][]byte) [][32]byte {
	out := make([][32]byte, len(blocks))
	i := 0
	for ; i+1 < len(blocks); i += 2 {
		if haveBlake2bAsm && len(blocks[i]) == len(blocks[i+1]) {
			out[i], out[i+1] = leafHash2(blocks[i], blocks[i+1])
		} else {
			out[i], out[i+1] = LeafHash(blocks[i]), LeafHash(blocks[i+1])
		}
	}
	if i < len(blocks) {
		out[i] = LeafHash(blocks[i])
	}
	return out
}
