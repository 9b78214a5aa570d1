// Command hyperos boots and reaches the HyperOS VM: the commands of the original
// `linux` tool (init, boot, status, ip, ssh, run, halt, kill, pid, ps) and more.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hyperos/hyperos/app/config"
	"github.com/hyperos/hyperos/app/machine"
	"github.com/hyperos/hyperos/app/shell"
	"github.com/hyperos/hyperos/vm"
	"github.com/hyperos/hyperos/vm/qemu"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: hyperos COMMAND [flags]

  init     create the VM's settings and SSH key (--name, --memory, --cpus, --disk)
  boot     boot the VM and wait until it is online; prints its IP and hostname
  status   is the VM running? (--json; exit status 0 when running)
  ip       print the VM's IP address
  ssh      open a shell in the VM (or run a command: hyperos ssh -- CMD);
           --container NAME opens it inside a running container
  run      run a command in the VM: hyperos run -- CMD [ARGS...]
  halt     shut the VM down gracefully and wait until it has stopped
  kill     stop the VM at once
  pid      print the hypervisor's process id
  ps       list the HyperOS VMs running on this host (--json)
  container boot|ls|stop|rm   live-boot container images in the VM (hyperos container help)
  image create OUT.img        make a bootable Debian container image (Linux, root)
  share PATH [--listen H:P]   publish a file or tree as a Hyperdrive and seed it
  get LINK [DEST] [--peer H:P]  fetch a hyper:// file or tree, verified, resumable
  version  print the version

  daemon   run the background service in the foreground (it owns the VM)
  service  install | uninstall | start | stop | status: the service at login
  tray     the menu-bar / system-tray app (a client of the service)
  logs     print the service's log and the VM's console log (-f follows)

When the service runs, boot, status, ip, pid, halt and kill go through it.
Every path lives under $HYPEROS_HOME when it is set.
`

func main() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exitError carries an exit status without a message (a remote command's own).
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func run(ctx context.Context, args []string, stdin *os.File, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, rest := args[0], args[1:]
	err := dispatch(ctx, cmd, rest, stdin, stdout, stderr)
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return int(ee)
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "hyperos %s: %v\n", cmd, err)
		return 2
	default:
		fmt.Fprintf(stderr, "hyperos %s: %v\n", cmd, err)
		return 1
	}
}

var errUsage = errors.New("usage")

// env is what a command gets.
type env struct {
	paths          config.Paths
	fs             *flag.FlagSet
	args           []string
	stdin          *os.File
	stdout, stderr io.Writer
}

// commands holds the commands defined in other files of this package (each adds
// itself in an init function), so that a feature's CLI lives beside its wiring.
var commands = map[string]func(context.Context, env) error{}

func dispatch(ctx context.Context, cmd string, args []string, stdin *os.File, stdout, stderr io.Writer) error {
	paths, err := config.Default()
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if c, ok := commands[cmd]; ok {
		return c(ctx, env{paths: paths, fs: fs, args: args, stdin: stdin, stdout: stdout, stderr: stderr})
	}
	switch cmd {
	case "version":
		fmt.Fprintln(stdout, version)
		return nil
	case "init":
		var s config.Settings
		force := fs.Bool("force", false, "start over: new settings and SSH key")
		fs.StringVar(&s.Name, "name", "", "hostname (default: a random readable name)")
		fs.IntVar(&s.MemoryMB, "memory", 1024, "memory in MB")
		fs.IntVar(&s.CPUs, "cpus", 2, "virtual CPUs")
		fs.IntVar(&s.DiskGB, "disk", 20, "data disk size in GB (sparse)")
		fs.StringVar(&s.Driver, "driver", "", "qemu or vfkit (default: the platform's best)")
		fs.StringVar(&s.Accel, "accel", "", "force an accelerator: kvm, hvf, whpx or tcg")
		fs.StringVar(&s.Kernel, "kernel", "", "boot this kernel instead of the installed image")
		fs.StringVar(&s.Initrd, "initrd", "", "boot this initrd instead of the installed image")
		if _, err := parse(fs, args, 0); err != nil {
			return err
		}
		if err := machine.Init(paths, s, *force); err != nil {
			return err
		}
		m, err := machine.Open(paths)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "initialized %s in %s\n", m.Settings.Name, paths.Config)
		return nil
	case "ps":
		asJSON := fs.Bool("json", false, "print JSON")
		if _, err := parse(fs, args, 0); err != nil {
			return err
		}
		return ps(paths, *asJSON, stdout)
	}

	switch cmd {
	case "boot", "status", "ip", "pid", "halt", "kill":
		// With a service running, it owns the VM: ask it, so that the terminal
		// and the tray never fight over the VM.
		c, ok, err := viaService(ctx, paths)
		if err != nil {
			return err
		}
		if ok {
			return serviceCommand(ctx, cmd, c, env{paths: paths, fs: fs, args: args, stdin: stdin, stdout: stdout, stderr: stderr})
		}
	}
	m, err := machine.Open(paths)
	if err != nil {
		return err
	}
	switch cmd {
	case "boot":
		asJSON := fs.Bool("json", false, "print the status as JSON")
		timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
		if _, err := parse(fs, args, 0); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		st, err := m.Boot(ctx, func(msg string) { fmt.Fprintln(stderr, msg) })
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, st)
		}
		fmt.Fprintf(stdout, "%s %s\n", orNone(st.IP()), st.Hostname)
		return nil
	case "status":
		asJSON := fs.Bool("json", false, "print JSON")
		if _, err := parse(fs, args, 0); err != nil {
			return err
		}
		st := m.Status()
		if *asJSON {
			if err := printJSON(stdout, st); err != nil {
				return err
			}
		} else if st.State == vm.Running {
			fmt.Fprintf(stdout, "%s is running (pid %d, %s", st.Name, st.Pid, st.Driver)
			if st.Accel != "" {
				fmt.Fprintf(stdout, "/%s", st.Accel)
			}
			fmt.Fprintf(stdout, "), ip %s, ssh %s\n", orNone(st.IP()), orNone(st.SSH))
		} else {
			fmt.Fprintf(stdout, "%s is not running\n", st.Name)
		}
		if st.State != vm.Running {
			return exitError(1)
		}
		return nil
	case "ip":
		if _, err := parse(fs, args, 0); err != nil {
			return err
		}
		st := m.Status()
		if st.State != vm.Running {
			return machine.ErrNotRunning
		}
		if st.IP() == "" {
			return errors.New("the VM has not announced an address yet")
		}
		fmt.Fprintln(stdout, st.IP())
		return nil
	case "pid":
		if _, err := parse(fs, args, 0); err != nil {
			return err
		}
		st := m.Status()
		if st.State != vm.Running {
			return machine.ErrNotRunning
		}
		fmt.Fprintln(stdout, st.Pid)
		return nil
	case "ssh", "run":
		ctr := ""
		if cmd == "ssh" {
			fs.StringVar(&ctr, "container", "", "open the shell inside this container")
		}
		rest, err := parse(fs, args, -1)
		if err != nil {
			return err
		}
		if cmd == "run" && len(rest) == 0 {
			return fmt.Errorf("%w: hyperos run -- CMD [ARGS...]", errUsage)
		}
		c, err := m.Dial(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		command := ""
		if len(rest) > 0 {
			command = shell.Quote(rest)
		}
		if ctr != "" {
			if len(rest) > 0 {
				return fmt.Errorf("%w: --container opens a shell; to run a command use: hyperos run -- systemd-run -M NAME --pipe --wait CMD", errUsage)
			}
			if command, err = containerShell(ctr); err != nil {
				return err
			}
		}
		var code int
		if cmd == "ssh" {
			code, err = shell.Interactive(ctx, c, command, stdin, stdout, stderr)
		} else {
			code, err = shell.Run(ctx, c, command, stdin, stdout, stderr)
		}
		if err != nil {
			return err
		}
		if code != 0 {
			return exitError(code)
		}
		return nil
	case "halt":
		if _, err := parse(fs, args, 0); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "Shutting down %s…\n", m.Settings.Name)
		if err := m.Halt(ctx); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "%s stopped\n", m.Settings.Name)
		return nil
	case "kill":
		if _, err := parse(fs, args, 0); err != nil {
			return err
		}
		return m.Kill()
	}
	return fmt.Errorf("%w: unknown command %q (see 'hyperos help')", errUsage, cmd)
}

// parse parses flags that may come before or after positional arguments, up to
// "--". It returns the positional arguments; max limits their number (-1: any).
func parse(fs *flag.FlagSet, args []string, max int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if max >= 0 && len(pos) > max {
		return nil, fmt.Errorf("%w: unexpected argument %q", errUsage, pos[max])
	}
	return pos, nil
}

func ps(paths config.Paths, asJSON bool, stdout io.Writer) error {
	procs, err := qemu.List()
	if errors.Is(err, errors.ErrUnsupported) {
		// Only this home's VM can be seen on this platform.
		procs = nil
		if m, err := machine.Open(paths); err == nil {
			if st := m.Status(); st.State == vm.Running {
				procs = append(procs, qemu.Process{Pid: st.Pid, Name: st.Name, Dir: paths.VMDir(), Accel: st.Accel})
			}
		}
	} else if err != nil {
		return err
	}
	if asJSON {
		if procs == nil {
			procs = []qemu.Process{}
		}
		return printJSON(stdout, procs)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PID\tNAME\tACCEL\tHOME")
	for _, p := range procs {
		home := strings.TrimSuffix(p.Dir, "/state/vm")
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", p.Pid, p.Name, p.Accel, home)
	}
	return tw.Flush()
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
