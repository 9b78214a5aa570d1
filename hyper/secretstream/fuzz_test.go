package secretstream

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReadFrame feeds arbitrary bytes to the frame reader: it must never
// panic, never return more than the limit, and never allocate much more
// than the input that actually arrived.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{3, 0, 0, 1, 2, 3}, uint16(100))
	f.Add([]byte{0xff, 0xff, 0xff, 1}, uint16(65535))
	f.Add([]byte{0, 0, 0}, uint16(0))
	f.Add([]byte{5, 0}, uint16(10))
	f.Fuzz(func(t *testing.T, in []byte, limit uint16) {
		r := bytes.NewReader(in)
		for {
			fr, err := readFrame(r, int(limit))
			if err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrFrameTooLarge) {
					return
				}
				t.Fatalf("unexpected error %v", err)
			}
			if len(fr) > int(limit) {
				t.Fatalf("frame of %d over limit %d", len(fr), limit)
			}
			if cap(fr) > 2*len(in)+frameChunk {
				t.Fatalf("allocated %d for %d input bytes", cap(fr), len(in))
			}
		}
	})
}

// FuzzPull feeds arbitrary ciphertexts to a secretstream pull: no panics,
// and nothing forged is accepted.
func FuzzPull(f *testing.F) {
	var push ssState
	key, header := bytes.Repeat([]byte{7}, 32), bytes.Repeat([]byte{9}, 24)
	push.init(key, header)
	f.Add(push.push(nil, []byte("hello"), tagMessage))
	f.Add(make([]byte, 17))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, in []byte) {
		var pull, ref ssState
		pull.init(key, header)
		ref.init(key, header)
		out := make([]byte, len(in))
		tag, err := pull.pull(out, in)
		if err != nil {
			return
		}
		// Only a genuine message authenticates: pushing what was
		// decrypted must reproduce the input exactly.
		if again := ref.push(nil, out[:len(in)-ssABytes], tag); !bytes.Equal(again, in) {
			t.Fatalf("forged message accepted: %x", in)
		}
	})
}

// FuzzHandshakeRead feeds arbitrary second messages to an initiator and
// arbitrary first and third messages to a responder.
func FuzzHandshakeRead(f *testing.F) {
	ie, is := seedKP(f, 0xe0), seedKP(f, 0x11)
	re, rs := seedKP(f, 0xe1), seedKP(f, 0x22)
	ini := newHandshake(true, is, ie)
	m1, _ := ini.writeMessage()
	res := newHandshake(false, rs, re)
	_ = res.readMessage(m1)
	m2, _ := res.writeMessage()
	f.Add(m1, m2)
	f.Add(make([]byte, 32), make([]byte, 96))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		r := newHandshake(false, rs, re)
		if err := r.readMessage(a); err == nil {
			if _, err := r.writeMessage(); err != nil && len(a) >= 32 {
				// A bad ephemeral is refused by the DH; fine.
				_ = err
			}
		}
		i := newHandshake(true, is, ie)
		if _, err := i.writeMessage(); err != nil {
			t.Fatal(err)
		}
		if err := i.readMessage(b); err == nil {
			// Only the genuine msg2 (with any appended, authenticated
			// payload impossible to forge) can succeed.
			if !bytes.Equal(b, m2) {
				t.Fatalf("forged msg2 accepted: %x", b)
			}
		}
	})
}
