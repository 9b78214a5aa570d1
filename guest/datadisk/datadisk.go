// Package datadisk gives the guest persistent state: the virtio disk whose serial is
// "hyperos-data" is formatted ext4 the first time, when it is blank, and mounted at
// /var/lib/hyperos. A disk that holds anything is never formatted: losing a user's
// data to a misdetected disk is the one mistake this package must not make.
package datadisk

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Serial is the virtio-blk serial the host gives the data disk.
const Serial = "hyperos-data"

// MountPoint is where the data disk is mounted in the guest.
const MountPoint = "/var/lib/hyperos"

// Kind is what a disk holds.
type Kind int

const (
	// Blank disks hold only zeros where a file system or partition table would be.
	Blank Kind = iota
	// Ext4 disks hold an ext2/3/4 superblock.
	Ext4
	// Other disks hold data this package does not recognise, and are left alone.
	Other
)

func (k Kind) String() string {
	return [...]string{"blank", "ext4", "unrecognised data"}[k]
}

// Probe regions: the start holds partition tables and every common superblock;
// the end holds GPT's backup header and some RAID metadata.
const (
	headBytes = 4 << 20
	tailBytes = 1 << 20
)

// Classify reads the regions where metadata lives and says what the disk holds.
func Classify(dev io.ReaderAt, size int64) (Kind, error) {
	head := make([]byte, min(headBytes, size))
	if _, err := dev.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return Other, fmt.Errorf("read disk start: %w", err)
	}
	if len(head) >= 1024+58 && binary.LittleEndian.Uint16(head[1024+56:]) == 0xEF53 {
		return Ext4, nil
	}
	if !zero(head) {
		return Other, nil
	}
	if size > int64(len(head)) {
		off := max(size-tailBytes, int64(len(head)))
		tail := make([]byte, size-off)
		if _, err := dev.ReadAt(tail, off); err != nil && !errors.Is(err, io.EOF) {
			return Other, fmt.Errorf("read disk end: %w", err)
		}
		if !zero(tail) {
			return Other, nil
		}
	}
	return Blank, nil
}

func zero(b []byte) bool {
	var z [4096]byte
	for len(b) > 0 {
		n := min(len(b), len(z))
		if !bytes.Equal(b[:n], z[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// Find returns the device node of the disk with the given serial, waiting up to
// wait for virtio block devices that exist but have not been probed yet.
func Find(ctx context.Context, sysfs, serial string, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		entries, _ := os.ReadDir(filepath.Join(sysfs, "block"))
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(sysfs, "block", e.Name(), "serial"))
			if err == nil && strings.TrimSpace(string(b)) == serial {
				return "/dev/" + e.Name(), nil
			}
		}
		if time.Now().After(deadline) || !virtioBlockPending(sysfs, len(entries)) {
			return "", nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// virtioBlockPending reports whether the virtio bus lists more block devices than
// /sys/block shows, i.e. whether waiting can help.
func virtioBlockPending(sysfs string, blockDevs int) bool {
	devs, _ := os.ReadDir(filepath.Join(sysfs, "bus/virtio/devices"))
	n := 0
	for _, d := range devs {
		id, err := os.ReadFile(filepath.Join(sysfs, "bus/virtio/devices", d.Name(), "device"))
		if err == nil && strings.TrimSpace(string(id)) == "0x0002" {
			n++
		}
	}
	return n > 0 && n > countVirtioDisks(sysfs)
}

func countVirtioDisks(sysfs string) int {
	entries, _ := os.ReadDir(filepath.Join(sysfs, "block"))
	n := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "vd") {
			n++
		}
	}
	return n
}

// Prepare classifies dev, formats it if blank, checks it and mounts it at mnt.
// It logs each decision through logf.
func Prepare(ctx context.Context, dev, mnt string, logf func(string, ...any)) error {
	f, err := os.Open(dev)
	if err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return fmt.Errorf("size of %s: %w", dev, err)
	}
	kind, err := Classify(f, size)
	f.Close()
	if err != nil {
		return fmt.Errorf("inspect %s: %w", dev, err)
	}
	switch kind {
	case Other:
		return fmt.Errorf("%s holds data that is not an ext4 file system: left untouched and not mounted", dev)
	case Blank:
		logf("data disk %s is blank (%d MB): formatting ext4", dev, size>>20)
		if err := run(ctx, "mkfs.ext4", "-q", "-F", "-L", Serial, "-m", "0",
			"-E", "lazy_itable_init=1,lazy_journal_init=1", dev); err != nil {
			return err
		}
	case Ext4:
		// -p repairs what is safe after an unclean stop; exit 1 means it did.
		if err := run(ctx, "fsck.ext4", "-p", dev); err != nil {
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() > 1 {
				return fmt.Errorf("check %s: %w", dev, err)
			}
		}
	}
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return err
	}
	if err := run(ctx, "mount", "-t", "ext4", "-o", "noatime", dev, mnt); err != nil {
		return err
	}
	logf("data disk %s mounted at %s", dev, mnt)
	return nil
}

func run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
