package client

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the client (and so the tray) free of the VM and hypervisor
// code: a tray must not be able to start QEMU by itself.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/hyperos/hyperos/app/client").CombinedOutput()
	if err != nil {
		t.Skipf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/hyperos/hyperos/vm", "github.com/hyperos/hyperos/app/machine", "github.com/hyperos/hyperos/app/daemon", "golang.org/x/crypto/ssh"} {
			if p == banned || strings.HasPrefix(p, banned+"/") {
				t.Errorf("app/client depends on %s", p)
			}
		}
	}
}
