package container

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hyperos/hyperos/guest/lazyimage"
)

// Event is one line of the guest's event stream, which the host daemon reads over
// the pinned SSH connection (`hyperos-guest events`).
type Event struct {
	Time        time.Time        `json:"time"`
	Type        string           `json:"type"` // booting, waiting, running, booted, stopped, failed, new-version
	Container   string           `json:"container"`
	Reason      string           `json:"reason,omitempty"`
	Stats       *lazyimage.Stats `json:"stats,omitempty"`
	BootSeconds float64          `json:"boot_seconds,omitempty"`
	// Version is the drive version the container runs, and NewVersion the
	// newer one a new-version event announces.
	Version    uint64 `json:"version,omitempty"`
	NewVersion uint64 `json:"new_version,omitempty"`
}

// Events appends events to a JSON-lines file in the runtime directory.
type Events struct{ Path string }

// DefaultEvents is the guest's event log.
var DefaultEvents = &Events{Path: "/run/hyperos/events.jsonl"}

// Emit appends e; a failure to record an event never stops a container.
func (ev *Events) Emit(e Event) {
	if ev == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	os.MkdirAll(filepath.Dir(ev.Path), 0o700)
	f, err := os.OpenFile(ev.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	f.Write(append(b, '\n')) // one write: appends of whole lines do not interleave
	f.Close()
}

// Follow writes every event from the start of the log, then new ones as they come,
// until ctx ends.
func (ev *Events) Follow(ctx context.Context, w io.Writer) error {
	var f *os.File
	for f == nil {
		var err error
		f, err = os.Open(ev.Path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if f == nil {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var partial []byte
	for {
		line, err := r.ReadBytes('\n')
		partial = append(partial, line...)
		if err == nil {
			if _, werr := w.Write(partial); werr != nil {
				return werr
			}
			if fl, ok := w.(interface{ Flush() error }); ok {
				fl.Flush()
			}
			partial = partial[:0]
			continue
		}
		if !errors.Is(err, io.EOF) {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(250 * time.Millisecond):
		}
	}
}
