package mux

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hyperos/hyperos/hyper/compact"
)

// logEntry is one line of testdata/node-mux.json, printed by
// hyper/testdata/node/transport-mux.js from two real Protomux instances.
type logEntry struct {
	Kind      string `json:"kind"`
	Side      string `json:"side"`
	From      string `json:"from"`
	Op        string `json:"op"`
	Protocol  string `json:"protocol"`
	ID        string `json:"id"`
	Handshake string `json:"handshake"`
	Type      uint64 `json:"type"`
	Hex       string `json:"hex"`
	Remote    bool   `json:"remote"`
}

func loadLog(t *testing.T) []logEntry {
	t.Helper()
	raw, err := os.ReadFile("testdata/node-mux.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Log []logEntry `json:"log"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Log) < 20 {
		t.Fatalf("log has only %d entries", len(f.Log))
	}
	return f.Log
}

// fakeConn is a message Conn whose two directions are Go channels.
type fakeConn struct {
	in     chan []byte
	out    chan []byte
	closed chan struct{}
	once   sync.Once
}

func newFakeConn() *fakeConn {
	return &fakeConn{in: make(chan []byte, 100), out: make(chan []byte, 100), closed: make(chan struct{})}
}

func (f *fakeConn) ReadMessage() ([]byte, error) {
	select {
	case b := <-f.in:
		return b, nil
	case <-f.closed:
		return nil, io.EOF
	}
}

func (f *fakeConn) WriteMessage(b []byte) error {
	select {
	case f.out <- bytes.Clone(b):
		return nil
	case <-f.closed:
		return net.ErrClosed
	}
}

func (f *fakeConn) Close() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}

// recorder turns channel callbacks into log entries.
type recorder struct {
	side   string
	events chan logEntry
}

func (r *recorder) config(protocol string, id []byte, handshake string) ChannelConfig {
	var e compact.Encoder
	e.String(handshake)
	return ChannelConfig{
		Protocol:  protocol,
		ID:        id,
		Handshake: e.Bytes(),
		OnOpen: func(ch *Channel, hs []byte) {
			s, err := compact.NewDecoder(hs).String()
			if err != nil {
				s = "<bad handshake " + hex.EncodeToString(hs) + ">"
			}
			r.events <- logEntry{Kind: "onopen", Side: r.side, Protocol: ch.Protocol(), Handshake: s}
		},
		OnMessage: func(ch *Channel, typ uint64, payload []byte) {
			r.events <- logEntry{Kind: "onmessage", Side: r.side, Protocol: ch.Protocol(), Type: typ, Hex: hex.EncodeToString(payload)}
		},
		OnClose: func(ch *Channel, remote bool) {
			r.events <- logEntry{Kind: "onclose", Side: r.side, Protocol: ch.Protocol(), Remote: remote}
		},
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// logical is one message after flattening batches: the channel id and
// uint type ‖ payload.
type logical struct {
	ch   uint64
	data string
}

// flatten splits a frame into logical messages with an independent,
// test-only reading of the batch layout.
func flatten(t *testing.T, frame []byte) []logical {
	t.Helper()
	d := compact.NewDecoder(frame)
	ch, err := d.Uint()
	if err != nil {
		t.Fatalf("flatten %x: %v", frame, err)
	}
	rest, _ := d.Raw()
	if ch != 0 || len(rest) == 0 || rest[0] != typeBatch {
		return []logical{{ch, hex.EncodeToString(rest)}}
	}
	d = compact.NewDecoder(rest[1:])
	cur, _ := d.Uint()
	var out []logical
	for d.Remaining() > 0 {
		n, err := d.Uint()
		if err != nil {
			t.Fatalf("flatten batch %x: %v", frame, err)
		}
		if n == 0 {
			cur, _ = d.Uint()
			continue
		}
		b, err := d.Fixed(int(n))
		if err != nil {
			t.Fatalf("flatten batch %x: %v", frame, err)
		}
		out = append(out, logical{cur, hex.EncodeToString(b)})
	}
	return out
}

const waitFor = 5 * time.Second

func nextEvent(t *testing.T, r *recorder) logEntry {
	t.Helper()
	select {
	case e := <-r.events:
		return e
	case <-time.After(waitFor):
		t.Fatalf("side %s: no callback arrived", r.side)
		return logEntry{}
	}
}

func nextWrite(t *testing.T, c *fakeConn) []byte {
	t.Helper()
	select {
	case b := <-c.out:
		return b
	case <-time.After(waitFor):
		t.Fatal("no frame written")
		return nil
	}
}

func sameEvent(got, want logEntry) bool {
	return got.Kind == want.Kind && got.Side == want.Side && got.Protocol == want.Protocol &&
		got.Handshake == want.Handshake && got.Type == want.Type && got.Hex == want.Hex && got.Remote == want.Remote
}

// TestNodeTranscriptAsA plays side A of the Node transcript: every frame Go
// writes must equal Node A's bytes exactly (including the corked batch and
// reused ids), and every callback must match Node A's.
func TestNodeTranscriptAsA(t *testing.T) {
	entries := loadLog(t)
	conn := newFakeConn()
	m := New(conn)
	defer m.Close()
	m.Start()
	rec := &recorder{side: "a", events: make(chan logEntry, 100)}
	chans := map[string]*Channel{}
	for i, e := range entries {
		switch {
		case e.Kind == "op" && e.Side == "a":
			switch e.Op {
			case "cork":
				m.Cork()
			case "uncork":
				if err := m.Uncork(); err != nil {
					t.Fatal(err)
				}
			case "open":
				ch, err := m.Open(rec.config(e.Protocol, unhex(t, e.ID), e.Handshake))
				if err != nil {
					t.Fatalf("entry %d: %v", i, err)
				}
				chans[e.Protocol] = ch
			case "send":
				if err := chans[e.Protocol].Send(e.Type, unhex(t, e.Hex)); err != nil {
					t.Fatalf("entry %d: %v", i, err)
				}
			case "close":
				if err := chans[e.Protocol].Close(); err != nil {
					t.Fatalf("entry %d: %v", i, err)
				}
			case "raw":
				// Node wrote an empty frame directly to the stream.
			default:
				t.Fatalf("unknown op %q", e.Op)
			}
		case e.Kind == "frame" && e.From == "a":
			if e.Hex == "" {
				continue
			}
			if got := hex.EncodeToString(nextWrite(t, conn)); got != e.Hex {
				t.Fatalf("entry %d: Go wrote %s\n                Node wrote %s", i, got, e.Hex)
			}
		case e.Kind == "frame" && e.From == "b":
			conn.in <- unhex(t, e.Hex)
		case e.Side == "a" && e.Kind != "op":
			if got := nextEvent(t, rec); !sameEvent(got, e) {
				t.Fatalf("entry %d: Go callback %+v, Node %+v", i, got, e)
			}
		}
	}
	select {
	case b := <-conn.out:
		t.Fatalf("extra frame %x", b)
	case e := <-rec.events:
		t.Fatalf("extra callback %+v", e)
	case <-time.After(50 * time.Millisecond):
	}
	if m.Err() != nil {
		t.Fatalf("mux failed: %v", m.Err())
	}
}

// TestNodeTranscriptAsB plays side B, including pairing. Node B answers a
// batch with a batch, and Go answers with separate frames, so frames are
// compared after flattening batches: the same messages in the same order.
func TestNodeTranscriptAsB(t *testing.T) {
	entries := loadLog(t)
	conn := newFakeConn()
	m := New(conn)
	defer m.Close()
	rec := &recorder{side: "b", events: make(chan logEntry, 100)}
	chans := map[string]*Channel{}
	m.Pair("alpha", nil, func(m *Mux, protocol string, id []byte) {
		ch, err := m.Open(rec.config(protocol, id, "hb"))
		if err != nil {
			t.Errorf("pair open: %v", err)
			return
		}
		chans[protocol] = ch
	})
	m.Start()
	var pending []logical
	for i, e := range entries {
		switch {
		case e.Kind == "op" && e.Side == "b":
			switch e.Op {
			case "pair-open":
				// Done by the pair handler.
			case "cork":
				m.Cork()
			case "uncork":
				if err := m.Uncork(); err != nil {
					t.Fatal(err)
				}
			case "send":
				if err := chans[e.Protocol].Send(e.Type, unhex(t, e.Hex)); err != nil {
					t.Fatalf("entry %d: %v", i, err)
				}
			default:
				t.Fatalf("unknown op %q", e.Op)
			}
		case e.Kind == "frame" && e.From == "a":
			conn.in <- unhex(t, e.Hex)
		case e.Kind == "frame" && e.From == "b":
			want := flatten(t, unhex(t, e.Hex))
			for len(pending) < len(want) {
				pending = append(pending, flatten(t, nextWrite(t, conn))...)
			}
			for j := range want {
				if pending[j] != want[j] {
					t.Fatalf("entry %d message %d: Go %+v, Node %+v", i, j, pending[j], want[j])
				}
			}
			pending = pending[len(want):]
		case e.Side == "b" && e.Kind != "op":
			if got := nextEvent(t, rec); !sameEvent(got, e) {
				t.Fatalf("entry %d: Go callback %+v, Node %+v", i, got, e)
			}
		}
	}
	if len(pending) > 0 {
		t.Fatalf("extra messages %+v", pending)
	}
	if m.Err() != nil {
		t.Fatalf("mux failed: %v", m.Err())
	}
}
