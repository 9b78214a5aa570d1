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
	"github.com/hyperos/hyperos/guest/container"
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

// DecodeContainerEvent decodes one line of the guest's event log.
func DecodeContainerEvent(line []byte) (api.ContainerEvent, error) {
	var g container.Event
	if err := json.Unmarshal(line, &g); err != nil {
		return api.ContainerEvent{}, fmt.Errorf("decode a container event: %w", err)
	}
	if g.Container == "" || g.Type == "" {
		return api.ContainerEvent{}, fmt.Errorf("decode a container event: no container or type in %q", strings.TrimSpace(string(line)))
	}
	e := api.ContainerEvent{Name: g.Container, Type: g.Type, Reason: g.Reason, BootSeconds: g.BootSeconds, Time: g.Time,
		Version: g.Version, NewVersion: g.NewVersion}
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
	if e.NewVersion > 0 {
		c.Version, c.NewVersion = e.Version, e.NewVersion
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

// GuestCommand runs a shell command line in the VM, its output streamed to
// stdout and stderr; a non-zero exit is an error.
type GuestCommand func(ctx context.Context, command string, stdout, stderr io.Writer) error

// SSHGuestCommand runs commands over a verified SSH connection to the VM, one
// connection per command: container actions are rare clicks.
func SSHGuestCommand(dial func(ctx context.Context) (*ssh.Client, error)) GuestCommand {
	return func(ctx context.Context, command string, stdout, stderr io.Writer) error {
		c, err := dial(ctx)
		if err != nil {
			return fmt.Errorf("connect to the VM: %w", err)
		}
		defer c.Close()
		code, err := shell.Run(ctx, c, command, nil, stdout, stderr)
		if err != nil {
			return fmt.Errorf("run %s in the VM: %w", command, err)
		}
		if code != 0 {
			return fmt.Errorf("%s exited with status %d", command, code)
		}
		return nil
	}
}

// ErrInvalidName is a container action on a name no container can have; the
// API answers it with bad_request.
var ErrInvalidName = errors.New("invalid container name")

// ErrInvalidBoot is a container boot whose arguments the guest would refuse;
// the API answers it with bad_request.
var ErrInvalidBoot = errors.New("invalid container boot")

// ErrNoGuest is a container action on a daemon that cannot reach its VM's
// guest (a VM without SSH).
var ErrNoGuest = errors.New("this service cannot run commands in the VM")

// guest runs `hyperos-guest container ARGS...` in the online VM. The guest
// stays the only owner of container state: the service asks it rather than
// keeping a copy.
func (d *Daemon) guest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
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
	return run(ctx, shell.Quote(append([]string{"hyperos-guest", "container"}, args...)), stdout, stderr)
}

// guestSays adds what the guest printed to err.
func guestSays(err error, out []byte) error {
	if msg := strings.TrimSpace(string(out)); msg != "" {
		return fmt.Errorf("%w: %s", err, msg)
	}
	return err
}

// StopContainer stops an in-guest container through `hyperos-guest container
// stop`, the same command `hyperos container stop` runs. The guest's events
// then report the stop on the bus.
func (d *Daemon) StopContainer(ctx context.Context, name string) error {
	return d.nameAction(ctx, "stop", name)
}

// RemoveContainer stops an in-guest container and deletes its cache and
// overlay, through `hyperos-guest container rm`.
func (d *Daemon) RemoveContainer(ctx context.Context, name string) error {
	return d.nameAction(ctx, "rm", name)
}

func (d *Daemon) nameAction(ctx context.Context, verb, name string) error {
	if err := cmdline.ValidHost(name); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidName, err)
	}
	var out bytes.Buffer
	if err := d.guest(ctx, []string{verb, name}, &out, &out); err != nil {
		if errors.Is(err, ErrNotRunning) || errors.Is(err, ErrNoGuest) {
			return err
		}
		return fmt.Errorf("%s container %s: %w", verb, name, guestSays(err, out.Bytes()))
	}
	d.log.Info("container "+verb+" requested", "name", name)
	return nil
}

// Containers asks the guest for its containers (`container ls --json`).
func (d *Daemon) Containers(ctx context.Context) ([]api.Container, error) {
	var out, errOut bytes.Buffer
	if err := d.guest(ctx, []string{"ls", "--json"}, &out, &errOut); err != nil {
		if errors.Is(err, ErrNotRunning) || errors.Is(err, ErrNoGuest) {
			return nil, err
		}
		return nil, fmt.Errorf("list containers: %w", guestSays(err, errOut.Bytes()))
	}
	var list []container.State
	if err := json.Unmarshal(out.Bytes(), &list); err != nil {
		return nil, fmt.Errorf("list containers: the guest's answer: %w", err)
	}
	cs := make([]api.Container, 0, len(list))
	for _, st := range list {
		cs = append(cs, apiContainer(st))
	}
	return cs, nil
}

// BootContainer boots a container from `container boot` arguments, checked
// here with the guest's own parser first, and returns once it runs. progress
// gets the guest's messages as they come.
func (d *Daemon) BootContainer(ctx context.Context, args []string, progress func(string)) (api.Container, error) {
	spec, _, err := container.ParseBootArgs(args)
	if err != nil {
		return api.Container{}, fmt.Errorf("%w: %w", ErrInvalidBoot, err)
	}
	pw := &lineWriter{fn: progress}
	var out bytes.Buffer
	err = d.guest(ctx, append(append([]string{"boot"}, spec.Args()...), "--json"), &out, pw)
	pw.flush()
	if errors.Is(err, ErrNotRunning) || errors.Is(err, ErrNoGuest) {
		return api.Container{}, err
	}
	var st container.State
	if jerr := json.Unmarshal(out.Bytes(), &st); jerr != nil {
		if err == nil {
			err = fmt.Errorf("the guest's answer: %w", jerr)
		}
		return api.Container{}, fmt.Errorf("boot container %s: %w", spec.Name, guestSays(err, pw.last))
	}
	c := apiContainer(st)
	switch {
	case err != nil:
		return c, fmt.Errorf("boot container %s: %w", spec.Name, guestSays(err, pw.last))
	case st.Phase != container.Running:
		return c, fmt.Errorf("container %s %s: %s", st.Name, st.Phase, st.Reason)
	}
	d.log.Info("container booted on request", "name", st.Name, "seconds", st.BootSeconds, "fetched", st.Stats.Fetched)
	return c, nil
}

// apiContainer is the API's view of a guest container state.
func apiContainer(st container.State) api.Container {
	return api.Container{
		Name: st.Name, State: string(st.Phase), Reason: st.Reason,
		Fetched: st.Stats.Fetched, Size: st.Stats.Size, Cached: st.Stats.Cached,
		BootSeconds: st.BootSeconds, Time: st.Started,
		Link: st.Link, Version: st.Version, NewVersion: st.NewVersion, Peers: st.Peers,
	}
}

// lineWriter hands complete lines to fn; the last one is kept for errors.
type lineWriter struct {
	fn   func(string)
	buf  []byte
	last []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64<<10 { // a line with no end: pass it on in pieces
		w.emit(w.buf)
		w.buf = nil
	}
	return len(p), nil
}

func (w *lineWriter) emit(line []byte) {
	line = bytes.TrimRight(line, "\r")
	if len(line) == 0 {
		return
	}
	w.last = append(w.last[:0], line...)
	if w.fn != nil {
		w.fn(string(line))
	}
}

func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.emit(w.buf)
		w.buf = nil
	}
}
