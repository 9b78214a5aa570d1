package lease

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

func mustMAC(t testing.TB, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseMAC(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string // "" for rejected
	}{
		{"8e:1:99:9c:54:b1", "8e:01:99:9c:54:b1"},
		{"52:54:00:0a:0b:0c", "52:54:00:0a:0b:0c"},
		{"0:0:0:0:0:0", "00:00:00:00:00:00"},
		{"A:B:C:D:E:F", "0a:0b:0c:0d:0e:0f"},
		{"1:2:3:4:5:6:7:8", "01:02:03:04:05:06:07:08"},
		{"8e:1:99:9c:54", ""},
		{"8e:1:99:9c:54:b1:", ""},
		{"8e::99:9c:54:b1", ""},
		{"8e:100:99:9c:54:b1", ""},
		{"8e:g1:99:9c:54:b1", ""},
		{"+1:1:1:1:1:1", ""},
		{"", ""},
	} {
		got, ok := ParseMAC(c.in)
		if c.want == "" {
			if ok {
				t.Errorf("ParseMAC(%q) = %s, want rejected", c.in, got)
			}
			continue
		}
		if !ok || got.String() != c.want {
			t.Errorf("ParseMAC(%q) = %s %v, want %s", c.in, got, ok, c.want)
		}
	}
}

func TestFind(t *testing.T) {
	mac := mustMAC(t, "52:54:08:0a:00:01")
	t0 := time.Unix(1_700_000_000, 0)
	ip := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	leases := []Lease{
		{Hostname: "hyperos", IP: ip("10.0.0.1"), MAC: mustMAC(t, "02:00:00:00:00:09"), Time: t0.Add(3 * time.Hour)},
		{Hostname: "other", IP: ip("10.0.0.2"), MAC: mac, Time: t0},
		{Hostname: "other", IP: ip("10.0.0.3"), MAC: mac, Time: t0.Add(time.Hour)},
		{Hostname: "other", IP: ip("10.0.0.4"), MAC: mac, Time: t0.Add(time.Hour)},
		{Hostname: "HyperOS", IP: ip("10.0.0.5"), Time: t0.Add(4 * time.Hour)},
	}
	for _, c := range []struct {
		name string
		mac  net.HardwareAddr
		host string
		want string
	}{
		{"mac wins over a newer hostname match; ties keep the first", mac, "hyperos", "10.0.0.3"},
		{"hostname fallback picks the newest, any case", mustMAC(t, "02:00:00:00:00:01"), "hyperos", "10.0.0.5"},
		{"no mac", nil, "HYPEROS", "10.0.0.5"},
		{"nothing", mustMAC(t, "02:00:00:00:00:01"), "nobody", ""},
		{"empty hostname never matches", nil, "", ""},
	} {
		got, ok := Find(leases, c.mac, c.host)
		if c.want == "" {
			if ok {
				t.Errorf("%s: found %v", c.name, got)
			}
			continue
		}
		if !ok || got.IP.String() != c.want {
			t.Errorf("%s: got %v %v, want %s", c.name, got.IP, ok, c.want)
		}
	}
	if _, ok := Find(nil, mac, "x"); ok {
		t.Error("found a lease in no leases")
	}
}

func TestEachLineDropsOverlongLines(t *testing.T) {
	long := make([]byte, 3*maxLine)
	for i := range long {
		long[i] = 'x'
	}
	copy(long[len(long)-20:], "ip_address=1.2.3.4")
	in := "first\r\n" + string(long) + "\nlast"
	var got []string
	if err := eachLine(stringsReader(in), func(s string) { got = append(got, s) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "first" || got[1] != "last" {
		t.Fatalf("got %q", got)
	}
}
