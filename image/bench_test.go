//go:build e2e

package image_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hyperos/hyperos/vm"
	"github.com/hyperos/hyperos/vm/vmtest"
)

// BenchmarkBoot reports the image size, boot-to-ready-line and boot-to-SSH
// seconds (under whatever accelerator the driver settles on), and the guest's
// own systemd-analyze figures.
func BenchmarkBoot(b *testing.B) {
	dir := vmtest.ImageDir(b)
	var size int64
	for _, f := range []string{"vmlinuz", "Image", "initrd.img"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err == nil {
			size += fi.Size()
		}
	}
	var toReady, toSSH time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		v := vmtest.Boot(b, vmtest.Options{Name: "bench"})
		ready := time.Since(start)
		toReady += ready
		c, err := v.Dial()
		if err != nil {
			b.Fatal(err)
		}
		out, err := vm.Run(c, "true")
		if err != nil {
			b.Fatal(err, out)
		}
		ssh := time.Since(start)
		toSSH += ssh
		analyze, _ := vm.Run(c, "systemd-analyze; systemd-analyze blame --no-pager | head -8")
		c.Close()
		b.Logf("boot %d under %s: ready line %.1fs, ssh %.1fs\n%s", i+1, v.Driver.Accel(),
			ready.Seconds(), ssh.Seconds(), strings.TrimSpace(analyze))
		v.Driver.Kill()
	}
	b.ReportMetric(float64(size)/1e6, "MB-image")
	b.ReportMetric(toReady.Seconds()/float64(b.N), "s-to-ready")
	b.ReportMetric(toSSH.Seconds()/float64(b.N), "s-to-ssh")
	b.ReportMetric(0, "ns/op")
}
