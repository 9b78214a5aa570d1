package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"text/tabwriter"

	"github.com/hyperos/hyperos/app/api"
	"github.com/hyperos/hyperos/app/client"
	"github.com/hyperos/hyperos/app/machine"
	"github.com/hyperos/hyperos/app/shares"
	"github.com/hyperos/hyperos/app/shell"
	"github.com/hyperos/hyperos/guest/cmdline"
	"github.com/hyperos/hyperos/guest/container"
	"github.com/hyperos/hyperos/hyper/link"
)

func init() {
	commands["container"] = containerCmd
}

const containerUsage = `usage: hyperos container COMMAND

  ` + container.BootUsage + `
       a 'hyperos share' of the drive running here is added as a peer by itself
  ls [--json]     the containers, their state and transfer figures
  stop NAME       power a container off
  rm NAME         stop it and delete its cache and overlay
`

// containerCmd manages the VM's containers. With a service running it asks the
// service, which owns the VM; without one it runs `hyperos-guest container`
// over the pinned SSH connection. Either way the guest alone owns container
// state.
func containerCmd(ctx context.Context, e env) error {
	if len(e.args) == 0 {
		return fmt.Errorf("%w: hyperos container boot|ls|stop|rm ... (see 'hyperos container help')", errUsage)
	}
	verb, args := e.args[0], e.args[1:]
	switch verb {
	case "help", "-h", "--help":
		fmt.Fprint(e.stdout, containerUsage)
		return nil
	case "boot":
		spec, asJSON, err := container.ParseBootArgs(args)
		if err != nil {
			return fmt.Errorf("%w: %w", errUsage, err)
		}
		if spec.Peers, err = withLocalShares(e, spec); err != nil {
			return err
		}
		args = spec.Args()
		if asJSON {
			args = append(args, "--json")
		}
	case "ls":
		if len(args) > 1 || len(args) == 1 && args[0] != "--json" {
			return fmt.Errorf("%w: hyperos container ls [--json]", errUsage)
		}
	case "stop", "rm":
		if len(args) != 1 {
			return fmt.Errorf("%w: hyperos container %s NAME", errUsage, verb)
		}
		if err := cmdline.ValidHost(args[0]); err != nil {
			return fmt.Errorf("%w: container name: %w", errUsage, err)
		}
	default:
		return fmt.Errorf("%w: unknown container command %q (see 'hyperos container help')", errUsage, verb)
	}
	c, ok, err := viaService(ctx, e.paths)
	if err != nil {
		return err
	}
	if ok {
		return containerViaService(ctx, c, verb, args, e)
	}
	m, err := machine.Open(e.paths)
	if err != nil {
		return err
	}
	sc, err := m.Dial(ctx)
	if err != nil {
		return err
	}
	defer sc.Close()
	code, err := shell.Run(ctx, sc, shell.Quote(append([]string{"hyperos-guest", "container", verb}, args...)), e.stdin, e.stdout, e.stderr)
	if err != nil {
		return err
	}
	if code != 0 {
		return exitError(code)
	}
	return nil
}

// withLocalShares adds, as peers, the `hyperos share` processes of this user
// that seed the drive of spec's link, as the VM sees this machine (_gateway).
func withLocalShares(e env, spec container.Spec) ([]string, error) {
	l, err := link.Parse(spec.Link)
	if err != nil {
		return nil, fmt.Errorf("%w: link: %w", errUsage, err)
	}
	ports, err := shares.Ports(e.paths.Shares(), l.Key.Hex())
	if err != nil {
		return nil, err
	}
	peers := spec.Peers
	for _, p := range ports {
		addr := net.JoinHostPort(container.GatewayHost, strconv.Itoa(p))
		if !slices.Contains(peers, addr) {
			fmt.Fprintf(e.stderr, "using the share running on this machine (port %d) as a peer\n", p)
			peers = append(peers, addr)
		}
	}
	if len(peers) == 0 {
		fmt.Fprintf(e.stderr, "warning: no peer for %s: run 'hyperos share IMAGE' here, or give --peer HOST:PORT\n", spec.Link)
	}
	return peers, nil
}

func containerViaService(ctx context.Context, c *client.Client, verb string, args []string, e env) error {
	switch verb {
	case "boot":
		asJSON := slices.Contains(args, "--json")
		ctr, err := c.BootContainer(ctx, args, func(msg string) { fmt.Fprintln(e.stderr, msg) })
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(e.stdout, ctr)
		}
		fmt.Fprintf(e.stdout, "%s live-booted in %.1f s (%s of %s fetched)\n", ctr.Name, ctr.BootSeconds, container.Size(ctr.Fetched), container.Size(ctr.Size))
		return nil
	case "ls":
		cs, err := c.Containers(ctx)
		if err != nil {
			return err
		}
		if len(args) == 1 {
			return printJSON(e.stdout, cs)
		}
		return containerTable(e.stdout, cs)
	case "stop":
		_, err := c.StopContainer(ctx, args[0])
		return err
	case "rm":
		_, err := c.RemoveContainer(ctx, args[0])
		return err
	}
	return fmt.Errorf("%w: unknown container command %q", errUsage, verb)
}

// containerTable prints containers as the guest's `container ls` does.
func containerTable(w io.Writer, cs []api.Container) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tVERSION\tFETCHED\tCACHED\tSIZE\tPEERS\tBOOT\tLINK")
	for _, c := range cs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%d\t%.1fs\t%s\n", c.Name, c.State, c.Version,
			container.Size(c.Fetched), container.Size(c.Cached), container.Size(c.Size), c.Peers, c.BootSeconds, c.Link)
	}
	return tw.Flush()
}

// containerShell is the remote command of `hyperos ssh --container NAME`: a login
// shell inside the running container, through machined.
func containerShell(name string) (string, error) {
	if err := cmdline.ValidHost(name); err != nil {
		return "", fmt.Errorf("container name: %w", err)
	}
	return shell.Quote([]string{"machinectl", "shell", "--quiet", "root@" + name}), nil
}
