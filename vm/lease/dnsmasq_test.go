package lease

import (
	"os"
	"strings"
	"testing"
	"time"
)

// Written by hand from dnsmasq's lease file format (src/lease.c): the real
// file is exercised by the e2e test.
func TestDnsmasqFixture(t *testing.T) {
	f, err := os.Open("testdata/dnsmasq.leases")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	leases, err := ParseDnsmasq(f)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range leases {
		if l.Source != SourceDnsmasq {
			t.Fatalf("source %q", l.Source)
		}
		got = append(got, l.Hostname+"="+l.IP.String()+"/"+l.MAC.String())
	}
	want := []string{
		"hyperos=10.77.0.93/52:54:08:0a:00:01",
		"=10.77.0.61/8e:01:99:9c:54:b1",
		"static-box=10.77.0.2/02:00:00:00:00:02",
		"hyperos=10.77.0.51/52:54:08:0a:00:01",
		"hyperos=fd00:77::93/",
		"=fd00:77::1234/",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !leases[0].Time.Equal(time.Unix(1764500000, 0)) || !leases[2].Time.IsZero() {
		t.Fatalf("times %v %v", leases[0].Time, leases[2].Time)
	}
	l, ok := Find(leases, mustMAC(t, "52:54:08:0a:00:01"), "hyperos")
	if !ok || l.IP.String() != "10.77.0.93" {
		t.Fatalf("by mac: %v %v", l, ok)
	}
	l, ok = Find(leases, nil, "static-box")
	if !ok || l.IP.String() != "10.77.0.2" {
		t.Fatalf("by name: %v %v", l, ok)
	}
}

func TestDnsmasqTolerant(t *testing.T) {
	in := strings.Join([]string{
		"",
		"garbage",
		"1764500000 52:54:00:00:00:01 10.0.0.1",  // too few fields
		"x 52:54:00:00:00:01 10.0.0.1 a *",       // bad expiry
		"-5 52:54:00:00:00:01 10.0.0.1 a *",      // negative expiry
		"1764500000 52:54:00:00:00 10.0.0.1 a *", // short MAC
		"1764500000 52:54:00:00:00:01 10.0.0.300 a *",                 // bad IP
		"1764500000 52:54:00:00:00:01 fd00::1 a *",                    // IPv6 in the IPv4 part
		"1764500000 20-00:01:02:03:04:05:06:07 10.0.0.2 infiniband *", // typed MAC
		"1764500000\t52:54:00:00:00:03  10.0.0.3\tok *",               // any blanks
		"duid 00:01",
		"1764500000 52:54:00:00:00:04 fd00::4 mac-in-v6 *", // not an IAID
		"1764500000 7 10.0.0.5 v4-in-v6 *",
		"1764500000 7 fd00::6%eth0 zoned *",
		"1764500000 7 fd00::7 good *",
	}, "\n")
	leases, err := ParseDnsmasq(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range leases {
		got = append(got, l.Hostname+"="+l.IP.String()+"/"+l.MAC.String())
	}
	want := []string{"infiniband=10.0.0.2/00:01:02:03:04:05:06:07", "ok=10.0.0.3/52:54:00:00:00:03", "good=fd00::7/"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}
