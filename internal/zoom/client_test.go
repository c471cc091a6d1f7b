package zoom_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/zoomprov/consumer/internal/zoom"
	"github.com/zoomprov/consumer/testenv"
)

// rateLimiter paces every call with x/time/rate, whatever the call.
type rateLimiter struct{ *rate.Limiter }

func (l rateLimiter) Wait(ctx context.Context, _ zoom.Call) error { return l.Limiter.Wait(ctx) }

var _ zoom.Limiter = rateLimiter{}

// testClock is the clock shared by the simulator and the client, moved by
// hand so that token expiry and rate-limit windows need no sleeping.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock(t time.Time) *testClock { return &testClock{t: t} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a simulator and a real client pointed at it over HTTP.
type env struct {
	sim    *testenv.Simulator
	client *zoom.Client
	clock  *testClock
	cfg    zoom.Config
}

// newEnv starts a simulator with sc and a client for it. Unless sc.Now is
// set, both share a frozen clock that starts at the wall-clock time. edit,
// if not nil, may change the client's Config.
func newEnv(t testing.TB, sc testenv.SimConfig, edit func(*zoom.Config)) *env {
	t.Helper()
	e := &env{clock: newTestClock(time.Now())}
	if sc.Now == nil {
		sc.Now = e.clock.Now
	}
	e.sim = testenv.NewSimulator(sc)
	t.Cleanup(e.sim.Close)
	e.cfg = zoom.Config{
		AccountID:    testenv.DefaultSimAccountID,
		ClientID:     testenv.DefaultSimClientID,
		ClientSecret: testenv.DefaultSimClientSecret,
		BaseURL:      e.sim.APIURL(),
		TokenURL:     e.sim.TokenURL(),
		// A safety net: no test should wait this long.
		Timeout: 10 * time.Second,
		Now:     e.clock.Now,
	}
	if edit != nil {
		edit(&e.cfg)
	}
	c, err := zoom.New(e.cfg)
	if err != nil {
		t.Fatalf("New(%+v) error: %v", e.cfg, err)
	}
	// Registered after the simulator's Close, so it runs first.
	t.Cleanup(c.CloseIdleConnections)
	e.client = c
	return e
}

// createReq builds a create-user request from a user_info JSON object.
func createReq(action, userInfo string) zoom.CreateUserRequest {
	return zoom.CreateUserRequest{Action: action, UserInfo: json.RawMessage(userInfo)}
}

func userInfo(email string, typ int) string {
	return fmt.Sprintf(`{"email":%q,"type":%d}`, email, typ)
}

// routeRequests returns the recorded requests of one route.
func (e *env) routeRequests(route string) []testenv.RecordedRequest {
	var out []testenv.RecordedRequest
	for _, r := range e.sim.Requests() {
		if r.Route == route {
			out = append(out, r)
		}
	}
	return out
}

// checkNoSecrets fails the test if err's text contains the client secret,
// the Basic credentials or any bearer token the simulator has seen.
func (e *env) checkNoSecrets(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	basic := base64.StdEncoding.EncodeToString([]byte(e.cfg.ClientID + ":" + e.cfg.ClientSecret))
	secrets := []string{e.cfg.ClientSecret, basic, "Basic ", "Bearer "}
	for _, r := range e.sim.Requests() {
		if tok, ok := strings.CutPrefix(r.Authorization, "Bearer "); ok && tok != "" {
			secrets = append(secrets, tok)
		}
	}
	for _, s := range secrets {
		if strings.Contains(msg, s) {
			t.Errorf("error %q contains secret material %q", msg, s)
		}
	}
}

// checkFor polls cond until it holds or the deadline passes.
func checkFor(t testing.TB, total, interval time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", total, err)
		}
		time.Sleep(interval)
	}
}

func TestNewValidation(t *testing.T) {
	full := zoom.Config{AccountID: "acct", ClientID: "id", ClientSecret: "top-secret-value"}
	tests := []struct {
		name    string
		edit    func(*zoom.Config)
		wantErr bool
	}{
		{name: "complete", edit: func(*zoom.Config) {}},
		{name: "no account id", edit: func(c *zoom.Config) { c.AccountID = "" }, wantErr: true},
		{name: "no client id", edit: func(c *zoom.Config) { c.ClientID = "" }, wantErr: true},
		{name: "no client secret", edit: func(c *zoom.Config) { c.ClientSecret = "" }, wantErr: true},
		{name: "nothing", edit: func(c *zoom.Config) { *c = zoom.Config{} }, wantErr: true},
		{name: "bad base url", edit: func(c *zoom.Config) { c.BaseURL = "http://bad host/v2" }, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := full
			tc.edit(&cfg)
			c, err := zoom.New(cfg)
			if gotErr := err != nil; gotErr != tc.wantErr {
				t.Fatalf("New(%s) error = %v; want error: %v", tc.name, err, tc.wantErr)
			}
			if tc.wantErr {
				if c != nil {
					t.Errorf("New(%s) = %v, %v; want nil client with the error", tc.name, c, err)
				}
				if strings.Contains(err.Error(), full.ClientSecret) {
					t.Errorf("New(%s) error %q contains the client secret", tc.name, err)
				}
				return
			}
			if c == nil {
				t.Fatalf("New(%s) = nil, nil; want a client", tc.name)
			}
			c.CloseIdleConnections()
		})
	}
}

// redirectTransport records the URL of every request and sends it to target
// instead, keeping the path: the client believes it talks to Zoom's
// production hosts while the simulator answers over real HTTP.
type redirectTransport struct {
	target *url.URL
	base   *http.Transport

	mu   sync.Mutex
	urls []string
}

func (rt *redirectTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	rt.urls = append(rt.urls, r.URL.String())
	rt.mu.Unlock()
	r2 := r.Clone(r.Context())
	r2.URL.Scheme, r2.URL.Host, r2.Host = rt.target.Scheme, rt.target.Host, ""
	return rt.base.RoundTrip(r2)
}

func (rt *redirectTransport) seen() []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return append([]string(nil), rt.urls...)
}

func TestNewDefaults(t *testing.T) {
	tests := []struct {
		name     string
		baseURL  string // empty: the default
		tokenURL string // empty: the default
		want     []string
	}{
		{
			name: "zoom production endpoints",
			want: []string{zoom.DefaultTokenURL, zoom.DefaultBaseURL + "/users"},
		},
		{
			name:     "trailing slash trimmed",
			baseURL:  "https://eu.example.test/v2/",
			tokenURL: "https://eu.example.test/oauth/token",
			want:     []string{"https://eu.example.test/oauth/token", "https://eu.example.test/v2/users"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, testenv.SimConfig{}, nil)
			target, err := url.Parse(e.sim.URL())
			if err != nil {
				t.Fatal(err)
			}
			rt := &redirectTransport{target: target, base: &http.Transport{}}
			t.Cleanup(rt.base.CloseIdleConnections)
			c, err := zoom.New(zoom.Config{
				AccountID:    testenv.DefaultSimAccountID,
				ClientID:     testenv.DefaultSimClientID,
				ClientSecret: testenv.DefaultSimClientSecret,
				BaseURL:      tc.baseURL,
				TokenURL:     tc.tokenURL,
				HTTPClient:   &http.Client{Transport: rt},
			})
			if err != nil {
				t.Fatalf("New() error: %v", err)
			}
			if _, err := c.CreateUser(context.Background(), createReq("create", userInfo("dflt@example.com", 1))); err != nil {
				t.Fatalf("CreateUser(%q) error: %v", "dflt@example.com", err)
			}
			if got := rt.seen(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("CreateUser requested %q; want %q", got, tc.want)
			}
		})
	}
}

func TestTokenRequestShape(t *testing.T) {
	e := newEnv(t, testenv.SimConfig{}, nil)
	if _, err := e.client.CreateUser(context.Background(), createReq("create", userInfo("shape@example.com", 1))); err != nil {
		t.Fatalf("CreateUser(%q) error: %v", "shape@example.com", err)
	}
	toks := e.routeRequests(testenv.RouteToken)
	if len(toks) != 1 {
		t.Fatalf("token requests = %d; want 1", len(toks))
	}
	r := toks[0]
	if r.Method != http.MethodPost || r.Path != "/oauth/token" {
		t.Errorf("token request = %s %s; want POST /oauth/token", r.Method, r.Path)
	}
	if r.Query != "" {
		t.Errorf("token request query = %q; want none (parameters belong in the form body)", r.Query)
	}
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte(testenv.DefaultSimClientID+":"+testenv.DefaultSimClientSecret))
	if r.Authorization != wantAuth {
		t.Errorf("token request Authorization = %q; want %q", r.Authorization, wantAuth)
	}
	if mt, _, err := mime.ParseMediaType(r.ContentType); err != nil || mt != "application/x-www-form-urlencoded" {
		t.Errorf("token request Content-Type = %q; want application/x-www-form-urlencoded", r.ContentType)
	}
	form, err := url.ParseQuery(string(r.Body))
	if err != nil {
		t.Fatalf("token request body %q: %v", r.Body, err)
	}
	wantForm := url.Values{"grant_type": {"account_credentials"}, "account_id": {testenv.DefaultSimAccountID}}
	if !reflect.DeepEqual(form, wantForm) {
		t.Errorf("token request form = %v; want %v", form, wantForm)
	}
	if r.Status != http.StatusOK {
		t.Errorf("token request answered %d; want 200", r.Status)
	}
}

func TestCreateUserRequestShape(t *testing.T) {
	tests := []struct {
		name     string
		action   string
		userInfo string
	}{
		{name: "minimal", action: "create", userInfo: `{"email":"min@example.com","type":1}`},
		{name: "names and phone", action: "autoCreate", userInfo: `{"email":"full@example.com","type":2,"first_name":"Zoë","last_name":"O'Neil","password":"Abcd1234x","feature":{"zoom_phone":false}}`},
		{name: "large integers kept", action: "custCreate", userInfo: `{"email":"big@example.com","type":2,"feature":{"zoom_one_type":576460752303423488}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, testenv.SimConfig{}, nil)
			res, err := e.client.CreateUser(context.Background(), createReq(tc.action, tc.userInfo))
			if err != nil {
				t.Fatalf("CreateUser(%s) error: %v", tc.userInfo, err)
			}
			if res.StatusCode != http.StatusCreated {
				t.Errorf("CreateUser(%s).StatusCode = %d; want 201", tc.userInfo, res.StatusCode)
			}
			posts := e.routeRequests(testenv.RouteCreateUser)
			if len(posts) != 1 {
				t.Fatalf("POST /v2/users requests = %d; want 1", len(posts))
			}
			r := posts[0]
			if r.Path != "/v2/users" {
				t.Errorf("POST path = %q; want /v2/users", r.Path)
			}
			if r.ContentType != "application/json" {
				t.Errorf("POST Content-Type = %q; want application/json", r.ContentType)
			}
			tok, ok := strings.CutPrefix(r.Authorization, "Bearer ")
			if !ok || tok == "" || strings.ContainsAny(tok, " \t") {
				t.Errorf("POST Authorization = %q; want Bearer <token>", r.Authorization)
			}
			want := `{"action":"` + tc.action + `","user_info":` + tc.userInfo + `}`
			if string(r.Body) != want {
				t.Errorf("POST body = %s; want %s", r.Body, want)
			}
		})
	}
}

func TestCreateUserCreated(t *testing.T) {
	e := newEnv(t, testenv.SimConfig{}, nil)
	const email = "Created.User@example.com"
	res, err := e.client.CreateUser(context.Background(),
		createReq("create", `{"email":"`+email+`","type":2,"first_name":"Cre","last_name":"Ated"}`))
	if err != nil {
		t.Fatalf("CreateUser(%q) error: %v", email, err)
	}
	u, ok := e.sim.User(email)
	if !ok {
		t.Fatalf("sim.User(%q) missing after CreateUser", email)
	}
	want := zoom.User{ID: u.ID, Email: email, FirstName: "Cre", LastName: "Ated", Type: 2}
	if res.User != want {
		t.Errorf("CreateUser(%q).User = %+v; want %+v", email, res.User, want)
	}
	if res.User.ID == "" {
		t.Errorf("CreateUser(%q).User.ID is empty", email)
	}
	if res.StatusCode != http.StatusCreated {
		t.Errorf("CreateUser(%q).StatusCode = %d; want 201", email, res.StatusCode)
	}
	posts := e.routeRequests(testenv.RouteCreateUser)
	if res.TrackingID == "" || len(posts) != 1 || res.TrackingID != posts[0].TrackingID {
		t.Errorf("CreateUser(%q).TrackingID = %q; want the simulator's x-zm-trackingid", email, res.TrackingID)
	}
	if got := e.sim.Creations(email); got != 1 {
		t.Errorf("sim.Creations(%q) = %d; want 1", email, got)
	}
}

func TestCreateUserAPIErrors(t *testing.T) {
	const email = "err.path@example.com"
	tests := []struct {
		name      string
		sim       testenv.SimConfig
		setup     func(*testenv.Simulator)
		req       zoom.CreateUserRequest
		status    int
		code      int
		is        error // a sentinel err must match, if not nil
		msg       string
		fields    []zoom.FieldError
		retryable bool
	}{
		{
			name:   "user exists",
			setup:  func(s *testenv.Simulator) { s.AddUser(email, 1) },
			req:    createReq("create", userInfo(email, 1)),
			status: http.StatusConflict, code: 1005, is: zoom.ErrUserExists,
			msg: "User already in the account",
		},
		{
			name:   "invalid email",
			req:    createReq("create", userInfo("not-an-email", 1)),
			status: http.StatusBadRequest, code: 300, msg: "Validation Failed.",
			fields: []zoom.FieldError{{Field: "user_info.email", Message: "Invalid field."}},
		},
		{
			name:   "missing type",
			req:    createReq("create", `{"email":"`+email+`"}`),
			status: http.StatusBadRequest, code: 300, msg: "Validation Failed.",
			fields: []zoom.FieldError{{Field: "user_info.type", Message: "This field is required."}},
		},
		{
			name:   "unknown action and no user_info",
			req:    zoom.CreateUserRequest{Action: "invite"},
			status: http.StatusBadRequest, code: 300, msg: "Validation Failed.",
			fields: []zoom.FieldError{
				{Field: "action", Message: "Invalid field."},
				{Field: "user_info.email", Message: "This field is required."},
				{Field: "user_info.type", Message: "This field is required."},
			},
		},
		{
			name:   "on-prem type",
			req:    createReq("create", userInfo(email, 3)),
			status: http.StatusBadRequest, code: 300, msg: "Your account can't set user type as On-prem.",
		},
		{
			name:   "no phone licence",
			req:    createReq("create", `{"email":"`+email+`","type":2,"feature":{"zoom_phone":true}}`),
			status: http.StatusNotFound, code: 1102, msg: "Zoom Phone",
		},
		{
			name: "group does not exist",
			setup: func(s *testenv.Simulator) {
				s.FailEmail(email, 1, testenv.Fault{Status: http.StatusNotFound, Code: 4130, Message: "Group does not exist: g1."})
			},
			req:    createReq("create", userInfo(email, 1)),
			status: http.StatusNotFound, code: 4130, msg: "Group does not exist: g1.",
		},
		{
			name:   "server error json",
			setup:  func(s *testenv.Simulator) { s.FailNext(1, testenv.Fault{Status: http.StatusInternalServerError}) },
			req:    createReq("create", userInfo(email, 1)),
			status: http.StatusInternalServerError, code: 500, msg: "Internal Server Error", retryable: true,
		},
		{
			name:   "gateway html page",
			setup:  func(s *testenv.Simulator) { s.FailNext(1, testenv.Fault{Status: http.StatusBadGateway, HTML: true}) },
			req:    createReq("create", userInfo(email, 1)),
			status: http.StatusBadGateway, msg: "non-JSON response body (text/html", retryable: true,
		},
		{
			name: "empty body",
			setup: func(s *testenv.Simulator) {
				s.FailNext(1, testenv.Fault{Status: http.StatusServiceUnavailable, EmptyBody: true})
			},
			req:    createReq("create", userInfo(email, 1)),
			status: http.StatusServiceUnavailable, msg: "empty response body", retryable: true,
		},
		{
			// A 201 that cannot be read is no rejection: the user may exist.
			name:   "unreadable success",
			setup:  func(s *testenv.Simulator) { s.FailNext(1, testenv.Fault{Status: http.StatusCreated, HTML: true}) },
			req:    createReq("create", userInfo(email, 1)),
			status: http.StatusBadGateway, msg: "unreadable success response", retryable: true,
		},
		{
			name: "scripted rate limit with delta seconds",
			setup: func(s *testenv.Simulator) {
				s.FailEmail(email, 1, testenv.Fault{Status: http.StatusTooManyRequests, Code: 429, Message: "Too many requests.", Headers: map[string]string{"Retry-After": "30"}})
			},
			req:    createReq("create", userInfo(email, 1)),
			status: http.StatusTooManyRequests, code: 429, is: zoom.ErrRateLimited, msg: "Too many requests.", retryable: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.sim, nil)
			if tc.setup != nil {
				tc.setup(e.sim)
			}
			res, err := e.client.CreateUser(context.Background(), tc.req)
			var ae *zoom.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("CreateUser(%s) = %+v, %v; want *zoom.APIError", tc.req.UserInfo, res, err)
			}
			e.checkNoSecrets(t, err)
			if ae.Op != "create user" {
				t.Errorf("CreateUser(%s) error Op = %q; want %q", tc.req.UserInfo, ae.Op, "create user")
			}
			if ae.StatusCode != tc.status || ae.Code != tc.code {
				t.Errorf("CreateUser(%s) = http %d code %d; want http %d code %d", tc.req.UserInfo, ae.StatusCode, ae.Code, tc.status, tc.code)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("errors.Is(%v, %v) = false; want true", err, tc.is)
			}
			if !strings.Contains(ae.Message, tc.msg) {
				t.Errorf("CreateUser(%s) message = %q; want it to contain %q", tc.req.UserInfo, ae.Message, tc.msg)
			}
			if strings.Contains(ae.Message, "<html") || strings.Contains(ae.Message, "cloudflare") {
				t.Errorf("CreateUser(%s) message = %q; want no copy of the HTML page", tc.req.UserInfo, ae.Message)
			}
			if !reflect.DeepEqual(ae.Fields, tc.fields) {
				t.Errorf("CreateUser(%s) fields = %+v; want %+v", tc.req.UserInfo, ae.Fields, tc.fields)
			}
			if got := transientStatus(ae.StatusCode); got != tc.retryable {
				t.Errorf("CreateUser(%s) error Retryable() = %v; want %v", tc.req.UserInfo, got, tc.retryable)
			}
			posts := e.routeRequests(testenv.RouteCreateUser)
			if len(posts) != 1 {
				t.Fatalf("POST /v2/users requests = %d; want 1 (no retry inside the client)", len(posts))
			}
			if ae.TrackingID == "" || ae.TrackingID != posts[0].TrackingID {
				t.Errorf("CreateUser(%s) error TrackingID = %q; want %q", tc.req.UserInfo, ae.TrackingID, posts[0].TrackingID)
			}
		})
	}
}

func TestCreateUserGatewayTitle(t *testing.T) {
	e := newEnv(t, testenv.SimConfig{}, nil)
	e.sim.FailNext(1, testenv.Fault{Status: http.StatusBadGateway, HTML: true})
	_, err := e.client.CreateUser(context.Background(), createReq("create", userInfo("gw@example.com", 1)))
	var ae *zoom.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("CreateUser(%q) error = %v; want *zoom.APIError", "gw@example.com", err)
	}
	if !strings.Contains(ae.Message, "502 Bad Gateway") {
		t.Errorf("CreateUser(%q) message = %q; want the page title %q", "gw@example.com", ae.Message, "502 Bad Gateway")
	}
	if ae.Code != 0 {
		t.Errorf("CreateUser(%q) code = %d; want 0 for a non-JSON body", "gw@example.com", ae.Code)
	}
}

func TestCreateUserEncodeError(t *testing.T) {
	e := newEnv(t, testenv.SimConfig{}, nil)
	_, err := e.client.CreateUser(context.Background(), createReq("create", `{"email":`))
	if err == nil {
		t.Fatalf("CreateUser(invalid JSON user_info) = nil error; want an encode error")
	}
	var ae *zoom.APIError
	if errors.As(err, &ae) {
		t.Errorf("CreateUser(invalid JSON user_info) error = %v; want a local error, not *zoom.APIError", err)
	}
	if n := len(e.sim.Requests()); n != 0 {
		t.Errorf("requests after an encode error = %d; want 0", n)
	}
}

func TestCreateUserPerSecondLimit(t *testing.T) {
	tests := []struct {
		name     string
		omit     bool
		wantType string
		wantNext bool // RetryAfter is the next one-second window
	}{
		{name: "with headers", wantType: testenv.RateLimitQPS, wantNext: true},
		{name: "without headers", omit: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, testenv.SimConfig{RatePerSecond: 1}, nil)
			e.sim.SetOmitRateLimitHeaders(tc.omit)
			ctx := context.Background()
			res, err := e.client.CreateUser(ctx, createReq("create", userInfo("qps1@example.com", 1)))
			if err != nil {
				t.Fatalf("CreateUser(%q) error: %v", "qps1@example.com", err)
			}
			wantRL := zoom.RateLimit{Category: "Light", Limit: 1, Remaining: 0}
			if res.RateLimit != wantRL {
				t.Errorf("CreateUser(%q).RateLimit = %+v; want %+v", "qps1@example.com", res.RateLimit, wantRL)
			}

			_, err = e.client.CreateUser(ctx, createReq("create", userInfo("qps2@example.com", 1)))
			var ae *zoom.APIError
			if !errors.As(err, &ae) || !errors.Is(err, zoom.ErrRateLimited) {
				t.Fatalf("CreateUser(%q) error = %v; want a 429 *zoom.APIError", "qps2@example.com", err)
			}
			e.checkNoSecrets(t, err)
			wantRL = zoom.RateLimit{Type: tc.wantType, Category: "Light", Limit: 1, Remaining: 0}
			if ae.RateLimit != wantRL {
				t.Errorf("CreateUser(%q) error RateLimit = %+v; want %+v", "qps2@example.com", ae.RateLimit, wantRL)
			}
			if got := ae.Limit(); got != zoom.LimitPerSecond {
				t.Errorf("CreateUser(%q) error Limit() = %q; want %q", "qps2@example.com", got, zoom.LimitPerSecond)
			}
			var wantRetry time.Time
			if tc.wantNext {
				wantRetry = e.clock.Now().Truncate(time.Second).Add(time.Second)
			}
			if !ae.RetryAfter.Equal(wantRetry) {
				t.Errorf("CreateUser(%q) error RetryAfter = %v; want %v", "qps2@example.com", ae.RetryAfter, wantRetry)
			}
			if got := ae.ResetAt(e.clock.Now()); !got.Equal(wantRetry) {
				t.Errorf("ResetAt(now) = %v; want %v", got, wantRetry)
			}
			if got := e.sim.Stats().RateLimited[testenv.RateLimitQPS]; got != 1 {
				t.Errorf("sim QPS rejections = %d; want 1", got)
			}
		})
	}
}

func TestCreateUserDailyLimit(t *testing.T) {
	tests := []struct {
		name     string
		omit     bool
		wantType string
	}{
		{name: "with headers", wantType: testenv.RateLimitDaily},
		{name: "without headers", omit: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, testenv.SimConfig{DailyCreateLimit: 1}, nil)
			e.sim.SetOmitRateLimitHeaders(tc.omit)
			ctx := context.Background()
			if _, err := e.client.CreateUser(ctx, createReq("create", userInfo("day1@example.com", 1))); err != nil {
				t.Fatalf("CreateUser(%q) error: %v", "day1@example.com", err)
			}
			_, err := e.client.CreateUser(ctx, createReq("create", userInfo("day2@example.com", 1)))
			var ae *zoom.APIError
			if !errors.As(err, &ae) || !errors.Is(err, zoom.ErrRateLimited) {
				t.Fatalf("CreateUser(%q) error = %v; want a 429 *zoom.APIError", "day2@example.com", err)
			}
			e.checkNoSecrets(t, err)
			if got := ae.Limit(); got != zoom.LimitDaily {
				t.Errorf("CreateUser(%q) error Limit() = %q; want %q", "day2@example.com", got, zoom.LimitDaily)
			}
			if ae.RateLimit.Type != tc.wantType {
				t.Errorf("CreateUser(%q) error RateLimit.Type = %q; want %q", "day2@example.com", ae.RateLimit.Type, tc.wantType)
			}
			// The default window is a UTC day.
			now := e.clock.Now()
			next := now.Truncate(24 * time.Hour).Add(24 * time.Hour)
			if got := ae.ResetAt(now); !got.Equal(next) {
				t.Errorf("ResetAt(%v) = %v; want %v", now, got, next)
			}
			if !next.Equal(zoom.NextUTCMidnight(now)) {
				t.Errorf("NextUTCMidnight(%v) = %v; want %v", now, zoom.NextUTCMidnight(now), next)
			}
			// Other actions are not subject to the daily quota.
			if _, err := e.client.CreateUser(ctx, createReq("ssoCreate", userInfo("day3@example.com", 1))); err != nil {
				t.Errorf("CreateUser(ssoCreate %q) error = %v; want nil", "day3@example.com", err)
			}
		})
	}
}

// TestCreateUserRetryAfterClock checks that delta-seconds are read on
// Config.Now.
func TestCreateUserRetryAfterClock(t *testing.T) {
	e := newEnv(t, testenv.SimConfig{}, nil)
	e.clock.Advance(-3 * time.Hour) // anything but the wall clock
	e.sim.FailNext(1, testenv.Fault{Status: http.StatusTooManyRequests, Headers: map[string]string{"Retry-After": "30"}})
	_, err := e.client.CreateUser(context.Background(), createReq("create", userInfo("ra@example.com", 1)))
	var ae *zoom.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("CreateUser(%q) error = %v; want *zoom.APIError", "ra@example.com", err)
	}
	if want := e.clock.Now().Add(30 * time.Second); !ae.RetryAfter.Equal(want) {
		t.Errorf("CreateUser(%q) error RetryAfter = %v; want %v", "ra@example.com", ae.RetryAfter, want)
	}
}

func TestClientTransportErrors(t *testing.T) {
	const email = "transport.secret.person@example.com"
	const timeout = 300 * time.Millisecond
	tests := []struct {
		name     string
		get      bool // GetUser instead of CreateUser
		fault    testenv.Fault
		deadline bool // errors.Is(err, context.DeadlineExceeded)
	}{
		{name: "create dropped", fault: testenv.Fault{Drop: true}},
		{name: "get dropped", get: true, fault: testenv.Fault{Drop: true}},
		{name: "create timeout", fault: testenv.Fault{Delay: 20 * time.Second}, deadline: true},
		{name: "get timeout", get: true, fault: testenv.Fault{Delay: 20 * time.Second}, deadline: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, testenv.SimConfig{}, func(c *zoom.Config) { c.Timeout = timeout })
			e.sim.AddUser(email, 1)
			ctx := context.Background()
			// Fetch the token first so that the timing is the API call's.
			if err := e.client.TokenValid(ctx); err != nil {
				t.Fatalf("TokenValid() error: %v", err)
			}
			// Every time: net/http retries an idempotent GET once on a
			// connection that died.
			e.sim.FailEmail(email, 0, tc.fault)
			start := time.Now()
			var err error
			if tc.get {
				_, err = e.client.GetUser(ctx, email)
			} else {
				_, err = e.client.CreateUser(ctx, createReq("create", userInfo(email, 1)))
			}
			elapsed := time.Since(start)
			if err == nil {
				t.Fatalf("%s(%q) = nil error; want a transport error", tc.name, email)
			}
			e.checkNoSecrets(t, err)
			var ae *zoom.APIError
			var te *zoom.TokenError
			if errors.As(err, &ae) || errors.As(err, &te) {
				t.Errorf("%s(%q) error = %#v; want a transport error, not *APIError or *TokenError", tc.name, email, err)
			}
			msg := err.Error()
			for _, bad := range []string{email, "example.com", e.sim.URL(), "://", "/v2/users"} {
				if strings.Contains(msg, bad) {
					t.Errorf("%s(%q) error %q contains %q", tc.name, email, msg, bad)
				}
			}
			if got := errors.Is(err, context.DeadlineExceeded); got != tc.deadline {
				t.Errorf("errors.Is(%v, context.DeadlineExceeded) = %v; want %v", err, got, tc.deadline)
			}
			if tc.deadline && (elapsed < timeout || elapsed > timeout+5*time.Second) {
				t.Errorf("%s(%q) took %v; want about the %v timeout", tc.name, email, elapsed, timeout)
			}
		})
	}
}

func TestClientParentContextCancelled(t *testing.T) {
	t.Run("in flight", func(t *testing.T) {
		e := newEnv(t, testenv.SimConfig{}, nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := e.client.TokenValid(ctx); err != nil {
			t.Fatalf("TokenValid() error: %v", err)
		}
		e.sim.FailNext(1, testenv.Fault{Delay: 20 * time.Second})
		done := make(chan error, 1)
		go func() {
			_, err := e.client.CreateUser(ctx, createReq("create", userInfo("cancel@example.com", 1)))
			done <- err
		}()
		checkFor(t, 5*time.Second, time.Millisecond, func() error {
			if n := e.sim.Stats().InFlight; n != 1 {
				return fmt.Errorf("%d requests in flight; want 1", n)
			}
			return nil
		})
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("CreateUser(%q) after cancel = %v; want context.Canceled", "cancel@example.com", err)
			}
			e.checkNoSecrets(t, err)
		case <-time.After(5 * time.Second):
			t.Fatalf("CreateUser(%q) did not return within 5s of cancel", "cancel@example.com")
		}
	})
	t.Run("before the token fetch", func(t *testing.T) {
		e := newEnv(t, testenv.SimConfig{}, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := e.client.CreateUser(ctx, createReq("create", userInfo("cancel@example.com", 1)))
		if !errors.Is(err, context.Canceled) {
			t.Errorf("CreateUser(%q) with a cancelled context = %v; want context.Canceled", "cancel@example.com", err)
		}
		if got := e.sim.TotalCreations(); got != 0 {
			t.Errorf("creations = %d; want 0", got)
		}
	})
}

func TestGetUser(t *testing.T) {
	tests := []struct {
		name     string
		email    string // stored with AddUser
		byID     bool
		query    string // used when not byID; empty means email
		wantPath string // recorded escaped path; empty means don't check
	}{
		{name: "by id", email: "by.id@example.com", byID: true},
		{name: "by email", email: "by.email@example.com", wantPath: "/v2/users/by.email@example.com"},
		{name: "by email other case", email: "Mixed.Case@example.com", query: "mixed.case@EXAMPLE.com"},
		{name: "email needing escapes", email: "a/b?c#d%e@example.com", wantPath: "/v2/users/a%2Fb%3Fc%23d%25e@example.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, testenv.SimConfig{}, nil)
			id := e.sim.AddUser(tc.email, 2)
			q := tc.query
			switch {
			case tc.byID:
				q = id
			case q == "":
				q = tc.email
			}
			res, err := e.client.GetUser(context.Background(), q)
			if err != nil {
				t.Fatalf("GetUser(%q) error: %v", q, err)
			}
			want := zoom.User{ID: id, Email: tc.email, Type: 2, Status: "active"}
			if res.User != want {
				t.Errorf("GetUser(%q).User = %+v; want %+v", q, res.User, want)
			}
			if res.StatusCode != http.StatusOK || res.TrackingID == "" {
				t.Errorf("GetUser(%q) = status %d tracking %q; want 200 and a tracking id", q, res.StatusCode, res.TrackingID)
			}
			gets := e.routeRequests(testenv.RouteGetUser)
			if len(gets) != 1 {
				t.Fatalf("GET /v2/users/{userId} requests = %d; want 1", len(gets))
			}
			r := gets[0]
			if got, err := url.PathUnescape(strings.TrimPrefix(r.Path, "/v2/users/")); err != nil || got != q {
				t.Errorf("GetUser(%q) requested path %q; want /v2/users/ + escaped %q", q, r.Path, q)
			}
			if tc.wantPath != "" && r.Path != tc.wantPath {
				t.Errorf("GetUser(%q) requested path %q; want %q", q, r.Path, tc.wantPath)
			}
			if !strings.HasPrefix(r.Authorization, "Bearer ") || r.ContentType != "" || len(r.Body) != 0 {
				t.Errorf("GetUser(%q) request auth %q content type %q body %q; want Bearer, no content type, no body", q, r.Authorization, r.ContentType, r.Body)
			}
		})
	}
}

func TestGetUserNotFound(t *testing.T) {
	e := newEnv(t, testenv.SimConfig{}, nil)
	const email = "nobody@example.com"
	_, err := e.client.GetUser(context.Background(), email)
	var ae *zoom.APIError
	if !errors.As(err, &ae) || !errors.Is(err, zoom.ErrUserNotFound) {
		t.Fatalf("GetUser(%q) error = %v; want *zoom.APIError matching ErrUserNotFound", email, err)
	}
	if ae.Op != "get user" || ae.StatusCode != http.StatusNotFound || ae.Code != 1001 {
		t.Errorf("GetUser(%q) error = %q http %d code %d; want %q http 404 code 1001", email, ae.Op, ae.StatusCode, ae.Code, "get user")
	}
	if errors.Is(err, zoom.ErrUserExists) {
		t.Errorf("errors.Is(%v, ErrUserExists) = true; want false", err)
	}
	e.checkNoSecrets(t, err)
}

func TestGetUserEmptyID(t *testing.T) {
	e := newEnv(t, testenv.SimConfig{}, nil)
	if _, err := e.client.GetUser(context.Background(), ""); err == nil {
		t.Errorf("GetUser(%q) = nil error; want an error", "")
	}
	if n := len(e.sim.Requests()); n != 0 {
		t.Errorf("requests = %d; want 0", n)
	}
}

func TestTokenReuseConcurrent(t *testing.T) {
	e := newEnv(t, testenv.SimConfig{}, nil)
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			email := fmt.Sprintf("concurrent%02d@example.com", i)
			if _, err := e.client.CreateUser(context.Background(), createReq("create", userInfo(email, 1))); err != nil {
				errs <- fmt.Errorf("CreateUser(%q): %w", email, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := e.sim.Stats()
	if st.TokensIssued != 1 {
		t.Errorf("tokens issued for %d concurrent calls = %d; want 1", n, st.TokensIssued)
	}
	if st.Creations != n {
		t.Errorf("creations = %d; want %d", st.Creations, n)
	}
	bearers := map[string]bool{}
	for _, r := range e.routeRequests(testenv.RouteCreateUser) {
		bearers[r.Authorization] = true
	}
	if len(bearers) != 1 {
		t.Errorf("distinct Authorization headers on POST = %d; want 1", len(bearers))
	}
}

func TestTokenRefreshByClock(t *testing.T) {
	const ttl, before = 10 * time.Minute, 30 * time.Second
	tests := []struct {
		name       string
		start      time.Time // zero: the wall clock
		advance    time.Duration
		wantTokens int
	}{
		{name: "fresh token reused", advance: ttl - before - time.Second, wantTokens: 1},
		{name: "refreshed before expiry", advance: ttl - before + time.Second, wantTokens: 2},
		{name: "refreshed after expiry", advance: ttl + time.Hour, wantTokens: 2},
		// Config.Now need not be near the wall clock.
		{name: "past clock reused", start: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), advance: ttl - before - time.Second, wantTokens: 1},
		{name: "past clock refreshed", start: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), advance: ttl - before + time.Second, wantTokens: 2},
		{name: "future clock reused", start: time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC), advance: ttl - before - time.Second, wantTokens: 1},
		{name: "future clock refreshed", start: time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC), advance: ttl - before + time.Second, wantTokens: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newTestClock(tc.start)
			if tc.start.IsZero() {
				clock = newTestClock(time.Now())
			}
			e := newEnv(t, testenv.SimConfig{TokenTTL: ttl, Now: clock.Now}, func(c *zoom.Config) {
				c.RefreshBefore = before
				c.Now = clock.Now
			})
			ctx := context.Background()
			if _, err := e.client.CreateUser(ctx, createReq("create", userInfo("clock1@example.com", 1))); err != nil {
				t.Fatalf("CreateUser(%q) error: %v", "clock1@example.com", err)
			}
			clock.Advance(tc.advance)
			if _, err := e.client.CreateUser(ctx, createReq("create", userInfo("clock2@example.com", 1))); err != nil {
				t.Fatalf("CreateUser(%q) after %v error: %v", "clock2@example.com", tc.advance, err)
			}
			if got := e.sim.Stats().TokensIssued; got != tc.wantTokens {
				t.Errorf("tokens issued after advancing %v = %d; want %d", tc.advance, got, tc.wantTokens)
			}
			// The refresh is proactive: the simulator never refused a token.
			if got := e.sim.Stats().Requests[testenv.RouteCreateUser]; !reflect.DeepEqual(got, map[int]int{201: 2}) {
				t.Errorf("POST /v2/users answers = %v; want two 201s and no 401", got)
			}
		})
	}
}

func TestTokenForcedRefreshOn401(t *testing.T) {
	e := newEnv(t, testenv.SimConfig{}, nil)
	ctx := context.Background()
	if _, err := e.client.CreateUser(ctx, createReq("create", userInfo("r1@example.com", 1))); err != nil {
		t.Fatalf("CreateUser(%q) error: %v", "r1@example.com", err)
	}
	e.sim.ExpireTokens()
	res, err := e.client.CreateUser(ctx, createReq("create", userInfo("r2@example.com", 1)))
	if err != nil {
		t.Fatalf("CreateUser(%q) after ExpireTokens error: %v", "r2@example.com", err)
	}
	if res.StatusCode != http.StatusCreated {
		t.Errorf("CreateUser(%q).StatusCode = %d; want 201", "r2@example.com", res.StatusCode)
	}
	if got := e.sim.Stats().TokensIssued; got != 2 {
		t.Errorf("tokens issued = %d; want 2 (one forced refresh)", got)
	}
	var statuses []int
	var auths []string
	for _, r := range e.routeRequests(testenv.RouteCreateUser) {
		statuses = append(statuses, r.Status)
		auths = append(auths, r.Authorization)
	}
	if want := []int{201, 401, 201}; !reflect.DeepEqual(statuses, want) {
		t.Fatalf("POST /v2/users statuses = %v; want %v", statuses, want)
	}
	if auths[1] != auths[0] || auths[2] == auths[1] {
		t.Errorf("POST Authorization sequence = %q; want the old token refused, then a new one", auths)
	}
	// The bodies of the refused POST and its retry are the same.
	posts := e.routeRequests(testenv.RouteCreateUser)
	if string(posts[1].Body) != string(posts[2].Body) {
		t.Errorf("retried body = %s; want %s", posts[2].Body, posts[1].Body)
	}
	// The new token is cached.
	if _, err := e.client.CreateUser(ctx, createReq("create", userInfo("r3@example.com", 1))); err != nil {
		t.Fatalf("CreateUser(%q) error: %v", "r3@example.com", err)
	}
	if got := e.sim.Stats().TokensIssued; got != 2 {
		t.Errorf("tokens issued after a further call = %d; want 2", got)
	}
}

// TestTokenForcedRefreshConcurrent: when many calls hold the same refused
// token, only the first to come back fetches a new one.
func TestTokenForcedRefreshConcurrent(t *testing.T) {
	e := newEnv(t, testenv.SimConfig{}, nil)
	ctx := context.Background()
	if err := e.client.TokenValid(ctx); err != nil {
		t.Fatalf("TokenValid() error: %v", err)
	}
	e.sim.ExpireTokens()
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			email := fmt.Sprintf("refresh%02d@example.com", i)
			if _, err := e.client.CreateUser(ctx, createReq("create", userInfo(email, 1))); err != nil {
				errs <- fmt.Errorf("CreateUser(%q): %w", email, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := e.sim.Stats().TokensIssued; got != 2 {
		t.Errorf("tokens issued = %d; want 2 (one shared forced refresh)", got)
	}
	if got := e.sim.TotalCreations(); got != n {
		t.Errorf("creations = %d; want %d", got, n)
	}
}

func TestTokenPersistent401(t *testing.T) {
	tests := []struct {
		name  string
		times int
	}{
		{name: "every request", times: 0},
		{name: "many requests", times: 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, testenv.SimConfig{}, nil)
			e.sim.FailNext(tc.times, testenv.Fault{Status: http.StatusUnauthorized, Code: 124, Message: "Invalid access token."})
			_, err := e.client.CreateUser(context.Background(), createReq("create", userInfo("p401@example.com", 1)))
			var ae *zoom.APIError
			if !errors.As(err, &ae) || ae.StatusCode != http.StatusUnauthorized || ae.Code != 124 {
				t.Fatalf("CreateUser(%q) error = %v; want *zoom.APIError http 401 code 124", "p401@example.com", err)
			}
			if !errors.Is(err, zoom.ErrUnauthorized) {
				t.Errorf("errors.Is(%v, ErrUnauthorized) = false; want true", err)
			}
			e.checkNoSecrets(t, err)
			st := e.sim.Stats()
			if st.TokensIssued != 2 {
				t.Errorf("tokens issued = %d; want 2 (exactly one refresh)", st.TokensIssued)
			}
			if got := st.Requests[testenv.RouteCreateUser]; !reflect.DeepEqual(got, map[int]int{401: 2}) {
				t.Errorf("POST /v2/users answers = %v; want exactly two 401s", got)
			}
		})
	}
}

func TestTokenErrors(t *testing.T) {
	tests := []struct {
		name         string
		warm         bool // make one successful call first
		setup        func(*testenv.Simulator)
		wantStatus   int
		wantCode     string
		wantRejected bool
		wantDeadline bool
	}{
		{
			name:       "credentials rejected",
			setup:      func(s *testenv.Simulator) { s.RejectCredentials(true) },
			wantStatus: http.StatusBadRequest, wantCode: "invalid_client", wantRejected: true,
		},
		{
			// RejectCredentials also revokes the cached token: the 401
			// forces a refresh, which is refused.
			name: "credentials rejected with a cached token", warm: true,
			setup:      func(s *testenv.Simulator) { s.RejectCredentials(true) },
			wantStatus: http.StatusBadRequest, wantCode: "invalid_client", wantRejected: true,
		},
		{
			name: "token endpoint outage",
			setup: func(s *testenv.Simulator) {
				s.FailNextToken(1, testenv.Fault{Status: http.StatusServiceUnavailable, HTML: true})
			},
			wantStatus: http.StatusServiceUnavailable,
		},
		{
			name:  "token endpoint dropped",
			setup: func(s *testenv.Simulator) { s.FailNextToken(1, testenv.Fault{Drop: true}) },
		},
		{
			name:         "token endpoint too slow",
			setup:        func(s *testenv.Simulator) { s.FailNextToken(1, testenv.Fault{Delay: 20 * time.Second}) },
			wantDeadline: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, testenv.SimConfig{}, func(c *zoom.Config) { c.Timeout = 300 * time.Millisecond })
			ctx := context.Background()
			if tc.warm {
				if _, err := e.client.CreateUser(ctx, createReq("create", userInfo("warm@example.com", 1))); err != nil {
					t.Fatalf("CreateUser(%q) error: %v", "warm@example.com", err)
				}
			}
			tc.setup(e.sim)
			_, err := e.client.CreateUser(ctx, createReq("create", userInfo("tok@example.com", 1)))
			var te *zoom.TokenError
			if !errors.As(err, &te) {
				t.Fatalf("CreateUser(%q) error = %v; want *zoom.TokenError", "tok@example.com", err)
			}
			var ae *zoom.APIError
			if errors.As(err, &ae) {
				t.Errorf("CreateUser(%q) error = %v; want no *zoom.APIError", "tok@example.com", err)
			}
			if te.StatusCode != tc.wantStatus || te.ErrorCode != tc.wantCode {
				t.Errorf("CreateUser(%q) TokenError = http %d %q; want http %d %q", "tok@example.com", te.StatusCode, te.ErrorCode, tc.wantStatus, tc.wantCode)
			}
			if got := te.CredentialsRejected(); got != tc.wantRejected {
				t.Errorf("CreateUser(%q) CredentialsRejected() = %v; want %v", "tok@example.com", got, tc.wantRejected)
			}
			if got := errors.Is(err, context.DeadlineExceeded); got != tc.wantDeadline {
				t.Errorf("errors.Is(%v, context.DeadlineExceeded) = %v; want %v", err, got, tc.wantDeadline)
			}
			e.checkNoSecrets(t, err)
			msg := err.Error()
			for _, bad := range []string{"<", "cloudflare", e.sim.URL(), "tok@example.com"} {
				if strings.Contains(msg, bad) {
					t.Errorf("CreateUser(%q) error %q contains %q", "tok@example.com", msg, bad)
				}
			}
			if tc.wantRejected {
				return
			}
			if err := e.client.TokenValid(ctx); err != nil {
				t.Errorf("TokenValid() after a one-off token fault = %v; want nil", err)
			}
		})
	}
}

// TestTokenValidAfterRevocation: once the API has refused the cached token
// and the token endpoint refuses the credentials, readiness must not report
// the credentials as accepted.
func TestTokenValidAfterRevocation(t *testing.T) {
	tests := []struct {
		name string
		warm bool // a token is cached before the credentials are revoked
	}{
		{name: "no cached token"},
		{name: "cached token refused by the API", warm: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, testenv.SimConfig{}, nil)
			ctx := context.Background()
			if tc.warm {
				if _, err := e.client.CreateUser(ctx, createReq("create", userInfo("warm@example.com", 1))); err != nil {
					t.Fatalf("CreateUser(%q) error: %v", "warm@example.com", err)
				}
			}
			e.sim.RejectCredentials(true)
			// The call that finds out.
			_, err := e.client.CreateUser(ctx, createReq("create", userInfo("revoked@example.com", 1)))
			var te *zoom.TokenError
			if !errors.As(err, &te) || !te.CredentialsRejected() {
				t.Fatalf("CreateUser(%q) error = %v; want a rejected *zoom.TokenError", "revoked@example.com", err)
			}
			err = e.client.TokenValid(ctx)
			if !errors.As(err, &te) || !te.CredentialsRejected() {
				t.Errorf("TokenValid() = %v; want a rejected *zoom.TokenError", err)
			}
			e.checkNoSecrets(t, err)
		})
	}
}

func TestTokenValid(t *testing.T) {
	e := newEnv(t, testenv.SimConfig{}, nil)
	ctx := context.Background()
	for range 3 {
		if err := e.client.TokenValid(ctx); err != nil {
			t.Fatalf("TokenValid() = %v; want nil", err)
		}
	}
	if got := e.sim.Stats().TokensIssued; got != 1 {
		t.Errorf("tokens issued by 3 TokenValid calls = %d; want 1", got)
	}
	if got := len(e.routeRequests(testenv.RouteCreateUser)); got != 0 {
		t.Errorf("API requests by TokenValid = %d; want 0", got)
	}
}

// countingLimiter counts Wait calls and delegates to an optional limiter.
type countingLimiter struct {
	next  zoom.Limiter
	err   error
	waits atomic.Int64

	mu    sync.Mutex
	calls []zoom.Call
}

func (l *countingLimiter) Wait(ctx context.Context, call zoom.Call) error {
	l.waits.Add(1)
	l.mu.Lock()
	l.calls = append(l.calls, call)
	l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	if l.next == nil {
		return nil
	}
	return l.next.Wait(ctx, call)
}

// Ensure the client paces only what it sends on its own: the calls its
// caller makes are the caller's to pace (the service checks that a
// request is still its own between its pace and its call), and the
// request sent again after a 401 waits on the Limiter, with the call's
// action.
func TestLimiterPacesOnlyResends(t *testing.T) {
	lim := &countingLimiter{}
	e := newEnv(t, testenv.SimConfig{}, func(c *zoom.Config) { c.Limiter = lim })
	ctx := context.Background()
	if err := e.client.TokenValid(ctx); err != nil {
		t.Fatalf("TokenValid() error: %v", err)
	}
	const n = 10
	for i := range n {
		email := fmt.Sprintf("count%02d@example.com", i)
		if _, err := e.client.CreateUser(ctx, createReq("create", userInfo(email, 1))); err != nil {
			t.Fatalf("CreateUser(%q) error: %v", email, err)
		}
	}
	if got := lim.waits.Load(); got != 0 {
		t.Errorf("limiter waits after %d calls = %d; want 0 (the caller paces)", n, got)
	}
	e.sim.ExpireTokens()
	if _, err := e.client.CreateUser(ctx, createReq("create", userInfo("resent@example.com", 1))); err != nil {
		t.Fatalf("CreateUser after ExpireTokens: %v", err)
	}
	if got := lim.waits.Load(); got != 1 {
		t.Fatalf("limiter waits after a 401 = %d; want 1 (the re-send)", got)
	}
	if c := lim.calls[0]; c.Op != "create user" || c.Action != "create" || c.Label != zoom.LabelLight {
		t.Errorf("limiter saw call %+v; want the create user call with its action", c)
	}
	if got := e.sim.Stats().TokensIssued; got != 2 {
		t.Errorf("tokens issued = %d; want 2", got)
	}
}

// Ensure a re-send the Limiter refuses is not made.
func TestLimiterError(t *testing.T) {
	tests := []struct {
		name string
		lim  func() (zoom.Limiter, context.Context, func())
		want error
	}{
		{
			name: "limiter refuses",
			lim: func() (zoom.Limiter, context.Context, func()) {
				return &countingLimiter{err: errLimiter}, context.Background(), func() {}
			},
			want: errLimiter,
		},
		{
			name: "cancelled while waiting",
			lim: func() (zoom.Limiter, context.Context, func()) {
				ctx, cancel := context.WithCancel(context.Background())
				lim := limiterFunc(func(ctx context.Context, _ zoom.Call) error { cancel(); <-ctx.Done(); return ctx.Err() })
				return lim, ctx, cancel
			},
			want: context.Canceled,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lim, ctx, cancel := tc.lim()
			defer cancel()
			e := newEnv(t, testenv.SimConfig{}, func(c *zoom.Config) { c.Limiter = lim })
			if err := e.client.TokenValid(context.Background()); err != nil {
				t.Fatal(err)
			}
			e.sim.ExpireTokens()
			_, err := e.client.CreateUser(ctx, createReq("create", userInfo("limerr@example.com", 1)))
			if !errors.Is(err, tc.want) {
				t.Errorf("CreateUser(%q) error = %v; want %v", "limerr@example.com", err, tc.want)
			}
			if n := len(e.routeRequests(testenv.RouteCreateUser)); n != 1 {
				t.Errorf("POSTs after a limiter error on the re-send = %d; want 1 (the refused one)", n)
			}
		})
	}
}

var errLimiter = errors.New("limiter closed")

type limiterFunc func(context.Context, zoom.Call) error

func (f limiterFunc) Wait(ctx context.Context, c zoom.Call) error { return f(ctx, c) }

// transientStatus is what the service retries without change: 408, 429
// and 5xx (provision's classify decides; the client reports the status).
func transientStatus(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
}
