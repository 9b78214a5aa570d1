package core_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/hyperos/hyperos/hyper/core"
	"github.com/hyperos/hyperos/hyper/core/store"
	"github.com/hyperos/hyperos/hyper/core/wire"
)

// pipe stands in for a Protomux channel: it carries encoded messages one
// way and hands them to the receiving peer in order.
func pipe(to **core.Peer) func(wire.Message) error {
	ch := make(chan []byte, 256)
	go func() {
		for b := range ch {
			m, err := wire.Unmarshal(wire.MessageType(b[0]), b[1:])
			if err == nil {
				(*to).Handle(m)
			}
		}
	}()
	return func(m wire.Message) error {
		body, err := wire.Marshal(m)
		if err != nil {
			return err
		}
		ch <- append([]byte{byte(m.Type())}, body...)
		return nil
	}
}

// Example shows a writer and a sparse reader replicating: the transport
// only moves wire messages between Peer.Handle and the send functions.
func Example() {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	writer, err := core.Create(store.NewMemory(), priv, core.CreateOptions{})
	if err != nil {
		panic(err)
	}
	writer.Append([]byte("hello"), []byte("world"))

	// A reader needs only the key; the manifest and head come from the writer.
	reader, err := core.NewReader(store.NewMemory(), writer.Key(), nil)
	if err != nil {
		panic(err)
	}

	var wp, rp *core.Peer
	wp = core.NewReplicator(writer).AddPeer(pipe(&rp))
	rp = core.NewReplicator(reader).AddPeer(pipe(&wp))
	wp.Open()
	rp.Open()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for reader.Length() < 2 {
		time.Sleep(time.Millisecond)
	}
	var blocks core.Blocks = reader
	b, err := blocks.Get(ctx, 1)
	fmt.Println(string(b), err, reader.Has(0))
	// Output: world <nil> false
}
