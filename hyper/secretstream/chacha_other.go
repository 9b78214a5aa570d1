//go:build !amd64 || purego

package secretstream

// haveChachaAsm: there is no ChaCha20 assembly of ours on this platform.
var haveChachaAsm = false

// chachaBulk would XOR a prefix of p with the keystream in assembly; on
// this platform it does nothing and returns 0.
func chachaBulk(p []byte, key *[32]byte, nonce *[12]byte, counter uint32) int {
	return 0
}
