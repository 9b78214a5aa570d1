package drive

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Hyperdrive stores entries with valueEncoding 'json', i.e. the bytes of
// JSON.stringify(value). For a Go writer to produce the same bytes for the
// same metadata, a caller's JSON is re-serialised the way
// JSON.stringify(JSON.parse(raw)) would: no whitespace, JavaScript's number
// formatting, JavaScript's string escaping (only quote, backslash and
// control characters), and JavaScript's property order (integer-like keys
// first in ascending order, then the rest in first-seen order, a duplicate
// key keeping its first position and its last value).

type jsObject struct {
	keys []string
	vals map[string]any
}

type jsNumber float64

// normalizeJSON returns JSON.stringify(JSON.parse(raw)).
func normalizeJSON(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := parseJS(dec, 0)
	if err != nil {
		return nil, fmt.Errorf("drive: metadata is not JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("drive: metadata is not JSON: trailing data")
	}
	return appendJS(nil, v), nil
}

// maxJSONDepth bounds nesting; JSON.parse would overflow its stack too.
const maxJSONDepth = 1000

func parseJS(dec *json.Decoder, depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, errors.New("nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '[':
			arr := []any{}
			for dec.More() {
				v, err := parseJS(dec, depth+1)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return arr, nil
		case '{':
			obj := &jsObject{vals: map[string]any{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("object key %v is not a string", kt)
				}
				v, err := parseJS(dec, depth+1)
				if err != nil {
					return nil, err
				}
				if _, seen := obj.vals[k]; !seen {
					obj.keys = append(obj.keys, k)
				}
				obj.vals[k] = v
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return obj, nil
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case json.Number:
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, err
		}
		return jsNumber(f), nil
	default: // string, bool, nil
		return t, nil
	}
}

// arrayIndex reports whether k is a canonical array index (0 .. 2^32-2),
// which JavaScript objects list first, in numeric order.
func arrayIndex(k string) (uint64, bool) {
	if k == "" || len(k) > 10 || (len(k) > 1 && k[0] == '0') {
		return 0, false
	}
	n, err := strconv.ParseUint(k, 10, 64)
	if err != nil || n > math.MaxUint32-1 {
		return 0, false
	}
	return n, true
}

func appendJS(b []byte, v any) []byte {
	switch t := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, t)
	case string:
		return appendJSString(b, t)
	case jsNumber:
		return append(b, formatJSNumber(float64(t))...)
	case []any:
		b = append(b, '[')
		for i, e := range t {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJS(b, e)
		}
		return append(b, ']')
	case *jsObject:
		var ints []string
		var rest []string
		for _, k := range t.keys {
			if _, ok := arrayIndex(k); ok {
				ints = append(ints, k)
			} else {
				rest = append(rest, k)
			}
		}
		sort.Slice(ints, func(i, j int) bool {
			a, _ := arrayIndex(ints[i])
			c, _ := arrayIndex(ints[j])
			return a < c
		})
		b = append(b, '{')
		for i, k := range append(ints, rest...) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSString(b, k)
			b = append(b, ':')
			b = appendJS(b, t.vals[k])
		}
		return append(b, '}')
	}
	panic(fmt.Sprintf("drive: unexpected JSON value %T", v))
}

// appendJSString quotes s as JSON.stringify does.
func appendJSString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			if c < 0x20 {
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			} else {
				b = append(b, c)
			}
		}
	}
	return append(b, '"')
}

// formatJSNumber formats f as JavaScript's Number.prototype.toString
// (ECMA-262 Number::toString): the shortest round-tripping digits, plain
// notation for decimal exponents in [-6, 21), exponent notation otherwise.
func formatJSNumber(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "null" // what JSON.stringify writes for them
	}
	if f == 0 {
		return "0" // also for -0
	}
	sign := ""
	if f < 0 {
		sign = "-"
		f = -f
	}
	e := strconv.FormatFloat(f, 'e', -1, 64)
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	n := x + 1
	k := len(digits)
	var out string
	switch {
	case k <= n && n <= 21:
		out = digits + strings.Repeat("0", n-k)
	case 0 < n && n <= 21:
		out = digits[:n] + "." + digits[n:]
	case -6 < n && n <= 0:
		out = "0." + strings.Repeat("0", -n) + digits
	default:
		d := n - 1
		es := "+"
		if d < 0 {
			es = "-"
			d = -d
		}
		if k == 1 {
			out = digits + "e" + es + strconv.Itoa(d)
		} else {
			out = digits[:1] + "." + digits[1:] + "e" + es + strconv.Itoa(d)
		}
	}
	return sign + out
}
