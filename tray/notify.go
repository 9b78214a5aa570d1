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
	busy bool
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

// Send shows n in the background unless the limiter drops it. One notification
// is in flight at a time: while the server is slow, later ones are dropped
// rather than queued behind it, so a hung server costs at most one goroutine
// for notifyTimeout.
func (l *Limiter) Send(ctx context.Context, n Notice) {
	if !l.Allow(n) {
		l.Log.Debug("notification dropped (duplicate or rate limit)", "key", n.Key)
		return
	}
	l.mu.Lock()
	if l.busy {
		l.mu.Unlock()
		l.Log.Warn("notification dropped: the previous one is still pending", "body", n.Body)
		return
	}
	l.busy = true
	l.mu.Unlock()
	go func() {
		defer func() {
			l.mu.Lock()
			l.busy = false
			l.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(ctx, notifyTimeout)
		defer cancel()
		if err := l.Next.Notify(ctx, n.Title, n.Body); err != nil {
			l.Log.Warn("notification failed", "body", n.Body, "err", err)
		}
	}()
}
