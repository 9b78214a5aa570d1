//go:build e2e

package container_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hyperos/hyperos/app/imagecreate"
	"github.com/hyperos/hyperos/guest/container"
	"github.com/hyperos/hyperos/vm/vmtest"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// containerImage makes (once, cached under build/cache) a small Debian image with
// systemd, the kind `hyperos image create` gives a user.
func containerImage(t *testing.T) string {
	vmtest.Require(t, os.Geteuid() == 0, "making a container image needs root")
	_, err := exec.LookPath("mmdebstrap")
	vmtest.Require(t, err == nil, "mmdebstrap is not installed")
	dir := filepath.Join(repoRoot(), "build", "cache", "container")
	img := filepath.Join(dir, "debian.img")
	if _, err := os.Stat(img); err == nil {
		return img
	}
	os.MkdirAll(dir, 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	tmp := filepath.Join(dir, "debian.img.new")
	os.Remove(tmp)
	if _, err := imagecreate.Create(ctx, imagecreate.Options{Out: tmp, Hostname: "debian", DebCache: filepath.Join(dir, "debs"),
		Progress: func(s string) { t.Log(s) }}); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, img); err != nil {
		t.Fatal(err)
	}
	return img
}

// share runs `hyperos share IMG` on the host and returns the link and the port.
func share(t *testing.T, img string) (string, int) {
	bin := filepath.Join(t.TempDir(), "hyperos")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/hyperos")
	cmd.Dir = repoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build hyperos: %v\n%s", err, out)
	}
	port := vmtest.FreePort(t)
	sh := exec.Command(bin, "share", img, "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	sh.Env = append(os.Environ(), "HYPEROS_HOME="+t.TempDir())
	out, err := sh.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	sh.Stderr = os.Stderr
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Process.Kill(); sh.Wait() })
	r := bufio.NewReader(out)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("hyperos share printed no link: %v", err)
	}
	go func() { // keep draining
		for {
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
		}
	}()
	return strings.TrimSpace(line), port
}

// TestLiveBoot shares a Debian image from the host with `hyperos share` and
// live-boots it in the real VM over QEMU's user network (the host is 10.0.2.2).
func TestLiveBoot(t *testing.T) {
	img := containerImage(t)
	link, port := share(t, img)
	if !strings.HasPrefix(link, "hyper://") || !strings.HasSuffix(link, "/debian.img") {
		t.Fatalf("share printed %q", link)
	}
	v := vmtest.Boot(t, vmtest.Options{Name: "live", MemoryMB: 1536})
	peer := fmt.Sprintf("--peer 10.0.2.2:%d", port)

	out := v.Run("hyperos-guest container boot " + link + " " + peer + " --name deb 2>&1")
	vmtest.Contains(t, "boot", out, "deb live-booted in")
	t.Logf("%s", strings.TrimSpace(out))

	t.Run("CommandRunsInside", func(t *testing.T) {
		out := v.Run("systemd-run -M deb --wait --pipe --quiet cat /etc/debian_version; systemctl -M deb is-system-running || true")
		vmtest.Contains(t, "inside the container", out, "12.")
		if !strings.Contains(out, "running") && !strings.Contains(out, "degraded") {
			t.Fatalf("container systemd: %s", out)
		}
	})
	t.Run("FetchesAFraction", func(t *testing.T) {
		var list []container.State
		if err := json.Unmarshal([]byte(v.Run("hyperos-guest container ls --json")), &list); err != nil || len(list) != 1 {
			t.Fatalf("ls: %v %+v", err, list)
		}
		st := list[0]
		t.Logf("fetched %d of %d bytes (%.1f%%), boot %.1f s", st.Stats.Fetched, st.Stats.Size,
			100*float64(st.Stats.Fetched)/float64(st.Stats.Size), st.BootSeconds)
		if st.Phase != container.Running || st.Stats.Fetched == 0 || st.Stats.Fetched > st.Stats.Size/2 {
			t.Fatalf("state %+v", st)
		}
	})
	t.Run("WritesSurviveRestart", func(t *testing.T) {
		v.Run("systemd-run -M deb --wait --pipe --quiet sh -c 'echo kept > /root/kept; sync'")
		v.Run("hyperos-guest container stop deb")
		out := v.Run("hyperos-guest container ls")
		vmtest.Contains(t, "after stop", out, "stopped")
		v.Run("hyperos-guest container boot " + link + " " + peer + " --name deb")
		vmtest.Contains(t, "after restart", v.Run("systemd-run -M deb --wait --pipe --quiet cat /root/kept"), "kept")
	})
	t.Run("EphemeralLeavesNothing", func(t *testing.T) {
		v.Run("hyperos-guest container boot " + link + " " + peer + " --name eph --ephemeral")
		v.Run("systemd-run -M eph --wait --pipe --quiet sh -c 'echo gone > /root/gone; sync'")
		v.Run("hyperos-guest container stop eph")
		v.Run("hyperos-guest container boot " + link + " " + peer + " --name eph --ephemeral")
		out := v.Run("systemd-run -M eph --wait --pipe --quiet sh -c 'cat /root/gone 2>&1 || echo absent'")
		vmtest.Contains(t, "ephemeral", out, "absent")
		v.Run("hyperos-guest container rm eph")
		if out := v.Run("ls /var/lib/hyperos/containers"); strings.Contains(out, "eph") {
			t.Fatalf("rm left files: %s", out)
		}
	})
	t.Run("EventsRecorded", func(t *testing.T) {
		out := v.Run("cat /run/hyperos/events.jsonl")
		vmtest.Contains(t, "events", out, `"type":"booted","container":"deb"`)
	})
}
