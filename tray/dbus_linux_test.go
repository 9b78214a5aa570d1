package tray

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/hyperos/hyperos/app/config"
	"github.com/hyperos/hyperos/app/daemon"
	"github.com/hyperos/hyperos/app/localapi"
	"github.com/hyperos/hyperos/app/machine"
	"github.com/hyperos/hyperos/tray/internal/dbustest"
)

// testTimeout guards each test against hanging; nothing is asserted about how
// long a step takes.
const testTimeout = 2 * time.Minute

// home makes an initialized HyperOS home (settings and SSH key, no image).
func home(t testing.TB) config.Paths {
	t.Helper()
	dir := t.TempDir()
	p := config.Paths{Config: filepath.Join(dir, "config"), State: filepath.Join(dir, "state"), Cache: filepath.Join(dir, "cache")}
	if err := machine.Init(p, config.Settings{Name: "tray-test"}, false); err != nil {
		t.Fatal(err)
	}
	return p
}

// service is the real HyperOS service (daemon and local API) in this process.
type service struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// startService runs the service for p, with no boot at start.
func startService(t testing.TB, p config.Paths, opts daemon.Options) *service {
	t.Helper()
	m, err := machine.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	sock, err := p.Socket()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.Default()
	l, err := localapi.Listen(sock, log)
	if err != nil {
		t.Fatal(err)
	}
	opts.Version = "test-service"
	opts.LogFile = p.DaemonLog()
	opts.ConsoleLog = p.ConsoleLog()
	d := daemon.New(m, opts)
	ctx, cancel := context.WithCancel(context.Background())
	s := &service{cancel: cancel, done: make(chan struct{})}
	srvCtx, srvStop := context.WithCancel(context.Background())
	srvDone := make(chan error, 1)
	go func() { srvDone <- localapi.New(d, log).Serve(srvCtx, l) }()
	go func() {
		defer close(s.done)
		if err := d.Run(ctx); err != nil {
			t.Errorf("service: %v", err)
		}
		srvStop()
		<-srvDone
	}()
	t.Cleanup(s.stop)
	return s
}

// stop stops the service as SIGTERM does: the VM is halted, then the API closes.
func (s *service) stop() {
	s.cancel()
	<-s.done
}

// trayEnv is the environment of a tray on the bus at addr for HyperOS home p,
// with nothing of a desktop in it but the bus: no DISPLAY, no XDG_RUNTIME_DIR.
func trayEnv(addr string, p config.Paths) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "DISPLAY", "WAYLAND_DISPLAY", "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS", "HYPEROS_HOME":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "DBUS_SESSION_BUS_ADDRESS="+addr, "HYPEROS_HOME="+filepath.Dir(p.State))
}

// trayProc is the tray under test, in a child process.
type trayProc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startTray runs the tray on the bus at addr for HyperOS home p, with nothing
// of a desktop in its environment but the bus: no DISPLAY, no
// XDG_RUNTIME_DIR.
func startTray(t *testing.T, addr string, p config.Paths, extra ...string) *trayProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(trayEnv(addr, p), "HYPEROS_TRAY_TEST_CHILD=1")
	cmd.Env = append(cmd.Env, extra...)
	tp := &trayProc{cmd: cmd, out: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = tp.out, tp.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { tp.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		<-tp.done
		if t.Failed() {
			t.Logf("tray output:\n%s", tp.out.String())
		}
	})
	return tp
}

func status(it dbustest.Item) string {
	if len(it.Children) == 0 {
		return ""
	}
	return it.Children[0].Label
}

func item(t *testing.T, it dbustest.Item, label string) dbustest.Item {
	t.Helper()
	f, ok := it.Find(label)
	if !ok {
		t.Fatalf("no %q in the menu:\n%s", label, it)
	}
	return f
}

// TestTrayMenu: the item registers with the watcher, and the menu (read with
// GetLayout, as a panel does) shows the offline state with only the actions
// that make sense, the tooltip says the state, and the Start at Login checkbox
// and Quit work through the dbusmenu "clicked" event.
func TestTrayMenu(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	p := home(t)
	addr := dbustest.StartBus(t)
	w := dbustest.StartWatcher(t, addr)
	startService(t, p, daemon.Options{})
	login := filepath.Join(t.TempDir(), "login")
	tp := startTray(t, addr, p, "HYPEROS_TRAY_TEST_LOGIN="+login)

	reg, err := w.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if reg.Path != "/StatusNotifierItem" {
		t.Errorf("registered %q, want the item's path", reg.Path)
	}
	m := dbustest.Menu{Conn: dbustest.Connect(t, addr), Dest: reg.Sender, Path: "/StatusNotifierItem/menu"}
	it, err := m.Wait(ctx, func(it dbustest.Item) bool {
		c, ok := it.Find("Containers")
		return status(it) == "HyperOS: Offline" && ok && len(c.Children) == 1
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, it)
	}
	t.Logf("menu:\n%s", it)
	want := map[string]bool{"Boot": true, "Stop": false, "Restart": false, "Open Terminal": false, "Containers": true,
		"Start at Login": true, "Open Logs": true, "About HyperOS": true, "Quit": true}
	for label, enabled := range want {
		if got := item(t, it, label); got.Enabled != enabled || !got.Visible {
			t.Errorf("%s: enabled %v visible %v, want enabled %v", label, got.Enabled, got.Visible, enabled)
		}
	}
	if s := it.Children[0]; s.Enabled {
		t.Error("the status line should not be clickable")
	}
	if c := item(t, it, "Containers"); c.Children[0].Label != "No containers" || c.Children[0].Enabled {
		t.Errorf("Containers: %+v", c.Children)
	}
	if s := item(t, it, "Start HyperOS service"); s.Visible {
		t.Error("Start HyperOS service is shown while the service runs")
	}
	if l := item(t, it, "Start at Login"); l.Toggle != "checkmark" || l.Checked {
		t.Errorf("Start at Login: %+v", l)
	}

	props, err := dbustest.Properties(ctx, m.Conn, reg.Sender)
	if err != nil {
		t.Fatal(err)
	}
	var tip struct {
		Name  string
		Icons []struct {
			W, H int32
			Pix  []byte
		}
		Title, Text string
	}
	if err := dbus.Store([]any{props["ToolTip"].Value()}, &tip); err != nil {
		t.Fatal(err)
	}
	if tip.Title != "HyperOS — Offline" {
		t.Errorf("tooltip %q", tip.Title)
	}
	var pix []struct {
		W, H int32
		Pix  []byte
	}
	if err := dbus.Store([]any{props["IconPixmap"].Value()}, &pix); err != nil {
		t.Fatal(err)
	}
	if len(pix) != 1 || pix[0].W != 64 || len(pix[0].Pix) != 64*64*4 {
		t.Errorf("icon pixmap: %d images", len(pix))
	}

	// Start at Login: click, the switch happens, the checkbox follows it.
	if err := m.Click(ctx, item(t, it, "Start at Login").ID); err != nil {
		t.Fatal(err)
	}
	if it, err = m.Wait(ctx, func(it dbustest.Item) bool { l, _ := it.Find("Start at Login"); return l.Checked }); err != nil {
		t.Fatalf("%v\n%s", err, it)
	}
	if _, err := os.Stat(login); err != nil {
		t.Errorf("the login item was not switched on: %v", err)
	}
	if err := m.Click(ctx, item(t, it, "Start at Login").ID); err != nil {
		t.Fatal(err)
	}
	if it, err = m.Wait(ctx, func(it dbustest.Item) bool { l, _ := it.Find("Start at Login"); return !l.Checked }); err != nil {
		t.Fatalf("%v\n%s", err, it)
	}
	if _, err := os.Stat(login); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the login item was not switched off: %v", err)
	}

	// Quit ends the tray.
	if err := m.Click(ctx, item(t, it, "Quit").ID); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-tp.done:
		tp.done <- err
		if err != nil {
			t.Errorf("the tray exited with %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Quit did not end the tray")
	}
}

// TestTrayReconnects: a notification is sent on a connection of its own (not
// the item's), the item registers again when the watcher restarts after it (the
// panel-restart trap of sharing systray's connection), and the menu says the
// service is not running when it goes away and recovers when it comes back.
func TestTrayReconnects(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	p := home(t)
	addr := dbustest.StartBus(t)
	w := dbustest.StartWatcher(t, addr)
	notes := dbustest.StartNotifications(t, addr, false)
	svc := startService(t, p, daemon.Options{})
	startReq := filepath.Join(t.TempDir(), "start.sock")
	ln, err := net.Listen("unix", startReq)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	startTray(t, addr, p, "HYPEROS_TRAY_TEST_START="+startReq)

	reg, err := w.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := dbustest.Menu{Conn: dbustest.Connect(t, addr), Dest: reg.Sender, Path: "/StatusNotifierItem/menu"}
	offline := func(it dbustest.Item) bool { return status(it) == "HyperOS: Offline" }
	it, err := m.Wait(ctx, offline)
	if err != nil {
		t.Fatalf("%v\n%s", err, it)
	}

	// About sends a notification; the server answers and broadcasts
	// NotificationClosed, as notification daemons do.
	if err := m.Click(ctx, item(t, it, "About HyperOS").ID); err != nil {
		t.Fatal(err)
	}
	n, err := notes.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n.AppName != "HyperOS" || !strings.Contains(n.Body, "Tray test-tray, service test-service") {
		t.Errorf("notification %+v", n)
	}
	if n.Sender == reg.Sender {
		t.Error("the notification was sent on the item's own connection")
	}
	if _, ok := n.Hints["image-data"]; !ok {
		t.Error("the notification carries no icon")
	}

	// The panel restarts: the item registers with the new watcher.
	w.Stop()
	w2 := dbustest.StartWatcher(t, addr)
	reg2, err := w2.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if reg2.Sender != reg.Sender {
		t.Errorf("registered from %s, want the item %s", reg2.Sender, reg.Sender)
	}
	// And again, after a second notification.
	if err := m.Click(ctx, item(t, it, "About HyperOS").ID); err != nil {
		t.Fatal(err)
	}
	if _, err := notes.Next(ctx); err != nil {
		t.Fatal(err)
	}
	w2.Stop()
	w3 := dbustest.StartWatcher(t, addr)
	if _, err := w3.Next(ctx); err != nil {
		t.Fatal(err)
	}

	// The service goes away.
	svc.stop()
	it, err = m.Wait(ctx, func(it dbustest.Item) bool { return status(it) == "HyperOS: service not running" })
	if err != nil {
		t.Fatalf("%v\n%s", err, it)
	}
	if s := item(t, it, "Start HyperOS service"); !s.Visible {
		t.Errorf("Start HyperOS service hidden while the service is gone:\n%s", it)
	}
	for _, label := range []string{"Boot", "Stop", "Restart", "Open Terminal"} {
		if item(t, it, label).Enabled {
			t.Errorf("%s enabled while the service is gone", label)
		}
	}
	// "Start HyperOS service" brings it back: the tray reconnects at once
	// and rebuilds the menu from the snapshot.
	requests := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if line, err := bufio.NewReader(c).ReadString('\n'); err == nil && line == "start\n" {
			requests <- c
			return
		}
		c.Close()
	}()
	if err := m.Click(ctx, item(t, it, "Start HyperOS service").ID); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-requests:
		startService(t, p, daemon.Options{})
		_, err := c.Write([]byte("started\n"))
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("clicking Start HyperOS service asked for nothing")
	}
	it, err = m.Wait(ctx, func(it dbustest.Item) bool {
		s, _ := it.Find("Start HyperOS service")
		b, _ := it.Find("Boot")
		return offline(it) && !s.Visible && b.Enabled
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, it)
	}
}

// TestNotifyHungServer: a notification server that never answers costs the
// caller its context, not the tray.
func TestNotifyHungServer(t *testing.T) {
	addr := dbustest.StartBus(t)
	notes := dbustest.StartNotifications(t, addr, true)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := newPlatformNotifier().Notify(ctx, "HyperOS", "hello")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Notify on a hung server: %v, want the context's deadline", err)
	}
	if n, err := notes.Next(context.Background()); err != nil || n.Body != "hello" {
		t.Fatalf("the server did not get the call: %+v %v", n, err)
	}
}

// TestNoSessionBus: without a session bus the tray says so instead of starting
// (fyne.io/systray would log and crash on exit).
func TestNoSessionBus(t *testing.T) {
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	err := platformCheck()
	if err == nil || !strings.Contains(err.Error(), "DBUS_SESSION_BUS_ADDRESS") {
		t.Fatalf("platformCheck without a bus: %v", err)
	}
}

// TestHyperosTray runs the real `hyperos tray` command (the CLI's wiring: the
// API client on the home's socket, app/service behind Start at Login) against
// a running service: it registers, shows the offline menu, and exits cleanly
// on SIGTERM.
func TestHyperosTray(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	bin := buildHyperos(t)
	p := home(t)
	addr := dbustest.StartBus(t)
	w := dbustest.StartWatcher(t, addr)
	startService(t, p, daemon.Options{})
	cmd := exec.Command(bin, "tray", "-v")
	cmd.Env = trayEnv(addr, p)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() { t.Logf("hyperos tray output:\n%s", out.String()) }()
	reg, err := w.Next(ctx)
	if err != nil {
		cmd.Process.Kill()
		t.Fatal(err)
	}
	m := dbustest.Menu{Conn: dbustest.Connect(t, addr), Dest: reg.Sender, Path: "/StatusNotifierItem/menu"}
	it, err := m.Wait(ctx, func(it dbustest.Item) bool { return status(it) == "HyperOS: Offline" })
	if err != nil {
		cmd.Process.Kill()
		t.Fatalf("%v\n%s", err, it)
	}
	for _, label := range []string{"Boot", "Start at Login", "Open Logs", "About HyperOS", "Quit"} {
		if !item(t, it, label).Enabled {
			t.Errorf("%s disabled:\n%s", label, it)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("hyperos tray after SIGTERM: %v", err)
		}
	case <-ctx.Done():
		cmd.Process.Kill()
		t.Fatal("hyperos tray did not exit on SIGTERM")
	}
}
