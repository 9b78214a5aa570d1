package vm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// DefaultDiskSize is the data disk's size: the file is sparse, so this is a
// ceiling for containers and images, not space taken on the host.
const DefaultDiskSize int64 = 20 << 30

// CreateDisk makes the raw data disk at path, sparse, of size bytes
// (DefaultDiskSize when size is 0), unless a file is already there: the disk holds
// the VM's state, so an existing one is never truncated or resized. The guest
// formats a blank disk on first boot. The file is made with O_EXCL, so two callers
// racing cannot both create it.
func CreateDisk(path string, size int64) error {
	if size == 0 {
		size = DefaultDiskSize
	}
	if size < 0 || size%512 != 0 {
		return fmt.Errorf("data disk %s: size %d is not a positive multiple of 512 bytes", path, size)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("data disk: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("data disk: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("data disk %s exists and is not a regular file", path)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("create data disk: %w", err)
	}
	// Truncate extends without writing: the file takes no blocks until the guest
	// writes (APFS, ext4, NTFS all keep such files sparse).
	if err := f.Truncate(size); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("size data disk %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("create data disk %s: %w", path, err)
	}
	return nil
}
