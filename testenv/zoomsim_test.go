package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// testClock is a sim clock the tests move by hand, so that token expiry and
// rate-limit windows need no sleeping.
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

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

var epoch = time.Date(2026, 3, 1, 15, 4, 5, 0, time.UTC)

func startSim(t *testing.T, cfg SimConfig) *Simulator {
	t.Helper()
	s := NewSimulator(cfg)
	t.Cleanup(s.Close)
	return s
}

// newClient returns a client with its own transport, closed at cleanup so
// that no keep-alive goroutines outlive the test.
func newClient(t *testing.T, timeout time.Duration) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: timeout}
}

type result struct {
	status int
	header http.Header
	body   []byte
}

// zoomErrBody decodes Zoom's error envelope.
type zoomErrBody struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Errors  []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

func (r result) zoomErr(t *testing.T) zoomErrBody {
	t.Helper()
	var e zoomErrBody
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", r.body, err)
	}
	return e
}

func (r result) fields() []string {
	var e zoomErrBody
	_ = json.Unmarshal(r.body, &e)
	var f []string
	for _, fe := range e.Errors {
		f = append(f, fe.Field)
	}
	return f
}

// send makes one request; auth is the whole Authorization header.
func send(c *http.Client, method, rawURL, auth, contentType string, body []byte) (result, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, rawURL, rd)
	if err != nil {
		return result{}, err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return result{}, err
	}
	return result{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

func mustSend(t *testing.T, c *http.Client, method, rawURL, auth, contentType string, body []byte) result {
	t.Helper()
	r, err := send(c, method, rawURL, auth, contentType, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	return r
}

func tokenForm(account string) []byte {
	return []byte(url.Values{"grant_type": {"account_credentials"}, "account_id": {account}}.Encode())
}

// getToken fetches a token with the default credentials and returns the
// Authorization header value for the API.
func getToken(t *testing.T, c *http.Client, s *Simulator) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.TokenURL(), bytes.NewReader(tokenForm(DefaultSimAccountID)))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(DefaultSimClientID, DefaultSimClientSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("token request: %v", err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("token request = %d, %v; want 200", resp.StatusCode, err)
	}
	return "Bearer " + tok.AccessToken
}

func createJSON(action, email string, typ int) []byte {
	b, _ := json.Marshal(map[string]any{
		"action":    action,
		"user_info": map[string]any{"email": email, "type": typ, "first_name": "Ada", "last_name": "Lovelace"},
	})
	return b
}

// create posts a create-user request.
func create(c *http.Client, s *Simulator, auth, action, email string) (result, error) {
	return send(c, http.MethodPost, s.APIURL()+"/users", auth, "application/json", createJSON(action, email, 1))
}

func mustCreate(t *testing.T, c *http.Client, s *Simulator, auth, action, email string) result {
	t.Helper()
	r, err := create(c, s, auth, action, email)
	if err != nil {
		t.Fatalf("create %q: %v", email, err)
	}
	return r
}

// userURL escapes '@' and '+' too, as many Zoom clients do; url.PathEscape
// alone leaves them.
func userURL(s *Simulator, idOrEmail string) string {
	esc := strings.NewReplacer("@", "%40", "+", "%2B").Replace(url.PathEscape(idOrEmail))
	return s.APIURL() + "/users/" + esc
}

func emailURL(s *Simulator, email string) string {
	return s.APIURL() + "/users/email?email=" + url.QueryEscape(email)
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestTokenEndpoint(t *testing.T) {
	s := startSim(t, SimConfig{TokenTTL: 10 * time.Minute})
	c := newClient(t, 5*time.Second)
	good := tokenForm(DefaultSimAccountID)
	form := "application/x-www-form-urlencoded"

	tests := []struct {
		name        string
		method      string
		user, pass  string // empty user: no Basic auth
		contentType string
		body        []byte
		query       string
		wantStatus  int
		wantError   string
	}{
		{"good credentials", "POST", DefaultSimClientID, DefaultSimClientSecret, form, good, "", 200, ""},
		{"params in query", "POST", DefaultSimClientID, DefaultSimClientSecret, "", nil, string(good), 200, ""},
		{"wrong secret", "POST", DefaultSimClientID, "nope", form, good, "", 400, "invalid_client"},
		{"wrong client id", "POST", "other", DefaultSimClientSecret, form, good, "", 400, "invalid_client"},
		{"missing basic auth", "POST", "", "", form, good, "", 400, "invalid_client"},
		{"wrong account", "POST", DefaultSimClientID, DefaultSimClientSecret, form, tokenForm("other-account"), "", 400, "invalid_request"},
		{"missing account", "POST", DefaultSimClientID, DefaultSimClientSecret, form, []byte("grant_type=account_credentials"), "", 400, "invalid_request"},
		{"wrong grant", "POST", DefaultSimClientID, DefaultSimClientSecret, form,
			[]byte("grant_type=client_credentials&account_id=" + DefaultSimAccountID), "", 400, "unsupported_grant_type"},
		{"missing grant", "POST", DefaultSimClientID, DefaultSimClientSecret, form, []byte("account_id=" + DefaultSimAccountID), "", 400, "invalid_request"},
		{"json body", "POST", DefaultSimClientID, DefaultSimClientSecret, "application/json",
			[]byte(`{"grant_type":"account_credentials","account_id":"sim-account"}`), "", 400, "invalid_request"},
		{"GET", "GET", DefaultSimClientID, DefaultSimClientSecret, "", nil, string(good), 405, "invalid_request"},
	}
	wantIssued := 0
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := s.TokenURL()
			if tc.query != "" {
				u += "?" + tc.query
			}
			var rd io.Reader
			if tc.body != nil {
				rd = bytes.NewReader(tc.body)
			}
			req, err := http.NewRequest(tc.method, u, rd)
			if err != nil {
				t.Fatal(err)
			}
			if tc.user != "" {
				req.SetBasicAuth(tc.user, tc.pass)
			}
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				AccessToken string `json:"access_token"`
				TokenType   string `json:"token_type"`
				ExpiresIn   int    `json:"expires_in"`
				Scope       string `json:"scope"`
				APIURL      string `json:"api_url"`
				Reason      string `json:"reason"`
				Error       string `json:"error"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("token body: %v", err)
			}
			if resp.StatusCode != tc.wantStatus || body.Error != tc.wantError {
				t.Fatalf("token %s = %d %q (%q); want %d %q", tc.name, resp.StatusCode, body.Error, body.Reason, tc.wantStatus, tc.wantError)
			}
			if tc.wantStatus != 200 {
				if body.Reason == "" || body.AccessToken != "" {
					t.Errorf("error answer = %+v; want a reason and no token", body)
				}
				return
			}
			wantIssued++
			if body.AccessToken == "" || body.TokenType != "bearer" || body.ExpiresIn != 600 ||
				!strings.Contains(body.Scope, "user:write:admin") || body.APIURL != s.URL() {
				t.Errorf("token answer = %+v; want a bearer token for 600 s with user:write:admin and api_url %s", body, s.URL())
			}
		})
	}
	if got := s.Stats().TokensIssued; got != wantIssued {
		t.Errorf("Stats().TokensIssued = %d; want %d", got, wantIssued)
	}
}

func TestBearerAuth(t *testing.T) {
	const ttl = time.Hour
	tests := []struct {
		name        string
		auth        func(t *testing.T, c *http.Client, s *Simulator, clk *testClock) string
		wantStatus  int
		wantMessage string
	}{
		{"missing", func(*testing.T, *http.Client, *Simulator, *testClock) string { return "" },
			401, "Invalid access token."},
		{"unknown token", func(*testing.T, *http.Client, *Simulator, *testClock) string { return "Bearer forged" },
			401, "Invalid access token."},
		{"basic scheme", func(*testing.T, *http.Client, *Simulator, *testClock) string {
			return "Basic c2ltLWNsaWVudDpzaW0tc2VjcmV0"
		},
			401, "Invalid access token."},
		{"valid", func(t *testing.T, c *http.Client, s *Simulator, _ *testClock) string { return getToken(t, c, s) },
			200, ""},
		{"lower-case scheme", func(t *testing.T, c *http.Client, s *Simulator, _ *testClock) string {
			return "bearer " + strings.TrimPrefix(getToken(t, c, s), "Bearer ")
		}, 200, ""},
		{"just before expiry", func(t *testing.T, c *http.Client, s *Simulator, clk *testClock) string {
			a := getToken(t, c, s)
			clk.Advance(ttl - time.Nanosecond)
			return a
		}, 200, ""},
		{"ttl passed", func(t *testing.T, c *http.Client, s *Simulator, clk *testClock) string {
			a := getToken(t, c, s)
			clk.Advance(ttl)
			return a
		}, 401, "Access token is expired."},
		{"ExpireTokens", func(t *testing.T, c *http.Client, s *Simulator, _ *testClock) string {
			a := getToken(t, c, s)
			s.ExpireTokens()
			return a
		}, 401, "Access token is expired."},
		{"new token after ExpireTokens", func(t *testing.T, c *http.Client, s *Simulator, _ *testClock) string {
			getToken(t, c, s)
			s.ExpireTokens()
			return getToken(t, c, s)
		}, 200, ""},
		{"RejectCredentials", func(t *testing.T, c *http.Client, s *Simulator, _ *testClock) string {
			a := getToken(t, c, s)
			s.RejectCredentials(true)
			return a
		}, 401, "Invalid access token."},
		{"old token after RejectCredentials(false)", func(t *testing.T, c *http.Client, s *Simulator, _ *testClock) string {
			a := getToken(t, c, s)
			s.RejectCredentials(true)
			s.RejectCredentials(false)
			return a
		}, 401, "Invalid access token."},
		{"new token after RejectCredentials(false)", func(t *testing.T, c *http.Client, s *Simulator, _ *testClock) string {
			s.RejectCredentials(true)
			s.RejectCredentials(false)
			return getToken(t, c, s)
		}, 200, ""},
		{"first of two tokens", func(t *testing.T, c *http.Client, s *Simulator, _ *testClock) string {
			a := getToken(t, c, s)
			if b := getToken(t, c, s); b == a {
				t.Errorf("two token requests returned the same token")
			}
			return a
		}, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newTestClock(epoch)
			s := startSim(t, SimConfig{Now: clk.Now, TokenTTL: ttl})
			c := newClient(t, 5*time.Second)
			auth := tc.auth(t, c, s, clk)
			r := mustSend(t, c, "GET", emailURL(s, "x@example.com"), auth, "", nil)
			if r.status != tc.wantStatus {
				t.Fatalf("GET with %s = %d %s; want %d", tc.name, r.status, r.body, tc.wantStatus)
			}
			if !strings.HasPrefix(r.header.Get("x-zm-trackingid"), "v=2.0;") {
				t.Errorf("x-zm-trackingid = %q; want a tracking id", r.header.Get("x-zm-trackingid"))
			}
			if tc.wantStatus == 200 {
				return
			}
			if e := r.zoomErr(t); e.Code != 124 || e.Message != tc.wantMessage {
				t.Errorf("401 body = %+v; want code 124 %q", e, tc.wantMessage)
			}
		})
	}
}

func TestRejectCredentialsTokenEndpoint(t *testing.T) {
	s := startSim(t, SimConfig{})
	c := newClient(t, 5*time.Second)
	s.RejectCredentials(true)
	req, _ := http.NewRequest("POST", s.TokenURL(), bytes.NewReader(tokenForm(DefaultSimAccountID)))
	req.SetBasicAuth(DefaultSimClientID, DefaultSimClientSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := `{"reason":"Invalid client_id or client_secret","error":"invalid_client"}`
	if resp.StatusCode != 400 || string(b) != want {
		t.Errorf("token with rejected credentials = %d %s; want 400 %s", resp.StatusCode, b, want)
	}
}

func TestCreateUserValidation(t *testing.T) {
	s := startSim(t, SimConfig{})
	c := newClient(t, 5*time.Second)
	auth := getToken(t, c, s)
	const jsonCT = "application/json"
	n := 0
	// body builds a create body with a fresh email unless one is given.
	body := func(action string, info map[string]any) []byte {
		n++
		if _, ok := info["email"]; !ok {
			info["email"] = fmt.Sprintf("user%d@example.com", n)
		}
		if _, ok := info["type"]; !ok {
			info["type"] = 1
		}
		m := map[string]any{"user_info": info}
		if action != "" {
			m["action"] = action
		}
		b, _ := json.Marshal(m)
		return b
	}
	pw := func(p string) map[string]any { return map[string]any{"password": p} }
	const invalidJSON = "Request Body should be a valid JSON object."
	const badPassword = "Invalid parameter: password"

	tests := []struct {
		name        string
		contentType string
		body        []byte
		wantStatus  int
		wantMessage string   // checked for 400s without field errors
		wantFields  []string // field errors, in order
	}{
		{"malformed json", jsonCT, []byte(`{"action":`), 400, invalidJSON, nil},
		{"array", jsonCT, []byte(`[]`), 400, invalidJSON, nil},
		{"null", jsonCT, []byte(`null`), 400, invalidJSON, nil},
		{"empty body", jsonCT, nil, 400, invalidJSON, nil},
		{"text/plain", "text/plain", body("create", map[string]any{}), 400, invalidJSON, nil},
		{"json with charset", "application/json; charset=utf-8", body("create", map[string]any{}), 201, "", nil},
		{"type as string", jsonCT, body("create", map[string]any{"type": "1"}), 400, "", []string{"user_info.type"}},
		{"missing action", jsonCT, body("", map[string]any{}), 400, "", []string{"action"}},
		{"unknown action", jsonCT, body("invite", map[string]any{}), 400, "", []string{"action"}},
		{"missing user_info", jsonCT, []byte(`{"action":"create"}`), 400, "", []string{"user_info.email", "user_info.type"}},
		{"missing email", jsonCT, body("create", map[string]any{"email": ""}), 400, "", []string{"user_info.email"}},
		{"email without @", jsonCT, body("create", map[string]any{"email": "not-an-email"}), 400, "", []string{"user_info.email"}},
		{"email with two @", jsonCT, body("create", map[string]any{"email": "a@b@example.com"}), 400, "", []string{"user_info.email"}},
		{"email with space", jsonCT, body("create", map[string]any{"email": "a b@example.com"}), 400, "", []string{"user_info.email"}},
		{"email without dot", jsonCT, body("create", map[string]any{"email": "a@localhost"}), 400, "", []string{"user_info.email"}},
		{"email with display name", jsonCT, body("create", map[string]any{"email": "A <a@example.com>"}), 400, "", []string{"user_info.email"}},
		{"email 128 chars", jsonCT, body("create", map[string]any{"email": strings.Repeat("a", 116) + "@example.com"}), 201, "", nil},
		{"email 129 chars", jsonCT, body("create", map[string]any{"email": strings.Repeat("b", 117) + "@example.com"}), 400, "", []string{"user_info.email"}},
		{"email with plus", jsonCT, body("create", map[string]any{"email": "x+tag@sub.example.com"}), 201, "", nil},
		{"missing type", jsonCT, body("create", map[string]any{"type": 0}), 400, "", []string{"user_info.type"}},
		{"type 2", jsonCT, body("create", map[string]any{"type": 2}), 201, "", nil},
		{"type 4", jsonCT, body("create", map[string]any{"type": 4}), 201, "", nil},
		{"type 3 on-prem", jsonCT, body("create", map[string]any{"type": 3}), 400, "Your account can't set user type as On-prem.", nil},
		{"type 5", jsonCT, body("create", map[string]any{"type": 5}), 400, "", []string{"user_info.type"}},
		{"type 99 with create", jsonCT, body("create", map[string]any{"type": 99}), 400, "", []string{"user_info.type"}},
		{"type 99 with ssoCreate", jsonCT, body("ssoCreate", map[string]any{"type": 99}), 201, "", nil},
		{"first_name 64 runes", jsonCT, body("create", map[string]any{"first_name": strings.Repeat("é", 64)}), 201, "", nil},
		{"first_name 65", jsonCT, body("create", map[string]any{"first_name": strings.Repeat("x", 65)}), 400, "", []string{"user_info.first_name"}},
		{"last_name 65", jsonCT, body("create", map[string]any{"last_name": strings.Repeat("x", 65)}), 400, "", []string{"user_info.last_name"}},
		{"display_name 128", jsonCT, body("create", map[string]any{"display_name": strings.Repeat("x", 128)}), 201, "", nil},
		{"display_name 129", jsonCT, body("create", map[string]any{"display_name": strings.Repeat("x", 129)}), 400, "", []string{"user_info.display_name"}},
		{"several errors", jsonCT, body("bad", map[string]any{"email": "nope", "type": 7}), 400, "", []string{"action", "user_info.email", "user_info.type"}},
		{"autoCreate good password", jsonCT, body("autoCreate", pw("Zoom2024Pass")), 201, "", nil},
		{"autoCreate 8 chars", jsonCT, body("autoCreate", pw("Zo2024ab")), 201, "", nil},
		{"autoCreate 32 chars", jsonCT, body("autoCreate", pw("Ab1"+strings.Repeat("x", 29))), 201, "", nil},
		{"autoCreate run of 7", jsonCT, body("autoCreate", pw("Ab1234567x")), 201, "", nil},
		{"autoCreate missing password", jsonCT, body("autoCreate", map[string]any{}), 400, badPassword, nil},
		{"autoCreate 7 chars", jsonCT, body("autoCreate", pw("Zo2024a")), 400, badPassword, nil},
		{"autoCreate 33 chars", jsonCT, body("autoCreate", pw("Ab1"+strings.Repeat("x", 30))), 400, badPassword, nil},
		{"autoCreate no digit", jsonCT, body("autoCreate", pw("ZoomPassword")), 400, badPassword, nil},
		{"autoCreate no upper", jsonCT, body("autoCreate", pw("zoom2024pass")), 400, badPassword, nil},
		{"autoCreate no lower", jsonCT, body("autoCreate", pw("ZOOM2024PASS")), 400, badPassword, nil},
		{"autoCreate repeated char", jsonCT, body("autoCreate", pw("aaaaaaaa")), 400, badPassword, nil},
		{"autoCreate 12345678", jsonCT, body("autoCreate", pw("Ab12345678")), 400, badPassword, nil},
		{"autoCreate abcdefgh", jsonCT, body("autoCreate", pw("XabcdefgH1")), 400, badPassword, nil},
		{"autoCreate 87654321", jsonCT, body("autoCreate", pw("Zz87654321")), 400, badPassword, nil},
		{"create ignores password", jsonCT, body("create", pw("x")), 201, "", nil},
		{"custCreate ignores password", jsonCT, body("custCreate", pw("12345678")), 201, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustSend(t, c, "POST", s.APIURL()+"/users", auth, tc.contentType, tc.body)
			if r.status != tc.wantStatus {
				t.Fatalf("POST /users %s = %d %s; want %d", tc.body, r.status, r.body, tc.wantStatus)
			}
			if r.status == 201 {
				return
			}
			e := r.zoomErr(t)
			if e.Code != 300 {
				t.Errorf("POST /users %s code = %d; want 300", tc.body, e.Code)
			}
			if tc.wantFields == nil {
				if e.Message != tc.wantMessage || len(e.Errors) != 0 {
					t.Errorf("POST /users %s = %s; want message %q and no field errors", tc.body, r.body, tc.wantMessage)
				}
				return
			}
			if got := r.fields(); e.Message != "Validation Failed." || !slices.Equal(got, tc.wantFields) {
				t.Errorf("POST /users %s = %q fields %q; want \"Validation Failed.\" fields %q", tc.body, e.Message, got, tc.wantFields)
			}
		})
	}
	if got, want := s.TotalCreations(), 14; got != want {
		t.Errorf("TotalCreations() = %d; want %d (one per 201 row)", got, want)
	}
}

func TestCreateThenConflict(t *testing.T) {
	clk := newTestClock(epoch)
	s := startSim(t, SimConfig{Now: clk.Now})
	c := newClient(t, 5*time.Second)
	auth := getToken(t, c, s)

	r := mustCreate(t, c, s, auth, "create", "alice@example.com")
	var u struct {
		ID        string `json:"id"`
		Email     string `json:"email"`
		FirstName string `json:"first_name"`
		LastName  string `json:"last_name"`
		Type      int    `json:"type"`
	}
	if err := json.Unmarshal(r.body, &u); err != nil || r.status != 201 {
		t.Fatalf("create alice = %d %s (%v); want 201", r.status, r.body, err)
	}
	if len(u.ID) != 22 || u.Email != "alice@example.com" || u.FirstName != "Ada" || u.LastName != "Lovelace" || u.Type != 1 {
		t.Errorf("create alice body = %+v; want a 22-char id and the sent fields", u)
	}

	r = mustCreate(t, c, s, auth, "custCreate", "ALICE@Example.com")
	if e := r.zoomErr(t); r.status != 409 || e.Code != 1005 || e.Message != "User already in the account: ALICE@Example.com" {
		t.Errorf("second create = %d %+v; want 409 1005", r.status, e)
	}
	if got := s.Creations("Alice@example.com"); got != 1 {
		t.Errorf("Creations(alice) = %d; want 1", got)
	}
	su, ok := s.User("alice@EXAMPLE.com")
	if !ok || su.ID != u.ID || su.Status != "pending" || su.Action != "create" || !su.CreatedAt.Equal(epoch) {
		t.Errorf("User(alice) = %+v, %v; want pending user %s created at %v", su, ok, u.ID, epoch)
	}

	mustCreate(t, c, s, auth, "custCreate", "carol@example.com")
	if su, _ := s.User("carol@example.com"); su.Status != "active" {
		t.Errorf("custCreate user status = %q; want active", su.Status)
	}

	id := s.AddUser("bob@example.com", 2)
	if again := s.AddUser("BOB@example.com", 1); again != id {
		t.Errorf("AddUser twice = %q, %q; want the same id", id, again)
	}
	if r := mustCreate(t, c, s, auth, "create", "bob@example.com"); r.status != 409 {
		t.Errorf("create pre-existing bob = %d; want 409", r.status)
	}
	if got := s.Creations("bob@example.com"); got != 0 {
		t.Errorf("Creations(bob) = %d; want 0 (added, not created)", got)
	}
	if got := s.TotalCreations(); got != 2 {
		t.Errorf("TotalCreations() = %d; want 2", got)
	}
	if _, ok := s.User("nobody@example.com"); ok {
		t.Errorf("User(nobody) found; want not found")
	}
}

func TestZoomPhoneLicences(t *testing.T) {
	phoneBody := func(email string, phone bool) []byte {
		b, _ := json.Marshal(map[string]any{"action": "create", "user_info": map[string]any{
			"email": email, "type": 2, "feature": map[string]any{"zoom_phone": phone}}})
		return b
	}
	tests := []struct {
		name     string
		licences int
		phone    bool
		want     []int
	}{
		{"none", 0, true, []int{404, 404}},
		{"none needed", 0, false, []int{201, 201}},
		{"one", 1, true, []int{201, 404}},
		{"unlimited", -1, true, []int{201, 201, 201}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := startSim(t, SimConfig{PhoneLicenses: tc.licences})
			c := newClient(t, 5*time.Second)
			auth := getToken(t, c, s)
			for i, want := range tc.want {
				email := fmt.Sprintf("p%d@example.com", i)
				r := mustSend(t, c, "POST", s.APIURL()+"/users", auth, "application/json", phoneBody(email, tc.phone))
				if r.status != want {
					t.Fatalf("create #%d = %d %s; want %d", i, r.status, r.body, want)
				}
				_, stored := s.User(email)
				if stored != (want == 201) {
					t.Errorf("User(%q) stored = %v; want %v", email, stored, want == 201)
				}
				if want == 404 {
					if e := r.zoomErr(t); e.Code != 1102 {
						t.Errorf("no-licence body = %+v; want code 1102", e)
					}
				}
			}
		})
	}
}

func TestGetUser(t *testing.T) {
	clk := newTestClock(epoch)
	s := startSim(t, SimConfig{Now: clk.Now})
	c := newClient(t, 5*time.Second)
	auth := getToken(t, c, s)
	const email = "alice+tag@example.com"
	var created struct{ ID string }
	if err := json.Unmarshal(mustCreate(t, c, s, auth, "create", email).body, &created); err != nil {
		t.Fatal(err)
	}
	addedAt := clk.Now()
	bobID := s.AddUser("bob@example.com", 2)
	clk.Advance(30 * time.Minute) // Less than the token lifetime.
	now := clk.Now().Format(time.RFC3339)

	tests := []struct {
		name           string
		url            string
		wantStatus     int
		wantID         string
		wantUserStatus string // user status
		wantCreated    string
	}{
		{"escaped email", s.APIURL() + "/users/alice%2Btag%40example.com", 200, created.ID, "pending", now},
		{"email other case", userURL(s, "ALICE+tag@example.com"), 200, created.ID, "pending", now},
		{"unescaped @ and +", s.APIURL() + "/users/alice+tag@example.com", 200, created.ID, "pending", now},
		{"id", userURL(s, created.ID), 200, created.ID, "pending", now},
		{"added user by id", userURL(s, bobID), 200, bobID, "active", addedAt.Format(time.RFC3339)},
		{"added user by email", userURL(s, "bob@example.com"), 200, bobID, "active", addedAt.Format(time.RFC3339)},
		{"unknown", userURL(s, "nobody@example.com"), 404, "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustSend(t, c, "GET", tc.url, auth, "", nil)
			if r.status != tc.wantStatus {
				t.Fatalf("GET %s = %d %s; want %d", tc.url, r.status, r.body, tc.wantStatus)
			}
			if r.status == 404 {
				if e := r.zoomErr(t); e.Code != 1001 || e.Message != "User does not exist: nobody@example.com." {
					t.Errorf("GET unknown = %+v; want 1001 \"User does not exist: nobody@example.com.\"", e)
				}
				return
			}
			var u struct {
				ID, Email, Status string
				Type              int
				CreatedAt         string `json:"created_at"`
			}
			if err := json.Unmarshal(r.body, &u); err != nil {
				t.Fatal(err)
			}
			if u.ID != tc.wantID || u.Status != tc.wantUserStatus || u.CreatedAt != tc.wantCreated || u.Email == "" || u.Type == 0 {
				t.Errorf("GET %s = %+v; want id %s status %s created_at %s", tc.url, u, tc.wantID, tc.wantUserStatus, tc.wantCreated)
			}
		})
	}
	// The escaped path reaches the simulator as sent.
	var paths []string
	for _, rec := range s.Requests() {
		if rec.Route == RouteGetUser {
			paths = append(paths, rec.Path)
		}
	}
	if !slices.Contains(paths, "/v2/users/alice%2Btag%40example.com") {
		t.Errorf("recorded GET paths = %q; want the escaped email path", paths)
	}
}

func TestEmailExists(t *testing.T) {
	s := startSim(t, SimConfig{})
	c := newClient(t, 5*time.Second)
	auth := getToken(t, c, s)
	mustCreate(t, c, s, auth, "create", "alice@example.com")
	sso := mustSend(t, c, "POST", s.APIURL()+"/users", auth, "application/json", createJSON("ssoCreate", "sso@example.com", 1))
	if sso.status != 201 {
		t.Fatalf("ssoCreate = %d; want 201", sso.status)
	}
	tests := []struct {
		email      string
		wantStatus int
		want       bool
	}{
		{"alice@example.com", 200, true},
		{"Alice@Example.com", 200, true},
		{"nobody@example.com", 200, false},
		{"sso@example.com", 200, false}, // Zoom only reports email sign-ins.
		{"", 400, false},
	}
	for _, tc := range tests {
		r := mustSend(t, c, "GET", emailURL(s, tc.email), auth, "", nil)
		var got struct {
			Existed *bool `json:"existed_email"`
		}
		_ = json.Unmarshal(r.body, &got)
		if r.status != tc.wantStatus || (r.status == 200 && (got.Existed == nil || *got.Existed != tc.want)) {
			t.Errorf("GET /users/email?email=%s = %d %s; want %d existed_email=%v", tc.email, r.status, r.body, tc.wantStatus, tc.want)
		}
	}
}

func TestUnknownRoutes(t *testing.T) {
	s := startSim(t, SimConfig{})
	c := newClient(t, 5*time.Second)
	auth := getToken(t, c, s)
	for _, u := range []string{s.APIURL() + "/meetings", s.URL() + "/elsewhere"} {
		if r := mustSend(t, c, "GET", u, auth, "", nil); r.status != 404 {
			t.Errorf("GET %s = %d; want 404", u, r.status)
		}
	}
	if r := mustSend(t, c, "GET", s.APIURL()+"/meetings", "", "", nil); r.status != 401 {
		t.Errorf("GET /v2/meetings without token = %d; want 401 (auth comes first)", r.status)
	}
}

func TestPerSecondLimit(t *testing.T) {
	const qpsMessage = "You have reached the maximum per-second rate limit for this API. Try again later."
	clk := newTestClock(time.Date(2026, 3, 1, 12, 0, 0, 250e6, time.UTC))
	s := startSim(t, SimConfig{Now: clk.Now, RatePerSecond: 2})
	c := newClient(t, 5*time.Second)
	auth := getToken(t, c, s)
	getToken(t, c, s) // The token endpoint is not rate limited.

	// GET and POST share the Light limit.
	r := mustSend(t, c, "GET", emailURL(s, "x@example.com"), auth, "", nil)
	if r.status != 200 || r.header.Get("X-RateLimit-Category") != "Light" ||
		r.header.Get("X-RateLimit-Limit") != "2" || r.header.Get("X-RateLimit-Remaining") != "1" {
		t.Errorf("first request = %d %v; want 200 with Light/2/1 rate-limit headers", r.status, r.header)
	}
	r = mustCreate(t, c, s, auth, "create", "a@example.com")
	if r.status != 201 || r.header.Get("X-RateLimit-Remaining") != "0" {
		t.Errorf("second request = %d remaining %q; want 201 remaining 0", r.status, r.header.Get("X-RateLimit-Remaining"))
	}
	r = mustCreate(t, c, s, auth, "create", "b@example.com")
	e := r.zoomErr(t)
	if r.status != 429 || e.Code != 429 || e.Message != qpsMessage {
		t.Fatalf("third request = %d %+v; want 429 per-second", r.status, e)
	}
	wantHeaders := map[string]string{
		"X-RateLimit-Category":  "Light",
		"X-RateLimit-Type":      "QPS",
		"X-RateLimit-Limit":     "2",
		"X-RateLimit-Remaining": "0",
		"Retry-After":           "2026-03-01T12:00:01Z",
	}
	for k, want := range wantHeaders {
		if got := r.header.Get(k); got != want {
			t.Errorf("429 header %s = %q; want %q", k, got, want)
		}
	}
	if r.header.Get("x-zm-trackingid") == "" {
		t.Errorf("429 has no x-zm-trackingid")
	}
	if got := s.Creations("b@example.com"); got != 0 {
		t.Errorf("Creations(b) after 429 = %d; want 0", got)
	}

	s.SetOmitRateLimitHeaders(true)
	r = mustSend(t, c, "GET", userURL(s, "a@example.com"), auth, "", nil)
	if r.status != 429 || r.header.Get("X-RateLimit-Type") != "" || r.header.Get("Retry-After") != "" ||
		r.zoomErr(t).Message != qpsMessage {
		t.Errorf("429 without headers = %d %v %s; want 429 without Type/Retry-After and the same message", r.status, r.header, r.body)
	}

	clk.Advance(750 * time.Millisecond) // The next one-second window.
	if r := mustCreate(t, c, s, auth, "create", "b@example.com"); r.status != 201 {
		t.Errorf("create in next window = %d; want 201", r.status)
	}

	s.SetRatePerSecond(0)
	for i := range 5 {
		r := mustSend(t, c, "GET", emailURL(s, "x@example.com"), auth, "", nil)
		if r.status != 200 || r.header.Get("X-RateLimit-Limit") != "" {
			t.Fatalf("unlimited request #%d = %d limit %q; want 200 without limit headers", i, r.status, r.header.Get("X-RateLimit-Limit"))
		}
	}
	if got := s.Stats().RateLimited[RateLimitQPS]; got != 2 {
		t.Errorf("Stats().RateLimited[QPS] = %d; want 2", got)
	}
}

func TestDailyCreateLimit(t *testing.T) {
	t.Run("24h window", func(t *testing.T) {
		clk := newTestClock(epoch) // 15:04:05 UTC
		s := startSim(t, SimConfig{Now: clk.Now, DailyCreateLimit: 2})
		c := newClient(t, 5*time.Second)
		auth := getToken(t, c, s)
		for _, step := range []struct{ action, email string }{
			{"create", "a@example.com"},
			{"autoCreate", "b@example.com"}, // Other actions are not limited
			{"create", "c@example.com"},
			{"custCreate", "d@example.com"}, // nor counted.
		} {
			if r := mustSend(t, c, "POST", s.APIURL()+"/users", auth, "application/json",
				[]byte(fmt.Sprintf(`{"action":%q,"user_info":{"email":%q,"type":1,"password":"Zoom2024Pass"}}`, step.action, step.email))); r.status != 201 {
				t.Fatalf("%s %s = %d %s; want 201", step.action, step.email, r.status, r.body)
			}
		}
		r := mustCreate(t, c, s, auth, "create", "e@example.com")
		want := "You have exceeded the daily rate limit (2) of user invite requests permitted for this account. You may resume these requests at GMT 00:00:00."
		if e := r.zoomErr(t); r.status != 429 || e.Code != 429 || e.Message != want {
			t.Fatalf("third create = %d %+v; want 429 %q", r.status, e, want)
		}
		for k, want := range map[string]string{
			"X-RateLimit-Type":      "Daily-limit",
			"X-RateLimit-Limit":     "2",
			"X-RateLimit-Remaining": "0",
			"Retry-After":           "2026-03-02T00:00:00Z",
		} {
			if got := r.header.Get(k); got != want {
				t.Errorf("daily 429 header %s = %q; want %q", k, got, want)
			}
		}
		if r := mustCreate(t, c, s, auth, "autoCreate", "e@example.com"); r.status != 400 {
			// autoCreate is not limited (400 only because the password is missing).
			t.Errorf("autoCreate after daily limit = %d; want 400 (not 429)", r.status)
		}
		s.SetOmitRateLimitHeaders(true)
		r = mustCreate(t, c, s, auth, "create", "e@example.com")
		if r.status != 429 || r.header.Get("X-RateLimit-Type") != "" || r.header.Get("Retry-After") != "" ||
			!strings.Contains(r.zoomErr(t).Message, "daily rate limit") {
			t.Errorf("daily 429 without headers = %d %v %s; want no Type/Retry-After", r.status, r.header, r.body)
		}
		clk.Set(time.Date(2026, 3, 1, 23, 59, 59, 0, time.UTC))
		auth = getToken(t, c, s) // The first one has expired by now.
		if r := mustCreate(t, c, s, auth, "create", "e@example.com"); r.status != 429 {
			t.Errorf("create at 23:59:59 = %d; want 429", r.status)
		}
		clk.Set(time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC))
		if r := mustCreate(t, c, s, auth, "create", "e@example.com"); r.status != 201 {
			t.Errorf("create at 00:00:00 next day = %d; want 201", r.status)
		}
		if got := s.Creations("e@example.com"); got != 1 {
			t.Errorf("Creations(e) = %d; want 1", got)
		}
		if got := s.Stats().RateLimited[RateLimitDaily]; got != 3 {
			t.Errorf("Stats().RateLimited[Daily-limit] = %d; want 3", got)
		}
	})

	t.Run("short sandbox window", func(t *testing.T) {
		clk := newTestClock(time.Date(2026, 3, 1, 12, 0, 3, 0, time.UTC))
		s := startSim(t, SimConfig{Now: clk.Now, DailyCreateLimit: 1, DailyWindow: 5 * time.Second})
		c := newClient(t, 5*time.Second)
		auth := getToken(t, c, s)
		mustCreate(t, c, s, auth, "create", "a@example.com")
		r := mustCreate(t, c, s, auth, "create", "b@example.com")
		if r.status != 429 || r.header.Get("Retry-After") != "2026-03-01T12:00:05Z" ||
			!strings.HasSuffix(r.zoomErr(t).Message, "at GMT 12:00:05.") {
			t.Errorf("second create = %d Retry-After %q %s; want 429 until 12:00:05", r.status, r.header.Get("Retry-After"), r.body)
		}
		clk.Advance(2 * time.Second)
		if r := mustCreate(t, c, s, auth, "create", "b@example.com"); r.status != 201 {
			t.Errorf("create in next window = %d; want 201", r.status)
		}
	})

	t.Run("rate-limited requests use no quota", func(t *testing.T) {
		clk := newTestClock(epoch)
		s := startSim(t, SimConfig{Now: clk.Now, DailyCreateLimit: 2, RatePerSecond: 1})
		c := newClient(t, 5*time.Second)
		auth := getToken(t, c, s)
		mustCreate(t, c, s, auth, "create", "a@example.com")
		if r := mustCreate(t, c, s, auth, "create", "b@example.com"); r.header.Get("X-RateLimit-Type") != "QPS" {
			t.Fatalf("second create in the same second = %d %v; want a QPS 429", r.status, r.header)
		}
		clk.Advance(time.Second)
		s.FailNext(1, Fault{Status: 429, Message: "scripted"})
		if r := mustCreate(t, c, s, auth, "create", "b@example.com"); r.status != 429 {
			t.Fatalf("scripted 429 = %d; want 429", r.status)
		}
		clk.Advance(time.Second)
		if r := mustCreate(t, c, s, auth, "create", "b@example.com"); r.status != 201 {
			t.Errorf("create after two 429s = %d %s; want 201 (429s use no quota)", r.status, r.body)
		}
		clk.Advance(time.Second)
		if r := mustCreate(t, c, s, auth, "create", "c@example.com"); r.header.Get("X-RateLimit-Type") != "Daily-limit" {
			t.Errorf("create over quota = %d %v; want a Daily-limit 429", r.status, r.header)
		}
	})

	t.Run("SetDailyCreateLimit", func(t *testing.T) {
		clk := newTestClock(epoch)
		s := startSim(t, SimConfig{Now: clk.Now})
		c := newClient(t, 5*time.Second)
		auth := getToken(t, c, s)
		mustCreate(t, c, s, auth, "create", "a@example.com")
		s.SetDailyCreateLimit(1)
		if r := mustCreate(t, c, s, auth, "create", "b@example.com"); r.status != 429 {
			t.Errorf("create after lowering the limit = %d; want 429 (earlier creates count)", r.status)
		}
		s.SetDailyCreateLimit(0)
		if r := mustCreate(t, c, s, auth, "create", "b@example.com"); r.status != 201 {
			t.Errorf("create with the limit off = %d; want 201", r.status)
		}
	})
}

func TestFailEmail(t *testing.T) {
	s := startSim(t, SimConfig{})
	c := newClient(t, 5*time.Second)
	auth := getToken(t, c, s)
	statuses := func(email string, n int) []int {
		t.Helper()
		var got []int
		for range n {
			got = append(got, mustCreate(t, c, s, auth, "create", email).status)
		}
		return got
	}

	s.FailEmail("x@example.com", 2, Fault{Status: 500})
	if r := mustCreate(t, c, s, auth, "create", "other@example.com"); r.status != 201 {
		t.Errorf("create other = %d; want 201 (fault is for x only)", r.status)
	}
	if got, want := statuses("X@Example.com", 3), []int{500, 500, 201}; !slices.Equal(got, want) {
		t.Errorf("creates of x = %v; want %v", got, want)
	}

	s.FailEmail("y@example.com", 1, Fault{Status: 503})
	s.FailEmail("y@example.com", 1, Fault{Status: 400, Code: 300, Message: "scripted"})
	r := mustCreate(t, c, s, auth, "create", "y@example.com")
	if r.status != 503 {
		t.Errorf("first create of y = %d; want 503", r.status)
	}
	r = mustCreate(t, c, s, auth, "create", "y@example.com")
	if e := r.zoomErr(t); r.status != 400 || e.Code != 300 || e.Message != "scripted" {
		t.Errorf("second create of y = %d %+v; want 400 300 scripted", r.status, e)
	}
	if r := mustCreate(t, c, s, auth, "create", "y@example.com"); r.status != 201 {
		t.Errorf("third create of y = %d; want 201", r.status)
	}

	s.FailEmail("z@example.com", 0, Fault{Status: 502})
	if got, want := statuses("z@example.com", 4), []int{502, 502, 502, 502}; !slices.Equal(got, want) {
		t.Errorf("creates of z with times=0 = %v; want %v", got, want)
	}
	s.ClearFaults()
	if r := mustCreate(t, c, s, auth, "create", "z@example.com"); r.status != 201 {
		t.Errorf("create of z after ClearFaults = %d; want 201", r.status)
	}

	// GET by email path and /users/email match too.
	s.FailEmail("w@example.com", 2, Fault{Status: 504})
	if r := mustSend(t, c, "GET", userURL(s, "w@example.com"), auth, "", nil); r.status != 504 {
		t.Errorf("GET w = %d; want 504", r.status)
	}
	if r := mustSend(t, c, "GET", emailURL(s, "w@example.com"), auth, "", nil); r.status != 504 {
		t.Errorf("GET /users/email?email=w = %d; want 504", r.status)
	}
	if r := mustSend(t, c, "GET", userURL(s, "w@example.com"), auth, "", nil); r.status != 404 {
		t.Errorf("GET w after faults = %d; want 404", r.status)
	}
	if got := s.Stats().Faults[FaultStatus]; got != 10 {
		t.Errorf("Stats().Faults[status] = %d; want 10", got)
	}
}

func TestFailNext(t *testing.T) {
	s := startSim(t, SimConfig{})
	c := newClient(t, 5*time.Second)
	auth := getToken(t, c, s)

	s.FailNext(2, Fault{Status: 503})
	s.FailNext(1, Fault{Status: 500})
	got := []int{
		mustSend(t, c, "GET", emailURL(s, "a@example.com"), auth, "", nil).status,
		mustCreate(t, c, s, auth, "create", "a@example.com").status,
		mustSend(t, c, "GET", userURL(s, "a@example.com"), auth, "", nil).status,
		mustCreate(t, c, s, auth, "create", "a@example.com").status,
	}
	if want := []int{503, 503, 500, 201}; !slices.Equal(got, want) {
		t.Errorf("statuses after FailNext(2, 503), FailNext(1, 500) = %v; want %v", got, want)
	}

	// Rejected requests do not consume FailNext faults.
	s.FailNext(1, Fault{Status: 418})
	if r := mustSend(t, c, "GET", userURL(s, "a@example.com"), "", "", nil); r.status != 401 {
		t.Errorf("GET without token = %d; want 401", r.status)
	}
	if r := mustSend(t, c, "GET", userURL(s, "a@example.com"), auth, "", nil); r.status != 418 {
		t.Errorf("GET after 401 = %d; want 418", r.status)
	}

	// FailNext beats FailEmail, which beats random faults.
	s.SetRandomFaults(RandomFaults{Seed: 1, ServerError: 1})
	s.FailEmail("b@example.com", 1, Fault{Status: 409, Code: 1005, Message: "scripted"})
	s.FailNext(1, Fault{Status: 400})
	got = []int{
		mustCreate(t, c, s, auth, "create", "b@example.com").status,
		mustCreate(t, c, s, auth, "create", "b@example.com").status,
	}
	if want := []int{400, 409}; !slices.Equal(got, want) {
		t.Errorf("FailNext then FailEmail = %v; want %v", got, want)
	}
	if r := mustCreate(t, c, s, auth, "create", "b@example.com"); r.status < 500 {
		t.Errorf("create with ServerError=1 = %d; want 5xx", r.status)
	}
	s.ClearFaults()

	// n <= 0 fails every request until ClearFaults.
	s.FailNext(0, Fault{Status: 502})
	for i := range 3 {
		if r := mustSend(t, c, "GET", emailURL(s, "a@example.com"), auth, "", nil); r.status != 502 {
			t.Errorf("request #%d with FailNext(0) = %d; want 502", i, r.status)
		}
	}
	s.ClearFaults()
	if r := mustSend(t, c, "GET", emailURL(s, "a@example.com"), auth, "", nil); r.status != 200 {
		t.Errorf("request after ClearFaults = %d; want 200", r.status)
	}
}

func TestFaultBodies(t *testing.T) {
	s := startSim(t, SimConfig{RatePerSecond: 1000})
	c := newClient(t, 5*time.Second)
	auth := getToken(t, c, s)
	tests := []struct {
		name            string
		fault           Fault
		wantStatus      int
		wantContentType string
		wantBody        string // substring
		wantHeader      [2]string
		wantRateHeaders bool
	}{
		{"json defaults", Fault{Status: 500}, 500, "application/json;charset=UTF-8", `{"code":500,"message":"Internal Server Error"}`, [2]string{}, true},
		{"json code and message", Fault{Status: 400, Code: 200, Message: "No privilege."}, 400, "application/json;charset=UTF-8", `{"code":200,"message":"No privilege."}`, [2]string{}, true},
		{"html default 502", Fault{HTML: true}, 502, "text/html", "<title>502 Bad Gateway</title>", [2]string{}, false},
		{"html 504", Fault{Status: 504, HTML: true}, 504, "text/html", "cloudflare", [2]string{}, false},
		{"empty", Fault{Status: 503, EmptyBody: true}, 503, "", "", [2]string{}, false},
		{"headers", Fault{Status: 429, Headers: map[string]string{"Retry-After": "7"}}, 429, "application/json;charset=UTF-8", `"code":429`, [2]string{"Retry-After", "7"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s.FailNext(1, tc.fault)
			r := mustCreate(t, c, s, auth, "create", "nobody@example.com")
			if r.status != tc.wantStatus || r.header.Get("Content-Type") != tc.wantContentType || !strings.Contains(string(r.body), tc.wantBody) {
				t.Errorf("fault %+v = %d %q %q; want %d %q containing %q", tc.fault, r.status, r.header.Get("Content-Type"), r.body, tc.wantStatus, tc.wantContentType, tc.wantBody)
			}
			if tc.wantBody == "" && len(r.body) != 0 {
				t.Errorf("fault %+v body = %q; want empty", tc.fault, r.body)
			}
			if k := tc.wantHeader[0]; k != "" && r.header.Get(k) != tc.wantHeader[1] {
				t.Errorf("fault %+v header %s = %q; want %q", tc.fault, k, r.header.Get(k), tc.wantHeader[1])
			}
			if got := r.header.Get("X-RateLimit-Limit") != ""; got != tc.wantRateHeaders {
				t.Errorf("fault %+v has rate-limit headers = %v; want %v", tc.fault, got, tc.wantRateHeaders)
			}
			if r.header.Get("x-zm-trackingid") == "" {
				t.Errorf("fault %+v has no x-zm-trackingid", tc.fault)
			}
		})
	}
	if got := s.Creations("nobody@example.com"); got != 0 {
		t.Errorf("Creations after faults = %d; want 0", got)
	}
	st := s.Stats()
	if st.Faults[FaultStatus] != 3 || st.Faults[FaultHTML] != 2 || st.Faults[FaultEmpty] != 1 {
		t.Errorf("Stats().Faults = %v; want status 3, html 2, empty 1", st.Faults)
	}
}

func TestDropAndAfterCreate(t *testing.T) {
	tests := []struct {
		name          string
		fault         Fault
		wantErr       bool
		wantStatus    int
		wantCreations int
		wantKind      FaultKind
	}{
		{"drop", Fault{Drop: true}, true, 0, 0, FaultDrop},
		{"drop after create", Fault{Drop: true, AfterCreate: true}, true, 0, 1, FaultDropAfterCreate},
		{"500 after create", Fault{Status: 500, AfterCreate: true}, false, 500, 1, FaultStatusAfterCreate},
		{"html after create", Fault{HTML: true, AfterCreate: true}, false, 502, 1, FaultHTMLAfterCreate},
		{"slow success", Fault{Delay: 10 * time.Millisecond, AfterCreate: true}, false, 201, 1, FaultDelay},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := startSim(t, SimConfig{})
			c := newClient(t, 5*time.Second)
			auth := getToken(t, c, s)
			s.FailNext(1, tc.fault)
			r, err := create(c, s, auth, "create", "a@example.com")
			if (err != nil) != tc.wantErr || (err == nil && r.status != tc.wantStatus) {
				t.Fatalf("create with %+v = %d, %v; want status %d, error %v", tc.fault, r.status, err, tc.wantStatus, tc.wantErr)
			}
			if got := s.Creations("a@example.com"); got != tc.wantCreations {
				t.Errorf("Creations(a) = %d; want %d", got, tc.wantCreations)
			}
			if _, ok := s.User("a@example.com"); ok != (tc.wantCreations == 1) {
				t.Errorf("User(a) stored = %v; want %v", ok, tc.wantCreations == 1)
			}
			// A retry finds the user created by the lost attempt.
			retry := mustCreate(t, c, s, auth, "create", "a@example.com")
			if want := map[int]int{0: 201, 1: 409}[tc.wantCreations]; retry.status != want {
				t.Errorf("retry = %d; want %d", retry.status, want)
			}
			if got := s.Creations("a@example.com"); got != 1 {
				t.Errorf("Creations(a) after retry = %d; want 1", got)
			}
			st := s.Stats()
			if st.Faults[tc.wantKind] != 1 || st.Requests[RouteCreateUser][tc.wantStatus] != 1 {
				t.Errorf("Stats() = %+v; want one %q fault and one %d", st, tc.wantKind, tc.wantStatus)
			}
			if reqs := s.Requests(); reqs[1].Fault != tc.wantKind || reqs[1].Status != tc.wantStatus {
				t.Errorf("Requests()[1] = %+v; want fault %q status %d", reqs[1], tc.wantKind, tc.wantStatus)
			}
		})
	}
}

func TestDelayBeyondClientTimeout(t *testing.T) {
	tests := []struct {
		name          string
		fault         Fault
		random        RandomFaults
		wantCreations int
	}{
		{"delay", Fault{Delay: time.Minute}, RandomFaults{}, 0},
		{"delay after create", Fault{Delay: time.Minute, AfterCreate: true}, RandomFaults{}, 1},
		{"random timeout", Fault{}, RandomFaults{Timeout: 1, TimeoutDelay: time.Minute}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := startSim(t, SimConfig{})
			auth := getToken(t, newClient(t, 5*time.Second), s)
			c := newClient(t, 100*time.Millisecond)
			if tc.fault.Kind() != FaultNone {
				s.FailNext(1, tc.fault)
			}
			s.SetRandomFaults(tc.random)
			if r, err := create(c, s, auth, "create", "a@example.com"); err == nil {
				t.Fatalf("create with a one-minute delay = %d; want a client timeout", r.status)
			}
			// The handler notices the client has gone and gives up.
			waitFor(t, "the abandoned request to end", func() bool {
				st := s.Stats()
				return st.Requests[RouteCreateUser][0] == 1 && st.InFlight == 0
			})
			if got := s.Creations("a@example.com"); got != tc.wantCreations {
				t.Errorf("Creations(a) = %d; want %d", got, tc.wantCreations)
			}
		})
	}
}

func TestLatency(t *testing.T) {
	s := startSim(t, SimConfig{Latency: 30 * time.Millisecond})
	c := newClient(t, 5*time.Second)
	auth := getToken(t, c, s)
	start := time.Now()
	if r := mustCreate(t, c, s, auth, "create", "a@example.com"); r.status != 201 {
		t.Fatalf("create = %d; want 201", r.status)
	}
	if el := time.Since(start); el < 30*time.Millisecond {
		t.Errorf("create with 30ms latency took %v; want at least 30ms", el)
	}
	s.SetLatency(time.Minute)
	short := newClient(t, 50*time.Millisecond)
	if _, err := send(short, "GET", emailURL(s, "a@example.com"), auth, "", nil); err == nil {
		t.Errorf("GET with one-minute latency succeeded; want a client timeout")
	}
	s.SetLatency(0)
	if r := mustSend(t, c, "GET", emailURL(s, "a@example.com"), auth, "", nil); r.status != 200 {
		t.Errorf("GET after SetLatency(0) = %d; want 200", r.status)
	}
}

func TestStall(t *testing.T) {
	t.Run("client timeout then unstall", func(t *testing.T) {
		s := startSim(t, SimConfig{})
		c := newClient(t, 5*time.Second)
		auth := getToken(t, c, s)
		s.Stall()
		short := newClient(t, 100*time.Millisecond)
		if r, err := create(short, s, auth, "create", "a@example.com"); err == nil {
			t.Fatalf("create while stalled = %d; want a client timeout", r.status)
		}
		waitFor(t, "the stalled handler to give up", func() bool { return s.Stats().InFlight == 0 })
		if got := s.Creations("a@example.com"); got != 0 {
			t.Errorf("Creations(a) after stalled timeout = %d; want 0", got)
		}
		// Tokens are still issued while the API is stalled.
		getToken(t, c, s)

		done := make(chan result, 1)
		go func() {
			r, _ := create(c, s, auth, "create", "a@example.com")
			done <- r
		}()
		waitFor(t, "the request to block", func() bool { return s.Stats().InFlight == 1 })
		s.Unstall()
		if r := <-done; r.status != 201 {
			t.Errorf("create released by Unstall = %d; want 201", r.status)
		}
		s.Unstall() // Unstalling twice is harmless.
	})

	t.Run("close releases", func(t *testing.T) {
		s := startSim(t, SimConfig{})
		c := newClient(t, 5*time.Second)
		auth := getToken(t, c, s)
		s.Stall()
		done := make(chan error, 1)
		go func() {
			_, err := create(c, s, auth, "create", "a@example.com")
			done <- err
		}()
		waitFor(t, "the request to block", func() bool { return s.Stats().InFlight == 1 })
		s.Close()
		if err := <-done; err == nil {
			t.Errorf("create stalled across Close succeeded; want an error")
		}
		s.Close() // Closing twice is harmless.
	})

	t.Run("max concurrent", func(t *testing.T) {
		const n = 64
		s := startSim(t, SimConfig{})
		c := newClient(t, 10*time.Second)
		auth := getToken(t, c, s)
		s.Stall()
		var wg sync.WaitGroup
		statuses := make([]int, n)
		for i := range n {
			wg.Go(func() {
				r, _ := create(c, s, auth, "create", fmt.Sprintf("u%d@example.com", i))
				statuses[i] = r.status
			})
		}
		waitFor(t, "all requests to block", func() bool { return s.Stats().InFlight == n })
		s.Unstall()
		wg.Wait()
		for i, st := range statuses {
			if st != 201 {
				t.Errorf("create #%d = %d; want 201", i, st)
			}
		}
		if got := s.Stats().MaxConcurrent; got != n {
			t.Errorf("Stats().MaxConcurrent = %d; want %d", got, n)
		}
	})
}

func TestRandomFaults(t *testing.T) {
	sequence := func(t *testing.T, seed int64) []int {
		s := startSim(t, SimConfig{})
		c := newClient(t, 5*time.Second)
		auth := getToken(t, c, s)
		s.SetRandomFaults(RandomFaults{Seed: seed, ServerError: 0.5})
		var got []int
		for range 40 {
			got = append(got, mustSend(t, c, "GET", emailURL(s, "a@example.com"), auth, "", nil).status)
		}
		return got
	}
	a, b := sequence(t, 42), sequence(t, 42)
	if !slices.Equal(a, b) {
		t.Errorf("statuses with the same seed differ:\n%v\n%v", a, b)
	}
	counts := map[int]int{}
	for _, st := range a {
		counts[st]++
	}
	if counts[200] == 0 || counts[200] == len(a) {
		t.Errorf("statuses with ServerError=0.5 = %v; want a mix of 200 and 5xx", counts)
	}
	for st := range counts {
		if st != 200 && st != 500 && st != 502 && st != 503 {
			t.Errorf("status %d with ServerError faults; want only 200/500/502/503", st)
		}
	}

	t.Run("502 is an html page", func(t *testing.T) {
		s := startSim(t, SimConfig{})
		c := newClient(t, 5*time.Second)
		auth := getToken(t, c, s)
		s.SetRandomFaults(RandomFaults{Seed: 7, ServerError: 1})
		seen := map[int]string{}
		for range 60 {
			r := mustSend(t, c, "GET", emailURL(s, "a@example.com"), auth, "", nil)
			seen[r.status] = r.header.Get("Content-Type")
		}
		if len(seen) != 3 || seen[502] != "text/html" || !strings.HasPrefix(seen[500], "application/json") {
			t.Errorf("content types by status = %v; want 500/503 JSON and 502 HTML", seen)
		}
	})

	t.Run("drop after create", func(t *testing.T) {
		s := startSim(t, SimConfig{})
		c := newClient(t, 5*time.Second)
		auth := getToken(t, c, s)
		s.SetRandomFaults(RandomFaults{Seed: 1, DropAfterCreate: 1})
		if r := mustSend(t, c, "GET", emailURL(s, "a@example.com"), auth, "", nil); r.status != 200 {
			t.Errorf("GET with DropAfterCreate=1 = %d; want 200 (only POST /users drops)", r.status)
		}
		if _, err := create(c, s, auth, "create", "a@example.com"); err == nil {
			t.Errorf("create with DropAfterCreate=1 succeeded; want a dropped connection")
		}
		if got := s.Creations("a@example.com"); got != 1 {
			t.Errorf("Creations(a) = %d; want 1", got)
		}
	})

	t.Run("token outage", func(t *testing.T) {
		s := startSim(t, SimConfig{})
		c := newClient(t, 5*time.Second)
		s.SetRandomFaults(RandomFaults{Seed: 1, TokenOutage: 1})
		req, _ := http.NewRequest("POST", s.TokenURL(), bytes.NewReader(tokenForm(DefaultSimAccountID)))
		req.SetBasicAuth(DefaultSimClientID, DefaultSimClientSecret)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 {
			t.Errorf("token during outage = %d; want 503", resp.StatusCode)
		}
		st := s.Stats()
		if st.Faults[FaultTokenOutage] != 1 || st.TokensIssued != 0 {
			t.Errorf("Stats() = %+v; want one token outage and no tokens", st)
		}
		s.SetRandomFaults(RandomFaults{})
		getToken(t, c, s)
	})

	t.Run("FailNextToken", func(t *testing.T) {
		s := startSim(t, SimConfig{})
		c := newClient(t, 5*time.Second)
		s.FailNextToken(1, Fault{Status: 500, EmptyBody: true})
		r := mustSend(t, c, "POST", s.TokenURL()+"?"+string(tokenForm(DefaultSimAccountID)), "Basic c2ltLWNsaWVudDpzaW0tc2VjcmV0", "", nil)
		if r.status != 500 || len(r.body) != 0 {
			t.Errorf("token with FailNextToken = %d %q; want 500 with no body", r.status, r.body)
		}
		getToken(t, c, s)
	})
}

// TestChaos hammers the simulator from many clients with random faults and
// checks that a create-then-accept-409 client never creates a user twice.
func TestChaos(t *testing.T) {
	const workers, perWorker = 64, 4
	s := startSim(t, SimConfig{RatePerSecond: 0})
	c := newClient(t, 2*time.Second)
	auth := getToken(t, c, s)
	s.SetRandomFaults(RandomFaults{Seed: 3, ServerError: 0.2, DropAfterCreate: 0.2})
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				email := fmt.Sprintf("w%d-%d@example.com", w, i)
				for attempt := 0; ; attempt++ {
					if attempt == 50 {
						errs <- fmt.Errorf("create %s: no 201/409 after 50 attempts", email)
						return
					}
					r, err := create(c, s, auth, "create", email)
					if err == nil && (r.status == 201 || r.status == 409) {
						break
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for w := range workers {
		for i := range perWorker {
			if got := s.Creations(fmt.Sprintf("w%d-%d@example.com", w, i)); got != 1 {
				t.Errorf("Creations(w%d-%d) = %d; want 1", w, i, got)
			}
		}
	}
	// Handlers finish their bookkeeping just after the client has its
	// answer.
	waitFor(t, "all handlers to return", func() bool { return s.Stats().InFlight == 0 })
	st := s.Stats()
	total := 0
	for _, n := range st.Requests[RouteCreateUser] {
		total += n
	}
	if st.Creations != workers*perWorker || s.TotalCreations() != workers*perWorker {
		t.Errorf("creations = %d; want %d", st.Creations, workers*perWorker)
	}
	if st.Faults[FaultDropAfterCreate] == 0 || st.Requests[RouteCreateUser][409] == 0 {
		t.Errorf("Stats() = %+v; want some dropped creates and 409 retries", st)
	}
	if st.MaxConcurrent < 2 {
		t.Errorf("Stats().MaxConcurrent = %d; want concurrent requests", st.MaxConcurrent)
	}
	if n := len(s.Requests()); n != total+1 {
		t.Errorf("len(Requests()) = %d; want %d (creates plus one token request)", n, total+1)
	}
}

func TestStatsAndRequests(t *testing.T) {
	clk := newTestClock(epoch)
	s := startSim(t, SimConfig{Now: clk.Now, RatePerSecond: 3})
	c := newClient(t, 5*time.Second)
	auth := getToken(t, c, s)
	body := createJSON("create", "a@example.com", 2)
	first := mustSend(t, c, "POST", s.APIURL()+"/users", auth, "application/json", body)
	mustCreate(t, c, s, auth, "create", "a@example.com") // 409
	mustSend(t, c, "GET", userURL(s, "a@example.com"), auth, "", nil)
	mustSend(t, c, "GET", userURL(s, "a@example.com"), auth, "", nil) // 429
	mustSend(t, c, "GET", userURL(s, "a@example.com"), "", "", nil)   // 401

	st := s.Stats()
	wantRequests := map[string]map[int]int{
		RouteToken:      {200: 1},
		RouteCreateUser: {201: 1, 409: 1},
		RouteGetUser:    {200: 1, 429: 1, 401: 1},
	}
	for route, want := range wantRequests {
		for status, n := range want {
			if got := st.Requests[route][status]; got != n {
				t.Errorf("Stats().Requests[%q][%d] = %d; want %d", route, status, got, n)
			}
		}
	}
	if st.TokensIssued != 1 || st.RateLimited[RateLimitQPS] != 1 || st.Creations != 1 || st.MaxConcurrent != 1 {
		t.Errorf("Stats() = %+v; want 1 token, 1 QPS 429, 1 creation, max concurrency 1", st)
	}

	reqs := s.Requests()
	if len(reqs) != 6 {
		t.Fatalf("len(Requests()) = %d; want 6", len(reqs))
	}
	tok := reqs[0]
	if tok.Route != RouteToken || !strings.HasPrefix(tok.Authorization, "Basic ") ||
		!strings.Contains(string(tok.Body), "grant_type=account_credentials") || tok.Status != 200 {
		t.Errorf("Requests()[0] = %+v; want the token request with Basic auth and the form", tok)
	}
	post := reqs[1]
	if post.Method != "POST" || post.Path != "/v2/users" || post.Route != RouteCreateUser || post.Status != 201 ||
		post.Authorization != auth || !bytes.Equal(post.Body, body) || post.ContentType != "application/json" ||
		!post.Time.Equal(epoch) || post.TrackingID != first.header.Get("x-zm-trackingid") || post.Fault != FaultNone {
		t.Errorf("Requests()[1] = %+v; want the POST with Bearer auth, body and tracking id %q", post, first.header.Get("x-zm-trackingid"))
	}
	if get := reqs[3]; get.Path != "/v2/users/a%40example.com" || get.Body != nil {
		t.Errorf("Requests()[3] = %+v; want the escaped GET path and no body", get)
	}
	if last := reqs[5]; last.Status != 401 || last.Authorization != "" {
		t.Errorf("Requests()[5] = %+v; want the 401 without Authorization", last)
	}

	// Snapshots are copies.
	st.Requests[RouteToken][200] = 99
	reqs[0].Status = 99
	if s.Stats().Requests[RouteToken][200] != 1 || s.Requests()[0].Status != 200 {
		t.Errorf("modifying a snapshot changed the simulator")
	}
}

func TestMaxRecordedRequests(t *testing.T) {
	s := startSim(t, SimConfig{MaxRecordedRequests: 3})
	c := newClient(t, 5*time.Second)
	auth := getToken(t, c, s)
	for i := range 5 {
		mustSend(t, c, "GET", emailURL(s, fmt.Sprintf("u%d@example.com", i)), auth, "", nil)
	}
	reqs := s.Requests()
	if len(reqs) != 3 || reqs[2].Query != "email=u4%40example.com" {
		t.Errorf("Requests() = %+v; want the last 3", reqs)
	}
}

// Ensure FirstArrival keeps the earliest arrival per route, whatever the
// answer, after the log has dropped it.
func TestFirstArrival(t *testing.T) {
	clk := newTestClock(epoch)
	s := startSim(t, SimConfig{Now: clk.Now, MaxRecordedRequests: 1})
	c := newClient(t, 5*time.Second)
	if got, ok := s.FirstArrival(RouteCreateUser); ok {
		t.Errorf("FirstArrival(%q) before any request = %v, true; want false", RouteCreateUser, got)
	}
	clk.Advance(time.Second)
	mustSend(t, c, "POST", s.APIURL()+"/users", "", "application/json", createJSON("create", "a@example.com", 1)) // 401
	clk.Advance(time.Second)
	auth := getToken(t, c, s)
	mustCreate(t, c, s, auth, "create", "a@example.com") // 201
	clk.Advance(time.Second)
	mustCreate(t, c, s, auth, "create", "b@example.com") // 201
	mustSend(t, c, "GET", userURL(s, "a@example.com"), auth, "", nil)

	for _, tt := range []struct {
		route string
		want  time.Time
	}{
		{RouteCreateUser, epoch.Add(time.Second)},
		{RouteToken, epoch.Add(2 * time.Second)},
		{RouteGetUser, epoch.Add(3 * time.Second)},
	} {
		if got, ok := s.FirstArrival(tt.route); !ok || !got.Equal(tt.want) {
			t.Errorf("FirstArrival(%q) = %v, %v; want %v, true", tt.route, got, ok, tt.want)
		}
	}
	if reqs := s.Requests(); len(reqs) != 1 || reqs[0].Route != RouteGetUser {
		t.Errorf("Requests() = %+v; want only the last GET (MaxRecordedRequests 1)", reqs)
	}
	if _, ok := s.FirstArrival(RouteDeleteUser); ok {
		t.Errorf("FirstArrival(%q) = _, true; want false: no DELETE was sent", RouteDeleteUser)
	}
}

func TestPasswordRules(t *testing.T) {
	tests := []struct {
		pw   string
		want bool
	}{
		{"Zoom2024Pass", true},
		{"Ab1cdefg", true},
		{"Abcdefg1", true},   // a..g is only 7 long
		{"Abcdefgh1", false}, // a..h case-insensitively
		{"Ab123456789", false},
		{"Hgfedcba1x", false},
		{"Ab1234567Z", true},
		{"12345678Ab", false},
		{"Pässwort1", true},
		{"", false},
	}
	for _, tc := range tests {
		if got := validPassword(tc.pw); got != tc.want {
			t.Errorf("validPassword(%q) = %v; want %v", tc.pw, got, tc.want)
		}
	}
}

// ExampleSimulator shows the token-then-create flow a Zoom client goes
// through, and how a test checks that a user was created exactly once.
func ExampleSimulator() {
	sim := NewSimulator(SimConfig{RatePerSecond: 30})
	defer sim.Close()
	// Ask a sandbox client to lose the first create's answer after Zoom
	// has stored the user.
	sim.FailEmail("ada@example.com", 1, Fault{Drop: true, AfterCreate: true})

	form := url.Values{"grant_type": {"account_credentials"}, "account_id": {DefaultSimAccountID}}
	req, _ := http.NewRequest("POST", sim.TokenURL(), strings.NewReader(form.Encode()))
	req.SetBasicAuth(DefaultSimClientID, DefaultSimClientSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()

	body := `{"action":"create","user_info":{"email":"ada@example.com","type":1}}`
	for range 2 {
		req, _ := http.NewRequest("POST", sim.APIURL()+"/users", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println("connection lost")
			continue
		}
		resp.Body.Close()
		fmt.Println(resp.StatusCode)
	}
	fmt.Println("created", sim.Creations("ada@example.com"), "time(s)")
	// Output:
	// connection lost
	// 409
	// created 1 time(s)
}

// Ensure MaxPerSecond counts the busiest of the fixed one-second windows
// the per-second limit uses: 3 requests at 0.6-0.8 s and 4 at 1.1-1.9 s
// are 3 and 4, not the 6 a sliding second from 0.6 s would hold.
func TestStatsMaxPerSecond(t *testing.T) {
	clk := newTestClock(epoch)
	s := startSim(t, SimConfig{Now: clk.Now})
	c := newClient(t, 5*time.Second)
	tok := getToken(t, c, s)
	at := func(offset time.Duration) {
		clk.Set(epoch.Add(offset))
		if r := mustSend(t, c, "GET", emailURL(s, "x@example.com"), tok, "", nil); r.status != 200 {
			t.Fatalf("GET = %d %s", r.status, r.body)
		}
	}
	for _, ms := range []int{600, 700, 800, 1100, 1200, 1300, 1900, 2400} {
		at(time.Duration(ms) * time.Millisecond)
	}
	if got := s.Stats().MaxPerSecond; got != 4 {
		t.Errorf("Stats().MaxPerSecond = %d; want 4 (the window from 1 s)", got)
	}
}
