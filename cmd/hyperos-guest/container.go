//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"text/tabwriter"

	"github.com/hyperos/hyperos/guest/container"
)

const containerUsage = `usage: hyperos-guest container COMMAND

  ` + container.BootUsage + `
  ls [--json]     the containers, their state and transfer figures
  stop NAME       power a container off
  rm NAME         stop it and delete its cache and overlay
`

func containerCmd(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, containerUsage)
		return errors.New("no container command")
	}
	d := container.DefaultDirs
	switch args[0] {
	case "boot":
		spec, asJSON, err := container.ParseBootArgs(args[1:])
		if err != nil {
			return err
		}
		if err := container.Start(ctx, d, spec); err != nil {
			return err
		}
		st, err := container.Wait(ctx, d, spec.Name, func(st container.State) {
			fmt.Fprintf(os.Stderr, "%s: %s %s (%s of %s fetched)\n", st.Name, st.Phase, st.Reason, container.Size(st.Stats.Fetched), container.Size(st.Stats.Size))
		})
		if err != nil {
			return err
		}
		if asJSON {
			return json.NewEncoder(os.Stdout).Encode(st)
		}
		if st.Phase != container.Running {
			return fmt.Errorf("container %s %s: %s", st.Name, st.Phase, st.Reason)
		}
		fmt.Printf("%s live-booted in %.1f s (%s of %s fetched)\n", st.Name, st.BootSeconds, container.Size(st.Stats.Fetched), container.Size(st.Stats.Size))
		return nil
	case "serve":
		if len(args) != 2 {
			return errors.New("usage: container serve NAME")
		}
		return container.Serve(ctx, d, args[1], container.DefaultEvents, slog.Default())
	case "ls":
		list, err := d.List()
		if err != nil {
			return err
		}
		if len(args) > 1 && args[1] == "--json" {
			if list == nil {
				list = []container.State{}
			}
			return json.NewEncoder(os.Stdout).Encode(list)
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSTATE\tVERSION\tFETCHED\tCACHED\tSIZE\tPEERS\tBOOT\tLINK")
		for _, st := range list {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%d\t%.1fs\t%s\n", st.Name, st.Phase, st.Version,
				container.Size(st.Stats.Fetched), container.Size(st.Stats.Cached), container.Size(st.Stats.Size), st.Peers, st.BootSeconds, st.Link)
		}
		return tw.Flush()
	case "stop", "rm":
		if len(args) != 2 {
			return fmt.Errorf("usage: container %s NAME", args[0])
		}
		if args[0] == "stop" {
			return container.Stop(ctx, args[1])
		}
		return container.Remove(ctx, d, args[1])
	}
	fmt.Fprint(os.Stderr, containerUsage)
	return fmt.Errorf("unknown container command %q", args[0])
}

func followEvents(ctx context.Context) error {
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	return container.DefaultEvents.Follow(ctx, w)
}
