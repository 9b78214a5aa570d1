// Package nodetest gives the interop tests the real Node.js Hypercore packages,
// pinned in hyper/testdata/node: one place that finds node, installs the packages
// when they are missing (once, under a lock, since packages test in parallel) and
// turns a missing prerequisite into a skip, or a failure under CI=true.
package nodetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Dir is the absolute path of hyper/testdata/node.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "hyper", "testdata", "node")
}

// Require returns the node binary, with the pinned packages installed.
func Require(t testing.TB) string {
	t.Helper()
	missing := func(format string, args ...any) string {
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
		return ""
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return missing("node not found: %v", err)
	}
	dir := Dir()
	if installed(dir) {
		return node
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return missing("node_modules missing and npm not found: %v", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".npm-ci.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return missing("lock %s: %v", dir, err)
	}
	defer lock.Close()
	if err := lockFile(lock); err != nil {
		return missing("lock %s: %v", dir, err)
	}
	defer unlockFile(lock)
	if installed(dir) { // another package's test installed them while we waited
		return node
	}
	cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return missing("npm ci in %s: %v\n%s", dir, err, out)
	}
	return node
}

// installed reports whether npm ci completed for the current lockfile.
func installed(dir string) bool {
	marker, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json"))
	if err != nil {
		return false
	}
	lockfile, err := os.Stat(filepath.Join(dir, "package-lock.json"))
	return err == nil && !marker.ModTime().Before(lockfile.ModTime())
}

// Command returns a command running script (in Dir) with node, its temporary
// directory inside the test's own: a Node peer that is killed cannot clean up
// its corestore, and the test's cleanup then removes it.
func Command(t testing.TB, node, script string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(node, append([]string{script}, args...)...)
	cmd.Dir = Dir()
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	return cmd
}
