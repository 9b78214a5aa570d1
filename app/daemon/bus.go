package daemon

import (
	"sync"
	"time"

	"github.com/hyperos/hyperos/app/api"
)

// subBuffer is how many events a subscriber may fall behind before it is cut
// off. A blocked reader must never hold up the state machine; one that lags
// this far reconnects and gets a fresh snapshot instead.
const subBuffer = 256

// Bus delivers events in order to every subscriber, in process. Publishing never
// blocks: a subscriber whose buffer is full gets an EventLagged and is dropped.
type Bus struct {
	mu   sync.Mutex
	seq  uint64
	subs map[*Sub]struct{}
	now  func() time.Time
}

// NewBus returns an empty bus.
func NewBus() *Bus { return &Bus{subs: map[*Sub]struct{}{}, now: time.Now} }

// Sub is one subscription. Its channel is closed when it is cancelled or lagged.
type Sub struct {
	C      <-chan api.Event
	c      chan api.Event
	bus    *Bus
	lagged bool // guarded by bus.mu
}

// Lagged reports whether the subscription was dropped for falling behind.
func (s *Sub) Lagged() bool {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	return s.lagged
}

// Publish stamps e with the next sequence number and the time, and sends it.
func (b *Bus) Publish(e api.Event) api.Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	e.Seq, e.Time = b.seq, b.now()
	for s := range b.subs {
		select {
		case s.c <- e:
		default:
			// The reader is subBuffer events behind: drop it rather than
			// block the state machine; it reconnects for a fresh snapshot.
			s.lagged = true
			delete(b.subs, s)
			close(s.c)
		}
	}
	return e
}

// Subscribe starts a subscription; first, when not nil, is delivered before any
// later event (the daemon passes the current state, taken under its own lock so
// that nothing falls between the snapshot and the stream).
func (b *Bus) Subscribe(first *api.Event) *Sub {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := make(chan api.Event, subBuffer)
	if first != nil {
		e := *first
		e.Seq, e.Time, e.Snapshot = b.seq, b.now(), true
		c <- e
	}
	s := &Sub{C: c, c: c, bus: b}
	b.subs[s] = struct{}{}
	return s
}

// Close ends the subscription; it is safe to call more than once.
func (s *Sub) Close() {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	if _, ok := s.bus.subs[s]; ok {
		delete(s.bus.subs, s)
		close(s.c)
	}
}

// Subscribers counts the live subscriptions (for tests and the status).
func (b *Bus) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}
