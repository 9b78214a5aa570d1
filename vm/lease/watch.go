package lease

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultPoll is how often a watched lease file is read again even when no change
// was reported. File notifications are the fast path; the poll is the safety net
// for what they miss: a file that does not exist yet (only the file itself can be
// watched, since macOS refuses a watch on /var/db), a rename the platform reported
// late, or a watcher that could not be created at all.
const DefaultPoll = 10 * time.Second

// Watcher follows one lease file and reports the lease of one VM as it appears
// and changes.
type Watcher struct {
	Path  string
	Parse func(io.Reader) ([]Lease, error)
	// Poll is the safety-net interval, DefaultPoll when zero.
	Poll time.Duration
	Log  *slog.Logger
}

// Bootpd returns a watcher of bootpd's lease file (BootpdPath when path is "").
func Bootpd(path string) *Watcher {
	if path == "" {
		path = BootpdPath
	}
	return &Watcher{Path: path, Parse: ParseBootpd}
}

// Dnsmasq returns a watcher of the dnsmasq lease file at path.
func Dnsmasq(path string) *Watcher {
	return &Watcher{Path: path, Parse: ParseDnsmasq}
}

func (w *Watcher) log() *slog.Logger {
	if w.Log != nil {
		return w.Log
	}
	return slog.Default()
}

// Read parses the file once and returns its leases; a missing file has none.
func (w *Watcher) Read() ([]Lease, error) {
	f, err := os.Open(w.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lease file: %w", err)
	}
	defer f.Close()
	return w.Parse(f)
}

// Watch sends the VM's lease (see Find) on the returned channel: once as soon as
// the file holds one, and again whenever it changes (a new address, a renewal).
// The channel is closed when ctx ends. The file is read when the platform reports
// a change and every Poll; it is never read in a loop.
func (w *Watcher) Watch(ctx context.Context, mac net.HardwareAddr, hostname string) <-chan Lease {
	out := make(chan Lease)
	go w.run(ctx, mac, hostname, out)
	return out
}

// Wait returns the VM's lease as soon as the file holds one.
func (w *Watcher) Wait(ctx context.Context, mac net.HardwareAddr, hostname string) (Lease, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if l, ok := <-w.Watch(ctx, mac, hostname); ok {
		return l, nil
	}
	return Lease{}, fmt.Errorf("no lease for mac %s or host %q in %s: %w", mac, hostname, w.Path, context.Cause(ctx))
}

func (w *Watcher) run(ctx context.Context, mac net.HardwareAddr, hostname string, out chan<- Lease) {
	defer close(out)
	poll := w.Poll
	if poll <= 0 {
		poll = DefaultPoll
	}
	var (
		events <-chan fsnotify.Event
		errs   <-chan error
		fw     *fsnotify.Watcher
	)
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		w.log().Warn("cannot watch lease file; polling only", "path", w.Path, "every", poll, "err", err)
		fw = nil
	} else {
		defer fw.Close()
		events, errs = fw.Events, fw.Errors
	}
	// watch (re)adds the watch on the file itself. A file replaced by rename
	// keeps the old inode's watch, which dies with it, so the new file needs
	// a new one.
	path := filepath.Clean(w.Path) // as fsnotify records it
	watch := func() {
		if fw == nil || slices.Contains(fw.WatchList(), path) {
			return
		}
		if err := fw.Add(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			w.log().Debug("watch lease file", "path", w.Path, "err", err)
		}
	}
	watch()
	tick := time.NewTicker(poll)
	defer tick.Stop()

	var last Lease
	sent := false
	lastErr := ""
	check := func() bool {
		leases, err := w.Read()
		if err != nil {
			if err.Error() != lastErr {
				w.log().Warn("read lease file", "path", w.Path, "err", err)
				lastErr = err.Error()
			}
		} else {
			lastErr = ""
		}
		l, ok := Find(leases, mac, hostname)
		if !ok || (sent && same(l, last)) {
			return true
		}
		select {
		case out <- l:
			last, sent = l, true
			return true
		case <-ctx.Done():
			return false
		}
	}
	if !check() {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				// Drop whatever bookkeeping is left for the old file first.
				fw.Remove(path)
				watch()
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
			} else {
				w.log().Warn("lease file watcher", "path", w.Path, "err", err)
			}
			continue
		case <-tick.C:
			watch()
		}
		if !check() {
			return
		}
	}
}

func same(a, b Lease) bool {
	return a.IP == b.IP && a.Hostname == b.Hostname && a.Time.Equal(b.Time) &&
		a.Source == b.Source && string(a.MAC) == string(b.MAC)
}
