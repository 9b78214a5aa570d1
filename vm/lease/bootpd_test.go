package lease

import (
	"os"
	"strings"
	"testing"
	"time"
)

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

// The macOS file is a fixture written by hand from bootpd's format (see
// platforms.md 1.3): no Mac is available to produce a real one.
func TestBootpdFixture_NoMac(t *testing.T) {
	f, err := os.Open("testdata/dhcpd_leases")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	leases, err := ParseBootpd(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(leases) != 5 {
		t.Fatalf("got %d leases, want 5: %v", len(leases), leases)
	}
	first := leases[0]
	if first.Hostname != "hyperos" || first.IP.String() != "192.168.64.7" ||
		first.MAC.String() != "52:54:08:0a:00:01" || first.Source != SourceBootpd ||
		!first.Time.Equal(time.Unix(0x6929c3a0, 0)) {
		t.Fatalf("first lease %+v", first)
	}
	// The VM's MAC as vm.MACFor writes it, with leading zeros: matched as bytes
	// against bootpd's "52:54:8:a:0:1", newest of the two leases.
	l, ok := Find(leases, mustMAC(t, "52:54:08:0a:00:01"), "")
	if !ok || l.IP.String() != "192.168.64.7" {
		t.Fatalf("by mac: %v %v", l, ok)
	}
	l, ok = Find(leases, mustMAC(t, "8e:01:99:9c:54:b1"), "")
	if !ok || l.Hostname != "other-vm" {
		t.Fatalf("by mac without leading zeros: %v %v", l, ok)
	}
	// hw_address, not identifier, is the MAC.
	if l, ok := Find(leases, mustMAC(t, "a0:b0:c0:d0:e0:f0"), ""); ok {
		t.Fatalf("matched the client identifier: %v", l)
	}
	l, ok = Find(leases, mustMAC(t, "02:00:00:00:00:01"), "old-hyperos")
	if !ok || l.IP.String() != "192.168.64.2" {
		t.Fatalf("by name: %v %v", l, ok)
	}
}

func TestBootpdTolerant(t *testing.T) {
	in := strings.Join([]string{
		"garbage before any block",
		"{",
		"    name=spaces",
		"    ip_address = 192.168.64.9 ",
		"    hw_address=1,2:0:0:0:0:9",
		"    vendor_class=something new", // unknown key: skipped
		"    no equals sign here",
		"    lease=0x10",
		"}",
		"{", // no address: dropped
		"\tname=noaddr",
		"\thw_address=1,2:0:0:0:0:a",
		"}",
		"{", // bad values: kept with what parsed
		"\tname=badvalues",
		"\tip_address=192.168.64.10",
		"\thw_address=6,2:0:0:0:0:b", // not Ethernet
		"\tlease=12345",              // not hex with 0x
		"}",
		"}", // stray close
		"{", // restarted block: the first half is lost
		"\tname=half",
		"{",
		"\tname=whole",
		"\tip_address=fe80::1",
		"}",
		"{", // unfinished at EOF: dropped
		"\tname=cut",
		"\tip_address=192.168.64.11",
	}, "\r\n")
	leases, err := ParseBootpd(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range leases {
		got = append(got, l.Hostname+"="+l.IP.String()+"/"+l.MAC.String())
	}
	want := []string{"spaces=192.168.64.9/02:00:00:00:00:09", "badvalues=192.168.64.10/", "whole=fe80::1/"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if !leases[0].Time.Equal(time.Unix(16, 0)) || !leases[1].Time.IsZero() {
		t.Fatalf("times %v %v", leases[0].Time, leases[1].Time)
	}
}
