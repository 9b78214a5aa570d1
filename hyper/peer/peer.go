// Package peer connects two Hypercore stores over one stream, as Node's
// corestore.replicate(isInitiator) piped to a socket does: a raw
// connection (TCP today, UDX once discovery lands) carries a Noise
// secret stream, that carries Protomux, and Protomux carries one
// "hypercore/alpha" channel per core that both sides hold.
//
// A Conn opens a channel for every core the local corestore.Store has
// open, and for every core it opens later (a Hyperdrive's blobs core
// appears only after the db's header is read). When the remote opens a
// channel for a discovery key we hold, the Conn opens our side of it;
// otherwise the open is rejected, so a remote learns nothing about cores
// it cannot name.
//
// A remote that misbehaves — a wrong capability, a proof or signature that
// does not verify, an undecodable message, an oversized frame — gets its
// whole connection dropped: nothing it sent is stored (hyper/core verifies
// before storing), and the replicator goes on with the store's other
// connections. A remote that stalls has its requests cancelled after the
// store's request timeout and re-planned on other peers.
package peer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hyperos/hyperos/hyper/core"
	"github.com/hyperos/hyperos/hyper/core/wire"
	"github.com/hyperos/hyperos/hyper/corestore"
	"github.com/hyperos/hyperos/hyper/mux"
	"github.com/hyperos/hyperos/hyper/secretstream"
)

// KeepAlive is the secret stream keepalive Hypercore uses (Node's
// createProtocolStream sets 5 s).
const KeepAlive = 5 * time.Second

// DefaultMaxMessageSize bounds one incoming frame. Node batches at most
// 8 MiB, and Hyperdrive blocks are 64 KiB, so anything larger is a peer
// trying to make us allocate.
const DefaultMaxMessageSize = 8 << 20

// ErrMisbehaved wraps the reason a connection was dropped because of what
// the remote sent.
var ErrMisbehaved = errors.New("peer: remote misbehaved")

// Config configures a connection.
type Config struct {
	// KeyPair is our Noise identity; a random one when empty.
	KeyPair secretstream.KeyPair
	// MaxMessageSize overrides DefaultMaxMessageSize.
	MaxMessageSize int
	// Logger receives connection events; slog.Default() when nil.
	Logger *slog.Logger
}

// Conn is one replication connection.
type Conn struct {
	raw   net.Conn
	ss    *secretstream.Conn
	mux   *mux.Mux
	store *corestore.Store
	log   *slog.Logger
	hash  []byte
	init  bool

	unsub func()

	mu       sync.Mutex
	channels map[[32]byte]*channel
	err      error
	done     chan struct{}
	once     sync.Once
	failed   sync.Once // the first failure is logged; the messages still queued behind it fail too
}

// channel is our side of one core's replication channel.
type channel struct {
	c    *Conn
	core *corestore.Core
	ch   *mux.Channel
	peer *core.Peer
	// remoteLength is the longest length the remote announced in sync
	// for the fork we are on (Update waits for it).
	remoteLength uint64
	remoteFork   uint64
	synced       chan struct{}
	syncOnce     sync.Once
	// gone is closed when the channel closes (or is rejected).
	gone     chan struct{}
	goneOnce sync.Once
	// remoteContig is the prefix the remote announced with range{0, n}.
	remoteContig uint64
	// dl holds Download's requests by id (see download.go).
	dl     map[uint64]chan dlResult
	nextDL uint64
}

// Dial connects to addr over TCP and starts replicating st's cores.
func Dial(ctx context.Context, addr string, st *corestore.Store, cfg *Config) (*Conn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("peer: dial %s: %w", addr, err)
	}
	c, err := New(ctx, raw, true, st, cfg)
	if err != nil {
		return nil, fmt.Errorf("peer: %s: %w", addr, err)
	}
	return c, nil
}

// New runs the secret stream handshake over raw (as initiator or
// responder) and starts replicating st's cores. The connection is closed
// if the handshake fails; ctx bounds only the handshake.
func New(ctx context.Context, raw net.Conn, initiator bool, st *corestore.Store, cfg *Config) (*Conn, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	ssCfg := &secretstream.Config{KeyPair: cfg.KeyPair, KeepAlive: KeepAlive, MaxMessageSize: cfg.MaxMessageSize}
	if ssCfg.MaxMessageSize == 0 {
		ssCfg.MaxMessageSize = DefaultMaxMessageSize
	}
	var ss *secretstream.Conn
	if initiator {
		ss = secretstream.Client(raw, ssCfg)
	} else {
		ss = secretstream.Server(raw, ssCfg)
	}
	if err := ss.Handshake(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("%w: %w", errHandshake, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	c := &Conn{
		raw:      raw,
		ss:       ss,
		mux:      mux.New(ss),
		store:    st,
		log:      log.With("remote", raw.RemoteAddr().String()),
		hash:     ss.HandshakeHash(),
		init:     initiator,
		channels: map[[32]byte]*channel{},
		done:     make(chan struct{}),
	}
	c.mux.Pair(wire.Protocol, nil, c.onRemoteOpen)
	c.mux.Pair("hypercore", nil, c.onRemoteOpen)
	// Attach what is open now and whatever opens later; like Node's
	// corestore, cork so that all the opens leave in one frame.
	c.unsub = st.OnOpen(func(cc *corestore.Core) {
		if err := c.attach(cc); err != nil && !errors.Is(err, mux.ErrAlreadyOpen) {
			c.log.Debug("attach core", "core", fmt.Sprintf("%x", cc.DiscoveryKey()), "err", err)
		}
	})
	c.mux.Cork()
	for _, cc := range st.Cores() {
		if err := c.attach(cc); err != nil && !errors.Is(err, mux.ErrAlreadyOpen) {
			c.mux.Uncork()
			c.Close()
			return nil, err
		}
	}
	if err := c.mux.Uncork(); err != nil {
		c.Close()
		return nil, fmt.Errorf("peer: %w", err)
	}
	c.mux.Start()
	go func() {
		<-c.mux.Done()
		c.finish(c.mux.Err())
	}()
	return c, nil
}

// onRemoteOpen accepts a remote's channel for a core we hold.
func (c *Conn) onRemoteOpen(_ *mux.Mux, protocol string, id []byte) {
	if len(id) != 32 {
		return // rejected: Hypercore channels are named by discovery key
	}
	cc, err := c.store.ByDiscoveryKey([32]byte(id))
	if err != nil {
		if !errors.Is(err, corestore.ErrNotFound) {
			c.log.Warn("open core for remote", "err", err)
		}
		return
	}
	// Opening the core in the store may already have attached it
	// through OnOpen; otherwise do it here, before returning, as the mux
	// requires.
	if err := c.attach(cc); err != nil && !errors.Is(err, mux.ErrAlreadyOpen) {
		c.log.Debug("attach core for remote", "err", err)
	}
}

// attach opens our side of the channel for cc.
func (c *Conn) attach(cc *corestore.Core) error {
	dk := cc.DiscoveryKey()
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return c.err
	}
	if c.channels[dk] != nil {
		c.mu.Unlock()
		return mux.ErrAlreadyOpen
	}
	h, err := core.Handshake(cc.Core, c.init, c.hash)
	if err != nil {
		c.mu.Unlock()
		return fmt.Errorf("peer: %w", err)
	}
	chn := &channel{c: c, core: cc, synced: make(chan struct{}), gone: make(chan struct{}), dl: map[uint64]chan dlResult{}, nextDL: dlFirstID}
	c.channels[dk] = chn
	c.mu.Unlock()

	ch, err := c.mux.Open(mux.ChannelConfig{
		Protocol:  wire.Protocol,
		Aliases:   []string{"hypercore"},
		ID:        dk[:],
		Handshake: wire.MarshalHandshake(h),
		OnOpen:    chn.onOpen,
		OnMessage: chn.onMessage,
		OnClose:   chn.onClose,
	})
	if err != nil {
		c.mu.Lock()
		delete(c.channels, dk)
		c.mu.Unlock()
		return fmt.Errorf("peer: open channel: %w", err)
	}
	c.mu.Lock()
	chn.ch = ch
	c.mu.Unlock()
	return nil
}

func (chn *channel) onOpen(ch *mux.Channel, handshake []byte) {
	c := chn.c
	h, err := wire.UnmarshalHandshake(handshake)
	if err != nil {
		c.fail(fmt.Errorf("%w: open for core %x: %v", ErrMisbehaved, chn.core.DiscoveryKey(), err))
		return
	}
	if err := core.CheckHandshake(chn.core.Core, c.init, c.hash, h); err != nil {
		c.fail(fmt.Errorf("%w: core %x: %w", ErrMisbehaved, chn.core.DiscoveryKey(), err))
		return
	}
	p := chn.core.Replicator.AddPeer(func(m wire.Message) error {
		return ch.SendAppend(uint64(m.Type()), wire.SizeHint(m), func(b []byte) ([]byte, error) {
			return wire.MarshalAppend(b, m)
		})
	})
	c.mu.Lock()
	chn.peer = p
	c.mu.Unlock()
	if err := p.Open(); err != nil {
		c.fail(fmt.Errorf("peer: start replication: %w", err))
	}
}

func (chn *channel) onMessage(_ *mux.Channel, typ uint64, payload []byte) {
	c := chn.c
	c.mu.Lock()
	p := chn.peer
	c.mu.Unlock()
	if p == nil {
		return // not open (a failed capability check closes the connection)
	}
	if typ > uint64(wire.TypeExtension) {
		return // newer message types are ignored, as Node does
	}
	m, err := wire.Unmarshal(wire.MessageType(typ), payload)
	if err != nil {
		c.fail(fmt.Errorf("%w: %v", ErrMisbehaved, err))
		return
	}
	switch m := m.(type) {
	case *wire.Sync:
		c.mu.Lock()
		chn.remoteFork, chn.remoteLength = m.Fork, m.Length
		c.mu.Unlock()
		chn.syncOnce.Do(func() { close(chn.synced) })
	case *wire.Range:
		if m.Start == 0 {
			c.mu.Lock()
			if m.Drop {
				chn.remoteContig = 0
			} else {
				chn.remoteContig = max(chn.remoteContig, m.Length)
			}
			c.mu.Unlock()
		}
	case *wire.Data:
		if chn.onDownload(m) {
			return
		}
	case *wire.NoData:
		if chn.onDownloadMiss(m) {
			return
		}
	}
	if err := p.Handle(m); err != nil {
		c.fail(fmt.Errorf("%w: core %x: %w", ErrMisbehaved, chn.core.DiscoveryKey(), err))
	}
}

func (chn *channel) onClose(_ *mux.Channel, remote bool) {
	c := chn.c
	chn.goneOnce.Do(func() { close(chn.gone) })
	c.mu.Lock()
	p := chn.peer
	chn.peer = nil
	for id, done := range chn.dl {
		done <- dlResult{err: errChannelClosed}
		delete(chn.dl, id)
	}
	if c.channels[chn.core.DiscoveryKey()] == chn {
		delete(c.channels, chn.core.DiscoveryKey())
	}
	c.mu.Unlock()
	if p != nil {
		p.Close()
	}
}

// errHandshake wraps every failure of the secret stream handshake.
var errHandshake = errors.New("secret stream handshake")

// fail drops the connection because of err.
func (c *Conn) fail(err error) {
	c.failed.Do(func() { c.log.Warn("dropping peer", "err", err) })
	c.finish(err)
	// Close on another goroutine: fail runs on the mux reader, and Close
	// waits for the reader to finish.
	go c.mux.Close()
}

func (c *Conn) finish(err error) {
	c.once.Do(func() {
		c.mu.Lock()
		if err == nil {
			err = net.ErrClosed
		}
		c.err = err
		chans := make([]*channel, 0, len(c.channels))
		for _, chn := range c.channels {
			chans = append(chans, chn)
		}
		c.channels = map[[32]byte]*channel{}
		c.mu.Unlock()
		if c.unsub != nil {
			c.unsub()
		}
		for _, chn := range chans {
			chn.onClose(nil, false)
		}
		close(c.done)
	})
}

// Synced waits until the remote has sent its first sync for cc (so its
// length is known), and returns the length it announced for our fork, or
// an error when the connection ends first, the remote does not replicate
// cc, or ctx ends.
func (c *Conn) Synced(ctx context.Context, cc *corestore.Core) (uint64, error) {
	c.mu.Lock()
	chn := c.channels[cc.DiscoveryKey()]
	err := c.err
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if chn == nil {
		return 0, fmt.Errorf("peer: core %x is not replicated on this connection", cc.DiscoveryKey())
	}
	select {
	case <-chn.synced:
	case <-chn.gone:
		select {
		case <-chn.synced:
		default:
			return 0, fmt.Errorf("peer: remote does not replicate core %x", cc.DiscoveryKey())
		}
	case <-c.done:
		return 0, c.Err()
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return chn.remoteLength, nil
}

// Done is closed when the connection ends.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended (nil while it runs).
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// RemoteAddr is the remote's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

// Close ends the connection and detaches it from every core, letting
// queued messages out first for at most a second.
func (c *Conn) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	c.mux.Flush(ctx)
	cancel()
	err := c.mux.Close()
	c.finish(nil)
	if errors.Is(err, net.ErrClosed) || errors.Is(err, mux.ErrClosed) {
		err = nil
	}
	return err
}

// Serve accepts connections on ln and replicates st over each until ctx
// ends or ln fails. Connections whose handshake fails are logged and
// dropped; Serve keeps going.
func Serve(ctx context.Context, ln net.Listener, st *corestore.Store, cfg *Config) error {
	log := slog.Default()
	if cfg != nil && cfg.Logger != nil {
		log = cfg.Logger
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[*Conn]bool{}
	defer func() {
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	for {
		raw, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("peer: accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			hctx, cancel := context.WithTimeout(ctx, secretstream.DefaultHandshakeTimeout)
			c, err := New(hctx, raw, false, st, cfg)
			cancel()
			if err != nil {
				// A remote that gives up during the handshake is common
				// (port probes, a dial that timed out); failing after it,
				// while attaching our cores, is ours and worth seeing.
				level := slog.LevelWarn
				if errors.Is(err, errHandshake) {
					level = slog.LevelInfo
				}
				log.Log(ctx, level, "incoming connection failed", "remote", raw.RemoteAddr().String(), "err", err)
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			select {
			case <-c.Done():
			case <-ctx.Done():
				c.Close()
			}
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			log.Debug("connection ended", "remote", raw.RemoteAddr().String(), "err", c.Err())
		}()
	}
}
