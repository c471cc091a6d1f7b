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
// It tolerates malformed JSON: it reads the members up to the first thing
// it cannot make sense of, so a truncated body still yields an address
// that came before the cut. Only the first MaxBodyBytes of body are read,
// in one pass without recursion. It returns "" when no string value is
// found, and for one that is not valid UTF-8 or longer than any valid
// address can be. When Decode, DecodeUpdate, DecodeStatus or DecodeDelete
// succeed on body, BestEffortEmail returns the email they decoded.
func BestEffortEmail(body []byte) string {
	if len(body) > MaxBodyBytes {
		body = body[:MaxBodyBytes]
	}
	var email string
	s := scanner{b: body}
	s.object(func(key []byte, esc bool) bool {
		switch {
		case keyIs(key, esc, "email"):
			var ok bool
			email, ok = s.stringValue()
			return ok && email == ""
		case keyIs(key, esc, "user_info"):
			email = s.userInfoEmail()
			return email == "" && s.ok
		}
		return s.skip()
	})
	if len(email) > maxBestEffortBytes || !utf8.ValidString(email) {
		return ""
	}
	return email
}

// userInfoEmail reads the user_info value at the scanner: the email of an
// object, or of the object a string holds.
func (s *scanner) userInfoEmail() string {
	if s.i < len(s.b) && s.b[s.i] == '"' {
		inner, ok := s.stringValue()
		s.ok = ok
		if !ok {
			return ""
		}
		is := scanner{b: []byte(inner)}
		return is.emailMember()
	}
	if s.i < len(s.b) && s.b[s.i] == '{' {
		return s.emailMember()
	}
	s.ok = s.skip()
	return ""
}

// emailMember returns the string value of the first "email" member of the
// object at the scanner, reading no further than that member.
func (s *scanner) emailMember() string {
	var email string
	s.ok = s.object(func(key []byte, esc bool) bool {
		if keyIs(key, esc, "email") {
			email, _ = s.stringValue()
			return false
		}
		return s.skip()
	})
	if email != "" {
		s.ok = false // found: nothing further needs reading
	}
	return email
}

// memberValue returns the raw bytes of the value of the first top-level
// member named key in data, which must be well-formed JSON.
func memberValue(data []byte, key string) ([]byte, bool) {
	var raw []byte
	s := scanner{b: data}
	s.object(func(k []byte, esc bool) bool {
		start := s.i
		if !s.skip() {
			return false
		}
		if keyIs(k, esc, key) {
			raw = data[start:s.i]
			return false
		}
		return true
	})
	return raw, raw != nil
}

// scanner walks JSON leniently and without allocating, for the lookups
// that must not pay for a full parse. It checks only what it needs to find
// its way.
type scanner struct {
	b  []byte
	i  int
	ok bool // scratch result of userInfoEmail and emailMember
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// object reads the object at the scanner. For each member it calls fn with
// the raw key (quotes included) and whether it holds escapes, with the
// scanner at the value; fn must read the value and report whether to go
// on. object reports whether the whole object was read.
func (s *scanner) object(fn func(key []byte, esc bool) bool) bool {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return false
	}
	s.i++
	for {
		s.ws()
		if s.i >= len(s.b) {
			return false
		}
		switch s.b[s.i] {
		case '}':
			s.i++
			return true
		case ',':
			s.i++
			continue
		case '"':
		default:
			return false
		}
		key, esc, ok := s.str()
		if !ok {
			return false
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return false
		}
		s.i++
		s.ws()
		if !fn(key, esc) {
			return false
		}
	}
}

// str reads the string at the scanner (at its opening quote) and returns
// it raw, quotes included, and whether it holds an escape.
func (s *scanner) str() (raw []byte, esc bool, ok bool) {
	start := s.i
	i := s.i + 1
	for {
		q := bytes.IndexByte(s.b[i:], '"')
		if q < 0 {
			s.i = len(s.b)
			return nil, esc, false
		}
		bs := bytes.IndexByte(s.b[i:i+q], '\\')
		if bs < 0 {
			s.i = i + q + 1
			return s.b[start:s.i], esc, true
		}
		esc = true
		i += bs + 2 // the backslash and the character it escapes
		if i > len(s.b) {
			s.i = len(s.b)
			return nil, esc, false
		}
	}
}

// stringValue reads the value at the scanner, which must be a string, and
// returns it unescaped as encoding/json unescapes it.
func (s *scanner) stringValue() (string, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return "", s.skip()
	}
	raw, esc, ok := s.str()
	if !ok {
		return "", false
	}
	return unquote(raw, esc)
}

func unquote(raw []byte, esc bool) (string, bool) {
	if !esc {
		return string(raw[1 : len(raw)-1]), true
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", false
	}
	return v, true
}

func keyIs(raw []byte, esc bool, want string) bool {
	if !esc {
		return len(raw) == len(want)+2 && string(raw[1:len(raw)-1]) == want
	}
	k, ok := unquote(raw, esc)
	return ok && k == want
}

// skip reads past the value at the scanner. Containers are skipped by
// counting brackets, not by recursion.
func (s *scanner) skip() bool {
	s.ws()
	if s.i >= len(s.b) {
		return false
	}
	switch s.b[s.i] {
	case '"':
		_, _, ok := s.str()
		return ok
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if _, _, ok := s.str(); !ok {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return true
				}
			}
			s.i++
		}
		return false
	}
	start := s.i
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ',', '}', ']', ':', ' ', '\t', '\n', '\r', '"', '{', '[':
			return s.i > start
		}
		s.i++
	}
	return s.i > start
}
