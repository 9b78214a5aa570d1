package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"

	ks "github.com/kardianos/service"
)

// Manager installs and controls the service for this user: a LaunchAgent for
// the daemon and, when there is a tray, one for the tray limited to the Aqua
// (graphical) session.
type Manager struct {
	c          Config
	svc, tray  ks.Service
	agentsHome string
}

// New prepares a manager.
func New(c Config) (*Manager, error) {
	text, err := LaunchAgent(c)
	if err != nil {
		return nil, err
	}
	svc, err := newKardianos(LaunchdLabel, c, c.Args, "LaunchdConfig", text)
	if err != nil {
		return nil, fmt.Errorf("prepare the LaunchAgent: %w", err)
	}
	m := &Manager{c: c, svc: svc, agentsHome: c.Home}
	// kardianos/service puts LaunchAgents under the account's home directory.
	if u, err := user.Current(); err == nil && u.HomeDir != "" {
		m.agentsHome = u.HomeDir
	}
	if c.Tray {
		text, err := LaunchAgentTray(c)
		if err != nil {
			return nil, err
		}
		if m.tray, err = newKardianos(LaunchdTrayLabel, c, []string{"tray"}, "LaunchdConfig", text); err != nil {
			return nil, fmt.Errorf("prepare the tray's LaunchAgent: %w", err)
		}
	}
	return m, nil
}

func (m *Manager) plistPath(label string) string {
	return filepath.Join(m.agentsHome, "Library", "LaunchAgents", label+".plist")
}

// Install writes the LaunchAgents; they load at the next login, or now with
// `hyperos service start`.
func (m *Manager) Install(ctx context.Context) error {
	if _, err := os.Stat(m.plistPath(LaunchdLabel)); err == nil {
		return fmt.Errorf("%w (%s exists)", ErrAlreadyInstalled, m.plistPath(LaunchdLabel))
	}
	if err := os.MkdirAll(m.c.LogDir, 0o700); err != nil {
		return fmt.Errorf("create the log dir: %w", err)
	}
	if err := m.svc.Install(); err != nil {
		return fmt.Errorf("install the LaunchAgent %s: %w", m.plistPath(LaunchdLabel), err)
	}
	if m.tray != nil {
		if err := m.tray.Install(); err != nil {
			return fmt.Errorf("install the tray's LaunchAgent: %w", err)
		}
	}
	return nil
}

// Uninstall unloads and removes the LaunchAgents.
func (m *Manager) Uninstall(ctx context.Context) error {
	removed := false
	for _, s := range []struct {
		label string
		svc   ks.Service
	}{{LaunchdTrayLabel, m.tray}, {LaunchdLabel, m.svc}} {
		if _, err := os.Stat(m.plistPath(s.label)); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		svc := s.svc
		if svc == nil {
			// The tray was installed by a binary that had one: remove its file.
			if err := os.Remove(m.plistPath(s.label)); err != nil {
				return fmt.Errorf("remove %s: %w", m.plistPath(s.label), err)
			}
			removed = true
			continue
		}
		if err := svc.Uninstall(); err != nil {
			return fmt.Errorf("uninstall %s: %w", s.label, err)
		}
		removed = true
	}
	if !removed {
		return ErrNotInstalled
	}
	return nil
}

// Start loads the daemon's LaunchAgent now (RunAtLoad starts it).
func (m *Manager) Start(ctx context.Context) error {
	if _, err := os.Stat(m.plistPath(LaunchdLabel)); err != nil {
		return ErrNotInstalled
	}
	if err := m.svc.Start(); err != nil {
		return fmt.Errorf("launchctl load %s: %w (LaunchAgents run in a login session: start it from the logged-in user's Terminal)", m.plistPath(LaunchdLabel), err)
	}
	return nil
}

// Stop unloads the daemon's LaunchAgent; launchd sends SIGTERM and the daemon
// halts the VM before it exits.
func (m *Manager) Stop(ctx context.Context) error {
	if _, err := os.Stat(m.plistPath(LaunchdLabel)); err != nil {
		return ErrNotInstalled
	}
	if err := m.svc.Stop(); err != nil {
		return fmt.Errorf("launchctl unload %s: %w", m.plistPath(LaunchdLabel), err)
	}
	return nil
}

// Status says whether the LaunchAgent is installed and its job running.
func (m *Manager) Status(ctx context.Context) (State, error) {
	var st State
	for _, l := range []string{LaunchdLabel, LaunchdTrayLabel} {
		if _, err := os.Stat(m.plistPath(l)); err == nil {
			st.Files = append(st.Files, m.plistPath(l))
		}
	}
	if _, err := os.Stat(m.plistPath(LaunchdLabel)); err != nil {
		return st, nil
	}
	st.Installed = true
	s, err := m.svc.Status()
	if err != nil && !errors.Is(err, ks.ErrNotInstalled) {
		st.Detail = err.Error()
	}
	st.Running = s == ks.StatusRunning
	return st, nil
}
