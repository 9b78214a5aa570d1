//go:build !amd64 || purego

package merkle

// haveBlake2bAsm: there is no BLAKE2b assembly of ours on this platform.
var haveBlake2bAsm = false

// leafHash2 is LeafHash of x and of y, one after the other here.
func leafHash2(x, y []byte) (hx, hy [32]byte) {
	return LeafHash(x), LeafHash(y)
}
