// Package link parses and formats Hypercore keys and hyper:// links.
//
// A key is 32 bytes: for Hypercore v11 it is the hash of a core's manifest
// (not necessarily a signer's public key). People see it in two spellings:
//
//   - z-base-32, 52 characters, alphabet "ybndrfg8ejkmcpqxot1uwisza345h769",
//     most significant bit first, no padding. This is what Node's
//     hypercore-id-encoding prints (core.id), and what Format uses.
//   - hex, 64 digits.
//
// A link is hyper://KEY/path, with dat:// accepted as an alias. The path
// names a file in a Hyperdrive, so it is validated strictly: it is
// percent-decoded, must not contain "..", NUL, backslashes or an encoded
// slash, and is cleaned to one canonical form starting with "/". Query
// strings, fragments, ports and user info are refused rather than ignored,
// so that two different strings never silently name the same thing.
//
// Parsing is stricter than Node's hypercore-id-encoding in one way: a z32
// key whose unused trailing bits (the low 4 bits of the 52nd character) are
// not zero is rejected, where Node silently drops them. That keeps the
// mapping from keys to ids one-to-one.
package link

import (
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
	"unicode/utf8"
)

// KeySize is the size of a Hypercore key in bytes.
const KeySize = 32

// zAlphabet is z-base-32 as used by the npm z32 package.
const zAlphabet = "ybndrfg8ejkmcpqxot1uwisza345h769"

var z32 = base32.NewEncoding(zAlphabet).WithPadding(base32.NoPadding)

// Key is a 32-byte Hypercore key (in v11, a manifest hash).
type Key [KeySize]byte

// ErrInvalidKey is wrapped by every key parsing error.
var ErrInvalidKey = errors.New("invalid hypercore key")

// ErrInvalidLink is wrapped by every link parsing error that is not about
// the key itself.
var ErrInvalidLink = errors.New("invalid hyper link")

// String returns the key in z-base-32, the form Node's core.id uses.
func (k Key) String() string { return z32.EncodeToString(k[:]) }

// Hex returns the key as 64 lowercase hex digits.
func (k Key) Hex() string { return hex.EncodeToString(k[:]) }

// IsZero reports whether every byte is zero; a zero key is never a real
// core and usually means "not set".
func (k Key) IsZero() bool { return k == Key{} }

// MarshalText encodes the key as z-base-32.
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText accepts z-base-32 or hex, as ParseKey does.
func (k *Key) UnmarshalText(b []byte) error {
	v, err := ParseKey(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// ParseKey parses a key in z-base-32 (52 characters) or hex (64 digits).
// Both are case-insensitive, because the key often travels in the host part
// of a URL, which is.
func ParseKey(s string) (Key, error) {
	var k Key
	switch len(s) {
	case 52:
		lower := strings.ToLower(s)
		n, err := z32.Decode(k[:], []byte(lower))
		if err != nil || n != KeySize {
			return Key{}, fmt.Errorf("%w: %q is not z-base-32", ErrInvalidKey, s)
		}
		// encoding/base32 ignores non-zero trailing bits, so check the
		// round trip explicitly.
		if k.String() != lower {
			return Key{}, fmt.Errorf("%w: %q has non-zero trailing bits", ErrInvalidKey, s)
		}
		return k, nil
	case 64:
		n, err := hex.Decode(k[:], []byte(s))
		if err != nil || n != KeySize {
			return Key{}, fmt.Errorf("%w: %q is not hex", ErrInvalidKey, s)
		}
		return k, nil
	default:
		return Key{}, fmt.Errorf("%w: length %d, want 52 (z-base-32) or 64 (hex)", ErrInvalidKey, len(s))
	}
}

// Link is a parsed hyper:// link: a key and a cleaned absolute path.
type Link struct {
	Key Key
	// Path is absolute, cleaned and percent-decoded: "/" for the root,
	// otherwise "/a/b" with no trailing slash, no "." or ".." segments.
	Path string
}

// Schemes accepted by Parse; dat:// is the older name for the same thing.
var schemes = map[string]bool{"hyper": true, "dat": true}

// Parse parses hyper://KEY[/path] or dat://KEY[/path].
func Parse(s string) (Link, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return Link{}, fmt.Errorf("%w: %q has no scheme (want hyper://)", ErrInvalidLink, s)
	}
	if !schemes[strings.ToLower(scheme)] {
		return Link{}, fmt.Errorf("%w: scheme %q is not hyper or dat", ErrInvalidLink, scheme)
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		return Link{}, fmt.Errorf("%w: %q: queries and fragments are not supported", ErrInvalidLink, s)
	}
	host, p, _ := strings.Cut(rest, "/")
	if strings.ContainsAny(host, "@:[]%") {
		return Link{}, fmt.Errorf("%w: host %q may hold only a key", ErrInvalidLink, host)
	}
	key, err := ParseKey(host)
	if err != nil {
		return Link{}, fmt.Errorf("parse link %q: %w", s, err)
	}
	clean, err := CleanPath("/" + p)
	if err != nil {
		return Link{}, fmt.Errorf("parse link %q: %w", s, err)
	}
	return Link{Key: key, Path: clean}, nil
}

// CleanPath percent-decodes an escaped path and returns its canonical
// absolute form. It refuses encoded slashes, then applies the checks of
// cleanDecoded.
func CleanPath(escaped string) (string, error) {
	if strings.Contains(strings.ToLower(escaped), "%2f") {
		return "", fmt.Errorf("%w: path %q contains an encoded slash", ErrInvalidLink, escaped)
	}
	p, err := url.PathUnescape(escaped)
	if err != nil {
		return "", fmt.Errorf("%w: path %q: %v", ErrInvalidLink, escaped, err)
	}
	return cleanDecoded(p)
}

// cleanDecoded returns the canonical absolute form of a decoded path. It
// refuses "..", invalid UTF-8, control bytes and backslashes, since each
// can make a drive path mean something other than it seems (escaping the
// root, or splitting differently on another system).
func cleanDecoded(p string) (string, error) {
	if !utf8.ValidString(p) {
		return "", fmt.Errorf("%w: path %q is not valid UTF-8", ErrInvalidLink, p)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return "", fmt.Errorf("%w: path %q contains a control character or backslash", ErrInvalidLink, p)
		}
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return "", fmt.Errorf("%w: path %q contains \"..\"", ErrInvalidLink, p)
		}
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return path.Clean(p), nil
}

// New returns the link for key k and drive path p (unescaped, e.g.
// "/images/a b.tar"), validated and cleaned as Parse would.
func New(k Key, p string) (Link, error) {
	clean, err := cleanDecoded(p)
	if err != nil {
		return Link{}, fmt.Errorf("link for %s: %w", k, err)
	}
	return Link{Key: k, Path: clean}, nil
}

// String formats the link as hyper://<z32 key><path>, escaping the path so
// that Parse returns the same Link.
func (l Link) String() string {
	p := l.Path
	if p == "" {
		p = "/"
	}
	u := url.URL{Path: p}
	return "hyper://" + l.Key.String() + u.EscapedPath()
}
