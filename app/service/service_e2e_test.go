//go:build e2e && linux

package service

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hyperos/hyperos/app/client"
	"github.com/hyperos/hyperos/app/config"
	"github.com/hyperos/hyperos/app/machine"
	"github.com/hyperos/hyperos/vm/vmtest"
)

// buildHyperos builds the real CLI into a directory whose name has a space, so
// the unit's quoting is exercised by systemd itself.
func buildHyperos(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	dir := filepath.Join(t.TempDir(), "my bin")
	bin := filepath.Join(dir, "hyperos")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/hyperos")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build hyperos: %v\n%s", err, out)
	}
	return bin
}

// TestGeneratedFilesVerify runs systemd's own checker on the unit and the
// freedesktop validator on the autostart entry.
func TestGeneratedFilesVerify(t *testing.T) {
	_, err := exec.LookPath("systemd-analyze")
	vmtest.Require(t, err == nil, "systemd-analyze is not installed (apt-get install systemd)")
	bin := buildHyperos(t)
	c := Config{Exe: bin, Args: []string{"daemon", "--restart", "off"}, Env: map[string]string{"HYPEROS_HOME": "/tmp/a home/%x"}, Tray: true, Home: t.TempDir()}
	unit, err := SystemdUnit(c)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, SystemdName+".service")
	os.WriteFile(path, []byte(unit), 0o644)
	rt := t.TempDir()
	cmd := exec.Command("systemd-analyze", "verify", "--user", path)
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+rt)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Fatalf("systemd-analyze verify --user: %v\n%s\n%s", err, out, unit)
	}

	_, err = exec.LookPath("desktop-file-validate")
	vmtest.Require(t, err == nil, "desktop-file-validate is not installed (apt-get install desktop-file-utils)")
	entry, err := Autostart(c)
	if err != nil {
		t.Fatal(err)
	}
	dpath := filepath.Join(dir, AutostartFile)
	os.WriteFile(dpath, []byte(entry), 0o644)
	if out, err := exec.Command("desktop-file-validate", dpath).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Fatalf("desktop-file-validate: %v\n%s\n%s", err, out, entry)
	}
}

// userManager starts a private `systemd --user` for a fresh HOME and
// XDG_RUNTIME_DIR. When PID 1 is not systemd (a container), systemd refuses to
// run as a user instance unless /run/systemd/system exists, so it runs in its
// own mount namespace with a private /run/systemd that has it.
func userManager(t *testing.T) {
	t.Helper()
	sd := "/lib/systemd/systemd"
	_, err := os.Stat(sd)
	vmtest.Require(t, err == nil, "systemd is not installed")
	_, err = exec.LookPath("unshare")
	vmtest.Require(t, err == nil && os.Getuid() == 0, "starting a private user manager needs root and unshare")
	home := t.TempDir()
	rt, _ := os.MkdirTemp("", "xdg-rt")
	os.Chmod(rt, 0o700)
	t.Cleanup(func() { os.RemoveAll(rt) })
	t.Setenv("HOME", home)
	t.Setenv("XDG_RUNTIME_DIR", rt)
	unsetenv(t, "XDG_CONFIG_HOME") // systemd reads an empty one as "no config dir"
	unsetenv(t, "DBUS_SESSION_BUS_ADDRESS")
	script := "set -e; if [ ! -d /run/systemd/system ]; then mount -t tmpfs tmpfs /run/systemd; mkdir /run/systemd/system; fi; exec " + sd + " --user"
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	cmd.Env = os.Environ()
	var logb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logb, &logb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Process.Kill()
		<-done
	})
	for {
		if exec.Command("systemctl", "--user", "show", "--property=Version").Run() == nil {
			return
		}
		select {
		case <-done:
			t.Fatalf("systemd --user exited:\n%s", logb.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func unsetenv(t *testing.T, k string) {
	if v, ok := os.LookupEnv(k); ok {
		t.Cleanup(func() { os.Setenv(k, v) })
	}
	os.Unsetenv(k)
}

func TestSystemctlUserInstallStartStopUninstall(t *testing.T) {
	bin := buildHyperos(t)
	userManager(t)
	hyHome := t.TempDir()
	t.Setenv("HYPEROS_HOME", hyHome)
	paths, _ := config.Default()
	if err := machine.Init(paths, config.Settings{Name: "svc-test"}, false); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := Config{Exe: bin, Args: []string{"daemon", "--boot=false"}, Env: map[string]string{"HYPEROS_HOME": hyHome}, Home: os.Getenv("HOME"), ConfigHome: filepath.Join(os.Getenv("HOME"), ".config"), LogDir: paths.LogDir()}
	m, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Uninstall(ctx); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("uninstall before install: %v", err)
	}
	if err := m.Start(ctx); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("start before install: %v", err)
	}
	if err := m.Install(ctx); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command("systemctl", "--user", "is-enabled", SystemdName).Output(); strings.TrimSpace(string(out)) != "enabled" {
		t.Fatalf("is-enabled: %q", out)
	}
	if err := m.Install(ctx); !errors.Is(err, ErrAlreadyInstalled) {
		t.Fatalf("second install: %v", err)
	}
	if st, err := m.Status(ctx); err != nil || !st.Installed || st.Running {
		t.Fatalf("status after install: %+v %v", st, err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// The service answers on its socket once it is up.
	var cl client.Client
	// The limit only turns a service that never comes up into a failure with
	// its log, instead of a hung test.
	giveUp := time.Now().Add(2 * time.Minute)
	for {
		st, err := cl.Status(ctx)
		if err == nil {
			if st.Name != "svc-test" || st.Phase != "stopped" {
				t.Fatalf("service status %+v", st)
			}
			break
		}
		if !errors.Is(err, client.ErrNotRunning) {
			t.Fatal(err)
		}
		if out, _ := exec.Command("systemctl", "--user", "is-failed", SystemdName).Output(); strings.TrimSpace(string(out)) == "failed" || time.Now().After(giveUp) {
			log, _ := exec.Command("systemctl", "--user", "status", SystemdName).CombinedOutput()
			daemonLog, _ := os.ReadFile(paths.DaemonLog())
			t.Fatalf("the service never answered:\n%s\n%s", log, daemonLog)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st, err := m.Status(ctx); err != nil || !st.Running {
		t.Fatalf("status when started: %+v %v", st, err)
	}
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Status(ctx); !errors.Is(err, client.ErrNotRunning) {
		t.Fatalf("after stop the service still answers: %v", err)
	}
	if err := m.Uninstall(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m.UnitPath()); err == nil {
		t.Fatal("unit file left behind")
	}
	if err := m.Uninstall(ctx); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("second uninstall: %v", err)
	}
}

// TestInstallWithoutUserSession: no user manager answers (su without a login
// session): the message says so and what to do.
func TestInstallWithoutUserSession(t *testing.T) {
	_, err := exec.LookPath("systemctl")
	vmtest.Require(t, err == nil, "systemctl is not installed")
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir()) // empty: no manager behind it
	unsetenv(t, "DBUS_SESSION_BUS_ADDRESS")
	m, err := New(Config{Exe: "/usr/bin/true", Args: []string{"daemon"}, Home: home, ConfigHome: filepath.Join(home, ".config")})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Install(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no systemd user manager") || !strings.Contains(err.Error(), "enable-linger") {
		t.Fatalf("install without a session: %v", err)
	}
	if _, serr := os.Stat(m.UnitPath()); serr == nil {
		t.Fatal("a unit was written although installing failed")
	}
	t.Setenv("XDG_RUNTIME_DIR", "")
	if err := m.Install(context.Background()); err == nil || !strings.Contains(err.Error(), "XDG_RUNTIME_DIR is not set") {
		t.Fatalf("install without XDG_RUNTIME_DIR: %v", err)
	}
}
