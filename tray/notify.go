package tray

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Notifier shows a desktop notification. Implementations must return when ctx
// ends even if the notification server hangs.
type Notifier interface {
	Notify(ctx context.Context, title, body string) error
}

// notifyTimeout bounds one notification: a hung notification server must
// never stall the tray.
const notifyTimeout = 5 * time.Second

// Limiter passes notices on to a Notifier, dropping the same event seen again
// within Window and anything beyond Burst notices per Window. Event streams
// repeat themselves (a reconnect replays the state, a restart loop fails the
// same way every few seconds) and a desktop full of identical bubbles helps
// nobody.
type Limiter struct {
	Next   Notifier
	Window time.Duration
	Burst  int
	Log    *slog.Logger
	now    func() time.Time

	mu   sync.Mutex
	seen map[string]time.Time
	sent []time.Time

	once  sync.Once
	queue chan Notice
}

// NewLimiter returns a limiter with the tray's defaults: one minute, three
// notices.
func NewLimiter(n Notifier, log *slog.Logger) *Limiter {
	return &Limiter{Next: n, Window: time.Minute, Burst: 3, Log: log, now: time.Now}
}

// Allow reports whether n may be shown now, and records it when it may.
func (l *Limiter) Allow(n Notice) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.seen == nil {
		l.seen = map[string]time.Time{}
	}
	for k, t := range l.seen {
		if now.Sub(t) >= l.Window {
			delete(l.seen, k)
		}
	}
	if _, dup := l.seen[n.Key]; dup && n.Key != "" {
		return false
	}
	keep := l.sent[:0]
	for _, t := range l.sent {
		if now.Sub(t) < l.Window {
			keep = append(keep, t)
		}
	}
	l.sent = keep
	if len(l.sent) >= l.Burst {
		return false
	}
	l.sent = append(l.sent, now)
	if n.Key != "" {
		l.seen[n.Key] = now
	}
	return true
}

// queueLen is how many notices may wait behind a slow notification server
// before more are dropped.
const queueLen = 4

// Send shows n in the background unless the limiter drops it. One goroutine,
// started by the first Send and ending with its ctx, shows the notices in
// order, each bounded by notifyTimeout: a hung server delays the queue and,
// once it is full, drops notices, but never blocks the tray.
func (l *Limiter) Send(ctx context.Context, n Notice) {
	if !l.Allow(n) {
		l.Log.Debug("notification dropped (duplicate or rate limit)", "key", n.Key)
		return
	}
	l.once.Do(func() {
		l.queue = make(chan Notice, queueLen)
		go l.run(ctx)
	})
	select {
	case l.queue <- n:
	default:
		l.Log.Warn("notification dropped: the notification server is not keeping up", "body", n.Body)
	}
}

func (l *Limiter) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-l.queue:
			nctx, cancel := context.WithTimeout(ctx, notifyTimeout)
			if err := l.Next.Notify(nctx, n.Title, n.Body); err != nil {
				l.Log.Warn("notification failed", "body", n.Body, "err", err)
			}
			cancel()
		}
	}
}
