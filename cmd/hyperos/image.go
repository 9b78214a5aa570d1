package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/hyperos/hyperos/app/imagecreate"
)

func init() {
	commands["image"] = imageCmd
}

// imageCmd: hyperos image create OUT.img [--suite S] [--include a,b] [--extra-mb N]
func imageCmd(ctx context.Context, e env) error {
	if len(e.args) == 0 || e.args[0] != "create" {
		return fmt.Errorf("%w: hyperos image create OUT.img [--suite bookworm] [--include PKG,...] [--extra-mb 64]", errUsage)
	}
	var o imagecreate.Options
	var include string
	e.fs.StringVar(&o.Suite, "suite", "bookworm", "Debian suite")
	e.fs.StringVar(&include, "include", "", "extra packages, comma-separated")
	e.fs.StringVar(&o.Hostname, "hostname", "", "the container's hostname (default: the file name)")
	e.fs.IntVar(&o.ExtraMB, "extra-mb", 64, "free space to leave for the container's writes")
	e.fs.StringVar(&o.DebCache, "deb-cache", "", "keep downloaded packages in this directory")
	pos, err := parse(e.fs, e.args[1:], 1)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: give the image file to write", errUsage)
	}
	o.Out = pos[0]
	if include != "" {
		o.Include = strings.Split(include, ",")
	}
	o.Progress = func(s string) { fmt.Fprintln(e.stderr, s) }
	size, err := imagecreate.Create(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s (%d MB): share it with 'hyperos share %s'\n", o.Out, size>>20, o.Out)
	return nil
}
