package messages

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode"
	"unicode/utf8"
)

// UserKey returns the key under which requests for one user are ordered:
// the email with its case folded, so that two spellings Zoom takes for the
// same user get the same key.
//
// The folding is Unicode simple case folding, the relation strings.EqualFold
// uses: each character becomes the lower case of the smallest member of its
// folding orbit, so that "K", "k" and the Kelvin sign "K" all become "k",
// and "ſ" becomes "s". Hence strings.EqualFold(a, b) implies UserKey(a) ==
// UserKey(b). No Unicode normalization is applied (a precomposed "é" and
// "e" plus a combining accent stay different), and neither Zoom nor the
// simulator is known to apply one. An ASCII address simply becomes lower
// case. The key is empty only for an empty email.
//
// The key may hold any character an address may hold, including "." and
// non-ASCII letters: encode it before using it as a NATS subject token or
// key-value key.
func UserKey(email string) string {
	lower := true
	for i := 0; i < len(email); i++ {
		c := email[i]
		if c >= utf8.RuneSelf {
			return foldString(email)
		}
		lower = lower && !('A' <= c && c <= 'Z')
	}
	if lower {
		return email
	}
	return strings.ToLower(email)
}

func foldString(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		b.WriteRune(foldRune(r))
	}
	return b.String()
}

// foldRune maps every rune of one simple case-folding orbit to the same
// rune.
func foldRune(r rune) rune {
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		least = min(least, f)
	}
	return unicode.ToLower(least)
}

// maxBestEffortBytes bounds the address BestEffortEmail returns: a valid
// one has at most 128 characters of at most 4 bytes each.
const maxBestEffortBytes = maxEmailChars * utf8.UTFMax

// BestEffortEmail returns the email of any request body, valid or not, so
// that a failure event and the per-user ordering can name the user even
// when the body is rejected: the top-level "email" of a lifecycle request,
// or "user_info"."email" of a creation request (user_info as an object, or
// as a string holding one). Whichever comes first in the body is returned;
// a valid body holds only one of them.
//
// It tolerates malformed JSON: it reads the members, token by token, up to
// the first thing it cannot make sense of, so a truncated body still
// yields an address that came before the cut. Only the first MaxBodyBytes
// of body are read. It returns "" when no string value is found, and for
// one that is not valid UTF-8 or longer than any valid address can be.
// When Decode, DecodeUpdate, DecodeStatus or DecodeDelete succeed on body,
// BestEffortEmail returns the email they decoded.
func BestEffortEmail(body []byte) string {
	if len(body) > MaxBodyBytes {
		body = body[:MaxBodyBytes]
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	email := ""
	if t, err := dec.Token(); err == nil && t == json.Delim('{') {
		email = objectEmail(dec, true)
	}
	// The decoder replaces invalid UTF-8 with U+FFFD: in a body that is not
	// UTF-8, an address that holds one came from bytes that were not an
	// address. (An escaped lone surrogate also decodes to U+FFFD, in a body
	// the strict decoders accept.)
	if len(email) > maxBestEffortBytes || (strings.ContainsRune(email, utf8.RuneError) && !utf8.Valid(body)) {
		return ""
	}
	return email
}

// objectEmail reads the members of an object whose "{" dec has read, and
// returns the first non-empty "email" string member, or with top, the
// email of a "user_info" member (an object, or a string holding one) if
// that comes first. It stops at the first token it cannot read.
func objectEmail(dec *json.Decoder, top bool) string {
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return ""
		}
		key, _ := t.(string)
		v, err := dec.Token()
		if err != nil {
			return ""
		}
		d, isDelim := v.(json.Delim)
		switch {
		case key == "email" && !isDelim:
			if s, ok := v.(string); ok && s != "" {
				return s
			}
		case key == "user_info" && top && d == '{':
			if e := objectEmail(dec, false); e != "" {
				return e
			}
			// objectEmail stopped at the end of user_info, or at a token
			// it could not read: the next Token call tells which.
			if _, err := dec.Token(); err != nil {
				return ""
			}
		case key == "user_info" && top && !isDelim:
			if inner, ok := v.(string); ok {
				in := json.NewDecoder(strings.NewReader(inner))
				if t, err := in.Token(); err == nil && t == json.Delim('{') {
					if e := objectEmail(in, false); e != "" {
						return e
					}
				}
			}
		case isDelim && !skipRest(dec, d):
			return ""
		}
	}
	return ""
}

// skipRest reads the rest of the array or object whose opening d dec has
// read; it reports whether that worked.
func skipRest(dec *json.Decoder, d json.Delim) bool {
	if d != '[' && d != '{' {
		return false
	}
	for depth := 1; depth > 0; {
		t, err := dec.Token()
		if err != nil {
			return false
		}
		if d, ok := t.(json.Delim); ok {
			if d == '[' || d == '{' {
				depth++
			} else {
				depth--
			}
		}
	}
	return true
}

// memberValue returns the raw bytes of the value of the top-level member
// named key in data, which must be a well-formed JSON object.
func memberValue(data []byte, key string) ([]byte, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return nil, false
	}
	raw, ok := m[key]
	return raw, ok
}
