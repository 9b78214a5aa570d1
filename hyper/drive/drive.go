// Package drive implements Hyperdrive 13: a file system made of a Hyperbee
// of entries (the db core) and a Hyperblobs store of contents (the blobs
// core), readable by and written identically to Node's hyperdrive (npm
// "hyperdrive" 13.x).
//
// Each path is a key "files\x00" + normalised path in the db bee, whose
// value is the JSON entry {executable, linkname, blob, metadata}. Contents
// are blobs in the blobs core, whose key is derived from the db core's
// manifest (see BlobsKey). Writes produce the same db and blobs blocks as
// Node for the same operations, so a Node peer sees a Go-written drive
// exactly as if Node had written it.
package drive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/hyperos/hyperos/hyper/bee"
	"github.com/hyperos/hyperos/hyper/blobs"
)

// maxSymlinkHops is Hyperdrive's limit when following symlinks.
const maxSymlinkHops = 16

var (
	// ErrRecursiveSymlink is returned when following symlinks does not
	// end within 16 hops.
	ErrRecursiveSymlink = errors.New("drive: recursive symlink")
	// ErrNotFound is returned when opening a path with no entry.
	ErrNotFound = errors.New("drive: no such entry")
	// ErrReadOnly is returned by writes to a checkout.
	ErrReadOnly = errors.New("drive: read-only checkout")
)

// Options configure a Drive.
type Options struct {
	// BlockSize is the blob block size for writes; 0 means 64 KiB, as
	// Node uses.
	BlockSize int
	// ContentFeed is written into the header of a new drive. Only
	// compat drives (whose blobs key cannot be derived from a
	// manifest) need it; Hyperdrive 13 leaves it out otherwise.
	ContentFeed []byte
}

// Drive is a Hyperdrive over a db core and a blobs core.
type Drive struct {
	db    *bee.Bee
	view  *bee.Snapshot
	blobs *blobs.Blobs
	ro    bool
}

// New opens a drive. db is the db core and blobsCore the core whose key
// BlobsKey gives for it; the caller (a corestore) finds or creates both.
// A new drive's header is written on the first write.
func New(db bee.Core, blobsCore blobs.Core, opts *Options) *Drive {
	var o Options
	if opts != nil {
		o = *opts
	}
	b := bee.New(db, &bee.Options{Metadata: &bee.Metadata{ContentFeed: o.ContentFeed}})
	return &Drive{
		db:    b,
		view:  b.Checkout(0),
		blobs: blobs.New(blobsCore, &blobs.Options{BlockSize: o.BlockSize}),
	}
}

// Bee is the db bee.
func (d *Drive) Bee() *bee.Bee { return d.db }

// Blobs is the contents store.
func (d *Drive) Blobs() *blobs.Blobs { return d.blobs }

// Version is the db version (its length).
func (d *Drive) Version() uint64 { return d.view.Version() }

// Checkout returns a read-only view of the drive at a db version. Contents
// are read from the same blobs core, which only ever grows.
func (d *Drive) Checkout(version uint64) *Drive {
	if version == 0 {
		version = 1
	}
	return &Drive{db: d.db, view: d.db.Checkout(version), blobs: d.blobs, ro: true}
}

func entryFrom(e *bee.Entry) (*Entry, error) {
	if e == nil {
		return nil, nil
	}
	if !strings.HasPrefix(string(e.Key), filesPrefix) {
		return nil, fmt.Errorf("drive: key %q is outside the files sub", e.Key)
	}
	v, err := DecodeValue(e.Value)
	if err != nil {
		return nil, fmt.Errorf("drive: entry %d: %w", e.Seq, err)
	}
	return &Entry{Seq: e.Seq, Key: string(e.Key[len(filesPrefix):]), Value: v}, nil
}

// Entry returns the entry at name without following symlinks, or nil.
func (d *Drive) Entry(ctx context.Context, name string) (*Entry, error) {
	p, err := NormalizePath(name)
	if err != nil {
		return nil, err
	}
	e, err := d.view.Get(ctx, fileKey(p))
	if err != nil {
		return nil, fmt.Errorf("drive: entry %s: %w", p, err)
	}
	return entryFrom(e)
}

// Resolve returns the entry at name, following symlinks (at most 16), or
// nil if a path along the way has no entry. As in Hyperdrive, a relative
// link target is resolved against the link's own path, not its folder.
func (d *Drive) Resolve(ctx context.Context, name string) (*Entry, error) {
	for range maxSymlinkHops {
		e, err := d.Entry(ctx, name)
		if err != nil || e == nil || !e.Value.IsSymlink() {
			return e, err
		}
		if name, err = resolvePath(e.Key, e.Value.Linkname); err != nil {
			return nil, fmt.Errorf("drive: follow %s: %w", e.Key, err)
		}
	}
	return nil, ErrRecursiveSymlink
}

// Exists reports whether name has an entry.
func (d *Drive) Exists(ctx context.Context, name string) (bool, error) {
	e, err := d.Entry(ctx, name)
	return e != nil, err
}

// Get returns the whole content of the file at name, or nil if name has no
// entry or its entry has no blob (a symlink). Symlinks are not followed,
// as in Hyperdrive.
func (d *Drive) Get(ctx context.Context, name string) ([]byte, error) {
	e, err := d.Entry(ctx, name)
	if err != nil || e == nil || e.Value.Blob == nil {
		return nil, err
	}
	b, err := d.blobs.Get(ctx, *e.Value.Blob)
	if err != nil {
		return nil, fmt.Errorf("drive: read %s: %w", e.Key, err)
	}
	return b, nil
}

// Open returns a reader of the file at name that fetches only the blocks
// it reads. An entry without a blob reads as empty.
func (d *Drive) Open(ctx context.Context, name string) (*blobs.Reader, error) {
	e, err := d.Entry(ctx, name)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	id := blobs.ID{}
	if e.Value.Blob != nil {
		id = *e.Value.Blob
	}
	return d.blobs.NewReader(ctx, id), nil
}

// List returns the entries under folder in key order: all of them when
// recursive, otherwise the first entry under each immediate name (for a
// sub-folder that is some file inside it, as in Hyperdrive).
func (d *Drive) List(ctx context.Context, folder string, recursive bool) ([]Entry, error) {
	var out []Entry
	err := d.ListFunc(ctx, folder, recursive, func(e Entry) error {
		out = append(out, e)
		return nil
	})
	return out, err
}

// ListFunc is List without collecting: fn is called for each entry in
// order, and an error from fn stops the walk and is returned.
func (d *Drive) ListFunc(ctx context.Context, folder string, recursive bool, fn func(Entry) error) error {
	f, err := normalizeFolder(folder)
	if err != nil {
		return err
	}
	if !recursive {
		return d.shallow(ctx, f, func(_ string, e *Entry) error { return fn(*e) })
	}
	it := d.view.Range(bee.RangeOptions{GT: fileKey(f + "/"), LT: fileKey(f + "0")})
	for {
		be, err := it.Next(ctx)
		if err != nil {
			return fmt.Errorf("drive: list %s: %w", folder, err)
		}
		if be == nil {
			return nil
		}
		e, err := entryFrom(be)
		if err != nil {
			return err
		}
		if err := fn(*e); err != nil {
			return err
		}
	}
}

// Readdir returns the names directly inside folder, files and
// sub-folders alike, in key order. It keeps Hyperdrive's quirk that a file
// whose name is a sub-folder's name plus "0" is skipped.
func (d *Drive) Readdir(ctx context.Context, folder string) ([]string, error) {
	f, err := normalizeFolder(folder)
	if err != nil {
		return nil, err
	}
	var out []string
	err = d.shallow(ctx, f, func(name string, _ *Entry) error {
		out = append(out, name)
		return nil
	})
	return out, err
}

// shallow walks the immediate names of folder by repeated one-entry range
// queries that skip each sub-folder, as Hyperdrive's shallowReadStream.
func (d *Drive) shallow(ctx context.Context, folder string, yield func(string, *Entry) error) error {
	prev, prevName := "/", ""
	for {
		it := d.view.Range(bee.RangeOptions{GT: fileKey(folder + prev), LT: fileKey(folder + "0"), Limit: 1})
		be, err := it.Next(ctx)
		if err != nil {
			return fmt.Errorf("drive: readdir %s: %w", folder, err)
		}
		if be == nil {
			return nil
		}
		e, err := entryFrom(be)
		if err != nil {
			return err
		}
		// Each query starts after the last name, so keys must grow; a
		// corrupt tree that breaks the order must not make this loop.
		if e.Key <= folder+prev || !strings.HasPrefix(e.Key, folder+"/") {
			return fmt.Errorf("drive: readdir %s: entry %q is out of order", folder, e.Key)
		}
		suffix := e.Key[len(folder)+1:]
		name, _, isDir := strings.Cut(suffix, "/")
		prev = "/" + name
		if isDir {
			prev += "0"
		}
		if name == prevName {
			continue
		}
		prevName = name
		if err := yield(name, e); err != nil {
			return err
		}
	}
}

// PutOptions are the optional parts of a file entry.
type PutOptions struct {
	Executable bool
	// Metadata is any JSON value, stored as JSON.stringify would.
	Metadata json.RawMessage
	// Dedup stores the content as a block-map blob whose unchanged
	// 64 KiB blocks are shared with the file's previous content, as
	// Node's createWriteStream(name, { dedup: true }); rewriting a large
	// file then appends only the blocks that changed. (Node writes each
	// chunk given to its stream as one block; Go cuts the content into
	// block-size pieces, which is what Node does when it is given
	// block-size chunks.)
	Dedup bool
}

// writer is the bee an operation writes to: the bee itself or a batch.
type writer interface {
	Put(ctx context.Context, key, value []byte) error
	Del(ctx context.Context, key []byte) error
	Get(ctx context.Context, key []byte) (*bee.Entry, error)
}

func (d *Drive) w() (writer, error) {
	if d.ro {
		return nil, ErrReadOnly
	}
	return d.db, nil
}

// Put writes a file: the content as a blob, then its entry.
func (d *Drive) Put(ctx context.Context, name string, data []byte, opts *PutOptions) error {
	w, err := d.w()
	if err != nil {
		return err
	}
	return put(ctx, w, d.blobs, name, data, opts)
}

// PutReader writes a file streamed from r. The blocks are the same as Put
// with the whole content would write.
func (d *Drive) PutReader(ctx context.Context, name string, r io.Reader, opts *PutOptions) error {
	w, err := d.w()
	if err != nil {
		return err
	}
	return putReader(ctx, w, d.blobs, name, r, opts)
}

// PutEntry writes an entry as given, without touching the blobs.
func (d *Drive) PutEntry(ctx context.Context, name string, v Value) error {
	w, err := d.w()
	if err != nil {
		return err
	}
	return putEntry(ctx, w, name, v)
}

// Symlink writes a symlink entry pointing at target.
func (d *Drive) Symlink(ctx context.Context, name, target string, metadata json.RawMessage) error {
	w, err := d.w()
	if err != nil {
		return err
	}
	return symlink(ctx, w, name, target, metadata)
}

// Del removes the entry at name (the blob stays in the blobs core, as in
// Node). Deleting an absent path writes nothing.
func (d *Drive) Del(ctx context.Context, name string) error {
	w, err := d.w()
	if err != nil {
		return err
	}
	return del(ctx, w, name)
}

func putEntry(ctx context.Context, w writer, name string, v Value) error {
	p, err := NormalizePath(name)
	if err != nil {
		return err
	}
	b, err := v.Encode()
	if err != nil {
		return err
	}
	if err := w.Put(ctx, fileKey(p), b); err != nil {
		return fmt.Errorf("drive: put %s: %w", p, err)
	}
	return nil
}

func put(ctx context.Context, w writer, bl *blobs.Blobs, name string, data []byte, opts *PutOptions) error {
	// bytes.Reader hands the whole slice to the blob writer in one Write.
	return putReader(ctx, w, bl, name, bytes.NewReader(data), opts)
}

func putReader(ctx context.Context, w writer, bl *blobs.Blobs, name string, r io.Reader, opts *PutOptions) error {
	var o PutOptions
	if opts != nil {
		o = *opts
	}
	p, err := NormalizePath(name)
	if err != nil {
		return err
	}
	v := Value{Executable: o.Executable, Metadata: o.Metadata}
	// Check the metadata before writing any content.
	if _, err := v.Encode(); err != nil {
		return err
	}
	bw := bl.NewWriter()
	if o.Dedup {
		wo := blobs.WriterOptions{Dedup: true}
		prev, err := w.Get(ctx, fileKey(p))
		if err != nil {
			return fmt.Errorf("drive: write %s: %w", p, err)
		}
		if pe, err := entryFrom(prev); err != nil {
			return err
		} else if pe != nil {
			wo.Previous = pe.Value.Blob
		}
		bw = bl.NewWriterWith(ctx, wo)
	}
	if _, err := io.Copy(bw, r); err != nil {
		bw.Abort()
		return fmt.Errorf("drive: write %s: %w", p, err)
	}
	if err := bw.Close(); err != nil {
		return fmt.Errorf("drive: write %s: %w", p, err)
	}
	id := bw.ID()
	v.Blob = &id
	return putEntry(ctx, w, p, v)
}

func symlink(ctx context.Context, w writer, name, target string, metadata json.RawMessage) error {
	if target == "" {
		return fmt.Errorf("%w: empty symlink target", ErrInvalidPath)
	}
	return putEntry(ctx, w, name, Value{Linkname: target, Metadata: metadata})
}

func del(ctx context.Context, w writer, name string) error {
	p, err := NormalizePath(name)
	if err != nil {
		return err
	}
	if err := w.Del(ctx, fileKey(p)); err != nil {
		return fmt.Errorf("drive: del %s: %w", p, err)
	}
	return nil
}

// Batch groups entry writes into one db append, as Hyperdrive's batch():
// contents go to the blobs core as they are written, entries when the
// batch is flushed. It holds the db write lock until Flush or Close.
type Batch struct {
	d  *Drive
	bt *bee.Batch
}

// Batch starts a batch.
func (d *Drive) Batch() (*Batch, error) {
	if d.ro {
		return nil, ErrReadOnly
	}
	return &Batch{d: d, bt: d.db.Batch()}, nil
}

// Put adds a file.
func (b *Batch) Put(ctx context.Context, name string, data []byte, opts *PutOptions) error {
	return put(ctx, b.bt, b.d.blobs, name, data, opts)
}

// PutReader adds a file streamed from r.
func (b *Batch) PutReader(ctx context.Context, name string, r io.Reader, opts *PutOptions) error {
	return putReader(ctx, b.bt, b.d.blobs, name, r, opts)
}

// PutEntry adds an entry as given.
func (b *Batch) PutEntry(ctx context.Context, name string, v Value) error {
	return putEntry(ctx, b.bt, name, v)
}

// Symlink adds a symlink.
func (b *Batch) Symlink(ctx context.Context, name, target string, metadata json.RawMessage) error {
	return symlink(ctx, b.bt, name, target, metadata)
}

// Del adds a delete.
func (b *Batch) Del(ctx context.Context, name string) error {
	return del(ctx, b.bt, name)
}

// Flush writes the batch's entries.
func (b *Batch) Flush() error {
	if err := b.bt.Flush(); err != nil {
		return fmt.Errorf("drive: %w", err)
	}
	return nil
}

// Close drops unflushed entries.
func (b *Batch) Close() { b.bt.Close() }

// DiffEntry is a path whose entry differs between two versions; Left or
// Right is nil where the path has no entry.
type DiffEntry struct {
	Left, Right *Entry
}

// Diff lists, in key order, the entries under folder that differ between
// this drive's version (Left) and version (Right), as Hyperdrive's
// diff(version, folder). Only the parts of the db that differ are read.
func (d *Drive) Diff(ctx context.Context, version uint64, folder string) ([]DiffEntry, error) {
	f, err := normalizeFolder(folder)
	if err != nil {
		return nil, err
	}
	raw, err := d.view.Diff(ctx, d.db.Checkout(max(1, version)), bee.RangeOptions{GT: fileKey(f + "/"), LT: fileKey(f + "0")})
	if err != nil {
		return nil, fmt.Errorf("drive: diff %s: %w", folder, err)
	}
	out := make([]DiffEntry, len(raw))
	for i, r := range raw {
		if out[i].Left, err = entryFrom(r.Left); err != nil {
			return nil, err
		}
		if out[i].Right, err = entryFrom(r.Right); err != nil {
			return nil, err
		}
	}
	return out, nil
}
