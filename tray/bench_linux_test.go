package tray

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hyperos/hyperos/app/daemon"
	"github.com/hyperos/hyperos/tray/internal/dbustest"
)

// BenchmarkTrayIdle measures the real `hyperos tray` binary sitting idle for a
// minute with the service connected (the state users leave it in): resident
// memory, CPU time, and wake-ups (context switches of all its threads). The
// target is under 20 MB and no wake-ups: the tray has no timers and the event
// stream has no heartbeat, so an idle tray should never be scheduled.
func BenchmarkTrayIdle(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := buildHyperos(b)
	p := home(b)
	addr := dbustest.StartBus(b)
	w := dbustest.StartWatcher(b, addr)
	startService(b, p, daemon.Options{})

	cmd := exec.Command(bin, "tray")
	cmd.Env = trayEnv(addr, p)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()
	reg, err := w.Next(ctx)
	if err != nil {
		b.Fatal(err)
	}
	m := dbustest.Menu{Conn: dbustest.Connect(b, addr), Dest: reg.Sender, Path: "/StatusNotifierItem/menu"}
	if it, err := m.Wait(ctx, func(it dbustest.Item) bool { return status(it) == "HyperOS: Offline" }); err != nil {
		b.Fatalf("%v\n%s", err, it)
	}
	// Let the start-up settle (the first GetLayout schedules one refresh).
	time.Sleep(2 * time.Second)

	pid := cmd.Process.Pid
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cpu0, sw0 := procCPU(b, pid), procSwitches(b, pid)
		time.Sleep(time.Minute)
		cpu1, sw1 := procCPU(b, pid), procSwitches(b, pid)
		rss, hwm := procMem(b, pid, "VmRSS"), procMem(b, pid, "VmHWM")
		b.ReportMetric(float64(rss)/1024, "RSS-MB")
		b.ReportMetric(float64(hwm)/1024, "peakRSS-MB")
		b.ReportMetric(float64(cpu1-cpu0)*10, "CPU-ms/min")
		b.ReportMetric(float64(sw1-sw0), "wakeups/min")
		b.Logf("idle minute: RSS %.1f MB (peak %.1f MB), CPU %d ms, %d context switches", float64(rss)/1024, float64(hwm)/1024, (cpu1-cpu0)*10, sw1-sw0)
	}
}

// buildHyperos builds the hyperos binary, whose `hyperos tray` is what users
// run.
func buildHyperos(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "hyperos")
	if out, err := exec.Command("go", "build", "-trimpath", "-o", bin, "../cmd/hyperos").CombinedOutput(); err != nil {
		tb.Fatalf("build hyperos: %v\n%s", err, out)
	}
	return bin
}

// procCPU is utime+stime of pid in clock ticks (USER_HZ, 100 on Linux).
func procCPU(b *testing.B, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces; utime and stime are fields 14 and 15 of the whole line.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

// procSwitches sums the voluntary and involuntary context switches of every
// thread of pid: each is the thread being woken or preempted.
func procSwitches(b *testing.B, pid int) int64 {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, task := range tasks {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, task.Name()))
		if err != nil {
			continue // the thread exited
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
				c, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += c
			}
		}
	}
	return n
}

// procMem reads a kB field of /proc/pid/status.
func procMem(b *testing.B, pid int, field string) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == field {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
