package drive

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/hyperos/hyperos/hyper/blobs"
)

// filesPrefix is sub-encoder's prefix for Hyperdrive's 'files' sub:
// "files" and a zero byte. Every file key in the db bee starts with it.
const filesPrefix = "files\x00"

func fileKey(path string) []byte {
	return append([]byte(filesPrefix), path...)
}

// Entry is a file, symlink or bare entry of a drive.
type Entry struct {
	// Seq is the db block that wrote the entry.
	Seq uint64
	// Key is the normalised path.
	Key   string
	Value Value
}

// Value is what Hyperdrive stores for a path.
type Value struct {
	Executable bool
	// Linkname is the target of a symlink; empty for anything else. It
	// is stored as JSON null when empty.
	Linkname string
	// Blob locates the content in the blobs core; nil for symlinks.
	Blob *blobs.ID
	// Metadata is any JSON value; nil is stored as null. It is
	// re-serialised as JSON.stringify would on write.
	Metadata json.RawMessage
}

// IsSymlink reports whether the entry is a symlink (Hyperdrive treats an
// empty linkname as none).
func (v *Value) IsSymlink() bool { return v.Linkname != "" }

// Encode returns the stored bytes: JSON.stringify of
// {executable, linkname, blob, metadata}, in that order.
func (v *Value) Encode() ([]byte, error) {
	b := []byte(`{"executable":`)
	b = strconv.AppendBool(b, v.Executable)
	b = append(b, `,"linkname":`...)
	if v.Linkname == "" {
		b = append(b, "null"...)
	} else {
		if !utf8.ValidString(v.Linkname) {
			return nil, fmt.Errorf("drive: linkname %q is not UTF-8", v.Linkname)
		}
		b = appendJSString(b, v.Linkname)
	}
	b = append(b, `,"blob":`...)
	if v.Blob == nil {
		b = append(b, "null"...)
	} else {
		id, err := v.Blob.MarshalJSON()
		if err != nil {
			return nil, err
		}
		b = append(b, id...)
	}
	b = append(b, `,"metadata":`...)
	if len(v.Metadata) == 0 {
		b = append(b, "null"...)
	} else {
		m, err := normalizeJSON(v.Metadata)
		if err != nil {
			return nil, err
		}
		b = append(b, m...)
	}
	return append(b, '}'), nil
}

// DecodeValue parses a stored entry. Like Node it reads the fields by
// name in any order; executable is taken by JavaScript truthiness.
func DecodeValue(b []byte) (Value, error) {
	var raw struct {
		Executable json.RawMessage `json:"executable"`
		Linkname   *string         `json:"linkname"`
		Blob       json.RawMessage `json:"blob"`
		Metadata   json.RawMessage `json:"metadata"`
	}
	var v Value
	if err := json.Unmarshal(b, &raw); err != nil {
		return v, fmt.Errorf("drive: decode entry: %w", err)
	}
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("null")) {
		return v, errors.New("drive: decode entry: null")
	}
	v.Executable = truthy(raw.Executable)
	if raw.Linkname != nil {
		v.Linkname = *raw.Linkname
	}
	if len(raw.Blob) > 0 && string(raw.Blob) != "null" {
		var id blobs.ID
		if err := json.Unmarshal(raw.Blob, &id); err != nil {
			return v, fmt.Errorf("drive: decode entry: %w", err)
		}
		v.Blob = &id
	}
	if len(raw.Metadata) > 0 && string(raw.Metadata) != "null" {
		v.Metadata = append(json.RawMessage(nil), raw.Metadata...)
	}
	return v, nil
}

func truthy(raw json.RawMessage) bool {
	if len(raw) == 0 {
		return false
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return false
	}
	switch t := v.(type) {
	case nil:
		return false
	case bool:
		return t
	case float64:
		return t != 0
	case string:
		return t != ""
	default:
		return true
	}
}
