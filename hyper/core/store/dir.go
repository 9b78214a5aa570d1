package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/hyperos/hyperos/hyper/core/wire"
)

// On-disk layout of a Dir store (all integers little-endian):
//
//	blocks  "HCBLK001" then block values, back to back, append-only.
//	log     "HCLOG001" then frames, append-only:
//	          u32 n ‖ u32 crc32c(u32 n ‖ payload) ‖ payload (n bytes)
//	        a payload is a sequence of records:
//	          0x01 node:   u64 index ‖ u64 size ‖ hash[32]
//	          0x02 block:  u64 index ‖ u64 offset ‖ u32 length ‖ u32 crc32c(value)
//	          0x03 header: u32 length ‖ MarshalHeader bytes
//	          0x04 truncate: u64 length (drop blocks ≥ length and nodes
//	               outside the tree of that length; comes first in a frame)
//	          0x05 drop:   u64 index (forget one block; before any 0x02)
//
// One Commit writes its block values to the end of blocks and fsyncs, then
// appends one frame to log and fsyncs: the frame is the commit point
// (concurrent commits share the two fsyncs, each keeping its frame). On
// open the log is replayed up to the first frame that is short or fails
// its checksum (a torn write of an unacknowledged commit) and truncated
// there; block values past the last referenced byte are cut off too. A
// block whose bytes were later damaged fails its CRC on read and is
// reported as ErrCorrupt, never returned.
//
// With DirOptions.DeferSync a commit that only adds blocks and tree nodes
// skips both fsyncs. Before the first such commit after a durable point,
// the blocks file's length is written to the file "unsynced" and fsynced:
// every byte before it is durable, the ones after may not be. Any other
// commit, Close, and every deferSyncBytes of deferred block values make
// everything durable again and empty "unsynced". On open, a non-empty
// "unsynced" means a crash may have lost bytes after that offset: every
// block stored there is read back and checked, and the ones that fail are
// dropped, so that the store never claims a block it cannot return. The
// log is replayed as always, up to its first damaged frame, so what
// survives is a prefix of the commits, each whole.
//
// Limits, by design for now: the index (every node and block location,
// about 100 bytes per block) is kept in memory and rebuilt by replaying the
// log on open, which Compact keeps short; the blocks file only grows, so
// the bytes of overwritten, truncated or dropped blocks are not reclaimed.
const (
	blocksMagic = "HCBLK001"
	logMagic    = "HCLOG001"
	magicLen    = 8

	recNode   = 0x01
	recBlock  = 0x02
	recHeader = 0x03
	recTrunc  = 0x04
	recDrop   = 0x05

	frameHeaderLen = 8

	// compactName is where Compact builds the replacement log; a leftover
	// one is an interrupted compaction and is discarded on open.
	compactName = "log.compact"
	// unsyncedName holds, while deferred commits may not be durable, the
	// blocks file offset before which everything is (u64 ‖ u32 crc32c).
	unsyncedName = "unsynced"
	// maxFrame bounds one frame so that a damaged length cannot make us
	// allocate absurd amounts while replaying.
	maxFrame = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// autoCompactMin is the log size below which Commit never compacts (a
// variable so that tests can exercise automatic compaction cheaply).
var autoCompactMin uint64 = 8 << 20

// deferSyncBytes is how many block bytes deferred commits may add before
// one is made durable anyway; it bounds what is checked on open after a
// crash. A variable so that tests can exercise it cheaply.
var deferSyncBytes uint64 = 32 << 20

type blockRef struct {
	off    uint64
	length uint32
	crc    uint32
}

// DirOptions configure a Dir.
type DirOptions struct {
	// DeferSync lets a commit that only adds blocks and tree nodes (no
	// header, truncation or drop) return once written, before it is
	// durable. A crash may then lose such commits (a prefix of the
	// commits always survives, each whole) and their block values
	// (found and dropped on open). It is for a replica that keeps its
	// blocks as a cache of what peers serve: a lost block is fetched and
	// verified again, and an fsync per fetched block would cost more than
	// the fetch. The signed head, truncations and drops stay durable.
	DeferSync bool
}

// Dir is a Storage kept in one directory.
//
// Commits are grouped: concurrent Commit calls queue up, and one of them
// (the leader) writes the block values of everything queued, fsyncs the
// blocks file once, appends one log frame per commit and fsyncs the log
// once. Each commit keeps its own frame, so each stays atomic; every frame
// is written after the values it names are durable; and no commit is
// visible (to GetBlock, HasBlock, GetNode, Header) or acknowledged before
// the log fsync that covers it. The exception is a commit deferred by
// DirOptions.DeferSync, written without either fsync and visible and
// acknowledged once written (see the layout notes above for what a crash
// then does).
type Dir struct {
	path   string
	opts   DirOptions
	blocks *os.File

	// wmu serialises writing: the leader's group commit, Compact, Close.
	// Lock order: wmu, then mu.
	wmu       sync.Mutex
	log       *os.File // replaced by Compact
	blocksEnd uint64
	logEnd    uint64
	// broken is set when a failed write could not be rolled back; the
	// store then refuses writes so that nothing is appended after garbage.
	broken error
	// unsynced is the file recording where deferred data starts (opened
	// on first use); deferring is set while that record is in force, and
	// deferred counts the block bytes written since.
	unsynced  *os.File
	deferring bool
	deferred  uint64

	// mu guards the index, which only holds durable commits.
	mu     sync.RWMutex
	header *Header
	nodes  map[uint64]wire.Node
	refs   map[uint64]blockRef
	closed bool

	// qmu guards the queue of commits waiting for a leader.
	qmu     sync.Mutex
	queue   []*pendingCommit
	leading bool
}

// pendingCommit is a Commit waiting in the queue; done receives nil once
// it is durable, its error if it failed, or errLead when it is to lead
// the next group.
type pendingCommit struct {
	b    *Batch
	done chan error
}

// OpenDir opens (creating if needed) the store in directory path.
func OpenDir(path string) (*Dir, error) { return OpenDirWith(path, DirOptions{}) }

// OpenDirWith is OpenDir with options. Whatever the options, a store whose
// last writer deferred syncs and crashed is checked and repaired here.
func OpenDirWith(path string, opts DirOptions) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("create store dir: %w", err)
	}
	d := &Dir{path: path, opts: opts, nodes: map[uint64]wire.Node{}, refs: map[uint64]blockRef{}}
	if err := os.Remove(filepath.Join(path, compactName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove interrupted compaction: %w", err)
	}
	var err error
	if d.blocks, err = openFile(path, "blocks", blocksMagic); err != nil {
		return nil, err
	}
	if err := lockFile(d.blocks); err != nil {
		d.blocks.Close()
		return nil, err
	}
	if d.log, err = openFile(path, "log", logMagic); err != nil {
		d.blocks.Close()
		return nil, err
	}
	if err := d.replay(); err != nil {
		d.blocks.Close()
		d.log.Close()
		return nil, err
	}
	if err := d.recoverDeferred(); err != nil {
		d.blocks.Close()
		d.log.Close()
		return nil, err
	}
	return d, nil
}

// recoverDeferred checks, after a crash while commits were deferred, every
// block stored after the offset "unsynced" records, drops the ones whose
// bytes did not survive (durably), makes the rest durable and empties the
// record. A record that does not parse (torn while it was written) makes
// every block checked.
func (d *Dir) recoverDeferred() error {
	p := filepath.Join(d.path, unsyncedName)
	raw, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(raw) == 0) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", unsyncedName, err)
	}
	from := uint64(magicLen)
	if len(raw) == 12 && crc32.Checksum(raw[:8], castagnoli) == binary.LittleEndian.Uint32(raw[8:]) {
		from = binary.LittleEndian.Uint64(raw[:8])
	}
	var bad []uint64
	for i, r := range d.refs {
		if r.off+uint64(r.length) <= from {
			continue
		}
		buf := make([]byte, r.length)
		if _, err := d.blocks.ReadAt(buf, int64(r.off)); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("check block %d: %w", i, err)
		}
		if crc32.Checksum(buf, castagnoli) != r.crc {
			bad = append(bad, i)
		}
	}
	if err := d.blocks.Sync(); err != nil {
		return fmt.Errorf("sync blocks: %w", err)
	}
	if len(bad) > 0 {
		var payload []byte
		for _, i := range bad {
			var rec [9]byte
			rec[0] = recDrop
			binary.LittleEndian.PutUint64(rec[1:], i)
			payload = append(payload, rec[:]...)
		}
		f := frame(payload)
		if err := d.appendSync(d.log, "log", d.logEnd, f, true); err != nil {
			return err
		}
		d.logEnd += uint64(len(f))
		for _, i := range bad {
			delete(d.refs, i)
		}
	} else if err := d.log.Sync(); err != nil {
		return fmt.Errorf("sync log: %w", err)
	}
	// Emptying the record needs no fsync: if it is lost, the next open
	// only checks again.
	if err := os.Truncate(p, 0); err != nil {
		return fmt.Errorf("clear %s: %w", unsyncedName, err)
	}
	return nil
}

// beginDeferred records, durably, that data after the blocks file's
// current end may not be durable. wmu is held and nothing is deferred.
func (d *Dir) beginDeferred() error {
	if d.unsynced == nil {
		f, err := os.OpenFile(filepath.Join(d.path, unsyncedName), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("open %s: %w", unsyncedName, err)
		}
		if err := syncDir(d.path); err != nil {
			f.Close()
			return err
		}
		d.unsynced = f
	}
	var rec [12]byte
	binary.LittleEndian.PutUint64(rec[:8], d.blocksEnd)
	binary.LittleEndian.PutUint32(rec[8:], crc32.Checksum(rec[:8], castagnoli))
	if _, err := d.unsynced.WriteAt(rec[:], 0); err != nil {
		return fmt.Errorf("write %s: %w", unsyncedName, err)
	}
	if err := d.unsynced.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", unsyncedName, err)
	}
	d.deferring, d.deferred = true, 0
	return nil
}

// endDeferred empties the record once everything is durable. wmu is held.
// A record that could not be emptied only makes the next open check
// blocks that are fine, so that failure is not reported.
func (d *Dir) endDeferred() {
	if !d.deferring {
		return
	}
	d.unsynced.Truncate(0)
	d.deferring, d.deferred = false, 0
}

// deferrable reports whether b may be committed without an fsync.
func deferrable(b *Batch) bool {
	return b.Header == nil && b.Truncate == nil && len(b.Drop) == 0
}

// openFile opens a store file, writing its magic if it is new (or was
// torn before its magic became durable, when it cannot hold data yet).
func openFile(dir, name, magic string) (*os.File, error) {
	p := filepath.Join(dir, name)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat %s: %w", p, err)
	}
	if st.Size() < magicLen {
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, fmt.Errorf("reset %s: %w", p, err)
		}
		if _, err := f.WriteAt([]byte(magic), 0); err != nil {
			f.Close()
			return nil, fmt.Errorf("write %s magic: %w", p, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("sync %s: %w", p, err)
		}
		if err := syncDir(dir); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	}
	got := make([]byte, magicLen)
	if _, err := f.ReadAt(got, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("read %s magic: %w", p, err)
	}
	if string(got) != magic {
		f.Close()
		return nil, fmt.Errorf("%s is not a store file (magic %q): %w", p, got, ErrCorrupt)
	}
	return f, nil
}

// syncDir makes a file creation durable. Directories cannot be fsynced on
// every platform; failing to open one for that is not an error there.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// replay rebuilds the in-memory index from the log and cuts off torn tails.
func (d *Dir) replay() error {
	st, err := d.log.Stat()
	if err != nil {
		return fmt.Errorf("stat log: %w", err)
	}
	size := uint64(st.Size())
	off, err := d.scanFrames(d.log, size)
	if err != nil {
		return err
	}
	if off != size {
		if err := d.log.Truncate(int64(off)); err != nil {
			return fmt.Errorf("truncate torn log tail at %d: %w", off, err)
		}
		if err := d.log.Sync(); err != nil {
			return fmt.Errorf("sync log: %w", err)
		}
	}
	d.logEnd = off

	bst, err := d.blocks.Stat()
	if err != nil {
		return fmt.Errorf("stat blocks: %w", err)
	}
	bsize := uint64(bst.Size())
	end := uint64(magicLen)
	for i, r := range d.refs {
		if r.off+uint64(r.length) > bsize || r.off < magicLen {
			delete(d.refs, i) // its bytes are gone: the block is missing, not wrong
			continue
		}
		end = max(end, r.off+uint64(r.length))
	}
	if bsize > end {
		if err := d.blocks.Truncate(int64(end)); err != nil {
			return fmt.Errorf("truncate unreferenced blocks tail: %w", err)
		}
		if err := d.blocks.Sync(); err != nil {
			return fmt.Errorf("sync blocks: %w", err)
		}
	}
	d.blocksEnd = end
	return nil
}

// scanFrames applies every intact frame of a log of size bytes and returns
// where the intact prefix ends.
func (d *Dir) scanFrames(r io.ReaderAt, size uint64) (uint64, error) {
	off := uint64(magicLen)
	var hdr [frameHeaderLen]byte
	for off+frameHeaderLen <= size {
		if _, err := r.ReadAt(hdr[:], int64(off)); err != nil {
			return 0, fmt.Errorf("read log frame at %d: %w", off, err)
		}
		n := uint64(binary.LittleEndian.Uint32(hdr[0:4]))
		if n > maxFrame || off+frameHeaderLen+n > size {
			break
		}
		payload := make([]byte, n)
		// (a zero-length read at the end may report EOF; there is nothing to read)
		if _, err := r.ReadAt(payload, int64(off+frameHeaderLen)); err != nil && n > 0 {
			return 0, fmt.Errorf("read log frame at %d: %w", off, err)
		}
		c := crc32.Update(crc32.Checksum(hdr[0:4], castagnoli), castagnoli, payload)
		if c != binary.LittleEndian.Uint32(hdr[4:8]) {
			break
		}
		if err := d.apply(payload); err != nil {
			break // a frame that checksums but does not parse: treat as the end
		}
		off += frameHeaderLen + n
	}
	return off, nil
}

// apply parses one frame into a pending set and merges it only if the
// whole frame is valid, keeping commits atomic.
func (d *Dir) apply(p []byte) error {
	var (
		nodes []wire.Node
		refs  = map[uint64]blockRef{}
		hdr   *Header
		trunc *uint64
		drops []uint64
	)
	for len(p) > 0 {
		switch p[0] {
		case recTrunc:
			if len(p) < 9 || trunc != nil || len(nodes) > 0 || len(refs) > 0 || hdr != nil {
				return ErrCorrupt // a truncation is only valid first, once
			}
			t := binary.LittleEndian.Uint64(p[1:])
			trunc = &t
			p = p[9:]
		case recDrop:
			if len(p) < 9 || len(refs) > 0 || len(nodes) > 0 || hdr != nil {
				return ErrCorrupt // drops precede the frame's blocks
			}
			drops = append(drops, binary.LittleEndian.Uint64(p[1:]))
			p = p[9:]
		case recNode:
			if len(p) < 1+48 {
				return ErrCorrupt
			}
			n := wire.Node{Index: binary.LittleEndian.Uint64(p[1:]), Size: binary.LittleEndian.Uint64(p[9:])}
			copy(n.Hash[:], p[17:49])
			nodes = append(nodes, n)
			p = p[49:]
		case recBlock:
			if len(p) < 1+24 {
				return ErrCorrupt
			}
			refs[binary.LittleEndian.Uint64(p[1:])] = blockRef{
				off:    binary.LittleEndian.Uint64(p[9:]),
				length: binary.LittleEndian.Uint32(p[17:]),
				crc:    binary.LittleEndian.Uint32(p[21:]),
			}
			p = p[25:]
		case recHeader:
			if len(p) < 5 {
				return ErrCorrupt
			}
			n := uint64(binary.LittleEndian.Uint32(p[1:]))
			if uint64(len(p)-5) < n {
				return ErrCorrupt
			}
			h, err := UnmarshalHeader(p[5 : 5+n])
			if err != nil {
				return err
			}
			hdr = h
			p = p[5+n:]
		default:
			return ErrCorrupt
		}
	}
	if trunc != nil {
		truncateMaps(*trunc, d.nodes, d.refs)
	}
	for _, i := range drops {
		delete(d.refs, i)
	}
	for _, n := range nodes {
		d.nodes[n.Index] = n
	}
	for i, r := range refs {
		d.refs[i] = r
	}
	if hdr != nil {
		d.header = hdr
	}
	return nil
}

// Header implements Storage.
func (d *Dir) Header() (*Header, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return nil, ErrClosed
	}
	return d.header.Clone(), nil
}

// GetNode implements Storage.
func (d *Dir) GetNode(index uint64) (wire.Node, bool, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return wire.Node{}, false, ErrClosed
	}
	n, ok := d.nodes[index]
	return n, ok, nil
}

// HasBlock implements Storage.
func (d *Dir) HasBlock(index uint64) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	_, ok := d.refs[index]
	return ok
}

// BlocksSelfChecked implements SelfChecking: GetBlock checks each block's
// CRC-32C, which the log frame that recorded it protects in turn.
func (d *Dir) BlocksSelfChecked() bool { return true }

// GetBlock implements Storage. Damaged bytes are reported, not returned.
func (d *Dir) GetBlock(index uint64) ([]byte, bool, error) {
	d.mu.RLock()
	r, ok := d.refs[index]
	closed := d.closed
	d.mu.RUnlock()
	if closed {
		return nil, false, ErrClosed
	}
	if !ok {
		return nil, false, nil
	}
	buf := make([]byte, r.length)
	if _, err := d.blocks.ReadAt(buf, int64(r.off)); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, false, fmt.Errorf("block %d: short read: %w", index, ErrCorrupt)
		}
		return nil, false, fmt.Errorf("read block %d: %w", index, err)
	}
	if crc32.Checksum(buf, castagnoli) != r.crc {
		return nil, false, fmt.Errorf("block %d: checksum mismatch: %w", index, ErrCorrupt)
	}
	return buf, true, nil
}

func appendNodeRecord(buf []byte, n wire.Node) []byte {
	var rec [49]byte
	rec[0] = recNode
	binary.LittleEndian.PutUint64(rec[1:], n.Index)
	binary.LittleEndian.PutUint64(rec[9:], n.Size)
	copy(rec[17:], n.Hash[:])
	return append(buf, rec[:]...)
}

func appendBlockRecord(buf []byte, index uint64, r blockRef) []byte {
	var rec [25]byte
	rec[0] = recBlock
	binary.LittleEndian.PutUint64(rec[1:], index)
	binary.LittleEndian.PutUint64(rec[9:], r.off)
	binary.LittleEndian.PutUint32(rec[17:], r.length)
	binary.LittleEndian.PutUint32(rec[21:], r.crc)
	return append(buf, rec[:]...)
}

func appendHeaderRecord(buf []byte, h *Header) ([]byte, error) {
	enc, err := MarshalHeader(h)
	if err != nil {
		return nil, err
	}
	var rec [5]byte
	rec[0] = recHeader
	binary.LittleEndian.PutUint32(rec[1:], uint32(len(enc)))
	return append(append(buf, rec[:]...), enc...), nil
}

// frame wraps a payload with its length and checksum.
func frame(payload []byte) []byte {
	f := make([]byte, frameHeaderLen+len(payload))
	binary.LittleEndian.PutUint32(f[0:4], uint32(len(payload)))
	copy(f[frameHeaderLen:], payload)
	c := crc32.Update(crc32.Checksum(f[0:4], castagnoli), castagnoli, payload)
	binary.LittleEndian.PutUint32(f[4:8], c)
	return f
}

// liveSize estimates the log size a compaction would produce.
func (d *Dir) liveSize() uint64 {
	return uint64(49*len(d.nodes)+25*len(d.refs)) + 512 + magicLen
}

// Compact rewrites the log to hold only the current state. Every Commit
// appends, and a writer appends a new header per Append, so without this
// the log (and the time to replay it on open) would grow without bound.
// The new log is built aside, fsynced and renamed over the old one, so a
// crash at any point leaves one complete log.
func (d *Dir) Compact() error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.mu.RLock()
	closed := d.closed
	d.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	return d.compactLocked()
}

// compactLocked is Compact with wmu held.
func (d *Dir) compactLocked() error {
	if d.broken != nil {
		return fmt.Errorf("store is read-only after a failed write: %w", d.broken)
	}
	tmpPath := filepath.Join(d.path, compactName)
	f, err := os.OpenFile(tmpPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(tmpPath)
		return fmt.Errorf("compact: %w", err)
	}
	out := []byte(logMagic)
	var payload []byte
	flush := func() {
		if len(payload) > 0 {
			out = append(out, frame(payload)...)
			payload = payload[:0]
		}
	}
	d.mu.RLock()
	for _, n := range d.nodes {
		payload = appendNodeRecord(payload, n)
		if len(payload) > 1<<20 {
			flush()
		}
	}
	for i, r := range d.refs {
		payload = appendBlockRecord(payload, i, r)
		if len(payload) > 1<<20 {
			flush()
		}
	}
	if d.header != nil {
		if payload, err = appendHeaderRecord(payload, d.header); err != nil {
			d.mu.RUnlock()
			return fail(err)
		}
	}
	d.mu.RUnlock()
	flush()
	if _, err := f.Write(out); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmpPath, filepath.Join(d.path, "log")); err != nil {
		return fail(err)
	}
	if err := syncDir(d.path); err != nil {
		f.Close()
		d.broken = err
		return fmt.Errorf("compact: %w", err)
	}
	d.log.Close()
	d.log = f
	d.logEnd = uint64(len(out))
	return nil
}

// Commit implements Storage: it returns once b is durable (or, when
// DirOptions.DeferSync defers b, written). Block values are written and
// fsynced first, then b's log frame, which is the atomic commit point;
// concurrent commits share those fsyncs (see Dir).
func (d *Dir) Commit(b *Batch) error {
	p := &pendingCommit{b: b, done: make(chan error, 1)}
	d.qmu.Lock()
	d.queue = append(d.queue, p)
	lead := !d.leading
	d.leading = true
	d.qmu.Unlock()
	if !lead {
		if err := <-p.done; err != errLead {
			return err
		}
	}
	// Lead one group: everything queued so far, p included. Then pass the
	// lead to the oldest commit queued meanwhile, so that no caller keeps
	// committing for others indefinitely.
	d.qmu.Lock()
	group := d.queue
	d.queue = nil
	d.qmu.Unlock()
	d.commitGroup(group)
	d.qmu.Lock()
	if len(d.queue) > 0 {
		d.queue[0].done <- errLead
	} else {
		d.leading = false
	}
	d.qmu.Unlock()
	return <-p.done
}

// errLead tells a queued Commit to lead the next group.
var errLead = errors.New("store: lead the next group commit")

// staged is one commit of a group, encoded.
type staged struct {
	p      *pendingCommit
	refs   map[uint64]blockRef
	values [][]byte
	frame  []byte
}

// stage encodes b with its block values placed from blocksEnd on.
func stage(b *Batch, blocksEnd uint64) (*staged, error) {
	var payload []byte
	if b.Truncate != nil {
		var rec [9]byte
		rec[0] = recTrunc
		binary.LittleEndian.PutUint64(rec[1:], *b.Truncate)
		payload = append(payload, rec[:]...)
	}
	for _, i := range b.Drop {
		var rec [9]byte
		rec[0] = recDrop
		binary.LittleEndian.PutUint64(rec[1:], i)
		payload = append(payload, rec[:]...)
	}
	st := &staged{refs: make(map[uint64]blockRef, len(b.Blocks))}
	off := blocksEnd
	for _, blk := range b.Blocks {
		if uint64(len(blk.Value)) > 1<<32-1 {
			return nil, fmt.Errorf("block %d is too large (%d bytes)", blk.Index, len(blk.Value))
		}
		r := blockRef{off: off, length: uint32(len(blk.Value)), crc: crc32.Checksum(blk.Value, castagnoli)}
		off += uint64(len(blk.Value))
		st.values = append(st.values, blk.Value)
		st.refs[blk.Index] = r
		payload = appendBlockRecord(payload, blk.Index, r)
	}
	for _, n := range b.Nodes {
		payload = appendNodeRecord(payload, n)
	}
	if b.Header != nil {
		var err error
		if payload, err = appendHeaderRecord(payload, b.Header); err != nil {
			return nil, err
		}
	}
	if len(payload) > maxFrame {
		return nil, fmt.Errorf("commit of %d bytes of metadata is too large; split it", len(payload))
	}
	if len(payload) > 0 {
		st.frame = frame(payload)
	}
	return st, nil
}

// commitGroup makes a group of queued commits durable and answers each.
func (d *Dir) commitGroup(group []*pendingCommit) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.mu.RLock()
	closed := d.closed
	d.mu.RUnlock()
	var ok []*staged
	blocksEnd := d.blocksEnd
	var values, frames []byte
	for _, p := range group {
		switch {
		case closed:
			p.done <- ErrClosed
			continue
		case d.broken != nil:
			p.done <- fmt.Errorf("store is read-only after a failed write: %w", d.broken)
			continue
		}
		st, err := stage(p.b, blocksEnd)
		if err != nil {
			p.done <- err
			continue
		}
		st.p = p
		if st.frame == nil {
			p.done <- nil // nothing to store
			continue
		}
		for _, v := range st.values {
			blocksEnd += uint64(len(v))
		}
		frames = append(frames, st.frame...)
		ok = append(ok, st)
	}
	if len(ok) == 0 {
		return
	}
	durable := !d.opts.DeferSync || d.deferred+(blocksEnd-d.blocksEnd) >= deferSyncBytes
	for _, st := range ok {
		durable = durable || !deferrable(st.p.b)
	}
	values = make([]byte, 0, blocksEnd-d.blocksEnd)
	for _, st := range ok {
		for _, v := range st.values {
			values = append(values, v...)
		}
	}
	fail := func(err error) {
		for _, st := range ok {
			st.p.done <- err
		}
	}
	if !durable && !d.deferring {
		if err := d.beginDeferred(); err != nil {
			fail(err)
			return
		}
	}
	// Values deferred earlier are made durable with these.
	if len(values) > 0 || (durable && d.deferring) {
		if err := d.appendSync(d.blocks, "blocks", d.blocksEnd, values, durable); err != nil {
			fail(err)
			return
		}
	}
	if err := d.appendSync(d.log, "log", d.logEnd, frames, durable); err != nil {
		fail(err)
		return
	}
	d.blocksEnd = blocksEnd
	d.logEnd += uint64(len(frames))
	if durable {
		d.endDeferred()
	} else {
		d.deferred += uint64(len(values))
	}

	d.mu.Lock()
	for _, st := range ok {
		b := st.p.b
		if b.Truncate != nil {
			truncateMaps(*b.Truncate, d.nodes, d.refs)
		}
		for _, i := range b.Drop {
			delete(d.refs, i)
		}
		for i, r := range st.refs {
			d.refs[i] = r
		}
		for _, n := range b.Nodes {
			d.nodes[n.Index] = n
		}
		if b.Header != nil {
			d.header = b.Header.Clone()
		}
	}
	compact := d.logEnd > autoCompactMin && d.logEnd > 4*d.liveSize()
	d.mu.Unlock()
	for _, st := range ok {
		st.p.done <- nil
	}
	if compact {
		// The commits are already durable; a failed compaction only
		// means the log stays long, so it is not reported to them.
		_ = d.compactLocked()
	}
}

// appendSync writes data at off and, if sync is set, fsyncs. On failure it
// cuts the file back to off so that no later commit lands behind a
// partial write.
func (d *Dir) appendSync(f *os.File, name string, off uint64, data []byte, sync bool) error {
	var err error
	if len(data) > 0 {
		_, err = f.WriteAt(data, int64(off))
	}
	if err == nil && sync {
		err = f.Sync()
	}
	if err == nil {
		return nil
	}
	werr := fmt.Errorf("append to %s: %w", name, err)
	if terr := f.Truncate(int64(off)); terr != nil {
		d.broken = werr
		return fmt.Errorf("%w (and rollback failed: %v)", werr, terr)
	}
	return werr
}

// Close implements Storage. Deferred commits are made durable first.
func (d *Dir) Close() error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	var serr error
	if d.deferring && d.broken == nil {
		if serr = d.blocks.Sync(); serr == nil {
			serr = d.log.Sync()
		}
		if serr == nil {
			d.endDeferred()
		}
	}
	if d.unsynced != nil {
		d.unsynced.Close()
	}
	err1 := d.blocks.Close()
	err2 := d.log.Close()
	if serr != nil {
		return fmt.Errorf("close: sync deferred commits: %w", serr)
	}
	if err1 != nil {
		return fmt.Errorf("close blocks: %w", err1)
	}
	if err2 != nil {
		return fmt.Errorf("close log: %w", err2)
	}
	return nil
}
