package dlq

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// MaskedPassword replaces password values in RedactBody's output.
const MaskedPassword = "********"

// RedactBody returns a request body for people to read: the value of every
// "password" member (at any depth, in any letter case, and also inside a
// string that holds JSON, such as a user_info given as a string) replaced
// by "********", and, when the body is valid JSON, indented. ok is false
// when it is not valid JSON (a truncated body, say); the text is then the
// body as stored, with invalid UTF-8 replaced and every password value that
// can be recognised masked all the same, up to the end of the body for an
// unterminated one.
func RedactBody(body []byte) (text string, ok bool) {
	masked := maskPasswords(bytes.ToValidUTF8(body, []byte("\uFFFD")))
	if json.Valid(masked) {
		var out bytes.Buffer
		if err := json.Indent(&out, masked, "", "  "); err == nil {
			return out.String(), true
		}
	}
	return string(masked), false
}

// maskPasswords scans JSON, or what is left of it, without needing it to
// be valid: strings are found by their quotes and escapes, and the value
// after a "password" key is replaced, whatever its type, up to where it
// ends (or the end of the input).
func maskPasswords(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		if b[i] != '"' {
			out = append(out, b[i])
			i++
			continue
		}
		end := stringEnd(b, i)
		tok := b[i:end]
		if colon := skipSpace(b, end); colon < len(b) && b[colon] == ':' && isPasswordKey(tok) {
			v := skipSpace(b, colon+1)
			out = append(out, b[i:v]...)
			out = append(out, `"`+MaskedPassword+`"`...)
			i = valueEnd(b, v)
			continue
		}
		out = append(out, maskInString(tok)...)
		i = end
	}
	return out
}

// maskInString masks passwords inside a JSON string token that holds JSON
// itself; tok is returned unchanged when it holds no password key.
func maskInString(tok []byte) []byte {
	if !bytes.Contains(bytes.ToLower(tok), []byte("password")) {
		return tok
	}
	s, ok := unquote(tok)
	if !ok {
		// Unterminated: close it to read what there is.
		if s, ok = unquote(append(append([]byte(nil), tok...), '"')); !ok {
			return []byte(`"` + MaskedPassword + `"`) // unreadable: hide all of it
		}
	}
	inner := maskPasswords([]byte(s))
	if bytes.Equal(inner, []byte(s)) {
		return tok
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(string(inner)); err != nil {
		return []byte(`"` + MaskedPassword + `"`)
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}

func unquote(tok []byte) (string, bool) {
	var s string
	if json.Unmarshal(tok, &s) != nil {
		return "", false
	}
	return s, true
}

func isPasswordKey(tok []byte) bool {
	s, ok := unquote(tok)
	return ok && strings.EqualFold(s, "password")
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
	for j < len(b) && !strings.ContainsRune(",}] \t\r\n", rune(b[j])) {
		_, size := utf8.DecodeRune(b[j:])
		j += size
	}
	return j
}
