package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/hyperos/hyperos/app/client"
	"github.com/hyperos/hyperos/app/config"
	"github.com/hyperos/hyperos/app/service"
	"github.com/hyperos/hyperos/tray"
)

func init() {
	commands["tray"] = cmdTray
}

const trayUsage = `usage: hyperos tray [-v]

Shows HyperOS in the menu bar / system tray: the VM's state, Boot, Stop,
Restart, Open Terminal, Start at Login, logs. The tray only talks to the
HyperOS service ('hyperos daemon', or 'hyperos service install'); quitting it
leaves the VM running under the service. On Linux it needs a D-Bus session bus
and a panel with StatusNotifierItem support.
`

// cmdTray runs the tray until Quit or a signal.
func cmdTray(ctx context.Context, e env) error {
	e.fs.Usage = func() { fmt.Fprint(e.stderr, trayUsage); e.fs.PrintDefaults() }
	verbose := e.fs.Bool("v", false, "log debug messages")
	if _, err := parse(e.fs, e.args, 0); err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	sock, err := e.paths.Socket()
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the hyperos binary for Open Terminal: %w", err)
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	svc := serviceControl{paths: e.paths, exe: exe}
	return tray.Run(ctx, tray.Options{
		Service:      tray.FromClient(&client.Client{Socket: sock}),
		Version:      version,
		SSH:          []string{exe, "ssh"},
		StartService: svc.start,
		Login:        svc,
		LogFile:      e.paths.DaemonLog(),
		Log:          log,
	})
}

// serviceControl is the tray's Start at Login and Start HyperOS service, on
// app/service: the same installation as 'hyperos service install'.
type serviceControl struct {
	paths config.Paths
	exe   string
}

func (s serviceControl) manager() (*service.Manager, error) {
	cfg, err := service.FromEnvironment([]string{"daemon"}, true, s.paths.LogDir())
	if err != nil {
		return nil, err
	}
	return service.New(cfg)
}

// Enabled reports whether the service is installed (it then starts at login).
func (s serviceControl) Enabled(ctx context.Context) (bool, error) {
	m, err := s.manager()
	if err != nil {
		return false, err
	}
	st, err := m.Status(ctx)
	if err != nil {
		return false, err
	}
	return st.Installed, nil
}

// SetEnabled installs or uninstalls the service.
func (s serviceControl) SetEnabled(ctx context.Context, on bool) error {
	m, err := s.manager()
	if err != nil {
		return err
	}
	if !on {
		return m.Uninstall(ctx)
	}
	if _, err := config.Load(s.paths); err != nil {
		return err
	}
	return m.Install(ctx)
}

// start starts the installed service through the service manager, or, when it
// is not installed, runs 'hyperos daemon' detached, logging to the service's
// log directory.
func (s serviceControl) start(ctx context.Context) error {
	if m, err := s.manager(); err == nil {
		st, err := m.Status(ctx)
		if err == nil && st.Installed {
			return m.Start(ctx)
		}
	}
	if _, err := config.Load(s.paths); errors.Is(err, config.ErrNotInitialized) {
		return err
	}
	if err := os.MkdirAll(s.paths.LogDir(), 0o700); err != nil {
		return fmt.Errorf("make the log directory: %w", err)
	}
	return tray.StartDetached([]string{s.exe, "daemon"}, filepath.Join(s.paths.LogDir(), "daemon-stdout.log"))
}
