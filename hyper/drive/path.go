package drive

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Paths are normalised exactly as Hyperdrive does it (unix-path-resolve
// against "/"), because the normalised path is the key in the db bee: a
// path spelled differently by a Go writer would be a different file to a
// Node reader. That includes its quirks: backslashes separate names too,
// and a first name ending in ':' (a drive letter, "file:", a URL scheme)
// makes the path absolute.

// ErrInvalidPath is wrapped by path errors.
var ErrInvalidPath = errors.New("drive: invalid path")

type parsedPath struct {
	absolute bool
	names    []string
}

// jsLen is the length of s in UTF-16 code units, which is what
// JavaScript's String.length counts.
func jsLen(s string) int {
	n := 0
	for _, r := range s {
		n += len(utf16.AppendRune(nil, r))
	}
	return n
}

func parsePath(addr string) parsedPath {
	names := splitSeparators(addr)
	if len(names) > 1 && strings.HasSuffix(names[0], ":") {
		switch {
		case jsLen(names[0]) == 2: // a Windows drive letter
			return parsedPath{true, names[1:]}
		case names[0] == "file:":
			return parsedPath{true, names[1:]}
		case len(names) > 3:
			return parsedPath{true, names[3:]}
		default:
			return parsedPath{true, nil}
		}
	}
	return parsedPath{strings.HasPrefix(addr, "/") || strings.HasPrefix(addr, `\`), names}
}

// splitSeparators splits on '/' and '\', keeping empty names (as
// String.split does).
func splitSeparators(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '/' || s[i] == '\\' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func joinNames(p string, names []string) (string, error) {
	for _, n := range names {
		switch n {
		case "", ".":
			continue
		case "..":
			if p == "/" {
				return "", fmt.Errorf("%w: too many '..'", ErrInvalidPath)
			}
			p = p[:strings.LastIndexByte(p, '/')]
			if p == "" {
				p = "/"
			}
			continue
		}
		if p == "/" {
			p += n
		} else {
			p += "/" + n
		}
	}
	return p, nil
}

// resolvePath resolves b against a, as unix-path-resolve does.
func resolvePath(a, b string) (string, error) {
	ap, bp := parsePath(a), parsePath(b)
	if bp.absolute {
		return joinNames("/", bp.names)
	}
	if !ap.absolute {
		return "", fmt.Errorf("%w: neither %q nor %q is absolute", ErrInvalidPath, a, b)
	}
	base, err := joinNames("/", ap.names)
	if err != nil {
		return "", err
	}
	return joinNames(base, bp.names)
}

// NormalizePath returns the key Hyperdrive uses for a file name:
// absolute, with '.', '..', repeated and trailing separators resolved.
// The root itself is not a valid file name.
func NormalizePath(name string) (string, error) {
	if !utf8.ValidString(name) {
		return "", fmt.Errorf("%w: %q is not UTF-8", ErrInvalidPath, name)
	}
	p, err := resolvePath("/", name)
	if err != nil {
		return "", err
	}
	if p == "/" {
		return "", fmt.Errorf("%w: %q names the root", ErrInvalidPath, name)
	}
	return p, nil
}

// normalizeFolder is Hyperdrive's std(name, true): the folder prefix for
// listings, without a trailing slash ("" for the root).
func normalizeFolder(folder string) (string, error) {
	if folder == "" {
		folder = "/"
	}
	if !utf8.ValidString(folder) {
		return "", fmt.Errorf("%w: %q is not UTF-8", ErrInvalidPath, folder)
	}
	p, err := resolvePath("/", folder)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(p, "/"), nil
}
