//go:build e2e && linux

package tray

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/hyperos/hyperos/app/api"
	"github.com/hyperos/hyperos/app/client"
	"github.com/hyperos/hyperos/app/config"
	"github.com/hyperos/hyperos/app/daemon"
	"github.com/hyperos/hyperos/app/imagecreate/imagetest"
	"github.com/hyperos/hyperos/app/machine"
	"github.com/hyperos/hyperos/app/shares"
	"github.com/hyperos/hyperos/tray/internal/dbustest"
	"github.com/hyperos/hyperos/vm/vmtest"
)

// TestTrayBootStop clicks Boot in the tray's menu, over D-Bus as a panel does:
// the service boots the real image in QEMU, the status line and the tooltip
// gain the VM's address and name, "HyperOS is online at <IP>" arrives at the
// notification server, Open Terminal runs the terminal with `hyperos ssh`; a
// real container live-booted with `hyperos container boot` from a `hyperos
// share` on this machine is notified and listed with its own Open Terminal;
// and Stop takes the VM back to offline.
func TestTrayBootStop(t *testing.T) {
	img := vmtest.ImageDir(t)
	debian := imagetest.Debian(t) // built (once) before the clock starts
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	dir := t.TempDir()
	p := config.Paths{Config: filepath.Join(dir, "config"), State: filepath.Join(dir, "state"), Cache: filepath.Join(dir, "cache")}
	s := config.Settings{Name: "tray-e2e", MemoryMB: 1536, Kernel: filepath.Join(img, config.KernelName(vmtest.Arch())), Initrd: filepath.Join(img, "initrd.img"), Arch: vmtest.Arch()}
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

	// A real live boot, as a user does it: `hyperos share` of a Debian image
	// on this machine, then `hyperos container boot LINK` with no peer named.
	// The CLI asks the service, the service asks the guest, the guest finds
	// the share through the VM's gateway and boots the image in nspawn; its
	// event comes back through the service to the tray's notification and
	// its Containers submenu.
	bin := buildHyperos(t)
	hyperos := func(args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), "HYPEROS_HOME="+dir)
		// A test killed by its timeout must not leave a seeder behind.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		return cmd
	}
	share := hyperos("share", debian)
	shareOut, _ := share.StdoutPipe()
	share.Stderr = os.Stderr
	if err := share.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { share.Process.Kill(); share.Wait() })
	lnk, err := bufio.NewReader(shareOut).ReadString('\n')
	if err != nil {
		t.Fatalf("hyperos share printed no link: %v", err)
	}
	lnk = strings.TrimSpace(lnk)
	go io.Copy(io.Discard, shareOut)
	// The share announces itself just after printing the link.
	for i := 0; ; i++ {
		if live, _ := shares.Live(p.Shares()); len(live) == 1 {
			break
		}
		if i == 100 {
			t.Fatal("the share never announced itself")
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, err := hyperos("container", "boot", lnk, "--name", "deb").CombinedOutput()
	if err != nil {
		t.Fatalf("hyperos container boot: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	if !strings.Contains(string(out), "using the share running on this machine") || !strings.Contains(string(out), "deb live-booted in") {
		t.Fatalf("container boot said:\n%s", out)
	}
	for {
		if n, err = notes.Next(ctx); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(n.Body, "Container deb") {
			break
		}
		t.Logf("notification: %s", n.Body)
	}
	m1 := regexp.MustCompile(`^Container deb live-booted in [0-9.]+ s \(([0-9.]+) MB of ([0-9.]+) MB fetched\)$`).FindStringSubmatch(n.Body)
	if m1 == nil {
		t.Fatalf("notification %q", n.Body)
	}
	if fetched, size := atof(t, m1[1]), atof(t, m1[2]); fetched <= 0 || fetched > size/2 {
		t.Errorf("fetched %v MB of %v MB: a live boot fetches a small part", fetched, size)
	}
	if e := nextContainer(t, events, func(e api.Event) bool { return e.Container != nil && e.Container.Type == "booted" }); e.Container.Name != "deb" {
		t.Errorf("the service relayed %+v", e.Container)
	}
	it, err = m.Wait(ctx, func(it dbustest.Item) bool {
		d, ok := it.Find("deb — booted, ")
		return ok && d.Visible
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, it)
	}
	demo, _ := it.Find("deb — booted, ")
	if nc, _ := it.Find("No containers"); nc.Visible {
		t.Error("No containers is shown beside a container")
	}
	if err := m.Click(ctx, item(t, demo, "Open Terminal").ID); err != nil {
		t.Fatal(err)
	}
	go func() {
		b, _ := os.ReadFile(fifo)
		got <- strings.TrimSpace(string(b))
	}()
	select {
	case argv := <-got:
		if want := "-e env HYPEROS_HOME=" + dir + " hyperos ssh --container deb"; argv != want {
			t.Errorf("the container's terminal ran with %q, want %q", argv, want)
		}
	case <-ctx.Done():
		t.Fatal("the container's Open Terminal started no terminal")
	}

	// ls and rm through the service.
	if out, err := hyperos("container", "ls").CombinedOutput(); err != nil || !regexp.MustCompile(`(?m)^deb +running`).Match(out) {
		t.Fatalf("hyperos container ls: %v\n%s", err, out)
	}
	if out, err := hyperos("container", "rm", "deb").CombinedOutput(); err != nil {
		t.Fatalf("hyperos container rm: %v\n%s", err, out)
	}
	if out, err := hyperos("container", "ls").CombinedOutput(); err != nil || strings.Contains(string(out), "deb ") {
		t.Fatalf("after rm, hyperos container ls: %v\n%s", err, out)
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

func atof(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
