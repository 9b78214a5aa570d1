//go:build !windows

package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestSocketPathFitsTheKernelLimit(t *testing.T) {
	short := t.TempDir()
	t.Setenv("HYPEROS_HOME", short)
	p, _ := Default()
	s, err := p.Socket()
	if err != nil || s != filepath.Join(short, "state", "run", "hyperos.sock") {
		t.Fatalf("short home: %s %v", s, err)
	}

	// A home deep enough to pass the limit falls back to the runtime dir, with
	// a name of its own per home.
	deep := filepath.Join(short, strings.Repeat("d", 120))
	t.Setenv("HYPEROS_HOME", deep)
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	p, _ = Default()
	s, err = p.Socket()
	if err != nil || !strings.HasPrefix(s, "/run/user/1000/hyperos-") || len(s) > maxSocketPath() {
		t.Fatalf("deep home: %s %v", s, err)
	}
	t.Setenv("HYPEROS_HOME", deep+"2")
	p2, _ := Default()
	if s2, _ := p2.Socket(); s2 == s {
		t.Fatal("two homes share a fallback socket")
	}

	t.Setenv("XDG_RUNTIME_DIR", "/"+strings.Repeat("r", 120))
	_, err = p.Socket()
	var tooLong *ErrSocketPathTooLong
	if !errors.As(err, &tooLong) || !strings.Contains(err.Error(), "limited to") {
		t.Fatalf("nothing fits: %v", err)
	}
}

func TestDaemonSettings(t *testing.T) {
	t.Setenv("HYPEROS_HOME", t.TempDir())
	p, _ := Default()
	s := Settings{Name: "x", Daemon: DaemonSettings{Restart: "off", RestartMaxDelay: Duration(90e9)}}
	if err := Save(p, s); err != nil {
		t.Fatal(err)
	}
	got, err := Load(p)
	if err != nil || got.Daemon.Restart != "off" || got.Daemon.RestartMaxDelay != Duration(90e9) {
		t.Fatalf("%+v %v", got.Daemon, err)
	}
	s.Daemon.Restart = "sometimes"
	Save(p, s)
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "on-failure or off") {
		t.Fatalf("bad policy: %v", err)
	}
}
