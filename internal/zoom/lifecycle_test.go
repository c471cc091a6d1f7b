package zoom_test

// The simulator has no PATCH, PUT or DELETE user routes yet, so these
// calls are tested against fakeZoom, which answers as Zoom documents.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zoomprov/consumer/internal/zoom"
)

// oddEmail needs escaping in a path segment; its escaped form is
// oddEmailPath.
const (
	oddEmail     = "a/b?c#d%e+f;g,h@example.com"
	oddEmailPath = "a%2Fb%3Fc%23d%25e+f%3Bg%2Ch@example.com"
)

func boolp(b bool) *bool { return &b }

// lifecycleCall is one call of the lifecycle API and the request it must
// make.
type lifecycleCall struct {
	name string
	op   string // APIError.Op
	call func(context.Context, *zoom.Client) (zoom.Response, error)
	// What fakeZoom must receive.
	method, path, query, body, contentType string
}

// profile is an update body json.Marshal would change (spaces, <, >, &):
// it must arrive byte for byte.
const profile = `{"first_name":"Zoë", "job_title":"R&D <lead>","custom_attributes":[{"key":"cbf","value":"x"}]}`

// lifecycleCalls are the calls every lifecycle test runs, one of each kind.
var lifecycleCalls = []lifecycleCall{
	{
		name: "update by email", op: "update user",
		call: func(ctx context.Context, c *zoom.Client) (zoom.Response, error) {
			return c.UpdateUser(ctx, oddEmail, json.RawMessage(profile))
		},
		method: http.MethodPatch, path: "/v2/users/" + oddEmailPath, body: profile, contentType: "application/json",
	},
	{
		name: "deactivate by email", op: "set user status",
		call: func(ctx context.Context, c *zoom.Client) (zoom.Response, error) {
			return c.SetUserStatus(ctx, oddEmail, zoom.StatusDeactivate)
		},
		method: http.MethodPut, path: "/v2/users/" + oddEmailPath + "/status", body: `{"action":"deactivate"}`, contentType: "application/json",
	},
	{
		name: "delete by email", op: "delete user",
		call: func(ctx context.Context, c *zoom.Client) (zoom.Response, error) {
			return c.DeleteUser(ctx, oddEmail, zoom.DeleteOptions{})
		},
		method: http.MethodDelete, path: "/v2/users/" + oddEmailPath, query: "action=disassociate",
	},
}

// checkRequest compares what fakeZoom received with what lc must send.
func checkRequest(t *testing.T, lc lifecycleCall, got fakeRequest, wantAuth string) {
	t.Helper()
	want := fakeRequest{Method: lc.method, Path: lc.path, Query: lc.query, Auth: wantAuth, ContentType: lc.contentType, Body: lc.body, Status: got.Status}
	if got != want {
		t.Errorf("%s sent %+v; want %+v", lc.name, got, want)
	}
}

// checkErrorText fails if the text of err, apart from Zoom's own message,
// names the user, the server or a secret.
func checkErrorText(t *testing.T, name string, err error) {
	t.Helper()
	msg := err.Error()
	var ae *zoom.APIError
	if errors.As(err, &ae) && ae.Message != "" {
		// Zoom's message is Zoom's: its 1001 text names the user.
		msg = strings.Replace(msg, ae.Message, "", 1)
	}
	for _, bad := range []string{"example.com", oddEmailPath, "127.0.0.1", "://", "/v2/users", "tok-", "Bearer", testSecret} {
		if strings.Contains(msg, bad) {
			t.Errorf("%s error %q contains %q", name, msg, bad)
		}
	}
}

// testSecret is the client secret fakeZoom accepts.
const testSecret = "sim-secret"

func TestLifecycleRequestShape(t *testing.T) {
	calls := append([]lifecycleCall(nil), lifecycleCalls...)
	calls = append(calls,
		lifecycleCall{
			name: "update by id", op: "update user",
			call: func(ctx context.Context, c *zoom.Client) (zoom.Response, error) {
				return c.UpdateUser(ctx, "KDcuGIm1QgePTO8WbOqwIQ", json.RawMessage(`{"type":2}`))
			},
			method: http.MethodPatch, path: "/v2/users/KDcuGIm1QgePTO8WbOqwIQ", body: `{"type":2}`, contentType: "application/json",
		},
		lifecycleCall{
			name: "activate", op: "set user status",
			call: func(ctx context.Context, c *zoom.Client) (zoom.Response, error) {
				return c.SetUserStatus(ctx, "KDcuGIm1QgePTO8WbOqwIQ", zoom.StatusActivate)
			},
			method: http.MethodPut, path: "/v2/users/KDcuGIm1QgePTO8WbOqwIQ/status", body: `{"action":"activate"}`, contentType: "application/json",
		},
		lifecycleCall{
			name: "disassociate explicitly", op: "delete user",
			call: func(ctx context.Context, c *zoom.Client) (zoom.Response, error) {
				return c.DeleteUser(ctx, "u1", zoom.DeleteOptions{Action: zoom.DeleteDisassociate})
			},
			method: http.MethodDelete, path: "/v2/users/u1", query: "action=disassociate",
		},
		lifecycleCall{
			name: "delete with every transfer", op: "delete user",
			call: func(ctx context.Context, c *zoom.Client) (zoom.Response, error) {
				return c.DeleteUser(ctx, "u1", zoom.DeleteOptions{
					Action: zoom.DeleteDelete, TransferEmail: "boss+x@example.com",
					TransferMeeting: boolp(true), TransferWebinar: boolp(false), TransferRecording: boolp(true),
					TransferWhiteboard: boolp(false), TransferClipfiles: boolp(true), TransferNotes: boolp(false),
					TransferDocs: boolp(true),
				})
			},
			method: http.MethodDelete, path: "/v2/users/u1",
			query: "action=delete&transfer_clipfiles=true&transfer_docs=true&transfer_email=boss%2Bx%40example.com" +
				"&transfer_meeting=true&transfer_notes=false&transfer_recording=true&transfer_webinar=false&transfer_whiteboard=false",
		},
		lifecycleCall{
			name: "delete with one false flag", op: "delete user",
			call: func(ctx context.Context, c *zoom.Client) (zoom.Response, error) {
				return c.DeleteUser(ctx, oddEmail, zoom.DeleteOptions{Action: zoom.DeleteDelete, TransferRecording: boolp(false)})
			},
			method: http.MethodDelete, path: "/v2/users/" + oddEmailPath, query: "action=delete&transfer_recording=false",
		},
	)
	rl := map[string]string{"X-RateLimit-Category": "Light", "X-RateLimit-Limit": "30", "X-RateLimit-Remaining": "29"}
	for _, lc := range calls {
		t.Run(lc.name, func(t *testing.T) {
			f := newFakeZoom(t, "3599", fakeAnswer{status: http.StatusNoContent, header: rl})
			c := f.client(t, newTestClock(time.Now()), nil)
			res, err := lc.call(context.Background(), c)
			if err != nil {
				t.Fatalf("%s error: %v", lc.name, err)
			}
			want := zoom.Response{
				StatusCode: http.StatusNoContent, TrackingID: fakeTrackingID,
				RateLimit: zoom.RateLimit{Category: "Light", Limit: 30, Remaining: 29},
			}
			if res != want {
				t.Errorf("%s = %+v; want %+v", lc.name, res, want)
			}
			reqs := f.requests()
			if len(reqs) != 1 {
				t.Fatalf("%s made %d requests; want 1", lc.name, len(reqs))
			}
			checkRequest(t, lc, reqs[0], "Bearer tok-1")
		})
	}
}

// TestLifecycleSuccess: any 2xx is success, with or without a body.
func TestLifecycleSuccess(t *testing.T) {
	answers := []struct {
		name string
		a    fakeAnswer
	}{
		{name: "204 no body", a: fakeAnswer{status: http.StatusNoContent}},
		{name: "200 empty body", a: fakeAnswer{status: http.StatusOK}},
		{name: "200 with a body", a: fakeAnswer{status: http.StatusOK, body: `{"status":"inactive"}`}},
		{name: "200 with a body that is not JSON", a: fakeAnswer{status: http.StatusOK, body: "OK"}},
		{name: "202", a: fakeAnswer{status: http.StatusAccepted}},
	}
	for _, lc := range lifecycleCalls {
		for _, ans := range answers {
			t.Run(lc.name+" "+ans.name, func(t *testing.T) {
				f := newFakeZoom(t, "3599", ans.a)
				c := f.client(t, newTestClock(time.Now()), nil)
				res, err := lc.call(context.Background(), c)
				if err != nil {
					t.Fatalf("%s answered %s: error %v; want success", lc.name, ans.name, err)
				}
				if res.StatusCode != ans.a.status || res.User != (zoom.User{}) || res.TrackingID != fakeTrackingID {
					t.Errorf("%s answered %s = %+v; want status %d, no user, tracking id %q", lc.name, ans.name, res, ans.a.status, fakeTrackingID)
				}
			})
		}
	}
}

func TestLifecycleAPIErrors(t *testing.T) {
	clockAt := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		a         fakeAnswer
		status    int
		code      int
		is        error // a sentinel the error must match, if not nil
		isNot     error // a sentinel it must not match, if not nil
		retryable bool
		limit     zoom.LimitType
		retryAt   time.Time
	}{
		{
			name:   "404 no such user",
			a:      fakeAnswer{status: 404, body: `{"code":1001,"message":"User does not exist: ` + oddEmail + `."}`},
			status: 404, code: 1001, is: zoom.ErrUserNotFound, isNot: zoom.ErrUserExists,
		},
		{
			name:   "400 validation",
			a:      fakeAnswer{status: 400, body: `{"code":300,"message":"Only one of type, plan_united_type and zoom_one_type can be changed."}`},
			status: 400, code: 300, isNot: zoom.ErrUserNotFound,
		},
		{
			name:   "400 managed domain",
			a:      fakeAnswer{status: 400, body: `{"code":1107,"message":"A managed domain user cannot be disassociated."}`},
			status: 400, code: 1107,
		},
		{
			name: "429 per second with headers",
			a: fakeAnswer{status: 429, body: `{"code":429,"message":"You have reached the maximum per-second rate limit for this API. Try again later."}`,
				header: map[string]string{"Retry-After": "2026-05-04T10:00:01Z", "X-RateLimit-Type": "QPS", "X-RateLimit-Category": "Light", "X-RateLimit-Limit": "30", "X-RateLimit-Remaining": "0"}},
			status: 429, code: 429, is: zoom.ErrRateLimited, retryable: true, limit: zoom.LimitPerSecond,
			retryAt: clockAt.Add(time.Second),
		},
		{
			name: "429 already requested, delta seconds",
			a: fakeAnswer{status: 429, body: `{"code":429,"message":"A request to disassociate this user has already been made."}`,
				header: map[string]string{"Retry-After": "30"}},
			status: 429, code: 429, is: zoom.ErrRateLimited, retryable: true, limit: zoom.LimitConcurrent, retryAt: clockAt.Add(30 * time.Second),
		},
		{
			name:   "500",
			a:      fakeAnswer{status: 500, body: `{"code":500,"message":"Internal Server Error"}`},
			status: 500, code: 500, retryable: true,
		},
		{
			name:   "403 scope",
			a:      fakeAnswer{status: 403, body: `{"code":4711,"message":"Invalid access token, does not contain scopes:[user:write:admin]."}`},
			status: 403, code: 4711,
		},
	}
	for _, lc := range lifecycleCalls {
		for _, tc := range tests {
			t.Run(lc.name+" "+tc.name, func(t *testing.T) {
				f := newFakeZoom(t, "3599", tc.a)
				c := f.client(t, newTestClock(clockAt), nil)
				_, err := lc.call(context.Background(), c)
				var ae *zoom.APIError
				if !errors.As(err, &ae) {
					t.Fatalf("%s answered %s: error %v; want *zoom.APIError", lc.name, tc.name, err)
				}
				if ae.Op != lc.op || ae.StatusCode != tc.status || ae.Code != tc.code || ae.TrackingID != fakeTrackingID {
					t.Errorf("%s error = op %q http %d code %d tracking %q; want %q http %d code %d tracking %q",
						lc.name, ae.Op, ae.StatusCode, ae.Code, ae.TrackingID, lc.op, tc.status, tc.code, fakeTrackingID)
				}
				if tc.is != nil && !errors.Is(err, tc.is) {
					t.Errorf("errors.Is(%v, %v) = false; want true", err, tc.is)
				}
				if tc.isNot != nil && errors.Is(err, tc.isNot) {
					t.Errorf("errors.Is(%v, %v) = true; want false", err, tc.isNot)
				}
				if got := transientStatus(ae.StatusCode); got != tc.retryable {
					t.Errorf("%s error Retryable() = %v; want %v", lc.name, got, tc.retryable)
				}
				if got := ae.Limit(); got != tc.limit {
					t.Errorf("%s error Limit() = %q; want %q", lc.name, got, tc.limit)
				}
				if !ae.RetryAfter.Equal(tc.retryAt) {
					t.Errorf("%s error RetryAfter = %v; want %v", lc.name, ae.RetryAfter, tc.retryAt)
				}
				checkErrorText(t, lc.name, err)
				if n := len(f.requests()); n != 1 {
					t.Errorf("%s made %d requests; want 1 (no retry inside the client)", lc.name, n)
				}
			})
		}
	}
}

// TestLifecycleUnauthorized: a 401 fetches one new token and retries the
// same request with it; a second 401 is returned.
func TestLifecycleUnauthorized(t *testing.T) {
	for _, lc := range lifecycleCalls {
		t.Run(lc.name+" recovers", func(t *testing.T) {
			f := newFakeZoom(t, "3599", fakeAnswer{status: http.StatusNoContent})
			lim := &countingLimiter{}
			c := f.client(t, newTestClock(time.Now()), func(cfg *zoom.Config) { cfg.Limiter = lim })
			f.then(fakeAnswer{revoke: true})
			res, err := lc.call(context.Background(), c)
			if err != nil || res.StatusCode != http.StatusNoContent {
				t.Fatalf("%s after a revoked token = %+v, %v; want 204", lc.name, res, err)
			}
			reqs := f.requests()
			if len(reqs) != 2 {
				t.Fatalf("%s made %d requests; want 2 (the refused one and its retry)", lc.name, len(reqs))
			}
			checkRequest(t, lc, reqs[0], "Bearer tok-1")
			checkRequest(t, lc, reqs[1], "Bearer tok-2")
			if reqs[0].Status != http.StatusUnauthorized || reqs[1].Status != http.StatusNoContent {
				t.Errorf("%s answers = %d, %d; want 401, 204", lc.name, reqs[0].Status, reqs[1].Status)
			}
			if got := f.tokens(); got != 2 {
				t.Errorf("tokens issued = %d; want 2 (one refresh)", got)
			}
			if got := lim.waits.Load(); got != 1 {
				t.Errorf("limiter waits = %d; want 1 (the retry is paced, the call is its caller's to pace)", got)
			}
		})
		t.Run(lc.name+" twice", func(t *testing.T) {
			f := newFakeZoom(t, "3599", fakeAnswer{revoke: true})
			c := f.client(t, newTestClock(time.Now()), nil)
			_, err := lc.call(context.Background(), c)
			if !errors.Is(err, zoom.ErrUnauthorized) {
				t.Fatalf("%s with every token refused = %v; want ErrUnauthorized", lc.name, err)
			}
			if got, n := f.tokens(), len(f.requests()); got != 2 || n != 2 {
				t.Errorf("tokens issued = %d, requests = %d; want 2 and 2 (exactly one refresh)", got, n)
			}
			checkErrorText(t, lc.name, err)
		})
	}
}

func TestLifecycleTransportError(t *testing.T) {
	for _, lc := range lifecycleCalls {
		t.Run(lc.name, func(t *testing.T) {
			// Every time: net/http retries an idempotent PUT or DELETE
			// once on a reused connection that died.
			f := newFakeZoom(t, "3599", fakeAnswer{drop: true})
			c := f.client(t, newTestClock(time.Now()), nil)
			_, err := lc.call(context.Background(), c)
			if err == nil {
				t.Fatalf("%s on a dropped connection = nil error; want a transport error", lc.name)
			}
			var ae *zoom.APIError
			var te *zoom.TokenError
			if errors.As(err, &ae) || errors.As(err, &te) {
				t.Errorf("%s error = %#v; want a transport error, not *APIError or *TokenError", lc.name, err)
			}
			if !strings.HasPrefix(err.Error(), "zoom: "+lc.op+": ") {
				t.Errorf("%s error %q; want it to start with %q", lc.name, err, "zoom: "+lc.op+": ")
			}
			checkErrorText(t, lc.name, err)
		})
	}
}

// TestLifecycleRefusedBeforeCall: arguments that cannot be sent are refused
// before any request, token or limiter wait.
func TestLifecycleRefusedBeforeCall(t *testing.T) {
	tests := []struct {
		name string
		call func(context.Context, *zoom.Client) (zoom.Response, error)
	}{
		{"status suspend", func(ctx context.Context, c *zoom.Client) (zoom.Response, error) {
			return c.SetUserStatus(ctx, "u1", "suspend")
		}},
		{"status empty", func(ctx context.Context, c *zoom.Client) (zoom.Response, error) {
			return c.SetUserStatus(ctx, "u1", "")
		}},
		{"status capitalised", func(ctx context.Context, c *zoom.Client) (zoom.Response, error) {
			return c.SetUserStatus(ctx, "u1", "Activate")
		}},
		{"status no id", func(ctx context.Context, c *zoom.Client) (zoom.Response, error) {
			return c.SetUserStatus(ctx, "", zoom.StatusActivate)
		}},
		{"delete unknown action", func(ctx context.Context, c *zoom.Client) (zoom.Response, error) {
			return c.DeleteUser(ctx, "u1", zoom.DeleteOptions{Action: "remove"})
		}},
		{"delete no id", func(ctx context.Context, c *zoom.Client) (zoom.Response, error) {
			return c.DeleteUser(ctx, "", zoom.DeleteOptions{})
		}},
		{"update no id", func(ctx context.Context, c *zoom.Client) (zoom.Response, error) {
			return c.UpdateUser(ctx, "", json.RawMessage(`{"type":1}`))
		}},
		{"update no body", func(ctx context.Context, c *zoom.Client) (zoom.Response, error) { return c.UpdateUser(ctx, "u1", nil) }},
		{"update invalid JSON", func(ctx context.Context, c *zoom.Client) (zoom.Response, error) {
			return c.UpdateUser(ctx, "u1", json.RawMessage(`{"type":`))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeZoom(t, "3599", fakeAnswer{status: http.StatusNoContent})
			lim := &countingLimiter{}
			c := f.client(t, newTestClock(time.Now()), func(cfg *zoom.Config) { cfg.Limiter = lim })
			_, err := tc.call(context.Background(), c)
			if err == nil {
				t.Fatalf("%s = nil error; want an error", tc.name)
			}
			var ae *zoom.APIError
			if errors.As(err, &ae) {
				t.Errorf("%s error = %v; want a local error, not *zoom.APIError", tc.name, err)
			}
			if reqs, toks, waits := len(f.requests()), f.tokens(), lim.waits.Load(); reqs != 0 || toks != 0 || waits != 0 {
				t.Errorf("%s: %d requests, %d tokens, %d limiter waits; want none", tc.name, reqs, toks, waits)
			}
		})
	}
}

// TestLifecycleLimiter: a call its caller makes never waits on the
// limiter: the caller paces it.
func TestLifecycleLimiter(t *testing.T) {
	f := newFakeZoom(t, "3599", fakeAnswer{status: http.StatusNoContent})
	lim := &countingLimiter{}
	c := f.client(t, newTestClock(time.Now()), func(cfg *zoom.Config) { cfg.Limiter = lim })
	for i, lc := range lifecycleCalls {
		if _, err := lc.call(context.Background(), c); err != nil {
			t.Fatalf("%s error: %v", lc.name, err)
		}
		if got := lim.waits.Load(); got != 0 {
			t.Errorf("limiter waits after call %d (%s) = %d; want 0", i, lc.name, got)
		}
	}
	if got := f.tokens(); got != 1 {
		t.Errorf("tokens issued for %d calls = %d; want 1", len(lifecycleCalls), got)
	}
	var methods []string
	for _, r := range f.requests() {
		methods = append(methods, r.Method)
	}
	if want := []string{"PATCH", "PUT", "DELETE"}; !reflect.DeepEqual(methods, want) {
		t.Errorf("methods = %v; want %v", methods, want)
	}
}
