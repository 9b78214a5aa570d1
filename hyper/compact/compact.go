// Package compact implements the subset of the compact-encoding wire format
// (npm "compact-encoding" 3.x) that Hypercore, Protomux and the Noise
// transport put on the wire.
//
// Everything in Hypercore's replication protocol is encoded this way, so the
// bytes produced here must match Node's byte for byte, and the decoder must
// accept exactly what Node accepts while staying safe on hostile input.
//
// # Encoding
//
// An Encoder appends to a byte slice. Methods never fail at the call site;
// a value that Node would refuse to encode (a uint above 2^53-1, a fixed
// field of the wrong length) records a sticky error that Err reports, and
// the bytes must then be discarded:
//
//	var e compact.Encoder
//	e.Uint(7)
//	e.String("hypercore/alpha")
//	e.OptionalBuffer(nil)
//	b, err := e.Finish()
//
// # Decoding
//
// A Decoder reads from a byte slice. Every method returns the value and an
// error; it never panics. Errors wrap ErrOutOfBounds, ErrUintRange or
// ErrArrayTooBig and say which field and offset failed. Once a method has
// failed the Decoder stays failed (every later call returns the first
// error), so a caller may also check only the last error. Byte slices
// returned by Buffer, OptionalBuffer, Fixed and Raw alias the input: copy
// them if the input buffer is reused.
//
//	d := compact.NewDecoder(msg)
//	id, err := d.Uint()
//	name, err := d.String()
//
// The decoder never allocates more than the input can justify: length
// prefixes are checked against the remaining bytes before anything is
// sliced or allocated, and array counts are capped both at MaxArrayLen (as
// Node does) and at the number of remaining bytes, since every element
// takes at least one byte.
//
// # Wire rules (from compact-encoding/index.js)
//
//   - uint: one byte for values up to 0xfc, else a prefix 0xfd (u16 LE),
//     0xfe (u32 LE) or 0xff (u64 LE). Decoding does not require the
//     shortest form. Values above 2^53-1 (JavaScript's safe integer limit)
//     are rejected on both sides.
//   - uint8/16/24/32/64: fixed-width little-endian.
//   - buffer: uint length then bytes; optionalBuffer: same, length 0 = null.
//   - string: uint byte length then UTF-8.
//   - fixed32/fixed64: raw bytes without a length.
//   - array: uint count (at most 0x100000) then the items.
//   - bool: one byte, true only when it is exactly 1.
//   - uint32array: uint element count then little-endian words.
//   - raw: the rest of the input.
package compact

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxUint is the largest uint compact-encoding accepts: Number.MAX_SAFE_INTEGER.
const MaxUint = 1<<53 - 1

// MaxArrayLen is the element count above which Node's array decoder throws
// "Array is too big".
const MaxArrayLen = 0x100000

var (
	// ErrOutOfBounds means the input ended before the value did.
	ErrOutOfBounds = errors.New("compact: out of bounds")
	// ErrUintRange means a uint is above MaxUint.
	ErrUintRange = errors.New("compact: uint above 2^53-1")
	// ErrArrayTooBig means an array count exceeds MaxArrayLen or what the
	// remaining input could hold.
	ErrArrayTooBig = errors.New("compact: array is too big")
	// ErrFixedSize means a fixed-width field was given the wrong length to encode.
	ErrFixedSize = errors.New("compact: incorrect buffer size")
)

// UintSize returns how many bytes Encoder.Uint writes for v.
func UintSize(v uint64) int {
	switch {
	case v <= 0xfc:
		return 1
	case v <= 0xffff:
		return 3
	case v <= 0xffffffff:
		return 5
	default:
		return 9
	}
}

// AppendUint appends the compact uint encoding of v to b. It does not check
// v against MaxUint; use Encoder when the value comes from outside.
func AppendUint(b []byte, v uint64) []byte {
	switch {
	case v <= 0xfc:
		return append(b, byte(v))
	case v <= 0xffff:
		return binary.LittleEndian.AppendUint16(append(b, 0xfd), uint16(v))
	case v <= 0xffffffff:
		return binary.LittleEndian.AppendUint32(append(b, 0xfe), uint32(v))
	default:
		return binary.LittleEndian.AppendUint64(append(b, 0xff), v)
	}
}

// Encoder appends compact-encoded values to a byte slice. The zero value is
// ready to use. Encoding errors are sticky: see Err.
type Encoder struct {
	buf []byte
	err error
}

// NewEncoder returns an Encoder that appends to buf (which may be nil), so
// that callers can reuse a buffer or reserve capacity.
func NewEncoder(buf []byte) *Encoder { return &Encoder{buf: buf} }

// Bytes returns the encoded bytes so far, even after an error.
func (e *Encoder) Bytes() []byte { return e.buf }

// Len returns the number of bytes encoded so far.
func (e *Encoder) Len() int { return len(e.buf) }

// Err returns the first encoding error, if any.
func (e *Encoder) Err() error { return e.err }

// Finish returns the encoded bytes, or the first error if one occurred.
func (e *Encoder) Finish() ([]byte, error) {
	if e.err != nil {
		return nil, e.err
	}
	return e.buf, nil
}

func (e *Encoder) fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

// Uint appends a variable-length uint. Values above MaxUint are refused
// because Node throws on them, so the peer could never read them.
func (e *Encoder) Uint(v uint64) {
	if v > MaxUint {
		e.fail(fmt.Errorf("encode uint %d: %w", v, ErrUintRange))
		return
	}
	e.buf = AppendUint(e.buf, v)
}

// Uint8 appends one byte.
func (e *Encoder) Uint8(v uint8) { e.buf = append(e.buf, v) }

// Uint16 appends a 2-byte little-endian integer.
func (e *Encoder) Uint16(v uint16) { e.buf = binary.LittleEndian.AppendUint16(e.buf, v) }

// Uint24 appends a 3-byte little-endian integer; v must fit in 24 bits.
func (e *Encoder) Uint24(v uint32) {
	if v > 0xffffff {
		e.fail(fmt.Errorf("encode uint24 %d: %w", v, ErrUintRange))
		return
	}
	e.buf = append(e.buf, byte(v), byte(v>>8), byte(v>>16))
}

// Uint32 appends a 4-byte little-endian integer.
func (e *Encoder) Uint32(v uint32) { e.buf = binary.LittleEndian.AppendUint32(e.buf, v) }

// Uint64 appends an 8-byte little-endian integer. Like Node's uint64 it is
// limited to MaxUint.
func (e *Encoder) Uint64(v uint64) {
	if v > MaxUint {
		e.fail(fmt.Errorf("encode uint64 %d: %w", v, ErrUintRange))
		return
	}
	e.buf = binary.LittleEndian.AppendUint64(e.buf, v)
}

// Bool appends 1 for true and 0 for false.
func (e *Encoder) Bool(v bool) {
	if v {
		e.buf = append(e.buf, 1)
	} else {
		e.buf = append(e.buf, 0)
	}
}

// Buffer appends a length-prefixed byte string. A nil or empty b encodes as
// length 0 (which Node decodes as an empty buffer).
func (e *Encoder) Buffer(b []byte) {
	e.Uint(uint64(len(b)))
	e.buf = append(e.buf, b...)
}

// OptionalBuffer appends b like Buffer; nil and empty both encode as a
// single 0, which the peer reads as null.
func (e *Encoder) OptionalBuffer(b []byte) { e.Buffer(b) }

// String appends a length-prefixed UTF-8 string.
func (e *Encoder) String(s string) {
	e.Uint(uint64(len(s)))
	e.buf = append(e.buf, s...)
}

// Fixed appends b without a length prefix, requiring len(b) == n so that a
// short key can never shift every later field.
func (e *Encoder) Fixed(n int, b []byte) {
	if len(b) != n {
		e.fail(fmt.Errorf("encode fixed%d with %d bytes: %w", n, len(b), ErrFixedSize))
		return
	}
	e.buf = append(e.buf, b...)
}

// Fixed32 appends exactly 32 bytes (keys, hashes).
func (e *Encoder) Fixed32(b []byte) { e.Fixed(32, b) }

// Fixed64 appends exactly 64 bytes (signatures, handshake hashes).
func (e *Encoder) Fixed64(b []byte) { e.Fixed(64, b) }

// ArrayLen appends an array's element count; the caller then encodes the
// items. Counts above MaxArrayLen are refused because Node would reject the
// message.
func (e *Encoder) ArrayLen(n int) {
	if n < 0 || n > MaxArrayLen {
		e.fail(fmt.Errorf("encode array of %d: %w", n, ErrArrayTooBig))
		return
	}
	e.Uint(uint64(n))
}

// Uint32Array appends a count followed by little-endian 32-bit words.
func (e *Encoder) Uint32Array(v []uint32) {
	e.Uint(uint64(len(v)))
	for _, w := range v {
		e.buf = binary.LittleEndian.AppendUint32(e.buf, w)
	}
}

// Raw appends b as is; it must be the last field of a message.
func (e *Encoder) Raw(b []byte) { e.buf = append(e.buf, b...) }

// Decoder reads compact-encoded values from a byte slice. It never panics
// and the first error is sticky.
type Decoder struct {
	buf []byte
	off int
	err error
}

// NewDecoder returns a Decoder reading b from the start.
func NewDecoder(b []byte) *Decoder { return &Decoder{buf: b} }

// Offset returns how many bytes have been consumed.
func (d *Decoder) Offset() int { return d.off }

// Remaining returns how many bytes are left.
func (d *Decoder) Remaining() int { return len(d.buf) - d.off }

// Err returns the first decoding error, if any.
func (d *Decoder) Err() error { return d.err }

// Done returns the first error, or an error if bytes are left over. Node
// ignores trailing bytes in most messages; use Done where a message must be
// exact.
func (d *Decoder) Done() error {
	if d.err != nil {
		return d.err
	}
	if d.off != len(d.buf) {
		return fmt.Errorf("compact: %d trailing bytes at offset %d", len(d.buf)-d.off, d.off)
	}
	return nil
}

func (d *Decoder) fail(what string, err error) error {
	if d.err == nil {
		d.err = fmt.Errorf("decode %s at offset %d: %w", what, d.off, err)
	}
	return d.err
}

// take returns the next n bytes without copying.
func (d *Decoder) take(what string, n uint64) ([]byte, error) {
	if d.err != nil {
		return nil, d.err
	}
	if n > uint64(len(d.buf)-d.off) {
		return nil, d.fail(what, ErrOutOfBounds)
	}
	b := d.buf[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return b, nil
}

// Uint reads a variable-length uint. Non-minimal forms are accepted, as
// Node accepts them; values above MaxUint are not.
func (d *Decoder) Uint() (uint64, error) {
	p, err := d.take("uint", 1)
	if err != nil {
		return 0, err
	}
	switch p[0] {
	case 0xfd:
		b, err := d.take("uint", 2)
		if err != nil {
			return 0, err
		}
		return uint64(binary.LittleEndian.Uint16(b)), nil
	case 0xfe:
		b, err := d.take("uint", 4)
		if err != nil {
			return 0, err
		}
		return uint64(binary.LittleEndian.Uint32(b)), nil
	case 0xff:
		b, err := d.take("uint", 8)
		if err != nil {
			return 0, err
		}
		v := binary.LittleEndian.Uint64(b)
		if v > MaxUint {
			d.off -= 9
			return 0, d.fail("uint", ErrUintRange)
		}
		return v, nil
	default:
		return uint64(p[0]), nil
	}
}

// Uint8 reads one byte.
func (d *Decoder) Uint8() (uint8, error) {
	b, err := d.take("uint8", 1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

// Uint16 reads a 2-byte little-endian integer.
func (d *Decoder) Uint16() (uint16, error) {
	b, err := d.take("uint16", 2)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(b), nil
}

// Uint24 reads a 3-byte little-endian integer.
func (d *Decoder) Uint24() (uint32, error) {
	b, err := d.take("uint24", 3)
	if err != nil {
		return 0, err
	}
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16, nil
}

// Uint32 reads a 4-byte little-endian integer.
func (d *Decoder) Uint32() (uint32, error) {
	b, err := d.take("uint32", 4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

// Uint64 reads an 8-byte little-endian integer, limited to MaxUint as in Node.
func (d *Decoder) Uint64() (uint64, error) {
	b, err := d.take("uint64", 8)
	if err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint64(b)
	if v > MaxUint {
		d.off -= 8
		return 0, d.fail("uint64", ErrUintRange)
	}
	return v, nil
}

// Bool reads one byte; only 1 is true, matching Node's `=== 1`.
func (d *Decoder) Bool() (bool, error) {
	b, err := d.take("bool", 1)
	if err != nil {
		return false, err
	}
	return b[0] == 1, nil
}

// Buffer reads a length-prefixed byte string. Length 0 yields an empty,
// non-nil slice. The result aliases the input.
func (d *Decoder) Buffer() ([]byte, error) {
	n, err := d.Uint()
	if err != nil {
		return nil, err
	}
	return d.take("buffer", n)
}

// OptionalBuffer reads a length-prefixed byte string where length 0 means
// absent, returned as nil. The result aliases the input.
func (d *Decoder) OptionalBuffer() ([]byte, error) {
	n, err := d.Uint()
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	return d.take("optionalBuffer", n)
}

// String reads a length-prefixed UTF-8 string. Invalid UTF-8 is returned as
// is rather than rejected; callers that compare names get exact bytes.
func (d *Decoder) String() (string, error) {
	n, err := d.Uint()
	if err != nil {
		return "", err
	}
	b, err := d.take("string", n)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// Fixed reads exactly n bytes without a length prefix. The result aliases
// the input.
func (d *Decoder) Fixed(n int) ([]byte, error) {
	if n < 0 {
		return nil, d.fail("fixed", ErrOutOfBounds)
	}
	return d.take("fixed", uint64(n))
}

// Fixed32 reads exactly 32 bytes into an array (a copy).
func (d *Decoder) Fixed32() ([32]byte, error) {
	var out [32]byte
	b, err := d.take("fixed32", 32)
	if err != nil {
		return out, err
	}
	copy(out[:], b)
	return out, nil
}

// Fixed64 reads exactly 64 bytes into an array (a copy).
func (d *Decoder) Fixed64() ([64]byte, error) {
	var out [64]byte
	b, err := d.take("fixed64", 64)
	if err != nil {
		return out, err
	}
	copy(out[:], b)
	return out, nil
}

// ArrayLen reads an array's element count. It rejects counts above
// MaxArrayLen (as Node does) and counts larger than the remaining input,
// since every element of every compact type takes at least one byte; so a
// caller may safely make([]T, 0, n).
func (d *Decoder) ArrayLen() (int, error) {
	n, err := d.Uint()
	if err != nil {
		return 0, err
	}
	if n > MaxArrayLen {
		return 0, d.fail("array length", ErrArrayTooBig)
	}
	if n > uint64(d.Remaining()) {
		return 0, d.fail("array length", ErrOutOfBounds)
	}
	return int(n), nil
}

// Array decodes an array with item decoding each element.
func Array[T any](d *Decoder, item func(*Decoder) (T, error)) ([]T, error) {
	n, err := d.ArrayLen()
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, n)
	for i := 0; i < n; i++ {
		v, err := item(d)
		if err != nil {
			return nil, fmt.Errorf("array item %d: %w", i, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// Uint32Array reads a count followed by that many little-endian words.
func (d *Decoder) Uint32Array() ([]uint32, error) {
	n, err := d.Uint()
	if err != nil {
		return nil, err
	}
	if n > uint64(d.Remaining())/4 {
		return nil, d.fail("uint32array", ErrOutOfBounds)
	}
	b, err := d.take("uint32array", n*4)
	if err != nil {
		return nil, err
	}
	out := make([]uint32, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(b[i*4:])
	}
	return out, nil
}

// Raw returns the rest of the input (possibly empty, never nil unless the
// decoder has failed). The result aliases the input.
func (d *Decoder) Raw() ([]byte, error) {
	if d.err != nil {
		return nil, d.err
	}
	b := d.buf[d.off:len(d.buf):len(d.buf)]
	d.off = len(d.buf)
	return b, nil
}
