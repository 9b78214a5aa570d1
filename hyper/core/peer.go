package core

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"time"

	"github.com/hyperos/hyperos/hyper/core/flat"
	"github.com/hyperos/hyperos/hyper/core/merkle"
	"github.com/hyperos/hyperos/hyper/core/wire"
)

// Replication follows hypercore's lib/replicator.js closely enough for a
// Node peer to treat us as one of its own, without its optimisations:
//
//   - On open each side sends sync (fork, length, flags) and, if it holds
//     a contiguous prefix, range{0, contiguous}; a downloading side also
//     sends want{0, 2^21} so a sparse seeder answers with bitfields.
//   - A reader that sees a longer remote asks for upgrade (and the
//     manifest, until it has one); it asks for blocks that Get waits for
//     once the remote has announced them, with `nodes` set to the
//     ancestors it lacks, so the proof stops at a node it already trusts.
//   - Every data message is verified by Core.Apply before anything is
//     stored; a peer that sends a bad proof is paused (no more requests).
//   - Requests from the remote are answered with Core.Proof, or noData.
//   - A request unanswered for RequestTimeout is cancelled and the peer is
//     skipped for as long, so another peer gets the chance.
//   - A remote on a newer fork (the writer truncated) is asked for its
//     whole signed head; Core.Apply then drops what the fork replaced.
//
// Missing for now: push, hotswaps, and Node's finer-grained reorg that
// keeps every unchanged block (we keep only whole unchanged root trees).

// MaxInflight bounds the requests we keep outstanding per peer.
const MaxInflight = 64

// DefaultRequestTimeout is how long a request may stay unanswered before
// it is cancelled and planned again, preferably on another peer.
const DefaultRequestTimeout = 10 * time.Second

// pending is a request we sent and when.
type pending struct {
	*wire.Request
	at time.Time
}

// wantAll is the range Node's compat want batching covers at once.
const wantAll = 1 << 21

// ErrMisbehaved marks errors from Peer.Handle caused by the remote, such
// as a proof that does not verify.
var ErrMisbehaved = errors.New("core: peer misbehaved")

// ErrBadCapability means the remote could not prove it knows the core key.
var ErrBadCapability = errors.New("core: invalid replication capability")

// Handshake returns our channel open payload: the capability for this
// Noise session (handshakeHash, our role as initiator or responder).
func Handshake(c *Core, initiator bool, handshakeHash []byte) (*wire.Handshake, error) {
	capa, err := merkle.Capability(initiator, c.Key(), handshakeHash)
	if err != nil {
		return nil, fmt.Errorf("capability: %w", err)
	}
	return &wire.Handshake{Seeks: true, Capability: capa}, nil
}

// CheckHandshake verifies the remote's open payload; the remote has the
// opposite role to ours.
func CheckHandshake(c *Core, initiator bool, handshakeHash []byte, h *wire.Handshake) error {
	want, err := merkle.Capability(!initiator, c.Key(), handshakeHash)
	if err != nil {
		return fmt.Errorf("capability: %w", err)
	}
	if want != h.Capability {
		return ErrBadCapability
	}
	return nil
}

// maxSparseBits bounds the sparse part of what we track about a remote
// (2 MiB of bits): a hostile peer must not be able to make us allocate or
// loop in proportion to the numbers it sends. Contiguous prefixes, the
// common case, are tracked in O(1) whatever their length.
const maxSparseBits = 1 << 24

// have records which blocks a remote announced: a contiguous prefix plus a
// bounded bitset for the rest.
type have struct {
	contig uint64
	words  []uint64
}

func (h *have) get(i uint64) bool {
	if i < h.contig {
		return true
	}
	w := i / 64
	return w < uint64(len(h.words)) && h.words[w]&(1<<(i%64)) != 0
}

// firstIn returns the first announced block in [start, end).
func (h *have) firstIn(start, end uint64) (uint64, bool) {
	if start < h.contig {
		return start, true
	}
	for i := start; i < end && i < uint64(len(h.words))*64; i++ {
		w := h.words[i/64]
		if w == 0 {
			i |= 63 // skip the rest of an empty word
			continue
		}
		if w&(1<<(i%64)) != 0 {
			return i, true
		}
	}
	return 0, false
}

// setRange marks [start, start+length) as present or dropped.
func (h *have) setRange(start, length uint64, v bool) {
	end := start + length
	if end < start {
		end = ^uint64(0)
	}
	if v {
		if start <= h.contig {
			h.contig = max(h.contig, end)
			// absorb bits that now continue the prefix
			for h.get(h.contig) && h.contig < maxSparseBits {
				h.contig++
			}
			return
		}
		h.fill(start, end, true)
		return
	}
	if start < h.contig {
		old := h.contig
		h.contig = start
		h.fill(min(end, old), old, true)
	}
	h.fill(start, end, false)
}

// fill sets bits word by word, ignoring anything beyond maxSparseBits.
func (h *have) fill(start, end uint64, v bool) {
	end = min(end, maxSparseBits)
	if start >= end {
		return
	}
	if v && (end-1)/64 >= uint64(len(h.words)) {
		h.words = append(h.words, make([]uint64, int((end-1)/64)+1-len(h.words))...)
	}
	for i := start; i < end; {
		w := i / 64
		if w >= uint64(len(h.words)) {
			return
		}
		lo := i % 64
		hi := min(uint64(64), lo+(end-i))
		var mask uint64
		if hi-lo == 64 {
			mask = ^uint64(0)
		} else {
			mask = ((1 << (hi - lo)) - 1) << lo
		}
		if v {
			h.words[w] |= mask
		} else {
			h.words[w] &^= mask
		}
		i += hi - lo
	}
}

// Replicator connects one Core to any number of peers.
type Replicator struct {
	core *Core

	mu     sync.Mutex
	sendMu sync.Mutex
	peers  []*Peer
	// wanted holds blocks a Get is waiting for.
	wanted map[uint64]bool
	// seeks maps a tree node a Seek is stuck at to the byte offset sought;
	// seekInflight marks the nodes already asked about.
	seeks        map[uint64]uint64
	seekInflight map[uint64]*Peer
	// blockInflight maps a requested block to the peer asked for it.
	blockInflight map[uint64]*Peer
	upgrading     *Peer
	// outbox collects messages while mu is held; flushed in order after.
	outbox     []outMsg
	extensions map[string]func(*Peer, []byte)
	closed     bool
	// RequestTimeout overrides DefaultRequestTimeout when set before use.
	RequestTimeout time.Duration
	now            func() time.Time
}

type outMsg struct {
	p *Peer
	m wire.Message
}

// NewReplicator attaches replication to c: Get on c will ask peers for
// missing blocks, and local appends are announced to them.
func NewReplicator(c *Core) *Replicator {
	r := &Replicator{core: c, wanted: map[uint64]bool{}, blockInflight: map[uint64]*Peer{},
		seeks: map[uint64]uint64{}, seekInflight: map[uint64]*Peer{}, now: time.Now}
	c.SetFetcher(r.fetch)
	c.SetSeekFetcher(r.fetchSeek)
	c.OnEvent(r.onEvent)
	return r
}

// Peer is one remote on one replication channel.
type Peer struct {
	r    *Replicator
	send func(wire.Message) error

	opened       bool
	synced       bool
	paused       bool
	closed       bool
	remoteFork   uint64
	remoteLength uint64
	remoteAcked  uint64 // what the remote says our length is
	remoteCanUp  bool
	remoteUpload bool
	remoteDown   bool
	remoteHave   have
	inflight     map[uint64]*pending
	wantSent     map[uint64]bool // want windows (of wantAll blocks) sent
	lastExtSent  string
	lastExtRecv  string
	backoff      time.Time // no new requests before this (after a timeout)
	sendErr      error
}

// AddPeer registers a remote whose messages go out through send. Call
// Open once the channel is open, Handle for every incoming message and
// Close when the channel closes.
func (r *Replicator) AddPeer(send func(wire.Message) error) *Peer {
	p := &Peer{r: r, send: send, inflight: map[uint64]*pending{}, wantSent: map[uint64]bool{}}
	r.mu.Lock()
	p.closed = r.closed
	r.peers = append(r.peers, p)
	r.mu.Unlock()
	return p
}

// flush sends what the locked section queued. It is called with mu held
// and releases it, holding sendMu so that messages keep their order.
func (r *Replicator) flush() {
	out := r.outbox[:0:0]
	for _, o := range r.outbox {
		if !o.p.closed {
			out = append(out, o)
		}
	}
	r.outbox = nil
	r.sendMu.Lock()
	r.mu.Unlock()
	type failure struct {
		p   *Peer
		err error
	}
	var failed []failure
	for _, o := range out {
		if err := o.p.send(o.m); err != nil {
			failed = append(failed, failure{o.p, fmt.Errorf("send %s: %w", o.m.Type(), err)})
		}
	}
	r.sendMu.Unlock()
	if len(failed) > 0 {
		r.mu.Lock()
		for _, f := range failed {
			if f.p.sendErr == nil {
				f.p.sendErr = f.err
			}
		}
		r.mu.Unlock()
	}
}

// err returns the first send failure, if any.
func (p *Peer) err() error {
	p.r.mu.Lock()
	defer p.r.mu.Unlock()
	return p.sendErr
}

func (p *Peer) queue(m wire.Message) { p.r.outbox = append(p.r.outbox, outMsg{p, m}) }

func (r *Replicator) syncMessage(p *Peer) *wire.Sync {
	t := r.core.Tree()
	s := &wire.Sync{
		Fork:        t.Fork,
		Length:      t.Length,
		Uploading:   true,
		Downloading: !r.core.Writable(),
		HasManifest: r.core.Manifest() != nil,
	}
	if p.synced && p.remoteFork == t.Fork {
		s.RemoteLength = p.remoteLength
		s.CanUpgrade = t.Length > p.remoteLength
	}
	return s
}

// Open starts replication on an opened channel.
func (p *Peer) Open() error {
	r := p.r
	r.mu.Lock()
	p.opened = true
	p.queue(r.syncMessage(p))
	if contig := r.core.ContiguousLength(); contig > 0 {
		p.queue(&wire.Range{Start: 0, Length: contig})
	}
	if !r.core.Writable() {
		p.queue(&wire.Want{Start: 0, Length: wantAll})
		p.wantSent[0] = true
	}
	r.flush()
	return p.err()
}

// Close forgets the peer and re-plans its outstanding requests elsewhere.
func (p *Peer) Close() {
	r := p.r
	r.mu.Lock()
	p.closed = true
	for i, peer := range r.peers {
		if peer == p {
			r.peers = append(r.peers[:i], r.peers[i+1:]...)
			break
		}
	}
	r.releaseLocked(p)
	r.updateLocked()
	r.flush()
}

func (r *Replicator) releaseLocked(p *Peer) {
	for idx, q := range r.blockInflight {
		if q == p {
			delete(r.blockInflight, idx)
		}
	}
	if r.upgrading == p {
		r.upgrading = nil
	}
	for n, q := range r.seekInflight {
		if q == p {
			delete(r.seekInflight, n)
		}
	}
	p.inflight = map[uint64]*pending{}
}

// seekNode is the tree node a hash+seek request was about.
func seekNode(req *wire.Request) (uint64, bool) {
	if req.Hash == nil || req.Seek == nil {
		return 0, false
	}
	it := flat.NewIterator(req.Hash.Index)
	for i := uint64(0); i < req.Hash.Nodes && i < maxSeekDepth; i++ {
		it.Parent()
	}
	return it.Index, true
}

// maxSeekDepth bounds the climb in seekNode (a tree of 2^64 blocks).
const maxSeekDepth = 64

// Handle processes one incoming message. Errors wrapping ErrMisbehaved
// prove the remote misbehaves (the caller may close the channel); any
// other error is a failure to send on this peer's channel.
func (p *Peer) Handle(m wire.Message) error {
	r := p.r
	switch m := m.(type) {
	case *wire.Sync:
		r.mu.Lock()
		p.synced = true
		p.remoteFork, p.remoteLength, p.remoteAcked = m.Fork, m.Length, m.RemoteLength
		p.remoteCanUp, p.remoteUpload, p.remoteDown = m.CanUpgrade, m.Uploading, m.Downloading
		// Like Node, answer a shorter remote with our sync every time: the
		// remote only asks for an upgrade once our sync acknowledges its
		// current length (its "lengthAcked"), e.g. after it changed fork.
		t := r.core.Tree()
		if t.Fork == m.Fork && t.Length > m.Length {
			p.queue(r.syncMessage(p))
		}
		r.updateLocked()
		r.flush()
	case *wire.Range:
		r.mu.Lock()
		p.remoteHave.setRange(m.Start, m.Length, !m.Drop)
		r.updateLocked()
		r.flush()
	case *wire.Bitfield:
		r.mu.Lock()
		for w, word := range m.Bitfield {
			for word != 0 {
				b := uint64(bits.TrailingZeros32(word))
				i := m.Start + uint64(w)*32 + b
				p.remoteHave.setRange(i, 1, true)
				word &= word - 1
			}
		}
		r.updateLocked()
		r.flush()
	case *wire.Want:
		r.mu.Lock()
		r.answerWantLocked(p, m.Start, m.Length)
		r.flush()
	case *wire.Request:
		d, reason, _ := r.core.Proof(m)
		r.mu.Lock()
		if d != nil {
			p.queue(d)
		} else {
			p.queue(&wire.NoData{Request: m.ID, Reason: reason})
		}
		r.flush()
	case *wire.Data:
		return p.onData(m)
	case *wire.NoData:
		r.mu.Lock()
		if req, ok := p.inflight[m.Request]; ok {
			delete(p.inflight, m.Request)
			if req.Block != nil {
				delete(r.blockInflight, req.Block.Index)
				p.remoteHave.setRange(req.Block.Index, 1, false)
			}
			if req.Upgrade != nil && r.upgrading == p {
				r.upgrading = nil
				p.remoteCanUp = false
			}
			if n, ok := seekNode(req.Request); ok && r.seekInflight[n] == p {
				delete(r.seekInflight, n)
			}
		}
		r.updateLocked()
		r.flush()
	case *wire.Extension:
		r.mu.Lock()
		name := m.Name
		if name == "" {
			name = p.lastExtRecv // empty means "same as the previous one"
		}
		p.lastExtRecv = name
		h := r.extensions[name]
		r.mu.Unlock()
		if h != nil {
			h(p, m.Message)
		}
	case *wire.Unwant, *wire.Cancel:
		// We answer requests synchronously, so there is nothing to cancel,
		// and a want is answered once, so there is nothing to withdraw.
	default:
		return fmt.Errorf("unexpected message %T: %w", m, ErrMisbehaved)
	}
	return p.err()
}

func (p *Peer) onData(d *wire.Data) error {
	r := p.r
	r.mu.Lock()
	req, ok := p.inflight[d.Request]
	if !ok || d.Request == 0 {
		r.mu.Unlock()
		return nil // unsolicited (push) data is ignored, as Node does by default
	}
	delete(p.inflight, d.Request)
	r.mu.Unlock()

	err := r.core.Apply(d)

	r.mu.Lock()
	if req.Block != nil {
		delete(r.blockInflight, req.Block.Index)
	}
	if req.Upgrade != nil && r.upgrading == p {
		r.upgrading = nil
	}
	if n, ok := seekNode(req.Request); ok {
		if r.seekInflight[n] == p {
			delete(r.seekInflight, n)
		}
		delete(r.seeks, n) // answered; a Seek still stuck will ask again
	}
	if err != nil {
		p.paused = true
		r.updateLocked()
		r.flush()
		return fmt.Errorf("%w: invalid data: %w", ErrMisbehaved, err)
	}
	if d.Block != nil {
		p.remoteHave.setRange(d.Block.Index, 1, true)
	}
	r.updateLocked()
	r.flush()
	return p.err()
}

// answerWantLocked tells the remote what we have in [start, start+length),
// as range when we hold a contiguous prefix covering it, else as bitfields.
func (r *Replicator) answerWantLocked(p *Peer, start, length uint64) {
	t := r.core.Tree()
	contig := r.core.ContiguousLength()
	if start+length < contig || t.Length == contig {
		if contig > 0 {
			p.queue(&wire.Range{Start: 0, Length: contig})
		}
		return
	}
	if start >= t.Length {
		return
	}
	length = min(length, t.Length-start)
	from := start &^ 31
	end := start + length
	const maxWords = 1 << 15
	for from < end {
		n := min((end-from+31)/32, maxWords)
		words := make([]uint32, n)
		nonEmpty := false
		for i := uint64(0); i < n*32; i++ {
			if r.core.Has(from + i) {
				words[i/32] |= 1 << (i % 32)
				nonEmpty = true
			}
		}
		if nonEmpty {
			p.queue(&wire.Bitfield{Start: from, Bitfield: words})
		}
		from += n * 32
	}
}

func (p *Peer) nextID() uint64 {
	for id := uint64(1); ; id++ {
		if _, busy := p.inflight[id]; !busy {
			return id
		}
	}
}

// expireLocked cancels requests that waited longer than the timeout and
// puts their peer on hold, so that planning moves to other peers.
func (r *Replicator) expireLocked() {
	timeout := r.RequestTimeout
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	now := r.now()
	for _, p := range r.peers {
		for id, req := range p.inflight {
			if now.Sub(req.at) < timeout {
				continue
			}
			delete(p.inflight, id)
			if req.Block != nil && r.blockInflight[req.Block.Index] == p {
				delete(r.blockInflight, req.Block.Index)
			}
			if req.Upgrade != nil && r.upgrading == p {
				r.upgrading = nil
			}
			if n, ok := seekNode(req.Request); ok && r.seekInflight[n] == p {
				delete(r.seekInflight, n)
			}
			p.backoff = now.Add(timeout)
			p.queue(&wire.Cancel{Request: id})
		}
	}
}

// usable reports whether we may send p a new request now.
func (r *Replicator) usable(p *Peer) bool {
	return p.opened && p.synced && !p.paused && !p.closed && len(p.inflight) < MaxInflight && !r.now().Before(p.backoff)
}

// updateLocked plans requests: first an upgrade if a peer is ahead, then
// the blocks Get waits for.
func (r *Replicator) updateLocked() {
	r.expireLocked()
	t := r.core.Tree()
	defer r.planSeeksLocked(t)
	needManifest := r.core.Manifest() == nil
	if r.upgrading == nil {
		for _, p := range r.peers {
			if !r.usable(p) {
				continue
			}
			var up *wire.RequestUpgrade
			switch {
			case p.remoteFork == t.Fork || t.Length == 0:
				if p.remoteLength > t.Length {
					up = &wire.RequestUpgrade{Start: t.Length, Length: p.remoteLength - t.Length}
				}
			case p.remoteFork > t.Fork && p.remoteLength > 0:
				// the writer truncated: re-verify its new head from scratch
				up = &wire.RequestUpgrade{Start: 0, Length: p.remoteLength}
			}
			if up == nil {
				continue
			}
			req := &wire.Request{ID: p.nextID(), Fork: p.remoteFork, Upgrade: up, Manifest: needManifest}
			p.inflight[req.ID] = &pending{req, r.now()}
			r.upgrading = p
			p.queue(req)
			break
		}
	}
	for idx := range r.wanted {
		if r.core.Has(idx) {
			delete(r.wanted, idx)
			continue
		}
		if idx >= t.Length || r.blockInflight[idx] != nil {
			continue
		}
		for _, p := range r.peers {
			if !r.usable(p) {
				continue
			}
			if p.remoteFork != t.Fork {
				continue
			}
			if !p.remoteHave.get(idx) {
				// Node announces sparse holdings only in answer to wants,
				// one window of wantAll blocks at a time.
				if w := idx / wantAll; !p.wantSent[w] && !r.core.Writable() {
					p.wantSent[w] = true
					p.queue(&wire.Want{Start: w * wantAll, Length: wantAll})
				}
				continue
			}
			nodes, err := r.core.MissingNodes(idx)
			if err != nil {
				continue
			}
			req := &wire.Request{ID: p.nextID(), Fork: t.Fork, Block: &wire.RequestBlock{Index: idx, Nodes: nodes}, Priority: 1}
			p.inflight[req.ID] = &pending{req, r.now()}
			r.blockInflight[idx] = p
			p.queue(req)
			break
		}
	}
}

// planSeeksLocked asks, for every node a Seek is stuck at, a peer that
// holds a block below it for that block's hash proof plus a seek proof, as
// Node does: the answer carries the path down to the sought block.
func (r *Replicator) planSeeksLocked(t *merkle.Tree) {
	for node, bytes := range r.seeks {
		if r.seekInflight[node] != nil {
			continue
		}
		left, right := flat.Spans(node)
		start, end := left/2, right/2+1
		if end > t.Length {
			delete(r.seeks, node) // not a node of our tree (any more)
			continue
		}
		for _, p := range r.peers {
			if !r.usable(p) || p.remoteFork != t.Fork {
				continue
			}
			i, ok := p.remoteHave.firstIn(start, end)
			if !ok {
				continue
			}
			req := &wire.Request{ID: p.nextID(), Fork: t.Fork,
				Hash: &wire.RequestBlock{Index: 2 * i, Nodes: flat.Depth(node)},
				Seek: &wire.RequestSeek{Bytes: bytes}}
			p.inflight[req.ID] = &pending{req, r.now()}
			r.seekInflight[node] = p
			p.queue(req)
			break
		}
	}
}

// fetchSeek is Core's hook for a Seek stuck at node.
func (r *Replicator) fetchSeek(node, bytes uint64) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.seeks[node] = bytes
	r.updateLocked()
	r.flush()
}

// HandleExtension registers h for extension messages called name (such as
// Hyperbee's "hyperbee" prefetch hints). h runs on the receiving goroutine.
func (r *Replicator) HandleExtension(name string, h func(p *Peer, message []byte)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.extensions == nil {
		r.extensions = map[string]func(*Peer, []byte){}
	}
	r.extensions[name] = h
}

// SendExtension sends an extension message to the remote; like Node it
// leaves the name empty when it repeats the previous one.
func (p *Peer) SendExtension(name string, message []byte) error {
	r := p.r
	r.mu.Lock()
	wireName := name
	if name == p.lastExtSent {
		wireName = ""
	}
	p.lastExtSent = name
	p.queue(&wire.Extension{Name: wireName, Message: message})
	r.flush()
	return p.err()
}

// fetch is Core's hook for a Get that misses.
func (r *Replicator) fetch(index uint64) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.wanted[index] = true
	r.updateLocked()
	r.flush()
}

// Close detaches the replicator from its core and forgets all peers; the
// channels themselves belong to the transport and are closed there.
func (r *Replicator) Close() {
	r.core.SetFetcher(nil)
	r.core.SetSeekFetcher(nil)
	r.mu.Lock()
	r.closed = true
	for _, p := range r.peers {
		p.closed = true
	}
	r.peers = nil
	r.wanted = map[uint64]bool{}
	r.blockInflight = map[uint64]*Peer{}
	r.seeks = map[uint64]uint64{}
	r.seekInflight = map[uint64]*Peer{}
	r.upgrading = nil
	r.mu.Unlock()
}

// onEvent announces local changes: a new length by sync, a new block by
// range, and re-plans requests.
func (r *Replicator) onEvent(ev Event) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	for _, p := range r.peers {
		if !p.opened || p.closed {
			continue
		}
		if ev.Appended {
			p.queue(r.syncMessage(p))
			if contig := r.core.ContiguousLength(); contig > 0 && contig == r.core.Length() {
				p.queue(&wire.Range{Start: 0, Length: contig})
			}
		}
		if ev.HasBlock {
			p.queue(&wire.Range{Start: ev.Block, Length: 1})
		}
	}
	if ev.HasBlock {
		delete(r.wanted, ev.Block)
	}
	r.updateLocked()
	r.flush()
}
