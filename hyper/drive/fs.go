package drive

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/hyperos/hyperos/hyper/blobs"
)

// FS presents the drive (at this Drive's version) as an io/fs file system,
// so that code written against fs.FS (archive/tar, http.FileServer, image
// tooling) can read a drive lazily: file contents are fetched block by
// block as they are read.
//
// A drive has no directory entries; a directory is any path with entries
// below it. Open and Stat follow symlinks (at most 16 hops, resolved as
// Hyperdrive resolves them); Lstat and ReadLink do not. File modes are
// 0o644, or 0o755 for executable entries, and times are zero: Hyperdrive
// records neither. ctx bounds every block fetch made through the FS.
func (d *Drive) FS(ctx context.Context) fs.FS {
	return &driveFS{d: d, ctx: ctx}
}

type driveFS struct {
	d   *Drive
	ctx context.Context
}

var (
	_ fs.ReadDirFS  = (*driveFS)(nil)
	_ fs.StatFS     = (*driveFS)(nil)
	_ fs.ReadLinkFS = (*driveFS)(nil)
)

func toDrivePath(name string) string {
	if name == "." {
		return "/"
	}
	return "/" + name
}

// lookup finds what name is: an entry (after following links when
// follow is set), a directory, or nothing.
func (f *driveFS) lookup(op, name string, follow bool) (*Entry, bool, error) {
	if !fs.ValidPath(name) {
		return nil, false, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if strings.Contains(name, `\`) {
		// Hyperdrive splits paths at backslashes too, so no drive path
		// contains one; without this check "a\b" would alias "a/b".
		return nil, false, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	p := toDrivePath(name)
	for range maxSymlinkHops {
		if p == "/" {
			return nil, true, nil
		}
		e, err := f.d.Entry(f.ctx, p)
		if err != nil {
			return nil, false, &fs.PathError{Op: op, Path: name, Err: err}
		}
		if e != nil && (!follow || !e.Value.IsSymlink()) {
			return e, false, nil
		}
		if e == nil {
			isDir, err := f.isDir(p)
			if err != nil {
				return nil, false, &fs.PathError{Op: op, Path: name, Err: err}
			}
			if !isDir {
				return nil, false, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
			}
			return nil, true, nil
		}
		if p, err = resolvePath(e.Key, e.Value.Linkname); err != nil {
			return nil, false, &fs.PathError{Op: op, Path: name, Err: err}
		}
	}
	return nil, false, &fs.PathError{Op: op, Path: name, Err: ErrRecursiveSymlink}
}

func (f *driveFS) isDir(p string) (bool, error) {
	found := false
	err := f.d.shallow(f.ctx, strings.TrimSuffix(p, "/"), func(string, *Entry) error {
		found = true
		return errStopWalk
	})
	if errors.Is(err, errStopWalk) {
		err = nil
	}
	return found, err
}

var errStopWalk = errors.New("stop")

func (f *driveFS) Open(name string) (fs.File, error) {
	e, dir, err := f.lookup("open", name, true)
	if err != nil {
		return nil, err
	}
	if dir {
		return &dirFile{fs: f, name: name}, nil
	}
	id := blobs.ID{}
	if e.Value.Blob != nil {
		id = *e.Value.Blob
	}
	info, err := f.info(path.Base(name), e)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &file{info: info, r: f.d.blobs.NewReader(f.ctx, id)}, nil
}

// info describes an entry; a block-map blob's size takes reading its map.
func (f *driveFS) info(name string, e *Entry) (fileInfo, error) {
	fi := fileInfo{name: name, entry: e}
	if e.Value.Blob != nil && !e.Value.IsSymlink() {
		n, err := f.d.blobs.ByteLength(f.ctx, *e.Value.Blob)
		if err != nil {
			return fi, err
		}
		fi.size = int64(n)
	}
	return fi, nil
}

func (f *driveFS) Stat(name string) (fs.FileInfo, error) {
	e, dir, err := f.lookup("stat", name, true)
	if err != nil {
		return nil, err
	}
	if dir {
		return dirInfo(path.Base(name)), nil
	}
	fi, err := f.info(path.Base(name), e)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	return fi, nil
}

func (f *driveFS) Lstat(name string) (fs.FileInfo, error) {
	e, dir, err := f.lookup("lstat", name, false)
	if err != nil {
		return nil, err
	}
	if dir {
		return dirInfo(path.Base(name)), nil
	}
	fi, err := f.info(path.Base(name), e)
	if err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: err}
	}
	return fi, nil
}

func (f *driveFS) ReadLink(name string) (string, error) {
	e, _, err := f.lookup("readlink", name, false)
	if err != nil {
		return "", err
	}
	if e == nil || !e.Value.IsSymlink() {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return e.Value.Linkname, nil
}

func (f *driveFS) ReadDir(name string) ([]fs.DirEntry, error) {
	_, dir, err := f.lookup("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if !dir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	return f.readDir(name)
}

// readDir lists a directory sorted by name, as io/fs requires. (Hyperdrive's
// readdir order is by key, which differs: "x.txt" sorts before "x/...".)
func (f *driveFS) readDir(name string) ([]fs.DirEntry, error) {
	folder := strings.TrimSuffix(toDrivePath(name), "/")
	var out []fs.DirEntry
	err := f.d.shallow(f.ctx, folder, func(n string, e *Entry) error {
		if e.Key == folder+"/"+n {
			fi, err := f.info(n, e)
			if err != nil {
				return err
			}
			out = append(out, fs.FileInfoToDirEntry(fi))
		} else {
			out = append(out, fs.FileInfoToDirEntry(dirInfo(n)))
		}
		return nil
	})
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// fileInfo describes an entry.
type fileInfo struct {
	name  string
	entry *Entry
	size  int64
}

func (i fileInfo) Name() string { return i.name }
func (i fileInfo) Size() int64  { return i.size }

func (i fileInfo) Mode() fs.FileMode {
	switch {
	case i.entry.Value.IsSymlink():
		return fs.ModeSymlink | 0o777
	case i.entry.Value.Executable:
		return 0o755
	default:
		return 0o644
	}
}

func (i fileInfo) ModTime() time.Time { return time.Time{} }
func (i fileInfo) IsDir() bool        { return false }

// Sys returns the *Entry.
func (i fileInfo) Sys() any { return i.entry }

type dirInfo string

func (d dirInfo) Name() string       { return string(d) }
func (d dirInfo) Size() int64        { return 0 }
func (d dirInfo) Mode() fs.FileMode  { return fs.ModeDir | 0o755 }
func (d dirInfo) ModTime() time.Time { return time.Time{} }
func (d dirInfo) IsDir() bool        { return true }
func (d dirInfo) Sys() any           { return nil }

// file is an open drive file; it also implements io.ReaderAt and
// io.Seeker.
type file struct {
	info fileInfo
	r    *blobs.Reader
}

func (f *file) Stat() (fs.FileInfo, error)                   { return f.info, nil }
func (f *file) Read(p []byte) (int, error)                   { return f.r.Read(p) }
func (f *file) ReadAt(p []byte, off int64) (int, error)      { return f.r.ReadAt(p, off) }
func (f *file) Seek(offset int64, whence int) (int64, error) { return f.r.Seek(offset, whence) }
func (f *file) Close() error                                 { return nil }

// dirFile is an open directory.
type dirFile struct {
	fs      *driveFS
	name    string
	entries []fs.DirEntry
	read    bool
	pos     int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return dirInfo(path.Base(d.name)), nil }

func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: errors.New("is a directory")}
}

func (d *dirFile) Close() error { return nil }

func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.read {
		es, err := d.fs.readDir(d.name)
		if err != nil {
			return nil, err
		}
		d.entries, d.read = es, true
	}
	rest := d.entries[d.pos:]
	if n <= 0 {
		d.pos = len(d.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(rest))
	d.pos += n
	return rest[:n], nil
}
