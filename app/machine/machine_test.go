package machine

import (
	"os"
	"regexp"
	"testing"

	"github.com/hyperos/hyperos/app/config"
	"github.com/hyperos/hyperos/guest/cmdline"
	"github.com/hyperos/hyperos/vm"
)

func TestRandomNames(t *testing.T) {
	re := regexp.MustCompile(`^[a-z]+-[a-z]+-[0-9]{2}$`)
	for i := 0; i < 200; i++ {
		n := RandomName()
		if !re.MatchString(n) || cmdline.ValidHost(n) != nil {
			t.Fatalf("bad name %q", n)
		}
	}
}

func TestInitAndStoppedStatus(t *testing.T) {
	t.Setenv("HYPEROS_HOME", t.TempDir())
	p, _ := config.Default()
	if err := Init(p, config.Settings{Name: "Bad Name"}, false); err == nil {
		t.Fatal("bad name accepted")
	}
	if err := Init(p, config.Settings{}, false); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p.Key())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key: %v %v", fi, err)
	}
	if err := Init(p, config.Settings{}, false); err == nil {
		t.Fatal("second init accepted without --force")
	}
	m, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	// A stale pid file (say, of a shell) must not read as a running VM.
	os.WriteFile(p.VMDir()+"/vm.pid", []byte("1\n"), 0o600)
	if st := m.Status(); st.State != vm.Stopped || st.Pid != 0 {
		t.Fatalf("status %+v", st)
	}
	if _, err := m.Dial(t.Context()); err != ErrNotRunning {
		t.Fatalf("dial a stopped VM: %v", err)
	}
	if err := m.Kill(); err != ErrNotRunning {
		t.Fatalf("kill a stopped VM: %v", err)
	}
}

func TestFirstIPv4(t *testing.T) {
	if got := firstIPv4([]string{"fec0::1", "192.168.64.5"}); got != "192.168.64.5" {
		t.Fatal(got)
	}
	if got := firstIPv4([]string{"fec0::1"}); got != "" {
		t.Fatal(got)
	}
}
