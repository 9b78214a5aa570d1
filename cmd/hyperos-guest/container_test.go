//go:build linux

package main

import (
	"strings"
	"testing"
)

const key = "0101010101010101010101010101010101010101010101010101010101010101"

func TestParseBootNewSpelling(t *testing.T) {
	s, asJSON, err := parseBoot([]string{"hyper://" + key + "/images/Debian 12.img", "--peer", "10.0.2.2:4000", "--peer=10.0.2.2:4001",
		"--ephemeral", "--bind", "/var/lib/hyperos/x:/x", "--sn-private-network", "--json"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "debian-12" || len(s.Peers) != 2 || !s.Ephemeral || !s.Boot || !asJSON ||
		strings.Join(s.Nspawn, " ") != "--private-network" || s.Binds[0] != "/var/lib/hyperos/x:/x" {
		t.Fatalf("%+v", s)
	}
	s, _, err = parseBoot([]string{"hyper://" + key + "/a.img", "--name", "web", "--", "echo", "--peer", "x"})
	if err != nil || s.Boot || strings.Join(s.Command, " ") != "echo --peer x" || s.Name != "web" {
		t.Fatalf("command form: %+v %v", s, err)
	}
}

func TestParseBootOriginalSpelling(t *testing.T) {
	s, _, err := parseBoot([]string{"-k", key, "-i", "arch.img", "-b"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Link != "hyper://"+key+"/arch.img" || !s.Boot || s.Name != "arch" {
		t.Fatalf("%+v", s)
	}
}

func TestParseBootRefuses(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"hyper://" + key}, // no image path
		{"hyper://" + key + "/a.img", "--peer", "nohost"}, // bad peer
		{"hyper://" + key + "/a.img", "--bind", "rel:/x"}, // relative bind
		{"hyper://" + key + "/a.img", "--bind", "/a/../b:/x"},
		{"hyper://" + key + "/a.img", "--name", "Bad Name"},
		{"hyper://" + key + "/a.img", "-b", "--", "sh"}, // both
		{"hyper://" + key + "/a.img", "--frob"},
		{"-k", key},
		{"https://example.invalid/a.img"},
	} {
		if _, _, err := parseBoot(args); err == nil {
			t.Errorf("accepted %q", args)
		}
	}
}
