package container

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hyperos/hyperos/guest/lazyimage"
	"github.com/hyperos/hyperos/hyper/blobs"
	"github.com/hyperos/hyperos/hyper/core"
	"github.com/hyperos/hyperos/hyper/corestore"
	"github.com/hyperos/hyperos/hyper/link"
	"github.com/hyperos/hyperos/hyper/peer"
	"github.com/hyperos/hyperos/hyper/share"
)

// blobSource adapts a Hyperdrive file to lazyimage.Source; every byte it returns
// was verified against the drive's Merkle tree by hyper/core. Reads run
// concurrently (the lazy image fetches a read's blocks, and readahead, at
// once), and each gives up when its context ends, so that closing the image
// does not wait for a peer that is gone.
type blobSource struct {
	r    *blobs.Reader
	size int64
}

func (b *blobSource) Size() int64 { return b.size }
func (b *blobSource) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	return b.r.ReadAtContext(ctx, p, off)
}

// peers keeps one connection to each named peer, redialing with backoff when one
// ends: a seeder that goes away and comes back resumes the I/O waiting on it.
type peers struct {
	mu    sync.Mutex
	conns map[string]*peer.Conn
}

func (p *peers) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

func (p *peers) list() []*peer.Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*peer.Conn
	for _, c := range p.conns {
		out = append(out, c)
	}
	return out
}

func (p *peers) keep(ctx context.Context, st *corestore.Store, addr string, log *slog.Logger) {
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		c, err := dialPeer(ctx, addr, st)
		if err != nil {
			log.Info("peer unreachable, retrying", "peer", addr, "err", err, "in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 10*time.Second)
			continue
		}
		backoff = 500 * time.Millisecond
		p.mu.Lock()
		p.conns[addr] = c
		p.mu.Unlock()
		log.Info("peer connected", "peer", addr)
		select {
		case <-ctx.Done():
			c.Close()
		case <-c.Done():
			log.Info("peer gone", "peer", addr, "err", c.Err())
		}
		p.mu.Lock()
		delete(p.conns, addr)
		p.mu.Unlock()
	}
}

// Serve runs the named container until it stops or ctx ends (the unit is
// stopped). It is the body of the container's systemd unit.
func Serve(ctx context.Context, d Dirs, name string, ev *Events, log *slog.Logger) (err error) {
	spec, err := d.loadSpec(name)
	if err != nil {
		return err
	}
	st := State{Spec: spec, Phase: Booting, Started: time.Now()}
	if old, err := d.Load(name); err == nil {
		st.Version = old.Version
	}
	setPhase := func(p Phase, reason string) {
		st.Phase, st.Reason = p, reason
		d.saveState(st)
		ev.Emit(Event{Type: string(p), Container: name, Reason: reason, Stats: &st.Stats, BootSeconds: st.BootSeconds})
	}
	defer func() {
		if err != nil && ctx.Err() == nil {
			setPhase(Failed, err.Error())
		}
	}()
	setPhase(Booting, "")

	l, err := link.Parse(spec.Link)
	if err != nil {
		return err
	}
	// The lazy image keeps every block it reads in its own cache, synced in
	// batches; the store's copy is for serving peers, and an fsync per
	// fetched block would cost more than the fetch (in an emulated VM, tens
	// of milliseconds on every cold read).
	store, err := corestore.Open(d.storeDir(name), &corestore.Options{DeferSync: true})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer store.Close()
	// The data path (peers, image reads) must outlive ctx: when the unit is
	// stopped, the container still reads and writes its disk while it powers off.
	// It ends only once systemd-nspawn has exited and the mount is gone.
	pctx, stopPeers := context.WithCancel(context.Background())
	defer stopPeers()
	ps := &peers{conns: map[string]*peer.Conn{}}
	for _, addr := range spec.Peers {
		go ps.keep(pctx, store, addr, log)
	}

	// Give the peers a moment to connect before the first look at the drive.
	for i := 0; i < 50 && ps.count() == 0 && len(spec.Peers) > 0; i++ {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
	// Open the drive and wait for the image to be published, as the original did.
	var reader *blobs.Reader
	var db *corestore.Core
	for {
		reader, db, err = openImage(ctx, pctx, store, l, ps, &st)
		if err == nil {
			break
		}
		if !errors.Is(err, errNoImage) {
			return err
		}
		if st.Phase != Waiting {
			setPhase(Waiting, fmt.Sprintf("%s is not published yet; waiting for it", l.Path))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(3 * time.Second):
		}
	}
	if st.Phase == Waiting {
		setPhase(Booting, "")
	}
	size, err := reader.Size()
	if err != nil {
		return err
	}
	im, err := lazyimage.Open(&blobSource{r: reader, size: int64(size)}, lazyimage.Options{Dir: d.cacheDir(name), Readahead: 16, MissReadahead: 2})
	if err != nil {
		return err
	}
	mnt := d.mountDir(name)
	os.MkdirAll(mnt, 0o700)
	// A mount left by a crashed or still-detaching earlier run would make this
	// one fail: detach it first (its users are gone with that run).
	syscall.Unmount(mnt, syscall.MNT_DETACH)
	srv, err := lazyimage.Mount(im, mnt, "image.img")
	if err != nil {
		im.Close()
		return err
	}
	defer func() {
		if uerr := srv.Unmount(); uerr != nil {
			// The loop device nspawn used may still be letting go of the file.
			log.Info("lazy unmount", "mount", mnt, "err", uerr)
			syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
		if cerr := im.Close(); cerr != nil && err == nil {
			err = cerr
		}
		if spec.Ephemeral {
			lazyimage.Discard(d.cacheDir(name))
		}
	}()
	if spec.Prefetch {
		go im.Prefetch(pctx)
	}

	args := []string{"--quiet", "--image=" + filepath.Join(mnt, "image.img"), "--machine=" + name, "--register=yes", "--keep-unit"}
	for _, b := range spec.Binds {
		args = append(args, "--bind="+b)
	}
	args = append(args, spec.Nspawn...)
	if spec.Boot {
		args = append(args, "--boot")
	} else {
		args = append(append(args, "--"), spec.Command...)
	}
	cmd := exec.Command("systemd-nspawn", args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	// nspawn locks an image with a file beside it; the lazy image's directory
	// holds only the image, and the unit itself keeps one container per name.
	cmd.Env = append(os.Environ(), "SYSTEMD_NSPAWN_LOCK=0")
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("systemd-nspawn: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	up := make(chan error, 1)
	go func() { up <- waitUp(pctx, name, spec.Boot) }()
	// A newer version published while the container runs is reported; the
	// container keeps the version it booted (its disk never changes under it).
	newer := make(chan struct{}, 1)
	db.OnEvent(func(e core.Event) {
		if e.Appended {
			select {
			case newer <- struct{}{}:
			default:
			}
		}
	})
	newer <- struct{}{} // a version that came while booting
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-up:
			if err == nil {
				st.BootSeconds = time.Since(start).Seconds()
				st.Stats, st.Peers = im.Stats(), ps.count()
				setPhase(Running, "")
				ev.Emit(Event{Type: "booted", Container: name, Stats: &st.Stats, BootSeconds: st.BootSeconds})
			}
		case <-tick.C:
			st.Stats, st.Peers = im.Stats(), ps.count()
			d.saveState(st)
		case <-newer:
			if v := db.Length(); v > st.Version && v > st.NewVersion {
				st.NewVersion = v
				d.saveState(st)
				log.Info("a new version of the image's drive", "running", st.Version, "new", v)
				ev.Emit(Event{Type: "new-version", Container: name, Version: st.Version, NewVersion: v})
			}
		case <-ctx.Done():
			// Ask nspawn to stop the container (for --boot, a clean poweroff).
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(45 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
			st.Stats = im.Stats()
			setPhase(Stopped, "")
			return nil
		case err := <-exited:
			st.Stats = im.Stats()
			if err != nil && spec.Boot {
				return fmt.Errorf("systemd-nspawn: %w", err)
			}
			reason := ""
			if err != nil {
				reason = err.Error()
			}
			setPhase(Stopped, reason)
			return nil
		}
	}
}

var errNoImage = errors.New("image not published")

// openImage opens the drive at the version the container first booted (so that a
// new version never changes a running container's disk under it) and the image
// file in it, noting newer versions in st.
func openImage(ctx, dataCtx context.Context, store *corestore.Store, l link.Link, ps *peers, st *State) (*blobs.Reader, *corestore.Core, error) {
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	d, err := share.OpenRemote(octx, store, l.Key, ps.list())
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", l.Key, err)
	}
	latest := d.Version()
	drv := d.Drive
	if st.Version != 0 && st.Version <= latest {
		drv = d.Drive.Checkout(st.Version)
		if latest > st.Version {
			st.NewVersion = latest
		}
	} else {
		st.Version = latest
	}
	e, err := drv.Entry(ctx, l.Path)
	if err != nil {
		return nil, nil, err
	}
	if e == nil {
		return nil, nil, errNoImage
	}
	r, err := drv.Open(dataCtx, l.Path)
	return r, d.DB, err
}

// waitUp returns when the container is up: registered with machined, and for a
// booted container, its systemd reports running or degraded.
func waitUp(ctx context.Context, name string, boot bool) error {
	for {
		out, _ := exec.CommandContext(ctx, "machinectl", "show", name, "-p", "State", "--value").Output()
		if strings.TrimSpace(string(out)) == "running" {
			if !boot {
				return nil
			}
			out, _ = exec.CommandContext(ctx, "systemctl", "-M", name, "is-system-running", "--wait").Output()
			switch strings.TrimSpace(string(out)) {
			case "running", "degraded":
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// dialPeer connects to addr, finding _gateway's address first.
func dialPeer(ctx context.Context, addr string, st *corestore.Store) (*peer.Conn, error) {
	routes, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return nil, err
	}
	to, err := ResolveGateway(addr, routes)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return peer.Dial(ctx, to, st, nil)
}
