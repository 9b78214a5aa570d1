// Package client talks to the HyperOS service's local API. The CLI and the tray
// use it; it depends on the wire types only, never on the VM code.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"

	"github.com/hyperos/hyperos/app/api"
	"github.com/hyperos/hyperos/app/config"
)

// Client calls the local API. Its zero value is valid: it finds the socket of
// config.Default() (so HYPEROS_HOME is honoured).
type Client struct {
	// Socket is the unix socket path or pipe name; "" means the one of
	// config.Default().
	Socket string
	// Dial, when set, replaces the connection to the socket.
	Dial func(ctx context.Context) (net.Conn, error)
	// Transport, when set, replaces the whole HTTP transport (tests).
	Transport http.RoundTripper

	once sync.Once
	tr   http.RoundTripper
	err  error
}

// ErrNotRunning matches (with errors.Is) every error that means no service
// answers: the CLI then works on the VM by itself.
var ErrNotRunning = errors.New("the HyperOS service is not running")

// NotRunningError is returned when the socket cannot be reached.
type NotRunningError struct {
	Socket string
	Err    error
}

func (e *NotRunningError) Error() string {
	return fmt.Sprintf("the HyperOS service is not running (nothing answers on %s: %v); start it with 'hyperos service start' or 'hyperos daemon'", e.Socket, e.Err)
}
func (e *NotRunningError) Unwrap() error        { return e.Err }
func (e *NotRunningError) Is(target error) bool { return target == ErrNotRunning }

// AccessDeniedError is returned when the service refuses the caller: another
// user's service, or a request it considers to come from a web page.
type AccessDeniedError struct{ Message string }

func (e *AccessDeniedError) Error() string { return e.Message }

// IsAccessDenied reports whether err is an AccessDeniedError.
func IsAccessDenied(err error) bool {
	var ae *AccessDeniedError
	return errors.As(err, &ae)
}

// Error is any other refusal by the service, with its stable Code
// ("not_running", "busy", "failed", …).
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// IsCode reports whether err is an *Error with the given code.
func IsCode(err error, code string) bool {
	var ae *Error
	return errors.As(err, &ae) && ae.Code == code
}

func (c *Client) socket() (string, error) {
	if c.Socket != "" {
		return c.Socket, nil
	}
	p, err := config.Default()
	if err != nil {
		return "", err
	}
	return p.Socket()
}

func (c *Client) transport() (http.RoundTripper, error) {
	c.once.Do(func() {
		if c.Transport != nil {
			c.tr = c.Transport
			return
		}
		sock, err := c.socket()
		if err != nil {
			c.err = err
			return
		}
		dial := c.Dial
		if dial == nil {
			dial = func(ctx context.Context) (net.Conn, error) { return dialSocket(ctx, sock) }
		}
		c.tr = &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				conn, err := dial(ctx)
				if err != nil {
					if isAccessDeniedDial(err) {
						return nil, &AccessDeniedError{Message: fmt.Sprintf("access denied to %s: %v", sock, err)}
					}
					return nil, &NotRunningError{Socket: sock, Err: err}
				}
				return conn, nil
			},
			DisableCompression: true,
			MaxIdleConns:       4,
		}
	})
	return c.tr, c.err
}

// do sends a request and decodes a JSON answer into out.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, out any) error {
	resp, err := c.send(ctx, method, path, q, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode the answer: %w", method, path, err)
	}
	return nil
}

// send returns a response with a status under 400, or the error it carries.
// body, when not nil, is sent as JSON.
func (c *Client) send(ctx context.Context, method, path string, q url.Values, body any) (*http.Response, error) {
	tr, err := c.transport()
	if err != nil {
		return nil, err
	}
	u := url.URL{Scheme: "http", Host: api.Host, Path: path, RawQuery: q.Encode()}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		var nr *NotRunningError
		var ad *AccessDeniedError
		if errors.As(err, &nr) {
			return nil, nr
		}
		if errors.As(err, &ad) {
			return nil, ad
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode < 400 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var ae api.Error
	if json.Unmarshal(b, &ae) != nil || ae.Error == "" {
		ae.Error = fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if resp.StatusCode == http.StatusForbidden && ae.Code == "access_denied" {
		return nil, &AccessDeniedError{Message: ae.Error}
	}
	return nil, &Error{Status: resp.StatusCode, Code: ae.Code, Message: ae.Error}
}

// Status returns the VM's status and the service's phase.
func (c *Client) Status(ctx context.Context) (api.Status, error) {
	var st api.Status
	return st, c.do(ctx, http.MethodGet, api.PathStatus, nil, &st)
}

// Boot starts the VM (joining a boot in progress); with wait it returns once the
// VM is online or the boot has failed.
func (c *Client) Boot(ctx context.Context, wait bool) (api.Status, error) {
	return c.lifecycle(ctx, api.PathBoot, wait)
}

// Restart halts the VM when it runs and boots it again.
func (c *Client) Restart(ctx context.Context, wait bool) (api.Status, error) {
	return c.lifecycle(ctx, api.PathRestart, wait)
}

// Halt shuts the VM down gracefully and returns once it has stopped.
func (c *Client) Halt(ctx context.Context) (api.Status, error) {
	var st api.Status
	return st, c.do(ctx, http.MethodPost, api.PathHalt, nil, &st)
}

// Kill stops the VM at once.
func (c *Client) Kill(ctx context.Context) (api.Status, error) {
	var st api.Status
	return st, c.do(ctx, http.MethodPost, api.PathKill, nil, &st)
}

// StopContainer stops an in-guest container and returns once the guest has
// stopped it.
func (c *Client) StopContainer(ctx context.Context, name string) (api.Status, error) {
	var st api.Status
	return st, c.do(ctx, http.MethodPost, api.PathContainerStop, url.Values{"name": {name}}, &st)
}

// RemoveContainer stops an in-guest container and deletes its cache and
// overlay.
func (c *Client) RemoveContainer(ctx context.Context, name string) (api.Status, error) {
	var st api.Status
	return st, c.do(ctx, http.MethodPost, api.PathContainerRemove, url.Values{"name": {name}}, &st)
}

// Containers asks the guest, through the service, for its containers.
func (c *Client) Containers(ctx context.Context) ([]api.Container, error) {
	var cs []api.Container
	return cs, c.do(ctx, http.MethodGet, api.PathContainers, nil, &cs)
}

// BootContainer boots a container from `container boot` arguments and returns
// it once it runs; progress gets the guest's messages meanwhile.
func (c *Client) BootContainer(ctx context.Context, args []string, progress func(string)) (api.Container, error) {
	resp, err := c.send(ctx, http.MethodPost, api.PathContainerBoot, nil, api.ContainerBoot{Args: args})
	if err != nil {
		return api.Container{}, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var p api.ContainerProgress
		if err := dec.Decode(&p); err != nil {
			return api.Container{}, fmt.Errorf("container boot: the service's answer ended early: %w", err)
		}
		switch {
		case p.Error != nil:
			return api.Container{}, &Error{Status: http.StatusOK, Code: p.Error.Code, Message: p.Error.Error}
		case p.Container != nil:
			return *p.Container, nil
		case progress != nil && p.Message != "":
			progress(p.Message)
		}
	}
}

// Shutdown asks the service to shut the VM down and exit.
func (c *Client) Shutdown(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, api.PathShutdown, nil, nil)
}

func (c *Client) lifecycle(ctx context.Context, path string, wait bool) (api.Status, error) {
	var q url.Values
	if wait {
		q = url.Values{"wait": {"true"}}
	}
	var st api.Status
	return st, c.do(ctx, http.MethodPost, path, q, &st)
}

// Events is a stream of events; the first is a snapshot of the current state.
type Events struct {
	body io.ReadCloser
	sc   *bufio.Scanner
}

// Events opens the event stream. Close it, or cancel ctx, when done.
func (c *Client) Events(ctx context.Context) (*Events, error) {
	resp, err := c.send(ctx, http.MethodGet, api.PathEvents, nil, nil)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	return &Events{body: resp.Body, sc: sc}, nil
}

// ErrLagged ends a stream whose reader fell too far behind: open a new one.
var ErrLagged = errors.New("event stream dropped: the reader fell behind")

// Next returns the next event; io.EOF when the service closed the stream.
func (e *Events) Next() (api.Event, error) {
	if !e.sc.Scan() {
		if err := e.sc.Err(); err != nil {
			return api.Event{}, fmt.Errorf("read events: %w", err)
		}
		return api.Event{}, io.EOF
	}
	var ev api.Event
	if err := json.Unmarshal(e.sc.Bytes(), &ev); err != nil {
		return api.Event{}, fmt.Errorf("decode event: %w", err)
	}
	if ev.Type == api.EventLagged {
		return ev, ErrLagged
	}
	return ev, nil
}

// Close ends the stream.
func (e *Events) Close() error { return e.body.Close() }

// Watch calls fn for every event of one stream, starting with the snapshot, and
// returns when the stream ends: ctx ended (ctx.Err()), the service went away
// (io.EOF or a NotRunningError), or it cut this reader off (ErrLagged, after fn
// saw the EventLagged). Callers reconnect with backoff.
func (c *Client) Watch(ctx context.Context, fn func(api.Event)) error {
	ev, err := c.Events(ctx)
	if err != nil {
		return err
	}
	defer ev.Close()
	stop := context.AfterFunc(ctx, func() { ev.Close() })
	defer stop()
	for {
		e, err := ev.Next()
		if e.Type != "" {
			fn(e)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
	}
}
