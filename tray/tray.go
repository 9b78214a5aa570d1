// Package tray is the HyperOS menu-bar and system-tray app: an icon per VM
// state, a menu of the actions that make sense now, notifications when the VM
// comes online or fails, and "Open Terminal" into the VM.
//
// It is a pure client of the service's local API: everything it shows comes
// from the service's event stream (the first event of every stream is a
// snapshot, so no polling is needed), and every action is an API call. It never
// imports vm/, so the tray cannot drive a hypervisor behind the service's back.
// When the service is not running, the tray says so, offers to start it, and
// reconnects with backoff.
//
// On Linux the tray needs only a D-Bus session bus (StatusNotifierItem and
// com.canonical.dbusmenu, both pure Go); on Windows nothing; on macOS the
// menu-bar code of fyne.io/systray needs cgo, so a build without cgo has a
// Run that says how to build it.
package tray

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/hyperos/hyperos/app/api"
)

// goos is the platform the tray runs on.
var goos = runtime.GOOS

// Service is the part of the local API the tray uses; the API client
// implements it.
type Service interface {
	// Events calls fn for every event of one stream, starting with the
	// snapshot, and returns when the stream ends (the service went away or
	// cut a lagging reader off) or ctx ends.
	Events(ctx context.Context, fn func(api.Event)) error
	// Status reads the full status (versions, log path); the tray reads it
	// only when About or Open Logs is clicked.
	Status(ctx context.Context) (api.Status, error)
	Boot(ctx context.Context) error
	Halt(ctx context.Context) error
	Restart(ctx context.Context) error
	// StopContainer stops an in-guest container.
	StopContainer(ctx context.Context, name string) error
}

// LoginItem is "Start at Login": whether the service starts with the user's
// session, and switching it.
type LoginItem interface {
	Enabled(ctx context.Context) (bool, error)
	SetEnabled(ctx context.Context, on bool) error
}

// Options configure the tray.
type Options struct {
	Service Service
	// Version is the tray's own version, shown by About.
	Version string
	// SSH is the command that opens a shell in the VM (`hyperos ssh`), run in
	// a terminal by Open Terminal.
	SSH []string
	// StartService starts the service when it is not running (nil hides the
	// item).
	StartService func(ctx context.Context) error
	// Login switches starting at login (nil hides the item).
	Login LoginItem
	// LogFile is opened by Open Logs when the service cannot say where its
	// log is (it is not running).
	LogFile string
	// Notifier shows notifications; nil uses the platform's.
	Notifier Notifier
	// OpenTerminal opens a terminal running argv; nil uses OpenTerminal.
	OpenTerminal func(argv []string) error
	// Open opens a file in its default application; nil uses the
	// platform's opener (xdg-open, open, the Windows file association).
	Open func(path string) error
	Log  *slog.Logger
}

// Reconnection backoff: quick at first, so a service restart is noticed at
// once, then slow, so a tray whose service is gone for good costs nothing.
const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 30 * time.Second
)

// ui is what the controller draws on: the systray menu.
type ui interface {
	show(View)
	setLogin(on bool)
	quit()
}

// controller holds the state and runs the actions. Its methods are safe for
// concurrent use: the stream goroutine and the click goroutines share it.
type controller struct {
	opts Options
	log  *slog.Logger
	lim  *Limiter
	ui   ui

	mu    sync.Mutex
	state State
	// wake cuts a reconnection backoff short (Start HyperOS service).
	wake chan struct{}
}

func newController(o Options, u ui) *controller {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Notifier == nil {
		o.Notifier = newPlatformNotifier()
	}
	if o.OpenTerminal == nil {
		o.OpenTerminal = OpenTerminal
	}
	if o.Open == nil {
		o.Open = func(path string) error { return start(Launch{Argv: OpenCommand(goos, path)}) }
	}
	return &controller{opts: o, log: o.Log, lim: NewLimiter(o.Notifier, o.Log), ui: u, wake: make(chan struct{}, 1)}
}

// follow keeps the event stream open until ctx ends, reconnecting with backoff.
func (c *controller) follow(ctx context.Context) {
	c.ui.show(Render(c.current()))
	delay := minBackoff
	for {
		lagged := false
		err := c.opts.Service.Events(ctx, func(e api.Event) {
			delay = minBackoff
			if e.Type == api.EventLagged {
				lagged = true
				return
			}
			c.event(ctx, e)
		})
		if ctx.Err() != nil {
			return
		}
		if lagged {
			// The service is there; the tray fell behind (a suspended
			// laptop, a stalled desktop). Reconnect at once for a fresh
			// snapshot, without showing "not running" in between.
			c.log.Warn("the service cut the event stream off; reconnecting")
			continue
		}
		c.mu.Lock()
		was := c.state.Link
		c.state = State{Link: NoService}
		c.mu.Unlock()
		if was != NoService {
			c.log.Info("the HyperOS service is not reachable; retrying", "err", err)
			c.ui.show(Render(State{Link: NoService}))
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-c.wake:
			t.Stop()
		case <-t.C:
		}
		delay = min(delay*2, maxBackoff)
	}
}

func (c *controller) current() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// event folds e into the state, redraws, and notifies.
func (c *controller) event(ctx context.Context, e api.Event) {
	c.mu.Lock()
	prev := c.state
	next := prev.Apply(e)
	c.state = next
	c.mu.Unlock()
	c.ui.show(Render(next))
	for _, n := range Notices(prev, next, e) {
		c.lim.Send(ctx, n)
	}
}

// action is a menu click.
type action int

const (
	actBoot action = iota
	actStop
	actRestart
	actTerminal
	actStartService
	actLogin
	actLogs
	actAbout
	actQuit
)

// do runs a click. Anything that waits runs in its own goroutine, so a slow
// halt never blocks the menu; failures become notifications, since a tray has
// nowhere else to say them.
func (c *controller) do(ctx context.Context, a action, loginChecked bool) {
	switch a {
	case actBoot:
		c.async(ctx, "boot HyperOS", c.opts.Service.Boot)
	case actStop:
		c.async(ctx, "stop HyperOS", c.opts.Service.Halt)
	case actRestart:
		c.async(ctx, "restart HyperOS", c.opts.Service.Restart)
	case actTerminal:
		c.terminal(ctx, c.opts.SSH)
	case actStartService:
		c.async(ctx, "start the HyperOS service", func(ctx context.Context) error {
			if err := c.opts.StartService(ctx); err != nil {
				return err
			}
			select {
			case c.wake <- struct{}{}:
			default:
			}
			return nil
		})
	case actLogin:
		on := !loginChecked
		c.async(ctx, "change Start at Login", func(ctx context.Context) error {
			err := c.opts.Login.SetEnabled(ctx, on)
			if now, rerr := c.opts.Login.Enabled(ctx); rerr == nil {
				c.ui.setLogin(now)
			}
			return err
		})
	case actLogs:
		c.async(ctx, "open the logs", func(ctx context.Context) error {
			path := c.opts.LogFile
			if st, err := c.opts.Service.Status(ctx); err == nil && st.Daemon.Log != "" {
				path = st.Daemon.Log
			}
			if path == "" {
				return errors.New("the service has not said where its log is")
			}
			return c.opts.Open(path)
		})
	case actAbout:
		c.async(ctx, "show About", func(ctx context.Context) error {
			body := "Tray " + c.opts.Version
			if st, err := c.opts.Service.Status(ctx); err == nil {
				body += ", service " + orUnknown2(st.Daemon.Version)
				if st.Name != "" {
					body += ", VM " + st.Name
				}
			} else {
				body += "; the service is not running"
			}
			c.lim.Send(ctx, Notice{Title: "About HyperOS", Body: body})
			return nil
		})
	case actQuit:
		c.ui.quit()
	}
}

// containerDo runs a click in the submenu of container name: Open Terminal
// (`hyperos ssh --container NAME`, through the same launcher as the VM's) or
// Stop.
func (c *controller) containerDo(ctx context.Context, a action, name string) {
	switch a {
	case actTerminal:
		c.terminal(ctx, append(slices.Clone(c.opts.SSH), "--container", name))
	case actStop:
		c.async(ctx, "stop container "+name, func(ctx context.Context) error {
			return c.opts.Service.StopContainer(ctx, name)
		})
	}
}

// terminal opens a terminal running argv, or says what to run by hand.
func (c *controller) terminal(ctx context.Context, argv []string) {
	err := c.opts.OpenTerminal(argv)
	if err == nil {
		return
	}
	c.log.Warn("could not open a terminal", "err", err)
	msg := fmt.Sprintf("Could not open a terminal: %v", err)
	if errors.Is(err, ErrNoTerminal) {
		msg = fmt.Sprintf("No terminal found. Open one and run: %s", ShellLine(argv))
	}
	c.lim.Send(ctx, Notice{Key: "error:" + msg, Title: "HyperOS", Body: msg})
}

func orUnknown2(s string) string {
	if s == "" {
		return "(version unknown)"
	}
	return s
}

// async runs f in the background and reports its failure.
func (c *controller) async(ctx context.Context, what string, f func(context.Context) error) {
	go func() {
		if err := f(ctx); err != nil && ctx.Err() == nil {
			c.fail(ctx, what, err)
		}
	}()
}

func (c *controller) fail(ctx context.Context, what string, err error) {
	c.log.Warn("could not "+what, "err", err)
	msg := fmt.Sprintf("Could not %s: %v", what, err)
	c.lim.Send(ctx, Notice{Key: "error:" + msg, Title: "HyperOS", Body: msg})
}
