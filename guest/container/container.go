// Package container live-boots container images inside HyperOS: the image file
// of a hyper:// link is exposed lazily (guest/lazyimage over a Hyperdrive read
// from peers), its writes go to a persistent overlay on the data disk, and
// systemd-nspawn boots it. Each container runs as a transient systemd unit
// (hyperos-container-NAME) executing `hyperos-guest container serve NAME`, so it
// outlives the command that started it and stops cleanly with the VM.
package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hyperos/hyperos/guest/cmdline"
	"github.com/hyperos/hyperos/guest/lazyimage"
	"github.com/hyperos/hyperos/hyper/link"
)

// Spec is what `container boot` was asked to do.
type Spec struct {
	Name      string   `json:"name"`
	Link      string   `json:"link"`
	Peers     []string `json:"peers,omitempty"`
	Boot      bool     `json:"boot"`              // run the image's init (systemd-nspawn --boot)
	Command   []string `json:"command,omitempty"` // else run this command
	Ephemeral bool     `json:"ephemeral,omitempty"`
	Binds     []string `json:"binds,omitempty"`  // SRC:DST
	Nspawn    []string `json:"nspawn,omitempty"` // extra systemd-nspawn arguments (--sn-*)
	Prefetch  bool     `json:"prefetch,omitempty"`
}

// Phase is where a container is in its life.
type Phase string

const (
	Waiting Phase = "waiting" // the image is not published yet
	Booting Phase = "booting"
	Running Phase = "running"
	Stopped Phase = "stopped"
	Failed  Phase = "failed"
)

// Files in a container's directory.
const (
	statusFn = "state.json"
	specFn   = "spec.json"
)

// State is a container's status as `container ls` shows it.
type State struct {
	Spec
	Phase       Phase           `json:"phase"`
	Reason      string          `json:"reason,omitempty"`
	Version     uint64          `json:"version,omitempty"` // drive version booted
	NewVersion  uint64          `json:"new_version,omitempty"`
	Stats       lazyimage.Stats `json:"stats"`
	Peers       int             `json:"peers_connected"`
	BootSeconds float64         `json:"boot_seconds,omitempty"`
	Started     time.Time       `json:"started,omitzero"`
}

// Validate checks a spec before anything is started; values reach a command line
// (systemd-nspawn's) as separate arguments, never through a shell.
func (s *Spec) Validate() error {
	if err := cmdline.ValidHost(s.Name); err != nil || strings.Contains(s.Name, ".") {
		return fmt.Errorf("container name %q: use a-z, 0-9 and '-'", s.Name)
	}
	l, err := link.Parse(s.Link)
	if err != nil {
		return fmt.Errorf("link: %w", err)
	}
	if l.Path == "/" {
		return fmt.Errorf("link %s names no image file: add its path, e.g. hyper://KEY/image.img", s.Link)
	}
	for _, p := range s.Peers {
		host, port, err := net.SplitHostPort(p)
		if err != nil || host == "" || port == "" {
			return fmt.Errorf("peer %q: want HOST:PORT", p)
		}
	}
	for _, b := range s.Binds {
		src, dst, ok := strings.Cut(b, ":")
		if !ok || !filepath.IsAbs(src) || !filepath.IsAbs(dst) || strings.Contains(b, "..") || strings.ContainsAny(b, ",\n\x00") {
			return fmt.Errorf("bind %q: want /SRC:/DST with absolute paths", b)
		}
	}
	for _, a := range s.Nspawn {
		if !strings.HasPrefix(a, "--") || strings.ContainsAny(a, "\n\x00") {
			return fmt.Errorf("nspawn argument %q: must be a --long-option", a)
		}
	}
	if !s.Boot && len(s.Command) == 0 {
		s.Boot = true
	}
	if s.Boot && len(s.Command) > 0 {
		return errors.New("give --boot or a command, not both")
	}
	return nil
}

// Dirs says where a container's files live.
type Dirs struct {
	State string // persistent: /var/lib/hyperos/containers
	Run   string // runtime: /run/hyperos/containers (FUSE mounts)
}

// DefaultDirs are the guest's.
var DefaultDirs = Dirs{
	State: "/var/lib/hyperos/containers",
	Run:   "/run/hyperos/containers",
}

func (d Dirs) dir(name string) string      { return filepath.Join(d.State, name) }
func (d Dirs) cacheDir(name string) string { return filepath.Join(d.State, name, "image") }
func (d Dirs) mountDir(name string) string { return filepath.Join(d.Run, name) }

// storeDir holds the container's Hypercore store (one per container: a store
// directory is locked by the process that uses it).
func (d Dirs) storeDir(name string) string { return filepath.Join(d.State, name, "hyper") }

// Unit is the systemd unit a container runs as.
func Unit(name string) string { return "hyperos-container-" + name + ".service" }

func (d Dirs) saveSpec(s Spec) error {
	return writeJSON(filepath.Join(d.dir(s.Name), specFn), s)
}

func (d Dirs) loadSpec(name string) (Spec, error) {
	var s Spec
	b, err := os.ReadFile(filepath.Join(d.dir(name), specFn))
	if errors.Is(err, fs.ErrNotExist) {
		return s, fmt.Errorf("no container %q", name)
	}
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(b, &s)
}

func (d Dirs) saveState(st State) error {
	return writeJSON(filepath.Join(d.dir(st.Name), statusFn), st)
}

// Load reads a container's last recorded state.
func (d Dirs) Load(name string) (State, error) {
	var st State
	b, err := os.ReadFile(filepath.Join(d.dir(name), statusFn))
	if errors.Is(err, fs.ErrNotExist) {
		spec, err := d.loadSpec(name)
		if err != nil {
			return st, err
		}
		return State{Spec: spec, Phase: Stopped}, nil
	}
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

// List returns every container's state, by name.
func (d Dirs) List() ([]State, error) {
	entries, err := os.ReadDir(d.State)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []State
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if st, err := d.Load(e.Name()); err == nil {
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
