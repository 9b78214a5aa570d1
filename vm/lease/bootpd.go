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

// BootpdPath is where macOS's DHCP server (bootpd, which serves the NAT network of
// Virtualization.framework and vmnet) records its leases.
const BootpdPath = "/var/db/dhcpd_leases"

// ParseBootpd reads bootpd's lease file: blocks of key=value lines between a
// line "{" and a line "}". The keys used are name, ip_address, hw_address
// ("1,<mac>", octets without leading zeros), identifier and lease (hex seconds
// since the epoch). Unknown keys are skipped, and a block that is unfinished or
// lacks a valid address is dropped, so that garbage in the file costs only the
// leases it touches. The error is only ever a read error.
func ParseBootpd(r io.Reader) ([]Lease, error) {
	var (
		out    []Lease
		cur    Lease
		inside bool
	)
	err := eachLine(r, func(line string) {
		line = strings.TrimSpace(line)
		switch {
		case line == "{":
			cur, inside = Lease{Source: SourceBootpd}, true
			return
		case line == "}":
			if inside && cur.IP.IsValid() {
				out = append(out, cur)
			}
			inside = false
			return
		case !inside:
			return
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return
		}
		switch strings.TrimSpace(key) {
		case "name":
			cur.Hostname = strings.TrimSpace(value)
		case "ip_address":
			if ip, err := netip.ParseAddr(strings.TrimSpace(value)); err == nil {
				cur.IP = ip
			}
		case "hw_address":
			cur.MAC = bootpdHWAddr(strings.TrimSpace(value))
		case "lease":
			if t, ok := bootpdTime(strings.TrimSpace(value)); ok {
				cur.Time = t
			}
		}
	})
	if err != nil {
		return out, fmt.Errorf("read bootpd leases: %w", err)
	}
	return out, nil
}

// bootpdHWAddr parses "1,8e:1:99:9c:54:b1": the ARP hardware type, a comma, then
// the address. Only Ethernet (type 1) addresses are MACs.
func bootpdHWAddr(v string) net.HardwareAddr {
	typ, addr, ok := strings.Cut(v, ",")
	if !ok || strings.TrimSpace(typ) != "1" {
		return nil
	}
	mac, ok := ParseMAC(strings.TrimSpace(addr))
	if !ok || len(mac) != 6 {
		return nil
	}
	return mac
}

// bootpdTime parses "0x597e1267".
func bootpdTime(v string) (time.Time, bool) {
	hex, ok := strings.CutPrefix(strings.ToLower(v), "0x")
	if !ok || hex == "" {
		return time.Time{}, false
	}
	n, err := strconv.ParseUint(hex, 16, 63)
	if err != nil || n > 1<<40 { // beyond year 36000: garbage
		return time.Time{}, false
	}
	return time.Unix(int64(n), 0).UTC(), true
}
