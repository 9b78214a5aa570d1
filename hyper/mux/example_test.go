package mux_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/hyperos/hyperos/hyper/compact"
	"github.com/hyperos/hyperos/hyper/mux"
	"github.com/hyperos/hyperos/hyper/secretstream"
)

// Example wires the transport stack the way a Hypercore peer does: TCP,
// then NoiseSecretStream, then Protomux with one channel.
func Example() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()

	// The remote side: accept, wrap, and echo on the "echo" protocol.
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			return
		}
		m := mux.New(secretstream.Server(raw, &secretstream.Config{KeepAlive: 5 * time.Second}))
		defer m.Close()
		m.Pair("echo", nil, func(m *mux.Mux, protocol string, id []byte) {
			_, _ = m.Open(mux.ChannelConfig{
				Protocol: protocol,
				ID:       id,
				OnMessage: func(ch *mux.Channel, typ uint64, payload []byte) {
					_ = ch.Send(typ, payload)
				},
			})
		})
		m.Start()
		<-m.Done()
	}()

	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn := secretstream.Client(raw, &secretstream.Config{KeepAlive: 5 * time.Second})
	if err := conn.Handshake(ctx); err != nil {
		fmt.Println(err)
		return
	}
	m := mux.New(conn)
	defer m.Close()
	replies := make(chan string, 1)
	ch, err := m.Open(mux.ChannelConfig{
		Protocol: "echo",
		OnMessage: func(ch *mux.Channel, typ uint64, payload []byte) {
			s, _ := compact.NewDecoder(payload).String()
			replies <- s
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	m.Start()
	if _, err := ch.WaitOpen(ctx); err != nil {
		fmt.Println(err)
		return
	}
	var e compact.Encoder
	e.String("hello")
	if err := ch.Send(0, e.Bytes()); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(<-replies)
	// Output: hello
}
