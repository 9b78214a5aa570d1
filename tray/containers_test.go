package tray

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hyperos/hyperos/app/api"
)

func TestContainersSubmenu(t *testing.T) {
	list := []api.Container{
		{Name: "db", State: "failed", Reason: "no peers"},
		{Name: "web", State: "booted", Fetched: 42_300_000, Size: 800_000_000, BootSeconds: 3.2},
		{Name: "old", State: "stopped", Fetched: 5_500_000, Size: 8_000_000},
	}
	s := State{Link: Connecting}.Apply(api.Event{Type: api.EventContainer, Phase: api.Online, Containers: list})
	v := Render(s)
	want := []ContainerItem{
		{Name: "db", Label: "db — failed: no peers"},
		{Name: "web", Label: "web — booted, 42 MB of 800 MB", Terminal: true, Stop: true},
		{Name: "old", Label: "old — stopped, 5.5 MB of 8 MB"},
	}
	if !slices.Equal(v.Containers, want) {
		t.Fatalf("items\n%+v\nwant\n%+v", v.Containers, want)
	}
	// The list follows each event: an event with none empties the submenu
	// ("No containers"), and so does a VM that is not online.
	if v := Render(s.Apply(api.Event{Type: api.EventState, Phase: api.Online})); len(v.Containers) != 0 {
		t.Fatalf("an empty list still shows %+v", v.Containers)
	}
	if v := Render(s.Apply(api.Event{Type: api.EventState, Phase: api.Stopping, Containers: list})); len(v.Containers) != 0 {
		t.Fatalf("containers shown while stopping: %+v", v.Containers)
	}
	if v := Render(FromStatus(api.Status{Phase: api.Online, Containers: list[1:2]})); len(v.Containers) != 1 || v.Containers[0] != want[1] {
		t.Fatalf("from the status: %+v", v.Containers)
	}
}

func TestContainerBootedNotice(t *testing.T) {
	booted := api.Event{Seq: 7, Type: api.EventContainer, Phase: api.Online,
		Container: &api.ContainerEvent{Name: "web", Type: "booted", Fetched: 42_300_000, Size: 800_000_000, BootSeconds: 3.24}}
	online := State{Link: Connected, Phase: api.Online, IP: "10.0.2.15"}
	got := Notices(online, online.Apply(booted), booted)
	if len(got) != 1 || got[0].Body != "Container web live-booted in 3.2 s (42 MB of 800 MB fetched)" {
		t.Fatalf("notices %+v", got)
	}
	// The same event delivered again has the same key: the limiter shows it
	// once.
	again := Notices(online, online.Apply(booted), booted)
	l := NewLimiter(nil, slog.Default())
	if !l.Allow(got[0]) || l.Allow(again[0]) {
		t.Fatal("a re-delivered boot notifies twice")
	}
	if b := ContainerBooted(api.ContainerEvent{Name: "sh", BootSeconds: 12}); b != "Container sh live-booted in 12.0 s" {
		t.Fatalf("without sizes: %q", b)
	}
	failed := api.Event{Seq: 8, Type: api.EventContainer, Phase: api.Online,
		Container: &api.ContainerEvent{Name: "web", Type: "failed", Reason: "systemd-nspawn: exit status 1"}}
	if n := Notices(online, online.Apply(failed), failed); len(n) != 1 || n[0].Body != "Container web failed: systemd-nspawn: exit status 1" {
		t.Fatalf("failed: %+v", n)
	}
	newer := api.Event{Seq: 9, Type: api.EventContainer, Phase: api.Online,
		Container: &api.ContainerEvent{Name: "web", Type: "new-version", Version: 3, NewVersion: 5}}
	if n := Notices(online, online.Apply(newer), newer); len(n) != 1 || !strings.Contains(n[0].Body, "version 5; it runs 3") {
		t.Fatalf("new version: %+v", n)
	}
	// Other container events, the rebuilt list after a connection, and
	// snapshots say nothing.
	for _, e := range []api.Event{
		{Type: api.EventContainer, Phase: api.Online, Container: &api.ContainerEvent{Name: "web", Type: "running"}},
		{Type: api.EventContainer, Phase: api.Online},
		{Type: api.EventState, Phase: api.Online, Snapshot: true, Containers: []api.Container{{Name: "web", State: "booted"}}},
	} {
		if n := Notices(online, online.Apply(e), e); len(n) != 0 {
			t.Errorf("%+v notifies %+v", e, n)
		}
	}
}

// stopService records StopContainer calls; the container actions use nothing
// else of the Service.
type stopService struct {
	Service
	mu      sync.Mutex
	stopped []string
	done    chan struct{}
}

func (s *stopService) StopContainer(ctx context.Context, name string) error {
	s.mu.Lock()
	s.stopped = append(s.stopped, name)
	s.mu.Unlock()
	s.done <- struct{}{}
	if name == "db" {
		return errors.New("no container db")
	}
	return nil
}

func TestContainerActions(t *testing.T) {
	svc := &stopService{done: make(chan struct{}, 2)}
	r := &recordNotifier{done: make(chan struct{}, 2)}
	var opened [][]string
	c := newController(Options{
		Service:  svc,
		SSH:      []string{"/usr/bin/hyperos", "ssh"},
		Notifier: r,
		OpenTerminal: func(argv []string) error {
			opened = append(opened, argv)
			return fmt.Errorf("open: %w", ErrNoTerminal)
		},
		Log: slog.Default(),
	}, nopUI{})
	ctx := context.Background()
	c.containerDo(ctx, actTerminal, "web")
	<-r.done
	if want := [][]string{{"/usr/bin/hyperos", "ssh", "--container", "web"}}; fmt.Sprint(opened) != fmt.Sprint(want) {
		t.Fatalf("terminal argv %q, want %q", opened, want)
	}
	c.containerDo(ctx, actStop, "web")
	<-svc.done
	c.containerDo(ctx, actStop, "db")
	<-svc.done
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	if want := []string{"No terminal found. Open one and run: /usr/bin/hyperos ssh --container web", "Could not stop container db: no container db"}; !slices.Equal(r.got, want) {
		t.Fatalf("notifications %q, want %q", r.got, want)
	}
	svc.mu.Lock()
	defer svc.mu.Unlock()
	if !slices.Equal(svc.stopped, []string{"web", "db"}) {
		t.Fatalf("stopped %q", svc.stopped)
	}
}
