package mux

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hyperos/hyperos/internal/nodetest"

	"github.com/hyperos/hyperos/hyper/compact"
	"github.com/hyperos/hyperos/hyper/secretstream"
)

// requireNode returns the node binary with the pinned packages installed; see
// hyper/internal/nodetest.
func requireNode(t *testing.T) string {
	t.Helper()
	return nodetest.Require(t)
}

// nodePeer is a running transport-peer.js.
type nodePeer struct {
	cmd    *exec.Cmd
	events chan map[string]any
	stderr *bytes.Buffer
}

func startNodePeer(t *testing.T, node string, args ...string) *nodePeer {
	t.Helper()
	cmd := nodetest.Command(t, node, "transport-peer.js", args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &nodePeer{cmd: cmd, events: make(chan map[string]any, 100), stderr: new(bytes.Buffer)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	go func() {
		defer close(p.events)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev map[string]any
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				ev = map[string]any{"event": "unparsed", "line": sc.Text()}
			}
			p.events <- ev
		}
	}()
	return p
}

// next returns the next event named name, failing on a Node error.
func (p *nodePeer) next(t *testing.T, name string) map[string]any {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case ev, ok := <-p.events:
			if !ok {
				t.Fatalf("node exited while waiting for %q; stderr:\n%s", name, p.stderr)
			}
			if ev["event"] == "error" {
				t.Fatalf("node reported an error: %v", ev)
			}
			if ev["event"] == name {
				return ev
			}
		case <-timeout:
			t.Fatalf("timed out waiting for node event %q; stderr:\n%s", name, p.stderr)
		}
	}
}

// goMessage is a message received by the Go side.
type goMessage struct {
	protocol string
	typ      uint64
	payload  []byte
}

func encString(s string) []byte {
	var e compact.Encoder
	e.String(s)
	return e.Bytes()
}

func TestInteropNode(t *testing.T) {
	node := requireNode(t)
	for _, goInitiator := range []bool{true, false} {
		name := "go-responder"
		if goInitiator {
			name = "go-initiator"
		}
		t.Run(name, func(t *testing.T) { runInterop(t, node, goInitiator) })
	}
}

func runInterop(t *testing.T, node string, goInitiator bool) {
	nodeSeed := bytes.Repeat([]byte{0x4e}, 32)
	goKP, err := secretstream.KeyPairFromSeed(bytes.Repeat([]byte{0x47}, 32))
	if err != nil {
		t.Fatal(err)
	}
	nodeKP, err := secretstream.KeyPairFromSeed(nodeSeed)
	if err != nil {
		t.Fatal(err)
	}

	var raw net.Conn
	var peer *nodePeer
	if goInitiator {
		peer = startNodePeer(t, node, "server", hex.EncodeToString(nodeSeed))
		ev := peer.next(t, "listening")
		port := strconv.Itoa(int(ev["port"].(float64)))
		if raw, err = net.Dial("tcp", net.JoinHostPort("127.0.0.1", port)); err != nil {
			t.Fatal(err)
		}
	} else {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		peer = startNodePeer(t, node, "client", hex.EncodeToString(nodeSeed), port)
		_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(15 * time.Second))
		if raw, err = ln.Accept(); err != nil {
			t.Fatalf("accept: %v; node stderr:\n%s", err, peer.stderr)
		}
	}
	cfg := &secretstream.Config{KeyPair: goKP, RemotePublicKey: nodeKP.Public, KeepAlive: 100 * time.Millisecond}
	var conn *secretstream.Conn
	if goInitiator {
		conn = secretstream.Client(raw, cfg)
	} else {
		conn = secretstream.Server(raw, cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := conn.Handshake(ctx); err != nil {
		t.Fatalf("handshake: %v; node stderr:\n%s", err, peer.stderr)
	}
	ev := peer.next(t, "connect")
	if ev["remotePublicKey"] != hex.EncodeToString(goKP.Public) {
		t.Errorf("node saw our key as %v", ev["remotePublicKey"])
	}
	if ev["handshakeHash"] != hex.EncodeToString(conn.HandshakeHash()) {
		t.Errorf("handshake hash: node %v, go %x", ev["handshakeHash"], conn.HandshakeHash())
	}
	if ev["isInitiator"] == goInitiator {
		t.Errorf("both sides think they are the initiator: %v", ev)
	}

	m := New(conn)
	defer m.Close()
	msgs := make(chan goMessage, 100)
	var mu sync.Mutex
	opened := map[string]string{} // protocol -> remote handshake
	closedRemote := make(chan string, 10)
	config := func(protocol string, id []byte, hs string) ChannelConfig {
		return ChannelConfig{
			Protocol:  protocol,
			ID:        id,
			Handshake: encString(hs),
			OnOpen: func(ch *Channel, handshake []byte) {
				s, err := compact.NewDecoder(handshake).String()
				if err != nil {
					t.Errorf("%s handshake: %v", protocol, err)
				}
				mu.Lock()
				opened[protocol] = s
				mu.Unlock()
			},
			OnMessage: func(ch *Channel, typ uint64, payload []byte) {
				msgs <- goMessage{ch.Protocol(), typ, payload}
			},
			OnClose: func(ch *Channel, remote bool) {
				if remote {
					closedRemote <- ch.Protocol()
				}
			},
		}
	}
	nodeInitiated := make(chan *Channel, 1)
	m.Pair("hyperos/node-initiated", nil, func(m *Mux, protocol string, id []byte) {
		ch, err := m.Open(config(protocol, id, "go-accepts"))
		if err != nil {
			t.Errorf("pair: %v", err)
			return
		}
		nodeInitiated <- ch
	})
	interop, err := m.Open(config("hyperos/interop", []byte("interop-id"), "go-hello"))
	if err != nil {
		t.Fatal(err)
	}
	goInitiated, err := m.Open(config("hyperos/go-initiated", nil, "go-initiated"))
	if err != nil {
		t.Fatal(err)
	}
	// Start reading only now: Node's opens are already on their way, and
	// an open that arrives before our Open or Pair is rejected.
	m.Start()
	for _, ch := range []*Channel{interop, goInitiated} {
		if _, err := ch.WaitOpen(ctx); err != nil {
			t.Fatalf("%s: %v", ch.Protocol(), err)
		}
	}
	var ni *Channel
	select {
	case ni = <-nodeInitiated:
	case <-ctx.Done():
		t.Fatal("node never opened hyperos/node-initiated")
	}
	if _, err := ni.WaitOpen(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if opened["hyperos/interop"] != "node-hello" || opened["hyperos/go-initiated"] != "node-accepts" || opened["hyperos/node-initiated"] != "node-initiated" {
		t.Errorf("remote handshakes: %v", opened)
	}
	mu.Unlock()

	// Go -> Node: strings (echoed), a 3 MiB buffer (one frame each way,
	// far above the 64 KiB read chunk; returned whole), and a reply on the
	// node-initiated channel.
	big := make([]byte, 3<<20)
	_, _ = rand.Read(big)
	for i := 1; i <= 3; i++ {
		if err := interop.Send(0, encString("ping-"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	var e compact.Encoder
	e.Buffer(big)
	if err := interop.Send(1, e.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := ni.Send(0, encString("hello-from-go")); err != nil {
		t.Fatal(err)
	}
	// Idle long enough for keepalives to flow both ways.
	time.Sleep(350 * time.Millisecond)

	want := map[string][]string{
		"hyperos/interop":        {"from-node-1", "from-node-2", "echo:ping-1", "echo:ping-2", "echo:ping-3"},
		"hyperos/go-initiated":   {"paired"},
		"hyperos/node-initiated": {"hello-from-node", "echo:hello-from-go"},
	}
	got := map[string][]string{}
	gotBig := false
	count := func() int {
		n := 0
		for _, v := range got {
			n += len(v)
		}
		return n
	}
	total := 0
	for _, v := range want {
		total += len(v)
	}
	for count() < total || !gotBig {
		select {
		case msg := <-msgs:
			d := compact.NewDecoder(msg.payload)
			switch msg.typ {
			case 0:
				s, err := d.String()
				if err != nil {
					t.Fatalf("%s: %v", msg.protocol, err)
				}
				got[msg.protocol] = append(got[msg.protocol], s)
			case 1:
				b, err := d.Buffer()
				if err != nil || !bytes.Equal(b, big) {
					t.Fatalf("buffer came back wrong (%d bytes, %v)", len(b), err)
				}
				gotBig = true
			}
		case <-ctx.Done():
			t.Fatalf("timed out; got %v (big %v); node stderr:\n%s", got, gotBig, peer.stderr)
		}
	}
	for p, w := range want {
		// Order within a channel is preserved by the protocol; the batch
		// from Node's onopen comes first on hyperos/interop.
		if strings.Join(got[p], ",") != strings.Join(w, ",") {
			t.Errorf("%s: got %v, want %v", p, got[p], w)
		}
	}

	// 'bye' makes Node close the channel: Go sees a remote close.
	if err := interop.Send(0, encString("bye")); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-closedRemote:
		if p != "hyperos/interop" {
			t.Errorf("remote closed %s", p)
		}
	case <-ctx.Done():
		t.Fatal("node did not close hyperos/interop")
	}
	if err := interop.Send(0, encString("late")); err == nil {
		t.Error("send on a remotely closed channel succeeded")
	}
	// Go closes a channel; Node reports a remote close.
	if err := goInitiated.Close(); err != nil {
		t.Fatal(err)
	}
	for {
		ev := peer.next(t, "close")
		if ev["protocol"] == "hyperos/go-initiated" {
			if ev["remote"] != true {
				t.Errorf("node close event %v", ev)
			}
			break
		}
	}
	if m.Err() != nil {
		t.Fatalf("mux failed: %v", m.Err())
	}
	_ = m.Close()
	peer.next(t, "closed")
	if err := peer.cmd.Wait(); err != nil {
		t.Fatalf("node exited with %v; stderr:\n%s", err, peer.stderr)
	}
}
