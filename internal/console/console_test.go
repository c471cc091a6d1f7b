package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/zoomprov/consumer/internal/audit"
	"github.com/zoomprov/consumer/internal/console"
	"github.com/zoomprov/consumer/internal/guard"
	"github.com/zoomprov/consumer/internal/quota"
	"github.com/zoomprov/consumer/testenv"
)

// Ensure token files are read as documented, and that no error and no
// printing of the logins shows a secret.
func TestParseTokens(t *testing.T) {
	const good = "0123456789abcdef"
	tests := []struct {
		name, file string
		want       []string
	}{
		{"two logins, comments, blank lines", "# ops\nalice:" + good + "\n\n  bob@example.com:" + good + "x:y  \n", []string{"alice", "bob@example.com"}},
		{"none", "# nothing\n\n", nil},
		{"no colon", "alice" + good + "\n", nil},
		{"bad name", "al ice:" + good + "\n", nil},
		{"short secret", "alice:short-secret\n", nil},
		{"space in secret", "alice:" + good + " more\n", nil},
		{"name twice", "alice:" + good + "\nalice:" + good + "z\n", nil},
		{"secret twice", "alice:" + good + "\nbob:" + good + "\n", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tk, err := console.ParseTokens(strings.NewReader(tc.file))
			if tc.want == nil {
				if err == nil {
					t.Fatalf("ParseTokens(%q) = %v; want an error", tc.file, tk)
				}
				if strings.Contains(err.Error(), good) || strings.Contains(err.Error(), "short-secret") {
					t.Errorf("ParseTokens(%q) error %q shows the secret", tc.file, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTokens(%q) = %v", tc.file, err)
			}
			if got := strings.Join(tk.Names(), ","); got != strings.Join(tc.want, ",") {
				t.Errorf("ParseTokens(%q) names = %s; want %s", tc.file, got, strings.Join(tc.want, ","))
			}
			for _, s := range []string{tk.String(), fmt.Sprintf("%v %+v %#v", tk, tk, tk)} {
				if strings.Contains(s, good) {
					t.Errorf("printing the tokens shows a secret: %s", s)
				}
			}
		})
	}
	if _, err := console.ParseTokens(strings.NewReader("")); !errors.Is(err, console.ErrNoTokens) {
		t.Errorf("ParseTokens(empty) = %v; want ErrNoTokens", err)
	}
}

// Ensure nothing of the console answers without a session but the login
// page and the style sheet: pages redirect to the login page, actions
// (and any bearer token that is wrong) get 401, none of them carries data
// (an address, a request id) or changes anything.
func TestNoSessionNoData(t *testing.T) {
	w := newWorld(t)
	w.deadLetter("secret-request-1", "hidden.person@example.com")
	dl := w.deadLetters(1)["secret-request-1"]
	private := []string{"hidden.person", "h***@example.com", "secret-request-1", "Group does not exist"}
	check := func(what string, r response) {
		t.Helper()
		for _, p := range private {
			if strings.Contains(r.body, p) || strings.Contains(fmt.Sprint(r.header), p) {
				t.Errorf("%s: the answer (%d) holds %q:\n%s", what, r.code, p, r.body)
			}
		}
	}
	pages := []string{"", "dlq", "dlq?email=hidden.person@example.com", fmt.Sprintf("dlq/%d", dl.Seq), "guard", "quota",
		"user?email=hidden.person@example.com", "nosuchpage"}
	for _, base := range []string{w.url, w.appURL} {
		for _, p := range pages {
			r := do(t, base, http.MethodGet, p, nil, nil)
			if r.code != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/console/login") {
				t.Errorf("GET %s without a session = %d, Location %q; want 303 to /console/login", p, r.code, r.header.Get("Location"))
			}
			check("GET "+p, r)
			for _, auth := range []string{"Bearer wrong-secret-0123456789", "Basic YWxpY2U6eA==", "Bearer " + aliceSecret + "x"} {
				// 429 once the failures from this address are used up.
				r := do(t, base, http.MethodGet, p, nil, http.Header{"Authorization": {auth}})
				if r.code != http.StatusUnauthorized && r.code != http.StatusTooManyRequests {
					t.Errorf("GET %s with Authorization %q = %d; want 401 (or 429)", p, auth, r.code)
				}
				check("GET "+p+" with a wrong token", r)
			}
		}
		forged := &http.Cookie{Name: "zoomprov_console", Value: "v1.YWxpY2U.9999999999.forged"}
		if r := do(t, base, http.MethodGet, "dlq", nil, nil, forged); r.code != http.StatusSeeOther {
			t.Errorf("GET dlq with a forged session = %d; want 303", r.code)
		}
		for _, p := range []string{"dlq/replay", "dlq/purge", "guard/release", "guard/reject", "quota/open", "user/forget", "logout"} {
			form := url.Values{"seq": {fmt.Sprint(dl.Seq)}, "confirm": {"1"}, "upto": {fmt.Sprint(dl.Seq)}, "reason": {"x"},
				"scope": {"create"}, "email": {"hidden.person@example.com"}, "csrf": {"anything"}}
			r := do(t, base, http.MethodPost, p, form, nil)
			if r.code != http.StatusUnauthorized {
				t.Errorf("POST %s without a session = %d; want 401", p, r.code)
			}
			check("POST "+p, r)
		}
	}
	if n := w.count(); n != 1 {
		t.Errorf("%d dead letters after the refused requests; want 1", n)
	}
	if r := do(t, w.url, http.MethodGet, "static/console.css", nil, nil); r.code != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/css") {
		t.Errorf("GET static/console.css without a session = %d %s; want 200 text/css", r.code, r.header.Get("Content-Type"))
	}
}

// Ensure the login: a form whose cookie is HttpOnly and SameSite=Strict
// (Secure behind TLS), a session that another replica (another console
// with the same token file) accepts, a bearer token that works alone,
// refusals for a wrong token or a form without its CSRF value, and no
// session once it expires or after logging out.
func TestLogin(t *testing.T) {
	w := newWorld(t)
	sc, csrf := login(t, w.url, aliceSecret)
	if !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode || sc.Secure || sc.Path != "/console/" {
		t.Errorf("session cookie %+v; want HttpOnly, SameSite=Strict, not Secure over plain HTTP, Path /console/", sc)
	}
	for _, secret := range []string{aliceSecret, bobSecret} {
		if strings.Contains(sc.Value, secret) || strings.Contains(csrf, secret) {
			t.Errorf("the session cookie or the CSRF token holds a secret")
		}
	}
	// The other replica, with the same token file, knows the session.
	for _, base := range []string{w.url, w.appURL} {
		r := do(t, base, http.MethodGet, "", nil, nil, sc)
		if r.code != http.StatusOK || !strings.Contains(r.body, ">alice<") {
			t.Errorf("GET the overview at %s with alice's session = %d; want 200 naming alice", base, r.code)
		}
	}
	if r := do(t, w.appURL, http.MethodGet, "quota", nil, http.Header{"Authorization": {"Bearer " + bobSecret}}); r.code != http.StatusOK || !strings.Contains(r.body, ">bob<") {
		t.Errorf("GET quota with bob's bearer token = %d; want 200 naming bob", r.code)
	}

	// Over TLS (at the proxy in front), the cookies are Secure.
	lf := do(t, w.url, http.MethodGet, "login", nil, http.Header{"X-Forwarded-Proto": {"https"}})
	lc := lf.cookie("zoomprov_console_login")
	if lc == nil || !lc.Secure || !lc.HttpOnly || lc.SameSite != http.SameSiteStrictMode {
		t.Fatalf("login cookie over TLS %+v; want Secure, HttpOnly, SameSite=Strict", lc)
	}
	r := do(t, w.url, http.MethodPost, "login", url.Values{"csrf": {lc.Value}, "token": {bobSecret}, "next": {"/console/guard"}}, http.Header{"X-Forwarded-Proto": {"https"}}, lc)
	if s := r.cookie("zoomprov_console"); r.code != http.StatusSeeOther || s == nil || !s.Secure || r.header.Get("Location") != "/console/guard" {
		t.Errorf("POST login over TLS = %d, %+v, Location %q; want 303 to /console/guard with a Secure session", r.code, s, r.header.Get("Location"))
	}

	// Refusals: a wrong token, a form without its cookie's value, a
	// redirect elsewhere.
	lf = do(t, w.url, http.MethodGet, "login", nil, nil)
	lc = lf.cookie("zoomprov_console_login")
	if r := do(t, w.url, http.MethodPost, "login", url.Values{"csrf": {lc.Value}, "token": {"not-a-token-0123456789"}}, nil, lc); r.code != http.StatusUnauthorized || r.cookie("zoomprov_console") != nil {
		t.Errorf("POST login with a wrong token = %d; want 401 and no session", r.code)
	}
	if r := do(t, w.url, http.MethodPost, "login", url.Values{"token": {aliceSecret}}, nil, lc); r.code != http.StatusForbidden || r.cookie("zoomprov_console") != nil {
		t.Errorf("POST login without the form's CSRF value = %d; want 403 and no session", r.code)
	}
	if r := do(t, w.url, http.MethodPost, "login", url.Values{"csrf": {lc.Value}, "token": {aliceSecret}}, nil); r.code != http.StatusForbidden {
		t.Errorf("POST login without the login cookie = %d; want 403", r.code)
	}
	if r := do(t, w.url, http.MethodPost, "login", url.Values{"csrf": {lc.Value}, "token": {aliceSecret}, "next": {"//evil.example.com/"}}, nil, lc); r.header.Get("Location") != "/console/" {
		t.Errorf("POST login with next=//evil.example.com/ redirects to %q; want /console/", r.header.Get("Location"))
	}

	// A session ends: at its expiry (a console whose clock is later), and
	// in this browser at log-out.
	later, err := console.New(console.Config{JS: w.js, Topology: w.topo, Tokens: w.tokens, Logger: zerolog.Nop(),
		Now: func() time.Time { return time.Now().Add(console.SessionLifetime + time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "/console/", nil)
	req.AddCookie(sc)
	rec := newRecorder()
	later.ServeHTTP(rec, req)
	if rec.code != http.StatusSeeOther {
		t.Errorf("GET the overview with an expired session = %d; want 303 to the login page", rec.code)
	}
	out := do(t, w.url, http.MethodPost, "logout", url.Values{"csrf": {csrf}}, nil, sc)
	if c := out.cookie("zoomprov_console"); out.code != http.StatusSeeOther || c == nil || c.MaxAge >= 0 {
		t.Errorf("POST logout = %d, cookie %+v; want 303 clearing the session cookie", out.code, c)
	}
}

// recorder is a minimal http.ResponseWriter.
type recorder struct {
	header http.Header
	code   int
	body   strings.Builder
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

// Ensure failed logins are limited: after console.MaxFailures from one
// address, even the right token is refused (429), by form and by bearer
// token, until the failures leave the window.
func TestLoginLimit(t *testing.T) {
	w := newWorld(t)
	offset := time.Duration(0)
	con, err := console.New(console.Config{JS: w.js, Topology: w.topo, Tokens: w.tokens, Logger: zerolog.Nop(),
		Now: func() time.Time { return time.Now().Add(offset) }})
	if err != nil {
		t.Fatal(err)
	}
	post := func(secret string) int {
		lf := newRecorder()
		req, _ := http.NewRequest(http.MethodGet, "/console/login", nil)
		req.RemoteAddr = "192.0.2.7:5555"
		con.ServeHTTP(lf, req)
		var lc *http.Cookie
		for _, c := range (&http.Response{Header: lf.header}).Cookies() {
			lc = c
		}
		rec := newRecorder()
		req, _ = http.NewRequest(http.MethodPost, "/console/login", strings.NewReader(url.Values{"csrf": {lc.Value}, "token": {secret}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.RemoteAddr = "192.0.2.7:5555"
		req.AddCookie(lc)
		con.ServeHTTP(rec, req)
		return rec.code
	}
	bearer := func(remote string) int {
		rec := newRecorder()
		req, _ := http.NewRequest(http.MethodGet, "/console/quota", nil)
		req.RemoteAddr = remote
		req.Header.Set("Authorization", "Bearer "+aliceSecret)
		con.ServeHTTP(rec, req)
		return rec.code
	}
	for i := range console.MaxFailures {
		if code := post(fmt.Sprintf("guess-%d-0123456789", i)); code != http.StatusUnauthorized {
			t.Fatalf("failed login %d = %d; want 401", i+1, code)
		}
	}
	if code := post(aliceSecret); code != http.StatusTooManyRequests {
		t.Errorf("login with the right token after %d failures = %d; want 429", console.MaxFailures, code)
	}
	if code := bearer("192.0.2.7:6000"); code != http.StatusTooManyRequests {
		t.Errorf("bearer token from the same address = %d; want 429", code)
	}
	if code := bearer("192.0.2.8:6000"); code != http.StatusOK {
		t.Errorf("bearer token from another address = %d; want 200", code)
	}
	offset = console.FailureWindow + time.Second
	if code := post(aliceSecret); code != http.StatusSeeOther {
		t.Errorf("login with the right token once the failures left the window = %d; want 303", code)
	}
}

// Ensure every POST needs the session's own CSRF token: without it, with
// a wrong one or with another session's, the answer is 403 and nothing
// changes.
func TestCSRF(t *testing.T) {
	w := newWorld(t)
	w.deadLetter("csrf-1", "carl@example.com")
	dl := w.deadLetters(1)["csrf-1"]
	alice, _ := login(t, w.url, aliceSecret)
	_, bobCSRF := login(t, w.url, bobSecret)
	bearer := http.Header{"Authorization": {"Bearer " + aliceSecret}}
	for _, p := range []string{"dlq/replay", "dlq/purge", "guard/release", "guard/reject", "quota/open", "user/forget", "logout"} {
		for _, tc := range []struct {
			name   string
			csrf   []string
			header http.Header
		}{
			{"no token", nil, nil}, {"a wrong token", []string{"AAAA"}, nil}, {"bob's token", []string{bobCSRF}, nil},
			{"bearer, no token", nil, bearer}, {"bearer, bob's token", []string{bobCSRF}, bearer},
		} {
			form := url.Values{"seq": {fmt.Sprint(dl.Seq)}, "confirm": {"1"}, "upto": {fmt.Sprint(dl.Seq)}, "reason": {"x"},
				"scope": {"create"}, "email": {"carl@example.com"}}
			if tc.csrf != nil {
				form["csrf"] = tc.csrf
			}
			var r response
			if tc.header != nil {
				r = do(t, w.url, http.MethodPost, p, form, tc.header)
			} else {
				r = do(t, w.url, http.MethodPost, p, form, nil, alice)
			}
			if r.code != http.StatusForbidden {
				t.Errorf("POST %s with %s = %d; want 403", p, tc.name, r.code)
			}
		}
	}
	if r := do(t, w.url, http.MethodGet, "dlq/replay", nil, nil, alice); r.code != http.StatusMethodNotAllowed && r.code != http.StatusNotFound {
		t.Errorf("GET dlq/replay = %d; want it refused (405 or 404), a change needs a POST", r.code)
	}
	if n := w.count(); n != 1 {
		t.Errorf("%d dead letters after the refused posts; want 1", n)
	}
	if evs := w.audits("dlq"); len(evs) != 0 {
		t.Errorf("audit events after the refused posts: %+v; want none", evs)
	}
	// With the token, bearer clients can post too.
	page := do(t, w.url, http.MethodGet, "dlq", nil, bearer)
	if r := do(t, w.url, http.MethodPost, "dlq/replay", url.Values{"seq": {fmt.Sprint(dl.Seq)}, "csrf": {csrfOf(t, page)}}, bearer); r.code != http.StatusOK {
		t.Errorf("POST dlq/replay with the bearer token and its CSRF token = %d; want 200:\n%s", r.code, r.body)
	}
}

// Ensure every page answers with the strict headers: a Content-Security-
// Policy that allows no script, no frame and no other origin, and
// X-Frame-Options: DENY.
func TestSecurityHeaders(t *testing.T) {
	w := newWorld(t)
	for _, r := range []response{
		do(t, w.url, http.MethodGet, "login", nil, nil),
		do(t, w.url, http.MethodGet, "", nil, http.Header{"Authorization": {"Bearer " + aliceSecret}}),
		do(t, w.url, http.MethodGet, "dlq", nil, nil),
	} {
		csp := r.header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "form-action 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") || strings.Contains(csp, "script-src") {
			t.Errorf("Content-Security-Policy %q allows scripts", csp)
		}
		if r.header.Get("X-Frame-Options") != "DENY" || r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("X-Frame-Options %q, X-Content-Type-Options %q; want DENY, nosniff", r.header.Get("X-Frame-Options"), r.header.Get("X-Content-Type-Options"))
		}
		if strings.Contains(r.body, "<script") || regexp.MustCompile(`\son[a-z]+=`).MatchString(r.body) {
			t.Errorf("a page holds a script or an inline event handler:\n%s", r.body)
		}
	}
}

// Ensure the dead-letter pages: the list filtered by action, reason and
// e-mail, with the test hooks; one dead letter without its password; a
// replay of one at a click, audited with the actor; a replay of all that
// match and a purge only once their count is confirmed (and again when
// it changed), audited likewise.
func TestDeadLetterActions(t *testing.T) {
	w := newWorld(t)
	w.deadLetter("dl-1", "ann@example.com")
	w.deadLetter("dl-2", "ben@example.org")
	w.deadLetter("dl-3", "cid@example.org")
	w.publish("dl-weak", "autoCreate", `{"action":"autoCreate","user_info":{"email":"dee@example.com","type":1,"password":"password1"}}`)
	w.publish("dl-invalid", "custCreate", `{"action":"custCreate","user_info":{"email":"not-an-email","type":1}}`)
	dls := w.deadLetters(5)
	sc, csrf := login(t, w.url, aliceSecret)
	get := func(p string) response { t.Helper(); return do(t, w.url, http.MethodGet, p, nil, nil, sc) }
	post := func(p string, f url.Values) response {
		t.Helper()
		f.Set("csrf", csrf)
		return do(t, w.url, http.MethodPost, p, f, nil, sc)
	}
	rowIDs := func(r response) []string {
		var out []string
		for _, m := range regexp.MustCompile(`<tr data-request-id="([^"]+)"`).FindAllStringSubmatch(r.body, -1) {
			out = append(out, m[1])
		}
		return out
	}

	all := get("dlq")
	if got := rowIDs(all); len(got) != 5 || strings.Count(all.body, `data-action="replay"`) != 5 {
		t.Errorf("dlq lists %v with %d replay buttons; want 5 rows each with one", got, strings.Count(all.body, `data-action="replay"`))
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"reason=not_found", []string{"dl-1", "dl-2", "dl-3"}},
		{"action=custCreate", []string{"dl-invalid"}},
		{"email=%40example.org", []string{"dl-2", "dl-3"}},
		{"email=ann%40example.com&reason=not_found&action=ssoCreate", []string{"dl-1"}},
	} {
		got := rowIDs(get("dlq?" + tc.query))
		slices.Sort(got) // the list is in dead-letter order, which the service's timing decides
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("dlq?%s lists %v; want %v", tc.query, got, tc.want)
		}
	}
	if r := get("dlq?reason=bogus"); r.code != http.StatusBadRequest {
		t.Errorf("dlq?reason=bogus = %d; want 400", r.code)
	}
	show := get(fmt.Sprintf("dlq/%d", dls["dl-weak"].Seq))
	if show.code != http.StatusOK || strings.Contains(show.body, "password1") || !strings.Contains(show.body, "dee@example.com") {
		t.Errorf("dlq/%d = %d, with the password %v; want 200, the address, no password", dls["dl-weak"].Seq, show.code, strings.Contains(show.body, "password1"))
	}

	// One at a click.
	r := post("dlq/replay", url.Values{"seq": {fmt.Sprint(dls["dl-1"].Seq)}})
	replayID := fmt.Sprintf("dl-1/replay/%d", dls["dl-1"].Seq)
	if r.code != http.StatusOK || !strings.Contains(r.body, `data-replay-id="`+replayID+`"`) {
		t.Fatalf("POST dlq/replay of dl-1 = %d; want 200 naming %s:\n%s", r.code, replayID, r.body)
	}
	if n := w.count(); n != 4 {
		t.Errorf("%d dead letters after one replay; want 4", n)
	}
	// Its result shows in the person's history, once the service handled it.
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		u := get("user?email=ann%40example.com&wait=" + url.QueryEscape(replayID))
		return strings.Contains(u.body, `data-request-id="`+replayID+`" data-outcome="created"`), "the replay's result is not in ann's history yet"
	})

	// All that match: the count first.
	filter := url.Values{"reason": {"not_found"}}
	c := post("dlq/replay", filter)
	if c.code != http.StatusOK || !strings.Contains(c.body, `data-confirm-count="2"`) || w.count() != 4 {
		t.Fatalf("POST dlq/replay reason=not_found without a confirmation = %d; want 200 asking to confirm 2, nothing replayed:\n%s", c.code, c.body)
	}
	upto := fmt.Sprint(max(dls["dl-2"].Seq, dls["dl-3"].Seq))
	wrong := post("dlq/replay", url.Values{"reason": {"not_found"}, "confirm": {"3"}, "upto": {upto}})
	if wrong.code != http.StatusConflict || !strings.Contains(wrong.body, `data-confirm-count="2"`) || w.count() != 4 {
		t.Errorf("POST dlq/replay confirming 3 of 2 = %d; want 409 asking again, nothing replayed", wrong.code)
	}
	done := post("dlq/replay", url.Values{"reason": {"not_found"}, "confirm": {"2"}, "upto": {upto}, "audit_reason": {"group created"}})
	if done.code != http.StatusOK || !strings.Contains(done.body, `data-replayed="2"`) || w.count() != 2 {
		t.Errorf("POST dlq/replay confirming 2 = %d, %d left; want 200, 2 replayed, 2 left:\n%s", done.code, w.count(), done.body)
	}

	// A purge, of one: the count first, too.
	one := url.Values{"seq": {fmt.Sprint(dls["dl-invalid"].Seq)}}
	if p := post("dlq/purge", one); p.code != http.StatusOK || !strings.Contains(p.body, `data-confirm-count="1"`) || w.count() != 2 {
		t.Errorf("POST dlq/purge without a confirmation = %d; want 200 asking to confirm 1, nothing purged", p.code)
	}
	one.Set("confirm", "1")
	one.Set("upto", fmt.Sprint(dls["dl-invalid"].Seq))
	if p := post("dlq/purge", one); p.code != http.StatusOK || !strings.Contains(p.body, `data-deleted="1"`) || w.count() != 1 {
		t.Errorf("POST dlq/purge confirming 1 = %d, %d left; want 200, 1 deleted, 1 left", p.code, w.count())
	}

	evs := w.audits("dlq")
	if len(evs) != 3 {
		t.Fatalf("%d dlq audit events; want 3 (one replay, a replay of two, a purge): %+v", len(evs), evs)
	}
	for i, want := range []struct{ typ, reason string }{
		{audit.Type("dlq", "replayed"), "none given"}, {audit.Type("dlq", "replayed"), "group created"}, {audit.Type("dlq", "purged"), "none given"},
	} {
		if evs[i].Type != want.typ || evs[i].Data["actor"] != "alice" || evs[i].Data["reason"] != want.reason {
			t.Errorf("audit event %d = %s by %v (%v); want %s by alice (%s)", i, evs[i].Type, evs[i].Data["actor"], evs[i].Data["reason"], want.typ, want.reason)
		}
	}
	if evs[0].Subject != "dl-1" {
		t.Errorf("the single replay's audit subject = %q; want dl-1", evs[0].Subject)
	}
}

// Ensure the guard page: a tripped guard with the requests it holds, a
// release or rejection refused without a reason, done with one, audited
// with the actor; the guard open again.
func TestGuardActions(t *testing.T) {
	w := newWorld(t)
	trip := func(prefix string) {
		t.Helper()
		for i := range 3 {
			email := fmt.Sprintf("%s-%d@example.com", prefix, i)
			w.sim.AddUser(email, 1)
			w.publish(fmt.Sprintf("%s-%d", prefix, i), "deactivate", fmt.Sprintf(`{"email":%q}`, email))
		}
		testenv.Eventually(t, 20*time.Second, func() (bool, string) {
			st, err := guard.Load(context.Background(), w.js, w.topo)
			return err == nil && st.Tripped && guard.Waiting(context.Background(), w.js, w.topo) == 1, fmt.Sprintf("guard %+v, %v; want tripped, one held", st, err)
		})
	}
	trip("leaver")
	sc, csrf := login(t, w.url, bobSecret)
	page := do(t, w.url, http.MethodGet, "guard", nil, nil, sc)
	if !strings.Contains(page.body, `data-guard-state="tripped"`) || !strings.Contains(page.body, `data-held="1"`) {
		t.Fatalf("guard page of a tripped guard; want tripped, 1 held:\n%s", page.body)
	}
	if r := do(t, w.url, http.MethodPost, "guard/release", url.Values{"csrf": {csrf}, "reason": {"  "}}, nil, sc); r.code != http.StatusBadRequest {
		t.Errorf("POST guard/release without a reason = %d; want 400", r.code)
	}
	if st, _ := guard.Load(context.Background(), w.js, w.topo); !st.Tripped {
		t.Fatal("a release without a reason opened the guard")
	}
	r := do(t, w.url, http.MethodPost, "guard/release", url.Values{"csrf": {csrf}, "reason": {"HR confirmed"}}, nil, sc)
	if r.code != http.StatusSeeOther || r.header.Get("Location") != "/console/guard?done=released" {
		t.Errorf("POST guard/release = %d to %q; want 303 to the guard page", r.code, r.header.Get("Location"))
	}
	if r := do(t, w.url, http.MethodPost, "guard/reject", url.Values{"csrf": {csrf}, "reason": {"again"}}, nil, sc); r.code != http.StatusConflict {
		t.Errorf("POST guard/reject of an open guard = %d; want 409", r.code)
	}
	trip("second")
	if r := do(t, w.url, http.MethodPost, "guard/reject", url.Values{"csrf": {csrf}, "reason": {"feed broken"}}, nil, sc); r.code != http.StatusSeeOther {
		t.Errorf("POST guard/reject = %d; want 303", r.code)
	}
	var decisions []audit.CloudEvent
	for _, ev := range w.audits("guard") {
		if ev.Type != audit.Type("guard", "tripped") {
			decisions = append(decisions, ev)
		}
	}
	if len(decisions) != 2 || decisions[0].Type != audit.Type("guard", "released") || decisions[1].Type != audit.Type("guard", "rejected") ||
		decisions[0].Data["actor"] != "bob" || decisions[1].Data["reason"] != "feed broken" || decisions[0].Data["requests"] != float64(1) {
		t.Errorf("guard decisions audited: %+v; want released then rejected by bob, with the reasons and 1 request", decisions)
	}
}

// Ensure the quota page shows the gates and each replica's share, and
// opens a closed gate with a reason, audited with the actor.
func TestQuotaActions(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	kv, err := w.js.KeyValue(ctx, w.topo.QuotaBucket)
	if err != nil {
		t.Fatal(err)
	}
	gt := quota.Gate{Scope: "create", Until: time.Now().Add(time.Hour), Reason: "Daily user creation limit reached", ClosedAt: time.Now(), ClosedBy: "replica-x"}
	data, _ := json.Marshal(gt)
	if _, err := kv.Put(ctx, quota.GateKey("create"), data); err != nil {
		t.Fatal(err)
	}
	sc, csrf := login(t, w.url, aliceSecret)
	page := do(t, w.url, http.MethodGet, "quota", nil, nil, sc)
	if !strings.Contains(page.body, "replica-x") || !strings.Contains(page.body, `data-action="open-gate"`) || !strings.Contains(page.body, "Calls per second") {
		t.Errorf("quota page; want the closed create gate with its open form and the replicas' shares:\n%s", page.body)
	}
	if r := do(t, w.url, http.MethodPost, "quota/open", url.Values{"csrf": {csrf}, "scope": {"create"}}, nil, sc); r.code != http.StatusBadRequest {
		t.Errorf("POST quota/open without a reason = %d; want 400", r.code)
	}
	if r := do(t, w.url, http.MethodPost, "quota/open", url.Values{"csrf": {csrf}, "scope": {"create"}, "reason": {"limit raised"}}, nil, sc); r.code != http.StatusSeeOther {
		t.Errorf("POST quota/open = %d; want 303", r.code)
	}
	if _, err := kv.Get(ctx, quota.GateKey("create")); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("the create gate after opening: %v; want it gone", err)
	}
	evs := w.audits("quota")
	if len(evs) != 1 || evs[0].Type != audit.Type("quota", "opened") || evs[0].Data["actor"] != "alice" || evs[0].Data["reason"] != "limit raised" {
		t.Errorf("quota audit events %+v; want one quota.opened by alice, limit raised", evs)
	}
}

// Ensure the user page: the history by address with the test hooks, the
// erasure refused without the address typed again or a reason, done with
// both and audited with the actor; and the overview with its chart.
func TestUserAndOverview(t *testing.T) {
	w := newWorld(t)
	w.publish("u-1", "ssoCreate", `{"action":"ssoCreate","user_info":{"email":"una@example.com","type":1}}`)
	w.publish("u-2", "update", `{"email":"una@example.com","user":{"dept":"Sales"}}`)
	sc, csrf := login(t, w.url, aliceSecret)
	var page response
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		page = do(t, w.url, http.MethodGet, "user?email=UNA%40example.com", nil, nil, sc)
		return strings.Contains(page.body, `data-request-id="u-1" data-outcome="created"`) && strings.Contains(page.body, `data-request-id="u-2" data-outcome="updated"`),
			"una's history lacks u-1 and u-2"
	})
	if !strings.Contains(page.body, `name="email"`) || !strings.Contains(page.body, `data-state="active"`) {
		t.Errorf("user page; want the email input and state active:\n%s", page.body)
	}
	for _, f := range []url.Values{
		{"email": {"una@example.com"}, "confirm": {"other@example.com"}, "reason": {"GDPR-1"}},
		{"email": {"una@example.com"}, "confirm": {"una@example.com"}},
	} {
		f.Set("csrf", csrf)
		if r := do(t, w.url, http.MethodPost, "user/forget", f, nil, sc); r.code != http.StatusBadRequest {
			t.Errorf("POST user/forget %v = %d; want 400", f, r.code)
		}
	}
	r := do(t, w.url, http.MethodPost, "user/forget", url.Values{"csrf": {csrf}, "email": {"una@example.com"}, "confirm": {"Una@example.com"}, "reason": {"GDPR-1"}}, nil, sc)
	if r.code != http.StatusOK || !strings.Contains(r.body, `data-state="unknown"`) {
		t.Errorf("POST user/forget = %d; want 200 and the person unknown:\n%s", r.code, r.body)
	}
	evs := w.audits("user")
	if len(evs) != 1 || evs[0].Type != audit.Type("user", "forgotten") || evs[0].Data["actor"] != "alice" || evs[0].Data["reason"] != "GDPR-1" {
		t.Errorf("user audit events %+v; want one user.forgotten by alice, GDPR-1", evs)
	}

	w.deadLetter("ov-1", "ova@example.com")
	w.deadLetters(1)
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		page = do(t, w.url, http.MethodGet, "", nil, nil, sc)
		return strings.Contains(page.body, "<svg") && strings.Contains(page.body, `data-stat="dead-letters">1<`) &&
			regexp.MustCompile(`failed <strong>[1-9]`).MatchString(page.body), "the overview lacks the chart, 1 dead letter or a failed result"
	})
	for _, want := range []string{`data-action-backlog="ssoCreate"`, `data-stat="guard">open<`, "Calls per second", "<rect"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("the overview lacks %s:\n%s", want, page.body)
		}
	}
}
