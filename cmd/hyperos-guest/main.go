//go:build linux

// Command hyperos-guest runs inside the HyperOS VM: it applies the kernel command
// line, prepares the data disk and host keys, and announces readiness to the host.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hyperos/hyperos/guest/cmdline"
	"github.com/hyperos/hyperos/guest/datadisk"
	"github.com/hyperos/hyperos/guest/identity"
	"github.com/hyperos/hyperos/guest/ready"
	"golang.org/x/sys/unix"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: hyperos-guest COMMAND

Boot steps, run by systemd units in the HyperOS image:
  setup      apply host= and sshkey= from the kernel command line
  datadisk   format (if blank) and mount the disk with serial hyperos-data
  hostkeys   create or restore the SSH host key
  ready      print the HYPEROS-READY line on the console when sshd answers
  version    print the version

Containers (see 'hyperos-guest container'):
  container boot|ls|stop|rm   live-boot container images over Hypercore
  events     follow the event stream (JSON lines) the host daemon reads
`

func main() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "setup":
		err = setup()
	case "datadisk":
		err = prepareData(ctx)
	case "hostkeys":
		err = hostKeys()
	case "ready":
		err = announce(ctx)
	case "container":
		err = containerCmd(ctx, os.Args[2:])
	case "events":
		err = followEvents(ctx)
	case "version":
		fmt.Println(version)
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "hyperos-guest %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func kernelCmdline() (string, error) {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return "", fmt.Errorf("read kernel command line: %w", err)
	}
	return string(b), nil
}

// setup applies the command line; refused values are reported on the console (the
// unit's output goes there) and the boot goes on without them.
func setup() error {
	line, err := kernelCmdline()
	if err != nil {
		return err
	}
	p, problems := cmdline.Parse(line)
	for _, e := range problems {
		fmt.Printf("HyperOS: %v\n", e)
	}
	if p.Host != "" {
		if err := unix.Sethostname([]byte(p.Host)); err != nil {
			return fmt.Errorf("set hostname: %w", err)
		}
	}
	if err := identity.Apply("/", p); err != nil {
		return err
	}
	if p.SSHKey == "" {
		fmt.Println("HyperOS: no valid sshkey= on the kernel command line: root has no authorized key")
	} else {
		fmt.Println("HyperOS: authorized key installed for root")
	}
	return nil
}

func prepareData(ctx context.Context) error {
	dev, err := datadisk.Find(ctx, "/sys", datadisk.Serial, 5*time.Second)
	if err != nil {
		return err
	}
	if dev == "" {
		fmt.Println("HyperOS: no data disk (serial hyperos-data): state is kept in memory only")
		return nil
	}
	return datadisk.Prepare(ctx, dev, datadisk.MountPoint, func(f string, a ...any) {
		fmt.Printf("HyperOS: "+f+"\n", a...)
	})
}

// hostKeys keeps the host key on the data disk when it is mounted, so that the
// key the host pinned stays valid across reboots.
func hostKeys() error {
	store := "/run/hyperos/ssh"
	if mounted(datadisk.MountPoint) {
		store = datadisk.MountPoint + "/ssh"
	}
	pub, err := identity.EnsureHostKey(store, "/etc/ssh")
	if err != nil {
		return err
	}
	fmt.Printf("HyperOS: host key %s\n", pub)
	return nil
}

func mounted(dir string) bool {
	var a, b unix.Stat_t
	if unix.Stat(dir, &a) != nil || unix.Stat(dir+"/..", &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

func announce(ctx context.Context) error {
	line, err := kernelCmdline()
	if err != nil {
		return err
	}
	a := &ready.Announcer{
		Console:  ready.PrimaryConsole(cmdline.Consoles(line)),
		SSHAddr:  "127.0.0.1:22",
		KeyGlob:  "/etc/ssh/ssh_host_*_key.pub",
		Version:  version,
		Interval: 200 * time.Millisecond,
	}
	return a.Run(ctx)
}
