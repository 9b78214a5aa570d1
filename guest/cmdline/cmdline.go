// Package cmdline holds the HyperOS kernel command-line contract: host=NAME and
// sshkey="<authorized_keys line>", built on the host and validated again in the guest.
//
// Both sides share this code so that what the host accepts is exactly what the guest
// applies. Nothing here runs a shell: values are checked, then used as data.
package cmdline

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Params are the HyperOS settings carried on the kernel command line.
type Params struct {
	Host   string // RFC 1123 hostname
	SSHKey string // one authorized_keys line: "type base64 [comment]"
}

// MaxLen bounds what the guest will look at; the kernel's own limit is 2048 on x86
// and 4096 on arm64.
const MaxLen = 4096

var label = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidHost reports whether name is a lower-case RFC 1123 hostname.
func ValidHost(name string) error {
	if name == "" || len(name) > 253 {
		return fmt.Errorf("hostname %q: must be 1 to 253 characters", name)
	}
	for _, l := range strings.Split(name, ".") {
		if !label.MatchString(l) {
			return fmt.Errorf("hostname %q: each label must be 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'", name)
		}
	}
	return nil
}

var commentRE = regexp.MustCompile(`^[A-Za-z0-9@._+:=/-]{0,128}$`)

// CanonicalKey parses one OpenSSH public key line and returns it re-encoded as
// "type base64 [comment]". Options (command=, from=, ...) are refused because the
// key must grant plain root access and nothing else.
func CanonicalKey(line string) (string, error) {
	if strings.ContainsAny(line, "\"'\\`$;&|<>\r\n\x00") {
		return "", errors.New("ssh key holds a character that has no place in a public key")
	}
	fields := strings.Fields(line)
	if len(fields) < 2 || len(fields) > 3 {
		return "", errors.New("ssh key must be \"type base64 [comment]\"")
	}
	pub, comment, options, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return "", fmt.Errorf("ssh key does not parse: %w", err)
	}
	if len(options) > 0 || len(rest) > 0 {
		return "", errors.New("ssh key must not carry options or more than one key")
	}
	if pub.Type() != fields[0] {
		return "", fmt.Errorf("ssh key type %q does not match its data (%s)", fields[0], pub.Type())
	}
	if !commentRE.MatchString(comment) {
		return "", errors.New("ssh key comment holds unusual characters")
	}
	out := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	if comment != "" {
		out += " " + comment
	}
	return out, nil
}

// Build returns the HyperOS part of a kernel command line for p, refusing values the
// guest would refuse.
func Build(p Params) (string, error) {
	if err := ValidHost(p.Host); err != nil {
		return "", err
	}
	key, err := CanonicalKey(p.SSHKey)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("host=%s sshkey=\"%s\"", p.Host, key), nil
}

// Split breaks a kernel command line into parameters the way the kernel does:
// whitespace separates, and double quotes group (the quotes are removed).
func Split(line string) []string {
	var out []string
	var cur strings.Builder
	inQuote, have := false, false
	for _, r := range line {
		switch {
		case r == '"':
			inQuote = !inQuote
			have = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}

// Parse reads the HyperOS parameters from a kernel command line. Values that fail
// validation are dropped, and each reason is returned so the guest can print it.
func Parse(line string) (Params, []error) {
	var p Params
	var problems []error
	if len(line) > MaxLen {
		return p, []error{fmt.Errorf("kernel command line is %d bytes, over %d: ignored", len(line), MaxLen)}
	}
	var hosts, keys []string
	for _, arg := range Split(line) {
		k, v, ok := strings.Cut(arg, "=")
		if !ok {
			continue
		}
		switch k {
		case "host":
			hosts = append(hosts, v)
		case "sshkey":
			keys = append(keys, v)
		}
	}
	if len(hosts) > 1 {
		problems = append(problems, fmt.Errorf("host= given %d times: ignored", len(hosts)))
	} else if len(hosts) == 1 {
		if err := ValidHost(hosts[0]); err != nil {
			problems = append(problems, fmt.Errorf("host= ignored: %w", err))
		} else {
			p.Host = hosts[0]
		}
	}
	if len(keys) > 1 {
		problems = append(problems, fmt.Errorf("sshkey= given %d times: ignored", len(keys)))
	} else if len(keys) == 1 {
		if key, err := CanonicalKey(keys[0]); err != nil {
			problems = append(problems, fmt.Errorf("sshkey= ignored: %w", err))
		} else {
			p.SSHKey = key
		}
	}
	return p, problems
}

// Consoles returns the console= devices in order; the kernel treats the last as
// primary (/dev/console).
func Consoles(line string) []string {
	var out []string
	for _, arg := range Split(line) {
		if v, ok := strings.CutPrefix(arg, "console="); ok {
			dev, _, _ := strings.Cut(v, ",")
			if dev != "" && !strings.ContainsAny(dev, "/.") {
				out = append(out, dev)
			}
		}
	}
	return out
}
