package tray

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/hyperos/hyperos/app/api"
)

// nopUI is a menu that draws nothing; these tests look at notifications.
type nopUI struct{}

func (nopUI) show(View)     {}
func (nopUI) setLogin(bool) {}
func (nopUI) quit()         {}

// TestNoTerminalNotifies: when no terminal emulator exists, Open Terminal
// tells the user, in a notification, the command to run.
func TestNoTerminalNotifies(t *testing.T) {
	r := &recordNotifier{done: make(chan struct{}, 1)}
	c := newController(Options{
		SSH:          []string{"/usr/bin/hyperos", "ssh"},
		Notifier:     r,
		OpenTerminal: func(argv []string) error { return fmt.Errorf("open: %w", ErrNoTerminal) },
		Log:          slog.Default(),
	}, nopUI{})
	c.do(context.Background(), actTerminal, false)
	<-r.done
	if want := "No terminal found. Open one and run: /usr/bin/hyperos ssh"; r.got[0] != want {
		t.Fatalf("notification %q, want %q", r.got[0], want)
	}
}

// TestEventNotifiesOnce: the controller turns a boot seen on the stream into
// one "online" notification, and a reconnect's snapshot of the same state into
// none.
func TestEventNotifiesOnce(t *testing.T) {
	r := &recordNotifier{done: make(chan struct{}, 4)}
	c := newController(Options{Notifier: r, Log: slog.Default()}, nopUI{})
	ctx := context.Background()
	c.event(ctx, api.Event{Type: api.EventState, Phase: api.Stopped, Snapshot: true})
	c.event(ctx, api.Event{Type: api.EventState, Phase: api.Booting})
	c.event(ctx, api.Event{Type: api.EventState, Phase: api.Online, IP: "10.0.2.15"})
	<-r.done
	c.event(ctx, api.Event{Type: api.EventState, Phase: api.Online, IP: "10.0.2.15", Snapshot: true})
	c.event(ctx, api.Event{Type: api.EventConsole, Phase: api.Online, IP: "10.0.2.15"})
	if len(r.got) != 1 || r.got[0] != "HyperOS is online at 10.0.2.15" {
		t.Fatalf("notifications %q", r.got)
	}
}
