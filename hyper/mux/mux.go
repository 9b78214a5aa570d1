// Package mux is Protomux (npm protomux 3.x) in Go: many message-oriented
// protocol channels over one framed connection, wire-compatible with Node.
//
// Every frame of the underlying connection (one secretstream message) is
// one Protomux message:
//
//	uint channelId ‖ uint type ‖ payload
//
// where channelId is the sender's local id for the channel. Channel 0 is
// the control channel:
//
//	type 0 batch:  uint firstChannel ‖ repeat(uint len ‖ entry); len 0
//	               switches channel (the next uint is the new id); each entry
//	               is uint type ‖ payload for that channel
//	type 1 open:   uint localId ‖ string protocol ‖ optionalBuffer id ‖ handshake
//	type 2 reject: uint remoteId (the id from the rejected open)
//	type 3 close:  uint localId
//
// Each side numbers its own channels from 1 and reuses freed numbers. A
// channel is open when both sides have sent an open for the same
// (protocol, id). When the remote opens something we have not, the pair
// handler registered with Pair is called; if it does not open a matching
// channel, the open is rejected. Node batches constantly, so batches are
// always decoded; Cork and Uncork batch our own output.
//
// Concurrency: New does not read; Start launches the one reader goroutine,
// so pair handlers and channels can be set up first. Channel callbacks
// (OnOpen, OnMessage, and OnClose for remote closes) run on the reader, in
// wire order; they may call Send, Open and Close. All methods are safe for
// concurrent use. Sends are queued and written by a writer goroutine,
// as Node's stream writes are buffered, so a callback that sends never
// blocks the reader on a full socket (two peers doing that at once would
// deadlock); Flush waits for the queue, and MaxQueued bounds it.
package mux

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"github.com/hyperos/hyperos/hyper/compact"
)

// Conn is a message-preserving connection, such as *secretstream.Conn.
// ReadMessage must return a slice the mux may keep (it hands sub-slices to
// OnMessage without copying).
type Conn interface {
	ReadMessage() ([]byte, error)
	WriteMessage([]byte) error
	Close() error
}

// Control message types on channel 0.
const (
	typeBatch  = 0
	typeOpen   = 1
	typeReject = 2
	typeClose  = 3
)

// maxBatch is where Node flushes a corked batch early (MAX_BATCH).
const maxBatch = 8 << 20

// maxChannels bounds how many channel ids a remote may hold open at once,
// so a peer cannot grow our tables without limit.
const maxChannels = 1 << 16

// maxBatchDepth bounds nested batches. Node never nests them, but would
// accept them; we accept a little nesting without unbounded recursion.
const maxBatchDepth = 4

var (
	// ErrClosed is returned when using a closed mux or channel.
	ErrClosed = errors.New("mux: closed")
	// ErrAlreadyOpen is returned by Open when a channel for the same
	// protocol and id is already open on this mux.
	ErrAlreadyOpen = errors.New("mux: channel already open")
	// ErrRejected is returned by WaitOpen when the remote rejected the
	// channel.
	ErrRejected = errors.New("mux: channel rejected by remote")
	// ErrProtocol wraps every error caused by a malformed or impossible
	// message from the remote; the mux is closed after one.
	ErrProtocol = errors.New("mux: protocol violation")
)

// PairFunc is called (on the reader goroutine) when the remote opens a
// channel that has no local counterpart. To accept, it calls Mux.Open for
// the same protocol and id before returning; otherwise the open is
// rejected.
type PairFunc func(m *Mux, protocol string, id []byte)

// ChannelConfig describes a channel to open.
type ChannelConfig struct {
	// Protocol names the protocol, e.g. "hypercore/alpha".
	Protocol string
	// Aliases are other protocol names a remote open may use for this
	// channel (Hypercore registers "hypercore" for "hypercore/alpha").
	Aliases []string
	// ID optionally distinguishes channels of one protocol (Hypercore
	// uses the discovery key). Nil and empty are the same: no id.
	ID []byte
	// Handshake is the already-encoded handshake payload sent with the
	// open message (may be nil).
	Handshake []byte
	// OnOpen is called when both sides have opened, with the remote's
	// encoded handshake payload (the bytes after its id).
	OnOpen func(ch *Channel, handshake []byte)
	// OnMessage is called for each message. Unknown types should be
	// ignored, as Node does. payload belongs to the callee.
	OnMessage func(ch *Channel, typ uint64, payload []byte)
	// OnClose is called once when the channel closes; remote reports
	// whether the remote (a close or reject, or the end of the
	// connection) closed it. It runs on the reader for remote closes, on
	// the caller of Channel.Close for local ones, and on the goroutine
	// that ended the mux (Close, or the reader or writer on an error).
	OnClose func(ch *Channel, remote bool)
}

// Mux multiplexes channels over a Conn.
type Mux struct {
	conn Conn

	// wmu serialises queueing and every change that must reach the wire
	// in the same order as it happened (id allocation and open, close
	// and id reuse). Lock order: wmu, then mu, then qmu.
	wmu       sync.Mutex
	corked    int
	batch     []batchEntry
	batchSize int

	mu      sync.Mutex
	local   []*Channel // by local id - 1
	free    []uint64   // free local ids - 1
	remote  []*remoteSlot
	infos   map[string]*info
	pairs   map[string]PairFunc
	started bool
	closed  bool
	err     error
	pending []*Channel // channels bound to a remote open, awaiting OnOpen

	done     chan struct{}
	doneOnce sync.Once
	stopped  chan struct{} // closed by shutdown

	// The write queue (writer.go), guarded by qmu.
	qmu       sync.Mutex
	outq      [][]byte
	queued    int
	enqueued  uint64
	written   uint64
	qstopped  bool
	progress  chan struct{} // closed and replaced after each write
	wake      chan struct{}
	maxQueued int // MaxQueued; lowered by tests
}

type batchEntry struct {
	localID uint64
	data    []byte // uint type ‖ payload (control messages without their leading 0)
}

type remoteSlot struct {
	ch        *Channel // nil while the open waits for the pair handler
	handshake []byte   // the remote's handshake payload from its open
}

type info struct {
	keys     []string // the protocol's key and its aliases' keys
	opened   int
	outgoing []uint64 // our local ids whose open the remote has not answered
	incoming []uint64 // remote ids whose open we have not answered
}

func key(protocol string, id []byte) string {
	return protocol + "##" + hex.EncodeToString(id)
}

// New returns a mux over conn and starts its writer goroutine. Nothing is
// read until Start, so that the caller can register pair handlers and
// open its channels first: an open from the remote that arrives before
// the matching local Open or Pair is rejected, exactly as in Node. Always
// Close a mux, even one never started.
func New(conn Conn) *Mux {
	m := &Mux{
		conn:      conn,
		infos:     make(map[string]*info),
		pairs:     make(map[string]PairFunc),
		done:      make(chan struct{}),
		stopped:   make(chan struct{}),
		progress:  make(chan struct{}),
		wake:      make(chan struct{}, 1),
		maxQueued: MaxQueued,
	}
	go m.writeLoop()
	return m
}

// Start launches the reader goroutine, which runs until the connection
// fails or Close is called. Calling it again does nothing.
func (m *Mux) Start() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started || m.closed {
		return
	}
	m.started = true
	go m.readLoop()
}

// Done is closed when the mux has stopped and its reader goroutine (if
// started) has returned, so no callback runs after it.
func (m *Mux) Done() <-chan struct{} { return m.done }

// Err returns why the mux stopped (nil while running).
func (m *Mux) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// Close closes the connection and every channel. Messages still queued
// are dropped: call Flush first to let them out. It does not wait for the
// reader goroutine, so that a callback may call it; wait on Done for the
// last callback to have returned.
func (m *Mux) Close() error {
	m.shutdown(ErrClosed)
	m.mu.Lock()
	started := m.started
	m.mu.Unlock()
	if !started {
		m.doneOnce.Do(func() { close(m.done) })
	}
	return nil
}

// Pair registers fn for remote opens of protocol with the given id, or
// with any id when id is nil. An exact (protocol, id) registration wins.
func (m *Mux) Pair(protocol string, id []byte, fn PairFunc) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pairs[pairKey(protocol, id)] = fn
}

// Unpair removes a registration made by Pair.
func (m *Mux) Unpair(protocol string, id []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.pairs, pairKey(protocol, id))
}

func pairKey(protocol string, id []byte) string {
	if id == nil {
		return protocol + "##*"
	}
	return key(protocol, id)
}

// Opened reports whether a channel for protocol and id is open locally.
func (m *Mux) Opened(protocol string, id []byte) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	in := m.infos[key(protocol, id)]
	return in != nil && in.opened > 0
}

// getInfo returns the state for a (protocol, id) key, creating it with
// the given alias keys, which then lead to the same state (as Node's _get).
func (m *Mux) getInfo(k string, aliases ...string) *info {
	in := m.infos[k]
	if in == nil {
		in = &info{keys: []string{k}}
		m.infos[k] = in
		for _, a := range aliases {
			if m.infos[a] == nil {
				in.keys = append(in.keys, a)
				m.infos[a] = in
			}
		}
	}
	return in
}

func (m *Mux) gc(k string) {
	if in := m.infos[k]; in != nil && in.opened == 0 && len(in.outgoing) == 0 && len(in.incoming) == 0 {
		for _, key := range in.keys {
			delete(m.infos, key)
		}
	}
}

// Open creates a channel and sends its open message. It does not wait for
// the remote: use WaitOpen or OnOpen. Messages may be sent at once; the
// remote buffers them until it opens its side.
func (m *Mux) Open(cfg ChannelConfig) (*Channel, error) {
	if len(cfg.ID) == 0 {
		cfg.ID = nil
	}
	ch := &Channel{
		mux:     m,
		cfg:     cfg,
		key:     key(cfg.Protocol, cfg.ID),
		openedC: make(chan struct{}),
		closedC: make(chan struct{}),
	}
	m.wmu.Lock()
	defer m.wmu.Unlock()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	aliases := make([]string, len(cfg.Aliases))
	for i, a := range cfg.Aliases {
		aliases[i] = key(a, cfg.ID)
	}
	in := m.getInfo(ch.key, aliases...)
	if in.opened > 0 {
		m.mu.Unlock()
		return nil, fmt.Errorf("open %q: %w", cfg.Protocol, ErrAlreadyOpen)
	}
	if n := len(m.free); n > 0 {
		ch.localID = m.free[n-1] + 1
		m.free = m.free[:n-1]
	} else {
		m.local = append(m.local, nil)
		ch.localID = uint64(len(m.local))
	}
	m.local[ch.localID-1] = ch
	in.opened++
	bound := false
	for len(in.incoming) > 0 && !bound {
		rid := in.incoming[0]
		in.incoming = in.incoming[1:]
		if slot := m.remote[rid-1]; slot != nil {
			slot.ch = ch
			ch.remoteID = rid
			ch.remoteHandshake = slot.handshake
			m.pending = append(m.pending, ch)
			bound = true
		}
	}
	if !bound {
		in.outgoing = append(in.outgoing, ch.localID)
	}
	m.mu.Unlock()

	var e compact.Encoder
	e.Uint(typeOpen)
	e.Uint(ch.localID)
	e.String(cfg.Protocol)
	e.OptionalBuffer(cfg.ID)
	e.Raw(cfg.Handshake)
	if err := m.writeLocked(0, e.Bytes()); err != nil {
		return nil, fmt.Errorf("open %q: %w", cfg.Protocol, err)
	}
	return ch, nil
}

// Cork starts batching outgoing messages until the matching Uncork, as
// Node does to save frames.
func (m *Mux) Cork() {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	m.corked++
}

// Uncork ends a Cork; the outermost Uncork sends the batch.
func (m *Mux) Uncork() error {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	if m.corked == 0 {
		return errors.New("mux: uncork without cork")
	}
	m.corked--
	if m.corked > 0 {
		return nil
	}
	return m.flushLocked()
}

// writeLocked queues one message (uint type ‖ payload, already encoded in
// data) on a channel, or adds it to the batch when corked. wmu is held.
func (m *Mux) writeLocked(localID uint64, data []byte) error {
	if m.corked > 0 {
		if m.batchSize >= maxBatch {
			if err := m.flushLocked(); err != nil {
				return err
			}
		}
		if n := len(m.batch); n == 0 || m.batch[n-1].localID != localID {
			m.batchSize += 1 + compact.UintSize(localID)
		}
		m.batchSize += compact.UintSize(uint64(len(data))) + len(data)
		m.batch = append(m.batch, batchEntry{localID, data})
		return nil
	}
	frame := compact.AppendUint(make([]byte, 0, compact.UintSize(localID)+len(data)), localID)
	frame = append(frame, data...)
	return m.enqueue(frame)
}

// flushLocked encodes and queues the pending batch. wmu is held.
func (m *Mux) flushLocked() error {
	batch := m.batch
	m.batch, m.batchSize = nil, 0
	if len(batch) == 0 {
		return nil
	}
	return m.enqueue(encodeBatch(batch))
}

func encodeBatch(batch []batchEntry) []byte {
	var e compact.Encoder
	e.Uint(0)
	e.Uint(typeBatch)
	prev := batch[0].localID
	e.Uint(prev)
	for _, b := range batch {
		if b.localID != prev {
			prev = b.localID
			e.Uint(0)
			e.Uint(prev)
		}
		e.Buffer(b.data)
	}
	return e.Bytes()
}

// Channel is one protocol session on a Mux.
type Channel struct {
	mux      *Mux
	cfg      ChannelConfig
	key      string
	localID  uint64
	remoteID uint64 // set under mux.mu

	openedC chan struct{}
	closedC chan struct{}

	// Guarded by mux.mu.
	opened          bool
	closed          bool
	rejected        bool
	remoteHandshake []byte
}

// Protocol returns the channel's protocol name.
func (c *Channel) Protocol() string { return c.cfg.Protocol }

// ID returns the channel's id (nil if none).
func (c *Channel) ID() []byte { return c.cfg.ID }

// Closed is closed when the channel closes.
func (c *Channel) Closed() <-chan struct{} { return c.closedC }

// WaitOpen waits until both sides have opened the channel and returns the
// remote's handshake payload. It fails when the channel closes or is
// rejected first, or when ctx ends.
func (c *Channel) WaitOpen(ctx context.Context) ([]byte, error) {
	select {
	case <-c.openedC:
		c.mux.mu.Lock()
		defer c.mux.mu.Unlock()
		return c.remoteHandshake, nil
	case <-c.closedC:
		c.mux.mu.Lock()
		defer c.mux.mu.Unlock()
		if c.opened {
			return c.remoteHandshake, nil
		}
		if c.rejected {
			return nil, fmt.Errorf("channel %q: %w", c.cfg.Protocol, ErrRejected)
		}
		return nil, fmt.Errorf("channel %q closed before opening: %w", c.cfg.Protocol, ErrClosed)
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for channel %q: %w", c.cfg.Protocol, ctx.Err())
	}
}

// SendContext is Send with backpressure: it first waits while more than
// HighWater bytes are queued. Use it when producing many messages outside
// a callback; callbacks should use Send, since the reader waiting for the
// queue can deadlock two peers that both do so.
func (c *Channel) SendContext(ctx context.Context, typ uint64, payload []byte) error {
	if err := c.mux.waitQueue(ctx); err != nil {
		return fmt.Errorf("send on %q: %w", c.cfg.Protocol, err)
	}
	return c.Send(typ, payload)
}

// Send queues a message of type typ (payload already encoded). It may be
// called before the remote opens. It never waits for the network, so it
// is safe in callbacks; a producer outside callbacks should use
// SendContext, or the queue can overflow MaxQueued and end the mux.
func (c *Channel) Send(typ uint64, payload []byte) error {
	return c.SendAppend(typ, len(payload), func(b []byte) ([]byte, error) { return append(b, payload...), nil })
}

// SendAppend is Send with the payload encoded by appendPayload straight
// into the frame, saving a copy of a large payload; sizeHint is about how
// long the payload is.
func (c *Channel) SendAppend(typ uint64, sizeHint int, appendPayload func([]byte) ([]byte, error)) error {
	// The frame, local id ‖ type ‖ payload, is built here in one piece;
	// the id is only known under wmu, so room is left for the largest.
	const idRoom = 9
	buf := make([]byte, idRoom, idRoom+compact.UintSize(typ)+max(sizeHint, 0))
	buf = compact.AppendUint(buf, typ)
	buf, err := appendPayload(buf)
	if err != nil {
		return fmt.Errorf("send on %q: %w", c.cfg.Protocol, err)
	}
	data := buf[idRoom:]
	m := c.mux
	m.wmu.Lock()
	defer m.wmu.Unlock()
	// Closing holds wmu, so a closed check under wmu cannot race with
	// the reuse of our local id.
	m.mu.Lock()
	closed := c.closed
	m.mu.Unlock()
	if closed {
		return fmt.Errorf("send on %q: %w", c.cfg.Protocol, ErrClosed)
	}
	if m.corked > 0 {
		return m.writeLocked(c.localID, data)
	}
	n := compact.UintSize(c.localID)
	compact.AppendUint(buf[idRoom-n:idRoom-n], c.localID)
	return m.enqueue(buf[idRoom-n:])
}

// Close closes the channel and tells the remote.
func (c *Channel) Close() error {
	m := c.mux
	m.wmu.Lock()
	m.mu.Lock()
	if c.closed {
		m.mu.Unlock()
		m.wmu.Unlock()
		return nil
	}
	id := c.localID
	m.closeChannelLocked(c)
	muxClosed := m.closed
	m.mu.Unlock()
	var err error
	if !muxClosed {
		var e compact.Encoder
		e.Uint(typeClose)
		e.Uint(id)
		err = m.writeLocked(0, e.Bytes())
	}
	m.wmu.Unlock()
	c.fireClose(false)
	return err
}

// closeChannelLocked frees the channel's ids as Node does: the local id
// is reusable at once if the remote had opened; otherwise only once the
// remote answers our open. mu is held; OnClose is the caller's job.
func (m *Mux) closeChannelLocked(c *Channel) {
	c.closed = true
	if in := m.infos[c.key]; in != nil {
		in.opened--
	}
	if c.remoteID > 0 {
		if int(c.remoteID) <= len(m.remote) {
			m.remote[c.remoteID-1] = nil
		}
		c.remoteID = 0
		m.free = append(m.free, c.localID-1)
	}
	if int(c.localID) <= len(m.local) && m.local[c.localID-1] == c {
		m.local[c.localID-1] = nil
	}
	m.gc(c.key)
}

func (c *Channel) fireClose(remote bool) {
	close(c.closedC)
	if c.cfg.OnClose != nil {
		c.cfg.OnClose(c, remote)
	}
}

// readLoop is the mux's single reader.
func (m *Mux) readLoop() {
	var err error
	for {
		var frame []byte
		frame, err = m.conn.ReadMessage()
		if err != nil {
			err = fmt.Errorf("mux read: %w", err)
			break
		}
		m.mu.Lock()
		closed := m.closed
		m.mu.Unlock()
		if closed {
			break // Close raced with this read; deliver nothing more
		}
		if err = m.handleFrame(frame); err != nil {
			break
		}
	}
	m.shutdown(err)
	m.doneOnce.Do(func() { close(m.done) })
}

// shutdown stops the mux once: it closes the connection, which ends the
// reader goroutine, and closes every channel (reporting remote=true, as
// Node does when the stream closes). Done is closed by the reader.
func (m *Mux) shutdown(cause error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	m.err = cause
	m.qmu.Lock()
	m.qstopped = true
	m.outq = nil
	m.qmu.Unlock()
	close(m.stopped)
	var chans []*Channel
	for _, c := range m.local {
		if c != nil && !c.closed {
			chans = append(chans, c)
			c.closed = true
		}
	}
	m.mu.Unlock()
	_ = m.conn.Close()
	for _, c := range chans {
		c.fireClose(true)
	}
}
