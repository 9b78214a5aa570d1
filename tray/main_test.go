package tray

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/hyperos/hyperos/app/client"
)

// TestMain doubles as the tray process of the D-Bus tests: fyne.io/systray keeps
// one tray per process (global state, a Quit that works once), so every test
// starts this binary again with HYPEROS_TRAY_TEST_CHILD=1, on the test's
// private bus, and drives it from the outside as a panel would.
func TestMain(m *testing.M) {
	if os.Getenv("HYPEROS_TRAY_TEST_CHILD") == "1" {
		os.Exit(child())
	}
	os.Exit(m.Run())
}

func child() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	o := Options{
		Service: FromClient(&client.Client{}),
		Version: "test-tray",
		SSH:     []string{"hyperos", "ssh"},
		Log:     log,
	}
	if f := os.Getenv("HYPEROS_TRAY_TEST_LOGIN"); f != "" {
		o.Login = fileLogin(f)
	}
	if sock := os.Getenv("HYPEROS_TRAY_TEST_START"); sock != "" {
		o.StartService = func(ctx context.Context) error { return askToStart(ctx, sock) }
	}
	if err := Run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "tray:", err)
		return 1
	}
	return 0
}

// fileLogin is a LoginItem whose "installed service" is a file: the tests check
// the checkbox's round trip (click, switch, redraw from the switched state)
// without installing a systemd unit on the test machine. The real one,
// wired in cmd/hyperos, is app/service.
type fileLogin string

func (f fileLogin) Enabled(context.Context) (bool, error) {
	_, err := os.Stat(string(f))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func (f fileLogin) SetEnabled(_ context.Context, on bool) error {
	if on {
		return os.WriteFile(string(f), []byte("installed\n"), 0o600)
	}
	return os.Remove(string(f))
}

// askToStart is the test tray's "Start HyperOS service": the service runs in
// the test process, so the tray asks the test, over a unix socket, to start it
// and waits until it has.
func askToStart(ctx context.Context, sock string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return fmt.Errorf("ask the test to start the service: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("start\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "started\n" {
		return fmt.Errorf("the test did not start the service: %q %v", line, err)
	}
	return nil
}
