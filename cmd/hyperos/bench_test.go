//go:build e2e

package main_test

import (
	"testing"
	"time"
)

// BenchmarkCLIBoot measures `hyperos boot` until `hyperos run -- true` succeeds:
// boot-to-SSH as a user sees it, including the CLI's own work.
func BenchmarkCLIBoot(b *testing.B) {
	var total time.Duration
	for i := 0; i < b.N; i++ {
		c := newBenchCLI(b)
		c.must("init", "--name", "bench")
		start := time.Now()
		c.must("boot")
		c.must("run", "--", "true")
		total += time.Since(start)
		c.must("kill")
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s-boot-to-ssh")
	b.ReportMetric(0, "ns/op")
}
