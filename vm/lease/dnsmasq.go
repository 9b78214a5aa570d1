package lease

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// ParseDnsmasq reads a dnsmasq lease file (--dhcp-leasefile). IPv4 leases are
// lines "<expiry> <mac> <ip> <hostname|*> <client-id|*>"; a line "duid <server
// duid>" starts the IPv6 leases, whose second field is the IAID (with a "T" prefix
// for temporary addresses) instead of a MAC. The expiry is seconds since the
// epoch, 0 for an infinite lease. A MAC for a hardware type other than Ethernet is
// written "<type>-<addr>". Lines that do not parse are skipped; the error is only
// ever a read error.
func ParseDnsmasq(r io.Reader) ([]Lease, error) {
	var out []Lease
	v6 := false
	err := eachLine(r, func(line string) {
		f := strings.Fields(line)
		if len(f) >= 1 && f[0] == "duid" {
			v6 = true
			return
		}
		if len(f) < 4 {
			return
		}
		l := Lease{Source: SourceDnsmasq}
		exp, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || exp < 0 || exp > 1<<40 {
			return
		}
		if exp > 0 {
			l.Time = time.Unix(exp, 0).UTC()
		}
		ip, err := netip.ParseAddr(f[2])
		if err != nil || ip.Zone() != "" {
			return
		}
		l.IP = ip
		if v6 {
			if !ip.Is6() || ip.Is4In6() {
				return
			}
			if _, err := strconv.ParseUint(strings.TrimPrefix(f[1], "T"), 10, 32); err != nil {
				return
			}
		} else {
			if !ip.Is4() {
				return
			}
			mac, ok := dnsmasqMAC(f[1])
			if !ok {
				return
			}
			l.MAC = mac
		}
		if f[3] != "*" {
			l.Hostname = f[3]
		}
		out = append(out, l)
	})
	if err != nil {
		return out, fmt.Errorf("read dnsmasq leases: %w", err)
	}
	return out, nil
}

// dnsmasqMAC parses "52:54:00:12:34:56" or, for other hardware types,
// "06-00:11:...": the type prefix is dropped.
func dnsmasqMAC(s string) (net.HardwareAddr, bool) {
	if typ, addr, ok := strings.Cut(s, "-"); ok {
		if _, err := strconv.ParseUint(typ, 16, 8); err != nil {
			return nil, false
		}
		s = addr
	}
	return ParseMAC(s)
}
