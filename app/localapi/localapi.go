// Package localapi serves the HyperOS service's local API: HTTP/1.1 and JSON on
// a unix socket (a named pipe on Windows) that only the owning user and root can
// use. It is a thin layer over the daemon's state machine; the wire types are in
// app/api and the client is app/client.
//
// Every request is checked three ways before a handler runs: the peer's
// credentials (taken from the socket, not from anything the peer says), the
// absence of Origin and Referer (a browser adds them; the CLI and the tray
// never do), and a Host of api.Host.
package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hyperos/hyperos/app/api"
	"github.com/hyperos/hyperos/app/config"
	"github.com/hyperos/hyperos/app/daemon"
	"github.com/hyperos/hyperos/guest/container"
)

// Server is the local API of one daemon.
type Server struct {
	d   *daemon.Daemon
	log *slog.Logger
	mux *http.ServeMux
	// OwnerUID is the user allowed besides root: the daemon's own (-1 on
	// Windows, where the pipe's security descriptor does the check).
	OwnerUID int
	// Shutdown is called by POST /v1/daemon/shutdown (stopping the service the
	// way the service manager would); nil refuses the request.
	Shutdown func()
}

// New returns the API for d.
func New(d *daemon.Daemon, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{d: d, log: log, mux: http.NewServeMux(), OwnerUID: ownerUID()}
	routes := map[string]http.HandlerFunc{
		"GET " + api.PathStatus:           s.serveStatus,
		"GET " + api.PathEvents:           s.serveEvents,
		"POST " + api.PathBoot:            s.serveBoot,
		"POST " + api.PathHalt:            s.serveHalt,
		"POST " + api.PathKill:            s.serveKill,
		"POST " + api.PathRestart:         s.serveRestart,
		"POST " + api.PathShutdown:        s.serveShutdown,
		"POST " + api.PathContainerStop:   s.serveContainerStop,
		"POST " + api.PathContainerRemove: s.serveContainerRemove,
		"POST " + api.PathContainerBoot:   s.serveContainerBoot,
		"GET " + api.PathContainers:       s.serveContainers,
	}
	for pattern, h := range routes {
		s.mux.HandleFunc(pattern, h)
	}
	return s
}

// ServeHTTP checks who is calling and how before routing.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Cache-Control", "no-store")
	if r.Header.Get("Origin") != "" || r.Header.Get("Referer") != "" {
		s.log.Warn("refused a request with Origin or Referer (a web page?)", "origin", r.Header.Get("Origin"), "referer", r.Header.Get("Referer"), "path", r.URL.Path)
		writeError(w, http.StatusForbidden, "access_denied", "requests from web pages are refused")
		return
	}
	if r.Host != api.Host {
		s.log.Warn("refused a request with an unexpected Host", "host", r.Host, "path", r.URL.Path)
		writeError(w, http.StatusForbidden, "access_denied", fmt.Sprintf("unexpected Host %q: use %q", r.Host, api.Host))
		return
	}
	if err := s.permit(r.Context()); err != nil {
		s.log.Warn("refused a caller", "err", err, "path", r.URL.Path)
		writeError(w, http.StatusForbidden, "access_denied", err.Error())
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	s.mux.ServeHTTP(w, r)
}

// permit allows the daemon's own user and root. On Windows the pipe's security
// descriptor already admits only the user and SYSTEM, so the identity is not
// checked again.
func (s *Server) permit(ctx context.Context) error {
	if s.OwnerUID < 0 {
		return nil
	}
	id, ok := ctx.Value(peerKey{}).(Peer)
	if !ok {
		return errors.New("access denied: the caller's credentials are unknown")
	}
	if id.UID == s.OwnerUID || id.UID == 0 {
		return nil
	}
	return fmt.Errorf("access denied: uid %d is not the owner of this HyperOS service (uid %d)", id.UID, s.OwnerUID)
}

// Serve answers requests on l until ctx ends, then stops accepting and closes
// open streams.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if pc, ok := c.(*peerConn); ok {
				return context.WithValue(ctx, peerKey{}, pc.peer)
			}
			return ctx
		},
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve the local API: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hs.Shutdown(sctx)
	hs.Close()
	return nil
}

func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request) {
	if !noQuery(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, s.d.Status())
}

// serveBoot starts the VM; with ?wait=true it answers once the VM is online or
// the boot has failed. Pressing boot twice joins the boot in progress.
func (s *Server) serveBoot(w http.ResponseWriter, r *http.Request) {
	wait, ok := waitParam(w, r)
	if !ok {
		return
	}
	st, err := s.d.Boot()
	if err == nil && wait {
		st, err = s.d.WaitBoot(r.Context())
	}
	s.reply(w, st, err)
}

func (s *Server) serveRestart(w http.ResponseWriter, r *http.Request) {
	wait, ok := waitParam(w, r)
	if !ok {
		return
	}
	ctx, cancel := lifecycleContext(r)
	defer cancel()
	st, err := s.d.Restart(ctx)
	if err == nil && wait {
		st, err = s.d.WaitBoot(r.Context())
	}
	s.reply(w, st, err)
}

// serveHalt answers once the VM has stopped.
func (s *Server) serveHalt(w http.ResponseWriter, r *http.Request) {
	if !noQuery(w, r) {
		return
	}
	ctx, cancel := lifecycleContext(r)
	defer cancel()
	err := s.d.Halt(ctx)
	s.reply(w, s.d.Status(), err)
}

func (s *Server) serveKill(w http.ResponseWriter, r *http.Request) {
	if !noQuery(w, r) {
		return
	}
	ctx, cancel := lifecycleContext(r)
	defer cancel()
	err := s.d.Kill(ctx)
	s.reply(w, s.d.Status(), err)
}

// serveContainerStop stops the container named by ?name= and answers once the
// guest has stopped it; the guest's own event then reaches the event stream.
func (s *Server) serveContainerStop(w http.ResponseWriter, r *http.Request) {
	s.containerAction(w, r, "stop", s.d.StopContainer)
}

// serveContainerRemove stops the container named by ?name= and deletes its
// cache and overlay.
func (s *Server) serveContainerRemove(w http.ResponseWriter, r *http.Request) {
	s.containerAction(w, r, "remove", s.d.RemoveContainer)
}

func (s *Server) containerAction(w http.ResponseWriter, r *http.Request, verb string, do func(context.Context, string) error) {
	q := r.URL.Query()
	for k, v := range q {
		if k != "name" || len(v) != 1 {
			writeError(w, http.StatusBadRequest, "bad_request", "this call takes one parameter, name")
			return
		}
	}
	name := q.Get("name")
	if name == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "name the container to "+verb)
		return
	}
	ctx, cancel := lifecycleContext(r)
	defer cancel()
	err := do(ctx, name)
	if errors.Is(err, daemon.ErrInvalidName) {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	s.reply(w, s.d.Status(), err)
}

// serveContainers answers with the guest's containers, asked afresh.
func (s *Server) serveContainers(w http.ResponseWriter, r *http.Request) {
	if !noQuery(w, r) {
		return
	}
	cs, err := s.d.Containers(r.Context())
	if err != nil {
		s.reply(w, api.Status{}, err)
		return
	}
	writeJSON(w, http.StatusOK, cs)
}

// serveContainerBoot boots a container and streams the guest's progress, then
// the container or the error, as ContainerProgress lines. Arguments the guest
// would refuse are a 400 before anything is streamed. A client that goes away
// stops waiting, not the boot: the container is a unit of the guest's.
func (s *Server) serveContainerBoot(w http.ResponseWriter, r *http.Request) {
	if !noQuery(w, r) {
		return
	}
	var req api.ContainerBoot
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("body: want {\"args\": [...]}: %v", err))
		return
	}
	if _, _, err := container.ParseBootArgs(req.Args); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if st := s.d.Status(); st.Phase != api.Online {
		s.reply(w, st, daemon.ErrNotRunning)
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "failed", "streaming is not supported by this connection")
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	var mu sync.Mutex // progress comes from the SSH session's goroutine
	enc := json.NewEncoder(w)
	send := func(p api.ContainerProgress) {
		mu.Lock()
		defer mu.Unlock()
		enc.Encode(p)
		fl.Flush()
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Minute)
	defer cancel()
	c, err := s.d.BootContainer(ctx, req.Args, func(line string) { send(api.ContainerProgress{Message: line}) })
	if err != nil {
		_, code := errorCode(err)
		send(api.ContainerProgress{Error: &api.Error{Error: err.Error(), Code: code}})
		return
	}
	send(api.ContainerProgress{Container: &c})
}

// lifecycleContext detaches a stop from its request: a client that goes away
// (Ctrl-C on 'hyperos halt') must not leave the VM half-stopped and the state
// machine failed. The stop is still bounded.
func lifecycleContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(r.Context()), 3*time.Minute)
}

func (s *Server) serveShutdown(w http.ResponseWriter, r *http.Request) {
	if !noQuery(w, r) {
		return
	}
	if s.Shutdown == nil {
		writeError(w, http.StatusNotImplemented, "bad_request", "this service is stopped by its service manager")
		return
	}
	writeJSON(w, http.StatusAccepted, s.d.Status())
	s.log.Info("shutdown requested through the local API")
	go s.Shutdown()
}

// serveEvents streams newline-delimited JSON events, starting with the current
// state, until the client goes away or falls too far behind.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	if !noQuery(w, r) {
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "failed", "streaming is not supported by this connection")
		return
	}
	sub := s.d.Subscribe()
	defer sub.Close()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	enc := json.NewEncoder(w)
	for {
		select {
		case <-r.Context().Done():
			return
		case e, ok := <-sub.C:
			if !ok {
				if sub.Lagged() {
					enc.Encode(api.Event{Type: api.EventLagged, Time: time.Now(), Reason: "the client fell behind; reconnect for a fresh snapshot"})
				}
				return
			}
			if err := enc.Encode(e); err != nil {
				return
			}
			fl.Flush()
		}
	}
}

// reply maps the daemon's errors onto status codes and stable codes.
func (s *Server) reply(w http.ResponseWriter, st api.Status, err error) {
	if err == nil {
		writeJSON(w, http.StatusOK, st)
		return
	}
	status, code := errorCode(err)
	writeError(w, status, code, err.Error())
}

// errorCode is the HTTP status and the stable word of api.Error for a daemon
// error.
func errorCode(err error) (int, string) {
	switch {
	case errors.Is(err, daemon.ErrNotRunning):
		return http.StatusConflict, "not_running"
	case errors.Is(err, daemon.ErrBusy), errors.Is(err, daemon.ErrClosing):
		return http.StatusConflict, "busy"
	case errors.Is(err, config.ErrNotInitialized):
		return http.StatusConflict, "not_initialized"
	case errors.Is(err, daemon.ErrInvalidName), errors.Is(err, daemon.ErrInvalidBoot):
		return http.StatusBadRequest, "bad_request"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "failed"
	}
	return http.StatusInternalServerError, "failed"
}

// waitParam reads the only query parameter the lifecycle calls take.
func waitParam(w http.ResponseWriter, r *http.Request) (bool, bool) {
	q := r.URL.Query()
	for k := range q {
		if k != "wait" {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("unknown parameter %q", k))
			return false, false
		}
	}
	if len(q["wait"]) > 1 {
		writeError(w, http.StatusBadRequest, "bad_request", "wait given twice")
		return false, false
	}
	v := q.Get("wait")
	if v == "" {
		return false, true
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("wait=%q: want true or false", v))
		return false, false
	}
	return b, true
}

func noQuery(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.RawQuery != "" {
		writeError(w, http.StatusBadRequest, "bad_request", "this call takes no parameters")
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, short, msg string) {
	writeJSON(w, code, api.Error{Error: msg, Code: short})
}
