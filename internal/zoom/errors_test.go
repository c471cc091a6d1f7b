package zoom

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/oauth2"
)

// now is a fixed instant for every test: nothing here reads the clock.
var now = time.Date(2026, 3, 10, 14, 0, 0, 0, time.UTC)

const (
	dailyLimitText     = "You have exceeded the daily rate limit (1500) of user invite requests permitted for this account. You may resume these requests at GMT 00:00:00."
	perSecondLimitText = "You have reached the maximum per-second rate limit for this API. Try again later."
)

func TestParseRetryAfter(t *testing.T) {
	tests := []struct {
		name string
		v    string
		now  time.Time
		want time.Time
	}{
		{name: "rfc3339 utc", v: "2026-03-11T00:00:00Z", want: time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)},
		{name: "rfc3339 offset", v: "2026-03-11T01:00:00+01:00", want: time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)},
		{name: "rfc3339 negative offset", v: "2026-03-10T19:00:00-05:00", want: time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)},
		{name: "rfc3339 fraction", v: "2026-03-11T00:00:00.5Z", want: time.Date(2026, 3, 11, 0, 0, 0, 5e8, time.UTC)},
		{name: "http date", v: "Wed, 11 Mar 2026 00:00:00 GMT", want: time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)},
		{name: "delta zero", v: "0", want: now},
		{name: "delta 30", v: "30", want: now.Add(30 * time.Second)},
		{name: "delta with spaces", v: "  30\t", want: now.Add(30 * time.Second)},
		{name: "delta from non-utc now", v: "30", now: now.In(time.FixedZone("EST", -5*3600)), want: now.Add(30 * time.Second)},
		{name: "delta below the unix cut-off", v: "999999999", want: now.Add(999999999 * time.Second)},
		{name: "unix timestamp", v: "1767225600", want: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{name: "negative", v: "-5", want: time.Time{}},
		{name: "fractional seconds", v: "1.5", want: time.Time{}},
		{name: "garbage", v: "soon", want: time.Time{}},
		{name: "empty", v: "", want: time.Time{}},
		{name: "whitespace", v: " \t ", want: time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.now
			if n.IsZero() {
				n = now
			}
			got := ParseRetryAfter(tc.v, n)
			if !got.Equal(tc.want) || got.Location() != time.UTC {
				t.Errorf("ParseRetryAfter(%q, %v) = %v; want %v in UTC", tc.v, n, got, tc.want)
			}
		})
	}
}

func TestAPIErrorLimit(t *testing.T) {
	tests := []struct {
		name string
		err  *APIError
		want LimitType
	}{
		{name: "header QPS", err: &APIError{StatusCode: 429, RateLimit: RateLimit{Type: "QPS"}}, want: LimitPerSecond},
		{name: "header Daily-limit", err: &APIError{StatusCode: 429, RateLimit: RateLimit{Type: "Daily-limit"}}, want: LimitDaily},
		{name: "header lower case", err: &APIError{StatusCode: 429, RateLimit: RateLimit{Type: "daily-limit"}}, want: LimitDaily},
		{name: "header wins over text", err: &APIError{StatusCode: 429, Message: dailyLimitText, RateLimit: RateLimit{Type: "QPS"}}, want: LimitPerSecond},
		{name: "no header daily text", err: &APIError{StatusCode: 429, Message: dailyLimitText}, want: LimitDaily},
		{name: "no header per-second text", err: &APIError{StatusCode: 429, Message: perSecondLimitText}, want: LimitPerSecond},
		{name: "unknown header daily text", err: &APIError{StatusCode: 429, Message: dailyLimitText, RateLimit: RateLimit{Type: "Heavy"}}, want: LimitDaily},
		{name: "no header unknown text", err: &APIError{StatusCode: 429, Message: "Too many requests."}, want: LimitUnknown},
		{name: "concurrent requests for one user", err: &APIError{StatusCode: 429, Message: "Too many concurrent requests. A request to disassociate this user has already been made."}, want: LimitConcurrent},
		{name: "no header no text", err: &APIError{StatusCode: 429}, want: LimitUnknown},
		{name: "not a 429 with header", err: &APIError{StatusCode: 400, RateLimit: RateLimit{Type: "Daily-limit"}}, want: LimitUnknown},
		{name: "not a 429 with daily text", err: &APIError{StatusCode: 503, Message: dailyLimitText}, want: LimitUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Limit(); got != tc.want {
				t.Errorf("(%v).Limit() = %q; want %q", tc.err, got, tc.want)
			}
		})
	}
}

func TestAPIErrorResetAt(t *testing.T) {
	retryAfter := now.Add(90 * time.Second)
	tests := []struct {
		name string
		err  *APIError
		want time.Time
	}{
		{name: "retry-after wins over daily", err: &APIError{StatusCode: 429, Message: dailyLimitText, RetryAfter: retryAfter}, want: retryAfter},
		{name: "retry-after with per-second", err: &APIError{StatusCode: 429, Message: perSecondLimitText, RetryAfter: retryAfter}, want: retryAfter},
		{name: "daily without header", err: &APIError{StatusCode: 429, Message: dailyLimitText}, want: time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)},
		{name: "daily header without retry-after", err: &APIError{StatusCode: 429, RateLimit: RateLimit{Type: "Daily-limit"}}, want: time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)},
		{name: "per-second without header", err: &APIError{StatusCode: 429, Message: perSecondLimitText}, want: time.Time{}},
		{name: "unknown without header", err: &APIError{StatusCode: 429}, want: time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.ResetAt(now); !got.Equal(tc.want) {
				t.Errorf("(%v).ResetAt(%v) = %v; want %v", tc.err, now, got, tc.want)
			}
		})
	}
}

func TestNextUTCMidnight(t *testing.T) {
	est := time.FixedZone("EST", -5*3600)
	jst := time.FixedZone("JST", 9*3600)
	tests := []struct {
		name string
		now  time.Time
		want time.Time
	}{
		{name: "one second before", now: time.Date(2026, 3, 10, 23, 59, 59, 0, time.UTC), want: time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)},
		{name: "exactly midnight is the next day", now: time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), want: time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)},
		{name: "just after midnight", now: time.Date(2026, 3, 10, 0, 0, 0, 1, time.UTC), want: time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)},
		{name: "year end", now: time.Date(2026, 12, 31, 12, 0, 0, 0, time.UTC), want: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{name: "leap day", now: time.Date(2028, 2, 28, 18, 0, 0, 0, time.UTC), want: time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC)},
		// 23:30 EST on the 10th is 04:30 UTC on the 11th.
		{name: "west of utc", now: time.Date(2026, 3, 10, 23, 30, 0, 0, est), want: time.Date(2026, 3, 12, 0, 0, 0, 0, time.UTC)},
		// 00:30 JST on the 11th is 15:30 UTC on the 10th.
		{name: "east of utc", now: time.Date(2026, 3, 11, 0, 30, 0, 0, jst), want: time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := NextUTCMidnight(tc.now)
			if !got.Equal(tc.want) || got.Location() != time.UTC {
				t.Errorf("NextUTCMidnight(%v) = %v; want %v in UTC", tc.now, got, tc.want)
			}
		})
	}
}

// Ensure a wall-clock time (with a monotonic reading) gives a midnight
// within the next 24 hours.
func TestNextUTCMidnightWallClock(t *testing.T) {
	n := time.Now()
	got := NextUTCMidnight(n)
	if !got.After(n) || got.Sub(n) > 24*time.Hour || got.Hour() != 0 || got.Minute() != 0 || got.Second() != 0 || got.Nanosecond() != 0 {
		t.Errorf("NextUTCMidnight(%v) = %v; want the next 00:00 UTC", n, got)
	}
}

func TestAPIErrorError(t *testing.T) {
	tests := []struct {
		name string
		err  *APIError
		want string
	}{
		{name: "bare", err: &APIError{StatusCode: 502}, want: "zoom: http 502"},
		{name: "op", err: &APIError{Op: "create user", StatusCode: 502}, want: "zoom: create user: http 502"},
		{
			name: "code and message",
			err:  &APIError{Op: "create user", StatusCode: 409, Code: 1005, Message: "User already in the account: alice@example.com"},
			want: "zoom: create user: http 409 code 1005: User already in the account: alice@example.com",
		},
		{name: "message without code", err: &APIError{Op: "get user", StatusCode: 502, Message: "empty response body"}, want: "zoom: get user: http 502: empty response body"},
		{
			name: "one field",
			err:  &APIError{Op: "create user", StatusCode: 400, Code: 300, Message: "Validation Failed.", Fields: []FieldError{{Field: "user_info.email", Message: "Invalid field."}}},
			want: "zoom: create user: http 400 code 300: Validation Failed. (user_info.email: Invalid field.)",
		},
		{
			name: "two fields",
			err: &APIError{StatusCode: 400, Code: 300, Message: "Validation Failed.", Fields: []FieldError{
				{Field: "user_info.email", Message: "Invalid field."},
				{Field: "user_info.type", Message: "Invalid value."},
			}},
			want: "zoom: http 400 code 300: Validation Failed. (user_info.email: Invalid field.; user_info.type: Invalid value.)",
		},
		{name: "fields without message", err: &APIError{StatusCode: 400, Code: 300, Fields: []FieldError{{Field: "action", Message: "Invalid."}}}, want: "zoom: http 400 code 300 (action: Invalid.)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("(%#v).Error() = %q; want %q", tc.err, got, tc.want)
			}
		})
	}
}

func TestAPIErrorIs(t *testing.T) {
	exists := &APIError{Op: "create user", StatusCode: 409, Code: 1005, Message: "User already in the account"}
	tests := []struct {
		name   string
		err    error
		target error
		want   bool
	}{
		{name: "409 1005 is user exists", err: exists, target: ErrUserExists, want: true},
		{name: "409 other code is not user exists", err: &APIError{StatusCode: 409, Code: 1009}, target: ErrUserExists, want: false},
		{name: "409 no code is not user exists", err: &APIError{StatusCode: 409}, target: ErrUserExists, want: false},
		{name: "400 1005 is not user exists", err: &APIError{StatusCode: 400, Code: 1005}, target: ErrUserExists, want: false},
		{name: "wrapped user exists", err: fmt.Errorf("provision: attempt: %w", exists), target: ErrUserExists, want: true},
		{name: "joined user exists", err: errors.Join(io.EOF, exists), target: ErrUserExists, want: true},
		{name: "404 1001 is user not found", err: &APIError{StatusCode: 404, Code: 1001}, target: ErrUserNotFound, want: true},
		{name: "404 1102 is not user not found", err: &APIError{StatusCode: 404, Code: 1102}, target: ErrUserNotFound, want: false},
		{name: "429 no code is rate limited", err: &APIError{StatusCode: 429}, target: ErrRateLimited, want: true},
		{name: "429 any code is rate limited", err: &APIError{StatusCode: 429, Code: 429}, target: ErrRateLimited, want: true},
		{name: "wrapped 429 is rate limited", err: fmt.Errorf("x: %w", &APIError{StatusCode: 429, Code: 1234}), target: ErrRateLimited, want: true},
		{name: "503 is not rate limited", err: &APIError{StatusCode: 503}, target: ErrRateLimited, want: false},
		{name: "401 124 is unauthorized", err: &APIError{StatusCode: 401, Code: 124}, target: ErrUnauthorized, want: true},
		{name: "403 is not unauthorized", err: &APIError{StatusCode: 403, Code: 124}, target: ErrUnauthorized, want: false},
		{name: "other target type", err: exists, target: io.EOF, want: false},
		{name: "token error is not unauthorized", err: &TokenError{StatusCode: 401, Err: errors.New("refused")}, target: ErrUnauthorized, want: false},
		{name: "plain error is not user exists", err: errors.New("zoom: http 409 code 1005"), target: ErrUserExists, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := errors.Is(tc.err, tc.target); got != tc.want {
				t.Errorf("errors.Is(%v, %v) = %v; want %v", tc.err, tc.target, got, tc.want)
			}
		})
	}
}

// recorded builds the *http.Response and body the client would have read,
// through httptest.ResponseRecorder.
func recorded(t testing.TB, status int, header map[string]string, body string) (*http.Response, []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	for k, v := range header {
		rec.Header().Set(k, v)
	}
	rec.WriteHeader(status)
	if _, err := io.WriteString(rec, body); err != nil {
		t.Fatalf("write recorder: %v", err)
	}
	res := rec.Result()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read recorded body: %v", err)
	}
	return res, data
}

func TestNewAPIError(t *testing.T) {
	const jsonCT = "application/json;charset=UTF-8"
	gatewayPage := "<!DOCTYPE html>\n<html><head><TITLE>502 Bad Gateway</TITLE></head>\n<body><h1>502 Bad Gateway</h1><p>upstream 10.1.2.3 said no</p></body></html>"
	hugeMessage := strings.Repeat("x", 100_000)
	// Limit and Remaining are -1 when Zoom did not send them.
	noLimits := RateLimit{Limit: -1, Remaining: -1}
	tests := []struct {
		name   string
		status int
		header map[string]string
		body   string
		want   *APIError
	}{
		{
			name:   "zoom json with field errors",
			status: 400,
			header: map[string]string{"Content-Type": jsonCT, HeaderTrackingID: "v=2.0;clid=us06;rid=WEB_abc"},
			body:   `{"code":300,"message":"Validation Failed.","errors":[{"field":"user_info.email","message":"Invalid field."}]}`,
			want: &APIError{Op: "create user", StatusCode: 400, Code: 300, Message: "Validation Failed.",
				Fields: []FieldError{{Field: "user_info.email", Message: "Invalid field."}}, TrackingID: "v=2.0;clid=us06;rid=WEB_abc", RateLimit: noLimits},
		},
		{
			name:   "user exists",
			status: 409,
			header: map[string]string{"Content-Type": jsonCT},
			body:   `{"code":1005,"message":"User already in the account: alice@example.com"}`,
			want:   &APIError{Op: "create user", StatusCode: 409, Code: 1005, Message: "User already in the account: alice@example.com", RateLimit: noLimits},
		},
		{
			name:   "code as a string",
			status: 409,
			header: map[string]string{"Content-Type": jsonCT},
			body:   `{"code":"1005","message":"User already in the account"}`,
			want:   &APIError{Op: "create user", StatusCode: 409, Code: 1005, Message: "User already in the account", RateLimit: noLimits},
		},
		{
			name:   "code not a number",
			status: 400,
			header: map[string]string{"Content-Type": jsonCT},
			body:   `{"code":"E_BAD","message":"Bad request"}`,
			want:   &APIError{Op: "create user", StatusCode: 400, Message: "Bad request", RateLimit: noLimits},
		},
		{
			name:   "daily limit with headers",
			status: 429,
			header: map[string]string{
				"Content-Type":           jsonCT,
				HeaderRetryAfter:         "2026-03-11T00:00:00Z",
				HeaderRateLimitType:      "Daily-limit",
				HeaderRateLimitCategory:  "Heavy",
				HeaderRateLimitLimit:     "1500",
				HeaderRateLimitRemaining: "0",
			},
			body: `{"code":429,"message":"` + dailyLimitText + `"}`,
			want: &APIError{Op: "create user", StatusCode: 429, Code: 429, Message: dailyLimitText,
				RetryAfter: time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC),
				RateLimit:  RateLimit{Type: "Daily-limit", Category: "Heavy", Limit: 1500, Remaining: 0}},
		},
		{
			name:   "per-second limit with delta retry-after",
			status: 429,
			header: map[string]string{"Content-Type": jsonCT, HeaderRetryAfter: "1", HeaderRateLimitType: "QPS", HeaderRateLimitLimit: "unlimited"},
			body:   `{"code":429,"message":"` + perSecondLimitText + `"}`,
			want: &APIError{Op: "create user", StatusCode: 429, Code: 429, Message: perSecondLimitText,
				RetryAfter: now.Add(time.Second), RateLimit: RateLimit{Type: "QPS", Limit: -1, Remaining: -1}},
		},
		{
			name:   "html gateway page",
			status: 502,
			header: map[string]string{"Content-Type": "text/html; charset=utf-8"},
			body:   gatewayPage,
			want: &APIError{Op: "create user", StatusCode: 502,
				Message: fmt.Sprintf("non-JSON response body (text/html, %d bytes): 502 Bad Gateway", len(gatewayPage)), RateLimit: noLimits},
		},
		{
			name:   "html title with control characters",
			status: 503,
			header: map[string]string{"Content-Type": "text/html"},
			body:   "<html><title>\n  Service\tUnavailable\n</title></html>",
			want:   &APIError{Op: "create user", StatusCode: 503, Message: "non-JSON response body (text/html, 51 bytes): Service Unavailable", RateLimit: noLimits},
		},
		{
			name:   "html without title",
			status: 504,
			header: map[string]string{"Content-Type": "text/html"},
			body:   "<html><body>Gateway Timeout</body></html>",
			want:   &APIError{Op: "create user", StatusCode: 504, Message: "non-JSON response body (text/html, 41 bytes)", RateLimit: noLimits},
		},
		{
			name:   "plain text without content type",
			status: 500,
			body:   "upstream connect error",
			want:   &APIError{Op: "create user", StatusCode: 500, Message: "non-JSON response body (unknown content type, 22 bytes)", RateLimit: noLimits},
		},
		{
			name:   "empty body",
			status: 503,
			header: map[string]string{"Content-Type": jsonCT},
			want:   &APIError{Op: "create user", StatusCode: 503, Message: "empty response body", RateLimit: noLimits},
		},
		{
			name:   "blank body",
			status: 502,
			body:   " \r\n ",
			want:   &APIError{Op: "create user", StatusCode: 502, Message: "empty response body", RateLimit: noLimits},
		},
		{
			name:   "huge json message is cut",
			status: 400,
			header: map[string]string{"Content-Type": jsonCT},
			body:   `{"code":300,"message":"` + hugeMessage + `"}`,
			want:   &APIError{Op: "create user", StatusCode: 400, Code: 300, Message: hugeMessage[:1024], RateLimit: noLimits},
		},
		{
			name:   "huge html page is summarised",
			status: 502,
			header: map[string]string{"Content-Type": "text/html"},
			body:   "<html><body>" + strings.Repeat("<p>error</p>", 80_000) + "</body></html>",
			want:   &APIError{Op: "create user", StatusCode: 502, Message: "non-JSON response body (text/html, 960026 bytes)", RateLimit: noLimits},
		},
		{
			name:   "huge html title is cut",
			status: 502,
			header: map[string]string{"Content-Type": "text/html"},
			body:   "<title>" + strings.Repeat("t", 5000) + "</title>",
			want:   &APIError{Op: "create user", StatusCode: 502, Message: "non-JSON response body (text/html, 5015 bytes): " + strings.Repeat("t", 200), RateLimit: noLimits},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, body := recorded(t, tc.status, tc.header, tc.body)
			got := newAPIError("create user", res, body, now)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("newAPIError(%q) = %#v; want %#v", truncateForLog(tc.body), got, tc.want)
			}
		})
	}
}

func truncateForLog(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}

// Ensure a gateway page's content never reaches the error beyond its
// title, and the error stays one short line.
func TestNewAPIErrorHTMLPageNotCopied(t *testing.T) {
	page := "<html><head><title>Access Denied</title></head><body><p>Reference #18.4f2c1 client 203.0.113.9 cookie=abc</p>" +
		strings.Repeat("<div>filler</div>", 10_000) + "</body></html>"
	res, body := recorded(t, 403, map[string]string{"Content-Type": "text/html"}, page)
	got := newAPIError("create user", res, body, now)
	msg := got.Error()
	if !strings.Contains(msg, "Access Denied") || strings.Contains(msg, "Reference") || strings.Contains(msg, "<") || strings.Contains(msg, "\n") || len(msg) > 200 {
		t.Errorf("newAPIError(403 html page).Error() = %q; want one short line naming the title %q and nothing else of the page", msg, "Access Denied")
	}
}

// Ensure every message newAPIError builds is valid UTF-8, even when a limit
// cuts the text in the middle of a character.
func TestNewAPIErrorValidUTF8(t *testing.T) {
	tests := []struct {
		name string
		ct   string
		body string
	}{
		{name: "json message cut in a character", ct: "application/json", body: `{"code":300,"message":"` + strings.Repeat("x", 1023) + "é" + `"}`},
		{name: "html title cut in a character", ct: "text/html", body: "<title>" + strings.Repeat("x", 199) + "€</title>"},
		{name: "invalid utf-8 in json message", ct: "application/json", body: "{\"code\":300,\"message\":\"caf\xe9\"}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, body := recorded(t, 400, map[string]string{"Content-Type": tc.ct}, tc.body)
			got := newAPIError("create user", res, body, now)
			if !utf8.ValidString(got.Message) {
				t.Errorf("newAPIError(%q).Message = %q; want valid UTF-8", truncateForLog(tc.body), got.Message)
			}
		})
	}
}

// Ensure an HTML page in a legacy encoding (bytes that are not UTF-8
// before the <title>) neither panics nor garbles the title. The title is
// found in a lower-cased copy of the body whose length differs from the
// body's when the body is not ASCII.
func TestNewAPIErrorNonUTF8Page(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{name: "latin-1 before the title", body: "<html><!-- \xe9t\xe9 --><title>Service Unavailable</title></html>"},
		{name: "many latin-1 bytes before the title", body: "\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9<title>Service Unavailable</title>"},
		// The title's index in the lower-cased copy lies beyond the end
		// of the body: slicing the body there panics.
		{name: "latin-1 page shorter than its lower-cased copy", body: strings.Repeat("\xe9", 40) + "<title>Service Unavailable</title>"},
		{name: "length-changing case before the title", body: "<html><!-- \u023a\u023a\u023a\u023a --><title>Service Unavailable</title></html>"},
		{name: "shrinking case before the title", body: "<html><!-- \u212a\u212a\u212a\u212a --><title>Service Unavailable</title></html>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, body := recorded(t, 503, map[string]string{"Content-Type": "text/html; charset=iso-8859-1"}, tc.body)
			var got *APIError
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("newAPIError(%q) panicked: %v", tc.body, r)
					}
				}()
				got = newAPIError("create user", res, body, now)
			}()
			if got == nil {
				return
			}
			if want := fmt.Sprintf("non-JSON response body (text/html, %d bytes): Service Unavailable", len(tc.body)); got.Message != want {
				t.Errorf("newAPIError(%q).Message = %q; want %q", tc.body, got.Message, want)
			}
		})
	}
}

func TestHeaderInt(t *testing.T) {
	tests := []struct {
		name  string
		value string
		set   bool
		want  int
	}{
		{name: "number", value: "1500", set: true, want: 1500},
		{name: "zero", value: "0", set: true, want: 0},
		{name: "spaces", value: " 42 ", set: true, want: 42},
		{name: "unlimited", value: "unlimited", set: true, want: -1},
		{name: "fraction", value: "1.5", set: true, want: -1},
		{name: "empty", value: "", set: true, want: -1},
		{name: "absent", want: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.set {
				h.Set(HeaderRateLimitLimit, tc.value)
			}
			if got := headerInt(h, HeaderRateLimitLimit); got != tc.want {
				t.Errorf("headerInt(%q) = %d; want %d", tc.value, got, tc.want)
			}
		})
	}
}

func TestTokenErrorError(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	tests := []struct {
		name string
		err  *TokenError
		want string
	}{
		{name: "not reached", err: &TokenError{Err: refused}, want: "zoom: fetch token: dial tcp: connection refused"},
		{name: "status only", err: &TokenError{StatusCode: 503, Err: errors.New("token endpoint refused the request")}, want: "zoom: fetch token: http 503"},
		{name: "error code", err: &TokenError{StatusCode: 400, ErrorCode: "invalid_request"}, want: "zoom: fetch token: http 400 invalid_request"},
		{name: "reason", err: &TokenError{StatusCode: 400, Reason: "Invalid account_id"}, want: "zoom: fetch token: http 400: Invalid account_id"},
		{
			name: "code and reason",
			err:  &TokenError{StatusCode: 401, ErrorCode: "invalid_client", Reason: "Invalid client_id or client_secret"},
			want: "zoom: fetch token: http 401 invalid_client: Invalid client_id or client_secret",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("(%#v).Error() = %q; want %q", tc.err, got, tc.want)
			}
		})
	}
}

func TestTokenErrorUnwrap(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	err := fmt.Errorf("readiness: %w", &TokenError{Err: refused})
	var opErr *net.OpError
	if !errors.As(err, &opErr) || opErr != refused {
		t.Errorf("errors.As(%v, *net.OpError) = %v; want the dial error", err, opErr)
	}
}

func TestTokenErrorCredentialsRejected(t *testing.T) {
	tests := []struct {
		status int
		want   bool
	}{
		{0, false},
		{200, false},
		{400, true},
		{401, true},
		{403, true},
		{404, true},
		{408, false},
		{429, false},
		{500, false},
		{503, false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			e := &TokenError{StatusCode: tc.status, Err: errors.New("x")}
			if got := e.CredentialsRejected(); got != tc.want {
				t.Errorf("TokenError{StatusCode: %d}.CredentialsRejected() = %v; want %v", tc.status, got, tc.want)
			}
		})
	}
}

// retrieveError builds the *oauth2.RetrieveError that x/oauth2 returns for
// a refused token request, with the Basic credentials on the request as the
// client sent them.
func retrieveError(status int, body, errorCode, clientSecret string) *oauth2.RetrieveError {
	req := &http.Request{Method: http.MethodPost, URL: &url.URL{Scheme: "https", Host: "zoom.us", Path: "/oauth/token"}, Header: http.Header{}}
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("client-id:"+clientSecret)))
	return &oauth2.RetrieveError{
		Response:  &http.Response{StatusCode: status, Status: fmt.Sprintf("%d %s", status, http.StatusText(status)), Request: req, Header: http.Header{"Content-Type": {"application/json"}}},
		Body:      []byte(body),
		ErrorCode: errorCode,
	}
}

func TestNewTokenErrorFromRetrieveError(t *testing.T) {
	const (
		secret   = "pQ7-very-secret-client-secret-Zx"
		zoomBody = `{"reason":"Invalid client_id or client_secret","error":"invalid_client"}`
	)
	tests := []struct {
		name string
		re   *oauth2.RetrieveError
		want TokenError // Err is not compared
	}{
		{
			// x/oauth2 fills ErrorCode from the JSON "error" field; Zoom's
			// "reason" is not RFC 6749's error_description.
			name: "zoom body as parsed by oauth2",
			re:   retrieveError(401, zoomBody, "invalid_client", secret),
			want: TokenError{StatusCode: 401, ErrorCode: "invalid_client", Reason: "Invalid client_id or client_secret"},
		},
		{
			name: "zoom body not parsed by oauth2",
			re:   retrieveError(400, zoomBody, "", secret),
			want: TokenError{StatusCode: 400, ErrorCode: "invalid_client", Reason: "Invalid client_id or client_secret"},
		},
		{
			name: "body echoing the secret",
			re:   retrieveError(401, `{"reason":"Invalid client_id or client_secret","error":"invalid_client","client_secret":"`+secret+`"}`, "invalid_client", secret),
			want: TokenError{StatusCode: 401, ErrorCode: "invalid_client", Reason: "Invalid client_id or client_secret"},
		},
		{
			name: "rfc 6749 description",
			re: func() *oauth2.RetrieveError {
				re := retrieveError(401, `{"error":"invalid_client","error_description":"Client authentication failed"}`, "invalid_client", secret)
				re.ErrorDescription = "Client authentication failed"
				return re
			}(),
			want: TokenError{StatusCode: 401, ErrorCode: "invalid_client", Reason: "Client authentication failed"},
		},
		{
			name: "html body",
			re:   retrieveError(503, "<html><title>Service Unavailable</title><p>"+secret+"</p></html>", "", secret),
			want: TokenError{StatusCode: 503},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			te := newTokenError(tc.re)
			if te.StatusCode != tc.want.StatusCode || te.ErrorCode != tc.want.ErrorCode || te.Reason != tc.want.Reason {
				t.Errorf("newTokenError(%q) = {StatusCode: %d, ErrorCode: %q, Reason: %q}; want {StatusCode: %d, ErrorCode: %q, Reason: %q}",
					tc.re.Body, te.StatusCode, te.ErrorCode, te.Reason, tc.want.StatusCode, tc.want.ErrorCode, tc.want.Reason)
			}
			// Neither the message nor anything it wraps may carry the raw
			// body or the credentials.
			for _, e := range []error{te, errors.Unwrap(te)} {
				msg := fmt.Sprintf("%v", e)
				for _, leak := range []string{string(tc.re.Body), secret, tc.re.Response.Request.Header.Get("Authorization"), "Response:"} {
					if strings.Contains(msg, leak) {
						t.Errorf("newTokenError(%q) gives error text %q; want it without %q", tc.re.Body, msg, leak)
					}
				}
			}
		})
	}
}

// Ensure a token fetch that never reached the endpoint keeps the network
// error (for errors.As) but not the URL, whose query could name the account.
func TestNewTokenErrorTransport(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	err := &url.Error{Op: "Post", URL: "https://zoom.us/oauth/token?account_id=acct-123", Err: refused}
	te := newTokenError(err)
	var opErr *net.OpError
	if te.StatusCode != 0 || te.CredentialsRejected() || !errors.As(te, &opErr) {
		t.Errorf("newTokenError(%v) = %#v; want status 0, not rejected, wrapping the *net.OpError", err, te)
	}
	if msg := te.Error(); strings.Contains(msg, "acct-123") || strings.Contains(msg, "zoom.us") {
		t.Errorf("newTokenError(%v).Error() = %q; want it without the URL", err, msg)
	}
}

// Ensure a RetrieveError without a response (x/oauth2 always sets one; the
// branch is defensive) still gives a TokenError that is not a credentials
// rejection.
func TestNewTokenErrorWithoutResponse(t *testing.T) {
	re := &oauth2.RetrieveError{ErrorCode: "server_error", ErrorDescription: "try later"}
	te := newTokenError(re)
	want := `zoom: fetch token: oauth2: "server_error" "try later"`
	if got := te.Error(); got != want || te.StatusCode != 0 || te.CredentialsRejected() {
		t.Errorf("newTokenError(%#v) = %q (status %d, rejected %v); want %q (status 0, not rejected)", re, got, te.StatusCode, te.CredentialsRejected(), want)
	}
}
