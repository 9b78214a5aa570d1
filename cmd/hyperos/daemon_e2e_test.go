//go:build e2e && linux

// End-to-end tests of the background service: `hyperos daemon` as a process,
// driven through its socket by the client package and by the CLI, with the
// real image in QEMU.
package main_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hyperos/hyperos/app/api"
	"github.com/hyperos/hyperos/app/client"
	"github.com/hyperos/hyperos/app/config"
)

// service is a running `hyperos daemon` for one home.
type service struct {
	c    *cli
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan error
	cl   *client.Client
}

func (c *cli) startService(t *testing.T, args ...string) *service {
	t.Helper()
	cmd := c.cmd(append([]string{"daemon"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &service{c: c, cmd: cmd, out: &out, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.cmd.Process.Kill()
			<-s.done
		}
	})
	t.Setenv("HYPEROS_HOME", c.home)
	p, _ := config.Default()
	sock, err := p.Socket()
	if err != nil {
		t.Fatal(err)
	}
	s.cl = &client.Client{Socket: sock}
	// Wait until it answers (or exits).
	for {
		if _, err := s.cl.Status(context.Background()); err == nil {
			return s
		}
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("hyperos daemon exited: %v\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM and waits for the service to exit.
func (s *service) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-s.done; err != nil {
		t.Fatalf("daemon exit: %v\n%s", err, s.out.String())
	}
}

// crash kills the service with SIGKILL: no cleanup at all.
func (s *service) crash() {
	s.cmd.Process.Kill()
	<-s.done
}

// watch collects the event stream in the background.
type watch struct {
	mu     sync.Mutex
	events []api.Event
	more   chan struct{}
	stop   context.CancelFunc
}

func (s *service) watch(t *testing.T) *watch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ev, err := s.cl.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := &watch{more: make(chan struct{}, 1), stop: cancel}
	go func() {
		defer ev.Close()
		for {
			e, err := ev.Next()
			if err != nil {
				return
			}
			w.mu.Lock()
			w.events = append(w.events, e)
			w.mu.Unlock()
			select {
			case w.more <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(cancel)
	return w
}

// until waits for an event that ok accepts and returns it with its index. It
// gives up after ten minutes (a broken boot), which is no speed assertion.
func (w *watch) until(t *testing.T, from int, what string, ok func(api.Event) bool) (api.Event, int) {
	t.Helper()
	deadline := time.After(10 * time.Minute)
	for {
		w.mu.Lock()
		for i := from; i < len(w.events); i++ {
			if ok(w.events[i]) {
				e := w.events[i]
				w.mu.Unlock()
				return e, i
			}
		}
		from = len(w.events)
		w.mu.Unlock()
		select {
		case <-w.more:
		case <-deadline:
			t.Fatalf("no event: %s; got %s", what, w.summary())
		}
	}
}

func (w *watch) summary() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	for _, e := range w.events {
		b.WriteString(string(e.Type) + ":" + string(e.Phase))
		if e.Milestone != "" {
			b.WriteString("/" + e.Milestone)
		}
		b.WriteString(" ")
	}
	return b.String()
}

func phase(p api.Phase) func(api.Event) bool {
	return func(e api.Event) bool { return e.Type == api.EventState && e.Phase == p }
}

// statePhases lists the phases of the state events in w from index from.
func (w *watch) statePhases(from, to int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, e := range w.events[from : to+1] {
		if e.Type == api.EventState {
			out = append(out, string(e.Phase))
		}
	}
	return strings.Join(out, " ")
}

// TestServiceOwnsTheVM boots the real VM through the service and puts it
// through what a user and the host can do to it.
func TestServiceOwnsTheVM(t *testing.T) {
	c := newCLI(t)
	c.must("init", "--name", "svc-cat")
	top := t // services and streams live as long as the whole test
	s := c.startService(t, "--boot=false")
	ctx := context.Background()
	w := s.watch(t)
	first, _ := w.until(t, 0, "snapshot", func(e api.Event) bool { return e.Snapshot })
	if first.Phase != api.Stopped || first.Name != "svc-cat" {
		t.Fatalf("snapshot %+v", first)
	}

	t.Run("SecondServiceRefused", func(t *testing.T) {
		_, errs, code := c.run("daemon")
		if code == 0 || !strings.Contains(errs, "already running for this HYPEROS_HOME") {
			t.Fatalf("second daemon: exit %d %s", code, errs)
		}
	})

	t.Run("BootPressedByManyAtOnce", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 4 {
			wg.Add(2)
			go func() {
				defer wg.Done()
				st, err := (&client.Client{Socket: s.cl.Socket}).Boot(ctx, i == 0)
				if err == nil && i == 0 && st.Phase != api.Online {
					err = errors.New("boot?wait=true returned " + string(st.Phase))
				}
				errs <- err
			}()
			go func() {
				defer wg.Done()
				_, err := (&client.Client{Socket: s.cl.Socket}).Status(ctx)
				errs <- err
			}()
		}
		// And once from a terminal, which goes through the service too.
		out := c.must("boot")
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if f := strings.Fields(out); len(f) != 2 || f[1] != "svc-cat" {
			t.Fatalf("hyperos boot printed %q", out)
		}
		online, i := w.until(t, 0, "online", phase(api.Online))
		if online.IP == "" || online.Hostname != "svc-cat" {
			t.Fatalf("online event %+v", online)
		}
		if got := w.statePhases(0, i); got != "stopped booting online" {
			t.Fatalf("phases %q (one boot for five presses)", got)
		}
		// Milestones came in boot order, before online.
		var ms []string
		w.mu.Lock()
		for _, e := range w.events[:i] {
			if e.Type == api.EventConsole {
				ms = append(ms, e.Milestone)
			}
		}
		w.mu.Unlock()
		// The data disk and the network come up side by side; the rest is
		// in a fixed order.
		pos := map[string]int{}
		for i, m := range ms {
			pos[m] = i + 1
		}
		if len(ms) != 6 || pos["kernel"] != 1 || pos["init"] != 2 || pos["sshd"] != 5 || pos["ready"] != 6 || pos["datadisk"] == 0 || pos["network"] == 0 {
			t.Fatalf("console milestones %v", ms)
		}
		w.until(t, i, "lease found", func(e api.Event) bool { return e.Type == api.EventLease && e.Message == "found" && e.IP != "" })
		if got := c.must("run", "--", "hostname"); got != "svc-cat\n" {
			t.Fatalf("run: %q", got)
		}
		if st := c.must("status"); !strings.Contains(st, "svc-cat is running") || !strings.Contains(st, "service: online") {
			t.Fatalf("status: %s", st)
		}
	})

	t.Run("AnotherUserIsRefused", func(t *testing.T) {
		if os.Getuid() != 0 {
			t.Skip("running a client as nobody needs root")
		}
		bin := copyForNobody(t)
		run := func() (string, int) {
			cmd := exec.Command(bin, "halt")
			cmd.Env = []string{"HYPEROS_HOME=" + c.home, "PATH=/usr/bin:/bin"}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			return out.String(), code
		}
		// As installed: the home and the socket's directory are private.
		if out, code := run(); code == 0 || !strings.Contains(out, "access denied") {
			t.Fatalf("nobody, private dirs: exit %d %s", code, out)
		}
		// Even with every directory and the socket opened up, the service
		// checks the caller's uid.
		p, _ := config.Default()
		for d := filepath.Dir(s.cl.Socket); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
			os.Chmod(d, 0o755)
		}
		os.Chmod(s.cl.Socket, 0o666)
		os.Chmod(p.Config, 0o755)
		os.Chmod(p.ConfigFile(), 0o644)
		out, code := run()
		if code == 0 || !strings.Contains(out, "uid 65534 is not the owner") {
			t.Fatalf("nobody, open socket: exit %d %s", code, out)
		}
		if st, err := s.cl.Status(ctx); err != nil || st.Phase != api.Online {
			t.Fatalf("the VM after nobody tried to halt it: %+v %v", st, err)
		}
	})

	t.Run("WebPageRefused", func(t *testing.T) {
		for _, h := range []string{"Origin: http://evil.example", "Referer: http://evil.example/"} {
			out, err := exec.Command("curl", "-s", "--unix-socket", s.cl.Socket, "-X", "POST", "-H", h, "http://"+api.Host+api.PathHalt).CombinedOutput()
			if err != nil {
				t.Skipf("curl: %v", err)
			}
			if !strings.Contains(string(out), "access_denied") {
				t.Fatalf("%s: %s", h, out)
			}
		}
		if st, _ := s.cl.Status(ctx); st.Phase != api.Online {
			t.Fatalf("phase %s after refused halts", st.Phase)
		}
	})

	t.Run("QEMUKilledIsRestarted", func(t *testing.T) {
		st, err := s.cl.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, from := w.until(t, 0, "online", phase(api.Online))
		if err := syscall.Kill(st.Pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		failed, i := w.until(t, from+1, "failed", phase(api.Failed))
		if !strings.Contains(failed.Reason, "exited unexpectedly") {
			t.Fatalf("failed event %+v", failed)
		}
		w.until(t, i, "error event", func(e api.Event) bool { return e.Type == api.EventError && e.Reason != "" })
		r, _ := w.until(t, i, "restart event", func(e api.Event) bool { return e.Type == api.EventRestart })
		if !strings.Contains(r.Message, "attempt 1") {
			t.Fatalf("restart event %+v", r)
		}
		_, j := w.until(t, i, "online again", phase(api.Online))
		if got := w.statePhases(from, j); got != "online failed booting online" {
			t.Fatalf("phases %q", got)
		}
		st2, _ := s.cl.Status(ctx)
		if st2.Pid == st.Pid || st2.Restarts != 1 {
			t.Fatalf("after the restart: %+v", st2)
		}
	})

	t.Run("ServiceCrashFindsRunningVM", func(t *testing.T) {
		before, _ := s.cl.Status(ctx)
		w.stop()
		s.crash()
		if _, err := s.cl.Status(ctx); !errors.Is(err, client.ErrNotRunning) {
			t.Fatalf("crashed service answers: %v", err)
		}
		// The VM lives on; without a service the CLI reaches it directly.
		if st, code := c.status(); code != 0 || st.Pid != before.Pid {
			t.Fatalf("VM after the service crashed: %+v", st)
		}
		s = c.startService(top, "--boot=false")
		st, err := s.cl.Status(ctx)
		if err != nil || st.Phase != api.Online || st.Pid != before.Pid || st.Hostname != "svc-cat" || st.SSH != before.SSH {
			t.Fatalf("restarted service: %+v %v (before %+v)", st, err, before)
		}
		if got := c.must("run", "--", "hostname"); got != "svc-cat\n" {
			t.Fatalf("run: %q", got)
		}
		w = s.watch(top)
	})

	t.Run("HaltThroughAPI", func(t *testing.T) {
		_, from := w.until(t, 0, "snapshot", func(e api.Event) bool { return e.Snapshot })
		if _, err := s.cl.Halt(ctx); err != nil {
			t.Fatal(err)
		}
		_, i := w.until(t, from, "stopped", phase(api.Stopped))
		if got := w.statePhases(from, i); got != "online stopping stopped" {
			t.Fatalf("phases %q", got)
		}
		if st, _ := c.status(); st.State != "stopped" {
			t.Fatalf("after halt: %+v", st)
		}
		if _, errs, code := c.run("kill"); code == 0 || !strings.Contains(errs, "not running") {
			t.Fatalf("kill when stopped: %d %s", code, errs)
		}
	})

	t.Run("ServiceCrashVMGone", func(t *testing.T) {
		s.cl.Boot(ctx, true)
		st, _ := s.cl.Status(ctx)
		w.stop()
		s.crash()
		syscall.Kill(st.Pid, syscall.SIGKILL)
		for {
			if st, _ := c.status(); st.State == "stopped" {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		s = c.startService(top, "--boot=false")
		if st, err := s.cl.Status(ctx); err != nil || st.Phase != api.Stopped || st.State != "stopped" {
			t.Fatalf("service restarted after its VM died: %+v %v", st, err)
		}
	})

	t.Run("ServiceStopHaltsVM", func(t *testing.T) {
		if _, err := s.cl.Boot(ctx, true); err != nil {
			t.Fatal(err)
		}
		s.stop(t)
		if !strings.Contains(s.out.String(), "phase=stopped") {
			t.Fatalf("service log:\n%s", s.out.String())
		}
		// (QEMU may linger as a zombie of the container's init: ask the CLI,
		// which knows a zombie from a VM.)
		if st, code := c.status(); code != 1 || st.State != "stopped" {
			t.Fatalf("the VM outlived the service: %+v", st)
		}
		logs := c.must("logs")
		for _, want := range []string{"hyperos.log <==", "service stopping", "console.log <==", "Linux version"} {
			if !strings.Contains(logs, want) {
				t.Fatalf("hyperos logs lacks %q", want)
			}
		}
	})
}

// TestServiceBootsAtStart: with the defaults, the service boots the VM, and
// `hyperos logs -f` follows the service's log while it does.
func TestServiceBootsAtStart(t *testing.T) {
	c := newCLI(t)
	c.must("init", "--name", "auto-cat")
	logs := c.cmd("logs", "-f")
	pr, pw := io.Pipe()
	logs.Stdout = pw
	if err := logs.Start(); err != nil {
		t.Fatal(err)
	}
	defer logs.Process.Kill()
	s := c.startService(t)
	st, err := s.cl.Boot(context.Background(), true) // joins the boot at start
	if err != nil || st.Phase != api.Online || st.Hostname != "auto-cat" {
		t.Fatalf("boot at start: %+v %v", st, err)
	}
	found := make(chan bool, 1)
	go func() {
		buf := make([]byte, 0, 64<<10)
		tmp := make([]byte, 4096)
		for {
			n, err := pr.Read(tmp)
			buf = append(buf, tmp[:n]...)
			if bytes.Contains(buf, []byte("VM online")) && bytes.Contains(buf, []byte("HYPEROS-READY")) {
				found <- true
				return
			}
			if err != nil {
				found <- false
				return
			}
		}
	}()
	if !<-found {
		t.Fatal("logs -f did not show the service going online and the console's ready line")
	}
	s.stop(t)
}

// copyForNobody copies the hyperos binary where another user may run it.
func copyForNobody(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hyperos-nobody")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	b, err := os.ReadFile(hyperosBin)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "hyperos")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestServiceCommandMessages: the mistakes a user makes first get a sentence,
// not a stack trace.
func TestServiceCommandMessages(t *testing.T) {
	c := &cli{t: t, home: t.TempDir()}
	if _, errs, code := c.run("service", "install"); code != 1 || !strings.Contains(errs, "hyperos init") {
		t.Fatalf("install before init: exit %d %s", code, errs)
	}
	if _, errs, code := c.run("service", "frobnicate"); code != 2 || !strings.Contains(errs, "unknown service action") {
		t.Fatalf("bad action: exit %d %s", code, errs)
	}
	cmd := c.cmd("service", "uninstall")
	cmd.Env = append(cmd.Env, "HOME="+t.TempDir(), "XDG_CONFIG_HOME=")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err == nil || !strings.Contains(errb.String(), "not installed as a service") || strings.Contains(errb.String(), "goroutine") {
		t.Fatalf("uninstall when not installed: %v %s", err, errb.String())
	}
	if _, errs, code := c.run("logs"); code != 1 || !strings.Contains(errs, "no logs yet") {
		t.Fatalf("logs before anything ran: exit %d %s", code, errs)
	}
}
