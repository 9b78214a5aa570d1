//go:build e2e

package share

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hyperos/hyperos/hyper/corestore"
	"github.com/hyperos/hyperos/hyper/link"
	"github.com/hyperos/hyperos/hyper/peer"
)

// benchSize is the file the replication benchmark moves: 256 MB, as in
// the Node → Node reference figure.
const benchSize = 256 << 20

// patternReader streams the Node helper's big-file pattern (seed 9), so
// that Go and Node drives hold the same bytes.
type patternReader struct{ off, size int }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.size {
		return 0, io.EOF
	}
	n := min(len(b), p.size-p.off)
	for i := 0; i < n; i++ {
		o := p.off + i
		b[i] = byte(9*131 + o*7 + (o>>8)*13)
	}
	p.off += n
	return n, nil
}

func patternSHA(size int) string {
	h := sha256.New()
	io.Copy(h, &patternReader{size: size})
	return hex.EncodeToString(h.Sum(nil))
}

// goRead fetches /big.bin from addr into a SHA-256 and returns the time
// the content took (after the drive is open, as Node's figure).
func goRead(b *testing.B, st *corestore.Store, key link.Key, addr string, dest string) (time.Duration, string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := peer.Dial(ctx, addr, st, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	d, err := OpenRemote(ctx, st, key, []*peer.Conn{c})
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	if dest != "" {
		if _, err := Fetch(ctx, d, link.Link{Key: key, Path: "/big.bin"}, dest, &FetchOptions{Conns: []*peer.Conn{c}}); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0), ""
	}
	e, err := d.Entry(ctx, "/big.bin")
	if err != nil || e == nil {
		b.Fatalf("entry: %v", err)
	}
	h := sha256.New()
	if err := copyBlob(ctx, d, *e, h, &FetchOptions{Conns: []*peer.Conn{c}}, &progress{}); err != nil {
		b.Fatal(err)
	}
	return time.Since(t0), hex.EncodeToString(h.Sum(nil))
}

// helperCmd runs this test binary as a Go seeder of a size-byte file
// (TestHelperGoSeeder).
func helperCmd(b *testing.B, size int) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperGoSeeder$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("SHARE_BENCH_SEED=%d", size))
	return cmd
}

// TestHelperGoSeeder is BenchmarkReplicate's Go seeder process: it writes
// the benchmark file into a drive, serves it on 127.0.0.1, prints {"key",
// "port"} and runs until its stdin closes. Run on its own it skips.
func TestHelperGoSeeder(t *testing.T) {
	size, err := strconv.Atoi(os.Getenv("SHARE_BENCH_SEED"))
	if err != nil {
		t.Skip("the benchmark's seeder process; not a test on its own")
	}
	st := corestore.NewMemory([32]byte{2}, nil)
	d, err := OpenWritable(st, corestore.DefaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.PutReader(context.Background(), "/big.bin", &patternReader{size: size}, nil); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { io.Copy(io.Discard, os.Stdin); cancel() }()
	fmt.Printf("{\"key\":%q,\"port\":%d}\n", d.Key().Hex(), ln.Addr().(*net.TCPAddr).Port)
	if err := peer.Serve(ctx, ln, st, nil); err != nil {
		t.Fatal(err)
	}
}

type nodeFetch struct {
	Bytes  int    `json:"bytes"`
	MS     int    `json:"ms"`
	SHA256 string `json:"sha256"`
}

func nodeFetchFrom(b *testing.B, key link.Key, addr string) (time.Duration, string) {
	b.Helper()
	_, port, _ := net.SplitHostPort(addr)
	n := startNode(b, "fetch", key.Hex(), port, "/big.bin")
	var r nodeFetch
	n.next(b, 10*time.Minute, &r)
	return time.Duration(r.MS) * time.Millisecond, r.SHA256
}

// BenchmarkReplicate moves a 256 MB file over loopback TCP in every
// direction, side by side in one run, and reports MB/s and the ratio to
// Node → Node. Readers keep blocks in memory, as the Node reader's
// RAM-backed page cache effectively does; "go-go-disk" adds the cost of
// Go's crash-safe store (the blocks verified meanwhile share each fsync)
// and writing the file.
func BenchmarkReplicate(b *testing.B) {
	requireNode(b)
	want := patternSHA(benchSize)
	type row struct {
		name string
		d    time.Duration
	}
	var rows []row
	var mu sync.Mutex
	record := func(b *testing.B, name string, d time.Duration, sum string) {
		if sum != "" && sum != want {
			b.Fatalf("%s: content digest %s, want %s", name, sum, want)
		}
		mbps := float64(benchSize) / 1e6 / d.Seconds()
		b.ReportMetric(mbps, "MB/s")
		mu.Lock()
		rows = append(rows, row{name, d})
		mu.Unlock()
	}

	ns := startNode(b, "seed", fmt.Sprintf("big:%d", benchSize))
	var seed nodeSeed
	ns.next(b, 10*time.Minute, &seed)
	nodeKey := seed.key(b)

	b.Run("node-node", func(b *testing.B) {
		d, sum := nodeFetchFrom(b, nodeKey, seed.addr())
		record(b, "Node → Node", d, sum)
	})
	b.Run("node-go", func(b *testing.B) {
		d, sum := goRead(b, corestore.NewMemory([32]byte{1}, nil), nodeKey, seed.addr(), "")
		record(b, "Node → Go", d, sum)
	})
	ns.stop()

	// The Go seeder runs in a process of its own, as the Node one does,
	// so that seeder and reader do not share one Go runtime.
	gs := startProcess(b, helperCmd(b, benchSize))
	var gseed nodeSeed
	gs.next(b, 10*time.Minute, &gseed)
	gkey, gaddr := gseed.key(b), gseed.addr()
	b.Run("go-go", func(b *testing.B) {
		d, sum := goRead(b, corestore.NewMemory([32]byte{3}, nil), gkey, gaddr, "")
		record(b, "Go → Go", d, sum)
	})
	b.Run("go-node", func(b *testing.B) {
		d, sum := nodeFetchFrom(b, gkey, gaddr)
		record(b, "Go → Node", d, sum)
	})
	b.Run("go-go-disk", func(b *testing.B) {
		dir := b.TempDir()
		st, err := corestore.Open(filepath.Join(dir, "store"), nil)
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		d, _ := goRead(b, st, gkey, gaddr, filepath.Join(dir, "big.bin"))
		record(b, "Go → Go (disk store + file)", d, "")
	})

	var base time.Duration
	for _, r := range rows {
		if r.name == "Node → Node" {
			base = r.d
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n%-30s %10s %8s\n", "256 MB over loopback TCP", "MB/s", "× Node")
	for _, r := range rows {
		fmt.Fprintf(&sb, "%-30s %10.1f %8.2f\n", r.name, float64(benchSize)/1e6/r.d.Seconds(), base.Seconds()/r.d.Seconds())
	}
	// Printed, not logged: benchmark logs only show with -v.
	fmt.Print(sb.String())
}
