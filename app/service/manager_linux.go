package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	ks "github.com/kardianos/service"
)

// Manager installs and controls the service for this user.
type Manager struct {
	c   Config
	svc ks.Service
}

// New prepares a manager. kardianos/service detects systemd by PID 1, which is
// about the system manager; a user unit needs the user's manager, so systemd is
// chosen here whenever systemctl exists, and Install checks the user manager
// answers.
func New(c Config) (*Manager, error) {
	unit, err := SystemdUnit(c)
	if err != nil {
		return nil, err
	}
	var sd ks.System
	for _, s := range ks.AvailableSystems() {
		if s.String() == "linux-systemd" {
			sd = s
		}
	}
	if sd == nil {
		return nil, errors.New("this build of kardianos/service has no systemd support")
	}
	ks.ChooseSystem(userSystemd{sd})
	svc, err := newKardianos(SystemdName, c, c.Args, "SystemdScript", unit)
	if err != nil {
		return nil, fmt.Errorf("prepare the systemd unit: %w", err)
	}
	return &Manager{c: c, svc: svc}, nil
}

type userSystemd struct{ ks.System }

func (userSystemd) Detect() bool {
	_, err := exec.LookPath("systemctl")
	return err == nil
}

// UnitPath is where kardianos/service writes the user unit.
func (m *Manager) UnitPath() string {
	return filepath.Join(m.c.Home, ".config", "systemd", "user", SystemdName+".service")
}

// AutostartPath is the tray's autostart entry.
func (m *Manager) AutostartPath() string {
	return filepath.Join(m.c.ConfigHome, "autostart", AutostartFile)
}

// checkUserManager makes sure `systemctl --user` reaches a user manager, with
// a message that says what to do when it does not (no login session: a cron
// job, a container, su without a session).
func checkUserManager(ctx context.Context) error {
	if _, err := exec.LookPath("systemctl"); err != nil {
		return errors.New("systemctl not found: installing the service needs systemd (start 'hyperos daemon' from your session's startup programs instead)")
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "systemctl", "--user", "show", "--property=Version")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		hint := "log in to a desktop or SSH session first, or let your user manager run without one: sudo loginctl enable-linger " + os.Getenv("USER")
		if os.Getenv("XDG_RUNTIME_DIR") == "" {
			hint = "XDG_RUNTIME_DIR is not set, so this is not a login session (su or sudo without -i?): " + hint
		}
		return fmt.Errorf("no systemd user manager is reachable (systemctl --user: %s): %s", strings.TrimSpace(stderr.String()+" "+err.Error()), hint)
	}
	return nil
}

// Install writes and enables the unit, and the tray's autostart entry.
func (m *Manager) Install(ctx context.Context) error {
	if err := checkUserManager(ctx); err != nil {
		return err
	}
	if _, err := os.Stat(m.UnitPath()); err == nil {
		return fmt.Errorf("%w (%s exists)", ErrAlreadyInstalled, m.UnitPath())
	}
	if err := os.MkdirAll(filepath.Dir(m.UnitPath()), 0o755); err != nil {
		return fmt.Errorf("create the user unit dir: %w", err)
	}
	if err := m.svc.Install(); err != nil {
		return fmt.Errorf("install the systemd user unit %s: %w", m.UnitPath(), err)
	}
	if m.c.Tray {
		text, err := Autostart(m.c)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(m.AutostartPath()), 0o755); err != nil {
			return fmt.Errorf("create the autostart dir: %w", err)
		}
		if err := os.WriteFile(m.AutostartPath(), []byte(text), 0o644); err != nil {
			return fmt.Errorf("write the tray's autostart entry: %w", err)
		}
	}
	return nil
}

// Uninstall stops and disables the unit and removes every installed file.
func (m *Manager) Uninstall(ctx context.Context) error {
	_, unitErr := os.Stat(m.UnitPath())
	_, autoErr := os.Stat(m.AutostartPath())
	if errors.Is(unitErr, fs.ErrNotExist) && errors.Is(autoErr, fs.ErrNotExist) {
		return ErrNotInstalled
	}
	if autoErr == nil {
		if err := os.Remove(m.AutostartPath()); err != nil {
			return fmt.Errorf("remove the tray's autostart entry: %w", err)
		}
	}
	if unitErr != nil {
		return nil
	}
	if err := checkUserManager(ctx); err != nil {
		return err
	}
	if st, err := m.svc.Status(); err == nil && st == ks.StatusRunning {
		if err := m.svc.Stop(); err != nil {
			return fmt.Errorf("stop the service before uninstalling: %w", err)
		}
	}
	if err := m.svc.Uninstall(); err != nil {
		return fmt.Errorf("uninstall the systemd user unit: %w", err)
	}
	return nil
}

// Start starts the installed unit now.
func (m *Manager) Start(ctx context.Context) error {
	if err := m.installed(ctx); err != nil {
		return err
	}
	if err := m.svc.Start(); err != nil {
		return fmt.Errorf("systemctl --user start %s: %w (see 'hyperos logs')", SystemdName, err)
	}
	return nil
}

// Stop stops the unit; the daemon halts the VM first.
func (m *Manager) Stop(ctx context.Context) error {
	if err := m.installed(ctx); err != nil {
		return err
	}
	if err := m.svc.Stop(); err != nil {
		return fmt.Errorf("systemctl --user stop %s: %w", SystemdName, err)
	}
	return nil
}

// Status says whether the unit is installed and running.
func (m *Manager) Status(ctx context.Context) (State, error) {
	var st State
	for _, p := range []string{m.UnitPath(), m.AutostartPath()} {
		if _, err := os.Stat(p); err == nil {
			st.Files = append(st.Files, p)
		}
	}
	if _, err := os.Stat(m.UnitPath()); err != nil {
		return st, nil
	}
	st.Installed = true
	if err := checkUserManager(ctx); err != nil {
		return st, err
	}
	s, err := m.svc.Status()
	if err != nil && !errors.Is(err, ks.ErrNotInstalled) {
		st.Detail = err.Error()
		return st, nil
	}
	st.Running = s == ks.StatusRunning
	return st, nil
}

func (m *Manager) installed(ctx context.Context) error {
	if _, err := os.Stat(m.UnitPath()); err != nil {
		return ErrNotInstalled
	}
	return checkUserManager(ctx)
}
