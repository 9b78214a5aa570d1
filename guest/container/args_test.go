package container

import (
	"reflect"
	"strings"
	"testing"
)

const testKey = "0101010101010101010101010101010101010101010101010101010101010101"

func TestParseBootArgsNewSpelling(t *testing.T) {
	s, asJSON, err := ParseBootArgs([]string{"hyper://" + testKey + "/images/Debian 12.img", "--peer", "10.0.2.2:4000", "--peer=10.0.2.2:4001",
		"--ephemeral", "--bind", "/var/lib/hyperos/x:/x", "--sn-private-network", "--json"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "debian-12" || len(s.Peers) != 2 || !s.Ephemeral || !s.Boot || !asJSON ||
		strings.Join(s.Nspawn, " ") != "--private-network" || s.Binds[0] != "/var/lib/hyperos/x:/x" {
		t.Fatalf("%+v", s)
	}
	s, _, err = ParseBootArgs([]string{"hyper://" + testKey + "/a.img", "--name", "web", "--", "echo", "--peer", "x"})
	if err != nil || s.Boot || strings.Join(s.Command, " ") != "echo --peer x" || s.Name != "web" {
		t.Fatalf("command form: %+v %v", s, err)
	}
}

func TestParseBootArgsOriginalSpelling(t *testing.T) {
	s, _, err := ParseBootArgs([]string{"-k", testKey, "-i", "arch.img", "-b"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Link != "hyper://"+testKey+"/arch.img" || !s.Boot || s.Name != "arch" {
		t.Fatalf("%+v", s)
	}
}

func TestParseBootArgsRefuses(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"hyper://" + testKey}, // no image path
		{"hyper://" + testKey + "/a.img", "--peer", "nohost"}, // bad peer
		{"hyper://" + testKey + "/a.img", "--bind", "rel:/x"}, // relative bind
		{"hyper://" + testKey + "/a.img", "--bind", "/a/../b:/x"},
		{"hyper://" + testKey + "/a.img", "--name", "Bad Name"},
		{"hyper://" + testKey + "/a.img", "-b", "--", "sh"}, // both
		{"hyper://" + testKey + "/a.img", "--frob"},
		{"hyper://" + testKey + "/a.img", "--name"}, // a flag without its value
		{"-k", testKey},
		{"https://example.invalid/a.img"},
	} {
		if _, _, err := ParseBootArgs(args); err == nil {
			t.Errorf("accepted %q", args)
		}
	}
}

// The host parses what the user typed and sends Args to the guest, which parses
// them again: both must see the same spec.
func TestArgsRoundTrip(t *testing.T) {
	for _, in := range [][]string{
		{"-k", testKey, "-i", "/x/arch.img", "-b", "--peer", "_gateway:4000"},
		{"hyper://" + testKey + "/a.img", "--name", "web", "--ephemeral", "--prefetch", "--bind=/a:/b", "--sn-private-network", "--", "echo", "--", "-b"},
	} {
		s, _, err := ParseBootArgs(in)
		if err != nil {
			t.Fatal(err)
		}
		again, _, err := ParseBootArgs(s.Args())
		if err != nil {
			t.Fatalf("%q: %v", s.Args(), err)
		}
		if !reflect.DeepEqual(s, again) {
			t.Fatalf("round trip changed the spec:\n%+v\n%+v", s, again)
		}
	}
}

func FuzzArgsRoundTrip(f *testing.F) {
	f.Add("hyper://"+testKey+"/a.img", "web", "10.0.2.2:1", "/a:/b", "--x=1", "echo hi", true)
	f.Fuzz(func(t *testing.T, lnk, name, peer, bind, sn, command string, eph bool) {
		args := []string{lnk, "--name", name, "--peer", peer, "--bind", bind}
		if eph {
			args = append(args, "--ephemeral")
		}
		if strings.HasPrefix(sn, "--") {
			args = append(args, "--sn-"+sn[2:])
		}
		if command != "" {
			args = append(append(args, "--"), strings.Fields(command)...)
		}
		s, _, err := ParseBootArgs(args)
		if err != nil {
			return
		}
		again, _, err := ParseBootArgs(s.Args())
		if err != nil {
			t.Fatalf("%q parsed, its rendering %q did not: %v", args, s.Args(), err)
		}
		if !reflect.DeepEqual(s, again) {
			t.Fatalf("round trip changed the spec:\n%+v\n%+v", s, again)
		}
	})
}

func TestResolveGateway(t *testing.T) {
	routes := []byte("Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
		"eth0\t00000000\t0202000A\t0003\t0\t0\t1024\t00000000\t0\t0\t0\n")
	got, err := ResolveGateway("_gateway:4000", routes)
	if err != nil || got != "10.0.2.2:4000" {
		t.Fatalf("got %q, %v", got, err)
	}
	if got, _ := ResolveGateway("192.0.2.1:4000", routes); got != "192.0.2.1:4000" {
		t.Fatalf("another address changed: %q", got)
	}
	if _, err := ResolveGateway("_gateway:4000", routes[:strings.Index(string(routes), "eth0\t00000000")]); err == nil {
		t.Fatal("no default route, yet an address")
	}
}
