//go:build e2e

// End-to-end tests of the hyperos CLI as a new user would type it, against the
// real image in QEMU.
package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hyperos/hyperos/vm/vmtest"
	"golang.org/x/sys/unix"
)

var hyperosBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hyperos-cli")
	if err != nil {
		panic(err)
	}
	hyperosBin = filepath.Join(dir, "hyperos")
	out, err := exec.Command("go", "build", "-o", hyperosBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build hyperos: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cli runs hyperos commands in one HYPEROS_HOME.
type cli struct {
	t    testing.TB
	home string
}

func newBenchCLI(b *testing.B) *cli {
	vmtest.ImageDir(b)
	c := &cli{t: b, home: b.TempDir()}
	b.Cleanup(func() { c.run("kill") })
	return c
}

func newCLI(t *testing.T) *cli {
	vmtest.ImageDir(t) // fails in CI, skips elsewhere, when no image was built
	home := t.TempDir()
	c := &cli{t: t, home: home}
	t.Cleanup(func() {
		// Never leave a VM behind, whatever happened.
		c.run("kill")
	})
	return c
}

func (c *cli) cmd(args ...string) *exec.Cmd {
	cmd := exec.Command(hyperosBin, args...)
	cmd.Env = append(os.Environ(), "HYPEROS_HOME="+c.home)
	cmd.Dir = filepath.Join("..", "..") // the source checkout, where the image is found
	return cmd
}

// run returns stdout, stderr and the exit code.
func (c *cli) run(args ...string) (string, string, int) {
	cmd := c.cmd(args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("hyperos %v: %v", args, err)
		return "", "", -1
	}
	return out.String(), errb.String(), code
}

// must runs a command that has to succeed.
func (c *cli) must(args ...string) string {
	c.t.Helper()
	out, errs, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("hyperos %s: exit %d\nstdout: %s\nstderr: %s\nconsole:\n%s", strings.Join(args, " "), code, out, errs, c.console())
	}
	return out
}

func (c *cli) console() string {
	b, _ := os.ReadFile(filepath.Join(c.home, "state", "vm", "console.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

type status struct {
	Name     string   `json:"name"`
	State    string   `json:"state"`
	Pid      int      `json:"pid"`
	Hostname string   `json:"hostname"`
	IPs      []string `json:"ips"`
	SSH      string   `json:"ssh"`
}

func (c *cli) status() (status, int) {
	out, _, code := c.run("status", "--json")
	var st status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		c.t.Fatalf("status --json: %v: %q", err, out)
	}
	return st, code
}

// TestCLI runs the whole flow twice side by side, in two homes, so that the two
// VMs must not see each other.
func TestCLI(t *testing.T) {
	a, b := newCLI(t), newCLI(t)
	a.must("init", "--name", "alpha-cat")
	b.must("init") // a random readable name
	if _, errs, code := a.run("init"); code == 0 || !strings.Contains(errs, "already initialized") {
		t.Fatalf("second init: exit %d, %s", code, errs)
	}
	st, code := a.status()
	if code != 1 || st.State != "stopped" {
		t.Fatalf("status before boot: %+v exit %d", st, code)
	}
	var wg sync.WaitGroup
	var outA, outB string
	wg.Add(2)
	go func() { defer wg.Done(); outA = a.must("boot", "--json") }()
	go func() { defer wg.Done(); outB = b.must("boot") }()
	wg.Wait()
	var booted status
	if err := json.Unmarshal([]byte(outA), &booted); err != nil || booted.Hostname != "alpha-cat" || booted.State != "running" {
		t.Fatalf("boot --json printed %q (%v)", outA, err)
	}
	if f := strings.Fields(outB); len(f) != 2 {
		t.Fatalf("boot printed %q, want \"IP NAME\"", outB)
	}
	nameB := strings.Fields(outB)[1]
	if parts := strings.Split(nameB, "-"); len(parts) != 3 {
		t.Fatalf("random name %q is not like smokey-mittens-42", nameB)
	}

	t.Run("StatusIPPid", func(t *testing.T) {
		sa, code := a.status()
		sb, _ := b.status()
		if code != 0 || sa.State != "running" || sa.Hostname != "alpha-cat" || sb.Hostname != nameB || sa.Pid == sb.Pid {
			t.Fatalf("status a=%+v (exit %d) b=%+v", sa, code, sb)
		}
		if ip := strings.TrimSpace(a.must("ip")); ip != sa.IPs[0] {
			t.Fatalf("ip %q, status %v", ip, sa.IPs)
		}
		if pid := strings.TrimSpace(a.must("pid")); pid != strconv.Itoa(sa.Pid) {
			t.Fatalf("pid %q, status %d", pid, sa.Pid)
		}
		ps := a.must("ps", "--json")
		for _, want := range []string{`"alpha-cat"`, `"` + nameB + `"`} {
			if !strings.Contains(ps, want) {
				t.Fatalf("ps lacks %s:\n%s", want, ps)
			}
		}
		if !strings.Contains(a.must("status"), "alpha-cat is running") {
			t.Fatal("plain status")
		}
	})
	t.Run("RunPassesStreamsAndExitCode", func(t *testing.T) {
		cmd := a.cmd("run", "--", "sh", "-c", "tr a-z A-Z; echo err >&2; hostname; exit 3")
		cmd.Stdin = strings.NewReader("hello from stdin\n")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 3 {
			t.Fatalf("exit: %v", err)
		}
		if out.String() != "HELLO FROM STDIN\nalpha-cat\n" || errb.String() != "err\n" {
			t.Fatalf("stdout %q stderr %q", out.String(), errb.String())
		}
		// Arguments arrive as given, not re-split by the remote shell.
		if got := b.must("run", "--", "printf", "%s|", "a b", "$(id)"); got != "a b|$(id)|" {
			t.Fatalf("run quoting: %q", got)
		}
	})
	t.Run("SSHWithPTY", func(t *testing.T) {
		out, code := ptySession(t, a.cmd("ssh"), "stty size; tty; echo PTY-$((6*7)); exit 5\n")
		if code != 5 {
			t.Fatalf("ssh exit %d\n%s", code, out)
		}
		for _, want := range []string{"Welcome to HyperOS Linux!", "33 101", "/dev/pts/", "PTY-42"} {
			if !strings.Contains(out, want) {
				t.Fatalf("ssh session lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("TamperedHostKeyRefused", func(t *testing.T) {
		pinned := filepath.Join(b.home, "state", "vm", "hostkeys")
		good, err := os.ReadFile(pinned)
		if err != nil {
			t.Fatal(err)
		}
		// Another VM's real key: well-formed, but not this VM's.
		other, err := os.ReadFile(filepath.Join(a.home, "state", "vm", "hostkeys"))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(pinned, other, 0o600)
		_, errs, code := b.run("run", "--", "true")
		os.WriteFile(pinned, good, 0o600)
		if code == 0 || !strings.Contains(errs, "host key does not match") {
			t.Fatalf("tampered key: exit %d, %s", code, errs)
		}
		b.must("run", "--", "true")
	})
	t.Run("KilledFromOutside", func(t *testing.T) {
		sb, _ := b.status()
		if err := syscall.Kill(sb.Pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			st, code := b.status()
			if st.State == "stopped" && code == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("status after kill -9: %+v", st)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if _, errs, code := b.run("ssh"); code == 0 || !strings.Contains(errs, "not running") {
			t.Fatalf("ssh to a dead VM: exit %d %s", code, errs)
		}
	})
	t.Run("HaltThenBootThenKill", func(t *testing.T) {
		a.must("run", "--", "sh", "-c", "echo kept > /var/lib/hyperos/kept && sync")
		if _, errs, code := a.run("halt"); code != 0 || !strings.Contains(errs, "stopped") {
			t.Fatalf("halt: exit %d %s", code, errs)
		}
		if st, code := a.status(); code != 1 || st.State != "stopped" {
			t.Fatalf("after halt: %+v", st)
		}
		a.must("boot")
		if got := a.must("run", "--", "cat", "/var/lib/hyperos/kept"); got != "kept\n" {
			t.Fatalf("data after halt and boot: %q", got)
		}
		a.must("kill")
		if st, code := a.status(); code != 1 || st.State != "stopped" {
			t.Fatalf("after kill: %+v", st)
		}
		if _, errs, code := a.run("kill"); code == 0 || !strings.Contains(errs, "not running") {
			t.Fatalf("kill when stopped: exit %d %s", code, errs)
		}
	})
}

// TestCLIErrorsSayWhatToDo checks the messages a new user meets first.
func TestCLIErrorsSayWhatToDo(t *testing.T) {
	c := &cli{t: t, home: t.TempDir()}
	if _, errs, code := c.run("boot"); code != 1 || !strings.Contains(errs, "hyperos init") {
		t.Fatalf("boot before init: exit %d %s", code, errs)
	}
	c.must("init", "--name", "no-image")
	cmd := c.cmd("boot")
	cmd.Dir = t.TempDir() // not a checkout, and no installed image beside the binary
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err == nil || !strings.Contains(errb.String(), "make image") {
		t.Fatalf("boot without an image: %v %s", err, errb.String())
	}
	if _, errs, code := c.run("frobnicate"); code != 2 || !strings.Contains(errs, "unknown command") {
		t.Fatalf("unknown command: exit %d %s", code, errs)
	}
	if _, errs, code := c.run("init", "--force", "--name", "Bad_Name"); code != 1 || !strings.Contains(errs, "hostname") {
		t.Fatalf("bad name: exit %d %s", code, errs)
	}
}

// ptySession runs cmd on a new pseudo-terminal of 33x101, types input, and returns
// what the terminal showed and the exit code.
func ptySession(t *testing.T, cmd *exec.Cmd, input string) (string, int) {
	master, slave := openPTY(t)
	defer master.Close()
	if err := unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 33, Col: 101}); err != nil {
		t.Fatal(err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&out, master); close(done) }()
	time.Sleep(3 * time.Second) // let the shell start before typing
	master.Write([]byte(input))
	err := cmd.Wait()
	<-done
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

func openPTY(t *testing.T) (*os.File, *os.File) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m, s
}
