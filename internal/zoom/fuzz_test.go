package zoom

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// The seed corpora of these targets live in testdata/fuzz/<target>: Zoom's
// RFC 3339 Retry-After, "unlimited" limits, Cloudflare HTML pages, empty
// bodies, codes as strings. Run one for longer with, e.g.,
//
//	go test -run '^$' -fuzz '^FuzzAPIErrorFromResponse$' -fuzztime 3m ./internal/zoom

// maxMessageBytes bounds APIError.Message: sanitize cuts Zoom's JSON
// message at 1024 bytes, and a summary of a non-JSON body must be shorter.
const maxMessageBytes = 1024

// fuzzNow turns a fuzzed number into a plausible clock reading (1970 to
// 2242), so that adding a delay to it cannot overflow.
func fuzzNow(sec int64) time.Time {
	if sec < 0 {
		sec = -(sec + 1)
	}
	return time.Unix(sec%(1<<33), 0).UTC()
}

// isDelta reports whether v is what ParseRetryAfter reads as a number of
// seconds or a Unix time: a non-negative decimal integer (a sign allowed).
func isDelta(v string) (int64, bool) {
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil && n >= 0
}

func FuzzParseRetryAfter(f *testing.F) {
	f.Add("2026-03-11T00:00:00Z", int64(1773151200))
	f.Add("1", int64(1773151200))
	f.Fuzz(func(t *testing.T, v string, sec int64) {
		now := fuzzNow(sec)
		got := ParseRetryAfter(v, now)
		if !got.IsZero() && got.Location() != time.UTC {
			t.Fatalf("ParseRetryAfter(%q, %v) = %v; want UTC", v, now, got)
		}
		// Surrounding white space never matters.
		if again := ParseRetryAfter(" \t"+v+"\t ", now); !again.Equal(got) {
			t.Fatalf("ParseRetryAfter(%q) = %v, but %v with white space around it", v, again, got)
		}
		trimmed := strings.TrimSpace(v)
		n, delta := isDelta(trimmed)
		_, rfcErr := time.Parse(time.RFC3339, trimmed)
		_, httpErr := http.ParseTime(trimmed)
		switch {
		case trimmed == "":
			if !got.IsZero() {
				t.Fatalf("ParseRetryAfter(%q) = %v; want the zero time for a blank value", v, got)
			}
		case rfcErr == nil || httpErr == nil:
			// Absolute times do not depend on the clock.
			if other := ParseRetryAfter(v, now.Add(1234*time.Hour)); !other.Equal(got) || got.IsZero() {
				t.Fatalf("ParseRetryAfter(%q) = %v at %v but %v at another time; want the same absolute time", v, got, now, other)
			}
		case delta && n < 1_000_000_000:
			if want := now.Add(time.Duration(n) * time.Second); !got.Equal(want) {
				t.Fatalf("ParseRetryAfter(%q, %v) = %v; want now + %d s = %v", v, now, got, n, want)
			}
			if got.Before(now) {
				t.Fatalf("ParseRetryAfter(%q, %v) = %v; a delay must not point to the past", v, now, got)
			}
		case delta:
			if want := time.Unix(n, 0); !got.Equal(want) {
				t.Fatalf("ParseRetryAfter(%q) = %v; want the Unix time %v", v, got, want)
			}
		default:
			if !got.IsZero() {
				t.Fatalf("ParseRetryAfter(%q) = %v; want the zero time for an unreadable value", v, got)
			}
		}
	})
}

// validHeaderValue reports whether Go's HTTP client could have received v
// as a header value: no control characters but horizontal tab. Values the
// transport would never hand over are not worth fuzzing.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// checkText fails unless s is valid UTF-8 with no control characters and
// at most max bytes: what a log line or a NATS header can carry.
func checkText(t *testing.T, what, s string, max int) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Fatalf("%s = %q; want valid UTF-8", what, s)
	}
	if i := strings.IndexFunc(s, unicode.IsControl); i >= 0 {
		t.Fatalf("%s = %q; want no control characters (found %q at %d)", what, s, s[i:i+utf8.RuneLen([]rune(s[i:])[0])], i)
	}
	if len(s) > max {
		t.Fatalf("%s is %d bytes; want at most %d", what, len(s), max)
	}
}

func FuzzAPIErrorFromResponse(f *testing.F) {
	f.Add(429, "2026-03-11T00:00:00Z", "Daily-limit", "1500", "0", "Heavy", "application/json;charset=UTF-8",
		[]byte(`{"code":429,"message":"You have exceeded the daily rate limit (1500) of user invite requests permitted for this account. You may resume these requests at GMT 00:00:00."}`), int64(1773151200))
	f.Add(502, "", "", "", "", "", "text/html", []byte("<html><head><title>502 Bad Gateway</title></head></html>"), int64(1773151200))
	f.Fuzz(func(t *testing.T, status int, retryAfter, rlType, rlLimit, rlRemaining, rlCategory, contentType string, body []byte, sec int64) {
		if status < 100 || status > 599 {
			status = 100 + abs(status%500)
		}
		header := http.Header{}
		for name, v := range map[string]string{
			HeaderRetryAfter: retryAfter, HeaderRateLimitType: rlType, HeaderRateLimitLimit: rlLimit,
			HeaderRateLimitRemaining: rlRemaining, HeaderRateLimitCategory: rlCategory, "Content-Type": contentType,
		} {
			if !validHeaderValue(v) {
				t.Skip("header value the HTTP client would refuse")
			}
			if v != "" {
				header.Set(name, v)
			}
		}
		now := fuzzNow(sec)
		res := &http.Response{StatusCode: status, Header: header, Body: io.NopCloser(bytes.NewReader(body))}
		e := newAPIError("create user", res, body, now)

		if e.StatusCode != status || e.Op != "create user" {
			t.Fatalf("newAPIError(%d) = {Op: %q, StatusCode: %d}; want {create user, %d}", status, e.Op, e.StatusCode, status)
		}
		checkText(t, "Message", e.Message, maxMessageBytes)
		if !utf8.ValidString(e.Error()) || !strings.HasPrefix(e.Error(), "zoom: create user: http "+strconv.Itoa(status)) {
			t.Fatalf("Error() = %q; want valid UTF-8 starting with the op and status", e.Error())
		}
		if !e.RetryAfter.Equal(ParseRetryAfter(retryAfter, now)) {
			t.Fatalf("RetryAfter = %v; want ParseRetryAfter(%q) = %v", e.RetryAfter, retryAfter, ParseRetryAfter(retryAfter, now))
		}
		for name, got := range map[string]int{HeaderRateLimitLimit: e.RateLimit.Limit, HeaderRateLimitRemaining: e.RateLimit.Remaining} {
			if n, err := strconv.Atoi(strings.TrimSpace(header.Get(name))); (err == nil && got != n) || (err != nil && got != -1) {
				t.Fatalf("%s %q read as %d; want the number, or -1 when it is not one", name, header.Get(name), got)
			}
		}

		// Limit and ResetAt must agree with each other and with the
		// documented fallbacks, whatever the headers and body said.
		limit := e.Limit()
		if status != http.StatusTooManyRequests && limit != LimitUnknown {
			t.Fatalf("Limit() = %q for http %d; want unknown for anything but 429", limit, status)
		}
		switch reset := e.ResetAt(now); {
		case !e.RetryAfter.IsZero() && !e.RetryAfter.After(now.Add(25*time.Hour)):
			if !reset.Equal(e.RetryAfter) {
				t.Fatalf("ResetAt = %v; want Retry-After %v", reset, e.RetryAfter)
			}
		case limit == LimitDaily:
			if !reset.After(now) || reset.After(now.Add(24*time.Hour)) || !reset.Equal(NextUTCMidnight(now)) {
				t.Fatalf("ResetAt(%v) = %v for a daily limit without Retry-After; want the next 00:00 UTC", now, reset)
			}
		default:
			if !reset.IsZero() {
				t.Fatalf("ResetAt = %v for limit %q without Retry-After; want zero (unknown)", reset, limit)
			}
		}
		if e.StatusCode != status {
			t.Fatalf("StatusCode = %d for http %d", e.StatusCode, status)
		}

		// The same answer through the client: a non-201 is an *APIError
		// with the same fields, a 201 is a user or, when unreadable, a
		// retryable 502.
		checkThroughClient(t, status, header, body, now, e)
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// roundTripFunc answers requests without a network.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Credentials of the fuzzed clients: the secret must never show in an
// error.
const (
	fuzzClientID     = "fuzz-client-id"
	fuzzClientSecret = "fz-SECRET-0d9c1b7e4a5f6e2d"
)

func newFuzzClient(t *testing.T, now time.Time, rt roundTripFunc) *Client {
	t.Helper()
	c, err := New(Config{
		AccountID: "fuzz-account", ClientID: fuzzClientID, ClientSecret: fuzzClientSecret,
		BaseURL: "https://api.zoom.invalid/v2", TokenURL: "https://zoom.invalid/oauth/token",
		HTTPClient: &http.Client{Transport: rt},
		Now:        func() time.Time { return now },
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func checkThroughClient(t *testing.T, status int, header http.Header, body []byte, now time.Time, direct *APIError) {
	t.Helper()
	if status >= 300 && status < 400 {
		return // http.Client would follow a redirect; not what Zoom does to this call
	}
	const token = "fz-access-token-77aa"
	c := newFuzzClient(t, now, func(r *http.Request) (*http.Response, error) {
		if r.URL.Path == "/oauth/token" {
			return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Request: r,
				Body: io.NopCloser(strings.NewReader(`{"access_token":"` + token + `","token_type":"bearer","expires_in":3599}`))}, nil
		}
		return &http.Response{StatusCode: status, Header: header.Clone(), Request: r, Body: io.NopCloser(bytes.NewReader(body))}, nil
	})
	res, err := c.CreateUser(context.Background(), CreateUserRequest{Action: "ssoCreate", UserInfo: json.RawMessage(`{"email":"a@example.com","type":1}`)})
	var apiErr *APIError
	switch {
	case err == nil:
		if status != http.StatusCreated {
			t.Fatalf("CreateUser with http %d = %+v, nil; want an error", status, res)
		}
	case !errors.As(err, &apiErr):
		t.Fatalf("CreateUser with http %d error = %T %v; want *APIError", status, err, err)
	case status == http.StatusCreated:
		if apiErr.StatusCode != http.StatusBadGateway {
			t.Fatalf("CreateUser with an unreadable 201 = %v; want a retryable 502", err)
		}
		checkText(t, "unreadable 201 Message", apiErr.Message, maxMessageBytes)
	default:
		if apiErr.StatusCode != direct.StatusCode || apiErr.Code != direct.Code || apiErr.Message != direct.Message {
			t.Fatalf("CreateUser error = %v; want the same as newAPIError: %v", err, direct)
		}
	}
	if err != nil {
		for _, leak := range []string{fuzzClientSecret, token, "Bearer ", "Basic "} {
			if strings.Contains(err.Error(), leak) {
				t.Fatalf("CreateUser error %q contains %q", err, leak)
			}
		}
	}
}

func FuzzTokenError(f *testing.F) {
	f.Add(400, "application/json;charset=UTF-8", []byte(`{"reason":"Invalid client_id or client_secret","error":"invalid_client"}`))
	f.Add(503, "text/html", []byte("<html><title>Service Unavailable</title></html>"))
	f.Fuzz(func(t *testing.T, status int, contentType string, body []byte) {
		if status < 100 || status > 599 {
			status = 100 + abs(status%500)
		}
		if status >= 300 && status < 400 {
			t.Skip("http.Client would follow a redirect")
		}
		if !validHeaderValue(contentType) {
			t.Skip("header value the HTTP client would refuse")
		}
		now := time.Date(2026, 3, 10, 14, 0, 0, 0, time.UTC)
		var sentAuth string
		c := newFuzzClient(t, now, func(r *http.Request) (*http.Response, error) {
			sentAuth = r.Header.Get("Authorization")
			h := http.Header{}
			if contentType != "" {
				h.Set("Content-Type", contentType)
			}
			return &http.Response{StatusCode: status, Header: h, Request: r, Body: io.NopCloser(bytes.NewReader(body))}, nil
		})
		err := c.TokenValid(context.Background())
		if err == nil {
			if status < 200 || status > 299 {
				t.Fatalf("TokenValid with http %d = nil; want an error", status)
			}
			return
		}
		var te *TokenError
		if !errors.As(err, &te) {
			t.Fatalf("TokenValid error = %T %v; want *TokenError", err, err)
		}
		if status < 200 || status > 299 {
			if te.StatusCode != status {
				t.Fatalf("TokenError.StatusCode = %d; want %d", te.StatusCode, status)
			}
		}
		if te.CredentialsRejected() != (te.StatusCode >= 400 && te.StatusCode < 500 && te.StatusCode != 408 && te.StatusCode != 429) {
			t.Fatalf("CredentialsRejected() = %v for http %d", te.CredentialsRejected(), te.StatusCode)
		}
		checkText(t, "TokenError.ErrorCode", te.ErrorCode, 100)
		checkText(t, "TokenError.Reason", te.Reason, 300)
		msg := err.Error()
		if !utf8.ValidString(msg) || strings.ContainsAny(msg, "\r\n") {
			t.Fatalf("TokenError.Error() = %q; want one line of valid UTF-8", msg)
		}
		if len(msg) > 600 {
			t.Fatalf("TokenError.Error() is %d bytes; want a short line", len(msg))
		}
		basic := strings.TrimPrefix(sentAuth, "Basic ")
		if basic == sentAuth || basic == "" {
			t.Fatalf("token request Authorization = %q; want Basic credentials", sentAuth)
		}
		for _, leak := range []string{fuzzClientSecret, basic, "Basic ", base64.StdEncoding.EncodeToString([]byte(fuzzClientSecret))} {
			if strings.Contains(msg, leak) {
				t.Fatalf("TokenError.Error() = %q; want no %q", msg, leak)
			}
		}
		// The raw body never comes back whole, only the fields read from it.
		if len(body) >= 16 && strings.Contains(msg, string(body)) && !json.Valid(body) {
			t.Fatalf("TokenError.Error() = %q; want the body %q not copied", msg, body)
		}
	})
}

// Ensure a Retry-After no Zoom limit can mean (a Unix time in
// milliseconds from a proxy, a delay of years) neither parks a request nor
// closes a quota gate for centuries: Zoom's limits reset within a day. The
// reset must also be encodable as JSON, because quota gates are shared as
// JSON in the quota bucket.
func TestResetAtImplausibleRetryAfter(t *testing.T) {
	tests := []struct {
		name, retryAfter, limitType string
	}{
		{name: "unix milliseconds, daily", retryAfter: "1773187200000", limitType: "Daily-limit"},
		{name: "unix milliseconds, per second", retryAfter: "1773187200000", limitType: "QPS"},
		{name: "delay of three years", retryAfter: "99999999", limitType: "QPS"},
		{name: "year 9999", retryAfter: "9999-12-31T23:59:59Z", limitType: "Daily-limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, body := recorded(t, 429, map[string]string{
				"Content-Type": "application/json", HeaderRetryAfter: tc.retryAfter, HeaderRateLimitType: tc.limitType,
			}, `{"code":429,"message":"`+dailyLimitText+`"}`)
			reset := newAPIError("create user", res, body, now).ResetAt(now)
			if reset.After(now.Add(25 * time.Hour)) {
				t.Errorf("ResetAt with Retry-After %q = %v; want at most a day after %v", tc.retryAfter, reset, now)
			}
			if _, err := json.Marshal(reset); err != nil {
				t.Errorf("json.Marshal(ResetAt with Retry-After %q) error = %v", tc.retryAfter, err)
			}
		})
	}
}

// Ensure Zoom's per-field errors cannot make Error() a multi-line or
// unbounded string: it goes into log lines and the hold reason shown by
// /readyz.
func TestAPIErrorFieldErrorsBounded(t *testing.T) {
	var fields []string
	for range 5000 {
		fields = append(fields, `{"field":"user_info.email\r\nX-Injected: 1","message":"Invalid\nfield."}`)
	}
	res, body := recorded(t, 400, map[string]string{"Content-Type": "application/json"},
		`{"code":300,"message":"Validation Failed.","errors":[`+strings.Join(fields, ",")+`]}`)
	msg := newAPIError("create user", res, body, now).Error()
	if strings.ContainsFunc(msg, unicode.IsControl) || len(msg) > 4096 {
		t.Errorf("Error() is %d bytes, control characters: %v; want one line of at most 4 KiB", len(msg), strings.ContainsFunc(msg, unicode.IsControl))
	}
}
