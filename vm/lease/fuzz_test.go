package lease

import (
	"bytes"
	"net"
	"os"
	"strings"
	"testing"
)

// Run each for a while with, for example:
//
//	go test -run '^$' -fuzz '^FuzzParseBootpd$' -fuzztime 30s -fuzzminimizetime 200x ./vm/lease
//
// The bounded minimization matters here: with the default (60 s per new input)
// the workers spend most of a short run minimizing instead of executing.

// checkLeases holds for every parser: a lease always has a valid address and its
// source, and a MAC when it has one is of a length net.ParseMAC accepts.
func checkLeases(t *testing.T, leases []Lease, source string) {
	for i, l := range leases {
		if !l.IP.IsValid() || l.Source != source {
			t.Fatalf("bad lease %+v", l)
		}
		if n := len(l.MAC); n != 0 && n != 6 && n != 8 && n != 20 {
			t.Fatalf("mac of %d bytes", n)
		}
		if strings.ContainsAny(l.Hostname, "\n") {
			t.Fatalf("hostname %q", l.Hostname)
		}
		// Whatever a parser returns, Find on it must find its own entries
		// (checked for the first few: Find is linear, and fuzzed files are big).
		if len(l.MAC) > 0 && i < 16 {
			if _, ok := Find(leases, l.MAC, ""); !ok {
				t.Fatal("Find misses a parsed MAC")
			}
		}
	}
}

func seed(f *testing.F, file string) {
	b, err := os.ReadFile(file)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)/2])
}

func FuzzParseBootpd(f *testing.F) {
	seed(f, "testdata/dhcpd_leases")
	f.Add([]byte("{\n name=a\n ip_address=1.2.3.4\n hw_address=1,0:0:0:0:0:0\n lease=0xffffffffffffffff\n}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		leases, err := ParseBootpd(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err) // a bytes.Reader never fails
		}
		checkLeases(t, leases, SourceBootpd)
		if n := bytes.Count(b, []byte("}")); len(leases) > n {
			t.Fatalf("%d leases from %d blocks", len(leases), n)
		}
	})
}

func FuzzParseDnsmasq(f *testing.F) {
	seed(f, "testdata/dnsmasq.leases")
	f.Add([]byte("99999999999999999999 1:2:3:4:5:6 1.2.3.4 a *\nduid\n1 T1 ::1 b *\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		leases, err := ParseDnsmasq(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		checkLeases(t, leases, SourceDnsmasq)
		for _, l := range leases {
			if l.Hostname == "*" {
				t.Fatal("placeholder hostname kept")
			}
		}
	})
}

func FuzzParseMAC(f *testing.F) {
	for _, s := range []string{"8e:1:99:9c:54:b1", "52:54:00:0a:0b:0c", "1:2:3:4:5:6:7:8", "", "::::::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		mac, ok := ParseMAC(s)
		if !ok {
			return
		}
		// Printing with leading zeros and parsing again is the identity, and the
		// standard parser agrees on the zero-padded form.
		again, ok := ParseMAC(mac.String())
		if !ok || !bytes.Equal(again, mac) {
			t.Fatalf("%q -> %s -> %s", s, mac, again)
		}
		std, err := net.ParseMAC(mac.String())
		if err != nil || !bytes.Equal(std, mac) {
			t.Fatalf("net.ParseMAC(%s) = %s, %v", mac, std, err)
		}
	})
}
