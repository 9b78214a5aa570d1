// Package merkle holds Hypercore's Merkle tree: the BLAKE2b hashes with
// their domain-separation prefixes, the namespaces and signables that bind a
// signature to one core, tree batches that grow by appending, proof
// generation for a seeder and proof verification for a reader, and the
// Verifier that checks the signatures a manifest demands.
//
// Everything that crosses the wire or is signed must equal what Node's
// hypercore 11 produces byte for byte, so the layouts here follow
// hypercore-crypto and hypercore/lib/caps.js exactly.
package merkle

import (
	"encoding/binary"
	"hash"
	"sync"

	"golang.org/x/crypto/blake2b"

	"github.com/hyperos/hyperos/hyper/core/wire"
)

// Node is a tree node as carried in proofs and stored on disk.
type Node = wire.Node

// Domain separators keep a leaf hash from ever being mistaken for a parent
// or tree hash (second-preimage protection).
const (
	leafType   = 0x00
	parentType = 0x01
	rootType   = 0x02
)

// Namespace derives count 32-byte namespaces the way hypercore-crypto does:
// BLAKE2b-256(BLAKE2b-256(name) ‖ byte(i)).
func Namespace(name string, count int) [][32]byte {
	base := blake2b.Sum256([]byte(name))
	out := make([][32]byte, count)
	buf := make([]byte, 33)
	copy(buf, base[:])
	for i := range out {
		buf[32] = byte(i)
		out[i] = blake2b.Sum256(buf)
	}
	return out
}

var hypercoreNS = Namespace("hypercore", 6)

// The hypercore namespaces, in the order of crypto.namespace('hypercore', 6).
var (
	NSTree               = hypercoreNS[0]
	NSReplicateInitiator = hypercoreNS[1]
	NSReplicateResponder = hypercoreNS[2]
	NSManifest           = hypercoreNS[3]
	DefaultNamespace     = hypercoreNS[4]
	NSDefaultEncryption  = hypercoreNS[5]
)

func newHash() hash.Hash {
	h, err := blake2b.New256(nil)
	if err != nil {
		panic(err) // only fails for an over-long key, and we pass none
	}
	return h
}

func newKeyedHash(key []byte) (hash.Hash, error) {
	return blake2b.New256(key)
}

func putU64(h hash.Hash, v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	h.Write(b[:])
}

func sum(h hash.Hash) (out [32]byte) {
	h.Sum(out[:0])
	return out
}

// hashers pools BLAKE2b states for inputs too large to copy into one
// buffer; a fresh state costs an allocation per hash otherwise.
var hashers = sync.Pool{New: func() any { return newHash() }}

// smallLeaf is the block size up to which LeafHash copies the block into a
// stack buffer and hashes it in one call, which avoids any allocation.
const smallLeaf = 1024

// LeafHash is the hash of one block: BLAKE2b(0x00 ‖ u64le(len) ‖ data).
func LeafHash(data []byte) [32]byte {
	if len(data) <= smallLeaf {
		var buf [9 + smallLeaf]byte
		buf[0] = leafType
		binary.LittleEndian.PutUint64(buf[1:9], uint64(len(data)))
		n := copy(buf[9:], data)
		return blake2b.Sum256(buf[:9+n])
	}
	h := hashers.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte{leafType})
	putU64(h, uint64(len(data)))
	h.Write(data)
	out := sum(h)
	hashers.Put(h)
	return out
}

// LeafNode returns the tree node for block data stored at flat index.
func LeafNode(index uint64, data []byte) Node {
	return Node{Index: index, Size: uint64(len(data)), Hash: LeafHash(data)}
}

// ParentHash combines two sibling nodes; the one with the lower index goes
// first, as hypercore-crypto swaps them if needed.
func ParentHash(a, b Node) [32]byte {
	if a.Index > b.Index {
		a, b = b, a
	}
	var buf [1 + 8 + 32 + 32]byte
	buf[0] = parentType
	binary.LittleEndian.PutUint64(buf[1:9], a.Size+b.Size)
	copy(buf[9:41], a.Hash[:])
	copy(buf[41:73], b.Hash[:])
	return blake2b.Sum256(buf[:])
}

// ParentNode builds the parent node at index from its two children.
func ParentNode(index uint64, a, b Node) Node {
	return Node{Index: index, Size: a.Size + b.Size, Hash: ParentHash(a, b)}
}

// TreeHash hashes the roots (left to right) into the value that is signed.
func TreeHash(roots []Node) [32]byte {
	var stack [1 + 48*64]byte
	buf := stack[:1]
	buf[0] = rootType
	for _, r := range roots {
		buf = append(buf, r.Hash[:]...)
		buf = binary.LittleEndian.AppendUint64(buf, r.Index)
		buf = binary.LittleEndian.AppendUint64(buf, r.Size)
	}
	return blake2b.Sum256(buf)
}

// DiscoveryKey is the public topic for a core: BLAKE2b keyed with the core
// key over "hypercore". Peers announce it instead of the key so that the DHT
// never learns the key itself.
func DiscoveryKey(key [32]byte) [32]byte {
	h, err := newKeyedHash(key[:])
	if err != nil {
		panic(err) // a 32-byte key is always valid
	}
	h.Write([]byte("hypercore"))
	return sum(h)
}

// Capability proves, inside one Noise session, that the sender knows the core
// key: BLAKE2b keyed with the handshake hash over the role namespace and the
// key. The initiator sends initiator=true; a receiver checks the remote's
// capability with the opposite role.
func Capability(initiator bool, key [32]byte, handshakeHash []byte) ([32]byte, error) {
	h, err := newKeyedHash(handshakeHash)
	if err != nil {
		return [32]byte{}, err
	}
	if initiator {
		h.Write(NSReplicateInitiator[:])
	} else {
		h.Write(NSReplicateResponder[:])
	}
	h.Write(key[:])
	return sum(h), nil
}

// Signable is the 112-byte message a v1 manifest signer signs:
// TREE ‖ manifestHash ‖ treeHash ‖ u64le(length) ‖ u64le(fork). For v0
// manifests the signer's namespace takes the manifest hash's place.
func Signable(ctx, treeHash [32]byte, length, fork uint64) []byte {
	b := make([]byte, 112)
	copy(b, NSTree[:])
	copy(b[32:], ctx[:])
	copy(b[64:], treeHash[:])
	binary.LittleEndian.PutUint64(b[96:], length)
	binary.LittleEndian.PutUint64(b[104:], fork)
	return b
}

// SignableCompat is what compat (key = public key) cores sign: 80 bytes
// TREE ‖ treeHash ‖ length ‖ fork, or 48 bytes without TREE in legacy mode.
func SignableCompat(treeHash [32]byte, length, fork uint64, legacy bool) []byte {
	var b []byte
	if !legacy {
		b = append(b, NSTree[:]...)
	}
	b = append(b, treeHash[:]...)
	b = binary.LittleEndian.AppendUint64(b, length)
	b = binary.LittleEndian.AppendUint64(b, fork)
	return b
}
