package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/hyperos/hyperos/app/api"
	"github.com/hyperos/hyperos/app/client"
	"github.com/hyperos/hyperos/app/config"
	"github.com/hyperos/hyperos/app/daemon"
	"github.com/hyperos/hyperos/app/localapi"
	"github.com/hyperos/hyperos/app/logfile"
	"github.com/hyperos/hyperos/app/machine"
	"github.com/hyperos/hyperos/app/service"
)

func init() {
	commands["daemon"] = cmdDaemon
	commands["service"] = cmdService
	commands["logs"] = cmdLogs
}

const daemonUsage = `usage: hyperos daemon [--boot=true|false] [--restart on-failure|off] [--home DIR]

Runs the HyperOS service in the foreground: it owns the VM (boots it, restarts it
when it dies, halts it when the service stops) and serves the CLI and the tray
on a local socket. 'hyperos service install' makes it start at login.
`

// cmdDaemon runs the service until SIGTERM or SIGINT, then halts the VM.
func cmdDaemon(ctx context.Context, e env) error {
	e.fs.Usage = func() { fmt.Fprint(e.stderr, daemonUsage); e.fs.PrintDefaults() }
	boot := e.fs.Bool("boot", true, "boot the VM when the service starts (settings: daemon.no_boot_at_start)")
	restart := e.fs.String("restart", "on-failure", "on-failure: restart a VM that dies, with backoff; off: report only (settings: daemon.restart)")
	home := e.fs.String("home", "", "serve this HYPEROS_HOME (the Windows Run key cannot set variables)")
	verbose := e.fs.Bool("v", false, "log debug messages too")
	if _, err := parse(e.fs, e.args, 0); err != nil {
		return err
	}
	paths := e.paths
	if *home != "" {
		if err := os.Setenv("HYPEROS_HOME", *home); err != nil {
			return err
		}
		p, err := config.Default()
		if err != nil {
			return err
		}
		paths = p
	}
	m, err := machine.Open(paths)
	if err != nil {
		return err
	}
	opts := daemon.OptionsFrom(m.Settings.Daemon)
	set := map[string]bool{}
	e.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["boot"] {
		opts.BootAtStart = *boot
	}
	if set["restart"] {
		ds := config.DaemonSettings{Restart: *restart}
		if err := ds.Validate(); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		opts.Restart = *restart != "off"
	}

	lock, err := daemon.AcquireLock(paths.DaemonLock())
	if err != nil {
		return err
	}
	defer lock.Release()

	lf, err := logfile.Open(paths.DaemonLog(), logfile.DefaultMaxSize, logfile.DefaultKeep)
	if err != nil {
		return err
	}
	defer lf.Close()
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := logfile.Logger(lf, e.stderr, level)
	slog.SetDefault(log)
	m.Log = log

	sock, err := paths.Socket()
	if err != nil {
		return err
	}
	l, err := localapi.Listen(sock, log)
	if errors.Is(err, localapi.ErrInUse) {
		return fmt.Errorf("%w: stop it first ('hyperos service stop'), or talk to it with 'hyperos status'", err)
	}
	if err != nil {
		return err
	}
	opts.ConsoleLog = paths.ConsoleLog()
	opts.Version = version
	opts.LogFile = paths.DaemonLog()
	opts.StateFile = paths.DaemonState()
	opts.Log = log
	d := daemon.New(m, opts)

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	srv := localapi.New(d, log)
	srv.Shutdown = stop
	// The API keeps answering while the VM shuts down, so that clients see the
	// stopping and stopped events; it closes after the VM is down.
	srvCtx, srvStop := context.WithCancel(context.Background())
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(srvCtx, l) }()
	log.Info("service started", "pid", os.Getpid(), "version", version, "socket", sock, "home", paths.State, "boot", opts.BootAtStart, "restart", opts.Restart)

	runErr := d.Run(runCtx)
	srvStop()
	if err := <-srvDone; err != nil {
		log.Warn("local API", "err", err)
	}
	if runErr != nil {
		log.Error("service stopped with an error", "err", runErr)
		return runErr
	}
	log.Info("service stopped")
	return nil
}

// cmdService installs and controls the service for this user.
func cmdService(ctx context.Context, e env) error {
	e.fs.Usage = func() {
		fmt.Fprint(e.stderr, "usage: hyperos service install [--boot=false] [--restart off] | uninstall | start | stop | status\n")
	}
	boot := e.fs.Bool("boot", true, "install: boot the VM when the service starts")
	restart := e.fs.String("restart", "on-failure", "install: on-failure or off")
	pos, err := parse(e.fs, e.args, 1)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		e.fs.Usage()
		return fmt.Errorf("%w: say what to do: install, uninstall, start, stop or status", errUsage)
	}
	args := []string{"daemon"}
	if !*boot {
		args = append(args, "--boot=false")
	}
	if *restart != "on-failure" {
		if err := (config.DaemonSettings{Restart: *restart}).Validate(); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		args = append(args, "--restart", *restart)
	}
	_, hasTray := commands["tray"]
	cfg, err := service.FromEnvironment(args, hasTray, e.paths.LogDir())
	if err != nil {
		return err
	}
	mgr, err := service.New(cfg)
	if err != nil {
		return err
	}
	switch pos[0] {
	case "install":
		if _, err := config.Load(e.paths); err != nil {
			return err
		}
		if err := mgr.Install(ctx); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, "installed: HyperOS starts at login; start it now with 'hyperos service start'")
	case "uninstall":
		if err := mgr.Uninstall(ctx); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, "uninstalled")
	case "start":
		if err := mgr.Start(ctx); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, "started")
	case "stop":
		if err := mgr.Stop(ctx); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, "stopped")
	case "status":
		st, err := mgr.Status(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, st)
		for _, f := range st.Files {
			fmt.Fprintln(e.stdout, "  "+f)
		}
		if st.Detail != "" {
			fmt.Fprintln(e.stdout, "  "+st.Detail)
		}
		if !st.Running {
			return exitError(3) // as systemctl and LSB status do for "not running"
		}
	default:
		return fmt.Errorf("%w: unknown service action %q (install, uninstall, start, stop, status)", errUsage, pos[0])
	}
	return nil
}

// cmdLogs prints the service's log, then the VM's console log; -f follows both.
func cmdLogs(ctx context.Context, e env) error {
	follow := e.fs.Bool("f", false, "keep printing as the logs grow")
	only := e.fs.String("only", "", "daemon or console: one log only")
	if _, err := parse(e.fs, e.args, 0); err != nil {
		return err
	}
	var files []string
	switch *only {
	case "":
		files = append(logfile.Files(e.paths.DaemonLog(), logfile.DefaultKeep), e.paths.ConsoleLog())
	case "daemon":
		files = logfile.Files(e.paths.DaemonLog(), logfile.DefaultKeep)
	case "console":
		files = []string{e.paths.ConsoleLog()}
	default:
		return fmt.Errorf("%w: --only daemon or --only console", errUsage)
	}
	if !*follow {
		found := false
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			found = true
			fmt.Fprintf(e.stdout, "==> %s <==\n", f)
			e.stdout.Write(b)
		}
		if !found {
			return fmt.Errorf("no logs yet in %s", e.paths.State)
		}
		return nil
	}
	// Follow the current files only: the daemon's live log and the console.
	var live []string
	if *only != "console" {
		live = append(live, e.paths.DaemonLog())
	}
	if *only != "daemon" {
		live = append(live, e.paths.ConsoleLog())
	}
	return followLogs(ctx, e.stdout, live)
}

// followLogs prints each file from its start and then what is appended, like
// tail -f with headers. A file that shrinks or is replaced (rotation, a new
// boot) is read again from its start.
func followLogs(ctx context.Context, w io.Writer, paths []string) error {
	type state struct {
		f   *os.File
		off int64
		fi  os.FileInfo
	}
	sts := make([]state, len(paths))
	last := -1
	buf := make([]byte, 32<<10)
	for {
		for i, p := range paths {
			s := &sts[i]
			fi, err := os.Stat(p)
			if err != nil {
				continue
			}
			if s.f != nil && (!os.SameFile(fi, s.fi) || fi.Size() < s.off) {
				s.f.Close()
				s.f = nil
			}
			if s.f == nil {
				f, err := os.Open(p)
				if err != nil {
					continue
				}
				s.f, s.off, s.fi = f, 0, fi
			}
			for {
				n, err := s.f.ReadAt(buf, s.off)
				if n > 0 {
					if last != i {
						fmt.Fprintf(w, "\n==> %s <==\n", p)
						last = i
					}
					w.Write(buf[:n])
					s.off += int64(n)
				}
				if err != nil || n == 0 {
					break
				}
			}
		}
		select {
		case <-ctx.Done():
			for _, s := range sts {
				if s.f != nil {
					s.f.Close()
				}
			}
			return nil
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// viaService returns a client when a HyperOS service answers for this home, so
// that VM commands go through it and never race its state machine. No service
// means the CLI works on the VM directly, as it always did: it does not start a
// service on demand (see README, "The background service").
func viaService(ctx context.Context, paths config.Paths) (*client.Client, bool, error) {
	sock, err := paths.Socket()
	if err != nil {
		return nil, false, nil
	}
	c := &client.Client{Socket: sock}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = c.Status(sctx)
	switch {
	case err == nil:
		return c, true, nil
	case errors.Is(err, client.ErrNotRunning):
		return nil, false, nil
	default:
		return nil, false, fmt.Errorf("the HyperOS service for this home refused: %w", err)
	}
}

// serviceCommand runs a VM command through the service.
func serviceCommand(ctx context.Context, cmd string, c *client.Client, e env) error {
	switch cmd {
	case "boot":
		asJSON := e.fs.Bool("json", false, "print the status as JSON")
		timeout := e.fs.Duration("timeout", 10*time.Minute, "give up after this long")
		if _, err := parse(e.fs, e.args, 0); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		st, err := bootViaService(ctx, c, e.stderr)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, st)
		}
		fmt.Fprintf(e.stdout, "%s %s\n", orNone(st.IP()), st.Hostname)
		return nil
	case "status":
		asJSON := e.fs.Bool("json", false, "print JSON")
		if _, err := parse(e.fs, e.args, 0); err != nil {
			return err
		}
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			if err := printJSON(e.stdout, st); err != nil {
				return err
			}
		} else if st.State == "running" {
			fmt.Fprintf(e.stdout, "%s is running (pid %d, %s", st.Name, st.Pid, st.Driver)
			if st.Accel != "" {
				fmt.Fprintf(e.stdout, "/%s", st.Accel)
			}
			fmt.Fprintf(e.stdout, "), ip %s, ssh %s; service: %s\n", orNone(st.IP()), orNone(st.SSH), phaseText(st))
		} else {
			fmt.Fprintf(e.stdout, "%s is not running; service: %s\n", st.Name, phaseText(st))
		}
		if st.State != "running" {
			return exitError(1)
		}
		return nil
	case "ip", "pid":
		if _, err := parse(e.fs, e.args, 0); err != nil {
			return err
		}
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		if st.State != "running" {
			return machine.ErrNotRunning
		}
		if cmd == "pid" {
			fmt.Fprintln(e.stdout, st.Pid)
			return nil
		}
		if st.IP() == "" {
			return errors.New("the VM has not announced an address yet")
		}
		fmt.Fprintln(e.stdout, st.IP())
		return nil
	case "halt":
		if _, err := parse(e.fs, e.args, 0); err != nil {
			return err
		}
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "Shutting down %s…\n", st.Name)
		if _, err := c.Halt(ctx); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "%s stopped\n", st.Name)
		return nil
	case "kill":
		if _, err := parse(e.fs, e.args, 0); err != nil {
			return err
		}
		_, err := c.Kill(ctx)
		return err
	}
	return fmt.Errorf("%w: %s does not go through the service", errUsage, cmd)
}

func phaseText(st api.Status) string {
	s := string(st.Phase)
	if st.Reason != "" {
		s += " (" + st.Reason + ")"
	}
	if !st.NextRestart.IsZero() {
		s += fmt.Sprintf(", restarting at %s", st.NextRestart.Format(time.TimeOnly))
	}
	return s
}

// bootViaService asks the service to boot and prints its progress from the
// event stream (subscribed first, so no event is missed) until the VM is online
// or the boot has failed.
func bootViaService(ctx context.Context, c *client.Client, progress io.Writer) (api.Status, error) {
	ev, err := c.Events(ctx)
	if err != nil {
		return api.Status{}, err
	}
	defer ev.Close()
	st, err := c.Boot(ctx, false)
	if err != nil {
		return st, err
	}
	if st.Phase == api.Online {
		return st, nil
	}
	for {
		e, err := ev.Next()
		if err != nil {
			if ctx.Err() != nil {
				return api.Status{}, fmt.Errorf("waiting for the boot: %w", ctx.Err())
			}
			return api.Status{}, fmt.Errorf("the service's event stream ended during the boot: %w", err)
		}
		if e.Snapshot {
			continue
		}
		switch e.Type {
		case api.EventProgress:
			fmt.Fprintln(progress, e.Message)
		case api.EventConsole:
			fmt.Fprintf(progress, "console: %s\n", e.Milestone)
		case api.EventState:
			switch e.Phase {
			case api.Online:
				return c.Status(ctx)
			case api.Failed:
				return api.Status{}, fmt.Errorf("boot %s: %s", e.Name, e.Reason)
			case api.Stopped, api.Stopping:
				return api.Status{}, fmt.Errorf("boot %s: the VM was stopped during its boot (%s)", e.Name, e.Message)
			}
		}
	}
}
