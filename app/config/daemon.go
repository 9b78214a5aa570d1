package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"time"
)

// File names of the background service, beside the VM's in the state dir.
func (p Paths) DaemonLog() string   { return filepath.Join(p.LogDir(), "hyperos.log") }
func (p Paths) DaemonLock() string  { return filepath.Join(p.State, "daemon.lock") }
func (p Paths) DaemonState() string { return filepath.Join(p.State, "daemon.json") }
func (p Paths) ConsoleLog() string  { return filepath.Join(p.VMDir(), "console.log") }

// homeID is a short name for this set of paths, so that sockets and pipes of
// several HyperOS homes (tests, side-by-side instances) never collide.
func (p Paths) homeID() string {
	h := sha256.Sum256([]byte(p.State))
	return hex.EncodeToString(h[:6])
}

// ErrSocketPathTooLong is returned when neither the state dir nor the runtime
// dir gives a unix socket path the platform accepts.
type ErrSocketPathTooLong struct {
	Tried []string
	Limit int
}

func (e *ErrSocketPathTooLong) Error() string {
	return fmt.Sprintf("unix socket paths are limited to %d bytes on this platform and every candidate is longer (%v): set HYPEROS_HOME or XDG_RUNTIME_DIR to a shorter directory", e.Limit, e.Tried)
}

// DaemonSettings configure the background service (`hyperos daemon`). The zero
// value is the default: boot the VM when the service starts, and restart it with
// backoff when it dies unexpectedly.
type DaemonSettings struct {
	// NoBootAtStart leaves the VM stopped until a client asks for it.
	NoBootAtStart bool `json:"no_boot_at_start,omitempty"`
	// Restart is "on-failure" (default) or "off" (report the failure only).
	Restart string `json:"restart,omitempty"`
	// RestartMaxDelay caps the backoff between restarts ("5m" by default).
	RestartMaxDelay Duration `json:"restart_max_delay,omitzero"`
	// RestartMaxAttempts is how many restarts in a row are tried before the
	// service gives up and stays failed (default 5).
	RestartMaxAttempts int `json:"restart_max_attempts,omitempty"`
}

// Validate refuses values the daemon could not act on.
func (d DaemonSettings) Validate() error {
	switch d.Restart {
	case "", "on-failure", "off":
	default:
		return fmt.Errorf("daemon restart policy %q: use on-failure or off", d.Restart)
	}
	if d.RestartMaxDelay < 0 || d.RestartMaxAttempts < 0 {
		return fmt.Errorf("daemon restart limits must not be negative")
	}
	return nil
}

// Duration is a time.Duration written as "90s" in the settings file.
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: %w", b, err)
	}
	*d = Duration(v)
	return nil
}
