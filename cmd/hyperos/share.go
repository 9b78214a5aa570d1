package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hyperos/hyperos/app/config"
	"github.com/hyperos/hyperos/app/shares"
	"github.com/hyperos/hyperos/hyper/core/store"
	"github.com/hyperos/hyperos/hyper/corestore"
	"github.com/hyperos/hyperos/hyper/link"
	"github.com/hyperos/hyperos/hyper/peer"
	"github.com/hyperos/hyperos/hyper/share"
)

// `hyperos share` and `hyperos get` live here; the logic is in hyper/share.

func init() {
	commands["share"] = cmdShare
	commands["get"] = cmdGet
}

// hyperStore is the corestore for shares and downloads. One primary key
// (0600) in it derives a key pair per shared path, so sharing a path again
// gives the same link; verified blocks of fetched drives stay in it, which
// is what lets an interrupted get resume.
func hyperStore(paths config.Paths) (*corestore.Store, error) {
	if err := os.MkdirAll(paths.State, 0o700); err != nil {
		return nil, err
	}
	return corestore.Open(paths.HyperStore(), nil)
}

func cmdShare(ctx context.Context, e env) error {
	listen := e.fs.String("listen", ":0", "seed on this `HOST:PORT`")
	pos, err := parse(e.fs, e.args, 1)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: hyperos share PATH [--listen HOST:PORT]", errUsage)
	}
	abs, err := filepath.Abs(pos[0])
	if err != nil {
		return err
	}
	st, err := hyperStore(e.paths)
	if err != nil {
		return err
	}
	defer st.Close()
	d, err := share.OpenWritable(st, share.DriveNamespace(abs))
	if err != nil {
		return lockHint(err)
	}
	res, err := share.Publish(ctx, d, abs)
	if err != nil {
		return err
	}
	// The link first, alone on its line, so scripts can read it.
	fmt.Fprintln(e.stdout, res.Link.String())
	if f, ok := e.stdout.(*os.File); ok {
		f.Sync()
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	fmt.Fprintf(e.stderr, "version %d (%d added, %d updated, %d deleted); seeding on %s until stopped\n",
		res.Version, res.Added, res.Updated, res.Deleted, ln.Addr())
	// Let `hyperos container boot` find this share without a --peer.
	remove, err := shares.Announce(e.paths.Shares(), shares.Record{
		Key: res.Link.Key.Hex(), Port: ln.Addr().(*net.TCPAddr).Port, Addr: ln.Addr().String(), Path: abs})
	if err != nil {
		fmt.Fprintf(e.stderr, "warning: %v (containers will need --peer)\n", err)
	} else {
		defer remove()
	}
	return peer.Serve(ctx, ln, st, nil)
}

func cmdGet(ctx context.Context, e env) error {
	var peers []string
	e.fs.Func("peer", "fetch from the seeder at `HOST:PORT` (repeatable)", func(s string) error {
		peers = append(peers, s)
		return nil
	})
	quiet := e.fs.Bool("quiet", false, "no progress bar")
	pos, err := parse(e.fs, e.args, 2)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return fmt.Errorf("%w: hyperos get LINK [DEST] --peer HOST:PORT", errUsage)
	}
	l, err := link.Parse(pos[0])
	if err != nil {
		return err
	}
	dest := ""
	if len(pos) == 2 {
		dest = pos[1]
	} else if l.Path == "/" {
		dest = l.Key.String()
	} else {
		dest = filepath.Base(filepath.FromSlash(l.Path))
	}
	if len(peers) == 0 {
		return fmt.Errorf("%w: name a seeder with --peer HOST:PORT (peer discovery is not there yet)", errUsage)
	}
	st, err := hyperStore(e.paths)
	if err != nil {
		return err
	}
	defer st.Close()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	conns, err := dialAll(ctx, peers, st)
	if err != nil {
		return err
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// Give up once every peer is gone: no block can arrive any more.
	go func() {
		for _, c := range conns {
			select {
			case <-c.Done():
			case <-ctx.Done():
				return
			}
		}
		errs := []error{}
		for _, c := range conns {
			errs = append(errs, fmt.Errorf("%s: %w", c.RemoteAddr(), c.Err()))
		}
		cancel(fmt.Errorf("every peer disconnected: %w", errors.Join(errs...)))
	}()
	d, err := share.OpenRemote(ctx, st, l.Key, conns)
	if err != nil {
		return withCause(ctx, lockHint(err))
	}
	bar := newBar(e.stderr, *quiet)
	res, err := share.Fetch(ctx, d, l, dest, &share.FetchOptions{Progress: bar.update, Conns: conns})
	bar.done()
	if err != nil {
		return withCause(ctx, err)
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(e.stderr, "skipped symlink %s\n", s)
	}
	fmt.Fprintf(e.stderr, "%s: %d files, %s, version %d\n", res.Dest, res.Files, humanBytes(float64(res.Bytes)), res.Version)
	return nil
}

// lockHint says what to do when a drive's storage is locked: another
// hyperos process (a share of the same path, or a get of the same link)
// holds it, and one drive's storage has one user at a time.
func lockHint(err error) error {
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%w\nanother hyperos process (a running share or get of this drive) is using it: stop that one first, or give this one its own HYPEROS_HOME", err)
	}
	return err
}

// withCause adds why ctx was cancelled to err.
func withCause(ctx context.Context, err error) error {
	if c := context.Cause(ctx); c != nil && !errors.Is(err, c) {
		return fmt.Errorf("%w (%v)", err, c)
	}
	return err
}

// dialAll connects to every peer it can; it fails only if none answers.
func dialAll(ctx context.Context, addrs []string, st *corestore.Store) ([]*peer.Conn, error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var conns []*peer.Conn
	var errs []error
	for _, a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			c, err := peer.Dial(dctx, a, st, nil)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			conns = append(conns, c)
		}()
	}
	wg.Wait()
	if len(conns) == 0 {
		return nil, fmt.Errorf("no peer reachable: %w", errors.Join(errs...))
	}
	for _, err := range errs {
		fmt.Fprintf(os.Stderr, "warning: %v\n", err)
	}
	return conns, nil
}

// bar draws a one-line progress bar on a terminal.
type bar struct {
	w     io.Writer
	on    bool
	start time.Time
	drawn bool
}

func newBar(w io.Writer, quiet bool) *bar {
	on := false
	if f, ok := w.(*os.File); ok && !quiet {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			on = true
		}
	}
	return &bar{w: w, on: on, start: time.Now()}
}

func (b *bar) update(p share.Progress) {
	if !b.on {
		return
	}
	const width = 30
	frac := 1.0
	if p.Bytes > 0 {
		frac = float64(p.BytesDone) / float64(p.Bytes)
	}
	n := int(frac * width)
	rate := float64(p.BytesDone) / max(time.Since(b.start).Seconds(), 0.001)
	name := p.Path
	if len(name) > 30 {
		name = "…" + name[len(name)-29:]
	}
	fmt.Fprintf(b.w, "\r[%s%s] %3.0f%% %s/%s %s/s %d/%d files %s\x1b[K",
		strings.Repeat("#", n), strings.Repeat(".", width-n), frac*100,
		humanBytes(float64(p.BytesDone)), humanBytes(float64(p.Bytes)), humanBytes(rate),
		p.FilesDone, p.Files, name)
	b.drawn = true
}

func (b *bar) done() {
	if b.drawn {
		fmt.Fprintln(b.w)
	}
}

func humanBytes(n float64) string {
	units := []string{"B", "KB", "MB", "GB", "TB"}
	i := 0
	for n >= 1000 && i < len(units)-1 {
		n /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f %s", n, units[i])
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}
