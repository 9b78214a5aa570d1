package compact

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecoder drives the Decoder with an op sequence taken from the input
// itself: it must never panic, never read past the input, and everything
// it decodes must re-encode to something that decodes to the same value.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte{0, 0xfd, 0x01, 0x00})
	f.Add([]byte{3, 0x02, 'h', 'i'})
	f.Add([]byte{7, 0xfe, 0x00, 0x00, 0x10, 0x00})
	f.Add([]byte{9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x00})
	f.Add([]byte{1, 0x00, 2, 0x03, 1, 2, 3})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		ops, data := in[0], in[1:]
		d := NewDecoder(data)
		var e Encoder
		for i := 0; i < 8 && d.Err() == nil && d.Remaining() > 0; i++ {
			switch (ops >> (i % 4 * 2)) & 3 {
			case 0:
				v, err := d.Uint()
				if err == nil {
					if v > MaxUint {
						t.Fatalf("Uint returned %d", v)
					}
					e.Uint(v)
				}
			case 1:
				b, err := d.Buffer()
				if err == nil {
					e.Buffer(b)
				}
			case 2:
				s, err := d.String()
				if err == nil {
					e.String(s)
				}
			case 3:
				v, err := d.Uint32Array()
				if err == nil {
					e.Uint32Array(v)
				}
			}
			if d.Offset() > len(data) {
				t.Fatalf("offset %d past input %d", d.Offset(), len(data))
			}
		}
		if e.Err() != nil {
			t.Fatalf("re-encoding decoded values failed: %v", e.Err())
		}
		// Re-encoded bytes are the canonical form; decoding them again with
		// the same ops must reproduce them exactly.
		d2 := NewDecoder(e.Bytes())
		var e2 Encoder
		for i := 0; i < 8 && d2.Remaining() > 0; i++ {
			switch (ops >> (i % 4 * 2)) & 3 {
			case 0:
				v, err := d2.Uint()
				if err != nil {
					t.Fatalf("canonical uint: %v", err)
				}
				e2.Uint(v)
			case 1:
				b, err := d2.Buffer()
				if err != nil {
					t.Fatalf("canonical buffer: %v", err)
				}
				e2.Buffer(b)
			case 2:
				s, err := d2.String()
				if err != nil {
					t.Fatalf("canonical string: %v", err)
				}
				e2.String(s)
			case 3:
				v, err := d2.Uint32Array()
				if err != nil {
					t.Fatalf("canonical uint32array: %v", err)
				}
				e2.Uint32Array(v)
			}
		}
		if !bytes.Equal(e.Bytes(), e2.Bytes()) {
			t.Fatalf("canonical form not stable: %x vs %x", e.Bytes(), e2.Bytes())
		}
		// Arrays and the rest must also hold up on arbitrary input.
		d3 := NewDecoder(data)
		if n, err := d3.ArrayLen(); err == nil && (n > MaxArrayLen || n > d3.Remaining()) {
			t.Fatalf("ArrayLen %d with %d bytes left", n, d3.Remaining())
		} else if err != nil && !errors.Is(err, ErrOutOfBounds) && !errors.Is(err, ErrArrayTooBig) && !errors.Is(err, ErrUintRange) {
			t.Fatalf("unexpected error type: %v", err)
		}
		d4 := NewDecoder(data)
		_, _ = d4.OptionalBuffer()
		_, _ = d4.Fixed32()
		_, _ = d4.Fixed64()
		_, _ = d4.Bool()
		_, _ = d4.Uint64()
		_, _ = d4.Uint24()
		_, _ = d4.Raw()
	})
}
