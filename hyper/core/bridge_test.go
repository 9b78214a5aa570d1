package core

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hyperos/hyperos/hyper/core/store"
	"github.com/hyperos/hyperos/hyper/core/wire"
	"github.com/hyperos/hyperos/internal/nodetest"
)

// nodeBridge runs hyper/testdata/node/core-bridge.js: a real Node
// hypercore whose replication channel is forwarded, message by message,
// over the process's stdio.
type nodeBridge struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	mu    sync.Mutex
	lines chan map[string]json.RawMessage
	// stopping is set when the test ends; errors after that are the
	// teardown racing the pump, not findings.
	stopping atomic.Bool
	pumps    sync.WaitGroup
}

func startBridge(t *testing.T, args ...string) *nodeBridge {
	node := requireNode(t)
	cmd := nodetest.Command(t, node, "core-bridge.js", args...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &nodeBridge{cmd: cmd, in: in, lines: make(chan map[string]json.RawMessage, 1024)}
	go func() {
		sc := bufio.NewScanner(outp)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			var o map[string]json.RawMessage
			if json.Unmarshal(sc.Bytes(), &o) == nil {
				b.lines <- o
			}
		}
		close(b.lines)
	}()
	t.Cleanup(func() {
		b.stopping.Store(true)
		in.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		b.pumps.Wait() // stdout is closed now, so every pump returns
	})
	return b
}

// send forwards one Go message to the Node side.
func (b *nodeBridge) send(m wire.Message) error {
	body, err := wire.Marshal(m)
	if err != nil {
		return err
	}
	if os.Getenv("BRIDGE_DEBUG") != "" {
		fmt.Fprintf(os.Stderr, "go -> node %s %+v\n", m.Type(), m)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	_, err = fmt.Fprintf(b.in, "{\"msg\":%d,\"hex\":%q}\n", m.Type(), hex.EncodeToString(body))
	return err
}

// pump delivers Node's messages to p until a line without "msg" arrives,
// which it returns (nil when the process ended).
func (b *nodeBridge) pump(t *testing.T, p *Peer) map[string]json.RawMessage {
	for o := range b.lines {
		if _, ok := o["opened"]; ok {
			continue // the Node side saw both channel opens
		}
		raw, ok := o["msg"]
		if !ok {
			return o
		}
		var typ int
		var h string
		json.Unmarshal(raw, &typ)
		json.Unmarshal(o["hex"], &h)
		body, _ := hex.DecodeString(h)
		m, err := wire.Unmarshal(wire.MessageType(typ), body)
		if err != nil && !b.stopping.Load() {
			t.Errorf("Node sent an undecodable %s: %v", wire.MessageType(typ), err)
			continue
		}
		if os.Getenv("BRIDGE_DEBUG") != "" && !b.stopping.Load() {
			t.Logf("node -> go %s %+v", m.Type(), m)
		}
		if err := p.Handle(m); err != nil && !b.stopping.Load() {
			t.Errorf("handling Node's %s: %v", m.Type(), err)
		}
	}
	return nil
}

// TestLiveNodeSeederGoReader lets Node's replicator seed a core to a Go
// sparse reader.
func TestLiveNodeSeederGoReader(t *testing.T) {
	b := startBridge(t, "seed", "40")
	first := <-b.lines
	var key string
	var blocks []string
	json.Unmarshal(first["key"], &key)
	json.Unmarshal(first["blocks"], &blocks)
	if len(blocks) != 40 {
		t.Fatalf("bridge said %v", first)
	}
	r, err := NewReader(store.NewMemory(), key32(t, key), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := NewReplicator(r).AddPeer(b.send)
	if err := p.Open(); err != nil {
		t.Fatal(err)
	}
	b.pumps.Add(1)
	go func() { defer b.pumps.Done(); b.pump(t, p) }()
	waitFor(t, "upgrade from Node", func() bool { return r.Length() == 40 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, i := range []uint64{39, 0, 17, 18, 5} {
		got, err := r.Get(ctx, i)
		if err != nil {
			t.Fatalf("get %d from Node: %v", i, err)
		}
		if hex.EncodeToString(got) != blocks[i] {
			t.Fatalf("block %d: %q", i, got)
		}
	}
	if r.Manifest() == nil {
		t.Error("manifest not learned from Node")
	}
}

// TestLiveGoSeederNodeReader lets Node's replicator read a Go core: it
// must upgrade (also after a live append), learn the manifest and verify
// every block we serve.
func TestLiveGoSeederNodeReader(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x66}, 32))
	w, err := Create(store.NewMemory(), priv, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var blocks [][]byte
	for i := 0; i < 70; i++ {
		blocks = append(blocks, []byte(fmt.Sprintf("go block %d %s", i, strings.Repeat("z", i%31))))
	}
	w.Append(blocks[:33]...)
	key := w.Key()
	want := []uint64{69, 0, 33, 34, 12}
	var idx []string
	for _, i := range want {
		idx = append(idx, fmt.Sprint(i))
	}
	b := startBridge(t, "read", hex.EncodeToString(key[:]), strings.Join(idx, ","), "70")
	p := NewReplicator(w).AddPeer(b.send)
	if err := p.Open(); err != nil {
		t.Fatal(err)
	}
	// the rest arrives while Node is connected: it must follow the append
	time.Sleep(50 * time.Millisecond)
	if _, err := w.Append(blocks[33:]...); err != nil {
		t.Fatal(err)
	}
	done := make(chan map[string]json.RawMessage, 1)
	b.pumps.Add(1)
	go func() {
		defer b.pumps.Done()
		for {
			o := b.pump(t, p)
			if o == nil || o["result"] != nil {
				done <- o
				return
			}
		}
	}()
	var o map[string]json.RawMessage
	select {
	case o = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Node reader did not finish")
	}
	if o == nil {
		t.Fatal("Node reader exited without a result")
	}
	var res struct {
		Blocks   map[string]string
		Length   uint64
		Manifest *string
	}
	if err := json.Unmarshal(o["result"], &res); err != nil {
		t.Fatal(err)
	}
	if res.Length != 70 {
		t.Errorf("Node reader length %d", res.Length)
	}
	for _, i := range want {
		if res.Blocks[fmt.Sprint(i)] != hex.EncodeToString(blocks[i]) {
			t.Errorf("Node read block %d as %q", i, res.Blocks[fmt.Sprint(i)])
		}
	}
	enc, _ := wire.MarshalManifest(w.Manifest())
	if res.Manifest == nil || *res.Manifest != hex.EncodeToString(enc) {
		t.Errorf("Node learned manifest %v", res.Manifest)
	}
}

// TestLiveGoSparseReplicaSeedsNode has a Go replica that holds only a few
// blocks of a Go core serve those to Node's reader: availability goes out
// as bitfields in answer to Node's wants, and the proofs come from the
// nodes the replica verified itself.
func TestLiveGoSparseReplicaSeedsNode(t *testing.T) {
	w, blocks := newWriter(t, 0x67, 64)
	replica, err := NewReader(store.NewMemory(), w.Key(), nil)
	if err != nil {
		t.Fatal(err)
	}
	rr := NewReplicator(replica)
	connect(t, NewReplicator(w), rr, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	have := []uint64{5, 12, 40, 63}
	waitFor(t, "replica upgrade", func() bool { return replica.Length() == 64 })
	for _, i := range have {
		if _, err := replica.Get(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	if replica.ContiguousLength() != 0 {
		t.Fatal("replica is not sparse")
	}
	key := w.Key()
	var idx []string
	for _, i := range have {
		idx = append(idx, fmt.Sprint(i))
	}
	b := startBridge(t, "read", hex.EncodeToString(key[:]), strings.Join(idx, ","), "64")
	p := rr.AddPeer(b.send)
	if err := p.Open(); err != nil {
		t.Fatal(err)
	}
	done := make(chan map[string]json.RawMessage, 1)
	b.pumps.Add(1)
	go func() {
		defer b.pumps.Done()
		done <- b.pump(t, p)
	}()
	var o map[string]json.RawMessage
	select {
	case o = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Node reader did not finish")
	}
	var res struct {
		Blocks map[string]string
		Length uint64
	}
	if o == nil || json.Unmarshal(o["result"], &res) != nil {
		t.Fatalf("no result from Node: %v", o)
	}
	for _, i := range have {
		if res.Blocks[fmt.Sprint(i)] != hex.EncodeToString(blocks[i]) {
			t.Errorf("Node read block %d from the replica as %q", i, res.Blocks[fmt.Sprint(i)])
		}
	}
}

// TestLiveNodeTruncatesGoFollows: Node's writer truncates and regrows its
// core while a Go reader replicates it; the reader must move to the new
// fork and read the new blocks.
func TestLiveNodeTruncatesGoFollows(t *testing.T) {
	b := startBridge(t, "seed", "30")
	first := <-b.lines
	var key string
	json.Unmarshal(first["key"], &key)
	r, err := NewReader(store.NewMemory(), key32(t, key), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := NewReplicator(r).AddPeer(b.send)
	if err := p.Open(); err != nil {
		t.Fatal(err)
	}
	regrown := make(chan map[string]json.RawMessage, 1)
	b.pumps.Add(1)
	go func() {
		defer b.pumps.Done()
		for {
			o := b.pump(t, p)
			if o == nil {
				return
			}
			if o["regrown"] != nil {
				regrown <- o
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waitFor(t, "upgrade from Node", func() bool { return r.Length() == 30 })
	for _, i := range []uint64{2, 25} {
		if _, err := r.Get(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	b.mu.Lock()
	fmt.Fprintf(b.in, "{\"truncate\":20,\"more\":6}\n")
	b.mu.Unlock()
	var o map[string]json.RawMessage
	select {
	case o = <-regrown:
	case <-time.After(20 * time.Second):
		t.Fatal("Node did not truncate")
	}
	var rg struct {
		Fork, Length uint64
		Blocks       []string
	}
	json.Unmarshal(o["regrown"], &rg)
	waitFor(t, "Node's new fork", func() bool { return r.Fork() == rg.Fork && r.Length() == rg.Length })
	got, err := r.Get(ctx, 23)
	if err != nil || hex.EncodeToString(got) != rg.Blocks[3] {
		t.Fatalf("block 23 of the new fork: %q %v", got, err)
	}
}

// TestLiveGoTruncatesNodeFollows: a Go writer truncates and regrows while
// Node's reader follows; Node must reach the new fork through our proofs.
func TestLiveGoTruncatesNodeFollows(t *testing.T) {
	w, _ := newWriter(t, 0x68, 40)
	key := w.Key()
	b := startBridge(t, "read", hex.EncodeToString(key[:]), "0,31,37", "38", "1")
	p := NewReplicator(w).AddPeer(b.send)
	if err := p.Open(); err != nil {
		t.Fatal(err)
	}
	done := make(chan map[string]json.RawMessage, 1)
	b.pumps.Add(1)
	go func() {
		defer b.pumps.Done()
		done <- b.pump(t, p)
	}()
	time.Sleep(300 * time.Millisecond) // let Node follow fork 0 first
	if err := w.Truncate(30); err != nil {
		t.Fatal(err)
	}
	var fresh [][]byte
	for i := 30; i < 38; i++ {
		fresh = append(fresh, []byte(fmt.Sprintf("go fork1 block %d", i)))
	}
	if _, err := w.Append(fresh...); err != nil {
		t.Fatal(err)
	}
	var o map[string]json.RawMessage
	select {
	case o = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Node reader did not reach fork 1")
	}
	var res struct {
		Blocks       map[string]string
		Length, Fork uint64
	}
	if o == nil || json.Unmarshal(o["result"], &res) != nil {
		t.Fatalf("no result from Node: %v", o)
	}
	if res.Fork != 1 || res.Length != 38 {
		t.Fatalf("Node at fork %d length %d", res.Fork, res.Length)
	}
	for _, i := range []int{31, 37} {
		if res.Blocks[fmt.Sprint(i)] != hex.EncodeToString(fresh[i-30]) {
			t.Errorf("Node read block %d as %q", i, res.Blocks[fmt.Sprint(i)])
		}
	}
}

// TestLiveSeekWithNode seeks both ways: a Go reader seeks in Node's core
// (Node answers our hash+seek requests) and Node's reader seeks in a Go
// core (we answer Node's), neither side holding the blocks beforehand.
func TestLiveSeekWithNode(t *testing.T) {
	t.Run("go reads node", func(t *testing.T) {
		b := startBridge(t, "seed", "90")
		first := <-b.lines
		var key string
		var hexBlocks []string
		json.Unmarshal(first["key"], &key)
		json.Unmarshal(first["blocks"], &hexBlocks)
		var blocks [][]byte
		for _, h := range hexBlocks {
			blk, _ := hex.DecodeString(h)
			blocks = append(blocks, blk)
		}
		r, err := NewReader(store.NewMemory(), key32(t, key), nil)
		if err != nil {
			t.Fatal(err)
		}
		p := NewReplicator(r).AddPeer(b.send)
		if err := p.Open(); err != nil {
			t.Fatal(err)
		}
		b.pumps.Add(1)
		go func() { defer b.pumps.Done(); b.pump(t, p) }()
		waitFor(t, "upgrade from Node", func() bool { return r.Length() == 90 })
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var total uint64
		for _, blk := range blocks {
			total += uint64(len(blk))
		}
		for _, off := range []uint64{0, 1, 500, 777, total / 2, total - 1, total} {
			i, rel, err := r.Seek(ctx, off)
			if err != nil {
				t.Fatalf("seek %d in Node's core: %v", off, err)
			}
			if wi, wrel := bruteSeek(blocks, off); i != wi || rel != wrel {
				t.Fatalf("seek %d = (%d, %d), want (%d, %d)", off, i, rel, wi, wrel)
			}
		}
		if r.Has(45) {
			t.Error("seeking downloaded blocks")
		}
	})
	t.Run("node reads go", func(t *testing.T) {
		w, blocks := newWriter(t, 0x69, 90)
		key := w.Key()
		var total uint64
		for _, blk := range blocks {
			total += uint64(len(blk))
		}
		offsets := []uint64{0, 1, 500, 777, total / 2, total - 1}
		var offs []string
		for _, o := range offsets {
			offs = append(offs, fmt.Sprint(o))
		}
		b := startBridge(t, "read", hex.EncodeToString(key[:]), "0", "90", "0", strings.Join(offs, ","))
		p := NewReplicator(w).AddPeer(b.send)
		if err := p.Open(); err != nil {
			t.Fatal(err)
		}
		done := make(chan map[string]json.RawMessage, 1)
		b.pumps.Add(1)
		go func() { defer b.pumps.Done(); done <- b.pump(t, p) }()
		var o map[string]json.RawMessage
		select {
		case o = <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("Node reader did not finish")
		}
		var res struct{ Seeks [][2]uint64 }
		if o == nil || json.Unmarshal(o["result"], &res) != nil || len(res.Seeks) != len(offsets) {
			t.Fatalf("no seek results from Node: %v", o)
		}
		for k, off := range offsets {
			if wi, wrel := bruteSeek(blocks, off); res.Seeks[k] != [2]uint64{wi, wrel} {
				t.Errorf("Node seek %d in Go's core = %v, want (%d, %d)", off, res.Seeks[k], wi, wrel)
			}
		}
	})
}
