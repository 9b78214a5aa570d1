package lazyimage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"
	"sync"
)

// bitsMagic starts a bitmap file; the header also records the image size and
// granularity so that a cache made for another image is never trusted.
const bitsMagic = "HYPLAZY1"

// bitmapFile is a sparse data file and the bitmap of which of its units hold data.
type bitmapFile struct {
	data *os.File
	path string // without extension
	size int64
	unit int64

	// syncMu makes syncs one at a time: two at once would share the
	// temporary file, and the older snapshot could be renamed last; and a
	// sync that finds nothing dirty must not return while another is still
	// making the bits it relies on durable.
	syncMu sync.Mutex

	mu    sync.Mutex
	bits  []uint64
	dirty bool  // bits changed since the last saved bitmap
	wrote bool  // data written since the last data sync, bits changed or not
	n     int64 // set bits

	// syncData makes the data file durable; tests count its calls.
	syncData func(*os.File) error
}

func openBitmapFile(base string, size, unit int64) (*bitmapFile, error) {
	units := (size + unit - 1) / unit
	b := &bitmapFile{path: base, size: size, unit: unit, bits: make([]uint64, (units+63)/64), syncData: (*os.File).Sync}
	f, err := os.OpenFile(base+".data", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s.data: %w", base, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi.Size() != size {
		if err := f.Truncate(size); err != nil {
			f.Close()
			return nil, fmt.Errorf("size %s.data: %w", base, err)
		}
	}
	b.data = f
	raw, err := os.ReadFile(base + ".bits")
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		f.Close()
		return nil, err
	default:
		if err := b.decode(raw); err != nil {
			// A bitmap that does not describe this image is dropped: the worst
			// case is fetching again, never reading wrong data.
			b.bits = make([]uint64, len(b.bits))
			b.n = 0
		}
	}
	return b, nil
}

func (b *bitmapFile) decode(raw []byte) error {
	hdr := len(bitsMagic) + 16
	if len(raw) != hdr+8*len(b.bits)+4 || string(raw[:len(bitsMagic)]) != bitsMagic {
		return errors.New("bitmap: wrong size or magic")
	}
	if binary.LittleEndian.Uint64(raw[len(bitsMagic):]) != uint64(b.size) ||
		binary.LittleEndian.Uint64(raw[len(bitsMagic)+8:]) != uint64(b.unit) {
		return errors.New("bitmap: made for another image")
	}
	body := raw[:len(raw)-4]
	if crc32.ChecksumIEEE(body) != binary.LittleEndian.Uint32(raw[len(raw)-4:]) {
		return errors.New("bitmap: checksum")
	}
	for i := range b.bits {
		b.bits[i] = binary.LittleEndian.Uint64(raw[hdr+8*i:])
		b.n += int64(bits.OnesCount64(b.bits[i]))
	}
	return nil
}

func (b *bitmapFile) encode() []byte {
	out := make([]byte, 0, len(bitsMagic)+16+8*len(b.bits)+4)
	out = append(out, bitsMagic...)
	out = binary.LittleEndian.AppendUint64(out, uint64(b.size))
	out = binary.LittleEndian.AppendUint64(out, uint64(b.unit))
	for _, w := range b.bits {
		out = binary.LittleEndian.AppendUint64(out, w)
	}
	return binary.LittleEndian.AppendUint32(out, crc32.ChecksumIEEE(out))
}

func (b *bitmapFile) has(i int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bits[i/64]&(1<<(i%64)) != 0
}

func (b *bitmapFile) set(i int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bits[i/64]&(1<<(i%64)) == 0 {
		b.bits[i/64] |= 1 << (i % 64)
		b.n++
		b.dirty = true
	}
	b.wrote = true
}

// noteWrite records a write to units already present: their bits do not
// change, but the next sync must still make the data durable.
func (b *bitmapFile) noteWrite() {
	b.mu.Lock()
	b.wrote = true
	b.mu.Unlock()
}

func (b *bitmapFile) count() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

// sync makes the data durable, then replaces the bitmap file atomically when
// bits changed: the bitmap on disk never claims data that is not on disk. An
// overwrite of present units changes no bit and still needs the data sync.
func (b *bitmapFile) sync() error {
	b.syncMu.Lock()
	defer b.syncMu.Unlock()
	b.mu.Lock()
	if !b.dirty && !b.wrote {
		b.mu.Unlock()
		return nil
	}
	var snapshot []byte
	if b.dirty {
		snapshot = b.encode()
	}
	b.dirty, b.wrote = false, false
	b.mu.Unlock()
	if err := b.syncData(b.data); err != nil {
		b.markDirty(snapshot != nil)
		return fmt.Errorf("sync %s.data: %w", b.path, err)
	}
	if snapshot == nil {
		return nil
	}
	tmp := b.path + ".bits.tmp"
	if err := writeSynced(tmp, snapshot); err != nil {
		b.markDirty(true)
		return err
	}
	if err := os.Rename(tmp, b.path+".bits"); err != nil {
		b.markDirty(true)
		return fmt.Errorf("replace %s.bits: %w", b.path, err)
	}
	if d, err := os.Open(filepath.Dir(b.path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// markDirty undoes a failed sync's clearing, so the next sync tries again.
func (b *bitmapFile) markDirty(bits bool) {
	b.mu.Lock()
	b.dirty = b.dirty || bits
	b.wrote = true
	b.mu.Unlock()
}

func (b *bitmapFile) close() { b.data.Close() }

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
