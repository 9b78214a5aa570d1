package peer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hyperos/hyperos/hyper/core"
	"github.com/hyperos/hyperos/hyper/core/wire"
	"github.com/hyperos/hyperos/hyper/corestore"
	"github.com/hyperos/hyperos/hyper/mux"
	"github.com/hyperos/hyperos/hyper/secretstream"
)

// block is the content of block i of the test core.
func block(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 1000+i) }

// seed makes a store with a 24-block writable core and serves it.
func seed(t *testing.T) (*corestore.Core, string) {
	t.Helper()
	st := corestore.NewMemory([32]byte{1}, nil)
	c, err := st.Writable(corestore.DefaultNamespace, "c")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 24; i++ {
		if _, err := c.Append(block(i)); err != nil {
			t.Fatal(err)
		}
	}
	return c, serve(t, st)
}

func serve(t *testing.T, st *corestore.Store) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, st, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return ln.Addr().String()
}

// hostile serves c like a seeder, but lets the test corrupt what it says.
type hostile struct {
	// handshake may alter our channel open.
	handshake func(*wire.Handshake)
	// mutate may alter (a copy of) an outgoing message, or drop it.
	mutate func(wire.Message) (wire.Message, bool)
	// afterOpen may write raw messages once the channel is open.
	afterOpen func(*secretstream.Conn)

	requested chan struct{} // closed on the first request received
	once      sync.Once
}

func (h *hostile) serve(t *testing.T, c *core.Core) string {
	t.Helper()
	h.requested = make(chan struct{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	r := core.NewReplicator(c)
	go func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			go h.conn(t, raw, c, r)
		}
	}()
	return ln.Addr().String()
}

func (h *hostile) conn(t *testing.T, raw net.Conn, c *core.Core, r *core.Replicator) {
	ss := secretstream.Server(raw, &secretstream.Config{})
	if err := ss.Handshake(context.Background()); err != nil {
		raw.Close()
		return
	}
	m := mux.New(ss)
	defer m.Close()
	hs, _ := core.Handshake(c, false, ss.HandshakeHash())
	if h.handshake != nil {
		h.handshake(hs)
	}
	dk := c.DiscoveryKey()
	var p *core.Peer
	var mu sync.Mutex
	_, err := m.Open(mux.ChannelConfig{
		Protocol:  wire.Protocol,
		ID:        dk[:],
		Handshake: wire.MarshalHandshake(hs),
		OnOpen: func(ch *mux.Channel, _ []byte) {
			np := r.AddPeer(func(msg wire.Message) error {
				if h.mutate != nil {
					var ok bool
					if msg, ok = h.mutate(msg); !ok {
						return nil
					}
				}
				b, err := wire.Marshal(msg)
				if err != nil {
					return err
				}
				return ch.Send(uint64(msg.Type()), b)
			})
			mu.Lock()
			p = np
			mu.Unlock()
			np.Open()
			if h.afterOpen != nil {
				go h.afterOpen(ss)
			}
		},
		OnMessage: func(_ *mux.Channel, typ uint64, payload []byte) {
			msg, err := wire.Unmarshal(wire.MessageType(typ), payload)
			if err != nil {
				return
			}
			if _, ok := msg.(*wire.Request); ok {
				h.once.Do(func() { close(h.requested) })
			}
			mu.Lock()
			np := p
			mu.Unlock()
			if np != nil {
				np.Handle(msg)
			}
		},
		OnClose: func(*mux.Channel, bool) {
			mu.Lock()
			defer mu.Unlock()
			if p != nil {
				p.Close()
			}
		},
	})
	if err != nil {
		return
	}
	m.Start()
	<-m.Done()
}

// cloneData copies a data message deeply enough to corrupt it without
// touching the seeder's stored bytes.
func cloneData(d *wire.Data) *wire.Data {
	c := *d
	if d.Block != nil {
		b := *d.Block
		b.Value = bytes.Clone(b.Value)
		c.Block = &b
	}
	if d.Upgrade != nil {
		u := *d.Upgrade
		u.Signature = bytes.Clone(u.Signature)
		c.Upgrade = &u
	}
	return &c
}

// TestHostilePeers connects a reader to a misbehaving seeder first: each
// misbehaviour must drop that connection without storing anything it
// sent; then an honest seeder is added and the reader gets every block.
func TestHostilePeers(t *testing.T) {
	cases := []struct {
		name string
		h    *hostile
		// stored reports whether the reader may legitimately hold the
		// signed length (only what an honest upgrade proves).
		upgradeOK bool
		errIs     error
	}{
		{name: "wrong capability", h: &hostile{handshake: func(h *wire.Handshake) { h.Capability[3] ^= 1 }}, errIs: core.ErrBadCapability},
		{name: "bad signature", h: &hostile{mutate: func(m wire.Message) (wire.Message, bool) {
			if d, ok := m.(*wire.Data); ok && d.Upgrade != nil {
				d = cloneData(d)
				d.Upgrade.Signature[10] ^= 0x40
				return d, true
			}
			return m, true
		}}, errIs: ErrMisbehaved},
		{name: "block not matching its proof", upgradeOK: true, h: &hostile{mutate: func(m wire.Message) (wire.Message, bool) {
			if d, ok := m.(*wire.Data); ok && d.Block != nil {
				d = cloneData(d)
				d.Block.Value[0] ^= 1
				return d, true
			}
			return m, true
		}}, errIs: ErrMisbehaved},
		{name: "proof for another fork", upgradeOK: true, h: &hostile{mutate: func(m wire.Message) (wire.Message, bool) {
			if d, ok := m.(*wire.Data); ok && d.Block != nil {
				d = cloneData(d)
				d.Fork++
				return d, true
			}
			return m, true
		}}, errIs: ErrMisbehaved},
		{name: "oversized frame", upgradeOK: true, h: &hostile{
			mutate: func(m wire.Message) (wire.Message, bool) {
				_, isData := m.(*wire.Data)
				return m, !isData // answer nothing, so only the frame can end it
			},
			afterOpen: func(ss *secretstream.Conn) {
				ss.WriteMessage(make([]byte, DefaultMaxMessageSize+1))
			}}, errIs: secretstream.ErrFrameTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			w, good := seed(t)
			bad := tc.h.serve(t, w.Core)

			st := corestore.NewMemory([32]byte{2}, &corestore.Options{RequestTimeout: time.Second})
			defer st.Close()
			r, err := st.Get(w.Key())
			if err != nil {
				t.Fatal(err)
			}
			hc, err := Dial(ctx, bad, st, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer hc.Close()
			// Ask for a block: the hostile peer must answer (badly) or be
			// dropped before.
			gctx, gcancel := context.WithCancel(ctx)
			got := make(chan error, 1)
			go func() {
				b, err := r.Get(gctx, 7)
				if err == nil && !bytes.Equal(b, block(7)) {
					err = fmt.Errorf("block 7 is %d bytes of %d", len(b), b[0])
				}
				got <- err
			}()
			select {
			case <-hc.Done():
			case err := <-got:
				t.Fatalf("Get returned %v while only the hostile peer was connected", err)
			case <-ctx.Done():
				t.Fatal("the hostile connection was not dropped")
			}
			if !errors.Is(hc.Err(), tc.errIs) {
				t.Errorf("dropped with %v, want %v", hc.Err(), tc.errIs)
			}
			if r.Has(7) || r.ContiguousLength() != 0 {
				t.Fatal("the reader stored a block from the hostile peer")
			}
			if !tc.upgradeOK && r.Length() != 0 {
				t.Fatalf("the reader took length %d from the hostile peer", r.Length())
			}

			gc, err := Dial(ctx, good, st, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer gc.Close()
			if err := <-got; err != nil {
				t.Fatalf("after an honest peer joined: %v", err)
			}
			gcancel()
			for i := 0; i < 24; i++ {
				b, err := r.Get(ctx, uint64(i))
				if err != nil || !bytes.Equal(b, block(i)) {
					t.Fatalf("block %d: %v", i, err)
				}
			}
		})
	}
}

// TestStallingPeer: a seeder that accepts requests and never answers has
// them cancelled after the request timeout; an honest peer then serves.
func TestStallingPeer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, good := seed(t)
	h := &hostile{mutate: func(m wire.Message) (wire.Message, bool) {
		_, isData := m.(*wire.Data)
		return m, !isData
	}}
	bad := h.serve(t, w.Core)
	st := corestore.NewMemory([32]byte{2}, &corestore.Options{RequestTimeout: 500 * time.Millisecond})
	defer st.Close()
	r, err := st.Get(w.Key())
	if err != nil {
		t.Fatal(err)
	}
	hc, err := Dial(ctx, bad, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	got := make(chan error, 1)
	go func() {
		_, err := r.Get(ctx, 3)
		got <- err
	}()
	select {
	case <-h.requested:
	case <-ctx.Done():
		t.Fatal("the stalling peer was never asked")
	}
	gc, err := Dial(ctx, good, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 24; i++ {
		if b, err := r.Get(ctx, uint64(i)); err != nil || !bytes.Equal(b, block(i)) {
			t.Fatalf("block %d: %v", i, err)
		}
	}
}

// TestUnknownCoreRejected: a remote naming a core we do not hold gets no
// channel, and the connection stays usable.
func TestUnknownCoreRejected(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, addr := seed(t)
	st := corestore.NewMemory([32]byte{3}, nil)
	defer st.Close()
	other, _ := st.Get([32]byte{0xee})
	c, err := Dial(ctx, addr, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Synced(ctx, other); err == nil {
		t.Fatal("the seeder replicates a core it does not have")
	}
	r, err := st.Get(w.Key())
	if err != nil {
		t.Fatal(err)
	}
	if n, err := c.Synced(ctx, r); err != nil || n != 24 {
		t.Fatalf("synced %d %v", n, err)
	}
	if b, err := r.Get(ctx, 23); err != nil || !bytes.Equal(b, block(23)) {
		t.Fatalf("block 23: %v", err)
	}
}

// TestDownloadAroundHostilePeers runs the bulk path with a tampering, a
// stalling and an honest peer: the tamperer is dropped, the staller timed
// out, and every block comes out right.
func TestDownloadAroundHostilePeers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, good := seed(t)
	tamper := (&hostile{mutate: func(m wire.Message) (wire.Message, bool) {
		if d, ok := m.(*wire.Data); ok && d.Block != nil {
			d = cloneData(d)
			d.Block.Value[len(d.Block.Value)-1] ^= 1
			return d, true
		}
		return m, true
	}}).serve(t, w.Core)
	stall := (&hostile{mutate: func(m wire.Message) (wire.Message, bool) {
		d, isData := m.(*wire.Data)
		return m, !isData || d.Block == nil // upgrades yes, blocks never
	}}).serve(t, w.Core)
	st := corestore.NewMemory([32]byte{4}, &corestore.Options{RequestTimeout: 500 * time.Millisecond})
	defer st.Close()
	r, err := st.Get(w.Key())
	if err != nil {
		t.Fatal(err)
	}
	var conns []*Conn
	for _, a := range []string{tamper, stall, good} {
		c, err := Dial(ctx, a, st, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Synced(ctx, r); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	if _, err := r.Get(ctx, 0); err != nil { // the signed length first
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[uint64]bool{}
	err = Download(ctx, r, conns, 0, 24, &DownloadOptions{Window: 8, Timeout: 500 * time.Millisecond,
		OnBlock: func(i uint64, v []byte) {
			mu.Lock()
			defer mu.Unlock()
			if !bytes.Equal(v, block(int(i))) {
				t.Errorf("block %d handed over wrong", i)
			}
			seen[i] = true
		}})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 24 {
		t.Fatalf("OnBlock saw %d blocks", len(seen))
	}
	for i := 0; i < 24; i++ {
		if b, err := r.Get(ctx, uint64(i)); err != nil || !bytes.Equal(b, block(i)) {
			t.Fatalf("block %d: %v", i, err)
		}
	}
	select {
	case <-conns[0].Done():
	default:
		t.Error("the tampering peer is still connected")
	}
	if !errors.Is(conns[0].Err(), ErrMisbehaved) {
		t.Errorf("tamperer dropped with %v", conns[0].Err())
	}
}
