//go:build e2e

package container_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hyperos/hyperos/app/imagecreate"
	"github.com/hyperos/hyperos/guest/container"
	"github.com/hyperos/hyperos/internal/netshape"
	"github.com/hyperos/hyperos/vm/vmtest"
)

// benchLink is issue 7's link: 100 Mbit/s each way, 20 ms round trip. It is
// emulated by internal/netshape, a user-space proxy, because the test
// kernels lack sch_netem (`tc qdisc ... netem` fails; HTB and TBF exist).
var benchLink = netshape.Config{Delay: 10 * time.Millisecond, Rate: 100 * netshape.Mbit}

// image1GOptions make the benchmark's image: Debian with a toolchain,
// debugger, Python, Perl, Git and Vim, about 1 GB of real files, so that
// booting it reads a realistic small fraction of a full-sized image.
func image1GOptions(out, debs string) imagecreate.Options {
	return imagecreate.Options{Out: out, Hostname: "debian", ExtraMB: 128, DebCache: debs,
		Include: []string{"build-essential", "gdb", "clang", "python3", "python3-pip", "python3-venv",
			"perl", "git", "vim", "curl", "openssh-client", "less", "procps"}}
}

// image1G makes the 1 GB image once, cached under build/cache/container-1g.
func image1G(b *testing.B) string {
	vmtest.Require(b, os.Geteuid() == 0, "making a container image needs root")
	_, err := exec.LookPath("mmdebstrap")
	vmtest.Require(b, err == nil, "mmdebstrap is not installed")
	dir := filepath.Join(repoRoot(), "build", "cache", "container-1g")
	img := filepath.Join(dir, "debian-1g.img")
	if _, err := os.Stat(img); err == nil {
		return img
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	tmp := img + ".new"
	os.Remove(tmp)
	o := image1GOptions(tmp, filepath.Join(dir, "debs"))
	o.Progress = func(s string) { b.Log(s) }
	if _, err := imagecreate.Create(ctx, o); err != nil {
		b.Fatalf("make the 1 GB image: %v", err)
	}
	if err := os.Rename(tmp, img); err != nil {
		b.Fatal(err)
	}
	return img
}

// ext4Used is how many bytes of the image's file system hold data, from
// dumpe2fs (e2fsprogs, which making the image needs anyway).
func ext4Used(img string) (int64, error) {
	out, err := exec.Command("dumpe2fs", "-h", img).Output()
	if err != nil {
		return 0, fmt.Errorf("dumpe2fs %s: %w", img, err)
	}
	f := map[string]int64{}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			f[strings.TrimSpace(k)] = n
		}
	}
	if f["Block size"] == 0 {
		return 0, fmt.Errorf("dumpe2fs %s: no block size in its output", img)
	}
	return (f["Block count"] - f["Free blocks"]) * f["Block size"], nil
}

// benchSeeder is `hyperos share IMG` on the host; bin is a static hyperos
// build that the guest can run too.
type benchSeeder struct {
	bin, link, addr string
	pid             int
	exited          chan error // gets the seeder's exit, if it ends early
}

// alive says whether the seeder still runs, or how it ended.
func (s benchSeeder) alive() error {
	select {
	case err := <-s.exited:
		s.exited <- err
		return fmt.Errorf("hyperos share exited: %v", err)
	default:
		return nil
	}
}

func startSeeder(b *testing.B, img string) benchSeeder {
	bin := filepath.Join(b.TempDir(), "hyperos")
	build := exec.Command("go", "build", "-o", bin, "./cmd/hyperos")
	build.Dir = repoRoot()
	// Static, so that the same binary runs in the guest (for `hyperos get`).
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build hyperos: %v\n%s", err, out)
	}
	s := benchSeeder{bin: bin, addr: fmt.Sprintf("127.0.0.1:%d", vmtest.FreePort(b)), exited: make(chan error, 1)}
	cmd := exec.Command(bin, "share", img, "--listen", s.addr)
	cmd.Env = append(os.Environ(), "HYPEROS_HOME="+b.TempDir())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatalf("hyperos share: %v", err)
	}
	r := bufio.NewReader(out)
	line, err := r.ReadString('\n')
	if err != nil {
		b.Fatalf("hyperos share printed no link: %v", err)
	}
	s.pid = cmd.Process.Pid
	go func() {
		io.Copy(io.Discard, r)
		s.exited <- cmd.Wait()
	}()
	b.Cleanup(func() {
		cmd.Process.Kill()
		<-s.exited
	})
	s.link = strings.TrimSpace(line)
	b.Logf("hyperos share published %s in %s", s.link, time.Since(start).Round(time.Millisecond))
	return s
}

// guest runs shell commands in the VM over one SSH connection, so that the
// timed commands do not include an SSH handshake (seconds under TCG).
type guest struct {
	b  *testing.B
	vm *vmtest.VM
}

// run runs cmd and returns its output and how long it took, seen from the
// host's clock.
func (g guest) run(cmd string) (string, time.Duration) {
	g.b.Helper()
	c, err := g.vm.Dial()
	if err != nil {
		g.b.Fatalf("ssh: %v", err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		g.b.Fatalf("ssh session: %v", err)
	}
	defer s.Close()
	start := time.Now()
	out, err := s.CombinedOutput(cmd)
	d := time.Since(start)
	if err != nil {
		g.b.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	return string(out), d
}

// upload copies a host file into the guest.
func (g guest) upload(src, dst string) {
	g.b.Helper()
	f, err := os.Open(src)
	if err != nil {
		g.b.Fatal(err)
	}
	defer f.Close()
	c, err := g.vm.Dial()
	if err != nil {
		g.b.Fatalf("ssh: %v", err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		g.b.Fatal(err)
	}
	defer s.Close()
	s.Stdin = f
	if out, err := s.CombinedOutput(fmt.Sprintf("cat > %s.tmp && chmod 755 %[1]s.tmp && mv %[1]s.tmp %[1]s", dst)); err != nil {
		g.b.Fatalf("upload %s: %v\n%s", src, err, out)
	}
}

// waitShell is a guest shell snippet that polls until a command runs inside
// machine $1 (systemd-run through the container's own systemd, as `machinectl
// shell` would), failing if the launcher recorded a failure in $2 or after
// 30 minutes.
const waitShell = `wait_shell() {
	end=$(( $(date +%s) + 1800 ))
	until systemd-run -M "$1" --wait --pipe --quiet true >/dev/null 2>&1; do
		if [ -s "$2" ] && [ "$(cat "$2")" != 0 ]; then echo "launcher failed"; return 1; fi
		if [ "$(date +%s)" -gt "$end" ]; then echo "no shell in $1 after 30 minutes"; return 1; fi
		sleep 0.5
	done
}
`

// cpuSampler follows the link's bytes and QEMU's CPU time during a phase.
type cpuSampler struct {
	proxy   *netshape.Proxy
	qemuPid int
	pids    []int // the seeder and this process (the shaper), whose CPU use is also noted

	mu      sync.Mutex
	peak    float64 // highest one-second downlink rate, bytes/s
	stop    chan struct{}
	done    chan struct{}
	start   time.Time
	down0   int64
	cpu0    time.Duration
	other0  time.Duration
	hostCPU [2]hostTimes
}

// hostTimes are the host's busy and total CPU time from /proc/stat.
type hostTimes struct{ busy, total int64 }

func readHostTimes() hostTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return hostTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	t, _ := parseCPULine(line)
	return t
}

// parseCPULine reads /proc/stat's aggregate "cpu" line; idle and iowait
// are the time not busy.
func parseCPULine(line string) (hostTimes, bool) {
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return hostTimes{}, false
	}
	var t hostTimes
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		t.total += n
		if i != 3 && i != 4 {
			t.busy += n
		}
	}
	return t, true
}

// processCPU is the CPU time all of pid's threads have used, from
// schedstat (nanoseconds, no clock-tick guessing).
func processCPU(pid int) time.Duration {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var ns int64
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) > 0 {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			ns += n
		}
	}
	return time.Duration(ns)
}

func startSampler(p *netshape.Proxy, qemuPid int, others ...int) *cpuSampler {
	s := &cpuSampler{proxy: p, qemuPid: qemuPid, pids: others, stop: make(chan struct{}), done: make(chan struct{}),
		start: time.Now(), down0: p.Stats().Down, cpu0: processCPU(qemuPid)}
	for _, pid := range others {
		s.other0 += processCPU(pid)
	}
	s.hostCPU[0] = readHostTimes()
	go func() {
		defer close(s.done)
		last, lastT := s.down0, s.start
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case now := <-tick.C:
				d := p.Stats().Down
				rate := float64(d-last) / now.Sub(lastT).Seconds()
				s.mu.Lock()
				s.peak = max(s.peak, rate)
				s.mu.Unlock()
				last, lastT = d, now
			}
		}
	}()
	return s
}

// sample is what a cpuSampler saw.
type sample struct {
	d          time.Duration
	down       int64   // bytes down the link
	mean, peak float64 // link rates, bytes/s
	qemuCPU    float64 // QEMU's CPU use, in cores
	hostBusy   float64 // share of all host CPUs busy, 0..1
	otherCPU   float64 // the seeder's and shaper's CPU use, in cores
	guestBusy  float64 // share of the guest's CPUs busy, 0..1 (set by the caller)
}

func (s *cpuSampler) finish() sample {
	close(s.stop)
	<-s.done
	s.hostCPU[1] = readHostTimes()
	d := time.Since(s.start)
	down := s.proxy.Stats().Down - s.down0
	s.mu.Lock()
	defer s.mu.Unlock()
	out := sample{d: d, down: down, mean: float64(down) / d.Seconds(), peak: s.peak,
		qemuCPU: (processCPU(s.qemuPid) - s.cpu0).Seconds() / d.Seconds()}
	var other time.Duration
	for _, pid := range s.pids {
		other += processCPU(pid)
	}
	out.otherCPU = (other - s.other0).Seconds() / d.Seconds()
	if tot := s.hostCPU[1].total - s.hostCPU[0].total; tot > 0 {
		out.hostBusy = float64(s.hostCPU[1].busy-s.hostCPU[0].busy) / float64(tot)
	}
	return out
}

// liveResult and fullResult are one iteration's figures.
type liveResult struct {
	d                time.Duration
	fetched, size    int64 // the lazy image's count when the boot command returned
	linkDown, linkUp int64 // through the shaper until the shell worked
	bootSeconds      float64
}

type fullResult struct {
	download, boot   time.Duration
	linkDown, linkUp int64
	dl               sample
}

// BenchmarkLiveBoot1G is issue 7's benchmark: a 1 GB Debian image on the
// host, a VM reaching it over a 100 Mbit/s, 20 ms RTT link, and the time to
// a working shell in the container when it is (a) live-booted, blocks
// streaming in as they are read, and (b) downloaded whole with `hyperos get`
// (many requests in flight, every block verified) and then booted with
// systemd-nspawn from the local file. Run it with -benchtime 1x: one
// iteration takes minutes under TCG.
//
// The link is a user-space shaper (internal/netshape) because the test
// kernel has no netem; it also counts the bytes each way. Two more figures
// tell the link's share from the guest's (emulated, under TCG) CPU: the
// live boot again straight to the seeder, unshaped, and `hyperos get` on
// the host over the shaped link, the download as the link alone allows it.
// Sizes are in MiB ("MB"), rates in decimal MB/s.
func BenchmarkLiveBoot1G(b *testing.B) {
	img := image1G(b)
	fi, err := os.Stat(img)
	if err != nil {
		b.Fatal(err)
	}
	used, err := ext4Used(img)
	if err != nil {
		b.Logf("file system use unknown: %v", err)
	}
	b.Logf("image %s: %d MB file, %d MB used by files", img, fi.Size()>>20, used>>20)

	sd := startSeeder(b, img)
	// Each connection's end is logged, for a benchmark that fails on one.
	cfg := benchLink
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	proxy, err := netshape.Listen("127.0.0.1:0", sd.addr, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { proxy.Close() })
	// QEMU's user network takes the guest's 10.0.2.2 to the host's loopback.
	peer := fmt.Sprintf("10.0.2.2:%d", proxy.Addr().(*net.TCPAddr).Port)
	b.Logf("link: %s (user-space shaper standing in for netem, which this kernel lacks), guest peer %s", benchLink, peer)

	// Room for the live cache, `hyperos get`'s store and its output file.
	disk := filepath.Join(b.TempDir(), "data.img")
	if f, err := os.Create(disk); err != nil {
		b.Fatal(err)
	} else {
		f.Truncate(8 << 30)
		f.Close()
	}
	v := vmtest.Boot(b, vmtest.Options{Name: "bench-live", MemoryMB: 2048, DataDisk: disk})
	g := guest{b: b, vm: v}
	const dir = "/var/lib/hyperos/bench"
	g.run("mkdir -p " + dir)
	g.upload(sd.bin, dir+"/hyperos")

	var lives, directs []liveResult
	// The same live boot straight to the seeder, unshaped: what the boot
	// costs without the link's round trips and rate.
	_, seederPort, _ := net.SplitHostPort(sd.addr)
	var fulls []fullResult
	b.ResetTimer()
	for i := range b.N {
		lives = append(lives, liveRun(g, proxy, sd.link, peer, fmt.Sprintf("live-%d", i)))
		directs = append(directs, liveRun(g, proxy, sd.link, "10.0.2.2:"+seederPort, fmt.Sprintf("direct-%d", i)))
		fulls = append(fulls, fullRun(g, proxy, sd, peer, fmt.Sprintf("full-%d", i), v.Driver.Pid()))
	}
	b.StopTimer()

	// What the link alone allows: the same download on the host's own CPU.
	hostGet := hostDownload(b, sd, proxy, fi.Size())

	var lr liveResult
	var fr fullResult
	for _, l := range lives {
		lr.d += l.d / time.Duration(len(lives))
		lr.fetched += l.fetched / int64(len(lives))
		lr.linkDown += l.linkDown / int64(len(lives))
		lr.linkUp += l.linkUp / int64(len(lives))
		lr.bootSeconds += l.bootSeconds / float64(len(lives))
		lr.size = l.size
	}
	var direct time.Duration
	for _, l := range directs {
		direct += l.d / time.Duration(len(directs))
	}
	for _, f := range fulls {
		fr.download += f.download / time.Duration(len(fulls))
		fr.boot += f.boot / time.Duration(len(fulls))
		fr.linkDown += f.linkDown / int64(len(fulls))
		fr.linkUp += f.linkUp / int64(len(fulls))
		fr.dl.mean += f.dl.mean / float64(len(fulls))
		fr.dl.peak = max(fr.dl.peak, f.dl.peak)
		fr.dl.qemuCPU += f.dl.qemuCPU / float64(len(fulls))
		fr.dl.hostBusy += f.dl.hostBusy / float64(len(fulls))
		fr.dl.otherCPU += f.dl.otherCPU / float64(len(fulls))
		fr.dl.guestBusy += f.dl.guestBusy / float64(len(fulls))
	}
	full := fr.download + fr.boot
	ratio := full.Seconds() / lr.d.Seconds()
	pct := 100 * float64(lr.fetched) / float64(fi.Size())
	const mb = 1 << 20
	b.ReportMetric(lr.d.Seconds(), "live_s")
	b.ReportMetric(direct.Seconds(), "live_unshaped_s")
	b.ReportMetric(full.Seconds(), "full_s")
	b.ReportMetric(ratio, "ratio")
	b.ReportMetric(float64(lr.fetched)/mb, "live_fetched_MB")
	b.ReportMetric(pct, "live_fetched_pct")
	b.ReportMetric(float64(fr.linkDown+fr.linkUp)/mb, "full_MB")
	b.ReportMetric(float64(lr.linkDown+lr.linkUp)/mb, "live_link_MB")
	b.ReportMetric(fr.download.Seconds(), "full_download_s")
	b.ReportMetric(fr.boot.Seconds(), "full_boot_s")
	b.ReportMetric(fr.dl.mean/1e6, "full_link_MB/s") // decimal, as the link's 12.5 MB/s
	b.ReportMetric(hostGet.Seconds(), "host_get_s")
	b.ReportMetric(fr.dl.qemuCPU*100, "qemu_cpu_pct")
	b.ReportMetric(fr.dl.guestBusy*100, "guest_cpu_pct")
	// The download as the link alone allows it, plus the measured boot:
	// the ratio with the guest's emulated CPU taken out of the download
	// (not out of the live boot, which it slows too).
	linkBound := hostGet + fr.boot
	b.ReportMetric(linkBound.Seconds()/lr.d.Seconds(), "ratio_linkbound")

	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nBenchmarkLiveBoot1G: %d MB Debian image (%d MB of files), link %s\n", fi.Size()>>20, used>>20, benchLink)
	fmt.Fprintf(&sb, "(link: internal/netshape user-space proxy standing in for netem, absent from this kernel; guest under %s, %d iteration(s))\n",
		v.Driver.Accel(), len(lives))
	fmt.Fprintf(&sb, "%-28s %14s %14s %12s %14s\n", "", "time to shell", "image fetched", "% of image", "link MB (↓/↑)")
	fmt.Fprintf(&sb, "%-28s %12.1f s %11.1f MB %11.1f%% %8.1f / %.1f\n", "live boot", lr.d.Seconds(),
		float64(lr.fetched)/mb, pct, float64(lr.linkDown)/mb, float64(lr.linkUp)/mb)
	fmt.Fprintf(&sb, "%-28s %12.1f s %11.1f MB %11.1f%% %8.1f / %.1f\n", "download, then boot", full.Seconds(),
		float64(fi.Size())/mb, 100.0, float64(fr.linkDown)/mb, float64(fr.linkUp)/mb)
	fmt.Fprintf(&sb, "%-28s %12.1f s   link %.1f MB/s mean, %.1f MB/s best second\n",
		"  of which download", fr.download.Seconds(), fr.dl.mean/1e6, fr.dl.peak/1e6)
	fmt.Fprintf(&sb, "%-28s %14s   guest CPUs %.0f%% busy; host: QEMU %.0f%% of a core, seeder + shaper %.0f%%, all %d CPUs %.0f%% busy\n",
		"", "", fr.dl.guestBusy*100, fr.dl.qemuCPU*100, fr.dl.otherCPU*100, runtime.NumCPU(), fr.dl.hostBusy*100)
	fmt.Fprintf(&sb, "%-28s %12.1f s\n", "  of which boot", fr.boot.Seconds())
	fmt.Fprintf(&sb, "%-28s %12.1f s   the shaped link adds %.1f s to the live boot, %.0f round trips' worth\n",
		"live boot, unshaped link", direct.Seconds(), (lr.d - direct).Seconds(), (lr.d-direct).Seconds()/(2*benchLink.Delay).Seconds())
	fmt.Fprintf(&sb, "%-28s %12.1f s   %.1f MB/s: what the link allows with a native CPU\n", "hyperos get on the host", hostGet.Seconds(),
		float64(fi.Size())/1e6/hostGet.Seconds())
	fmt.Fprintf(&sb, "%-28s %12.1f s   host download + measured boot: %.1f× the live boot\n", "link-bound download, then boot",
		linkBound.Seconds(), linkBound.Seconds()/lr.d.Seconds())
	fmt.Fprintf(&sb, "live boot is %.1f× faster to a shell (goal ≥ 5×: %s) and fetched %.1f%% of the image (goal < 10%%: %s)\n",
		ratio, verdict(ratio >= 5), pct, verdict(pct < 10))
	fmt.Fprintf(&sb, "the container's own boot time (nspawn start to systemd running): %.1f s\n", lr.bootSeconds)
	// Printed, not logged: benchmark logs only show with -v.
	fmt.Print(sb.String())
}

// liveRun live-boots the image as container name and returns once a
// command runs inside it.
func liveRun(g guest, proxy *netshape.Proxy, link, peer, name string) liveResult {
	g.b.Helper()
	g.run("sync; echo 3 > /proc/sys/vm/drop_caches")
	rc := "/run/bench-" + name + ".rc"
	before := proxy.Stats()
	// The boot command runs detached, so that the shell is polled for from
	// the start as in the full run, not only once `container boot` has seen
	// systemd reach running.
	out, d := g.run(waitShell + fmt.Sprintf(`setsid -f sh -c 'hyperos-guest container boot %s --peer %s --name %s >/run/bench-%[3]s.log 2>&1; echo $? > %[4]s' </dev/null >/dev/null 2>&1
wait_shell %[3]s %[4]s || { cat /run/bench-%[3]s.log; exit 1; }`, link, peer, name, rc))
	after := proxy.Stats()
	// Then let the boot command finish for its figures.
	out2, _ := g.run(fmt.Sprintf(`for i in $(seq 1200); do [ -s %s ] && break; sleep 0.5; done; tail -n 2 /run/bench-%s.log`, rc, name))
	g.b.Logf("live: shell after %s%s\n%s", d.Round(time.Millisecond), strings.TrimSpace(out), strings.TrimSpace(out2))
	st := guestState(g, name)
	if st.Phase != container.Running {
		g.b.Fatalf("container %s is %s (%s) after the shell worked", name, st.Phase, st.Reason)
	}
	g.run("hyperos-guest container rm " + name)
	return liveResult{d: d, fetched: st.Stats.Fetched, size: st.Stats.Size, bootSeconds: st.BootSeconds,
		linkDown: after.Down - before.Down, linkUp: after.Up - before.Up}
}

// fullRun downloads the whole image with `hyperos get` into a store of its
// own (nothing from the live run is reused: that container was removed and
// the page cache dropped), then boots the local file with systemd-nspawn,
// as the container does but without the lazy layer.
func fullRun(g guest, proxy *netshape.Proxy, sd benchSeeder, peer, name string, qemuPid int) fullResult {
	g.b.Helper()
	const dir = "/var/lib/hyperos/bench"
	file := fmt.Sprintf("%s/%s.img", dir, name)
	g.run(fmt.Sprintf("rm -rf %s/home-%s %s; sync; echo 3 > /proc/sys/vm/drop_caches", dir, name, file))
	get := fmt.Sprintf("head -n 1 /proc/stat; rm -rf %s/home-%s %s; HYPEROS_HOME=%[1]s/home-%[2]s %[1]s/hyperos get %[4]s %[3]s --peer %[5]s --quiet 2>&1; r=$?; head -n 1 /proc/stat; echo \"exit $r\"",
		dir, name, file, sd.link, peer)
	var before netshape.Stats
	var dl sample
	var out string
	var download time.Duration
	// One retry, reported: a connection the seeder dropped at the start
	// was seen once and is not what this benchmark measures.
	for try := 1; ; try++ {
		before = proxy.Stats()
		s := startSampler(proxy, qemuPid, sd.pid, os.Getpid())
		out, download = g.run(get)
		dl = s.finish()
		out = strings.TrimSpace(out)
		dl.guestBusy = guestBusy(out)
		if strings.HasSuffix(out, "exit 0") {
			break
		}
		if try == 2 {
			g.b.Fatalf("hyperos get in the guest failed twice; last after %s: %s (seeder: %v)", download, out, sd.alive())
		}
		g.b.Logf("full: hyperos get in the guest failed after %s, trying once more: %s (seeder: %v)", download.Round(time.Millisecond), out, sd.alive())
	}
	g.b.Logf("full: download %s (%s)", download.Round(time.Millisecond), out)
	rc := "/run/bench-" + name + ".rc"
	out, boot := g.run(waitShell + fmt.Sprintf(`systemd-run --quiet --collect --unit=bench-%[1]s --property=KillMode=mixed sh -c 'systemd-nspawn --quiet --image=%[2]s --machine=%[1]s --register=yes --keep-unit --boot; echo $? > %[3]s'
wait_shell %[1]s %[3]s || { journalctl -u bench-%[1]s --no-pager | tail -40; exit 1; }`, name, file, rc))
	after := proxy.Stats()
	g.b.Logf("full: boot to shell %s%s", boot.Round(time.Millisecond), strings.TrimSpace(out))
	g.run(fmt.Sprintf("systemctl stop bench-%s; rm -rf %s %s/home-%[1]s", name, file, dir))
	return fullResult{download: download, boot: boot, dl: dl, linkDown: after.Down - before.Down, linkUp: after.Up - before.Up}
}

// guestState reads one container's state from `container ls --json`.
func guestState(g guest, name string) container.State {
	g.b.Helper()
	out, _ := g.run("hyperos-guest container ls --json")
	var list []container.State
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		g.b.Fatalf("container ls --json: %v\n%s", err, out)
	}
	for _, st := range list {
		if st.Name == name {
			return st
		}
	}
	g.b.Fatalf("no container %s in %s", name, out)
	return container.State{}
}

// hostDownload runs `hyperos get` on the host over the same shaped link:
// the time the link allows for the whole image with a native CPU.
func hostDownload(b *testing.B, sd benchSeeder, proxy *netshape.Proxy, size int64) time.Duration {
	b.Helper()
	dir := b.TempDir()
	dest := filepath.Join(dir, "image.img")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sd.bin, "get", sd.link, dest, "--peer", proxy.Addr().String(), "--quiet")
	cmd.Env = append(os.Environ(), "HYPEROS_HOME="+filepath.Join(dir, "home"))
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("hyperos get on the host: %v\n%s", err, out)
	}
	d := time.Since(start)
	if fi, err := os.Stat(dest); err != nil || fi.Size() != size {
		b.Fatalf("hyperos get on the host wrote %v (%v), want %d bytes", fi, err, size)
	}
	os.RemoveAll(dir) // a second GB on the host's disk until the test ends otherwise
	return d
}

// guestBusy reads the guest's /proc/stat "cpu" lines printed before and
// after a command and returns the share of CPU time that was busy.
func guestBusy(out string) float64 {
	var t []hostTimes
	for _, line := range strings.Split(out, "\n") {
		if ht, ok := parseCPULine(line); ok {
			t = append(t, ht)
		}
	}
	if len(t) != 2 || t[1].total <= t[0].total {
		return 0
	}
	return float64(t[1].busy-t[0].busy) / float64(t[1].total-t[0].total)
}
