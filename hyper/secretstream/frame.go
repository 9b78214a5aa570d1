package secretstream

import (
	"errors"
	"fmt"
	"io"
)

// MaxFrameSize is the largest frame the uint24 length prefix can describe
// (secret-stream's MAX_ATOMIC_WRITE).
const MaxFrameSize = 1<<24 - 1

// MaxMessageSize is the largest plaintext that fits in one frame.
const MaxMessageSize = MaxFrameSize - ssABytes

// maxHandshakeFrame bounds handshake messages: noise-handshake refuses
// Noise messages over 65535 bytes, and ours are at most 96.
const maxHandshakeFrame = 65535

// frameChunk is how much of a large frame is read (and allocated) at a
// time, so that a peer announcing a 16 MiB frame and then stalling costs
// us only what it actually sent. It is above Hypercore's usual data
// message (a 64 KiB block plus its proof), so those frames are read into
// one allocation of their exact size.
const frameChunk = 128 << 10

// ErrFrameTooLarge is returned when a peer announces a frame above the
// configured limit.
var ErrFrameTooLarge = errors.New("secretstream: frame too large")

// appendFrameHeader appends the uint24 little-endian length prefix.
func appendFrameHeader(b []byte, n int) []byte {
	return append(b, byte(n), byte(n>>8), byte(n>>16))
}

// readFrame reads one uint24-length-prefixed frame of at most max bytes.
// It allocates in steps as data arrives rather than trusting the length.
func readFrame(r io.Reader, limit int) ([]byte, error) {
	return readFrameAt(r, limit, 0)
}

// readFrameAt is readFrame into a buffer that has headroom unused bytes
// before the frame: the frame is buf[headroom:].
func readFrameAt(r io.Reader, limit, headroom int) ([]byte, error) {
	var hdr [3]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("read frame length: %w", err)
		}
		return nil, err // a clean io.EOF between frames stays io.EOF
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	if n > limit {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, limit)
	}
	buf := make([]byte, headroom, headroom+min(n, frameChunk))
	for len(buf)-headroom < n {
		got := len(buf) - headroom
		next := headroom + min(n, max(got*2, got+frameChunk))
		if next > cap(buf) {
			nb := make([]byte, len(buf), next)
			copy(nb, buf)
			buf = nb
		}
		m, err := io.ReadFull(r, buf[len(buf):next])
		buf = buf[:len(buf)+m]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("read frame of %d bytes (got %d): %w", n, len(buf)-headroom, err)
		}
	}
	return buf, nil
}
