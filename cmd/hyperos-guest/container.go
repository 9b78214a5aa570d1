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
	"path"
	"regexp"
	"strings"
	"text/tabwriter"

	"github.com/hyperos/hyperos/guest/container"
	"github.com/hyperos/hyperos/hyper/link"
)

const containerUsage = `usage: hyperos-guest container COMMAND

  boot LINK [--name N] [--peer HOST:PORT]... [--boot | -- CMD...] [--ephemeral]
            [--bind /SRC:/DST]... [--prefetch] [--sn-OPTION[=V]]...
       also the original spelling: -k/--key KEY -i/--image PATH -b/--boot
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
		spec, asJSON, err := parseBoot(args[1:])
		if err != nil {
			return err
		}
		if err := container.Start(ctx, d, spec); err != nil {
			return err
		}
		st, err := container.Wait(ctx, d, spec.Name, func(st container.State) {
			fmt.Fprintf(os.Stderr, "%s: %s %s (%s of %s fetched)\n", st.Name, st.Phase, st.Reason, mb(st.Stats.Fetched), mb(st.Stats.Size))
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
		fmt.Printf("%s live-booted in %.1f s (%s of %s fetched)\n", st.Name, st.BootSeconds, mb(st.Stats.Fetched), mb(st.Stats.Size))
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
				mb(st.Stats.Fetched), mb(st.Stats.Cached), mb(st.Stats.Size), st.Peers, st.BootSeconds, st.Link)
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

// parseBoot reads boot's arguments, in the new spelling or the original
// dat-container's (-k KEY -i PATH -b), with --sn-X passed to systemd-nspawn as --X.
func parseBoot(args []string) (container.Spec, bool, error) {
	var s container.Spec
	var key, image string
	asJSON := false
	val := func(i *int, name string) (string, error) {
		a := args[*i]
		if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(k, "--") {
			return v, nil
		}
		if *i+1 >= len(args) {
			return "", fmt.Errorf("%s needs a value", name)
		}
		*i++
		return args[*i], nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		flag, _, _ := strings.Cut(a, "=")
		var err error
		switch {
		case a == "--":
			s.Command = args[i+1:]
			i = len(args)
		case flag == "--name" || flag == "-n":
			s.Name, err = val(&i, "--name")
		case flag == "--peer":
			var p string
			p, err = val(&i, "--peer")
			s.Peers = append(s.Peers, p)
		case flag == "--bind":
			var b string
			b, err = val(&i, "--bind")
			s.Binds = append(s.Binds, b)
		case flag == "-k" || flag == "--key":
			key, err = val(&i, "--key")
		case flag == "-i" || flag == "--image":
			image, err = val(&i, "--image")
		case a == "-b" || a == "--boot":
			s.Boot = true
		case a == "--ephemeral":
			s.Ephemeral = true
		case a == "--prefetch":
			s.Prefetch = true
		case a == "--json":
			asJSON = true
		case strings.HasPrefix(a, "--sn-"):
			s.Nspawn = append(s.Nspawn, "--"+strings.TrimPrefix(a, "--sn-"))
		case strings.HasPrefix(a, "-"):
			err = fmt.Errorf("unknown flag %s", a)
		case s.Link == "":
			s.Link = a
		default:
			err = fmt.Errorf("unexpected argument %q", a)
		}
		if err != nil {
			return s, false, err
		}
	}
	if s.Link == "" && key != "" {
		if image == "" {
			return s, false, errors.New("-k needs -i PATH, the image file in the drive")
		}
		s.Link = "hyper://" + key + "/" + strings.TrimPrefix(image, "/")
	}
	if s.Link == "" {
		return s, false, errors.New("no link: give hyper://KEY/path/to/image.img")
	}
	if s.Name == "" {
		l, err := link.Parse(s.Link)
		if err != nil {
			return s, false, err
		}
		s.Name = nameFrom(l.Path)
	}
	return s, asJSON, s.Validate()
}

var nonName = regexp.MustCompile(`[^a-z0-9-]+`)

// nameFrom derives a container name from an image path: /images/Debian 12.img
// becomes debian-12.
func nameFrom(p string) string {
	base := strings.TrimSuffix(path.Base(p), path.Ext(p))
	n := strings.Trim(nonName.ReplaceAllString(strings.ToLower(base), "-"), "-")
	if len(n) > 40 {
		n = strings.Trim(n[:40], "-")
	}
	if n == "" {
		n = "container"
	}
	return n
}

func mb(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d KB", n>>10)
	}
}

func followEvents(ctx context.Context) error {
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	return container.DefaultEvents.Follow(ctx, w)
}
