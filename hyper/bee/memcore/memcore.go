// Package memcore is an in-memory, append-only block store with the method
// set the bee, blobs and drive packages ask of a Hypercore. It exists so
// those layers can be tested (and benchmarked) without the replication
// stack; it does no hashing or signing.
package memcore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// Core is an in-memory core. It is safe for concurrent use.
type Core struct {
	mu     sync.RWMutex
	blocks [][]byte
	bytes  uint64

	// Gets counts Get calls, so tests can check that a reader fetched
	// only the blocks it needed.
	Gets atomic.Int64
}

// New returns an empty core.
func New() *Core { return &Core{} }

// FromBlocks returns a core holding copies of blocks.
func FromBlocks(blocks [][]byte) *Core {
	c := New()
	for _, b := range blocks {
		c.blocks = append(c.blocks, append([]byte{}, b...))
		c.bytes += uint64(len(b))
	}
	return c
}

// Get returns a copy of block index.
func (c *Core) Get(ctx context.Context, index uint64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.Gets.Add(1)
	c.mu.RLock()
	defer c.mu.RUnlock()
	if index >= uint64(len(c.blocks)) {
		return nil, fmt.Errorf("memcore: block %d out of range (length %d)", index, len(c.blocks))
	}
	return append([]byte{}, c.blocks[index]...), nil
}

// Length is the number of blocks.
func (c *Core) Length() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return uint64(len(c.blocks))
}

// ByteLength is the total size of all blocks.
func (c *Core) ByteLength() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.bytes
}

// Append adds copies of blocks and returns the new length.
func (c *Core) Append(blocks ...[]byte) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range blocks {
		c.blocks = append(c.blocks, append([]byte{}, b...))
		c.bytes += uint64(len(b))
	}
	return uint64(len(c.blocks)), nil
}

// Blocks returns copies of all blocks.
func (c *Core) Blocks() [][]byte {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([][]byte, len(c.blocks))
	for i, b := range c.blocks {
		out[i] = append([]byte{}, b...)
	}
	return out
}
