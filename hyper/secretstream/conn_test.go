package secretstream

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// tcpPair returns two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			acc <- nil
			return
		}
		acc <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-acc
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// handshakePair runs both handshakes concurrently.
func handshakePair(t testing.TB, a, b net.Conn, ca, cb *Config) (*Conn, *Conn) {
	t.Helper()
	cli, srv := Client(a, ca), Server(b, cb)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake(ctx) }()
	if err := cli.Handshake(ctx); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	return cli, srv
}

func TestConnPairs(t *testing.T) {
	for _, name := range []string{"pipe", "tcp"} {
		t.Run(name, func(t *testing.T) {
			var a, b net.Conn
			if name == "pipe" {
				a, b = net.Pipe()
				t.Cleanup(func() { a.Close(); b.Close() })
			} else {
				a, b = tcpPair(t)
			}
			ka, kb := seedKP(t, 1), seedKP(t, 2)
			cli, srv := handshakePair(t, a, b, &Config{KeyPair: ka, RemotePublicKey: kb.Public}, &Config{KeyPair: kb})
			if !bytes.Equal(cli.RemotePublicKey(), kb.Public) || !bytes.Equal(srv.RemotePublicKey(), ka.Public) {
				t.Fatal("remote keys wrong")
			}
			if !bytes.Equal(cli.HandshakeHash(), srv.HandshakeHash()) || len(cli.HandshakeHash()) != 64 {
				t.Fatal("handshake hashes differ")
			}
			if !cli.IsInitiator() || srv.IsInitiator() {
				t.Fatal("roles")
			}
			big := make([]byte, 300000)
			_, _ = rand.Read(big)
			msgs := [][]byte{[]byte("hello"), {}, big, []byte("bye")}
			var wg sync.WaitGroup
			wg.Add(2)
			// Both directions at once.
			for _, pair := range [][2]*Conn{{cli, srv}, {srv, cli}} {
				go func(w, r *Conn) {
					defer wg.Done()
					for _, m := range msgs {
						if err := w.WriteMessage(m); err != nil {
							t.Errorf("write: %v", err)
							return
						}
					}
				}(pair[0], pair[1])
			}
			for _, r := range []*Conn{srv, cli} {
				for i, want := range msgs {
					got, err := r.ReadMessage()
					if err != nil {
						t.Fatalf("read %d: %v", i, err)
					}
					if !bytes.Equal(got, want) {
						t.Fatalf("message %d: got %d bytes, want %d", i, len(got), len(want))
					}
				}
			}
			wg.Wait()

			// Stream mode: Write splits, Read reassembles.
			go func() {
				if _, err := cli.Write(big); err != nil {
					t.Errorf("stream write: %v", err)
				}
			}()
			got := make([]byte, len(big))
			if _, err := io.ReadFull(srv, got); err != nil || !bytes.Equal(got, big) {
				t.Fatalf("stream read: %v", err)
			}
		})
	}
}

func TestRemoteKeyMismatch(t *testing.T) {
	a, b := tcpPair(t)
	cli, srv := Client(a, &Config{RemotePublicKey: seedKP(t, 9).Public}), Server(b, nil)
	go func() { _ = srv.Handshake(context.Background()) }()
	if err := cli.Handshake(context.Background()); err == nil {
		t.Fatal("handshake with the wrong remote key succeeded")
	}
}

// TestHandshakeStall checks that a peer which connects and says nothing
// cannot hold the handshake beyond the context or the configured timeout.
func TestHandshakeStall(t *testing.T) {
	a, _ := tcpPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := Client(a, nil).Handshake(ctx)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("took too long")
	}

	_, b := tcpPair(t)
	start = time.Now()
	err = Server(b, &Config{HandshakeTimeout: 150 * time.Millisecond}).Handshake(context.Background())
	if err == nil {
		t.Fatal("stalled server handshake succeeded")
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("HandshakeTimeout ignored")
	}

	// Cancelling (not a deadline) interrupts too.
	c, _ := tcpPair(t)
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	if err := Client(c, nil).Handshake(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want canceled", err)
	}
}

// TestOversizedFrame checks that a frame above MaxMessageSize is refused
// from its length prefix alone.
func TestOversizedFrame(t *testing.T) {
	a, b := tcpPair(t)
	cli, srv := handshakePair(t, a, b, nil, &Config{MaxMessageSize: 1000})
	if err := cli.WriteMessage(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if m, err := srv.ReadMessage(); err != nil || len(m) != 1000 {
		t.Fatalf("1000-byte message: %v", err)
	}
	if err := cli.WriteMessage(make([]byte, 1001)); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.ReadMessage(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("err = %v, want ErrFrameTooLarge", err)
	}
	// The error is sticky.
	if _, err := srv.ReadMessage(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("second read err = %v", err)
	}
	if err := cli.WriteMessage(make([]byte, MaxMessageSize+1)); err == nil {
		t.Fatal("wrote a message larger than a frame")
	}
}

// TestCorruptFrame checks that a flipped ciphertext bit kills the stream.
func TestCorruptFrame(t *testing.T) {
	a, b := tcpPair(t)
	mitmA, mitmB := net.Pipe()
	defer mitmA.Close()
	defer mitmB.Close()
	// Relay b <-> mitmB, corrupting the 200th byte from client to server.
	go func() { _, _ = io.Copy(b, mitmB) }()
	go func() {
		buf := make([]byte, 1)
		n := 0
		for {
			if _, err := io.ReadFull(b, buf); err != nil {
				return
			}
			n++
			if n == 200 {
				buf[0] ^= 0x40
			}
			if _, err := mitmB.Write(buf); err != nil {
				return
			}
		}
	}()
	cli, srv := handshakePair(t, a, mitmA, nil, nil)
	go func() { _ = cli.WriteMessage(make([]byte, 100)) }()
	if _, err := srv.ReadMessage(); !errors.Is(err, errStreamAuth) {
		t.Fatalf("err = %v, want authentication failure", err)
	}
}

func TestKeepAlive(t *testing.T) {
	a, b := tcpPair(t)
	cli, srv := handshakePair(t, a, b, &Config{KeepAlive: 30 * time.Millisecond}, nil)
	defer cli.Close()
	// The server has keepalives off, so it sees the empty messages.
	_ = srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := 0; i < 2; i++ {
		m, err := srv.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if len(m) != 0 {
			t.Fatalf("keepalive carried %d bytes", len(m))
		}
	}
	// A side with keepalives on skips them.
	a2, b2 := tcpPair(t)
	c2, s2 := handshakePair(t, a2, b2, nil, &Config{KeepAlive: time.Hour})
	go func() {
		_ = c2.WriteMessage(nil)
		_ = c2.WriteMessage([]byte("x"))
	}()
	m, err := s2.ReadMessage()
	if err != nil || string(m) != "x" {
		t.Fatalf("got %q, %v", m, err)
	}
}

func TestCloseStopsReader(t *testing.T) {
	a, b := tcpPair(t)
	cli, srv := handshakePair(t, a, b, nil, nil)
	_ = cli.Close()
	if _, err := srv.ReadMessage(); !errors.Is(err, io.EOF) {
		t.Fatalf("err = %v, want EOF", err)
	}
	if err := cli.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
}

func TestWrongStreamID(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	// Run a real responder handshake, then send a header with a bad id.
	eph, st := seedKP(t, 0xe0), seedKP(t, 0x11)
	hs := newHandshake(true, st, eph)
	srv := Server(b, nil)
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake(context.Background()) }()
	m1, _ := hs.writeMessage()
	_, _ = a.Write(append(appendFrameHeader(nil, len(m1)), m1...))
	m2, err := readFrame(a, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := hs.readMessage(m2); err != nil {
		t.Fatal(err)
	}
	m3, _ := hs.writeMessage()
	_, _ = a.Write(append(appendFrameHeader(nil, len(m3)), m3...))
	go func() { _, _ = io.Copy(io.Discard, a) }()
	bad := appendFrameHeader(nil, 56)
	bad = append(bad, make([]byte, 56)...)
	_, _ = a.Write(bad)
	if err := <-errc; err == nil {
		t.Fatal("accepted a header with the wrong stream id")
	}
}

// TestFromKeys runs the stream with keys from a handshake done elsewhere,
// as hyperdht does: only the headers are exchanged.
func TestFromKeys(t *testing.T) {
	is, rs := seedKP(t, 0x11), seedKP(t, 0x22)
	ini := newHandshake(true, is, seedKP(t, 0xe0))
	res := newHandshake(false, rs, seedKP(t, 0xe1))
	for !ini.complete || !res.complete {
		w, r := ini, res
		if ini.step%2 == 1 {
			w, r = res, ini
		}
		msg, err := w.writeMessage()
		if err != nil {
			t.Fatal(err)
		}
		if err := r.readMessage(msg); err != nil {
			t.Fatal(err)
		}
	}
	a, b := tcpPair(t)
	ca := FromKeys(a, true, Keys{Tx: ini.tx, Rx: ini.rx, Hash: ini.hash[:], PublicKey: is.Public, RemotePublicKey: rs.Public}, nil)
	cb := FromKeys(b, false, Keys{Tx: res.tx, Rx: res.rx, Hash: res.hash[:], PublicKey: rs.Public, RemotePublicKey: is.Public}, nil)
	// The first bytes on the wire are the 56-byte header frame.
	go func() { _ = ca.WriteMessage([]byte("over preset keys")) }()
	m, err := cb.ReadMessage()
	if err != nil || string(m) != "over preset keys" {
		t.Fatalf("got %q, %v", m, err)
	}
	if !bytes.Equal(cb.RemotePublicKey(), is.Public) || !bytes.Equal(cb.HandshakeHash(), res.hash[:]) {
		t.Fatal("keys not reported")
	}

	// A peer with a different hash sends the wrong stream id.
	x, y := tcpPair(t)
	bad := ini.hash
	bad[0] ^= 1
	cx := FromKeys(x, true, Keys{Tx: ini.tx, Rx: ini.rx, Hash: bad[:]}, nil)
	cy := FromKeys(y, false, Keys{Tx: res.tx, Rx: res.rx, Hash: res.hash[:]}, nil)
	go func() { _ = cx.Handshake(context.Background()) }()
	start := time.Now()
	if err := cy.Handshake(context.Background()); err == nil {
		t.Fatal("accepted a header for a different handshake")
	}
	// Both sides refuse each other's header; neither may sit out the
	// handshake timeout waiting for a header the other cut off.
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("failing took %v", d)
	}
}

// TestWriteMessages checks that batched writes deliver the same messages,
// in order, as single ones: empty, small and large messages, batches that
// span several underlying writes, and single writes in between.
func TestWriteMessages(t *testing.T) {
	x, y := tcpPair(t)
	cli, srv := handshakePair(t, x, y, nil, nil)
	var want [][]byte
	var batches [][][]byte
	for b := 0; b < 20; b++ {
		var batch [][]byte
		for i := 0; i < b%7+1; i++ {
			n := []int{0, 1, 47, 63, 64, 65, 1000, 70000, 300000}[(b*3+i)%9]
			m := make([]byte, n)
			for j := range m {
				m[j] = byte(b*31 + i*7 + j)
			}
			batch = append(batch, m)
			want = append(want, m)
		}
		batches = append(batches, batch)
	}
	errc := make(chan error, 1)
	go func() {
		for i, b := range batches {
			var err error
			if i%5 == 4 {
				for _, m := range b {
					if err = cli.WriteMessage(m); err != nil {
						break
					}
				}
			} else {
				err = cli.WriteMessages(b)
			}
			if err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for i, w := range want {
		got, err := srv.ReadMessage()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(got, w) {
			t.Fatalf("message %d: %d bytes, want %d", i, len(got), len(w))
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
