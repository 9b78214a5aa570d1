// Package imagecreate makes a bootable container image: a Debian root file system
// from mmdebstrap packed into an ext4 file sized tightly, ready to share with
// `hyperos share` and live-boot with systemd-nspawn in HyperOS.
package imagecreate

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Options shape an image.
type Options struct {
	Out      string   // the image file to write
	Suite    string   // Debian suite, default bookworm
	Arch     string   // default: the host's
	Include  []string // packages beyond the base (systemd, dbus)
	Hostname string   // default: the file name
	ExtraMB  int      // free space to leave in the file system, default 64
	// DebCache keeps downloaded packages between runs (optional).
	DebCache string
	Progress func(string)
}

var pkgName = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)

// BasePackages make an image systemd-nspawn --boot can boot to a running state.
var BasePackages = []string{"systemd", "systemd-sysv", "dbus", "iproute2"}

func (o *Options) validate() error {
	if o.Out == "" {
		return errors.New("no output file")
	}
	if o.Suite == "" {
		o.Suite = "bookworm"
	}
	if !pkgName.MatchString(o.Suite) {
		return fmt.Errorf("suite %q", o.Suite)
	}
	for _, p := range o.Include {
		if !pkgName.MatchString(p) {
			return fmt.Errorf("package name %q", p)
		}
	}
	if o.ExtraMB == 0 {
		o.ExtraMB = 64
	}
	if o.ExtraMB < 0 || o.ExtraMB > 1<<20 {
		return fmt.Errorf("extra space %d MB", o.ExtraMB)
	}
	if o.Progress == nil {
		o.Progress = func(string) {}
	}
	return nil
}

// SizeFor is the file system size for a tree of used bytes: ext4 needs room for
// its metadata (about 5% plus the journal), and the container room to write.
func SizeFor(used int64, extraMB int) int64 {
	size := used + used/10 + 16<<20 + int64(extraMB)<<20
	return (size + 1<<20 - 1) &^ (1<<20 - 1)
}

func joinPkgs(extra []string) string {
	return strings.Join(append(append([]string{}, BasePackages...), extra...), ",")
}
