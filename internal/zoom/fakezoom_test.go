package zoom_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zoomprov/consumer/internal/zoom"
	"github.com/zoomprov/consumer/testenv"
)

// fakeZoom stands in for Zoom where the simulator cannot yet: the
// PATCH, PUT and DELETE user routes, and token answers with an expires_in
// the simulator does not send. It serves Zoom's token endpoint (issuing
// "tok-1", "tok-2", ...) and answers every /v2 request carrying a live
// token from a script, recording it; other tokens get Zoom's 401/124.
type fakeZoom struct {
	srv *httptest.Server
	// expiresIn is the raw JSON value of expires_in in token answers;
	// empty leaves the field out.
	expiresIn string

	mu      sync.Mutex
	issued  int
	revoked map[string]bool
	reqs    []fakeRequest
	script  []fakeAnswer // consumed in order, then def
	def     fakeAnswer
}

// fakeRequest is one /v2 request as received.
type fakeRequest struct {
	Method, Path, Query, Auth, ContentType string
	Body                                   string
	Status                                 int // answered; 0 when dropped
}

// fakeAnswer is one scripted answer.
type fakeAnswer struct {
	status int
	header map[string]string
	body   string
	// revoke answers 401/124 and revokes the token the request carried.
	revoke bool
	// drop closes the connection without an answer.
	drop bool
}

// fakeTrackingID is the x-zm-trackingid of every /v2 answer.
const fakeTrackingID = "v=2.0;clid=fake;rid=WEB_1"

func newFakeZoom(t *testing.T, expiresIn string, def fakeAnswer) *fakeZoom {
	t.Helper()
	f := &fakeZoom{expiresIn: expiresIn, revoked: map[string]bool{}, def: def}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// client returns a client for f whose clock is clock; edit may change its
// Config.
func (f *fakeZoom) client(t *testing.T, clock *testClock, edit func(*zoom.Config)) *zoom.Client {
	t.Helper()
	cfg := zoom.Config{
		AccountID:    testenv.DefaultSimAccountID,
		ClientID:     testenv.DefaultSimClientID,
		ClientSecret: testenv.DefaultSimClientSecret,
		BaseURL:      f.srv.URL + "/v2",
		TokenURL:     f.srv.URL + "/oauth/token",
		Timeout:      10 * time.Second,
		Now:          clock.Now,
	}
	if edit != nil {
		edit(&cfg)
	}
	c, err := zoom.New(cfg)
	if err != nil {
		t.Fatalf("New() error: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// then queues answers after those already scripted.
func (f *fakeZoom) then(a ...fakeAnswer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script = append(f.script, a...)
}

// requests returns the /v2 requests received so far.
func (f *fakeZoom) requests() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRequest(nil), f.reqs...)
}

// tokens returns how many tokens were issued.
func (f *fakeZoom) tokens() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.issued
}

func (f *fakeZoom) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.URL.Path == "/oauth/token" {
		f.serveToken(w, r, body)
		return
	}
	req := fakeRequest{
		Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
		Auth: r.Header.Get("Authorization"), ContentType: r.Header.Get("Content-Type"), Body: string(body),
	}
	f.mu.Lock()
	tok, ok := strings.CutPrefix(req.Auth, "Bearer tok-")
	live := ok && tok != "" && !f.revoked["tok-"+tok]
	a := fakeAnswer{status: http.StatusUnauthorized, body: `{"code":124,"message":"Invalid access token."}`}
	if live {
		a = f.def
		if len(f.script) > 0 {
			a, f.script = f.script[0], f.script[1:]
		}
		if a.revoke {
			f.revoked[strings.TrimPrefix(req.Auth, "Bearer ")] = true
			a = fakeAnswer{status: http.StatusUnauthorized, body: `{"code":124,"message":"Access token is expired."}`}
		}
	}
	if !a.drop {
		req.Status = a.status
	}
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()

	if a.drop {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	h := w.Header()
	h.Set("X-Zm-Trackingid", fakeTrackingID)
	for k, v := range a.header {
		h.Set(k, v)
	}
	if a.body != "" {
		h.Set("Content-Type", "application/json;charset=UTF-8")
	}
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, a.body)
}

// serveToken is Zoom's Server-to-Server token endpoint, checked as the
// simulator checks it.
func (f *fakeZoom) serveToken(w http.ResponseWriter, r *http.Request, body []byte) {
	id, secret, ok := r.BasicAuth()
	form, err := url.ParseQuery(string(body))
	if !ok || err != nil || id != testenv.DefaultSimClientID || secret != testenv.DefaultSimClientSecret ||
		form.Get("grant_type") != "account_credentials" || form.Get("account_id") != testenv.DefaultSimAccountID {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"reason":"Invalid client_id or client_secret","error":"invalid_client"}`)
		return
	}
	f.mu.Lock()
	f.issued++
	n := f.issued
	f.mu.Unlock()
	exp := ""
	if f.expiresIn != "" {
		exp = `,"expires_in":` + f.expiresIn
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"bearer"%s,"scope":"user:write:admin"}`, n, exp)
}
