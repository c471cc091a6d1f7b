package provision

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/retry"
	"github.com/zoomprov/consumer/internal/zoom"
)

func TestClassify(t *testing.T) {
	background := context.Background()
	cancelled, cancel := context.WithCancel(background)
	cancel()
	// A per-message time-out that ran out: the attempt failed, shutdown
	// did not cut it short.
	expired, cancelExpired := context.WithDeadline(background, time.Now().Add(-time.Second))
	t.Cleanup(cancelExpired)
	// A message time-out under a cancelled service context: shutdown.
	expiredChildOfCancelled, cancelChild := context.WithTimeout(cancelled, time.Hour)
	t.Cleanup(cancelChild)

	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	api := func(status, code int) error {
		return &zoom.APIError{Op: "create user", StatusCode: status, Code: code, Message: "message"}
	}

	tests := []struct {
		name       string
		ctx        context.Context
		err        error
		lifecycle  bool // a lifecycle operation's attempt, not a creation's
		wantKind   retry.Kind
		wantReason messages.Reason
	}{
		{name: "nil", err: nil, wantKind: retry.Succeeded},
		{name: "nil with cancelled ctx", ctx: cancelled, err: nil, wantKind: retry.Succeeded},

		{name: "cancelled ctx, context error", ctx: cancelled, err: context.Canceled, wantKind: retry.Interrupted},
		{name: "cancelled ctx, 400", ctx: cancelled, err: api(400, 300), wantKind: retry.Interrupted},
		{name: "cancelled ctx, 429", ctx: cancelled, err: api(429, 0), wantKind: retry.Interrupted},
		{name: "cancelled ctx, token rejected", ctx: cancelled, err: &zoom.TokenError{StatusCode: 401, Err: errors.New("refused")}, wantKind: retry.Interrupted},
		{name: "cancelled parent of a message time-out", ctx: expiredChildOfCancelled, err: context.Canceled, wantKind: retry.Interrupted},
		{name: "expired deadline, deadline error", ctx: expired, err: fmt.Errorf("zoom: create user: %w", context.DeadlineExceeded), wantKind: retry.Transient},
		{name: "expired deadline, 400", ctx: expired, err: api(400, 300), wantKind: retry.Rejected, wantReason: messages.ReasonZoomRejected},
		{name: "expired deadline, 503", ctx: expired, err: api(503, 0), wantKind: retry.Transient},

		{name: "token 400", err: &zoom.TokenError{StatusCode: 400, ErrorCode: "invalid_request", Reason: "Invalid account_id", Err: errors.New("refused")}, wantKind: retry.AccountProblem},
		{name: "token 401", err: &zoom.TokenError{StatusCode: 401, ErrorCode: "invalid_client", Reason: "Invalid client_id or client_secret", Err: errors.New("refused")}, wantKind: retry.AccountProblem},
		{name: "token 503", err: &zoom.TokenError{StatusCode: 503, Err: errors.New("refused")}, wantKind: retry.Transient},
		{name: "token 429", err: &zoom.TokenError{StatusCode: 429, Err: errors.New("refused")}, wantKind: retry.RateLimited},
		{name: "token not reached", err: &zoom.TokenError{Err: refused}, wantKind: retry.Transient},

		{name: "429", err: api(429, 0), wantKind: retry.RateLimited},
		{name: "429 with code", err: api(429, 429), wantKind: retry.RateLimited},
		{name: "429 with an account code", err: api(429, 200), wantKind: retry.RateLimited},
		{name: "401", err: api(401, 124), wantKind: retry.AccountProblem},
		{name: "403", err: api(403, 0), wantKind: retry.AccountProblem},
		{name: "408", err: api(408, 0), wantKind: retry.Transient},
		{name: "500", err: api(500, 0), wantKind: retry.Transient},
		{name: "502", err: api(502, 0), wantKind: retry.Transient},
		{name: "503", err: api(503, 0), wantKind: retry.Transient},
		{name: "504", err: api(504, 0), wantKind: retry.Transient},
		{name: "400 validation failed", err: api(400, 300), wantKind: retry.Rejected, wantReason: messages.ReasonZoomRejected},
		{name: "400 1009", err: api(400, 1009), wantKind: retry.Rejected, wantReason: messages.ReasonZoomRejected},
		{name: "400 2034", err: api(400, 2034), wantKind: retry.Rejected, wantReason: messages.ReasonZoomRejected},
		{name: "400 no code", err: api(400, 0), wantKind: retry.Rejected, wantReason: messages.ReasonZoomRejected},
		{name: "400 no privilege", err: api(400, 200), wantKind: retry.AccountProblem},
		{name: "400 invalid token", err: api(400, 124), wantKind: retry.AccountProblem},
		{name: "400 scope 4700", err: api(400, 4700), wantKind: retry.AccountProblem},
		{name: "400 scope 4711", err: api(400, 4711), wantKind: retry.AccountProblem},
		{name: "404 4130", err: api(404, 4130), wantKind: retry.NotFound, wantReason: messages.ReasonNotFound},
		{name: "404 1102", err: api(404, 1102), wantKind: retry.NotFound, wantReason: messages.ReasonNotFound},
		{name: "404 no code", err: api(404, 0), wantKind: retry.NotFound, wantReason: messages.ReasonNotFound},
		{name: "405", err: api(405, 0), wantKind: retry.Rejected, wantReason: messages.ReasonZoomRejected},
		{name: "413", err: api(413, 0), wantKind: retry.Rejected, wantReason: messages.ReasonZoomRejected},
		{name: "422", err: api(422, 0), wantKind: retry.Rejected, wantReason: messages.ReasonZoomRejected},

		{name: "deadline exceeded", err: context.DeadlineExceeded, wantKind: retry.Transient},
		// Code 200 is the app's missing privilege on creation, but a
		// refusal about the user on a status change or delete.
		{name: "400 code 200 on a status change", err: api(400, 200), lifecycle: true, wantKind: retry.Rejected, wantReason: messages.ReasonZoomRejected},
		{name: "400 code 4711 on a status change", err: api(400, 4711), lifecycle: true, wantKind: retry.AccountProblem},
		{name: "404 on an update", err: api(404, 1001), lifecycle: true, wantKind: retry.NotFound, wantReason: messages.ReasonNotFound},
		{name: "409 other than 1005", err: api(409, 3001), wantKind: retry.Rejected, wantReason: messages.ReasonZoomRejected},
		{name: "connection refused", err: fmt.Errorf("zoom: create user: %w", refused), wantKind: retry.Transient},
		{name: "unexpected eof", err: io.ErrUnexpectedEOF, wantKind: retry.Transient},
		{name: "plain error", err: errors.New("zoom: get user: empty id"), wantKind: retry.Transient},
	}
	for _, tc := range tests {
		ctx := tc.ctx
		if ctx == nil {
			ctx = background
		}
		t.Run(tc.name, func(t *testing.T) {
			kind, reason := classify(ctx, tc.err, tc.lifecycle)
			if kind != tc.wantKind || reason != tc.wantReason {
				t.Errorf("classify(%v) = %v, %q; want %v, %q", tc.err, kind, reason, tc.wantKind, tc.wantReason)
			}
		})
		if tc.err == nil {
			continue
		}
		// Wrapping must not change anything: errors.As, never the text.
		t.Run(tc.name+" wrapped", func(t *testing.T) {
			err := fmt.Errorf("provision: attempt 2: %w", tc.err)
			kind, reason := classify(ctx, err, tc.lifecycle)
			if kind != tc.wantKind || reason != tc.wantReason {
				t.Errorf("classify(%v) = %v, %q; want %v, %q", err, kind, reason, tc.wantKind, tc.wantReason)
			}
		})
	}
}

// Ensure every code listed as an account problem classifies as one, so the
// table and the comment on accountCodes cannot drift apart silently.
func TestClassifyAccountCodes(t *testing.T) {
	want := []int{124, 200, 4700, 4711}
	if len(accountCodes) != len(want) {
		t.Errorf("len(accountCodes) = %d; want %d", len(accountCodes), len(want))
	}
	for _, code := range want {
		err := &zoom.APIError{StatusCode: 400, Code: code}
		if kind, _ := classify(context.Background(), err, false); kind != retry.AccountProblem {
			t.Errorf("classify(%v) = %v; want %v", err, kind, retry.AccountProblem)
		}
	}
}

func TestMaskEmails(t *testing.T) {
	tests := []struct {
		name string
		s    string
		want string
	}{
		{name: "zoom message", s: "User already in the account: alice@example.com", want: "User already in the account: a***@example.com"},
		{name: "two addresses", s: "alice@example.com and bob.smith+tag@example.org", want: "a***@example.com and b***@example.org"},
		{name: "quoted", s: `user "carol@example.com" exists`, want: `user "c***@example.com" exists`},
		{name: "in parentheses", s: "invited (dave@example.com), pending", want: "invited (d***@example.com), pending"},
		{name: "in angle brackets", s: "From: Erin <erin@example.com>", want: "From: Erin <e***@example.com>"},
		{name: "wrapped error", s: "zoom: create user: http 409 code 1005: User already in the account: frank@example.com", want: "zoom: create user: http 409 code 1005: User already in the account: f***@example.com"},
		{name: "no address", s: "zoom: create user: http 503: empty response body", want: "zoom: create user: http 503: empty response body"},
		{name: "empty", s: "", want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := maskEmails(tc.s); got != tc.want {
				t.Errorf("maskEmails(%q) = %q; want %q", tc.s, got, tc.want)
			}
		})
	}
}

func TestRedactedError(t *testing.T) {
	err := fmt.Errorf("provision: attempt: %w", &zoom.APIError{Op: "create user", StatusCode: 409, Code: 1005, Message: "User already in the account: alice@example.com"})
	tests := []struct {
		name string
		full bool
		want string
	}{
		{name: "masked", full: false, want: "provision: attempt: zoom: create user: http 409 code 1005: User already in the account: a***@example.com"},
		{name: "full", full: true, want: "provision: attempt: zoom: create user: http 409 code 1005: User already in the account: alice@example.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := redactedError{err: err, full: tc.full}
			if got := r.Error(); got != tc.want {
				t.Errorf("redactedError{%v, full: %v}.Error() = %q; want %q", err, tc.full, got, tc.want)
			}
		})
	}
}
