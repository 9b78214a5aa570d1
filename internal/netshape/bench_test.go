package netshape

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// The link the live-boot benchmark uses: 100 Mbit/s, 20 ms round trip.
var benchLink = Config{Delay: 10 * time.Millisecond, Rate: 100 * Mbit}

// source is a target that sends n bytes on every connection, then closes.
func source(b *testing.B, n int) string {
	buf := make([]byte, 64<<10)
	return target(b, func(c net.Conn) {
		for left := n; left > 0; {
			k, err := c.Write(buf[:min(left, len(buf))])
			if err != nil {
				return
			}
			left -= k
		}
	})
}

// reportRate reports bytes moved in d as MB/s, Mbit/s and the share of the
// configured rate.
func reportRate(b *testing.B, bytes int64, d time.Duration) {
	mbps := float64(bytes) / d.Seconds() / 1e6
	b.ReportMetric(mbps, "MB/s")
	b.ReportMetric(mbps*8, "Mbit/s")
	b.ReportMetric(100*float64(bytes)/d.Seconds()/float64(benchLink.Rate), "%rate")
}

// BenchmarkThroughput measures one bulk download over the 100 Mbit/s, 20 ms
// link: it should reach the rate (12.5 MB/s), not a latency-bound fraction.
func BenchmarkThroughput(b *testing.B) {
	const size = 16 << 20
	p := proxy(b, source(b, size), benchLink)
	b.SetBytes(size)
	b.ResetTimer()
	start := time.Now()
	var moved int64
	for range b.N {
		c, err := net.Dial("tcp", p.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, c)
		c.Close()
		if err != nil || n != size {
			b.Fatalf("got %d bytes: %v", n, err)
		}
		moved += n
	}
	reportRate(b, moved, time.Since(start))
}

// BenchmarkThroughputShared measures four downloads at once: together they
// get the link's rate, not four times it.
func BenchmarkThroughputShared(b *testing.B) {
	const size, conns = 4 << 20, 4
	p := proxy(b, source(b, size), benchLink)
	b.SetBytes(size * conns)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		var wg sync.WaitGroup
		for range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.Dial("tcp", p.Addr().String())
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close()
				if n, err := io.Copy(io.Discard, c); err != nil || n != size {
					b.Errorf("got %d bytes: %v", n, err)
				}
			}()
		}
		wg.Wait()
	}
	reportRate(b, int64(b.N)*size*conns, time.Since(start))
}

// BenchmarkRoundTrip measures a one-byte request and its one-byte answer:
// the link's round trip, 2 × Delay plus the proxy's own overhead.
func BenchmarkRoundTrip(b *testing.B) {
	addr := target(b, func(c net.Conn) { io.Copy(c, c) })
	p := proxy(b, addr, benchLink)
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/rtt")
}

// BenchmarkRoundTripUnderLoad measures the round trip on one connection
// while another fills the downlink: what a shared pipe's queue adds.
func BenchmarkRoundTripUnderLoad(b *testing.B) {
	bulk := make([]byte, 64<<10)
	addr := target(b, func(c net.Conn) {
		kind := make([]byte, 1)
		if _, err := io.ReadFull(c, kind); err != nil {
			return
		}
		if kind[0] == 'E' {
			io.Copy(c, c)
			return
		}
		for {
			if _, err := c.Write(bulk); err != nil {
				return
			}
		}
	})
	p := proxy(b, addr, benchLink)
	load, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer load.Close()
	load.Write([]byte{'B'})
	go io.Copy(io.Discard, load)
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := []byte{'E'}
	c.Write(buf)
	time.Sleep(200 * time.Millisecond) // the bulk download at full rate
	before := p.Stats().Down
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
	d := time.Since(start)
	b.ReportMetric(float64(d.Microseconds())/1000/float64(b.N), "ms/rtt")
	reportRate(b, p.Stats().Down-before, d)
}
