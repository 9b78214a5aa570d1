package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hyperos/hyperos/app/api"
	"github.com/hyperos/hyperos/app/shell"
	"github.com/hyperos/hyperos/guest/cmdline"
)

// ContainerStream opens the guest's container event stream. Its first line is
// the byte size of the guest's event log when the stream started; the log's
// lines follow from its start, then new ones as the guest appends them. The
// size is what tells the relay which lines are history (the log replays from
// its start on every connection) and which are news worth a notification.
type ContainerStream func(ctx context.Context) (io.ReadCloser, error)

// guestEventsCommand prints the log's size before `hyperos-guest events`
// starts following it, in one session, so no line can fall between the two.
const guestEventsCommand = `f=/run/hyperos/events.jsonl; stat -c %s "$f" 2>/dev/null || echo 0; exec hyperos-guest events`

// sshDialer is the part of *machine.Machine the default ContainerStream needs;
// the in-memory VMs of the unit tests do not have it, and then there is no
// relay unless a test provides a ContainerStream.
type sshDialer interface {
	Dial(ctx context.Context) (*ssh.Client, error)
}

// SSHContainerStream runs guestEventsCommand over a verified SSH connection to
// the VM. Closing the stream, or ending ctx, closes the connection.
func SSHContainerStream(dial func(ctx context.Context) (*ssh.Client, error)) ContainerStream {
	return func(ctx context.Context) (io.ReadCloser, error) {
		c, err := dial(ctx)
		if err != nil {
			return nil, fmt.Errorf("connect to the VM for container events: %w", err)
		}
		s, err := c.NewSession()
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("open a session for container events: %w", err)
		}
		out, err := s.StdoutPipe()
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("container events: %w", err)
		}
		if err := s.Start(guestEventsCommand); err != nil {
			c.Close()
			return nil, fmt.Errorf("start hyperos-guest events: %w", err)
		}
		// A stream blocked in Read returns once the connection closes.
		stop := context.AfterFunc(ctx, func() { c.Close() })
		return &sshStream{Reader: out, close: func() error {
			stop()
			s.Close()
			return c.Close()
		}}, nil
	}
}

type sshStream struct {
	io.Reader
	close func() error
}

func (s *sshStream) Close() error { return s.close() }

// guestEvent mirrors the guest's container.Event (guest/container/events.go)
// rather than importing it, so that the service does not link guest code.
type guestEvent struct {
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`
	Container string    `json:"container"`
	Reason    string    `json:"reason,omitempty"`
	Stats     *struct {
		Size    int64 `json:"size"`
		Fetched int64 `json:"fetched"`
	} `json:"stats,omitempty"`
	BootSeconds float64 `json:"boot_seconds,omitempty"`
}

// DecodeContainerEvent decodes one line of the guest's event log.
func DecodeContainerEvent(line []byte) (api.ContainerEvent, error) {
	var g guestEvent
	if err := json.Unmarshal(line, &g); err != nil {
		return api.ContainerEvent{}, fmt.Errorf("decode a container event: %w", err)
	}
	if g.Container == "" || g.Type == "" {
		return api.ContainerEvent{}, fmt.Errorf("decode a container event: no container or type in %q", strings.TrimSpace(string(line)))
	}
	e := api.ContainerEvent{Name: g.Container, Type: g.Type, Reason: g.Reason, BootSeconds: g.BootSeconds, Time: g.Time}
	if g.Stats != nil {
		e.Fetched, e.Size = g.Stats.Fetched, g.Stats.Size
	}
	return e, nil
}

// ApplyContainerEvent folds e into the container list, kept sorted by name.
// new-version says a newer image exists, not that the container changed, so it
// updates nothing but the byte counts.
func ApplyContainerEvent(list []api.Container, e api.ContainerEvent) []api.Container {
	i, found := slices.BinarySearchFunc(list, e.Name, func(c api.Container, name string) int { return strings.Compare(c.Name, name) })
	if !found {
		list = slices.Insert(list, i, api.Container{Name: e.Name})
	}
	c := &list[i]
	if e.Type != "new-version" || !found {
		c.State, c.Reason, c.Time = e.Type, e.Reason, e.Time
		if e.Type == "new-version" {
			c.State = "unknown"
		}
	}
	if e.Size > 0 {
		c.Fetched, c.Size = e.Fetched, e.Size
	}
	if e.BootSeconds > 0 {
		c.BootSeconds = e.BootSeconds
	}
	return list
}

// relayContainers keeps the guest's container event stream open while boot
// generation gen is online, reconnecting with backoff when it ends; ctx ends
// when the VM leaves the online phase.
func (d *Daemon) relayContainers(ctx context.Context, gen uint64, open ContainerStream) {
	var r relayState
	failures := 0
	for {
		got, err := d.relayOnce(ctx, gen, open, &r)
		if ctx.Err() != nil || !d.current(gen) {
			return
		}
		if got {
			failures = 0
		}
		failures++
		delay := Backoff(failures, time.Second, 30*time.Second)
		d.log.Warn("container event stream ended; reconnecting", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// relayState is what the relay knows across the connections of one online
// generation.
type relayState struct {
	// relayed is how many bytes of the log have been relayed: a reconnection
	// replays the log from its start, and those lines are skipped.
	relayed int64
	// history is the log's size at the first connection: lines within it
	// happened before the service was listening, so they rebuild the list
	// without being announced. -1 until the first connection.
	history int64
	started bool
}

// relayOnce relays one connection's worth of the stream. got reports whether
// any line came through, so that a stream that works resets the backoff.
func (d *Daemon) relayOnce(ctx context.Context, gen uint64, open ContainerStream, r *relayState) (got bool, err error) {
	rc, err := open(ctx)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	return d.relay(gen, rc, r)
}

// relay reads one stream (the size line, then log lines) and publishes what it
// has not published yet. It returns when the stream ends or the generation is
// over.
func (d *Daemon) relay(gen uint64, rd io.Reader, r *relayState) (got bool, err error) {
	br := bufio.NewReaderSize(rd, 64<<10)
	head, err := br.ReadString('\n')
	if err != nil {
		return false, fmt.Errorf("read the size of the guest's event log: %w", err)
	}
	size, err := strconv.ParseInt(strings.TrimSpace(head), 10, 64)
	if err != nil {
		return false, fmt.Errorf("read the size of the guest's event log: %w", err)
	}
	if !r.started {
		r.started, r.history = true, size
		if size == 0 && !d.containersDone(gen) {
			return false, nil
		}
	}
	var off int64
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
				if len(line) == 0 {
					err = errors.New("the guest closed the container event stream")
				}
			}
			return got, err
		}
		got = true
		off += int64(len(line))
		if off <= r.relayed {
			continue
		}
		r.relayed = off
		e, derr := DecodeContainerEvent(line)
		if derr != nil {
			d.log.Warn("skipping a container event", "err", derr)
		}
		history := off <= r.history
		if !d.containerEvent(gen, e, derr == nil, history, history && off >= r.history) {
			return got, nil
		}
	}
}

// containersDone publishes the (empty) rebuilt list after a connection to a
// guest with no history; false when the generation is over.
func (d *Daemon) containersDone(gen uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gen != gen {
		return false
	}
	d.bus.Publish(d.eventLocked(api.EventContainer))
	return true
}

// containerEvent folds one decoded event (ok) into the list and publishes it,
// or, for history, publishes only the rebuilt list once its last line is in
// (last). It returns false when the generation is over.
func (d *Daemon) containerEvent(gen uint64, e api.ContainerEvent, ok, history, last bool) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gen != gen {
		return false
	}
	if ok {
		d.containers = ApplyContainerEvent(d.containers, e)
	}
	switch {
	case ok && !history:
		ev := d.eventLocked(api.EventContainer)
		ev.Container = &e
		d.bus.Publish(ev)
		d.log.Info("container", "name", e.Name, "event", e.Type, "reason", e.Reason)
	case last:
		d.bus.Publish(d.eventLocked(api.EventContainer))
	}
	return true
}

// GuestCommand runs a shell command line in the VM and returns its output
// (stdout and stderr together), so that a failure can say what the guest said.
type GuestCommand func(ctx context.Context, command string) ([]byte, error)

// SSHGuestCommand runs commands over a verified SSH connection to the VM, one
// connection per command: container actions are rare clicks.
func SSHGuestCommand(dial func(ctx context.Context) (*ssh.Client, error)) GuestCommand {
	return func(ctx context.Context, command string) ([]byte, error) {
		c, err := dial(ctx)
		if err != nil {
			return nil, fmt.Errorf("connect to the VM: %w", err)
		}
		defer c.Close()
		var out bytes.Buffer
		code, err := shell.Run(ctx, c, command, nil, &out, &out)
		if err != nil {
			return out.Bytes(), fmt.Errorf("run %s in the VM: %w", command, err)
		}
		if code != 0 {
			return out.Bytes(), fmt.Errorf("%s exited with status %d", command, code)
		}
		return out.Bytes(), nil
	}
}

// ErrInvalidName is a container action on a name no container can have; the
// API answers it with bad_request.
var ErrInvalidName = errors.New("invalid container name")

// ErrNoGuest is a container action on a daemon that cannot reach its VM's
// guest (a VM without SSH).
var ErrNoGuest = errors.New("this service cannot run commands in the VM")

// StopContainer stops an in-guest container through `hyperos-guest container
// stop`, the same command `hyperos container stop` runs, so that the guest
// stays the only owner of container state. The guest's events then report the
// stop on the bus.
func (d *Daemon) StopContainer(ctx context.Context, name string) error {
	if err := cmdline.ValidHost(name); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidName, err)
	}
	<-d.ready
	d.mu.Lock()
	online := d.phase == api.Online
	d.mu.Unlock()
	if !online {
		return ErrNotRunning
	}
	run := d.opts.GuestCommand
	if run == nil {
		return ErrNoGuest
	}
	out, err := run(ctx, shell.Quote([]string{"hyperos-guest", "container", "stop", name}))
	if err != nil {
		if msg := strings.TrimSpace(string(out)); msg != "" {
			return fmt.Errorf("stop container %s: %w: %s", name, err, msg)
		}
		return fmt.Errorf("stop container %s: %w", name, err)
	}
	d.log.Info("container stop requested", "name", name)
	return nil
}
