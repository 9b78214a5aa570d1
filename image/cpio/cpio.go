// Package cpio writes the "newc" cpio format that the Linux kernel unpacks as an
// initramfs, with every host-specific field (inode, device, mtime) made
// deterministic so that the same tree always gives the same bytes.
package cpio

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File type bits of the newc mode field.
const (
	typeDir     = 0o040000
	typeRegular = 0o100000
	typeSymlink = 0o120000
	// CharDevice marks a character device node.
	CharDevice = 0o020000
	// BlockDevice marks a block device node.
	BlockDevice = 0o060000
)

const trailer = "TRAILER!!!"

// Writer appends entries to a newc archive. Entries must be added parents first.
type Writer struct {
	w     io.Writer
	mtime int64
	ino   uint32
	off   int64
	err   error
}

// NewWriter returns a Writer stamping every entry with mtime.
func NewWriter(w io.Writer, mtime time.Time) *Writer {
	return &Writer{w: w, mtime: mtime.Unix(), ino: 1}
}

// Header describes one entry.
type Header struct {
	Name     string // relative path, no leading slash
	Mode     uint32 // type bits | permission bits
	UID, GID uint32
	Size     int64
	DevMajor uint32 // for device nodes
	DevMinor uint32
}

// WriteHeader writes h; the caller then writes exactly h.Size bytes with Write.
func (w *Writer) WriteHeader(h Header) error {
	if w.err != nil {
		return w.err
	}
	if h.Name == "" || strings.HasPrefix(h.Name, "/") || strings.Contains(h.Name, "\x00") {
		return fmt.Errorf("cpio: bad entry name %q", h.Name)
	}
	if h.Size > 0xffffffff {
		return fmt.Errorf("cpio: %s: %d bytes is over the newc limit of 4 GiB", h.Name, h.Size)
	}
	nlink := uint32(1)
	if h.Mode&0o170000 == typeDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		w.ino, h.Mode, h.UID, h.GID, nlink, uint32(w.mtime), uint32(h.Size),
		0, 0, h.DevMajor, h.DevMinor, len(h.Name)+1, 0)
	w.ino++
	if err := w.write([]byte(hdr + h.Name + "\x00")); err != nil {
		return err
	}
	return w.pad()
}

// Write writes entry data.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if err := w.write(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// EndData pads the archive after an entry's data.
func (w *Writer) EndData() error { return w.pad() }

// AddDevice adds a device node, which an unprivileged tree cannot hold.
func (w *Writer) AddDevice(name string, perm uint32, kind uint32, major, minor uint32) error {
	return w.WriteHeader(Header{Name: name, Mode: kind | perm&0o7777, DevMajor: major, DevMinor: minor})
}

// AddTree adds every entry under root in lexical order, skipping paths for which
// skip returns true, and returns the size of each regular file by relative path.
func (w *Writer) AddTree(root string, skip func(rel string) bool) (map[string]int64, error) {
	sizes := map[string]int64{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if skip != nil && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		h := Header{Name: rel, Mode: uint32(info.Mode().Perm())}
		if info.Mode()&fs.ModeSetuid != 0 {
			h.Mode |= 0o4000
		}
		if info.Mode()&fs.ModeSetgid != 0 {
			h.Mode |= 0o2000
		}
		if info.Mode()&fs.ModeSticky != 0 {
			h.Mode |= 0o1000
		}
		h.UID, h.GID = owner(info)
		switch {
		case info.IsDir():
			h.Mode |= typeDir
			return w.WriteHeader(h)
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			h.Mode |= typeSymlink
			h.Size = int64(len(target))
			if err := w.WriteHeader(h); err != nil {
				return err
			}
			if _, err := w.Write([]byte(target)); err != nil {
				return err
			}
			return w.EndData()
		case info.Mode().IsRegular():
			h.Mode |= typeRegular
			h.Size = info.Size()
			sizes[rel] = info.Size()
			if err := w.WriteHeader(h); err != nil {
				return err
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			n, err := io.Copy(w, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("copy %s: %w", rel, err)
			}
			if n != h.Size {
				return fmt.Errorf("%s changed size while being packed", rel)
			}
			return w.EndData()
		default:
			return fmt.Errorf("%s: unsupported file type %v (device nodes, sockets and fifos are made at boot)", rel, info.Mode().Type())
		}
	})
	return sizes, err
}

// Close writes the trailer entry.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	w.ino = 0
	if err := w.WriteHeader(Header{Name: trailer}); err != nil {
		return err
	}
	return w.err
}

func (w *Writer) write(p []byte) error {
	n, err := w.w.Write(p)
	w.off += int64(n)
	if err == nil && n != len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = fmt.Errorf("cpio: %w", err)
	}
	return w.err
}

func (w *Writer) pad() error {
	if r := w.off % 4; r != 0 {
		return w.write(make([]byte, 4-r))
	}
	return nil
}
