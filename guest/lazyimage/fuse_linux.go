package lazyimage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Mount exposes im as the single file mountpoint/name through FUSE, for
// systemd-nspawn --image (through a loop device) to boot. Unmount with the
// returned server's Unmount.
func Mount(im *Image, mountpoint, name string) (*fuse.Server, error) {
	root := &dirNode{im: im, name: name}
	timeout := time.Second
	srv, err := fs.Mount(mountpoint, root, &fs.Options{
		MountOptions: fuse.MountOptions{
			FsName:        "hyperos-lazy",
			Name:          "hyperos",
			DisableXAttrs: true,
			MaxWrite:      1 << 20,
			// As root (in the guest) mount(2) directly; fusermount is the fallback.
			DirectMount: true,
		},
		AttrTimeout:  &timeout,
		EntryTimeout: &timeout,
	})
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	return srv, nil
}

type dirNode struct {
	fs.Inode
	im   *Image
	name string
}

var _ fs.NodeOnAdder = (*dirNode)(nil)

func (d *dirNode) OnAdd(ctx context.Context) {
	child := d.NewPersistentInode(ctx, &fileNode{im: d.im}, fs.StableAttr{Mode: syscall.S_IFREG, Ino: 2})
	d.AddChild(d.name, child, false)
}

type fileNode struct {
	fs.Inode
	im *Image
}

var (
	_ fs.NodeGetattrer = (*fileNode)(nil)
	_ fs.NodeSetattrer = (*fileNode)(nil)
	_ fs.NodeOpener    = (*fileNode)(nil)
	_ fs.NodeReader    = (*fileNode)(nil)
	_ fs.NodeWriter    = (*fileNode)(nil)
	_ fs.NodeFsyncer   = (*fileNode)(nil)
	_ fs.NodeFlusher   = (*fileNode)(nil)
)

func (f *fileNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o600
	out.Size = uint64(f.im.Size())
	out.Blocks = (out.Size + 511) / 512
	return 0
}

// Setattr accepts only what does not change the image's size: the file is a disk.
func (f *fileNode) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok && int64(size) != f.im.Size() {
		return syscall.EPERM
	}
	return f.Getattr(ctx, fh, out)
}

func (f *fileNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, 0, 0
}

func (f *fileNode) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := f.im.ReadAt(ctx, dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, errno(err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (f *fileNode) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	n, err := f.im.WriteAt(ctx, data, off)
	if err != nil {
		return uint32(n), errno(err)
	}
	return uint32(n), 0
}

func (f *fileNode) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	return errno(f.im.Sync())
}

// Flush (close of a descriptor) syncs too: a container stopping must not leave
// acknowledged writes only in memory.
func (f *fileNode) Flush(ctx context.Context, fh fs.FileHandle) syscall.Errno {
	return errno(f.im.Sync())
}

func errno(err error) syscall.Errno {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return syscall.EINTR
	default:
		return syscall.EIO
	}
}
