package lease

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/hyperos/hyperos/guest/ready"
	"github.com/hyperos/hyperos/vm"
)

// FromReady turns a ready line into a lease: the guest's first IPv4 address (the
// one a host can reach on every hypervisor's NAT), else its first address. The
// ready line carries no MAC, so the caller passes the one it gave the VM. It
// reports false when the line lists no address yet (DHCP still running).
func FromReady(info ready.Info, mac net.HardwareAddr, at time.Time) (Lease, bool) {
	var first netip.Addr
	for _, s := range info.IPs {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		if ip.Is4() {
			first = ip
			break
		}
		if !first.IsValid() {
			first = ip
		}
	}
	if !first.IsValid() {
		return Lease{}, false
	}
	return Lease{Hostname: info.Hostname, IP: first, MAC: mac, Source: SourceReady, Time: at}, true
}

// WaitReady follows the console log (see vm.WaitReady) from offset until a ready
// line lists an address, and returns it as a lease together with the offset after
// that line, so that the caller can wait for the next change. Ready lines without
// an address are passed over: the guest prints one as soon as sshd runs and another
// once DHCP has answered.
func WaitReady(ctx context.Context, consoleLog string, offset int64, alive func() bool, mac net.HardwareAddr) (Lease, ready.Info, int64, error) {
	for {
		info, off, err := vm.WaitReady(ctx, consoleLog, offset, alive)
		if err != nil {
			return Lease{}, ready.Info{}, off, err
		}
		offset = off
		if l, ok := FromReady(info, mac, time.Now()); ok {
			return l, info, offset, nil
		}
	}
}
