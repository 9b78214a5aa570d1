//go:build e2e && linux

package tray

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/hyperos/hyperos/app/api"
	"github.com/hyperos/hyperos/app/client"
	"github.com/hyperos/hyperos/app/config"
	"github.com/hyperos/hyperos/app/daemon"
	"github.com/hyperos/hyperos/app/machine"
	"github.com/hyperos/hyperos/app/shell"
	"github.com/hyperos/hyperos/tray/internal/dbustest"
	"github.com/hyperos/hyperos/vm/vmtest"
)

// TestTrayBootStop clicks Boot in the tray's menu, over D-Bus as a panel does:
// the service boots the real image in QEMU, the status line and the tooltip
// gain the VM's address and name, "HyperOS is online at <IP>" arrives at the
// notification server, Open Terminal runs the terminal with `hyperos ssh`, and
// Stop takes the VM back to offline.
func TestTrayBootStop(t *testing.T) {
	img := vmtest.ImageDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	dir := t.TempDir()
	p := config.Paths{Config: filepath.Join(dir, "config"), State: filepath.Join(dir, "state"), Cache: filepath.Join(dir, "cache")}
	s := config.Settings{Name: "tray-e2e", Kernel: filepath.Join(img, config.KernelName(vmtest.Arch())), Initrd: filepath.Join(img, "initrd.img"), Arch: vmtest.Arch()}
	if err := machine.Init(p, s, false); err != nil {
		t.Fatal(err)
	}
	addr := dbustest.StartBus(t)
	w := dbustest.StartWatcher(t, addr)
	notes := dbustest.StartNotifications(t, addr, false)
	startService(t, p, daemon.Options{})

	// The terminal: a script that hands its arguments to the test through a
	// FIFO (opening it blocks until the test reads, so no polling).
	fifo := filepath.Join(t.TempDir(), "term.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	term := filepath.Join(t.TempDir(), "fake-terminal")
	if err := os.WriteFile(term, []byte("#!/bin/sh\necho \"$@\" > "+fifo+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	startTray(t, addr, p, "TERMINAL="+term)
	// The service's event stream, opened before the boot so that nothing
	// published after it is missed.
	sock, err := p.Socket()
	if err != nil {
		t.Fatal(err)
	}
	events, err := (&client.Client{Socket: sock}).Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()

	reg, err := w.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := dbustest.Menu{Conn: dbustest.Connect(t, addr), Dest: reg.Sender, Path: "/StatusNotifierItem/menu"}
	it, err := m.Wait(ctx, func(it dbustest.Item) bool { return status(it) == "HyperOS: Offline" })
	if err != nil {
		t.Fatalf("%v\n%s", err, it)
	}

	if err := m.Click(ctx, item(t, it, "Boot").ID); err != nil {
		t.Fatal(err)
	}
	it, err = m.Wait(ctx, func(it dbustest.Item) bool { return strings.HasPrefix(status(it), "HyperOS: Online — ") })
	if err != nil {
		t.Fatalf("%v\n%s", err, it)
	}
	t.Logf("online:\n%s", it)
	line := strings.TrimPrefix(status(it), "HyperOS: Online — ")
	ip, host, _ := strings.Cut(line, " ")
	if ip == "" || !strings.Contains(host, "tray-e2e") {
		t.Errorf("status line %q: want the IP and the hostname", status(it))
	}
	for label, enabled := range map[string]bool{"Boot": false, "Stop": true, "Restart": true, "Open Terminal": true} {
		if item(t, it, label).Enabled != enabled {
			t.Errorf("%s enabled = %v while online", label, !enabled)
		}
	}
	n, err := notes.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n.Body != "HyperOS is online at "+ip {
		t.Errorf("notification %q, want the IP %s", n.Body, ip)
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
	if err := dbus.Store([]any{props["ToolTip"].Value()}, &tip); err != nil || !strings.Contains(tip.Title, ip) {
		t.Errorf("tooltip %q (%v), want the IP", tip.Title, err)
	}

	// Open Terminal.
	if err := m.Click(ctx, item(t, it, "Open Terminal").ID); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		b, _ := os.ReadFile(fifo)
		got <- strings.TrimSpace(string(b))
	}()
	select {
	case argv := <-got:
		if want := "-e env HYPEROS_HOME=" + dir + " hyperos ssh"; argv != want {
			t.Errorf("terminal ran with %q, want %q", argv, want)
		}
	case <-ctx.Done():
		t.Fatal("Open Terminal started no terminal")
	}

	// A container event in the guest, appended to the real log that the real
	// `hyperos-guest events` follows: the service relays it, the tray
	// notifies and lists the container, and its Open Terminal opens a shell
	// in it. The line is appended only once the relay has connected (its
	// first container event), or it would be history, which never notifies.
	nextContainer(t, events, func(e api.Event) bool { return e.Container == nil })
	vmc, err := machine.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	ssh, err := vmc.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ssh.Close()
	ev := `{"time":"2026-11-30T10:00:00Z","type":"booted","container":"demo","stats":{"size":2000000,"fetched":500000,"cached":500000,"written":0},"boot_seconds":2.5}`
	var out strings.Builder
	if code, err := shell.Run(ctx, ssh, "mkdir -p /run/hyperos && echo '"+ev+"' >> /run/hyperos/events.jsonl", nil, &out, &out); code != 0 || err != nil {
		t.Fatalf("append a guest event: %d %v: %s", code, err, out.String())
	}
	e := nextContainer(t, events, func(e api.Event) bool { return e.Container != nil })
	if c := e.Container; c.Name != "demo" || c.Type != "booted" || c.Fetched != 500000 || c.Size != 2000000 || c.BootSeconds != 2.5 {
		t.Errorf("relayed %+v", c)
	}
	if n, err = notes.Next(ctx); err != nil {
		t.Fatal(err)
	}
	if want := "Container demo live-booted in 2.5 s (0.5 MB of 2 MB fetched)"; n.Body != want {
		t.Errorf("notification %q, want %q", n.Body, want)
	}
	const demo = "demo — booted, 0.5 MB of 2 MB"
	it, err = m.Wait(ctx, func(it dbustest.Item) bool { d, ok := it.Find(demo); return ok && d.Visible })
	if err != nil {
		t.Fatalf("%v\n%s", err, it)
	}
	if nc, _ := it.Find("No containers"); nc.Visible {
		t.Error("No containers is shown beside a container")
	}
	if err := m.Click(ctx, item(t, item(t, it, demo), "Open Terminal").ID); err != nil {
		t.Fatal(err)
	}
	go func() {
		b, _ := os.ReadFile(fifo)
		got <- strings.TrimSpace(string(b))
	}()
	select {
	case argv := <-got:
		if want := "-e env HYPEROS_HOME=" + dir + " hyperos ssh --container demo"; argv != want {
			t.Errorf("the container's terminal ran with %q, want %q", argv, want)
		}
	case <-ctx.Done():
		t.Fatal("the container's Open Terminal started no terminal")
	}

	// Stop.
	if err := m.Click(ctx, item(t, it, "Stop").ID); err != nil {
		t.Fatal(err)
	}
	it, err = m.Wait(ctx, func(it dbustest.Item) bool {
		b, _ := it.Find("Boot")
		return status(it) == "HyperOS: Offline" && b.Enabled
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, it)
	}
}

// nextContainer reads the service's event stream up to the next container
// event that ok accepts.
func nextContainer(t *testing.T, events *client.Events, ok func(api.Event) bool) api.Event {
	t.Helper()
	for {
		e, err := events.Next()
		if err != nil {
			t.Fatalf("the service's event stream: %v", err)
		}
		if e.Type == api.EventContainer && ok(e) {
			return e
		}
	}
}
