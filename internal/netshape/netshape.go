// Package netshape is a user-space TCP link shaper: a proxy that makes every
// connection through it cross one emulated link with a fixed one-way delay and
// a rate limit in each direction.
//
// It stands in for `tc qdisc add ... netem delay 10ms rate 100mbit` on kernels
// built without sch_netem (the test hosts' kernel has HTB and TBF but not
// netem), so that benchmarks of a "100 Mbit/s, 20 ms RTT" link run anywhere
// without root. It models the link the way netem does:
//
//   - Each direction is one pipe shared by all connections, as a real link is:
//     two connections together get the rate, not each.
//   - A chunk read from the sender leaves the pipe when a token bucket
//     (Config.Rate bytes per second, Config.Burst deep) has paid for it; the
//     proxy reads no more from that sender until then, so TCP back-pressure
//     reaches the sender instead of an unbounded queue growing in the proxy.
//   - Every chunk is stamped with its departure time and delivered Delay after
//     it, by a separate writer. Chunks in flight overlap: throughput is bound
//     by the rate, not by Delay (a proxy that slept Delay before each write
//     would cap a connection at one chunk per Delay, a latency-bound link).
//
// Byte counters per direction tell a benchmark how much crossed the link.
package netshape

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes the emulated link; both directions get the same.
type Config struct {
	// Delay is the one-way propagation delay (half the round trip).
	Delay time.Duration
	// Rate is the bandwidth in bytes per second; 0 means unlimited.
	Rate int64
	// Burst is the token bucket's depth in bytes: how much may leave back
	// to back after an idle spell. 0 means DefaultBurst.
	Burst int64
	// Chunk is the most bytes read (and so scheduled) at once; smaller
	// chunks follow the rate more smoothly. 0 means DefaultChunk.
	Chunk int
	// Log receives each connection's end (Debug, with its bytes and
	// error) and failures to reach the target (Warn); nil means
	// slog.Default().
	Log *slog.Logger
}

// Defaults for Config's zero fields.
const (
	// DefaultBurst is about ten full-size Ethernet frames, the order of
	// a real NIC's transmit batch: enough to keep per-chunk timer costs
	// low, small next to the 100 Mbit/s × 20 ms bandwidth-delay product.
	DefaultBurst = 16 << 10
	DefaultChunk = 16 << 10
)

// Mbit is a rate of one megabit per second in Config.Rate's bytes per
// second.
const Mbit = 1_000_000 / 8

func (c Config) withDefaults() Config {
	if c.Burst <= 0 {
		c.Burst = DefaultBurst
	}
	if c.Chunk <= 0 {
		c.Chunk = DefaultChunk
	}
	return c
}

// String describes the link, e.g. "100 Mbit/s, 10ms one way".
func (c Config) String() string {
	rate := "unlimited"
	if c.Rate > 0 {
		rate = fmt.Sprintf("%g Mbit/s", float64(c.Rate)/Mbit)
	}
	return fmt.Sprintf("%s, %s one way", rate, c.Delay)
}

// bucket is a token bucket in virtual-time form (GCRA): tat is when the
// bucket would have paid for everything scheduled so far. A chunk may leave
// once tat, after adding the chunk's cost, is no more than Burst's worth of
// time ahead of now.
type bucket struct {
	mu    sync.Mutex
	rate  float64 // bytes per second; 0 unlimited
	burst time.Duration
	tat   time.Time
}

func newBucket(rate, burst int64) *bucket {
	b := &bucket{rate: float64(rate)}
	if rate > 0 {
		b.burst = time.Duration(float64(burst) / float64(rate) * float64(time.Second))
	}
	return b
}

// schedule books n bytes on the pipe and returns when they have left it
// (their last bit is on the wire): now, or later when the bucket is empty.
func (b *bucket) schedule(now time.Time, n int) time.Time {
	if b.rate == 0 {
		return now
	}
	cost := time.Duration(float64(n) / b.rate * float64(time.Second))
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tat.Before(now) {
		b.tat = now
	}
	b.tat = b.tat.Add(cost)
	if dep := b.tat.Add(-b.burst); dep.After(now) {
		return dep
	}
	return now
}

// Stats are the bytes that crossed the link since it was made.
type Stats struct {
	Up   int64 // client to target
	Down int64 // target to client
	// Conns is how many connections were accepted.
	Conns int64
}

// Proxy accepts connections and forwards each to a target over the shaped
// link.
type Proxy struct {
	cfg      Config
	ln       net.Listener
	dial     func(ctx context.Context) (net.Conn, error)
	up, down *bucket
	upN      atomic.Int64
	downN    atomic.Int64
	conns    atomic.Int64
	log      *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	open   map[net.Conn]struct{}
}

// Listen starts a proxy on addr (e.g. "127.0.0.1:0") that forwards to the
// TCP address target. Close stops it.
func Listen(addr, target string, cfg Config) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("netshape: listen %s: %w", addr, err)
	}
	var d net.Dialer
	return Serve(ln, func(ctx context.Context) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", target)
	}, cfg), nil
}

// Serve runs a proxy on ln, making one upstream connection with dial for
// each accepted one. The proxy owns ln from now on.
func Serve(ln net.Listener, dial func(ctx context.Context) (net.Conn, error), cfg Config) *Proxy {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		cfg: cfg, ln: ln, dial: dial,
		up: newBucket(cfg.Rate, cfg.Burst), down: newBucket(cfg.Rate, cfg.Burst),
		log: cmp.Or(cfg.Log, slog.Default()).With("proxy", ln.Addr().String()),
		ctx: ctx, cancel: cancel, open: map[net.Conn]struct{}{},
	}
	p.wg.Add(1)
	go p.accept()
	return p
}

// Addr is where the proxy listens.
func (p *Proxy) Addr() net.Addr { return p.ln.Addr() }

// Config is the link the proxy emulates.
func (p *Proxy) Config() Config { return p.cfg }

// Stats returns the byte counts so far (bytes are counted when delivered).
func (p *Proxy) Stats() Stats {
	return Stats{Up: p.upN.Load(), Down: p.downN.Load(), Conns: p.conns.Load()}
}

// Close stops accepting, closes every connection and waits for the proxy's
// goroutines.
func (p *Proxy) Close() error {
	p.cancel()
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.open {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx.Err() != nil {
		return false
	}
	p.open[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.open, c)
	p.mu.Unlock()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if p.ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				p.log.Warn("netshape: accept", "err", err)
			}
			return
		}
		p.conns.Add(1)
		p.wg.Add(1)
		go p.handle(c)
	}
}

func (p *Proxy) handle(c net.Conn) {
	defer p.wg.Done()
	if !p.track(c) {
		c.Close()
		return
	}
	defer p.untrack(c)
	defer c.Close()
	u, err := p.dial(p.ctx)
	if err != nil {
		p.log.Warn("netshape: dial target", "err", err)
		return
	}
	if !p.track(u) {
		u.Close()
		return
	}
	defer p.untrack(u)
	defer u.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	var upN, downN atomic.Int64
	var errs [2]error
	defer func() {
		p.log.Debug("netshape: connection ended", "client", c.RemoteAddr().String(),
			"up", upN.Load(), "down", downN.Load(), "err", errors.Join(errs[:]...))
	}()
	// One direction broken ends the connection both ways, as a reset would.
	abort := func() {
		c.Close()
		u.Close()
	}
	pump := func(dst, src net.Conn, b *bucket, total, n *atomic.Int64, errp *error) {
		defer wg.Done()
		if err := p.pipe(dst, src, b, total, n, abort); err != nil {
			*errp = err
			abort()
		}
	}
	go pump(u, c, p.up, &p.upN, &upN, &errs[0])
	go pump(c, u, p.down, &p.downN, &downN, &errs[1])
	wg.Wait()
}

// chunk is data in flight on the pipe, due at the far end at due.
type chunk struct {
	b   []byte
	due time.Time
}

// pipe carries src's bytes to dst over one direction of the link until src
// ends (then it half-closes dst) or either side fails; a failed write calls
// abort, which must make src's Read return.
func (p *Proxy) pipe(dst, src net.Conn, b *bucket, total, conn *atomic.Int64, abort func()) error {
	// In flight at once: at most the bandwidth-delay product plus a burst,
	// in chunks; the channel's capacity never limits the rate below that.
	inflight := 64
	if p.cfg.Rate > 0 {
		bdp := float64(p.cfg.Rate) * p.cfg.Delay.Seconds()
		inflight = max(inflight, int((bdp+float64(p.cfg.Burst))/float64(p.cfg.Chunk))*4+4)
	}
	q := make(chan chunk, inflight)
	werr := make(chan error, 1)
	go func() { werr <- deliver(dst, q, total, conn, abort) }()

	var rerr error
	for {
		buf := make([]byte, p.cfg.Chunk)
		n, err := src.Read(buf)
		if n > 0 {
			now := time.Now()
			dep := b.schedule(now, n)
			q <- chunk{b: buf[:n], due: dep.Add(p.cfg.Delay)}
			// The sender may go on once these bytes have left the pipe.
			if d := time.Until(dep); d > 0 {
				time.Sleep(d)
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				rerr = fmt.Errorf("read %s: %w", src.RemoteAddr(), err)
			}
			break
		}
	}
	close(q)
	if err := <-werr; err != nil {
		return err
	}
	if rerr != nil {
		return rerr
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	return nil
}

// deliver writes each chunk to dst when it is due, in order. After a failed
// write it calls abort and drains q, so that the reader never blocks on it.
func deliver(dst io.Writer, q <-chan chunk, total, conn *atomic.Int64, abort func()) error {
	var failed error
	for c := range q {
		if failed != nil {
			continue
		}
		if d := time.Until(c.due); d > 0 {
			time.Sleep(d)
		}
		n, err := dst.Write(c.b)
		total.Add(int64(n))
		conn.Add(int64(n))
		if err != nil {
			failed = fmt.Errorf("write: %w", err)
			abort()
		}
	}
	return failed
}
