// Package config owns every per-user path and file name of HyperOS and the VM's
// settings, so that the CLI, the daemon and the tray agree on where things are.
// HYPEROS_HOME moves all of it under one directory (tests and side-by-side
// instances rely on that).
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// Paths are the directories HyperOS uses for one user.
type Paths struct {
	Config string // settings
	State  string // the VM: keys, disk, console log, pid file, sockets
	Cache  string // downloads
}

// Default returns the paths for the current user, under $HYPEROS_HOME when set.
func Default() (Paths, error) {
	if home := os.Getenv("HYPEROS_HOME"); home != "" {
		abs, err := filepath.Abs(home)
		if err != nil {
			return Paths{}, err
		}
		return Paths{Config: filepath.Join(abs, "config"), State: filepath.Join(abs, "state"), Cache: filepath.Join(abs, "cache")}, nil
	}
	cfg, err := os.UserConfigDir()
	if err != nil {
		return Paths{}, fmt.Errorf("find config dir: %w", err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return Paths{}, fmt.Errorf("find cache dir: %w", err)
	}
	state, err := stateDir()
	if err != nil {
		return Paths{}, err
	}
	return Paths{Config: filepath.Join(cfg, "hyperos"), State: state, Cache: filepath.Join(cache, "hyperos")}, nil
}

func stateDir() (string, error) {
	switch runtime.GOOS {
	case "linux":
		if d := os.Getenv("XDG_STATE_HOME"); d != "" {
			return filepath.Join(d, "hyperos"), nil
		}
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		return filepath.Join(home, ".local", "state", "hyperos"), nil
	case "windows":
		if d := os.Getenv("LocalAppData"); d != "" {
			return filepath.Join(d, "HyperOS"), nil
		}
	}
	cfg, err := os.UserConfigDir() // macOS: ~/Library/Application Support
	if err != nil {
		return "", err
	}
	return filepath.Join(cfg, "hyperos", "state"), nil
}

// File names, all in one place.
func (p Paths) ConfigFile() string { return filepath.Join(p.Config, "config.json") }
func (p Paths) VMDir() string      { return filepath.Join(p.State, "vm") }
func (p Paths) Key() string        { return filepath.Join(p.VMDir(), "id_ed25519") }
func (p Paths) HostKeys() string   { return filepath.Join(p.VMDir(), "hostkeys") }
func (p Paths) StatusFile() string { return filepath.Join(p.VMDir(), "status.json") }
func (p Paths) DataDisk() string   { return filepath.Join(p.VMDir(), "data.img") }
func (p Paths) LogDir() string     { return filepath.Join(p.State, "logs") }
func (p Paths) AccelNote() string  { return filepath.Join(p.Cache, "accel-hung") }
func (p Paths) HyperStore() string { return filepath.Join(p.State, "hyper") } // shares and downloads

// Shares holds the records of running `hyperos share` processes (app/shares).
func (p Paths) Shares() string { return filepath.Join(p.State, "shares") }

// Settings of the VM, saved by `hyperos init`.
type Settings struct {
	Name     string `json:"name"`
	Driver   string `json:"driver,omitempty"` // qemu or vfkit; "" picks the platform's default
	Arch     string `json:"arch,omitempty"`
	MemoryMB int    `json:"memory_mb"`
	CPUs     int    `json:"cpus"`
	DiskGB   int    `json:"disk_gb"`
	Accel    string `json:"accel,omitempty"`  // force an accelerator
	Kernel   string `json:"kernel,omitempty"` // override the image
	Initrd   string `json:"initrd,omitempty"`
	// Daemon configures the background service.
	Daemon DaemonSettings `json:"daemon,omitzero"`
}

// Defaults fills in what a user did not set.
func (s *Settings) Defaults() {
	if s.Arch == "" {
		s.Arch = runtime.GOARCH
	}
	if s.MemoryMB == 0 {
		s.MemoryMB = 1024
	}
	if s.CPUs == 0 {
		s.CPUs = 2
	}
	if s.DiskGB == 0 {
		s.DiskGB = 20
	}
}

// ErrNotInitialized means `hyperos init` has not been run for these paths.
var ErrNotInitialized = errors.New("HyperOS is not initialized: run 'hyperos init' first")

// Load reads the settings.
func Load(p Paths) (Settings, error) {
	var s Settings
	b, err := os.ReadFile(p.ConfigFile())
	if errors.Is(err, fs.ErrNotExist) {
		return s, ErrNotInitialized
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s is damaged: %w (fix it or run 'hyperos init --force')", p.ConfigFile(), err)
	}
	if err := s.Daemon.Validate(); err != nil {
		return s, fmt.Errorf("%s: %w", p.ConfigFile(), err)
	}
	s.Defaults()
	return s, nil
}

// Save writes the settings atomically.
func Save(p Paths, s Settings) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(p.ConfigFile(), append(b, '\n'), 0o600)
}

// WriteFileAtomic replaces path with data, so readers see the old or the new file.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil && runtime.GOOS != "windows" {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
