package peer

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/hyperos/hyperos/hyper/core"
	"github.com/hyperos/hyperos/hyper/core/merkle"
	"github.com/hyperos/hyperos/hyper/core/wire"
	"github.com/hyperos/hyperos/hyper/corestore"
)

// Download is the bulk path, like Node's core.download({start, end}): it
// sends block requests itself, straight on the connections' channels, and
// hands each answer to the core (Core.ApplyHashed), which verifies it
// before storing it.
//
// It exists because fetching a large file through Core.Get goes through
// the replicator, which asks one peer at a time for what the Gets in
// flight want; Download keeps `window` requests in flight across all
// connections itself, hashes the answers' blocks two at a time off the
// connections' readers, and applies them on its workers.
//
// Its request ids start at dlFirstID, far above the ids hyper/core's peer
// uses (it counts from 1 and reuses freed ones), so answers are told apart
// before the replicator sees them.

// dlFirstID is the first request id Download uses on a channel.
const dlFirstID = 1 << 40

// dlResult answers one of Download's requests: the data, not yet
// verified, or why there is none. The reader goroutine only routes the
// answer; the waiting goroutine has it hashed and then verifies and
// stores it.
type dlResult struct {
	data *wire.Data
	err  error
}

var (
	errChannelClosed = errors.New("peer: channel closed")
	errNoData        = errors.New("peer: remote has no data for the request")
	errNotHave       = errors.New("peer: remote does not have the block")
)

// DownloadOptions configure Download.
type DownloadOptions struct {
	// Window is how many requests are in flight at once (default 64).
	Window int
	// Timeout is how long one request may go unanswered before it is
	// tried on another connection (default core.DefaultRequestTimeout).
	Timeout time.Duration
	// OnBlock, if set, is called (from several goroutines) with each
	// block of the range once it is verified and stored, so a caller
	// writing the blocks out need not read them back. value must not be
	// modified.
	OnBlock func(index uint64, value []byte)
}

// Download makes sure blocks [start, end) of cc are stored, fetching the
// missing ones over conns. Blocks no connection can serve (a sparse peer,
// every connection failed) are left to cc's replicator through Get, which
// waits for ctx like any read.
func Download(ctx context.Context, cc *corestore.Core, conns []*Conn, start, end uint64, opts *DownloadOptions) error {
	var o DownloadOptions
	if opts != nil {
		o = *opts
	}
	if o.Window <= 0 {
		o.Window = 64
	}
	if o.Timeout <= 0 {
		o.Timeout = core.DefaultRequestTimeout
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Know every remote's length first: a request goes only to a remote
	// that announced the block, and one that just opened the channel has
	// not said anything yet.
	var sw sync.WaitGroup
	for _, c := range conns {
		sw.Add(1)
		go func() { defer sw.Done(); c.Synced(ctx, cc) }()
	}
	sw.Wait()
	// Block proofs are checked against the signed tree, so the core must
	// know a signed length covering the range first; getting the last
	// block has the replicator fetch that upgrade.
	if end > start && cc.Length() < end {
		if _, err := cc.Get(ctx, end-1); err != nil {
			return fmt.Errorf("peer: download blocks %d-%d: %w", start, end, err)
		}
	}
	// Blocks no connection serves go through Get and the replicator, a
	// few at a time.
	fallback := make(chan struct{}, 4)
	hasher := newPairHasher(1)
	defer hasher.stop()
	work := make(chan uint64)
	var wg sync.WaitGroup
	var bad sync.Map // *Conn → true once it failed a request
	for w := 0; w < o.Window; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				value, err := fetchOne(ctx, cc, conns, &bad, fallback, hasher, i, o.Timeout)
				if err != nil {
					cancel(err)
					return
				}
				if o.OnBlock != nil {
					o.OnBlock(i, value)
				}
			}
		}()
	}
feed:
	for i := start; i < end; i++ {
		if cc.Has(i) {
			if o.OnBlock != nil {
				b, err := cc.Get(ctx, i)
				if err != nil {
					cancel(err)
					break feed
				}
				o.OnBlock(i, b)
			}
			continue
		}
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("peer: download blocks %d-%d: %w", start, end, err)
	} else if err := ctx.Err(); err != nil {
		return fmt.Errorf("peer: download blocks %d-%d: %w", start, end, context.Cause(ctx))
	}
	return nil
}

// pairHasher computes leaf hashes for Download's workers on goroutines of
// its own (Download runs one), two blocks at a time whenever two are
// waiting (merkle.LeafHashes, about as fast for two blocks as for one):
// when hashing is what holds the download back, requests queue up and
// pair.
type pairHasher struct {
	q    chan *hashReq
	quit chan struct{}
}

type hashReq struct {
	value []byte
	leaf  [32]byte
	done  chan struct{}
}

func newPairHasher(n int) *pairHasher {
	p := &pairHasher{q: make(chan *hashReq), quit: make(chan struct{})}
	for range n {
		go p.run()
	}
	return p
}

func (p *pairHasher) run() {
	for {
		var r *hashReq
		select {
		case r = <-p.q:
		case <-p.quit:
			return
		}
		batch := []*hashReq{r}
		for try := 0; try < 2 && len(batch) == 1; try++ {
			if try > 0 {
				// Let the reader and the workers run once: the next
				// block is often about to be submitted.
				runtime.Gosched()
			}
			select {
			case r2 := <-p.q:
				batch = append(batch, r2)
			default:
			}
		}
		values := make([][]byte, len(batch))
		for i, r := range batch {
			values[i] = r.value
		}
		for i, h := range merkle.LeafHashes(values) {
			batch[i].leaf = h
			close(batch[i].done)
		}
	}
}

// hash returns merkle.LeafHash(value).
func (p *pairHasher) hash(value []byte) [32]byte {
	r := &hashReq{value: value, done: make(chan struct{})}
	p.q <- r
	<-r.done
	return r.leaf
}

// stop ends the hashing goroutines; hash must not be called after it.
func (p *pairHasher) stop() { close(p.quit) }

// fetchOne gets block i from the first connection that serves it, then
// falls back to the replicator. It returns the block.
func fetchOne(ctx context.Context, cc *corestore.Core, conns []*Conn, bad *sync.Map, fallback chan struct{}, hasher *pairHasher, i uint64, timeout time.Duration) ([]byte, error) {
	for k := range conns {
		c := conns[(int(i%uint64(len(conns)))+k)%len(conns)]
		if _, isBad := bad.Load(c); isBad || cc.Has(i) {
			continue
		}
		done, err := c.requestBlock(cc, i)
		if errors.Is(err, errNotHave) {
			continue
		}
		if err != nil {
			bad.Store(c, true)
			continue
		}
		t := time.NewTimer(timeout)
		var (
			value []byte
			d     *wire.Data
		)
		select {
		case r := <-done:
			d, err = r.data, r.err
		case <-t.C:
			err = fmt.Errorf("request for block %d timed out", i)
			c.cancelDownload(cc, done)
		case <-ctx.Done():
			t.Stop()
			c.cancelDownload(cc, done)
			return nil, ctx.Err()
		}
		t.Stop()
		if err == nil {
			if value, err = c.applyDownload(cc, d, hasher); err == nil {
				return value, nil
			}
		}
		if !errors.Is(err, errNoData) {
			// Stalled, failed or misbehaved: stop asking it.
			bad.Store(c, true)
		}
	}
	select {
	case fallback <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-fallback }()
	return cc.Get(ctx, i)
}

// requestBlock sends a block request of our own on cc's channel.
func (c *Conn) requestBlock(cc *corestore.Core, i uint64) (<-chan dlResult, error) {
	c.mu.Lock()
	chn := c.channels[cc.DiscoveryKey()]
	if c.err != nil || chn == nil || chn.peer == nil || chn.ch == nil {
		err := c.err
		c.mu.Unlock()
		if err == nil {
			err = errChannelClosed
		}
		return nil, err
	}
	// A remote that announced the block in a range surely has it; one
	// whose signed length covers it usually does (a seeder), and says
	// noData otherwise.
	if (i >= chn.remoteContig && i >= chn.remoteLength) || chn.remoteFork != cc.Fork() || i >= cc.Length() {
		c.mu.Unlock()
		return nil, errNotHave
	}
	id := chn.nextDL
	chn.nextDL++
	done := make(chan dlResult, 1)
	chn.dl[id] = done
	ch := chn.ch
	c.mu.Unlock()

	nodes, err := cc.MissingNodes(i)
	if err == nil {
		var b []byte
		req := &wire.Request{ID: id, Fork: cc.Fork(), Block: &wire.RequestBlock{Index: i, Nodes: nodes}}
		if b, err = wire.Marshal(req); err == nil {
			err = ch.Send(uint64(wire.TypeRequest), b)
		}
	}
	if err != nil {
		c.mu.Lock()
		delete(chn.dl, id)
		c.mu.Unlock()
		return nil, err
	}
	return done, nil
}

// cancelDownload forgets a request whose answer is no longer awaited.
func (c *Conn) cancelDownload(cc *corestore.Core, done <-chan dlResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	chn := c.channels[cc.DiscoveryKey()]
	if chn == nil {
		return
	}
	for id, d := range chn.dl {
		if d == done {
			delete(chn.dl, id)
			if chn.ch != nil {
				if b, err := wire.Marshal(&wire.Cancel{Request: id}); err == nil {
					chn.ch.Send(uint64(wire.TypeCancel), b)
				}
			}
			return
		}
	}
}

// onDownload takes a data message that answers one of Download's
// requests; it reports whether the message was one.
func (chn *channel) onDownload(d *wire.Data) bool {
	if d.Request < dlFirstID {
		return false
	}
	c := chn.c
	c.mu.Lock()
	done, ok := chn.dl[d.Request]
	delete(chn.dl, d.Request)
	c.mu.Unlock()
	if !ok {
		return true // cancelled or timed out: nothing waits for it
	}
	if d.Block == nil {
		done <- dlResult{err: errNoData}
		return true
	}
	done <- dlResult{data: d}
	return true
}

// applyDownload verifies and stores the answer to a block request sent on
// c, and returns the block. Data that does not verify drops c.
func (c *Conn) applyDownload(cc *corestore.Core, d *wire.Data, hasher *pairHasher) ([]byte, error) {
	if err := cc.ApplyHashed(d, hasher.hash(d.Block.Value)); err != nil {
		if remoteFault(err) {
			c.fail(fmt.Errorf("%w: core %x: %w", ErrMisbehaved, cc.DiscoveryKey(), err))
		}
		return nil, err
	}
	return d.Block.Value, nil
}

// remoteFault reports whether Apply refused data because it does not
// verify, rather than because of local trouble (a full disk, a closed
// store), which is no reason to drop an honest peer.
func remoteFault(err error) bool {
	for _, e := range []error{merkle.ErrInvalidProof, merkle.ErrInvalidChecksum, merkle.ErrInvalidSignature,
		merkle.ErrInvalidOperation, merkle.ErrNodeMissing, merkle.ErrBadManifest, core.ErrManifestMismatch} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// onDownloadMiss takes a noData answer to one of Download's requests.
func (chn *channel) onDownloadMiss(n *wire.NoData) bool {
	if n.Request < dlFirstID {
		return false
	}
	c := chn.c
	c.mu.Lock()
	done, ok := chn.dl[n.Request]
	delete(chn.dl, n.Request)
	c.mu.Unlock()
	if ok {
		done <- dlResult{err: errNoData}
	}
	return true
}
