// Package share publishes local files as Hyperdrives and fetches them
// back: the logic behind `hyperos share` and `hyperos get`.
//
// Publishing writes a file (as /<name>) or a directory tree into a drive
// whose key pair the corestore derives from the shared path, so sharing
// the same path again updates the same drive (same link, new version):
// unchanged files are left alone, changed ones rewritten, vanished ones
// deleted, all in one db append.
//
// Fetching reads a drive through hyper/core's sparse replicas, so every
// byte written out has been verified against the writer's signature, and
// every verified block stays in the corestore: a fetch that is stopped
// and started again asks the network only for the blocks it still lacks.
// Files are written beside their final name and renamed into place, so a
// destination never holds a half-written file under its real name. Paths
// from the drive are untrusted input: nothing may land outside the
// destination, neither through the names nor through symlinks.
package share

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hyperos/hyperos/hyper/blobs"
	"github.com/hyperos/hyperos/hyper/core"
	"github.com/hyperos/hyperos/hyper/corestore"
	"github.com/hyperos/hyperos/hyper/drive"
	"github.com/hyperos/hyperos/hyper/link"
	"github.com/hyperos/hyperos/hyper/peer"
)

// DriveNamespace is the corestore namespace of the drive that shares the
// local path abs: one key pair per shared path, derived from the store's
// primary key, so no per-path secret has to be kept.
func DriveNamespace(abs string) [32]byte {
	return corestore.Namespace(corestore.DefaultNamespace, "hyperos/share\x00"+abs)
}

// Drive is a Hyperdrive whose cores live in a corestore.
type Drive struct {
	*drive.Drive
	DB, Blobs *corestore.Core
}

// Key is the drive's key (its db core's).
func (d *Drive) Key() link.Key { return link.Key(d.DB.Key()) }

// OpenWritable opens (creating on first use) the writable drive of
// namespace ns, laid out as Node's `new Hyperdrive(store.namespace(…))`:
// a db core named "db" and a blobs core signed by the same key pair under
// the manifest Hyperdrive derives.
func OpenWritable(st *corestore.Store, ns [32]byte) (*Drive, error) {
	priv := st.KeyPair(ns, "db")
	db, err := st.CreateWith(priv, nil)
	if err != nil {
		return nil, fmt.Errorf("share: open drive db: %w", err)
	}
	bc, err := st.CreateWith(priv, drive.BlobsManifest(db.Manifest(), db.Key()))
	if err != nil {
		return nil, fmt.Errorf("share: open drive blobs: %w", err)
	}
	return &Drive{Drive: drive.New(db, bc, nil), DB: db, Blobs: bc}, nil
}

// OpenRemote opens the drive with key as a sparse replica and brings its
// db up to the latest version the connected peers announce: it waits for
// each connection's first sync for the db (skipping connections that end
// or do not hold it), then for the longest announced length. With no
// usable peer it falls back to what the store already holds, so an
// earlier fetch can be read offline.
func OpenRemote(ctx context.Context, st *corestore.Store, key link.Key, conns []*peer.Conn) (*Drive, error) {
	db, err := st.Get(key)
	if err != nil {
		return nil, fmt.Errorf("share: open drive db: %w", err)
	}
	target, errs := remoteLength(ctx, db, conns)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("share: waiting for peers: %w", err)
	}
	if target == 0 {
		return nil, fmt.Errorf("share: no peer has drive %s: %w", key, errors.Join(errs...))
	}
	// Getting the last block waits for the upgrade to target and fetches
	// the bee's root, which any lookup needs first.
	if _, err := db.Get(ctx, target-1); err != nil {
		return nil, fmt.Errorf("share: update drive %s to version %d: %w", key, target, err)
	}
	bk, err := drive.BlobsKeyOf(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("share: drive %s: %w", key, err)
	}
	bc, err := st.Get(bk)
	if err != nil {
		return nil, fmt.Errorf("share: open drive blobs: %w", err)
	}
	// The blobs' signed length too, so that reads (which seek by byte
	// offset in the signed tree) see every blob the db names.
	if n, _ := remoteLength(ctx, bc, conns); n > bc.Length() {
		if err := waitLength(ctx, bc, n); err != nil {
			return nil, fmt.Errorf("share: update drive %s blobs to length %d: %w", key, n, err)
		}
	}
	return &Drive{Drive: drive.New(db, bc, nil), DB: db, Blobs: bc}, nil
}

// remoteLength waits for each connection's first sync for c (skipping
// connections that end or do not hold it) and returns the longest length
// announced, at least c's own.
func remoteLength(ctx context.Context, c *corestore.Core, conns []*peer.Conn) (uint64, []error) {
	target := c.Length()
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	for _, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := conn.Synced(ctx, c)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", conn.RemoteAddr(), err))
				return
			}
			target = max(target, n)
		}()
	}
	wg.Wait()
	return target, errs
}

// waitLength waits until c's signed length reaches n; the replicator asks
// for the upgrade as soon as a peer announces the longer length.
func waitLength(ctx context.Context, c *corestore.Core, n uint64) error {
	changed := make(chan struct{}, 1)
	c.OnEvent(func(ev core.Event) {
		if ev.Appended {
			select {
			case changed <- struct{}{}:
			default:
			}
		}
	})
	for c.Length() < n {
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// PublishResult says what Publish changed.
type PublishResult struct {
	// Link names what was shared: the file for a file, the root for a
	// directory.
	Link link.Link
	// Version is the drive version after publishing.
	Version uint64
	// Added, Updated and Deleted count entries written or removed.
	Added, Updated, Deleted int
}

// Publish makes d mirror src: a regular file becomes /<name>; a directory
// becomes the whole drive (regular files with their executable bit, and
// symlinks as they are; other file types are skipped). Entries of d that
// no longer exist in src are deleted. Nothing is written when nothing
// changed, so the version only moves when the content does.
func Publish(ctx context.Context, d *Drive, src string) (*PublishResult, error) {
	// Share what a symlinked path points to (a walk would stop at the
	// link); symlinks inside the tree stay symlinks.
	src, err := filepath.EvalSymlinks(src)
	if err != nil {
		return nil, fmt.Errorf("share: %w", err)
	}
	fi, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("share: %w", err)
	}
	want := map[string]localEntry{}
	rootPath := "/"
	switch {
	case fi.Mode().IsRegular():
		name, err := drive.NormalizePath(filepath.Base(src))
		if err != nil {
			return nil, fmt.Errorf("share: %s: %w", src, err)
		}
		want[name] = localEntry{path: src, info: fi}
		rootPath = name
	case fi.IsDir():
		if err := walk(src, want); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("share: %s is neither a regular file nor a directory", src)
	}
	have := map[string]drive.Entry{}
	if err := d.ListFunc(ctx, "/", true, func(e drive.Entry) error {
		have[e.Key] = e
		return nil
	}); err != nil {
		return nil, fmt.Errorf("share: list drive: %w", err)
	}
	res := &PublishResult{}
	b, err := d.Batch()
	if err != nil {
		return nil, fmt.Errorf("share: %w", err)
	}
	defer b.Close()
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		le := want[name]
		old, existed := have[name]
		same, err := unchanged(ctx, d, le, old, existed)
		if err != nil {
			return nil, err
		}
		if same {
			continue
		}
		if existed {
			res.Updated++
		} else {
			res.Added++
		}
		if le.link != "" {
			if err := b.Symlink(ctx, name, le.link, nil); err != nil {
				return nil, fmt.Errorf("share: %s: %w", le.path, err)
			}
			continue
		}
		if err := putFile(ctx, b, name, le); err != nil {
			return nil, err
		}
	}
	for name := range have {
		if _, ok := want[name]; !ok {
			if err := b.Del(ctx, name); err != nil {
				return nil, fmt.Errorf("share: delete %s: %w", name, err)
			}
			res.Deleted++
		}
	}
	if err := b.Flush(); err != nil {
		return nil, fmt.Errorf("share: write drive: %w", err)
	}
	res.Version = d.Version()
	l, err := link.New(d.Key(), rootPath)
	if err != nil {
		return nil, fmt.Errorf("share: %w", err)
	}
	res.Link = l
	return res, nil
}

// localEntry is a file or symlink to publish.
type localEntry struct {
	path string
	info fs.FileInfo
	link string // symlink target, "" for files
}

func (le localEntry) executable() bool { return le.info.Mode().Perm()&0o111 != 0 }

// walk collects the regular files and symlinks below root.
func walk(root string, out map[string]localEntry) error {
	return filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("share: %w", err)
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return fmt.Errorf("share: %w", err)
		}
		if de.IsDir() {
			return nil
		}
		name, err := drive.NormalizePath("/" + filepath.ToSlash(rel))
		if err != nil {
			return fmt.Errorf("share: %s: %w", p, err)
		}
		info, err := de.Info()
		if err != nil {
			return fmt.Errorf("share: %w", err)
		}
		switch {
		case info.Mode().IsRegular():
			out[name] = localEntry{path: p, info: info}
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return fmt.Errorf("share: %w", err)
			}
			out[name] = localEntry{path: p, info: info, link: filepath.ToSlash(target)}
		default:
			slog.Warn("share: skipping special file", "path", p, "mode", info.Mode().String())
		}
		return nil
	})
}

// unchanged reports whether the drive's entry already holds le: the same
// symlink target, or the same executable bit and bytes. Contents are
// compared byte for byte (against the local blobs core), not by size and
// time, so a re-share never misses an edit.
func unchanged(ctx context.Context, d *Drive, le localEntry, old drive.Entry, existed bool) (bool, error) {
	if !existed {
		return false, nil
	}
	if le.link != "" || old.Value.IsSymlink() {
		return le.link == old.Value.Linkname, nil
	}
	if old.Value.Blob == nil || old.Value.Blob.ByteLength != uint64(le.info.Size()) || old.Value.Executable != le.executable() {
		return false, nil
	}
	f, err := os.Open(le.path)
	if err != nil {
		return false, fmt.Errorf("share: %w", err)
	}
	defer f.Close()
	r, err := d.Open(ctx, old.Key)
	if err != nil {
		return false, fmt.Errorf("share: read %s from drive: %w", old.Key, err)
	}
	return sameContent(f, r)
}

func sameContent(a, b io.Reader) (bool, error) {
	const chunk = 1 << 16
	ba, bb := make([]byte, chunk), make([]byte, chunk)
	for {
		na, erra := io.ReadFull(a, ba)
		nb, errb := io.ReadFull(b, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		aEOF := erra == io.EOF || erra == io.ErrUnexpectedEOF
		bEOF := errb == io.EOF || errb == io.ErrUnexpectedEOF
		if erra != nil && !aEOF {
			return false, fmt.Errorf("share: compare: %w", erra)
		}
		if errb != nil && !bEOF {
			return false, fmt.Errorf("share: compare: %w", errb)
		}
		if aEOF || bEOF {
			return aEOF == bEOF, nil
		}
	}
}

func putFile(ctx context.Context, b *drive.Batch, name string, le localEntry) error {
	f, err := os.Open(le.path)
	if err != nil {
		return fmt.Errorf("share: %w", err)
	}
	defer f.Close()
	if err := b.PutReader(ctx, name, f, &drive.PutOptions{Executable: le.executable()}); err != nil {
		return fmt.Errorf("share: put %s: %w", le.path, err)
	}
	return nil
}

// Progress is a snapshot of a fetch.
type Progress struct {
	// Files and Bytes are the totals to fetch; FilesDone and BytesDone
	// what is written so far.
	Files, FilesDone int
	Bytes, BytesDone uint64
	// Path is the drive path being written.
	Path string
}

// DefaultReadAhead is how many blocks a fetch through Get keeps requested
// ahead of the one it writes. Measured on loopback (256 MB, Go to Go): 1
// block gives about 37 MB/s (a round trip per block), 2 to 8 about 80-90
// MB/s; more did not help, as the replicator verifies the blocks one at a
// time on the connection's reader. A fetch given connections
// (FetchOptions.Conns) uses peer.Download instead, which does not wait on
// Get at all.
const DefaultReadAhead = 8

// FetchOptions configure Fetch.
type FetchOptions struct {
	// Progress, if set, is called as bytes are written (at most every
	// 100 ms, and once at the end), from one goroutine at a time.
	Progress func(Progress)
	// ReadAhead is how many blocks of a file are requested at once;
	// 0 means DefaultReadAhead.
	ReadAhead int
	// Conns, if given, are the connections to fetch whole files over
	// with peer.Download (many requests in flight, no waiting Gets),
	// which is much faster than reading through the replicator. Without
	// them, blocks come through the replicator, ReadAhead at a time.
	Conns []*peer.Conn
}

// FetchResult reports what Fetch wrote.
type FetchResult struct {
	// Dest is the file or directory written.
	Dest    string
	Files   int
	Bytes   uint64
	Version uint64
	// Skipped lists symlinks not written because they would point
	// outside Dest (or the platform refused them), with the reason.
	Skipped []string
}

// ErrUnsafePath is returned for drive paths that cannot be written under
// the destination.
var ErrUnsafePath = errors.New("share: unsafe path in drive")

// Fetch writes what l names in d — one file, or every entry below a
// folder — to dest. A file link whose dest is an existing directory lands
// inside it. Files get mode 0644, or 0755 when executable; symlinks are
// recreated when they stay inside dest. Existing files are replaced.
func Fetch(ctx context.Context, d *Drive, l link.Link, dest string, opts *FetchOptions) (*FetchResult, error) {
	if opts == nil {
		opts = &FetchOptions{}
	}
	var entries []drive.Entry
	folder := l.Path
	single := false
	if l.Path != "/" {
		e, err := d.Entry(ctx, l.Path)
		if err != nil {
			return nil, fmt.Errorf("share: %s: %w", l, err)
		}
		if e != nil && e.Value.IsSymlink() {
			// A link to one symlink fetches what it points to.
			if e, err = d.Resolve(ctx, l.Path); err != nil {
				return nil, fmt.Errorf("share: %s: %w", l, err)
			}
			if e == nil {
				return nil, fmt.Errorf("share: %s: dangling symlink: %w", l, drive.ErrNotFound)
			}
		}
		if e != nil {
			entries = []drive.Entry{*e}
			folder = path.Dir(l.Path)
			single = true
		}
	}
	if !single {
		if err := d.ListFunc(ctx, folder, true, func(e drive.Entry) error {
			entries = append(entries, e)
			return nil
		}); err != nil {
			return nil, fmt.Errorf("share: list %s: %w", l, err)
		}
		if len(entries) == 0 {
			return nil, fmt.Errorf("share: %s: %w", l, drive.ErrNotFound)
		}
	}
	res := &FetchResult{Dest: dest, Version: d.Version()}
	pr := &progress{fn: opts.Progress}
	for _, e := range entries {
		if e.Value.Blob != nil && !e.Value.IsSymlink() {
			pr.p.Files++
			pr.p.Bytes += e.Value.Blob.ByteLength
		}
	}
	if single {
		// One file: dest is its new name, or the directory to put it in.
		root, target := filepath.Dir(dest), dest
		if fi, err := os.Stat(dest); err == nil && fi.IsDir() {
			root = dest
			t, err := safeJoin(dest, path.Base(l.Path))
			if err != nil {
				return nil, fmt.Errorf("%w: %q: %v", ErrUnsafePath, l.Path, err)
			}
			target = t
		}
		if err := os.MkdirAll(root, 0o755); err != nil {
			return nil, fmt.Errorf("share: %w", err)
		}
		if err := writeFile(ctx, d, entries[0], root, target, opts, pr); err != nil {
			return nil, err
		}
		res.Dest, res.Files, res.Bytes = target, 1, blobSize(entries[0])
		pr.flush(true)
		return res, nil
	}
	root := dest
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("share: %w", err)
	}
	var links []drive.Entry
	for _, e := range entries {
		rel := strings.TrimPrefix(strings.TrimPrefix(e.Key, folder), "/")
		target, err := safeJoin(root, rel)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %v", ErrUnsafePath, e.Key, err)
		}
		if e.Value.IsSymlink() {
			links = append(links, e)
			continue
		}
		if err := writeFile(ctx, d, e, root, target, opts, pr); err != nil {
			return nil, err
		}
		res.Files++
		res.Bytes += blobSize(e)
	}
	// Symlinks last, so that no file is ever written through one.
	for _, e := range links {
		rel := strings.TrimPrefix(strings.TrimPrefix(e.Key, folder), "/")
		if err := writeSymlink(root, folder, rel, e); err != nil {
			slog.Warn("share: symlink not written", "path", e.Key, "target", e.Value.Linkname, "err", err)
			res.Skipped = append(res.Skipped, fmt.Sprintf("%s -> %s: %v", e.Key, e.Value.Linkname, err))
		}
	}
	pr.flush(true)
	return res, nil
}

func blobSize(e drive.Entry) uint64 {
	if e.Value.Blob == nil {
		return 0
	}
	return e.Value.Blob.ByteLength
}

// safeJoin joins the slash-separated drive path rel under root, refusing
// anything that could leave root: empty, "." or ".." segments, NUL,
// backslashes and drive letters (path syntax on Windows), and parents that
// exist on disk as anything but real directories (a symlink planted by
// an earlier fetch or by someone else).
func safeJoin(root, rel string) (string, error) {
	if rel == "" {
		return "", errors.New("empty path")
	}
	segs := strings.Split(rel, "/")
	for _, s := range segs {
		if s == "" || s == "." || s == ".." {
			return "", fmt.Errorf("segment %q", s)
		}
		if strings.ContainsAny(s, "\x00\\") || (runtime.GOOS == "windows" && strings.ContainsAny(s, ":*?\"<>|")) {
			return "", fmt.Errorf("segment %q has characters this system cannot take", s)
		}
	}
	p := root
	for i, s := range segs {
		p = filepath.Join(p, s)
		if i == len(segs)-1 {
			break
		}
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		if !fi.IsDir() {
			return "", fmt.Errorf("%s exists and is not a directory", p)
		}
	}
	if !filepath.IsLocal(strings.TrimPrefix(p, root+string(filepath.Separator))) {
		return "", fmt.Errorf("%s is not inside %s", p, root)
	}
	return p, nil
}

// mkdirs creates the directories between root and dir, checking that none
// of them is (or becomes) a symlink.
func mkdirs(root, dir string) error {
	rel, err := filepath.Rel(root, dir)
	if err != nil || !filepath.IsLocal(rel) && rel != "." {
		return fmt.Errorf("%w: %s outside %s", ErrUnsafePath, dir, root)
	}
	p := root
	if rel == "." {
		return nil
	}
	for _, s := range strings.Split(rel, string(filepath.Separator)) {
		p = filepath.Join(p, s)
		err := os.Mkdir(p, 0o755)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("share: %w", err)
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("share: %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("%w: %s is not a directory", ErrUnsafePath, p)
		}
	}
	return nil
}

// writeFile fetches e's content into a temporary file beside target and
// renames it into place.
func writeFile(ctx context.Context, d *Drive, e drive.Entry, root, target string, opts *FetchOptions, pr *progress) error {
	if err := mkdirs(root, filepath.Dir(target)); err != nil {
		return err
	}
	if fi, err := os.Lstat(target); err == nil && fi.IsDir() {
		return fmt.Errorf("%w: %s is a directory", ErrUnsafePath, target)
	}
	mode := os.FileMode(0o644)
	if e.Value.Executable {
		mode = 0o755
	}
	tmp, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".hyperos-*")
	if err != nil {
		return fmt.Errorf("share: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	pr.setPath(e.Key)
	if e.Value.Blob != nil {
		if err := copyBlob(ctx, d, e, tmp, opts, pr); err != nil {
			return fmt.Errorf("share: fetch %s: %w", e.Key, err)
		}
	}
	if err := tmp.Chmod(mode); err != nil && runtime.GOOS != "windows" {
		return fmt.Errorf("share: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("share: write %s: %w", target, err)
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return fmt.Errorf("share: %w", err)
	}
	ok = true
	pr.fileDone()
	return nil
}

// copyBlob writes a blob to w. Plain blobs are fetched with up to
// readAhead blocks in flight, which is what makes a sequential download
// fast: one block at a time would cost a round trip per 64 KiB. Block-map
// blobs go through the drive's reader.
func copyBlob(ctx context.Context, d *Drive, e drive.Entry, w io.Writer, opts *FetchOptions, pr *progress) error {
	id := *e.Value.Blob
	if id.BlockMap {
		r, err := d.Open(ctx, e.Key)
		if err != nil {
			return err
		}
		n, err := io.Copy(w, io.LimitReader(r, int64(id.ByteLength)))
		pr.add(uint64(n))
		if err == nil && uint64(n) != id.ByteLength {
			err = fmt.Errorf("blob is %d bytes, entry says %d", n, id.ByteLength)
		}
		return err
	}
	if len(opts.Conns) > 0 {
		return downloadBlob(ctx, d, id, w, opts.Conns, pr)
	}
	readAhead := opts.ReadAhead
	if readAhead <= 0 {
		readAhead = DefaultReadAhead
	}
	return pipelineBlocks(ctx, d.Blobs, id, readAhead, func(b []byte) error {
		if _, err := w.Write(b); err != nil {
			return err
		}
		pr.add(uint64(len(b)))
		return nil
	})
}

// segmentBlocks is how many blocks downloadBlob fetches before writing
// them out (16 MiB of 64 KiB blocks): the next segment downloads while one
// is written.
const segmentBlocks = 256

// downloadBlob fetches a plain blob segment by segment with peer.Download
// and writes each segment once it is complete, from the verified values
// Download hands over (reading them back would hash every block again).
func downloadBlob(ctx context.Context, d *Drive, id blobs.ID, w io.Writer, conns []*peer.Conn, pr *progress) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type segment struct {
		blocks [][]byte
		err    error
	}
	ready := make(chan segment, 1)
	end := id.BlockOffset + id.BlockLength
	go func() {
		for s := id.BlockOffset; s < end; s += segmentBlocks {
			e := min(s+segmentBlocks, end)
			seg := segment{blocks: make([][]byte, e-s)}
			seg.err = peer.Download(ctx, d.Blobs, conns, s, e, &peer.DownloadOptions{
				OnBlock: func(i uint64, value []byte) {
					seg.blocks[i-s] = value // distinct indexes: no two goroutines share a slot
					pr.add(uint64(len(value)))
				},
			})
			select {
			case ready <- seg:
			case <-ctx.Done():
				return
			}
			if seg.err != nil {
				return
			}
		}
	}()
	var total uint64
	for s := id.BlockOffset; s < end; s += segmentBlocks {
		var seg segment
		select {
		case seg = <-ready:
		case <-ctx.Done():
			return ctx.Err()
		}
		if seg.err != nil {
			return seg.err
		}
		for _, b := range seg.blocks {
			if total += uint64(len(b)); total > id.ByteLength {
				return fmt.Errorf("blob blocks hold more than the entry's %d bytes", id.ByteLength)
			}
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
	}
	if total != id.ByteLength {
		return fmt.Errorf("blob is %d bytes, entry says %d", total, id.ByteLength)
	}
	return nil
}

// pipelineBlocks calls fn with blocks id.BlockOffset.. in order, keeping up
// to window Gets running ahead, and checks the blob's byte length.
func pipelineBlocks(ctx context.Context, bc blobs.Core, id blobs.ID, window int, fn func([]byte) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		b   []byte
		err error
	}
	n := id.BlockLength
	slots := make([]chan result, window)
	start := func(i uint64) {
		ch := make(chan result, 1)
		slots[i%uint64(window)] = ch
		go func() {
			b, err := bc.Get(ctx, id.BlockOffset+i)
			ch <- result{b, err}
		}()
	}
	for i := uint64(0); i < n && i < uint64(window); i++ {
		start(i)
	}
	var total uint64
	for i := uint64(0); i < n; i++ {
		r := <-slots[i%uint64(window)]
		if r.err != nil {
			return fmt.Errorf("block %d: %w", id.BlockOffset+i, r.err)
		}
		if i+uint64(window) < n {
			start(i + uint64(window))
		}
		b := r.b
		if total+uint64(len(b)) > id.ByteLength {
			return fmt.Errorf("blob blocks hold more than the entry's %d bytes", id.ByteLength)
		}
		total += uint64(len(b))
		if err := fn(b); err != nil {
			return err
		}
	}
	if total != id.ByteLength {
		return fmt.Errorf("blob is %d bytes, entry says %d", total, id.ByteLength)
	}
	return nil
}

// writeSymlink recreates a drive symlink under root if its target stays
// inside what is being fetched. A drive-absolute target ("/a/b") is made
// relative to the link, so the tree stays self-contained; a relative one
// is kept if it resolves inside.
func writeSymlink(root, folder, rel string, e drive.Entry) error {
	p, err := safeJoin(root, rel)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnsafePath, err)
	}
	target := e.Value.Linkname
	linkDir := path.Dir(e.Key)
	abs := target
	if !strings.HasPrefix(target, "/") {
		abs = path.Join(linkDir, target)
	}
	abs = path.Clean(abs)
	inside := abs == folder || strings.HasPrefix(abs, strings.TrimSuffix(folder, "/")+"/")
	if !inside || strings.ContainsAny(target, "\x00\\") {
		return fmt.Errorf("%w: target %q leaves the fetched folder", ErrUnsafePath, target)
	}
	relTarget, err := filepath.Rel(filepath.FromSlash(linkDir), filepath.FromSlash(abs))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnsafePath, err)
	}
	if err := mkdirs(root, filepath.Dir(p)); err != nil {
		return err
	}
	if fi, err := os.Lstat(p); err == nil {
		if fi.IsDir() {
			return fmt.Errorf("%w: %s is a directory", ErrUnsafePath, p)
		}
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("share: %w", err)
		}
	}
	if err := os.Symlink(relTarget, p); err != nil {
		return fmt.Errorf("share: %w", err)
	}
	return nil
}

// progress throttles Progress callbacks.
type progress struct {
	fn   func(Progress)
	mu   sync.Mutex
	p    Progress
	last time.Time
}

func (pr *progress) add(n uint64) {
	pr.mu.Lock()
	pr.p.BytesDone += n
	pr.mu.Unlock()
	pr.flush(false)
}

func (pr *progress) setPath(p string) {
	pr.mu.Lock()
	pr.p.Path = p
	pr.mu.Unlock()
}

func (pr *progress) fileDone() {
	pr.mu.Lock()
	pr.p.FilesDone++
	pr.mu.Unlock()
	pr.flush(false)
}

func (pr *progress) flush(force bool) {
	if pr.fn == nil {
		return
	}
	pr.mu.Lock()
	now := time.Now()
	if !force && now.Sub(pr.last) < 100*time.Millisecond {
		pr.mu.Unlock()
		return
	}
	pr.last = now
	p := pr.p
	pr.mu.Unlock()
	pr.fn(p)
}
