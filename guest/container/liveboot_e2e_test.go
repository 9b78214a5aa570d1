//go:build e2e

package container_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
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
	// A test killed by its timeout must not leave a seeder behind.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
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

// gatedProxy forwards connections on a new port to addr, each once gate is
// closed, and returns the port.
func gatedProxy(t *testing.T, addr string, gate <-chan struct{}) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				<-gate
				up, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { io.Copy(up, c); up.Close() }()
				io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// containerState reads one container's state from `container ls --json` in the VM.
func containerState(t *testing.T, v *vmtest.VM, name string) container.State {
	st, ok := lookupState(t, v, name)
	if !ok {
		t.Fatalf("no container %s", name)
	}
	return st
}

// lookupState is containerState for a container that may not be listed yet.
func lookupState(t *testing.T, v *vmtest.VM, name string) (container.State, bool) {
	var list []container.State
	if err := json.Unmarshal([]byte(v.On(t).Run("hyperos-guest container ls --json")), &list); err != nil {
		t.Fatal(err)
	}
	for _, st := range list {
		if st.Name == name {
			return st, true
		}
	}
	return container.State{}, false
}

// TestLiveBoot shares a Debian image from the host with `hyperos share` and
// live-boots it in the real VM over QEMU's user network (the host is 10.0.2.2).
func TestLiveBoot(t *testing.T) {
	img := imagetest.Debian(t)
	// The image `hyperos image create` makes has 4 KiB blocks, so the
	// container's writes are whole overlay pages.
	if out, err := exec.Command("dumpe2fs", "-h", img).Output(); err != nil || !regexp.MustCompile(`(?m)^Block size:\s+4096$`).Match(out) {
		t.Fatalf("dumpe2fs -h %s: %v\n%s", img, err, out)
	}
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
		// Wait until it is fetching (the boot command may not have made the
		// container yet), then take the seeder away.
		for i := 0; ; i++ {
			time.Sleep(200 * time.Millisecond)
			if st, ok := lookupState(t, v, "late"); ok && st.Stats.Fetched > 1<<20 || i > 600 {
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
	t.Run("FromANodeSeederBesideATamperer", func(t *testing.T) {
		// The same image published by a real Node.js Hyperdrive, which also
		// serves it on a second port as a hostile peer flipping a byte in every
		// block it sends. The VM must drop that peer, store nothing it sent,
		// and boot from the honest one.
		node := nodetest.Require(t)
		cmd := nodetest.Command(t, node, "container-seed.js", img, "debian.img", "--tamper")
		cmd.Stderr = os.Stderr
		in, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { in.Close(); cmd.Wait() }()
		dec := json.NewDecoder(out)
		var seeded struct {
			Key        string `json:"key"`
			Port       int    `json:"port"`
			TamperPort int    `json:"tamper_port"`
		}
		if err := dec.Decode(&seeded); err != nil {
			t.Fatalf("node seeder: %v", err)
		}
		var tampered atomic.Int64
		go func() {
			for {
				var n struct{ Tampered int64 }
				if dec.Decode(&n) != nil {
					return
				}
				tampered.Store(n.Tampered)
			}
		}()
		nodeLink := "hyper://" + seeded.Key + "/debian.img"
		// The honest peer is reached through a gate that opens only once the
		// tamperer has sent a bad block, so the tamperer is surely asked.
		gate := make(chan struct{})
		honest := gatedProxy(t, fmt.Sprintf("127.0.0.1:%d", seeded.Port), gate)
		go func() {
			for tampered.Load() == 0 {
				time.Sleep(50 * time.Millisecond)
			}
			close(gate)
		}()
		// --prefetch then fetches the whole image in the background.
		got := v.On(t).Run(fmt.Sprintf("hyperos-guest container boot %s --peer 10.0.2.2:%d --peer 10.0.2.2:%d --name from-node --prefetch 2>&1",
			nodeLink, seeded.TamperPort, honest))
		vmtest.Contains(t, "boot from node", got, "from-node live-booted in")
		vmtest.Contains(t, "inside", v.On(t).Run("systemd-run -M from-node --wait --pipe --quiet cat /etc/debian_version"), "12.")
		if tampered.Load() == 0 {
			t.Fatal("the tampering peer was never asked for a block: the test proves nothing")
		}
		// Once the whole image is cached, the cache (what the VM keeps of the
		// image, apart from the container's own writes, which go to the
		// overlay) is byte for byte the published image.
		for i := 0; ; i++ {
			st := containerState(t, v, "from-node")
			if st.Stats.Cached == st.Stats.Size {
				break
			}
			if i == 600 {
				t.Fatalf("the prefetch did not finish: %+v", st.Stats)
			}
			time.Sleep(time.Second)
		}
		want, err := exec.Command("sha256sum", img).Output()
		if err != nil {
			t.Fatal(err)
		}
		sum := v.On(t).Run("sha256sum /var/lib/hyperos/containers/from-node/image/cache.data")
		if strings.Fields(sum)[0] != strings.Fields(string(want))[0] {
			t.Fatalf("the image cached in the VM differs from the published one: %s, want %s", sum, want)
		}
		log := v.On(t).Run("journalctl -u hyperos-container-from-node --no-pager | grep -c 'invalid checksum' || true")
		t.Logf("tampered blocks sent: %d; guest log lines about bad checksums: %s", tampered.Load(), strings.TrimSpace(log))
		v.On(t).Run("hyperos-guest container rm from-node")
	})
	t.Run("NewVersionReported", func(t *testing.T) {
		// A directory holding the image is shared and booted; then a file is
		// added and the directory shared again: the running container keeps
		// its version and the guest reports the new one.
		dir := t.TempDir()
		if out, err := exec.Command("cp", "--reflink=auto", "--sparse=always", img, filepath.Join(dir, "debian.img")).CombinedOutput(); err != nil {
			t.Fatalf("copy the image: %v: %s", err, out)
		}
		ds := share(t, dir)
		dlink := strings.TrimSuffix(ds.link, "/") + "/debian.img"
		dpeer := fmt.Sprintf("--peer 10.0.2.2:%d", ds.port)
		vmtest.Contains(t, "boot", v.On(t).Run("hyperos-guest container boot "+dlink+" "+dpeer+" --name nv 2>&1"), "nv live-booted in")
		before := containerState(t, v, "nv").Version
		if err := os.WriteFile(filepath.Join(dir, "NEWS"), []byte("a new version\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		ds.stop()
		ds.start() // publishes the change, same link
		for i := 0; ; i++ {
			st := containerState(t, v, "nv")
			if st.NewVersion > before {
				if st.Version != before || st.Phase != container.Running {
					t.Fatalf("the running container changed: %+v", st)
				}
				break
			}
			if i == 120 {
				t.Fatalf("no new version reported: %+v", st)
			}
			time.Sleep(time.Second)
		}
		vmtest.Contains(t, "event", v.On(t).Run("grep new-version /run/hyperos/events.jsonl"), `"container":"nv"`)
		v.On(t).Run("hyperos-guest container rm nv")
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
	// After the reboot the container's ext4 journal writes over pages the
	// overlay already holds; their fsync was once skipped, and this failed.
	t.Run("FsyncedWritesSurviveVMKill", func(t *testing.T) {
		v.On(t).Run("systemd-run -M deb --wait --pipe --quiet sh -c 'echo fsynced > /root/durable && sync /root/durable'")
		// Kill the VM (no shutdown) while the container is writing.
		v.On(t).Run("systemd-run -M deb --quiet --unit noise sh -c 'while :; do dd if=/dev/urandom of=/root/noise bs=64k count=64 conv=notrunc 2>/dev/null; done'")
		time.Sleep(3 * time.Second)
		if err := v.Driver.Kill(); err != nil {
			t.Fatal(err)
		}
		v.On(t).Start()
		vmtest.Contains(t, "boot after a kill", v.On(t).Run("hyperos-guest container boot "+link+" "+peer+" --name deb 2>&1"), "deb live-booted in")
		vmtest.Contains(t, "after a kill", v.On(t).Run("systemd-run -M deb --wait --pipe --quiet cat /root/durable"), "fsynced")
	})
}
