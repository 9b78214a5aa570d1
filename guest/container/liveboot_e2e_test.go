//go:build e2e

package container_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hyperos/hyperos/app/imagecreate/imagetest"
	"github.com/hyperos/hyperos/guest/container"
	"github.com/hyperos/hyperos/internal/nodetest"
	"github.com/hyperos/hyperos/vm"
	"github.com/hyperos/hyperos/vm/vmtest"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// seeder is `hyperos share IMG` running on the host.
type seeder struct {
	t         *testing.T
	bin, home string
	img       string
	port      int
	cmd       *exec.Cmd
	link      string
}

// share builds hyperos and starts seeding img; it returns the seeder with the
// link it printed.
func share(t *testing.T, img string) *seeder {
	bin := filepath.Join(t.TempDir(), "hyperos")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/hyperos")
	cmd.Dir = repoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build hyperos: %v\n%s", err, out)
	}
	s := &seeder{t: t, bin: bin, home: t.TempDir(), img: img, port: vmtest.FreePort(t)}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *seeder) start() {
	s.cmd = exec.Command(s.bin, "share", s.img, "--listen", fmt.Sprintf("127.0.0.1:%d", s.port))
	s.cmd.Env = append(os.Environ(), "HYPEROS_HOME="+s.home)
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	r := bufio.NewReader(out)
	line, err := r.ReadString('\n')
	if err != nil {
		s.t.Fatalf("hyperos share printed no link: %v", err)
	}
	if l := strings.TrimSpace(line); s.link != "" && l != s.link {
		s.t.Fatalf("sharing again gave another link: %s, was %s", l, s.link)
	} else {
		s.link = l
	}
	go func() { // keep draining
		for {
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
		}
	}()
}

func (s *seeder) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
}

// containerState reads one container's state from `container ls --json` in the VM.
func containerState(t *testing.T, v *vmtest.VM, name string) container.State {
	var list []container.State
	if err := json.Unmarshal([]byte(v.On(t).Run("hyperos-guest container ls --json")), &list); err != nil {
		t.Fatal(err)
	}
	for _, st := range list {
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("no container %s", name)
	return container.State{}
}

// TestLiveBoot shares a Debian image from the host with `hyperos share` and
// live-boots it in the real VM over QEMU's user network (the host is 10.0.2.2).
func TestLiveBoot(t *testing.T) {
	img := imagetest.Debian(t)
	sd := share(t, img)
	link, port := sd.link, sd.port
	if !strings.HasPrefix(link, "hyper://") || !strings.HasSuffix(link, "/debian.img") {
		t.Fatalf("share printed %q", link)
	}
	v := vmtest.Boot(t, vmtest.Options{Name: "live", MemoryMB: 1536})
	peer := fmt.Sprintf("--peer 10.0.2.2:%d", port)

	out := v.Run("hyperos-guest container boot " + link + " " + peer + " --name deb 2>&1")
	vmtest.Contains(t, "boot", out, "deb live-booted in")
	t.Logf("%s", strings.TrimSpace(out))

	t.Run("CommandRunsInside", func(t *testing.T) {
		out := v.On(t).Run("systemd-run -M deb --wait --pipe --quiet cat /etc/debian_version; systemctl -M deb is-system-running || true")
		vmtest.Contains(t, "inside the container", out, "12.")
		if !strings.Contains(out, "running") && !strings.Contains(out, "degraded") {
			t.Fatalf("container systemd: %s", out)
		}
	})
	t.Run("FetchesAFraction", func(t *testing.T) {
		var list []container.State
		if err := json.Unmarshal([]byte(v.On(t).Run("hyperos-guest container ls --json")), &list); err != nil || len(list) != 1 {
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
		v.On(t).Run("systemd-run -M deb --wait --pipe --quiet sh -c 'echo kept > /root/kept; sync'")
		v.On(t).Run("hyperos-guest container stop deb")
		out := v.On(t).Run("hyperos-guest container ls")
		vmtest.Contains(t, "after stop", out, "stopped")
		v.On(t).Run("hyperos-guest container boot " + link + " " + peer + " --name deb")
		vmtest.Contains(t, "after restart", v.On(t).Run("systemd-run -M deb --wait --pipe --quiet cat /root/kept"), "kept")
		v.On(t).Run("hyperos-guest container stop deb") // frees the emulated CPUs for the next boots
	})
	t.Run("EphemeralLeavesNothing", func(t *testing.T) {
		v.On(t).Run("hyperos-guest container boot " + link + " " + peer + " --name eph --ephemeral")
		v.On(t).Run("systemd-run -M eph --wait --pipe --quiet sh -c 'echo gone > /root/gone; sync'")
		v.On(t).Run("hyperos-guest container stop eph")
		v.On(t).Run("hyperos-guest container boot " + link + " " + peer + " --name eph --ephemeral")
		out := v.On(t).Run("systemd-run -M eph --wait --pipe --quiet sh -c 'cat /root/gone 2>&1 || echo absent'")
		vmtest.Contains(t, "ephemeral", out, "absent")
		v.On(t).Run("hyperos-guest container rm eph")
		if out := v.On(t).Run("ls /var/lib/hyperos/containers"); strings.Contains(out, "eph") {
			t.Fatalf("rm left files: %s", out)
		}
	})
	t.Run("SeederGoneMidBoot", func(t *testing.T) {
		done := make(chan string, 1)
		go func() {
			c, err := v.Dial()
			if err != nil {
				done <- err.Error()
				return
			}
			defer c.Close()
			out, err := vm.Run(c, "hyperos-guest container boot "+link+" "+peer+" --name late 2>&1")
			if err != nil {
				out += err.Error()
			}
			done <- out
		}()
		// Wait until it is fetching, then take the seeder away.
		for i := 0; ; i++ {
			time.Sleep(200 * time.Millisecond)
			if st := containerState(t, v, "late"); st.Stats.Fetched > 1<<20 || i > 600 {
				break
			}
		}
		sd.stop()
		time.Sleep(5 * time.Second)
		if st := containerState(t, v, "late"); st.Phase == container.Running || st.Phase == container.Failed {
			t.Fatalf("with no seeder the boot went on to %s (%s)", st.Phase, st.Reason)
		}
		sd.start()
		out := <-done
		vmtest.Contains(t, "boot after the seeder came back", out, "late live-booted in")
		v.On(t).Run("hyperos-guest container rm late")
	})
	t.Run("FromANodeSeeder", func(t *testing.T) {
		// The same image published by a real Node.js Hyperdrive: the VM fetches
		// every block from Node.
		node := nodetest.Require(t)
		cmd := nodetest.Command(t, node, "container-seed.js", img, "debian.img")
		cmd.Stderr = os.Stderr
		in, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { in.Close(); cmd.Wait() }()
		var seeded struct {
			Key  string `json:"key"`
			Port int    `json:"port"`
		}
		if err := json.NewDecoder(out).Decode(&seeded); err != nil {
			t.Fatalf("node seeder: %v", err)
		}
		nodeLink := "hyper://" + seeded.Key + "/debian.img"
		got := v.On(t).Run(fmt.Sprintf("hyperos-guest container boot %s --peer 10.0.2.2:%d --name from-node 2>&1", nodeLink, seeded.Port))
		vmtest.Contains(t, "boot from node", got, "from-node live-booted in")
		vmtest.Contains(t, "inside", v.On(t).Run("systemd-run -M from-node --wait --pipe --quiet cat /etc/debian_version"), "12.")
		v.On(t).Run("hyperos-guest container rm from-node")
	})
	t.Run("EventsRecorded", func(t *testing.T) {
		out := v.On(t).Run("cat /run/hyperos/events.jsonl")
		vmtest.Contains(t, "events", out, `"type":"booted","container":"deb"`)
	})
	t.Run("WritesSurviveVMReboot", func(t *testing.T) {
		v.On(t).Halt()
		v.On(t).Start()
		v.On(t).Run("hyperos-guest container boot " + link + " " + peer + " --name deb")
		vmtest.Contains(t, "after a VM reboot", v.On(t).Run("systemd-run -M deb --wait --pipe --quiet cat /root/kept"), "kept")
	})
}
