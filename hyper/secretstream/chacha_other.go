//go:build !amd64 || purego

package secretstream

// haveChachaAsm: there is no ChaCha20 assembly of ours on this platform.
var haveChachaAsm = false

// chachaXOR would XOR p with the keystream in assembly; on this platform
// it does nothing and returns false.
func chachaXOR(p []byte, key *[32]byte, nonce *[12]byte, counter uint32) bool {
	return false
}
