// Package ready holds the ready line, the one message the guest sends the host over
// the console: "HYPEROS-READY {json}" once sshd accepts connections and again when an
// address changes. The console is private to the hypervisor process, so the host
// keys it carries can be pinned without asking anyone.
package ready

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/hyperos/hyperos/guest/cmdline"
	"golang.org/x/crypto/ssh"
)

// Prefix starts every ready line.
const Prefix = "HYPEROS-READY "

// Version is the format version written in the "v" field.
const Version = 1

// maxLine bounds how much of one console line is considered.
const maxLine = 16 << 10

// Info is what a ready line carries.
type Info struct {
	V        int      `json:"v"`
	Hostname string   `json:"hostname"`
	IPs      []string `json:"ips"`
	HostKeys []string `json:"hostkeys"`
	Version  string   `json:"version"`
}

// Format returns the ready line for info, without a trailing newline.
func Format(info Info) (string, error) {
	info.V = Version
	if info.IPs == nil {
		info.IPs = []string{}
	}
	if err := info.validate(); err != nil {
		return "", err
	}
	b, err := json.Marshal(info)
	if err != nil {
		return "", err
	}
	return Prefix + string(b), nil
}

// Parse decodes one console line. Console output may carry a carriage return or
// kernel messages before the prefix on the same line; anything before the prefix is
// ignored.
func Parse(line string) (Info, error) {
	var info Info
	if len(line) > maxLine {
		return info, errors.New("ready line too long")
	}
	i := strings.Index(line, Prefix)
	if i < 0 {
		return info, errors.New("not a ready line")
	}
	body := strings.TrimRight(line[i+len(Prefix):], "\r\n ")
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&info); err != nil {
		return Info{}, fmt.Errorf("ready line: %w", err)
	}
	if dec.More() {
		return Info{}, errors.New("ready line: trailing data")
	}
	if info.V != Version {
		return Info{}, fmt.Errorf("ready line: version %d, want %d", info.V, Version)
	}
	if err := info.validate(); err != nil {
		return Info{}, err
	}
	return info, nil
}

func (info Info) validate() error {
	if err := cmdline.ValidHost(info.Hostname); err != nil {
		return fmt.Errorf("ready line: %w", err)
	}
	for _, ip := range info.IPs {
		if _, err := netip.ParseAddr(ip); err != nil {
			return fmt.Errorf("ready line: address %q: %w", ip, err)
		}
	}
	if len(info.HostKeys) == 0 {
		return errors.New("ready line: no host keys")
	}
	for _, k := range info.HostKeys {
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil {
			return fmt.Errorf("ready line: host key %q: %w", k, err)
		}
	}
	if len(info.Version) > 128 {
		return errors.New("ready line: version too long")
	}
	return nil
}

// PublicKeys parses the host keys of info.
func (info Info) PublicKeys() ([]ssh.PublicKey, error) {
	var out []ssh.PublicKey
	for _, k := range info.HostKeys {
		pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k))
		if err != nil {
			return nil, fmt.Errorf("host key %q: %w", k, err)
		}
		out = append(out, pk)
	}
	return out, nil
}

// Scan reads console output from r and calls fn for every ready line, in order,
// until r ends or fn returns false. Lines that are not ready lines are skipped;
// malformed ready lines are reported through bad (which may be nil).
func Scan(r io.Reader, fn func(Info) bool, bad func(line string, err error)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLine)
	sc.Split(scanLines)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, Prefix) {
			continue
		}
		info, err := Parse(line)
		if err != nil {
			if bad != nil {
				bad(line, err)
			}
			continue
		}
		if !fn(info) {
			return nil
		}
	}
	return sc.Err()
}

// scanLines is bufio.ScanLines, except that a line longer than the buffer is
// dropped instead of ending the scan: a console may print anything.
func scanLines(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, bytes.TrimRight(data[:i], "\r"), nil
	}
	if len(data) >= maxLine {
		return len(data), nil, nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}
