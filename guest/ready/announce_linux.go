package ready

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Announcer prints the ready line on the guest's primary console.
type Announcer struct {
	Console  string // device to write to, e.g. /dev/ttyS0
	SSHAddr  string // where sshd listens, e.g. 127.0.0.1:22
	KeyGlob  string // host public keys, e.g. /etc/ssh/ssh_host_*_key.pub
	Version  string
	Interval time.Duration // how often to re-check sshd while waiting for it
}

// Run waits for sshd to answer, prints the ready line, then prints it again each
// time the set of addresses changes, until ctx ends.
func (a *Announcer) Run(ctx context.Context) error {
	if err := a.waitSSH(ctx); err != nil {
		return err
	}
	changes, err := watchAddrs(ctx)
	if err != nil {
		slog.Warn("address changes will not be announced", "err", err)
	}
	var last []string
	for {
		info, err := a.info()
		if err != nil {
			return err
		}
		if last == nil || !slices.Equal(last, info.IPs) {
			if err := a.print(info); err != nil {
				return err
			}
			last = info.IPs
		}
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-changes:
			if !ok {
				changes = nil
			}
			// Addresses arrive in bursts (v4, v6, DAD): let them settle.
			time.Sleep(300 * time.Millisecond)
		}
	}
}

func (a *Announcer) waitSSH(ctx context.Context) error {
	for {
		if a.sshAnswers() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(a.Interval):
		}
	}
}

// sshAnswers is true once sshd sends its banner: a listening socket alone is not
// enough, since sshd may still be starting up behind it.
func (a *Announcer) sshAnswers() bool {
	c, err := net.DialTimeout("tcp", a.SSHAddr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "SSH-2.0-")
}

func (a *Announcer) info() (Info, error) {
	host, err := os.Hostname()
	if err != nil {
		return Info{}, err
	}
	paths, _ := filepath.Glob(a.KeyGlob)
	slices.Sort(paths)
	var keys []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return Info{}, err
		}
		f := strings.Fields(string(b))
		if len(f) >= 2 {
			keys = append(keys, f[0]+" "+f[1])
		}
	}
	return Info{Hostname: host, IPs: addresses(), HostKeys: keys, Version: a.Version}, nil
}

// addresses lists the guest's global and private addresses, IPv4 first.
func addresses() []string {
	var v4, v6 []string
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.IsLoopback() || n.IP.IsLinkLocalUnicast() {
			continue
		}
		if n.IP.To4() != nil {
			v4 = append(v4, n.IP.String())
		} else {
			v6 = append(v6, n.IP.String())
		}
	}
	slices.Sort(v4)
	slices.Sort(v6)
	return append(v4, v6...)
}

func (a *Announcer) print(info Info) error {
	line, err := Format(info)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(a.Console, os.O_WRONLY|unix.O_NOCTTY, 0)
	if err != nil {
		return fmt.Errorf("open console %s: %w", a.Console, err)
	}
	defer f.Close()
	// A leading newline keeps the line whole if the console was mid-line.
	if _, err := f.WriteString("\r\n" + line + "\r\n"); err != nil {
		return fmt.Errorf("write console %s: %w", a.Console, err)
	}
	slog.Info("ready line printed", "console", a.Console, "ips", info.IPs)
	return nil
}

// watchAddrs signals every rtnetlink address change; no polling.
func watchAddrs(ctx context.Context) (<-chan struct{}, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	sa := &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	ch := make(chan struct{}, 1)
	go func() {
		<-ctx.Done()
		unix.Close(fd)
	}()
	go func() {
		defer close(ch)
		buf := make([]byte, 65536)
		for {
			if _, _, err := unix.Recvfrom(fd, buf, 0); err != nil {
				if err == unix.EINTR || err == unix.ENOBUFS {
					continue
				}
				return
			}
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	return ch, nil
}

// PrimaryConsole returns the device the kernel treats as /dev/console: the last
// console= on its command line. Writing to it directly works even when the console
// driver (virtio_console for hvc0) loaded after the kernel bound /dev/console.
func PrimaryConsole(consoles []string) string {
	if len(consoles) == 0 {
		return "/dev/console"
	}
	return "/dev/" + consoles[len(consoles)-1]
}
