package container

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Start validates spec, records it and starts the container's unit. A container
// that is already running is refused; a stopped one with the same name boots
// again with its overlay (the same link is required).
func Start(ctx context.Context, d Dirs, spec Spec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	if active(spec.Name) {
		return fmt.Errorf("container %s is already running (stop it first)", spec.Name)
	}
	if old, err := d.loadSpec(spec.Name); err == nil && old.Link != spec.Link {
		return fmt.Errorf("container %s was made from %s: remove it first ('container rm %s') to boot another image under that name", spec.Name, old.Link, spec.Name)
	}
	if err := d.saveSpec(spec); err != nil {
		return err
	}
	st, _ := d.Load(spec.Name)
	st.Spec, st.Phase, st.Reason = spec, Booting, ""
	d.saveState(st)
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "systemd-run", "--quiet", "--collect",
		"--unit="+Unit(spec.Name),
		"--description=HyperOS container "+spec.Name,
		"--property=KillMode=mixed", "--property=TimeoutStopSec=60",
		"--property=After=hyperos-datadisk.service",
		exe, "container", "serve", spec.Name)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("start unit: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Wait follows the container's state until it runs, fails or stops, calling
// progress on every change.
func Wait(ctx context.Context, d Dirs, name string, progress func(State)) (State, error) {
	var last string
	for {
		st, err := d.Load(name)
		if err != nil {
			return st, err
		}
		key := fmt.Sprintf("%s %s %d", st.Phase, st.Reason, st.Stats.Fetched>>20)
		if key != last && progress != nil {
			progress(st)
			last = key
		}
		switch st.Phase {
		case Running, Failed, Stopped:
			return st, nil
		}
		if !active(name) && st.Phase != Stopped {
			return st, fmt.Errorf("container %s stopped while booting (journalctl -u %s)", name, Unit(name))
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Stop stops the container's unit, which powers the container off cleanly.
func Stop(ctx context.Context, name string) error {
	if !active(name) {
		return fmt.Errorf("container %s is not running", name)
	}
	out, err := exec.CommandContext(ctx, "systemctl", "stop", Unit(name)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("stop %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Remove stops the container if needed and deletes its cache and overlay.
func Remove(ctx context.Context, d Dirs, name string) error {
	if _, err := d.loadSpec(name); err != nil {
		return err
	}
	if active(name) {
		if err := Stop(ctx, name); err != nil {
			return err
		}
	}
	return os.RemoveAll(d.dir(name))
}

func active(name string) bool {
	return exec.Command("systemctl", "is-active", "--quiet", Unit(name)).Run() == nil
}
