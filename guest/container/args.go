package container

import (
	"errors"
	"fmt"
	"net"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/hyperos/hyperos/hyper/link"
)

// BootUsage is the synopsis of `container boot`, shared by the guest's and the
// host's commands since both parse the same arguments.
const BootUsage = `boot LINK [--name N] [--peer HOST:PORT]... [--boot | -- CMD...] [--ephemeral]
            [--bind /SRC:/DST]... [--prefetch] [--sn-OPTION[=V]]...
       also the original spelling: -k/--key KEY -i/--image PATH -b/--boot
       --peer _gateway:PORT is the machine the VM runs on (its default gateway)`

// ParseBootArgs reads `container boot` arguments, in the new spelling or the
// original dat-container's (-k KEY -i PATH -b), with --sn-X passed on to
// systemd-nspawn as --X. The host parses them too, so that a mistake is
// reported before anything reaches the VM; asJSON is --json.
func ParseBootArgs(args []string) (s Spec, asJSON bool, err error) {
	var key, image string
	val := func(i *int, name string) (string, error) {
		a := args[*i]
		if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(k, "--") {
			return v, nil
		}
		if *i+1 >= len(args) {
			return "", fmt.Errorf("%s needs a value", name)
		}
		*i++
		return args[*i], nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		flag, _, _ := strings.Cut(a, "=")
		var err error
		switch {
		case a == "--":
			s.Command = append([]string(nil), args[i+1:]...)
			i = len(args)
		case flag == "--name" || flag == "-n":
			s.Name, err = val(&i, "--name")
		case flag == "--peer":
			var p string
			p, err = val(&i, "--peer")
			s.Peers = append(s.Peers, p)
		case flag == "--bind":
			var b string
			b, err = val(&i, "--bind")
			s.Binds = append(s.Binds, b)
		case flag == "-k" || flag == "--key":
			key, err = val(&i, "--key")
		case flag == "-i" || flag == "--image":
			image, err = val(&i, "--image")
		case a == "-b" || a == "--boot":
			s.Boot = true
		case a == "--ephemeral":
			s.Ephemeral = true
		case a == "--prefetch":
			s.Prefetch = true
		case a == "--json":
			asJSON = true
		case strings.HasPrefix(a, "--sn-"):
			s.Nspawn = append(s.Nspawn, "--"+strings.TrimPrefix(a, "--sn-"))
		case strings.HasPrefix(a, "-"):
			err = fmt.Errorf("unknown flag %s", a)
		case s.Link == "":
			s.Link = a
		default:
			err = fmt.Errorf("unexpected argument %q", a)
		}
		if err != nil {
			return s, false, err
		}
	}
	if s.Link == "" && key != "" {
		if image == "" {
			return s, false, errors.New("-k needs -i PATH, the image file in the drive")
		}
		s.Link = "hyper://" + key + "/" + strings.TrimPrefix(image, "/")
	}
	if s.Link == "" {
		return s, false, errors.New("no link: give hyper://KEY/path/to/image.img")
	}
	if s.Name == "" {
		l, err := link.Parse(s.Link)
		if err != nil {
			return s, false, fmt.Errorf("link: %w", err)
		}
		s.Name = nameFrom(l.Path)
	}
	return s, asJSON, s.Validate()
}

// Args renders a validated spec as `container boot` arguments in the new
// spelling; ParseBootArgs(s.Args()) gives s back.
func (s Spec) Args() []string {
	a := []string{s.Link, "--name", s.Name}
	for _, p := range s.Peers {
		a = append(a, "--peer", p)
	}
	for _, b := range s.Binds {
		a = append(a, "--bind", b)
	}
	if s.Ephemeral {
		a = append(a, "--ephemeral")
	}
	if s.Prefetch {
		a = append(a, "--prefetch")
	}
	for _, n := range s.Nspawn {
		a = append(a, "--sn-"+strings.TrimPrefix(n, "--"))
	}
	if len(s.Command) > 0 {
		return append(append(a, "--"), s.Command...)
	}
	return append(a, "--boot")
}

var nonName = regexp.MustCompile(`[^a-z0-9-]+`)

// nameFrom derives a container name from an image path: /images/Debian 12.img
// becomes debian-12.
func nameFrom(p string) string {
	base := strings.TrimSuffix(path.Base(p), path.Ext(p))
	n := strings.Trim(nonName.ReplaceAllString(strings.ToLower(base), "-"), "-")
	if len(n) > 40 {
		n = strings.Trim(n[:40], "-")
	}
	if n == "" {
		n = "container"
	}
	return n
}

// GatewayHost, as a peer's host, names the machine the VM runs on: under
// QEMU's user network and Apple's NAT alike it is the VM's default gateway.
// The host's CLI writes it for shares running on the host, which cannot know
// the address the guest sees. The name is systemd-resolved's synthetic one;
// the underscore keeps it from ever being a real host name.
const GatewayHost = "_gateway"

// ResolveGateway returns addr with a GatewayHost host replaced by the default
// IPv4 gateway found in routes, the text of /proc/net/route; other addresses
// come back unchanged. The gateway is looked up at every dial, since DHCP may
// change it while a container runs.
func ResolveGateway(addr string, routes []byte) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != GatewayHost {
		return addr, nil
	}
	for _, line := range strings.Split(string(routes), "\n")[1:] {
		f := strings.Fields(line)
		// Iface Destination Gateway Flags ...; RTF_UP|RTF_GATEWAY = 0x3.
		if len(f) < 4 || f[1] != "00000000" {
			continue
		}
		flags, err1 := strconv.ParseUint(f[3], 16, 32)
		gw, err2 := strconv.ParseUint(f[2], 16, 32)
		if err1 != nil || err2 != nil || flags&3 != 3 || gw == 0 {
			continue
		}
		// The kernel prints the address in host byte order, little-endian here.
		ip := net.IPv4(byte(gw), byte(gw>>8), byte(gw>>16), byte(gw>>24))
		return net.JoinHostPort(ip.String(), port), nil
	}
	return "", fmt.Errorf("peer %s: the VM has no default gateway", addr)
}

// Size formats a byte count for `container ls` and boot messages, on the
// guest and the host alike.
func Size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d KB", n>>10)
	}
}
