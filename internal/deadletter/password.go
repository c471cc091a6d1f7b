package deadletter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// A password value is the value of every member whose key, unescaped,
// equals "password" under Unicode case folding (strings.EqualFold), at any
// depth, and inside every string that may hold JSON (one with an escape:
// its quotes must be escaped), such as a user_info sent as a string, at
// any depth of such nesting. That is a superset of what Decode reads as
// the password (user_info's member spelled exactly "password" once
// unescaped, in the object or the string form), so that no spelling a
// publisher tries keeps one in clear. The scan needs no valid JSON: strings
// are found by their quotes and escapes, an unterminated value runs to the
// end of the input (or of the string holding it), and a bad escape in a
// string holding JSON reads as the character after its backslash.

// span is one password value: body[start:end], escaped level times (0 for
// a value in the body itself, 1 inside a string holding JSON, …).
type span struct {
	start, end, level int
}

// replacePasswords returns body with the value of every password member
// (see above) replaced by the JSON string f returns for it, so that a dead
// letter can keep a request without its password in clear. raw is the
// value's bytes exactly as they stand in body (for a string, its quotes
// and escapes included, and escaped once more for each string holding it),
// so that restorePasswords can put them back byte for byte. Everything
// else is kept byte for byte; inside a string that holds JSON, the
// replacement is escaped to match, so the string form stays a string. n
// counts the values replaced. body is not modified; when there is nothing
// to replace, out is body itself. An error from f stops the replacement
// and is returned wrapped.
func replacePasswords(body []byte, f func(raw []byte) (string, error)) (out []byte, n int, err error) {
	spans := passwordSpans(body, 0, nil)
	if len(spans) == 0 {
		return body, 0, nil
	}
	out = make([]byte, 0, len(body))
	last := 0
	for _, s := range spans {
		repl, err := f(body[s.start:s.end:s.end])
		if err != nil {
			return nil, 0, fmt.Errorf("deadletter: replace a password: %w", err)
		}
		out = append(out, body[last:s.start]...)
		out = append(out, escape(quote(repl), s.level)...)
		last = s.end
	}
	return append(out, body[last:]...), len(spans), nil
}

// restorePasswords reverses replacePasswords, for a replay: the value of
// every password member that is a JSON string is given to f unescaped
// (once for each string holding it, then as a string); where f returns
// ok, the value's bytes are replaced by raw as it is. n counts the values
// replaced. body is not modified; when nothing is replaced, out is body
// itself. An error from f stops and is returned wrapped.
func restorePasswords(body []byte, f func(value string) (raw []byte, ok bool, err error)) (out []byte, n int, err error) {
	spans := passwordSpans(body, 0, nil)
	out = make([]byte, 0, len(body))
	last := 0
	for _, s := range spans {
		v, isString := unescape(body[s.start:s.end], s.level)
		if !isString {
			continue
		}
		raw, ok, err := f(v)
		if err != nil {
			return nil, 0, fmt.Errorf("deadletter: restore a password: %w", err)
		}
		if !ok {
			continue
		}
		out = append(out, body[last:s.start]...)
		out = append(out, raw...)
		last = s.end
		n++
	}
	if n == 0 {
		return body, 0, nil
	}
	return append(out, body[last:]...), n, nil
}

// passwordSpans appends, in order, the password values of b, whose byte i
// stands at offset[i] of the body (offset nil: b is the body; offset has
// one more entry, for the end of b), escaped level times.
func passwordSpans(b []byte, level int, offset []int) []span {
	var out []span
	pos := func(i int) int {
		if offset == nil {
			return i
		}
		return offset[i]
	}
	for i := 0; i < len(b); {
		if b[i] != '"' {
			i++
			continue
		}
		end := stringEnd(b, i)
		if colon := skipSpace(b, end); colon < len(b) && b[colon] == ':' && isPasswordKey(b[i:end]) {
			v := skipSpace(b, colon+1)
			e := valueEnd(b, v)
			if v < len(b) {
				out = append(out, span{pos(v), pos(e), level})
			}
			i = max(e, v+1)
			continue
		}
		// Only a string with an escape can hold a quote, hence a key.
		if bytes.IndexByte(b[i+1:end], '\\') >= 0 {
			inner, innerOff := decodeString(b[i:end])
			for k := range innerOff {
				innerOff[k] = pos(i + innerOff[k])
			}
			out = append(out, passwordSpans(inner, level+1, innerOff)...)
		}
		i = end
	}
	return out
}

// decodeString decodes the JSON string token tok (maybe unterminated),
// with, for every byte of the result and one past its end, the offset in
// tok of the escape or character it came from, so that no span of the
// result splits an escape. It never fails: a bad escape reads as the
// character after its backslash, a bad \u escape as "u", and a backslash
// that ends tok as nothing (tok is then unterminated, and its end is
// len(tok)), as stringEnd pairs every backslash with the byte after it.
func decodeString(tok []byte) (s []byte, offset []int) {
	for j := 1; j < len(tok); {
		c := tok[j]
		switch {
		case c == '"':
			return s, append(offset, j)
		case c != '\\':
			_, size := utf8.DecodeRune(tok[j:])
			for k := range size {
				offset = append(offset, j+k)
			}
			s = append(s, tok[j:j+size]...)
			j += size
			continue
		case j+1 >= len(tok):
			return s, append(offset, len(tok))
		}
		start := j
		var r rune
		switch e := tok[j+1]; e {
		case 'b':
			r, j = '\b', j+2
		case 'f':
			r, j = '\f', j+2
		case 'n':
			r, j = '\n', j+2
		case 'r':
			r, j = '\r', j+2
		case 't':
			r, j = '\t', j+2
		case 'u':
			var good bool
			if r, good = hex4(tok, j+2); !good {
				r, j = 'u', j+2
				break
			}
			j += 6
			if utf16.IsSurrogate(r) {
				if lo, good := hex4(tok, j+2); good && j+1 < len(tok) && tok[j] == '\\' && tok[j+1] == 'u' && utf16.DecodeRune(r, lo) != utf8.RuneError {
					r = utf16.DecodeRune(r, lo)
					j += 6
				} else {
					r = utf8.RuneError
				}
			}
		default: // '"', '\\', '/', and bad escapes: the character itself
			var size int
			r, size = utf8.DecodeRune(tok[j+1:])
			if r == utf8.RuneError && size == 1 {
				// Keep an invalid byte as it is.
				s = append(s, tok[j+1])
				offset = append(offset, start)
				j += 2
				continue
			}
			j += 1 + size
		}
		n := len(s)
		s = utf8.AppendRune(s, r)
		for range len(s) - n {
			offset = append(offset, start)
		}
	}
	return s, append(offset, len(tok)) // unterminated
}

// hex4 reads the 4 hex digits of a \u escape at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// quote is s as a JSON string, without HTML escaping.
func quote(s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// escape escapes JSON text b level times, for its place inside strings.
func escape(b []byte, level int) []byte {
	for range level {
		q := quote(string(b))
		b = q[1 : len(q)-1]
	}
	return b
}

// unescape reverses escape and reads the JSON string that results; ok is
// false if it is no string.
func unescape(b []byte, level int) (string, bool) {
	for range level {
		var s string
		if json.Unmarshal(append(append([]byte{'"'}, b...), '"'), &s) != nil {
			return "", false
		}
		b = []byte(s)
	}
	var s string
	if len(b) == 0 || b[0] != '"' || json.Unmarshal(b, &s) != nil { // null is no string
		return "", false
	}
	return s, true
}

// isPasswordKey reports whether the string token tok, unescaped, is
// "password" in any letter case.
func isPasswordKey(tok []byte) bool {
	if len(tok) < len(`"password"`) {
		return false
	}
	var s string
	return json.Unmarshal(tok, &s) == nil && strings.EqualFold(s, "password")
}

// stringEnd returns the index just after the string starting at b[i] (a
// quote), or len(b) if it is not terminated.
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// valueEnd returns the index just after the JSON value starting at b[i]:
// a string, an object or array (brackets counted outside strings), or a
// literal up to the next delimiter.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = stringEnd(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	j := i
	for j < len(b) && !bytes.ContainsRune([]byte(",}] \t\r\n"), rune(b[j])) {
		j++
	}
	return j
}
