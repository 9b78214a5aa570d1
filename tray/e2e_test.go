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
	"github.com/hyperos/hyperos/app/config"
	"github.com/hyperos/hyperos/app/daemon"
	"github.com/hyperos/hyperos/app/machine"
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
