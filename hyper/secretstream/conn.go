// Package secretstream is Hyperswarm's NoiseSecretStream
// (@hyperswarm/secret-stream 6.x) in Go: an encrypted, authenticated,
// message-framed connection over any net.Conn, wire-compatible with Node.
//
// The protocol, in order:
//
//  1. A Noise XX handshake (Noise_XX_Ed25519_ChaChaPoly_BLAKE2b, empty
//     prologue and payloads) in which Diffie-Hellman is done on Ed25519
//     Edwards points, as noise-curve-ed does. Each handshake message is
//     framed with a uint24 little-endian length.
//  2. Each side sends a 56-byte header frame: its stream id
//     (BLAKE2b-256 keyed by the handshake hash over the
//     "hyperswarm/secret-stream" namespace entry for its role) and a
//     24-byte libsodium secretstream header. The receiver checks the id.
//  3. Data frames: uint24 length ‖ libsodium
//     crypto_secretstream_xchacha20poly1305 ciphertext, always with
//     TAG_MESSAGE. An empty message is a keepalive.
//
// A Conn is message-oriented underneath (Protomux maps one frame to one
// message), so besides net.Conn's Read and Write it has ReadMessage and
// WriteMessage, which keep message boundaries.
//
// Usage:
//
//	c := secretstream.Client(tcpConn, &secretstream.Config{KeyPair: kp})
//	if err := c.Handshake(ctx); err != nil { ... }
//	err = c.WriteMessage([]byte("hello"))
//	msg, err := c.ReadMessage()
//
// Handshake is also run implicitly (bounded by Config.HandshakeTimeout) by
// the first Read, Write, ReadMessage or WriteMessage. FromKeys starts a
// stream from a handshake done elsewhere (hyperdht's IK), skipping step 1.
//
// Not implemented: the UDX-only unordered messages (send/trySend, sealed
// with secretbox keys derived from the handshake hash) and other Noise
// patterns than XX.
package secretstream

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/blake2b"
)

// DefaultHandshakeTimeout bounds a handshake when the context has no
// earlier deadline, so a peer that connects and stalls cannot hold a
// goroutine forever.
const DefaultHandshakeTimeout = 10 * time.Second

// writeChunk is how Write splits a byte stream into messages: big enough
// to amortise the per-frame cost, small enough to keep the reader's
// allocations modest.
const writeChunk = 64 << 10

// readBuffer is the size of the buffered reader under a Conn: large
// enough to take many small frames per read, small enough that most of a
// large frame is read straight into its own buffer rather than copied
// through this one.
const readBuffer = 8 << 10

// Config configures a Conn. The zero value is usable: a random identity,
// no keepalive, the default handshake timeout and the protocol's maximum
// message size.
type Config struct {
	// KeyPair is the static identity; a random one is made if empty.
	KeyPair KeyPair
	// RemotePublicKey, if set, makes the handshake fail unless the peer
	// proves this static key.
	RemotePublicKey ed25519.PublicKey
	// KeepAlive, if positive, sends an empty message after this much
	// write inactivity (Hypercore uses 5 s) and, as Node does when
	// keepalives are on, drops empty messages instead of returning them.
	KeepAlive time.Duration
	// HandshakeTimeout bounds the handshake when the context allows
	// longer; 0 means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// MaxMessageSize limits incoming plaintext messages; 0 means
	// MaxMessageSize. Larger frames are refused before being read.
	MaxMessageSize int
}

// Stream id namespaces: crypto.namespace('hyperswarm/secret-stream', 3)
// entries 0 (initiator) and 1 (responder).
var nsInitiator, nsResponder = namespace("hyperswarm/secret-stream", 0), namespace("hyperswarm/secret-stream", 1)

// namespace is hypercore-crypto's namespace(name)[i]:
// BLAKE2b-256(BLAKE2b-256(name) ‖ byte(i)).
func namespace(name string, i byte) [32]byte {
	ns := blake2b.Sum256([]byte(name))
	return blake2b.Sum256(append(ns[:], i))
}

// StreamID returns the id a side puts in its header frame: BLAKE2b-256
// keyed by the handshake hash over the namespace entry for its role. The
// hash is 64 bytes; one longer than BLAKE2b's 64-byte key limit panics.
func StreamID(handshakeHash []byte, initiator bool) [32]byte {
	msg := nsResponder
	if initiator {
		msg = nsInitiator
	}
	h, err := blake2b.New256(handshakeHash)
	if err != nil {
		panic(err) // handshake hashes are 64 bytes, the maximum key size
	}
	h.Write(msg[:])
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Conn is a NoiseSecretStream over a raw connection. It is safe for one
// reader and any number of writers at the same time.
type Conn struct {
	raw       net.Conn
	br        *bufio.Reader
	cfg       Config
	initiator bool
	maxMsg    int
	// ephemeral overrides the random ephemeral key (tests only, to
	// replay Node transcripts).
	ephemeral *KeyPair
	// preset holds keys from a handshake done elsewhere (FromKeys).
	preset *Keys

	hsMu   sync.Mutex
	hsDone atomic.Bool
	hsErr  error

	localPub  ed25519.PublicKey
	remotePub ed25519.PublicKey
	hash      [hashLen]byte

	readMu  sync.Mutex
	pull    ssState
	readErr error
	pending []byte

	writeMu   sync.Mutex
	push      ssState
	wbuf      []byte
	writeErr  error
	lastWrite atomic.Int64

	closeOnce sync.Once
	closed    chan struct{}
}

// Client returns the initiating side of a NoiseSecretStream over raw.
func Client(raw net.Conn, cfg *Config) *Conn { return newConn(raw, cfg, true) }

// Server returns the responding side of a NoiseSecretStream over raw.
func Server(raw net.Conn, cfg *Config) *Conn { return newConn(raw, cfg, false) }

// Keys are the results of a Noise handshake run outside the stream.
// hyperdht runs its Noise IK handshake inside DHT messages and then starts
// the stream with them (Node's start(raw, { handshake })), so the first
// frame on such a connection is the header.
type Keys struct {
	// Tx and Rx are this side's sending and receiving keys (the Noise
	// split, already assigned by role).
	Tx, Rx [32]byte
	// Hash is the 64-byte handshake hash.
	Hash []byte
	// PublicKey and RemotePublicKey are the static keys of both sides.
	PublicKey, RemotePublicKey ed25519.PublicKey
}

// FromKeys returns a Conn over raw that skips the Noise handshake and
// uses keys; Handshake then only exchanges the stream headers.
func FromKeys(raw net.Conn, initiator bool, keys Keys, cfg *Config) *Conn {
	c := newConn(raw, cfg, initiator)
	k := keys
	k.Hash = bytes.Clone(keys.Hash)
	c.preset = &k
	return c
}

func newConn(raw net.Conn, cfg *Config, initiator bool) *Conn {
	c := &Conn{raw: raw, br: bufio.NewReaderSize(raw, readBuffer), initiator: initiator, closed: make(chan struct{})}
	if cfg != nil {
		c.cfg = *cfg
	}
	c.maxMsg = c.cfg.MaxMessageSize
	if c.maxMsg <= 0 || c.maxMsg > MaxMessageSize {
		c.maxMsg = MaxMessageSize
	}
	return c
}

// IsInitiator reports whether this side started the handshake.
func (c *Conn) IsInitiator() bool { return c.initiator }

// PublicKey returns our static public key (after the handshake).
func (c *Conn) PublicKey() ed25519.PublicKey { return c.localPub }

// RemotePublicKey returns the peer's static public key, proven in the
// handshake; nil before the handshake completes.
func (c *Conn) RemotePublicKey() ed25519.PublicKey {
	if !c.hsDone.Load() {
		return nil
	}
	return c.remotePub
}

// HandshakeHash returns the 64-byte Noise handshake hash, which both
// sides share and which Hypercore uses to bind capabilities to this
// connection; nil before the handshake completes.
func (c *Conn) HandshakeHash() []byte {
	if !c.hsDone.Load() || c.hsErr != nil {
		return nil
	}
	h := c.hash
	return h[:]
}

// Handshake runs the Noise handshake and the header exchange if they have
// not run yet. It gives up when ctx is done or the handshake timeout
// passes, whichever is first, and then closes nothing: the caller decides.
func (c *Conn) Handshake(ctx context.Context) error {
	if c.hsDone.Load() {
		return c.hsErr
	}
	c.hsMu.Lock()
	defer c.hsMu.Unlock()
	if c.hsDone.Load() {
		return c.hsErr
	}
	c.hsErr = c.handshake(ctx)
	c.hsDone.Store(true)
	if c.hsErr == nil && c.cfg.KeepAlive > 0 {
		c.lastWrite.Store(time.Now().UnixNano())
		go c.keepAlive()
	}
	return c.hsErr
}

func (c *Conn) role() string {
	if c.initiator {
		return "initiator"
	}
	return "responder"
}

func (c *Conn) handshake(ctx context.Context) (err error) {
	timeout := c.cfg.HandshakeTimeout
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Interrupt blocked I/O when the context ends. The deadline is only
	// touched then, so a caller's own deadlines survive a handshake, and
	// any I/O error after that point is reported as the context's.
	stop := context.AfterFunc(ctx, func() { _ = c.raw.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		fired := !stop()
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("secretstream %s handshake: %w (%v)", c.role(), context.Cause(ctx), err)
		} else if err == nil && fired {
			// The context ended just as we finished; the connection's
			// deadline is now in the past, so it is unusable.
			err = fmt.Errorf("secretstream %s handshake: %w", c.role(), context.Cause(ctx))
		}
	}()

	if k := c.preset; k != nil {
		if len(k.Hash) != hashLen {
			return fmt.Errorf("secretstream: preset handshake hash is %d bytes, want %d", len(k.Hash), hashLen)
		}
		c.localPub, c.remotePub = k.PublicKey, k.RemotePublicKey
		copy(c.hash[:], k.Hash)
		return c.exchangeHeaders(k.Tx, k.Rx)
	}

	static := c.cfg.KeyPair
	if static.Private == nil {
		if static, err = GenerateKeyPair(); err != nil {
			return err
		}
	} else if err := static.valid(); err != nil {
		return fmt.Errorf("secretstream: %w", err)
	}
	var eph KeyPair
	if c.ephemeral != nil {
		eph = *c.ephemeral
	} else if eph, err = GenerateKeyPair(); err != nil {
		return err
	}
	hs := newHandshake(c.initiator, static, eph)
	for !hs.complete {
		myTurn := (hs.step%2 == 0) == c.initiator
		if myTurn {
			msg, err := hs.writeMessage()
			if err != nil {
				return err
			}
			if _, err := c.raw.Write(append(appendFrameHeader(nil, len(msg)), msg...)); err != nil {
				return fmt.Errorf("secretstream %s handshake: write message %d: %w", c.role(), hs.step, err)
			}
			continue
		}
		msg, err := readFrame(c.br, maxHandshakeFrame)
		if err != nil {
			return fmt.Errorf("secretstream %s handshake: read message %d: %w", c.role(), hs.step+1, err)
		}
		if err := hs.readMessage(msg); err != nil {
			return err
		}
	}
	c.localPub = static.Public
	c.remotePub = ed25519.PublicKey(bytes.Clone(hs.rs))
	c.hash = hs.hash
	if c.cfg.RemotePublicKey != nil && !bytes.Equal(c.cfg.RemotePublicKey, c.remotePub) {
		return fmt.Errorf("secretstream %s handshake: peer proved key %x, want %x", c.role(), []byte(c.remotePub), []byte(c.cfg.RemotePublicKey))
	}
	return c.exchangeHeaders(hs.tx, hs.rx)
}

// exchangeHeaders sends our stream id and secretstream header while
// reading the peer's. Both happen at once: over an unbuffered transport
// (net.Pipe) two peers that both wrote first would deadlock.
func (c *Conn) exchangeHeaders(tx, rx [32]byte) error {
	var header [ssHeaderBytes]byte
	if _, err := rand.Read(header[:]); err != nil {
		return fmt.Errorf("secretstream: header nonce: %w", err)
	}
	c.push.init(tx[:], header[:])
	id := StreamID(c.hash[:], c.initiator)
	frame := appendFrameHeader(make([]byte, 0, 3+32+ssHeaderBytes), 32+ssHeaderBytes)
	frame = append(append(frame, id[:]...), header[:]...)
	werr := make(chan error, 1)
	go func() {
		_, err := c.raw.Write(frame)
		werr <- err
	}()

	rerr := func() error {
		msg, err := readFrame(c.br, maxHandshakeFrame)
		if err != nil {
			return fmt.Errorf("secretstream %s: read header: %w", c.role(), err)
		}
		if len(msg) != 32+ssHeaderBytes {
			return fmt.Errorf("secretstream %s: header frame is %d bytes, want 56", c.role(), len(msg))
		}
		want := StreamID(c.hash[:], !c.initiator)
		if !bytes.Equal(msg[:32], want[:]) {
			return fmt.Errorf("secretstream %s: peer sent the wrong stream id", c.role())
		}
		c.pull.init(rx[:], msg[32:])
		return nil
	}()
	if rerr != nil {
		// Let our header go out anyway (the handshake deadline bounds
		// it), so that the peer fails on its own checks rather than
		// waiting for a header we cut off.
		<-werr
		return rerr
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("secretstream %s: write header: %w", c.role(), err)
	}
	return nil
}

// ReadMessage returns the next message. The slice is the caller's. Empty
// messages (keepalives) are returned as empty slices unless keepalives are
// enabled in Config, in which case they are skipped, as Node does.
func (c *Conn) ReadMessage() ([]byte, error) {
	if err := c.Handshake(context.Background()); err != nil {
		return nil, err
	}
	c.readMu.Lock()
	defer c.readMu.Unlock()
	return c.readMessageLocked()
}

func (c *Conn) readMessageLocked() ([]byte, error) {
	for {
		if c.readErr != nil {
			return nil, c.readErr
		}
		buf, err := readFrameAt(c.br, c.maxMsg+ssABytes, sealHeadroom)
		if err != nil {
			c.readErr = err
			return nil, err
		}
		if n := len(buf) - sealHeadroom; n < ssABytes {
			c.readErr = fmt.Errorf("secretstream: %d-byte frame is shorter than the %d-byte overhead", n, ssABytes)
			return nil, c.readErr
		}
		// Decrypt in place: the plaintext lands after the tag byte.
		if _, err := c.pull.open(buf); err != nil {
			c.readErr = err
			return nil, err
		}
		msg := buf[sealHeadroom+1 : len(buf)-16 : len(buf)-16]
		if len(msg) == 0 && c.cfg.KeepAlive > 0 {
			continue
		}
		return msg, nil
	}
}

// WriteMessage encrypts msg into one frame and writes it. msg may be
// empty (a keepalive). After a failed write the Conn refuses further
// writes, since the peer's decryption state can no longer match ours.
func (c *Conn) WriteMessage(msg []byte) error {
	if err := c.Handshake(context.Background()); err != nil {
		return err
	}
	if len(msg) > MaxMessageSize {
		return fmt.Errorf("secretstream: %d-byte message exceeds %d, the largest frame", len(msg), MaxMessageSize)
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.writeErr != nil {
		return c.writeErr
	}
	// Seal in place behind sealHeadroom scratch bytes, the last three of
	// which then take the frame header.
	need := sealHeadroom + 1 + len(msg) + 16
	if cap(c.wbuf) < need {
		c.wbuf = make([]byte, need)
	}
	buf := c.wbuf[:need]
	copy(buf[sealHeadroom+1:], msg)
	c.push.seal(buf, tagMessage)
	appendFrameHeader(buf[sealHeadroom-3:sealHeadroom-3], len(msg)+ssABytes)
	_, err := c.raw.Write(buf[sealHeadroom-3:])
	if cap(c.wbuf) > 4*writeChunk {
		c.wbuf = nil // do not pin a huge buffer after one big message
	}
	if err != nil {
		c.writeErr = fmt.Errorf("secretstream: write frame: %w", err)
		return c.writeErr
	}
	c.lastWrite.Store(time.Now().UnixNano())
	return nil
}

// maxWriteBatch bounds how many bytes WriteMessages gathers into one
// write of the underlying connection.
const maxWriteBatch = 256 << 10

// WriteMessages writes msgs in order, as WriteMessage would one by one,
// but gathers their frames into few writes of the underlying connection
// (one, unless they exceed maxWriteBatch together).
func (c *Conn) WriteMessages(msgs [][]byte) error {
	if err := c.Handshake(context.Background()); err != nil {
		return err
	}
	for _, msg := range msgs {
		if len(msg) > MaxMessageSize {
			return fmt.Errorf("secretstream: %d-byte message exceeds %d, the largest frame", len(msg), MaxMessageSize)
		}
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	for len(msgs) > 0 {
		if c.writeErr != nil {
			return c.writeErr
		}
		// The frames of msgs[:n], each 3+ssABytes bytes over its message,
		// after sealHeadroom-3 bytes of scratch.
		n, size := 0, sealHeadroom-3
		for n < len(msgs) && (n == 0 || size+3+len(msgs[n])+ssABytes <= maxWriteBatch) {
			size += 3 + len(msgs[n]) + ssABytes
			n++
		}
		if cap(c.wbuf) < size {
			c.wbuf = make([]byte, size)
		}
		buf := c.wbuf[:size]
		off := sealHeadroom - 3
		for _, msg := range msgs[:n] {
			// This frame's message starts at off+4; the 63 bytes before it
			// (its header and the end of the previous frame, or the
			// scratch) are borrowed for sealing and put back.
			start := off + 4 - 1 - sealHeadroom
			var save [sealHeadroom]byte
			copy(save[:], buf[start:start+sealHeadroom])
			end := off + 3 + len(msg) + ssABytes
			copy(buf[off+4:], msg)
			c.push.seal(buf[start:end], tagMessage)
			copy(buf[start:start+sealHeadroom], save[:])
			appendFrameHeader(buf[off:off], len(msg)+ssABytes)
			off = end
		}
		_, err := c.raw.Write(buf[sealHeadroom-3:])
		if cap(c.wbuf) > 4*maxWriteBatch {
			c.wbuf = nil
		}
		if err != nil {
			c.writeErr = fmt.Errorf("secretstream: write frame: %w", err)
			return c.writeErr
		}
		c.lastWrite.Store(time.Now().UnixNano())
		msgs = msgs[n:]
	}
	return nil
}

// SendKeepAlive writes an empty message.
func (c *Conn) SendKeepAlive() error { return c.WriteMessage(nil) }

func (c *Conn) keepAlive() {
	t := time.NewTimer(c.cfg.KeepAlive)
	defer t.Stop()
	for {
		select {
		case <-c.closed:
			return
		case <-t.C:
		}
		idle := time.Since(time.Unix(0, c.lastWrite.Load()))
		if idle >= c.cfg.KeepAlive {
			if err := c.WriteMessage(nil); err != nil {
				return
			}
			idle = 0
		}
		t.Reset(c.cfg.KeepAlive - idle)
	}
}

// Read reads decrypted bytes, ignoring message boundaries. Use either
// Read or ReadMessage on a Conn, not both: bytes Read has buffered are
// not returned by ReadMessage.
func (c *Conn) Read(b []byte) (int, error) {
	if err := c.Handshake(context.Background()); err != nil {
		return 0, err
	}
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for len(c.pending) == 0 {
		if len(b) == 0 {
			return 0, nil
		}
		msg, err := c.readMessageLocked()
		if err != nil {
			return 0, err
		}
		c.pending = msg
	}
	n := copy(b, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// Write encrypts b as one or more messages.
func (c *Conn) Write(b []byte) (int, error) {
	n := 0
	for {
		chunk := b[n:min(len(b), n+writeChunk)]
		if len(chunk) == 0 && n > 0 {
			return n, nil
		}
		if len(chunk) == 0 {
			return 0, nil // an empty Write sends nothing, as with net.Conn
		}
		if err := c.WriteMessage(chunk); err != nil {
			return n, err
		}
		n += len(chunk)
	}
}

// Close closes the underlying connection and stops the keepalive timer.
func (c *Conn) Close() error {
	err := net.ErrClosed
	c.closeOnce.Do(func() {
		close(c.closed)
		err = c.raw.Close()
	})
	return err
}

// CloseWrite half-closes the underlying connection when it supports that
// (TCP, unix sockets): the peer sees the end of the stream, as when a
// Node NoiseSecretStream is ended.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.raw.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("secretstream: underlying connection cannot half-close")
}

// LocalAddr returns the underlying connection's local address.
func (c *Conn) LocalAddr() net.Addr { return c.raw.LocalAddr() }

// RemoteAddr returns the underlying connection's remote address.
func (c *Conn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

// SetDeadline sets the underlying connection's deadlines.
func (c *Conn) SetDeadline(t time.Time) error { return c.raw.SetDeadline(t) }

// SetReadDeadline sets the underlying connection's read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.raw.SetReadDeadline(t) }

// SetWriteDeadline sets the underlying connection's write deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.raw.SetWriteDeadline(t) }

var _ net.Conn = (*Conn)(nil)
