// Package dbustest runs the desktop side of a StatusNotifierItem tray for
// tests, against a real dbus-daemon: a private session bus per test, a
// StatusNotifierWatcher (the part of a panel that items register with), a
// notification server, and a com.canonical.dbusmenu client that reads the
// menu and clicks on it as a panel does. Nothing here imitates the tray
// itself; the tray under test speaks to these over the real bus.
package dbustest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"
	"github.com/godbus/dbus/v5/prop"
	"github.com/hyperos/hyperos/vm/vmtest"
)

// StartBus runs a private session dbus-daemon for the test and returns its
// address. It is stopped when the test ends.
func StartBus(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("dbus-daemon")
	vmtest.Require(t, err == nil, "dbus-daemon (apt-get install dbus)")
	cmd := exec.Command(bin, "--session", "--nofork", "--nopidfile", "--print-address=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dbus-daemon: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// The address line is printed once the bus listens.
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("read the bus address from dbus-daemon: %v", err)
	}
	return strings.TrimSpace(line)
}

// Connect opens a private connection to the bus at addr, closed when the test
// ends.
func Connect(t testing.TB, addr string) *dbus.Conn {
	t.Helper()
	conn, err := dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func dial(addr string) (*dbus.Conn, error) {
	conn, err := dbus.Dial(addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	if err := conn.Auth(nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("auth: %w", err)
	}
	if err := conn.Hello(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("hello: %w", err)
	}
	return conn, nil
}

// Registration is one RegisterStatusNotifierItem call.
type Registration struct {
	Sender string // the item's unique bus name
	Path   string // what it passed (systray passes its object path)
}

// Watcher is org.kde.StatusNotifierWatcher on its own connection. Stop drops
// the connection, and with it the name, as a panel that exits or crashes does;
// a new Watcher then takes the name again, as the restarted panel does.
type Watcher struct {
	conn  *dbus.Conn
	props *prop.Properties
	regs  chan Registration
	mu    sync.Mutex
	all   []string // RegisteredStatusNotifierItems
}

const watcherName = "org.kde.StatusNotifierWatcher"

// StartWatcher takes the watcher's name on the bus at addr.
func StartWatcher(t testing.TB, addr string) *Watcher {
	t.Helper()
	conn, err := dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	w := &Watcher{conn: conn, regs: make(chan Registration, 16)}
	t.Cleanup(w.Stop)
	const path = "/StatusNotifierWatcher"
	if err := conn.ExportMethodTable(map[string]any{
		"RegisterStatusNotifierItem": w.register,
		"RegisterStatusNotifierHost": func(string) *dbus.Error { return nil },
	}, path, watcherName); err != nil {
		t.Fatal(err)
	}
	props, err := prop.Export(conn, path, map[string]map[string]*prop.Prop{watcherName: {
		"RegisteredStatusNotifierItems":  {Value: []string{}, Emit: prop.EmitTrue},
		"IsStatusNotifierHostRegistered": {Value: true, Emit: prop.EmitTrue},
		"ProtocolVersion":                {Value: int32(0), Emit: prop.EmitTrue},
	}})
	if err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	w.props = props
	w.mu.Unlock()
	node := &introspect.Node{Name: path, Interfaces: []introspect.Interface{introspect.IntrospectData, prop.IntrospectData, {
		Name: watcherName,
		Methods: []introspect.Method{
			{Name: "RegisterStatusNotifierItem", Args: []introspect.Arg{{Name: "service", Type: "s", Direction: "in"}}},
			{Name: "RegisterStatusNotifierHost", Args: []introspect.Arg{{Name: "service", Type: "s", Direction: "in"}}},
		},
	}}}
	if err := conn.Export(introspect.NewIntrospectable(node), path, "org.freedesktop.DBus.Introspectable"); err != nil {
		t.Fatal(err)
	}
	reply, err := conn.RequestName(watcherName, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("take %s: reply %v, %v", watcherName, reply, err)
	}
	return w
}

func (w *Watcher) register(sender dbus.Sender, service string) *dbus.Error {
	r := Registration{Sender: string(sender), Path: service}
	w.mu.Lock()
	w.all = append(w.all, string(sender)+service)
	all := append([]string(nil), w.all...)
	props := w.props
	w.mu.Unlock()
	if props != nil {
		props.SetMust(watcherName, "RegisteredStatusNotifierItems", all)
	}
	w.conn.Emit("/StatusNotifierWatcher", watcherName+".StatusNotifierItemRegistered", string(sender)+service)
	select {
	case w.regs <- r:
	default:
	}
	return nil
}

// Next waits for the next registration.
func (w *Watcher) Next(ctx context.Context) (Registration, error) {
	select {
	case r := <-w.regs:
		return r, nil
	case <-ctx.Done():
		return Registration{}, fmt.Errorf("no item registered with the watcher: %w", ctx.Err())
	}
}

// Stop releases the watcher's name by closing its connection.
func (w *Watcher) Stop() { w.conn.Close() }

// Notification is one Notify call.
type Notification struct {
	Sender  string
	AppName string
	Summary string
	Body    string
	Hints   map[string]dbus.Variant
}

// Notifications is org.freedesktop.Notifications. Like real servers it emits
// NotificationClosed (two arguments) after each notification, which is the
// signal that used to stop systray's re-registration loop.
type Notifications struct {
	conn  *dbus.Conn
	calls chan Notification
	hang  chan struct{}
	mu    sync.Mutex
	id    uint32
}

// StartNotifications takes org.freedesktop.Notifications. With hang, Notify
// never answers (until the test ends), as a wedged notification daemon.
func StartNotifications(t testing.TB, addr string, hang bool) *Notifications {
	t.Helper()
	conn := Connect(t, addr)
	n := &Notifications{conn: conn, calls: make(chan Notification, 16)}
	if hang {
		n.hang = make(chan struct{})
		t.Cleanup(func() { close(n.hang) })
	}
	const iface = "org.freedesktop.Notifications"
	if err := conn.ExportMethodTable(map[string]any{
		"Notify": n.notify,
		"GetCapabilities": func() ([]string, *dbus.Error) {
			return []string{"body"}, nil
		},
		"GetServerInformation": func() (string, string, string, string, *dbus.Error) {
			return "dbustest", "hyperos", "1", "1.2", nil
		},
		"CloseNotification": func(uint32) *dbus.Error { return nil },
	}, "/org/freedesktop/Notifications", iface); err != nil {
		t.Fatal(err)
	}
	reply, err := conn.RequestName(iface, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("take %s: reply %v, %v", iface, reply, err)
	}
	return n
}

func (n *Notifications) notify(sender dbus.Sender, app string, replaces uint32, icon, summary, body string, actions []string, hints map[string]dbus.Variant, timeout int32) (uint32, *dbus.Error) {
	n.calls <- Notification{Sender: string(sender), AppName: app, Summary: summary, Body: body, Hints: hints}
	if n.hang != nil {
		<-n.hang
		return 0, dbus.MakeFailedError(errors.New("test over"))
	}
	n.mu.Lock()
	n.id++
	id := n.id
	n.mu.Unlock()
	// Broadcast, as notification daemons do, once the reply is out.
	go n.conn.Emit("/org/freedesktop/Notifications", "org.freedesktop.Notifications.NotificationClosed", id, uint32(1))
	return id, nil
}

// Next waits for the next notification.
func (n *Notifications) Next(ctx context.Context) (Notification, error) {
	select {
	case c := <-n.calls:
		return c, nil
	case <-ctx.Done():
		return Notification{}, fmt.Errorf("no notification arrived: %w", ctx.Err())
	}
}
