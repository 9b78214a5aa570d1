//go:build e2e && knownbug

package container_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/hyperos/hyperos/app/imagecreate/imagetest"
	"github.com/hyperos/hyperos/vm/vmtest"
)

// TestFsyncedWritesSurviveVMKill is a known failure, kept out of `make test`
// (build tag knownbug; run it with `go test -tags 'e2e knownbug' -run
// TestFsyncedWritesSurviveVMKill ./guest/container/`): a file written and
// fsynced inside a container is missing after the VM is killed, although its
// bytes are in the overlay and the overlay's bitmap was saved at the fsync.
// It passed alone twice and failed three times after the rest of TestLiveBoot
// (a VM reboot and other containers before it). The suspect is the path of
// the container's journal commit from ext4 through the loop device to FUSE.
func TestFsyncedWritesSurviveVMKill(t *testing.T) {
	img := imagetest.Debian(t)
	sd := share(t, img)
	link, peer := sd.link, fmt.Sprintf("--peer 10.0.2.2:%d", sd.port)
	v := vmtest.Boot(t, vmtest.Options{Name: "kill", MemoryMB: 1536})
	vmtest.Contains(t, "boot", v.Run("hyperos-guest container boot "+link+" "+peer+" --name deb 2>&1"), "deb live-booted in")
	// A VM reboot first, as in TestLiveBoot, where it fails.
	v.Halt()
	v.Start()
	vmtest.Contains(t, "boot", v.Run("hyperos-guest container boot "+link+" "+peer+" --name deb 2>&1"), "deb live-booted in")
	// A file made durable with fsync, then the VM killed (no shutdown)
	// while the container is writing: after a boot the file is intact and
	// the container boots again from its overlay.
	bits := "stat -c '%y %s' /var/lib/hyperos/containers/deb/image/overlay.bits"
	t.Logf("overlay bitmap before the write: %s", v.On(t).Run(bits))
	v.On(t).Run("systemd-run -M deb --wait --pipe --quiet sh -c 'echo fsynced > /root/durable && sync /root/durable'")
	t.Logf("overlay bitmap after the fsync: %s", v.On(t).Run(bits))
	v.On(t).Run("systemd-run -M deb --quiet --unit noise sh -c 'while :; do dd if=/dev/urandom of=/root/noise bs=64k count=64 conv=notrunc 2>/dev/null; done'")
	time.Sleep(3 * time.Second)
	if err := v.Driver.Kill(); err != nil {
		t.Fatal(err)
	}
	v.On(t).Start()
	t.Logf("overlay bitmap after the kill: %s", v.On(t).Run(bits))
	t.Logf("the fsynced bytes in the overlay after the kill: %s", v.On(t).Run("grep -c -a fsynced /var/lib/hyperos/containers/deb/image/overlay.data || true"))
	vmtest.Contains(t, "boot after a kill", v.On(t).Run("hyperos-guest container boot "+link+" "+peer+" --name deb 2>&1"), "deb live-booted in")
	vmtest.Contains(t, "after a kill", v.On(t).Run("systemd-run -M deb --wait --pipe --quiet cat /root/durable"), "fsynced")
}
