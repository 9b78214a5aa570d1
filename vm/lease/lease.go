// Package lease finds the IP address of a HyperOS VM. The hypervisor's DHCP server
// writes a lease file (bootpd on macOS, dnsmasq on Linux bridges) and the guest
// announces its addresses in the ready line; every source yields the same Lease,
// so the daemon can take whichever answers first.
package lease

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Sources, as written in Lease.Source.
const (
	SourceBootpd  = "bootpd"
	SourceDnsmasq = "dnsmasq"
	SourceReady   = "ready-line"
)

// Lease is one address assignment, whatever reported it.
type Lease struct {
	Hostname string // the name the guest sent, "" when the source has none
	IP       netip.Addr
	MAC      net.HardwareAddr // nil when the source does not record it (dnsmasq IPv6)
	Source   string
	// Time orders the leases of one source: for dnsmasq the lease's expiry
	// (zero for an infinite lease), for bootpd its lease= stamp (read as the
	// expiry, as minikube does; a grant time would order the same way), for the
	// ready line the time the line was read. A lease renewed or granted later
	// has a later Time.
	Time time.Time
}

// Find returns the lease for a VM: the newest lease whose MAC equals mac, or, when
// no lease has that MAC (or mac is nil), the newest whose hostname equals hostname
// (case-insensitively, as DNS names compare). MACs are compared as bytes because
// bootpd writes octets without leading zeros. Among leases of equal Time the first
// in the slice wins (dnsmasq writes its newest leases first).
func Find(leases []Lease, mac net.HardwareAddr, hostname string) (Lease, bool) {
	best := -1
	if len(mac) > 0 {
		for i, l := range leases {
			if bytes.Equal(l.MAC, mac) && (best < 0 || l.Time.After(leases[best].Time)) {
				best = i
			}
		}
	}
	if best < 0 && hostname != "" {
		for i, l := range leases {
			if strings.EqualFold(l.Hostname, hostname) && (best < 0 || l.Time.After(leases[best].Time)) {
				best = i
			}
		}
	}
	if best < 0 {
		return Lease{}, false
	}
	return leases[best], true
}

// ParseMAC reads a MAC address the way lease files write it: colon-separated hex
// octets of one or two digits (bootpd prints "%x", so 08 appears as 8). It accepts
// the lengths net.ParseMAC does (6, 8 or 20 octets).
func ParseMAC(s string) (net.HardwareAddr, bool) {
	parts := strings.Split(s, ":")
	switch len(parts) {
	case 6, 8, 20:
	default:
		return nil, false
	}
	mac := make(net.HardwareAddr, len(parts))
	for i, p := range parts {
		if len(p) < 1 || len(p) > 2 {
			return nil, false
		}
		v, err := strconv.ParseUint(p, 16, 8)
		if err != nil {
			return nil, false
		}
		mac[i] = byte(v)
	}
	return mac, true
}

// maxLine bounds one line of a lease file; longer lines are garbage and skipped.
const maxLine = 4096

// eachLine calls fn for every line of r without its line ending. A line longer
// than maxLine is dropped rather than ending the read: lease files are written by
// other programs and a parser must survive whatever they hold.
func eachLine(r io.Reader, fn func(string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	skipping := false // inside a line that was too long
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			if skipping || i >= maxLine {
				skipping = false
				return i + 1, nil, nil
			}
			return i + 1, bytes.TrimRight(data[:i], "\r"), nil
		}
		if skipping || len(data) >= maxLine {
			skipping = true
			return len(data), nil, nil
		}
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	for sc.Scan() {
		if b := sc.Bytes(); b != nil {
			fn(string(b))
		}
	}
	return sc.Err()
}
