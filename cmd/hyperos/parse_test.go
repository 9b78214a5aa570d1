package main

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

func TestParseFlagsAfterArguments(t *testing.T) {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	peer := fs.String("peer", "", "")
	pos, err := parse(fs, []string{"hyper://x/a", "dest", "--peer", "127.0.0.1:1"}, -1)
	if err != nil || *peer != "127.0.0.1:1" || strings.Join(pos, " ") != "hyper://x/a dest" {
		t.Fatalf("pos %q peer %q err %v", pos, *peer, err)
	}
	fs = flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	pos, err = parse(fs, []string{"--", "ls", "-la", "--", "x"}, -1)
	if err != nil || strings.Join(pos, " ") != "ls -la -- x" {
		t.Fatalf("after --: %q %v", pos, err)
	}
	fs = flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, err := parse(fs, []string{"extra"}, 0); !errors.Is(err, errUsage) {
		t.Fatalf("extra argument: %v", err)
	}
}
