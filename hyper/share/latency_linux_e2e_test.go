//go:build e2e && linux

package share

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hyperos/hyperos/hyper/corestore"
	"github.com/hyperos/hyperos/hyper/peer"
)

// netns is a network namespace made for one benchmark, with only a
// loopback interface whose qdisc adds delay: nothing on the host changes.
type netns struct {
	name    string
	noNetem bool
}

func newNetns(b *testing.B, oneWay time.Duration) *netns {
	b.Helper()
	skip := func(format string, args ...any) {
		if os.Getenv("CI") == "true" {
			b.Fatalf(format, args...)
		}
		b.Skipf(format, args...)
	}
	if os.Geteuid() != 0 {
		skip("netem needs root (network namespaces)")
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			skip("%s not found: %v", tool, err)
		}
	}
	n := &netns{name: fmt.Sprintf("hyperos-bench-%d", os.Getpid())}
	run := func(args ...string) {
		b.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	run("ip", "netns", "add", n.name)
	b.Cleanup(func() { exec.Command("ip", "netns", "del", n.name).Run() })
	run("ip", "-n", n.name, "link", "set", "lo", "up")
	out, err := exec.Command("ip", "netns", "exec", n.name, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", oneWay.String()).CombinedOutput()
	if err != nil {
		// Kernels without sch_netem (minimal VM kernels): the namespace
		// stays, and the caller delays in user space instead.
		b.Logf("netem unavailable (%v: %s); delaying in a user-space proxy instead", err, out)
		n.noNetem = true
	}
	return n
}

// delayProxy forwards TCP connections to target, holding every chunk for
// oneWay in each direction (order kept, bandwidth unlimited): the same
// round trips as netem's delay, for kernels without it.
func delayProxy(ln net.Listener, dial func() (net.Conn, error), oneWay time.Duration) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		u, err := dial()
		if err != nil {
			c.Close()
			continue
		}
		go delayCopy(u, c, oneWay)
		go delayCopy(c, u, oneWay)
	}
}

func delayCopy(dst, src net.Conn, d time.Duration) {
	type chunk struct {
		b  []byte
		at time.Time
	}
	q := make(chan chunk, 4096)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 64<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{buf[:n], time.Now().Add(d)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		time.Sleep(time.Until(c.at))
		if _, err := dst.Write(c.b); err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

// do runs f on an OS thread moved into the namespace. Sockets f creates
// (listeners, dials) stay in the namespace for their whole life, whatever
// thread later uses them; the thread itself is thrown away afterwards.
func (n *netns) do(b *testing.B, f func()) {
	b.Helper()
	if err := n.run(f); err != nil {
		b.Fatal(err)
	}
}

// run is do for any goroutine.
func (n *netns) run(f func()) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with us
		fd, err := unix.Open("/var/run/netns/"+n.name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("setns: %w", err)
			return
		}
		f()
		done <- nil
	}()
	return <-done
}

// BenchmarkColdRandomRead4KiB20msRTT: the latency of a 4 KiB read at a
// random offset of a 1 GB file nothing of which is local yet, over a link
// with 20 ms round trips (netem, 10 ms each way, in a namespace; a
// user-space delay proxy in that namespace where the kernel has no
// netem). Each
// read is at a fresh random offset, so each fetches its block cold.
func BenchmarkColdRandomRead4KiB20msRTT(b *testing.B) {
	const size = 1 << 30
	ns := newNetns(b, 10*time.Millisecond)
	wst := corestore.NewMemory([32]byte{5}, nil)
	defer wst.Close()
	wd, err := OpenWritable(wst, corestore.DefaultNamespace)
	if err != nil {
		b.Fatal(err)
	}
	if err := wd.PutReader(context.Background(), "/big.bin", &patternReader{size: size}, nil); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rst := corestore.NewMemory([32]byte{6}, nil)
	defer rst.Close()
	var conn *peer.Conn
	var rtt time.Duration
	ns.do(b, func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Error(err)
			return
		}
		go peer.Serve(ctx, ln, wst, nil)
		addr := ln.Addr().String()
		if ns.noNetem {
			pl, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Error(err)
				return
			}
			go func() { <-ctx.Done(); pl.Close() }()
			target := addr
			go delayProxy(pl, func() (c net.Conn, err error) {
				// The upstream socket must be made in the namespace too.
				if nerr := ns.run(func() { c, err = net.Dial("tcp", target) }); nerr != nil {
					return nil, nerr
				}
				return c, err
			}, 10*time.Millisecond)
			addr = pl.Addr().String()
		}
		t0 := time.Now()
		raw, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		rtt = time.Since(t0) // a TCP connect is one round trip
		raw.Close()
		if conn, err = peer.Dial(ctx, addr, rst, nil); err != nil {
			b.Error(err)
		}
	})
	if conn == nil {
		b.FailNow()
	}
	defer conn.Close()
	t0 := time.Now()
	d, err := OpenRemote(ctx, rst, wd.Key(), []*peer.Conn{conn})
	if err != nil {
		b.Fatal(err)
	}
	r, err := d.Open(ctx, "/big.bin")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := r.ReadAt(make([]byte, 4096), 0); err != nil {
		b.Fatal(err)
	}
	open := time.Since(t0)
	rng := rand.New(rand.NewPCG(1, 2))
	var lat []time.Duration
	buf := make([]byte, 4096)
	b.ResetTimer()
	for i := 0; i < max(b.N, 20); i++ {
		off := rng.Int64N(size - 4096)
		t := time.Now()
		if _, err := r.ReadAt(buf, off); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t))
		want := byte(9*131 + off*7 + (off>>8)*13)
		if buf[0] != want {
			b.Fatalf("read at %d: byte %d, want %d", off, buf[0], want)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	med, p90 := lat[len(lat)/2], lat[len(lat)*9/10]
	b.ReportMetric(float64(med.Microseconds())/1000, "ms-median")
	b.ReportMetric(float64(p90.Microseconds())/1000, "ms-p90")
	how := "netem; measured by a TCP connect"
	if ns.noNetem {
		how = "user-space delay proxy, 10 ms each way"
		rtt = 20 * time.Millisecond // a connect to the proxy is not delayed
	}
	fmt.Printf("\ncold random 4 KiB read of a 1 GB file, RTT %v (%s): median %v, p90 %v, min %v, max %v over %d reads; opening the drive and the first read took %v\n(each cold read is one round trip: the block where the block size puts the offset, its position checked against its proof)\n",
		rtt.Round(time.Millisecond), how, med.Round(100*time.Microsecond), p90.Round(100*time.Microsecond),
		lat[0].Round(100*time.Microsecond), lat[len(lat)-1].Round(100*time.Microsecond), len(lat), open.Round(time.Millisecond))
}
