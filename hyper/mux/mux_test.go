package mux

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hyperos/hyperos/hyper/compact"
	"github.com/hyperos/hyperos/hyper/secretstream"
)

// securePair returns two muxes over a secretstream over loopback TCP, not
// yet started. (Not net.Pipe: its writes block until read, and the tests
// open channels before starting the readers.)
func securePair(t testing.TB) (*Mux, *Mux) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	ca, cb := secretstream.Client(a, nil), secretstream.Server(b, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- cb.Handshake(ctx) }()
	if err := ca.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	ma, mb := New(ca), New(cb)
	t.Cleanup(func() { ma.Close(); mb.Close() })
	return ma, mb
}

func TestOpenBothSidesAndMessages(t *testing.T) {
	ma, mb := securePair(t)
	got := make(chan string, 100)
	cfg := func(side string) ChannelConfig {
		return ChannelConfig{
			Protocol:  "p",
			ID:        []byte{1, 2},
			Handshake: []byte(side),
			OnMessage: func(ch *Channel, typ uint64, payload []byte) {
				got <- side + ":" + string(payload)
			},
		}
	}
	ca, err := ma.Open(cfg("a"))
	if err != nil {
		t.Fatal(err)
	}
	cb, err := mb.Open(cfg("b"))
	if err != nil {
		t.Fatal(err)
	}
	// Sending before the remote has opened is allowed.
	if err := ca.Send(0, []byte("early")); err != nil {
		t.Fatal(err)
	}
	ma.Start()
	mb.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hs, err := ca.WaitOpen(ctx)
	if err != nil || string(hs) != "b" {
		t.Fatalf("a: %q %v", hs, err)
	}
	if hs, err := cb.WaitOpen(ctx); err != nil || string(hs) != "a" {
		t.Fatalf("b: %q %v", hs, err)
	}
	if _, err := ma.Open(cfg("a")); !errors.Is(err, ErrAlreadyOpen) {
		t.Fatalf("second open: %v", err)
	}
	if !ma.Opened("p", []byte{1, 2}) || ma.Opened("p", nil) {
		t.Fatal("Opened")
	}
	if err := cb.Send(0, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	// The two directions are independent, so either may arrive first.
	seen := map[string]bool{}
	for len(seen) < 2 {
		select {
		case g := <-got:
			if g != "b:early" && g != "a:hi" {
				t.Fatalf("got %q", g)
			}
			seen[g] = true
		case <-ctx.Done():
			t.Fatalf("timeout; got %v", seen)
		}
	}

	// Concurrent senders on a corked mux, with interleaved uncorks.
	var wg sync.WaitGroup
	const n = 200
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				if i%10 == 0 {
					ma.Cork()
				}
				if err := ca.Send(1, []byte("x")); err != nil {
					t.Error(err)
					return
				}
				if i%10 == 9 {
					if err := ma.Uncork(); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	for i := 0; i < 4*n; i++ {
		select {
		case g := <-got:
			if g != "b:x" {
				t.Fatalf("got %q", g)
			}
		case <-ctx.Done():
			t.Fatalf("only %d of %d corked messages arrived", i, 4*n)
		}
	}

	// Closing on one side closes the other.
	if err := ca.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cb.Closed():
	case <-ctx.Done():
		t.Fatal("remote close not seen")
	}
	if err := ca.Send(0, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
	if ma.Opened("p", []byte{1, 2}) {
		t.Fatal("still open")
	}
}

func TestRejectAndPairing(t *testing.T) {
	ma, mb := securePair(t)
	var paired []string
	mb.Pair("wanted", nil, func(m *Mux, protocol string, id []byte) {
		paired = append(paired, protocol+"/"+string(id))
		if _, err := m.Open(ChannelConfig{Protocol: protocol, ID: id}); err != nil {
			t.Error(err)
		}
	})
	mb.Pair("declined", nil, func(m *Mux, protocol string, id []byte) {
		paired = append(paired, "declined")
	})
	ma.Start()
	mb.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, p := range []string{"unknown", "declined"} {
		ch, err := ma.Open(ChannelConfig{Protocol: p})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ch.WaitOpen(ctx); !errors.Is(err, ErrRejected) {
			t.Fatalf("%s: %v, want rejected", p, err)
		}
	}
	ch, err := ma.Open(ChannelConfig{Protocol: "wanted", ID: []byte("k")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.WaitOpen(ctx); err != nil {
		t.Fatal(err)
	}
	if len(paired) != 2 || paired[0] != "declined" || paired[1] != "wanted/k" {
		t.Fatalf("pair calls %v", paired)
	}
	// Rejected ids are reused.
	if ch.localID != 1 {
		t.Errorf("local id %d, want 1 (reused)", ch.localID)
	}
	// WaitOpen honours the context: the remote holds this open while
	// its pair handler blocks.
	release := make(chan struct{})
	mb.Pair("slow", nil, func(m *Mux, protocol string, id []byte) { <-release })
	slow, err := ma.Open(ChannelConfig{Protocol: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if _, err := slow.WaitOpen(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitOpen: %v", err)
	}
	close(release)
	if _, err := slow.WaitOpen(ctx); !errors.Is(err, ErrRejected) {
		t.Fatalf("after the handler declined: %v", err)
	}
}

func TestMuxCloseEndsChannels(t *testing.T) {
	ma, mb := securePair(t)
	closedRemote := make(chan bool, 2)
	cfg := ChannelConfig{Protocol: "p", OnClose: func(ch *Channel, remote bool) { closedRemote <- remote }}
	ca, _ := ma.Open(cfg)
	if _, err := mb.Open(cfg); err != nil {
		t.Fatal(err)
	}
	ma.Start()
	mb.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := ca.WaitOpen(ctx); err != nil {
		t.Fatal(err)
	}
	_ = ma.Close()
	select {
	case <-mb.Done():
	case <-ctx.Done():
		t.Fatal("peer mux did not stop when the connection closed")
	}
	if mb.Err() == nil {
		t.Fatal("peer mux has no error")
	}
	for i := 0; i < 2; i++ {
		if r := <-closedRemote; !r {
			t.Error("mux shutdown reported a local close")
		}
	}
	if _, err := ma.Open(cfg); !errors.Is(err, ErrClosed) {
		t.Fatalf("open on closed mux: %v", err)
	}
}

// TestProtocolErrors checks that impossible messages end the mux with
// ErrProtocol, as Node destroys the stream.
func TestProtocolErrors(t *testing.T) {
	enc := func(vals ...uint64) []byte {
		var e compact.Encoder
		for _, v := range vals {
			e.Uint(v)
		}
		return e.Bytes()
	}
	cases := map[string][]byte{
		"truncated uint":     {0xfd, 0x01},
		"open skipping ids":  append(enc(0, 1, 5), 0x01, 'p', 0x00),
		"reject unknown":     enc(0, 2, 9),
		"truncated open":     enc(0, 1, 1),
		"nested batches":     nestedBatch(maxBatchDepth + 1),
		"batch bad switch":   {0, 0, 1, 0},
		"open string beyond": {0, 1, 1, 9, 'a'},
	}
	for name, frame := range cases {
		t.Run(name, func(t *testing.T) {
			conn := newFakeConn()
			m := New(conn)
			defer m.Close()
			if err := m.handleFrame(frame); !errors.Is(err, ErrProtocol) {
				t.Fatalf("handleFrame(%x) = %v", frame, err)
			}
		})
	}
	// Harmless oddities are ignored.
	for name, frame := range map[string][]byte{
		"empty":              {},
		"unknown control":    enc(0, 9, 1, 2),
		"unknown channel":    enc(7, 0, 1),
		"close unknown":      enc(0, 3, 5),
		"close zero":         enc(0, 3, 0),
		"batch truncated":    {0, 0, 5, 9, 0},
		"batch of keepalive": {0, 0, 1},
	} {
		t.Run(name, func(t *testing.T) {
			conn := newFakeConn()
			m := New(conn)
			defer m.Close()
			if err := m.handleFrame(frame); err != nil {
				t.Fatalf("handleFrame(%x) = %v", frame, err)
			}
		})
	}
	// An open of channel 0 is answered with reject(0).
	conn := newFakeConn()
	m := New(conn)
	defer m.Close()
	if err := m.handleFrame(append(enc(0, 1, 0), 1, 'p', 0)); err != nil {
		t.Fatal(err)
	}
	if got := <-conn.out; !bytes.Equal(got, enc(0, 2, 0)) {
		t.Fatalf("reply %x", got)
	}
}

// TestBatchFlushesAtLimit checks that a corked batch is split before it
// grows past Node's 8 MiB batch size.
func TestBatchFlushesAtLimit(t *testing.T) {
	conn := newFakeConn()
	m := New(conn)
	defer m.Close()
	ch, err := m.Open(ChannelConfig{Protocol: "p"})
	if err != nil {
		t.Fatal(err)
	}
	<-conn.out // the open
	m.Cork()
	chunk := make([]byte, 1<<20)
	go func() {
		for i := 0; i < 10; i++ {
			if err := ch.Send(0, chunk); err != nil {
				t.Error(err)
			}
		}
		if err := m.Uncork(); err != nil {
			t.Error(err)
		}
	}()
	var total int
	frames := 0
	for total < 10 {
		f := <-conn.out
		frames++
		if len(f) > maxBatch+2<<20 {
			t.Fatalf("batch of %d bytes", len(f))
		}
		total += len(flatten(t, f))
	}
	if frames < 2 {
		t.Fatalf("10 MiB went out in %d frame(s)", frames)
	}
	if err := m.Uncork(); err == nil {
		t.Fatal("uncork without cork accepted")
	}
}

// nestedBatch builds a frame of batches nested depth deep, each holding
// the next as its only control-channel entry.
func nestedBatch(depth int) []byte {
	inner := []byte{typeBatch, 0} // an empty batch: type, first channel
	for i := 1; i < depth; i++ {
		var e compact.Encoder
		e.Uint(typeBatch)
		e.Uint(0)
		e.Buffer(inner)
		inner = e.Bytes()
	}
	return append([]byte{0}, inner...)
}

func TestNestedBatchWithinLimit(t *testing.T) {
	m := New(newFakeConn())
	defer m.Close()
	if err := m.handleFrame(nestedBatch(maxBatchDepth)); err != nil {
		t.Fatalf("batches nested %d deep: %v", maxBatchDepth, err)
	}
}

// TestBothSidesReplyFromCallbacks is the pattern that deadlocks when
// writes block the reader: each side answers every request from its
// OnMessage callback with a large reply, both at once, far beyond what
// socket buffers hold.
func TestBothSidesReplyFromCallbacks(t *testing.T) {
	ma, mb := securePair(t)
	const requests, replySize = 64, 256 << 10
	reply := make([]byte, replySize)
	replies := make(chan int, 2*requests)
	cfg := ChannelConfig{
		Protocol: "rr",
		OnMessage: func(ch *Channel, typ uint64, payload []byte) {
			switch typ {
			case 0: // request: answer with a big reply
				if err := ch.Send(1, reply); err != nil {
					t.Error(err)
				}
			case 1:
				replies <- len(payload)
			}
		},
	}
	ca, _ := ma.Open(cfg)
	cb, _ := mb.Open(cfg)
	ma.Start()
	mb.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, ch := range []*Channel{ca, cb} {
		go func(ch *Channel) {
			for i := 0; i < requests; i++ {
				if err := ch.Send(0, nil); err != nil {
					t.Error(err)
					return
				}
			}
		}(ch)
	}
	for i := 0; i < 2*requests; i++ {
		select {
		case n := <-replies:
			if n != replySize {
				t.Fatalf("reply of %d bytes", n)
			}
		case <-ctx.Done():
			t.Fatalf("stuck after %d of %d replies", i, 2*requests)
		}
	}
	if err := ma.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// blockedConn never completes a write, like a peer that stopped reading.
type blockedConn struct {
	*fakeConn
}

func (b blockedConn) WriteMessage([]byte) error {
	<-b.closed
	return net.ErrClosed
}

func TestWriteQueueBound(t *testing.T) {
	conn := blockedConn{newFakeConn()}
	m := New(conn)
	defer m.Close()
	m.maxQueued = 1 << 20
	ch, err := m.Open(ChannelConfig{Protocol: "p"})
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := m.Flush(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush on a stuck connection: %v", err)
	}
	var sendErr error
	for i := 0; i < 20 && sendErr == nil; i++ {
		sendErr = ch.Send(0, make([]byte, 100<<10))
	}
	if !errors.Is(sendErr, errQueueFull) {
		t.Fatalf("send err = %v", sendErr)
	}
	select {
	case <-m.stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("mux kept running with a full queue")
	}
	if !errors.Is(m.Err(), errQueueFull) {
		t.Fatalf("mux err = %v", m.Err())
	}
	if err := ch.Send(0, nil); err == nil {
		t.Fatal("send after shutdown succeeded")
	}
}

// TestAliases checks that a remote open under an alias reaches the channel,
// as Hypercore's "hypercore" alias of "hypercore/alpha" does.
func TestAliases(t *testing.T) {
	ma, mb := securePair(t)
	ca, err := ma.Open(ChannelConfig{Protocol: "hypercore/alpha", Aliases: []string{"hypercore"}, ID: []byte{9}})
	if err != nil {
		t.Fatal(err)
	}
	// Each side's open reaches the other through an alias. (A side
	// without the alias would reject the other's open, and that reject of
	// a channel already opened through the alias is a protocol error, in
	// Node as here.)
	cb, err := mb.Open(ChannelConfig{Protocol: "hypercore", Aliases: []string{"hypercore/alpha"}, ID: []byte{9}})
	if err != nil {
		t.Fatal(err)
	}
	ma.Start()
	mb.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := ca.WaitOpen(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.WaitOpen(ctx); err != nil {
		t.Fatal(err)
	}
	if !ma.Opened("hypercore", []byte{9}) {
		t.Error("alias not registered")
	}
	if err := ca.Close(); err != nil {
		t.Fatal(err)
	}
	if ma.Opened("hypercore", []byte{9}) || ma.Opened("hypercore/alpha", []byte{9}) {
		t.Error("alias outlived the channel")
	}
	ma.mu.Lock()
	n := len(ma.infos)
	ma.mu.Unlock()
	if n != 0 {
		t.Errorf("%d infos left after close", n)
	}
}

// TestCloseFromCallback checks that a callback may close the mux.
func TestCloseFromCallback(t *testing.T) {
	ma, mb := securePair(t)
	cfg := ChannelConfig{Protocol: "p", OnMessage: func(ch *Channel, typ uint64, payload []byte) {
		_ = mb.Close()
	}}
	ca, _ := ma.Open(cfg)
	if _, err := mb.Open(cfg); err != nil {
		t.Fatal(err)
	}
	ma.Start()
	mb.Start()
	if err := ca.Send(0, []byte("close yourself")); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*Mux{mb, ma} {
		select {
		case <-m.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("mux did not stop")
		}
	}
}

// TestSendContextPaces checks that a bulk producer using SendContext never
// overflows the queue, however fast it sends.
func TestSendContextPaces(t *testing.T) {
	ma, mb := securePair(t)
	got := make(chan int, 1024)
	cfg := ChannelConfig{Protocol: "bulk", OnMessage: func(_ *Channel, _ uint64, p []byte) { got <- len(p) }}
	ca, _ := ma.Open(cfg)
	if _, err := mb.Open(cfg); err != nil {
		t.Fatal(err)
	}
	ma.maxQueued = HighWater + 1<<20 // overflowing would end the mux
	ma.Start()
	mb.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n, size = 400, 64 << 10 // 25 MiB in all
	go func() {
		for i := 0; i < n; i++ {
			<-got
		}
		close(got)
	}()
	payload := make([]byte, size)
	for i := 0; i < n; i++ {
		if err := ca.SendContext(ctx, 0, payload); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if err := ma.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-ctx.Done():
		t.Fatal("messages lost")
	}
	short, cancel2 := context.WithCancel(context.Background())
	cancel2()
	ma.qmu.Lock()
	ma.queued += HighWater + 1 // pretend the queue is full
	ma.qmu.Unlock()
	if err := ca.SendContext(short, 0, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("SendContext on a full queue with a done context: %v", err)
	}
	ma.qmu.Lock()
	ma.queued -= HighWater + 1
	ma.qmu.Unlock()
}

// TestRejectAfterShutdown: a reject still being decoded when the mux
// shuts down must not close the channel a second time.
func TestRejectAfterShutdown(t *testing.T) {
	conn := newFakeConn()
	m := New(conn)
	closes := 0
	if _, err := m.Open(ChannelConfig{Protocol: "p", OnClose: func(*Channel, bool) { closes++ }}); err != nil {
		t.Fatal(err)
	}
	_ = m.Close()
	if err := m.handleFrame([]byte{0, 2, 1}); err != nil {
		t.Fatal(err)
	}
	if closes != 1 {
		t.Fatalf("OnClose ran %d times", closes)
	}
}
