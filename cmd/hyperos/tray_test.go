//go:build linux

package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestTrayNeedsSessionBus: on Linux the tray needs a D-Bus session bus and
// nothing else; without one, `hyperos tray` says so and exits 1 instead of
// starting a tray that can never show.
func TestTrayNeedsSessionBus(t *testing.T) {
	t.Setenv("HYPEROS_HOME", t.TempDir())
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"tray"}, nil, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "no D-Bus session bus") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}
