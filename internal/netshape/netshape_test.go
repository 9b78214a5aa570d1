package netshape

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// target runs a TCP server on 127.0.0.1 that calls fn for each connection.
func target(t testing.TB, fn func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				fn(c)
			}()
		}
	}()
	return ln.Addr().String()
}

func proxy(t testing.TB, to string, cfg Config) *Proxy {
	t.Helper()
	p, err := Listen("127.0.0.1:0", to, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func pattern(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestBytesArriveIntactAndInOrder sends distinct patterns both ways at once,
// in chunks much smaller than the data so that many are in flight, and
// checks every byte; the target's reply needs the client's half-close to
// have come through.
func TestBytesArriveIntactAndInOrder(t *testing.T) {
	const size = 3<<20 + 12345
	up, down := pattern(1, size), pattern(2, size)
	for _, cfg := range []Config{
		{Delay: time.Millisecond, Chunk: 1000},
		{Delay: 2 * time.Millisecond, Rate: 400 * Mbit, Burst: 3000, Chunk: 1500},
	} {
		t.Run(cfg.String(), func(t *testing.T) {
			addr := target(t, func(c net.Conn) {
				go c.Write(down) // both ways at once
				got, err := io.ReadAll(c)
				if err != nil {
					t.Error(err)
					return
				}
				sum := sha256.Sum256(got)
				c.Write(sum[:])
			})
			p := proxy(t, addr, cfg)
			c, err := net.Dial("tcp", p.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			go func() {
				c.Write(up)
				c.(*net.TCPConn).CloseWrite()
			}()
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != size+sha256.Size {
				t.Fatalf("got %d bytes, want %d", len(got), size+sha256.Size)
			}
			if !bytes.Equal(got[:size], down) {
				i := 0
				for got[i] == down[i] {
					i++
				}
				t.Fatalf("download differs from byte %d", i)
			}
			if want := sha256.Sum256(up); !bytes.Equal(got[size:], want[:]) {
				t.Fatal("the target saw other bytes than were sent")
			}
			if st := p.Stats(); st.Up != size || st.Down != size+sha256.Size || st.Conns != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestBucketSchedulesAtTheRate checks the token bucket's arithmetic on a
// made-up clock: a burst leaves at once, the rest at the rate.
func TestBucketSchedulesAtTheRate(t *testing.T) {
	b := newBucket(1000, 200) // 1000 B/s: 1 ms a byte; 200 ms of burst
	t0 := time.Unix(1000, 0)
	for i, tc := range []struct {
		at   time.Duration
		n    int
		want time.Duration
	}{
		{0, 100, 0},                      // within the burst
		{0, 100, 0},                      // burst used up exactly
		{0, 100, 100 * time.Millisecond}, // waits for 100 bytes' worth
		{0, 50, 150 * time.Millisecond},  // queued behind it
		{time.Second, 100, time.Second},  // idle: the bucket refilled
		{time.Second, 300, time.Second + 200*time.Millisecond}, // bigger than the burst
	} {
		if got := b.schedule(t0.Add(tc.at), tc.n).Sub(t0); got != tc.want {
			t.Errorf("step %d: leaves at %v, want %v", i, got, tc.want)
		}
	}
	if got := newBucket(0, 0).schedule(t0, 1<<30); !got.Equal(t0) {
		t.Errorf("unlimited bucket delayed to %v", got.Sub(t0))
	}
}

// TestCloseEndsOpenConnections checks that Close returns with a connection
// still open and that the client sees it end.
func TestCloseEndsOpenConnections(t *testing.T) {
	addr := target(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	p, err := Listen("127.0.0.1:0", addr, Config{Delay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hello"))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("read after Close: %v", err)
	}
	if _, err := net.Dial("tcp", p.Addr().String()); err == nil {
		t.Fatal("the proxy still accepts after Close")
	}
}

// TestUnreachableTargetClosesClient checks that a connection whose target
// cannot be dialled is closed rather than left hanging.
func TestUnreachableTargetClosesClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	p := proxy(t, dead, Config{})
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read: %v, want EOF", err)
	}
}
