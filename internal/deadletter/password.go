package deadletter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
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
// a value in the body itself, 1 inside a string holding JSON, …), and the
// path of its member (see pathOf).
type span struct {
	start, end, level int
	path              string
}

// replacePasswords returns body with the value of every password member
// (see above) replaced by the JSON string f returns for it, so that a dead
// letter can keep a request without its password in clear. raw is the
// value's bytes exactly as they stand in body (for a string, its quotes
// and escapes included, and escaped once more for each string holding it),
// so that restorePasswords can put them back byte for byte; path is the
// member's path, such as "user_info.password" (see pathOf), which
// restorePasswords gives for the replacement. Everything else is kept byte
// for byte; inside a string that holds JSON, the replacement is escaped to
// match, so the string form stays a string. n counts the values replaced.
// body is not modified; when there is nothing to replace, out is body
// itself. An error from f stops the replacement and is returned wrapped.
func replacePasswords(body []byte, f func(raw []byte, path string) (string, error)) (out []byte, n int, err error) {
	return replacePasswordsKeeping(body, nil, f)
}

// replacePasswordsKeeping is replacePasswords, but keeps as it is (and
// does not count) every password value that is a JSON string for which
// keep, given it unescaped, returns true.
func replacePasswordsKeeping(body []byte, keep func(value string) bool, f func(raw []byte, path string) (string, error)) (out []byte, n int, err error) {
	spans := passwordSpans(body, 0, nil, "")
	out = make([]byte, 0, len(body))
	last := 0
	for _, s := range spans {
		raw := body[s.start:s.end:s.end]
		if keep != nil {
			if v, ok := unescape(raw, s.level); ok && keep(v) {
				continue
			}
		}
		repl, err := f(raw, s.path)
		if err != nil {
			return nil, 0, fmt.Errorf("deadletter: replace a password: %w", err)
		}
		out = append(out, body[last:s.start]...)
		out = append(out, escape(quote(repl), s.level)...)
		last = s.end
		n++
	}
	if n == 0 {
		return body, 0, nil
	}
	return append(out, body[last:]...), n, nil
}

// restorePasswords reverses replacePasswords, for a replay: the value of
// every password member that is a JSON string is given to f unescaped
// (once for each string holding it, then as a string), with the member's
// path; where f returns ok, the value's bytes are replaced by raw as it
// is. n counts the values replaced. body is not modified; when nothing is
// replaced, out is body itself. An error from f stops and is returned
// wrapped.
func restorePasswords(body []byte, f func(value, path string) (raw []byte, ok bool, err error)) (out []byte, n int, err error) {
	spans := passwordSpans(body, 0, nil, "")
	out = make([]byte, 0, len(body))
	last := 0
	for _, s := range spans {
		v, isString := unescape(body[s.start:s.end], s.level)
		if !isString {
			continue
		}
		raw, ok, err := f(v, s.path)
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

// frame is an object or array the scan is inside of, for paths.
type frame struct {
	array bool
	// key is an object's current member, unescaped; index an array's
	// current element.
	key   string
	index int
}

// pathOf returns the path of the current value inside frames, below
// prefix: object members joined by ".", array elements as "[index]", as
// in "user_info.password" or "users[2].password". A value inside a string
// holding JSON has the path of the string as its prefix, so the password
// of a user_info sent as a string is "user_info.password" too. Keys are
// taken unescaped, dots and all, but a password member's key is
// "password" in any spelling, and a key that holds passwords itself is
// "?": the path only has to be the same each time the same body is
// scanned, before and after its passwords are replaced, which it is
// because the scan never looks inside a password value and no key it
// uses holds one.
func pathOf(prefix string, frames []frame) string {
	var b strings.Builder
	b.WriteString(prefix)
	for _, f := range frames {
		switch {
		case f.array:
			b.WriteString("[" + strconv.Itoa(f.index) + "]")
		case f.key != "":
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(f.key)
		}
	}
	return b.String()
}

// passwordSpans appends, in order, the password values of b, whose byte i
// stands at offset[i] of the body (offset nil: b is the body; offset has
// one more entry, for the end of b), escaped level times; prefix is the
// path of b (the string holding it), "" for the body.
func passwordSpans(b []byte, level int, offset []int, prefix string) []span {
	var out []span
	var frames []frame
	pos := func(i int) int {
		if offset == nil {
			return i
		}
		return offset[i]
	}
	for i := 0; i < len(b); {
		switch c := b[i]; c {
		case '{', '[':
			frames = append(frames, frame{array: c == '['})
			i++
			continue
		case '}', ']':
			if len(frames) > 0 {
				frames = frames[:len(frames)-1]
			}
			i++
			continue
		case ',':
			if n := len(frames); n > 0 {
				frames[n-1].index++
				frames[n-1].key = ""
			}
			i++
			continue
		case '"':
		default:
			i++
			continue
		}
		end := stringEnd(b, i)
		colon := skipSpace(b, end)
		isKey := colon < len(b) && b[colon] == ':'
		if isKey && isPasswordKey(b[i:end]) {
			path := memberPath(prefix, frames, "password")
			v := skipSpace(b, colon+1)
			e := valueEnd(b, v)
			if v < len(b) {
				out = append(out, span{pos(v), pos(e), level, path})
			}
			i = max(e, v+1)
			continue
		}
		var found []span
		// Only a string with an escape can hold a quote, hence a key.
		if bytes.IndexByte(b[i+1:end], '\\') >= 0 {
			inner, innerOff := decodeString(b[i:end])
			for k := range innerOff {
				innerOff[k] = pos(i + innerOff[k])
			}
			found = passwordSpans(inner, level+1, innerOff, pathOf(prefix, frames))
			out = append(out, found...)
		}
		if isKey {
			key := "?"
			if len(found) == 0 {
				k, _ := decodeString(b[i:end])
				key = string(k)
			}
			memberPath(prefix, frames, key)
		}
		i = end
	}
	return out
}

// memberPath makes key the current member of the innermost object of
// frames and returns the member's path. A key that holds passwords itself
// (a key that is a string holding JSON) is given as "?": its text changes
// with what replaces them, so it cannot name the member.
func memberPath(prefix string, frames []frame, key string) string {
	if n := len(frames); n > 0 && !frames[n-1].array {
		frames[n-1].key = key
		return pathOf(prefix, frames)
	}
	if p := pathOf(prefix, frames); p != "" {
		return p + "." + key
	}
	return key
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
