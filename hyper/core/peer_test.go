package core

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hyperos/hyperos/hyper/compact"
	"github.com/hyperos/hyperos/hyper/core/store"
	"github.com/hyperos/hyperos/hyper/core/wire"
)

// link carries messages one way through their wire encoding, delivering
// them in order on their own goroutine like a real channel would.
type link struct {
	ch     chan []byte
	done   chan struct{}
	tamper func(wire.Message) wire.Message
	errs   chan error
}

func (l *link) send(m wire.Message) error {
	if l.tamper != nil {
		if m = l.tamper(m); m == nil {
			return nil // dropped
		}
	}
	b, err := wire.Marshal(m)
	if err != nil {
		return err
	}
	select {
	case l.ch <- append([]byte{byte(m.Type())}, b...):
		return nil
	case <-l.done:
		return errors.New("link closed")
	}
}

func (l *link) run(p *Peer) {
	for {
		var b []byte
		select {
		case b = <-l.ch:
		case <-l.done:
			return
		}
		m, err := wire.Unmarshal(wire.MessageType(b[0]), b[1:])
		if err != nil {
			l.errs <- err
			continue
		}
		if err := p.Handle(m); err != nil {
			select {
			case l.errs <- err:
			default:
			}
		}
	}
}

// connect joins two replicators; tamper, if set, rewrites what a sends.
func connect(t *testing.T, a, b *Replicator, tamper func(wire.Message) wire.Message) (ab, ba *link) {
	ab = &link{ch: make(chan []byte, 4096), done: make(chan struct{}), tamper: tamper, errs: make(chan error, 16)}
	ba = &link{ch: make(chan []byte, 4096), done: make(chan struct{}), errs: make(chan error, 16)}
	pa := a.AddPeer(ab.send)
	pb := b.AddPeer(ba.send)
	go ab.run(pb)
	go ba.run(pa)
	t.Cleanup(func() { pa.Close(); pb.Close(); close(ab.done); close(ba.done) })
	if err := pa.Open(); err != nil {
		t.Fatal(err)
	}
	if err := pb.Open(); err != nil {
		t.Fatal(err)
	}
	return ab, ba
}

func newWriter(t *testing.T, seed byte, n int) (*Core, [][]byte) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32))
	w, err := Create(store.NewMemory(), priv, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var blocks [][]byte
	for i := 0; i < n; i++ {
		blocks = append(blocks, []byte(fmt.Sprintf("block %d %s", i, bytes.Repeat([]byte{'x'}, i%17))))
	}
	if n > 0 {
		if _, err := w.Append(blocks...); err != nil {
			t.Fatal(err)
		}
	}
	return w, blocks
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	// generous: other work shares the machine and Node peers start slowly
	deadline := time.Now().Add(20 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestReplicateSparseReader(t *testing.T) {
	w, blocks := newWriter(t, 1, 200)
	r, err := NewReader(store.NewMemory(), w.Key(), nil)
	if err != nil {
		t.Fatal(err)
	}
	connect(t, NewReplicator(w), NewReplicator(r), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, i := range []uint64{150, 0, 199, 77} {
		waitFor(t, "upgrade", func() bool { return r.Length() == 200 })
		got, err := r.Get(ctx, i)
		if err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
		if !bytes.Equal(got, blocks[i]) {
			t.Fatalf("block %d: %q", i, got)
		}
	}
	if r.Has(1) || r.ContiguousLength() != 1 || r.Manifest() == nil {
		t.Errorf("reader should be sparse with a manifest: has(1)=%v contig=%d", r.Has(1), r.ContiguousLength())
	}
	// live appends reach the reader
	if _, err := w.Append([]byte("late one"), []byte("late two")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "live upgrade", func() bool { return r.Length() == 202 })
	got, err := r.Get(ctx, 201)
	if err != nil || string(got) != "late two" {
		t.Fatalf("late block: %q %v", got, err)
	}
}

// TestTamperingSeederIsRefused gives the reader one seeder that corrupts
// block values and one honest seeder: the reader must never return the
// corrupt bytes, must report the bad peer, and must still get the block.
func TestTamperingSeederIsRefused(t *testing.T) {
	w, blocks := newWriter(t, 2, 50)
	evil := func(m wire.Message) wire.Message {
		if d, ok := m.(*wire.Data); ok && d.Block != nil {
			c := *d
			b := *d.Block
			b.Value = append(bytes.Clone(b.Value), '!')
			c.Block = &b
			return &c
		}
		return m
	}
	r, _ := NewReader(store.NewMemory(), w.Key(), nil)
	rr := NewReplicator(r)
	bad, _ := connect(t, NewReplicator(w), rr, evil)
	waitFor(t, "upgrade", func() bool { return r.Length() == 50 })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := r.Get(ctx, 10)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("get from a lying seeder: %v", err)
	}
	select {
	case err := <-bad.errs:
		if !errors.Is(err, ErrMisbehaved) {
			t.Fatalf("bad data reported as %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("bad data was not reported")
	}
	connect(t, NewReplicator(w), rr, nil)
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, err := r.Get(ctx, 10)
	if err != nil || !bytes.Equal(got, blocks[10]) {
		t.Fatalf("get from honest seeder: %q %v", got, err)
	}
}

// TestWrongKeyReaderLearnsNothing: a reader for another key must reject
// the seeder's upgrade (the manifest does not hash to its key).
func TestWrongKeyReaderLearnsNothing(t *testing.T) {
	w, _ := newWriter(t, 3, 5)
	other, _ := newWriter(t, 4, 0)
	r, _ := NewReader(store.NewMemory(), other.Key(), nil)
	_, back := connect(t, NewReplicator(w), NewReplicator(r), nil)
	_ = back
	time.Sleep(100 * time.Millisecond)
	if r.Length() != 0 {
		t.Fatalf("reader for another key upgraded to %d", r.Length())
	}
}

func TestCapability(t *testing.T) {
	w, _ := newWriter(t, 5, 1)
	hh := bytes.Repeat([]byte{9}, 64)
	a, err := Handshake(w, true, hh)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckHandshake(w, false, hh, a); err != nil {
		t.Fatalf("responder rejects initiator: %v", err)
	}
	if err := CheckHandshake(w, true, hh, a); !errors.Is(err, ErrBadCapability) {
		t.Fatalf("same-role capability accepted: %v", err)
	}
	other, _ := newWriter(t, 6, 0)
	if err := CheckHandshake(other, false, hh, a); !errors.Is(err, ErrBadCapability) {
		t.Fatal("capability for another key accepted")
	}
}

// probeFrame is one decrypted Protomux frame of the Node transcript in
// reference/hypercore-probes/probe-out.json (copied to testdata).
type probeFrame struct {
	Who, Dir, Hex string
}

type muxMsg struct {
	channel uint64
	typ     uint64
	payload []byte
}

// parseMux splits a Protomux frame (plain or batch) into messages. This
// is a test-only reading of the framing; hyper/mux owns the real one.
func parseMux(t *testing.T, b []byte) []muxMsg {
	d := compact.NewDecoder(b)
	ch, _ := d.Uint()
	if ch != 0 {
		typ, _ := d.Uint()
		rest, _ := d.Raw()
		return []muxMsg{{ch, typ, rest}}
	}
	ctl, _ := d.Uint()
	if ctl != 0 { // a control message (open, reject, close) on channel 0
		return nil
	}
	ch, _ = d.Uint()
	var out []muxMsg
	for d.Remaining() > 0 {
		n, err := d.Uint()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			ch, _ = d.Uint()
			continue
		}
		msg, err := d.Fixed(int(n))
		if err != nil {
			t.Fatal(err)
		}
		md := compact.NewDecoder(msg)
		typ, _ := md.Uint()
		rest, _ := md.Raw()
		out = append(out, muxMsg{ch, typ, rest})
	}
	return out
}

// TestNodeTranscriptReplay plays the Node seeder's side of a real session
// (channel 1, the Hyperdrive db core) into a Go reader and checks that the
// Go reader asks what Node's reader asked, byte for byte, and ends up
// with the same blocks.
func TestNodeTranscriptReplay(t *testing.T) {
	raw, err := os.ReadFile("testdata/probe-transcript.json")
	if err != nil {
		t.Fatal(err)
	}
	var probe struct {
		DriveKeyHex string
		DbBlocksHex []string
		Log         []probeFrame
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		t.Fatal(err)
	}
	var server, client []muxMsg
	for _, f := range probe.Log {
		b, _ := hex.DecodeString(f.Hex)
		if f.Who == "server" && f.Dir == "plain-out" {
			server = append(server, parseMux(t, b)...)
		}
		if f.Who == "client" && f.Dir == "plain-out" {
			client = append(client, parseMux(t, b)...)
		}
	}
	key := key32(t, probe.DriveKeyHex)
	r, err := NewReader(store.NewMemory(), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep := NewReplicator(r)
	var mu sync.Mutex
	var sent [][]byte
	p := rep.AddPeer(func(m wire.Message) error {
		b, _ := wire.Marshal(m)
		mu.Lock()
		sent = append(sent, append([]byte{byte(m.Type())}, b...))
		mu.Unlock()
		return nil
	})
	if err := p.Open(); err != nil {
		t.Fatal(err)
	}
	nodeRequests := map[string]bool{}
	for _, m := range client {
		if m.channel == 1 && m.typ == uint64(wire.TypeRequest) {
			nodeRequests[hex.EncodeToString(m.payload)] = true
		}
	}
	if len(nodeRequests) != 3 {
		t.Fatalf("transcript has %d db requests", len(nodeRequests))
	}
	fetched := false
	for _, m := range server {
		if m.channel != 1 {
			continue
		}
		msg, err := wire.Unmarshal(wire.MessageType(m.typ), m.payload)
		if err != nil {
			t.Fatalf("server message type %d: %v", m.typ, err)
		}
		if d, ok := msg.(*wire.Data); ok && d.Block != nil && !fetched {
			// Node's reader asked for both blocks together; so do we.
			fetched = true
			rep.fetch(0)
			rep.fetch(1)
		}
		if err := p.Handle(msg); err != nil {
			t.Fatalf("handle %T: %v", msg, err)
		}
		if r.Length() == 2 && !fetched {
			fetched = true
			rep.fetch(0)
			rep.fetch(1)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	goRequests := map[string]bool{}
	for _, s := range sent {
		if wire.MessageType(s[0]) == wire.TypeRequest {
			goRequests[hex.EncodeToString(s[1:])] = true
		}
	}
	for req := range nodeRequests {
		if !goRequests[req] {
			t.Errorf("Node asked %s, Go did not (Go asked %v)", req, goRequests)
		}
	}
	for i, h := range probe.DbBlocksHex {
		want, _ := hex.DecodeString(h)
		got, err := r.Get(context.Background(), uint64(i))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("db block %d: %v", i, err)
		}
	}
}

// TestSilentSeederTimesOut connects a seeder that swallows block replies
// before an honest one: the request must time out, be cancelled and be
// asked again of the honest seeder.
func TestSilentSeederTimesOut(t *testing.T) {
	w, blocks := newWriter(t, 7, 20)
	r, _ := NewReader(store.NewMemory(), w.Key(), nil)
	rr := NewReplicator(r)
	rr.RequestTimeout = 100 * time.Millisecond
	silent := func(m wire.Message) wire.Message {
		if d, ok := m.(*wire.Data); ok && d.Block != nil {
			return nil
		}
		return m
	}
	connect(t, NewReplicator(w), rr, silent)
	waitFor(t, "upgrade", func() bool { return r.Length() == 20 })
	connect(t, NewReplicator(w), rr, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, err := r.Get(ctx, 13)
	if err != nil || !bytes.Equal(got, blocks[13]) {
		t.Fatalf("get after a silent seeder: %q %v", got, err)
	}
}

// TestExtensions checks that extension messages reach their handler and
// that a repeated name goes out empty, as Node sends it.
func TestExtensions(t *testing.T) {
	w, _ := newWriter(t, 8, 3)
	r, _ := NewReader(store.NewMemory(), w.Key(), nil)
	wr, rr := NewReplicator(w), NewReplicator(r)
	got := make(chan string, 4)
	rr.HandleExtension("hyperbee", func(_ *Peer, msg []byte) { got <- string(msg) })
	var names []string
	var mu sync.Mutex
	tap := func(m wire.Message) wire.Message {
		if e, ok := m.(*wire.Extension); ok {
			mu.Lock()
			names = append(names, e.Name)
			mu.Unlock()
		}
		return m
	}
	connect(t, wr, rr, tap)
	var p *Peer
	wr.mu.Lock()
	p = wr.peers[0]
	wr.mu.Unlock()
	for _, msg := range []string{"one", "two"} {
		if err := p.SendExtension("hyperbee", []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	p.SendExtension("other", []byte("ignored"))
	for _, want := range []string{"one", "two"} {
		select {
		case g := <-got:
			if g != want {
				t.Fatalf("got %q want %q", g, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("extension not delivered")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(names) != 3 || names[0] != "hyperbee" || names[1] != "" || names[2] != "other" {
		t.Fatalf("names on the wire: %q", names)
	}
}

// TestCapabilityMatchesNodeTranscript recomputes the capability Node's
// client sent in the captured session and checks our verifier accepts it
// in the responder role.
func TestCapabilityMatchesNodeTranscript(t *testing.T) {
	raw, err := os.ReadFile("testdata/probe-transcript.json")
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		DriveKeyHex, ClientHandshakeHash, CapabilityClientSends string
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	key := key32(t, p.DriveKeyHex)
	r, err := NewReader(store.NewMemory(), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	hh := unhex(t, p.ClientHandshakeHash)
	h, err := Handshake(r, true, hh)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(h.Capability[:]) != p.CapabilityClientSends {
		t.Fatalf("capability %x", h.Capability)
	}
	if err := CheckHandshake(r, false, hh, h); err != nil {
		t.Fatal(err)
	}
	// the open frame Node's client sent carries exactly this payload
	for _, f := range func() []probeFrame {
		var all struct{ Log []probeFrame }
		json.Unmarshal(raw, &all)
		return all.Log
	}() {
		if f.Who == "client" && f.Dir == "plain-out" && strings.HasSuffix(f.Hex, hex.EncodeToString(wire.MarshalHandshake(h))) {
			return
		}
	}
	t.Fatal("handshake payload not found in Node's open frame")
}

// TestReplicatorClose detaches replication: a Get then fails at once
// instead of waiting for peers that are gone.
func TestReplicatorClose(t *testing.T) {
	w, _ := newWriter(t, 9, 10)
	r, _ := NewReader(store.NewMemory(), w.Key(), nil)
	rr := NewReplicator(r)
	connect(t, NewReplicator(w), rr, nil)
	waitFor(t, "upgrade", func() bool { return r.Length() == 10 })
	rr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := r.Get(ctx, 4); !errors.Is(err, ErrNotAvailable) {
		t.Fatalf("get after close: %v", err)
	}
	w.Append([]byte("after close"))
	time.Sleep(50 * time.Millisecond)
	if r.Length() != 10 {
		t.Fatal("closed replicator still upgraded the core")
	}
}

// TestConcurrentReplication appends on the writer while several
// goroutines read random blocks from a reader that has two seeders (the
// writer and a second replica), to shake out races and deadlocks.
func TestConcurrentReplication(t *testing.T) {
	w, _ := newWriter(t, 10, 50)
	mid, _ := NewReader(store.NewMemory(), w.Key(), nil)
	r, _ := NewReader(store.NewMemory(), w.Key(), nil)
	wr, mr, rr := NewReplicator(w), NewReplicator(mid), NewReplicator(r)
	connect(t, wr, mr, nil)
	connect(t, wr, rr, nil)
	connect(t, mr, rr, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 50; i < 150; i++ {
			if _, err := w.Append([]byte(fmt.Sprintf("block %d %s", i, bytes.Repeat([]byte{'x'}, i%17)))); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	errs := make(chan error, 8)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for k := 0; k < 40; k++ {
				i := uint64((g*37 + k*11) % 150)
				var target *Core = r
				if k%3 == 0 {
					target = mid
				}
				for target.Length() <= i {
					if ctx.Err() != nil {
						errs <- ctx.Err()
						return
					}
					time.Sleep(time.Millisecond)
				}
				got, err := target.Get(ctx, i)
				if err != nil {
					errs <- fmt.Errorf("get %d: %w", i, err)
					return
				}
				want := fmt.Sprintf("block %d %s", i, bytes.Repeat([]byte{'x'}, int(i)%17))
				if string(got) != want {
					errs <- fmt.Errorf("block %d = %q", i, got)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestReaderOnDiskSurvivesRestart replicates into a Dir store, closes it
// mid-way, reopens it and continues: verified blocks and the signed head
// persist, and the reopened reader can still verify new proofs.
func TestReaderOnDiskSurvivesRestart(t *testing.T) {
	w, blocks := newWriter(t, 11, 60)
	dir := t.TempDir()
	st, err := store.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(st, w.Key(), nil)
	if err != nil {
		t.Fatal(err)
	}
	wr := NewReplicator(w)
	rr := NewReplicator(r)
	connect(t, wr, rr, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waitFor(t, "upgrade", func() bool { return r.Length() == 60 })
	for _, i := range []uint64{1, 30, 59} {
		if _, err := r.Get(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	rr.Close()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	st, err = store.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err = NewReader(st, w.Key(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Length() != 60 || r.Manifest() == nil || !r.Has(30) || r.Has(31) {
		t.Fatalf("reopened reader: length %d has(30)=%v", r.Length(), r.Has(30))
	}
	if got, err := r.Get(ctx, 59); err != nil || !bytes.Equal(got, blocks[59]) {
		t.Fatalf("stored block 59: %v", err)
	}
	w.Append([]byte("after restart"))
	connect(t, wr, NewReplicator(r), nil)
	waitFor(t, "upgrade after restart", func() bool { return r.Length() == 61 })
	for _, i := range []uint64{31, 60} {
		if _, err := r.Get(ctx, i); err != nil {
			t.Fatalf("get %d after restart: %v", i, err)
		}
	}
}

// TestReplicaHealsDamagedBlock damages a block on a replica's disk: Get
// must notice, forget the copy, fetch it again and return the true bytes.
func TestReplicaHealsDamagedBlock(t *testing.T) {
	w, blocks := newWriter(t, 12, 20)
	dir := t.TempDir()
	st, err := store.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := NewReader(st, w.Key(), nil)
	defer r.Close()
	connect(t, NewReplicator(w), NewReplicator(r), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waitFor(t, "upgrade", func() bool { return r.Length() == 20 })
	if _, err := r.Get(ctx, 7); err != nil {
		t.Fatal(err)
	}
	// block 7 is the only value in the blocks file: flip its last byte
	p := filepath.Join(dir, "blocks")
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-1] ^= 0x55
	if err := os.WriteFile(p, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := r.Get(ctx, 7)
	if err != nil || !bytes.Equal(got, blocks[7]) {
		t.Fatalf("healed block 7: %q %v", got, err)
	}
}
