package service

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"

	"github.com/hyperos/hyperos/app/client"
	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
)

const runKey = `Software\Microsoft\Windows\CurrentVersion\Run`

// Manager installs HyperOS to start at login from the per-user Run key.
//
// kardianos/service cannot install a per-user service on Windows (it needs the
// SCM, so an administrator, and makes a SYSTEM service), and a service cannot
// show a tray icon. A SYSTEM service would also run QEMU as SYSTEM, with the VM's
// files in SYSTEM's profile. So the Run key starts HyperOS in the user's own
// session, where QEMU runs as the user: the tray, which runs the service
// in-process, or the service alone while this binary has no tray.
type Manager struct {
	c Config
}

// New prepares a manager.
func New(c Config) (*Manager, error) {
	if _, err := RunCommand(c); err != nil {
		return nil, err
	}
	return &Manager{c: c}, nil
}

func (m *Manager) value() (string, bool, error) {
	k, err := registry.OpenKey(registry.CURRENT_USER, runKey, registry.QUERY_VALUE)
	if err != nil {
		return "", false, fmt.Errorf("open HKCU\\%s: %w", runKey, err)
	}
	defer k.Close()
	v, _, err := k.GetStringValue(RunValue)
	if errors.Is(err, registry.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read HKCU\\%s\\%s: %w", runKey, RunValue, err)
	}
	return v, true, nil
}

// Install adds the Run value.
func (m *Manager) Install(ctx context.Context) error {
	if v, ok, err := m.value(); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("%w (HKCU\\%s\\%s = %s)", ErrAlreadyInstalled, runKey, RunValue, v)
	}
	cmd, err := RunCommand(m.c)
	if err != nil {
		return err
	}
	k, _, err := registry.CreateKey(registry.CURRENT_USER, runKey, registry.SET_VALUE)
	if err != nil {
		return fmt.Errorf("open HKCU\\%s: %w", runKey, err)
	}
	defer k.Close()
	if err := k.SetStringValue(RunValue, cmd); err != nil {
		return fmt.Errorf("write HKCU\\%s\\%s: %w", runKey, RunValue, err)
	}
	return nil
}

// Uninstall stops the service when it runs and removes the Run value.
func (m *Manager) Uninstall(ctx context.Context) error {
	_, ok, err := m.value()
	if err != nil {
		return err
	}
	if !ok {
		return ErrNotInstalled
	}
	var c client.Client
	if err := c.Shutdown(ctx); err != nil && !errors.Is(err, client.ErrNotRunning) {
		return fmt.Errorf("stop the running service: %w", err)
	}
	k, err := registry.OpenKey(registry.CURRENT_USER, runKey, registry.SET_VALUE)
	if err != nil {
		return fmt.Errorf("open HKCU\\%s: %w", runKey, err)
	}
	defer k.Close()
	if err := k.DeleteValue(RunValue); err != nil {
		return fmt.Errorf("delete HKCU\\%s\\%s: %w", runKey, RunValue, err)
	}
	return nil
}

// Start runs the service now, detached from this console.
func (m *Manager) Start(ctx context.Context) error {
	if _, ok, err := m.value(); err != nil {
		return err
	} else if !ok {
		return ErrNotInstalled
	}
	var c client.Client
	if _, err := c.Status(ctx); err == nil {
		return errors.New("the HyperOS service is already running")
	}
	cmd := exec.Command(m.c.Exe, m.c.Args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: windows.DETACHED_PROCESS | windows.CREATE_NEW_PROCESS_GROUP | windows.CREATE_NO_WINDOW}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", m.c.Exe, err)
	}
	return cmd.Process.Release()
}

// Stop asks the running service, over its pipe, to halt the VM and exit.
func (m *Manager) Stop(ctx context.Context) error {
	var c client.Client
	if err := c.Shutdown(ctx); err != nil {
		return fmt.Errorf("stop the service: %w", err)
	}
	return nil
}

// Status says whether the Run value is there and the service answers.
func (m *Manager) Status(ctx context.Context) (State, error) {
	v, ok, err := m.value()
	if err != nil {
		return State{}, err
	}
	st := State{Installed: ok}
	if ok {
		st.Files = []string{`HKCU\` + runKey + `\` + RunValue + " = " + v}
	}
	var c client.Client
	_, err = c.Status(ctx)
	st.Running = err == nil
	return st, nil
}
