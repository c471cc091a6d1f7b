package zoom

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/oauth2"
)

// Response headers Zoom sends (not all of them always; see RateLimit).
const (
	HeaderTrackingID         = "X-Zm-Trackingid"
	HeaderRetryAfter         = "Retry-After"
	HeaderRateLimitType      = "X-Ratelimit-Type"
	HeaderRateLimitLimit     = "X-Ratelimit-Limit"
	HeaderRateLimitRemaining = "X-Ratelimit-Remaining"
	HeaderRateLimitCategory  = "X-Ratelimit-Category"
)

// Sentinel errors, matched with errors.Is against a decoded *APIError by
// HTTP status and Zoom code (a zero code matches any code).
var (
	// ErrUserExists is Zoom's 409 with code 1005: the email already belongs
	// to a user of this account.
	ErrUserExists = &APIError{StatusCode: http.StatusConflict, Code: 1005}
	// ErrUserNotFound is 404 with code 1001 from any /users/{userId} call.
	ErrUserNotFound = &APIError{StatusCode: http.StatusNotFound, Code: 1001}
	// ErrRateLimited is any 429.
	ErrRateLimited = &APIError{StatusCode: http.StatusTooManyRequests}
	// ErrUnauthorized is any 401 (code 124: invalid or expired token).
	ErrUnauthorized = &APIError{StatusCode: http.StatusUnauthorized}
)

// maxFieldErrors bounds how many of Zoom's field errors are kept.
const maxFieldErrors = 20

// FieldError is one entry of the "errors" list of a validation failure.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// LimitType says which of Zoom's rate limits a 429 came from.
type LimitType string

// The limit types. Zoom's X-RateLimit-Type header uses "QPS" and
// "Daily-limit"; when the header is missing the message text decides.
const (
	LimitUnknown   LimitType = ""
	LimitPerSecond LimitType = "per_second"
	LimitDaily     LimitType = "daily"
	// LimitConcurrent is Zoom's "Too many concurrent requests" for one
	// resource: another call for the same user is still being served. It
	// says nothing about the account's budget.
	LimitConcurrent LimitType = "concurrent"
)

// RateLimit holds Zoom's rate-limit headers. Any of them may be missing:
// Zoom does not always send them.
type RateLimit struct {
	// Type is the raw X-RateLimit-Type ("QPS", "Daily-limit").
	Type string
	// Category is X-RateLimit-Category ("Light", "Medium", ...).
	Category string
	// Limit and Remaining are -1 when absent or not a number (Zoom has
	// been seen sending "unlimited").
	Limit, Remaining int
}

func parseRateLimit(h http.Header) RateLimit {
	return RateLimit{
		Type:      strings.TrimSpace(h.Get(HeaderRateLimitType)),
		Category:  strings.TrimSpace(h.Get(HeaderRateLimitCategory)),
		Limit:     headerInt(h, HeaderRateLimitLimit),
		Remaining: headerInt(h, HeaderRateLimitRemaining),
	}
}

func headerInt(h http.Header, name string) int {
	n, err := strconv.Atoi(strings.TrimSpace(h.Get(name)))
	if err != nil {
		return -1
	}
	return n
}

// APIError is a non-success answer from Zoom's API.
type APIError struct {
	// Op is the operation, e.g. "create user".
	Op string
	// StatusCode is the HTTP status.
	StatusCode int
	// Code and Message are Zoom's "code" and "message"; Code is 0 and
	// Message describes the body when it was not Zoom's JSON (an HTML
	// gateway page, an empty body).
	Code    int
	Message string
	// Fields are the per-field validation errors, if any.
	Fields []FieldError
	// RetryAfter is the parsed Retry-After header: zero when absent or
	// unreadable. Zoom sends an RFC 3339 time for daily limits; seconds and
	// HTTP dates are accepted too.
	RetryAfter time.Time
	// RateLimit holds the rate-limit headers of the answer.
	RateLimit RateLimit
	// TrackingID is Zoom's x-zm-trackingid.
	TrackingID string
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("zoom: ")
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, "http %d", e.StatusCode)
	if e.Code != 0 {
		fmt.Fprintf(&b, " code %d", e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	for i, f := range e.Fields {
		if i == maxFieldErrors {
			fmt.Fprintf(&b, "; and %d more", len(e.Fields)-i)
			break
		}
		if i == 0 {
			b.WriteString(" (")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(sanitize(f.Field, 100) + ": " + sanitize(f.Message, 200))
	}
	if len(e.Fields) > 0 {
		b.WriteString(")")
	}
	return b.String()
}

// Is matches sentinel *APIError values by status and, when the target has
// one, by Zoom code.
func (e *APIError) Is(target error) bool {
	t, ok := target.(*APIError)
	if !ok {
		return false
	}
	return e.StatusCode == t.StatusCode && (t.Code == 0 || e.Code == t.Code)
}

// Limit says which rate limit a 429 hit. The X-RateLimit-Type header
// decides; without it, the message text (Zoom's texts name "daily" or
// "per-second"); otherwise LimitUnknown.
func (e *APIError) Limit() LimitType {
	if e.StatusCode != http.StatusTooManyRequests {
		return LimitUnknown
	}
	switch t := strings.ToLower(e.RateLimit.Type); {
	case strings.Contains(t, "daily"):
		return LimitDaily
	case t == "qps" || strings.Contains(t, "second"):
		return LimitPerSecond
	}
	switch m := strings.ToLower(e.Message); {
	case strings.Contains(m, "concurrent"), strings.Contains(m, "has already been made"):
		return LimitConcurrent
	case strings.Contains(m, "daily"), strings.Contains(m, "per day"), strings.Contains(m, "gmt 00:00"):
		return LimitDaily
	case strings.Contains(m, "per-second"), strings.Contains(m, "per second"), strings.Contains(m, "qps"):
		return LimitPerSecond
	}
	return LimitUnknown
}

// ResetAt is when a rate-limited request may be tried again: Retry-After
// when Zoom sent it, else the next 00:00 UTC for a daily limit, else zero
// (unknown; about a second is the usual wait for a per-second limit).
func (e *APIError) ResetAt(now time.Time) time.Time {
	// A Retry-After more than a day and an hour ahead cannot be one of
	// Zoom's limits (the longest resets at the next 00:00 UTC): it is a
	// misread value (milliseconds, say), and trusting it would park requests
	// for years. Fall back as if it were absent.
	if !e.RetryAfter.IsZero() && !e.RetryAfter.After(now.Add(maxPlausibleReset)) {
		return e.RetryAfter
	}
	if e.Limit() == LimitDaily {
		return NextUTCMidnight(now)
	}
	return time.Time{}
}

// maxPlausibleReset bounds how far ahead a Retry-After is believed.
const maxPlausibleReset = 25 * time.Hour

// NextUTCMidnight returns the first 00:00 UTC strictly after now, when
// Zoom's daily limits reset.
func NextUTCMidnight(now time.Time) time.Time {
	return now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
}

// ParseRetryAfter reads a Retry-After value: an RFC 3339 time (what Zoom
// sends for daily limits), an HTTP date, delta seconds, or a Unix timestamp
// (some clients have seen one). It returns the zero time for anything else.
func ParseRetryAfter(v string, now time.Time) time.Time {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UTC()
	}
	if t, err := http.ParseTime(v); err == nil {
		return t.UTC()
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
		// Values this large cannot be a sensible delay; read them as a
		// Unix time (2001 onwards).
		if n >= 1_000_000_000 {
			return time.Unix(n, 0).UTC()
		}
		return now.Add(time.Duration(n) * time.Second).UTC()
	}
	return time.Time{}
}

// zoomBody is Zoom's error body. Code is decoded leniently: some proxies
// answer with a string.
type zoomBody struct {
	Code    json.RawMessage `json:"code"`
	Message string          `json:"message"`
	Errors  []FieldError    `json:"errors"`
}

func newAPIError(op string, res *http.Response, body []byte, now time.Time) *APIError {
	e := &APIError{
		Op:         op,
		StatusCode: res.StatusCode,
		RetryAfter: ParseRetryAfter(res.Header.Get(HeaderRetryAfter), now),
		RateLimit:  parseRateLimit(res.Header),
		TrackingID: res.Header.Get(HeaderTrackingID),
	}
	var zb zoomBody
	if err := json.Unmarshal(body, &zb); err == nil && (len(zb.Code) > 0 || zb.Message != "") {
		e.Code = parseCode(zb.Code)
		e.Message = sanitize(zb.Message, 1024)
		// Zoom's field errors reach logs and dead-letter headers: keep
		// them few, short and free of control characters.
		for i, f := range zb.Errors {
			if i == maxFieldErrors {
				break
			}
			e.Fields = append(e.Fields, FieldError{Field: sanitize(f.Field, 100), Message: sanitize(f.Message, 200)})
		}
		return e
	}
	e.Message = describeBody(res.Header.Get("Content-Type"), body)
	return e
}

func parseCode(raw json.RawMessage) int {
	s := strings.Trim(string(raw), `"`)
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0
	}
	return n
}

// describeBody summarises a body that is not Zoom's JSON, e.g. a gateway's
// HTML page, without copying the page into logs.
func describeBody(contentType string, body []byte) string {
	if len(bytes.TrimSpace(body)) == 0 {
		return "empty response body"
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "" {
		mt = "unknown content type"
	}
	mt = sanitize(mt, 100) // a media type is a token of any length
	desc := fmt.Sprintf("non-JSON response body (%s, %d bytes)", mt, len(body))
	// Search an ASCII-only lower-cased copy: bytes.ToLower can change the
	// length of non-ASCII text, and the positions must match body's.
	lower := asciiLower(body)
	if i := bytes.Index(lower, []byte("<title>")); i >= 0 {
		start := i + len("<title>")
		if j := bytes.Index(lower[start:], []byte("</title>")); j >= 0 {
			desc += ": " + sanitize(string(body[start:start+j]), 200)
		}
	}
	return desc
}

// asciiLower returns b with A-Z lower-cased and every other byte unchanged.
func asciiLower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

// sanitize makes text safe for one log line or header: no control
// characters, bounded length.
func sanitize(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) { // C0, DEL and C1 (U+0085 is a line break)
			return ' '
		}
		return r
	}, strings.TrimSpace(s))
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") // drop a character cut in half
	}
	return s
}

// TokenError means no access token could be had from the token endpoint.
type TokenError struct {
	// StatusCode is the token endpoint's HTTP status, 0 when it was not
	// reached.
	StatusCode int
	// ErrorCode and Reason are the endpoint's "error" and "reason" (Zoom)
	// or "error_description" (RFC 6749).
	ErrorCode string
	Reason    string
	// Err is the underlying error.
	Err error
}

func (e *TokenError) Error() string {
	if e.StatusCode == 0 {
		if e.Err == nil {
			return "zoom: fetch token: failed"
		}
		return "zoom: fetch token: " + e.Err.Error()
	}
	s := fmt.Sprintf("zoom: fetch token: http %d", e.StatusCode)
	if e.ErrorCode != "" {
		s += " " + e.ErrorCode
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

func (e *TokenError) Unwrap() error { return e.Err }

// CredentialsRejected reports whether the token endpoint refused the
// credentials (as opposed to being unreachable or failing): Zoom answers
// 400 or 401 for a wrong client id, secret or account id.
func (e *TokenError) CredentialsRejected() bool {
	return e.StatusCode >= 400 && e.StatusCode < 500 && e.StatusCode != http.StatusTooManyRequests && e.StatusCode != http.StatusRequestTimeout
}

func newTokenError(err error) *TokenError {
	te := &TokenError{Err: transportError(err)}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.Response != nil {
			te.StatusCode = re.Response.StatusCode
		}
		te.ErrorCode = sanitize(re.ErrorCode, 100)
		te.Reason = sanitize(re.ErrorDescription, 300)
		var zb struct {
			Reason string `json:"reason"`
			Error  string `json:"error"`
		}
		if json.Unmarshal(re.Body, &zb) == nil {
			if te.Reason == "" {
				te.Reason = sanitize(zb.Reason, 300)
			}
			if te.ErrorCode == "" {
				te.ErrorCode = sanitize(zb.Error, 100)
			}
		}
		// Drop the raw error: its text embeds the whole response body.
		te.Err = errors.New("token endpoint refused the request")
		if te.StatusCode == 0 {
			te.Err = errors.New(sanitize(re.Error(), 300))
		}
	}
	return te
}
