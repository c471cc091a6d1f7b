// Package console is the operator console: server-rendered pages under
// /console/ on the service's HTTP address that show the backlog, the
// quota gates and each replica's share, the guard against mass
// deprovisioning, the results of the last hour and the dead letters, and
// that replay or purge dead letters, release or reject what the guard
// holds, open a quota gate, and show or erase one person's history.
//
// Every page and action needs a login: a session cookie from the login
// form (HttpOnly, SameSite=Strict, Secure over TLS), signed with a key
// derived from the login's secret so that any replica reading the same
// token file accepts it, or an Authorization: Bearer header with the
// secret. Every change is a POST carrying the session's CSRF token (form
// field csrf) and is made by the same function the CLI calls (packages
// dlq, guard, quota and ledger), which records the same audit event, with
// the login's name as the actor.
//
// The pages are html/template files and one style sheet embedded in the
// binary; they use no JavaScript, and the chart is SVG drawn on the
// server, so the Content-Security-Policy allows no script at all.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/zoomprov/consumer/internal/seal"
	"github.com/zoomprov/consumer/internal/topology"
)

// basePath is where the console is served.
const basePath = "/console/"

// DefaultReplayRate is how many requests a replay from the console
// republishes per second at most.
const DefaultReplayRate = 50

// maxFormBytes bounds a posted form.
const maxFormBytes = 64 << 10

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config configures the console.
type Config struct {
	// JS reaches the service's streams and buckets; Topology names them.
	JS       jetstream.JetStream
	Topology topology.Topology
	// Tokens are the logins (required).
	Tokens *Tokens
	// Keys open the passwords the service sealed in dead letters, for a
	// replay (DLQ_SEAL_KEY_FILE); nil: a dead letter with a sealed
	// password is refused, as by `consumer dlq replay` without keys.
	Keys *seal.Keyring
	// Actions are those whose backlog is shown; empty: every action.
	Actions []string
	// Logger records sign-ins, refused logins and changes (names and
	// counts, never a secret).
	Logger zerolog.Logger
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// ReplayRate: requests republished per second by a replay; zero:
	// DefaultReplayRate.
	ReplayRate float64
}

// Console serves the operator console. It is an http.Handler for the
// paths under /console/.
type Console struct {
	cfg     Config
	mux     *http.ServeMux
	limiter *limiter
	rates   *rates
	pages   map[string]*template.Template
	static  http.Handler
}

// ErrNoLogin is returned by New without Tokens.
var ErrNoLogin = errors.New("console: no logins (CONSOLE_TOKEN_FILE)")

// New returns the console of cfg.
func New(cfg Config) (*Console, error) {
	if cfg.Tokens == nil || len(cfg.Tokens.list) == 0 {
		return nil, ErrNoLogin
	}
	if cfg.JS == nil {
		return nil, errors.New("console: no JetStream")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ReplayRate == 0 {
		cfg.ReplayRate = DefaultReplayRate
	}
	if len(cfg.Actions) == 0 {
		cfg.Actions = topology.Actions()
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, mux: http.NewServeMux(), limiter: newLimiter(), rates: newRates(), pages: pages,
		static: http.StripPrefix(basePath+"static/", http.FileServerFS(static))}
	c.routes()
	return c, nil
}

// routes registers the pages and actions that need a session.
func (c *Console) routes() {
	c.mux.HandleFunc("GET "+basePath+"{$}", c.overview)
	c.mux.HandleFunc("GET "+basePath+"dlq", c.dlqList)
	c.mux.HandleFunc("GET "+basePath+"dlq/{seq}", c.dlqShow)
	c.mux.HandleFunc("POST "+basePath+"dlq/replay", c.dlqReplay)
	c.mux.HandleFunc("POST "+basePath+"dlq/purge", c.dlqPurge)
	c.mux.HandleFunc("GET "+basePath+"guard", c.guardPage)
	c.mux.HandleFunc("POST "+basePath+"guard/{verb}", c.guardDecide)
	c.mux.HandleFunc("GET "+basePath+"quota", c.quotaPage)
	c.mux.HandleFunc("POST "+basePath+"quota/open", c.quotaOpen)
	c.mux.HandleFunc("GET "+basePath+"user", c.userPage)
	c.mux.HandleFunc("POST "+basePath+"user/forget", c.userForget)
	c.mux.HandleFunc("POST "+basePath+"logout", c.logout)
	c.mux.HandleFunc(basePath, func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, http.StatusNotFound, "There is no such page.")
	})
}

// contentSecurityPolicy allows the console's own style sheet and forms,
// and nothing else: no script, no frame, no other origin.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// ServeHTTP serves the console: the login page and the style sheet to
// anyone; every other page and action only with a session (else 401, or
// for a page a redirect to the login page), and every POST only with the
// session's CSRF token (else 403).
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")

	path := r.URL.Path
	switch {
	case strings.HasPrefix(path, basePath+"static/"):
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.Set("Cache-Control", "max-age=3600")
		c.static.ServeHTTP(w, r)
		return
	case path == basePath+"login":
		c.login(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodPost {
		h.Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s, status := c.authenticate(w, r)
	if status != 0 {
		switch {
		case status == http.StatusUnauthorized && (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.Header.Get("Authorization") == "":
			http.Redirect(w, r, basePath+"login?next="+url.QueryEscape(path), http.StatusSeeOther)
		case status == http.StatusUnauthorized:
			h.Set("WWW-Authenticate", `Bearer realm="console"`)
			http.Error(w, "authentication required: log in at "+basePath+"login, or send Authorization: Bearer <secret>", status)
		default:
			http.Error(w, "too many failed logins from this address; try again later", status)
		}
		return
	}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if !s.checkCSRF(r.PostFormValue("csrf")) {
			http.Error(w, "missing or invalid CSRF token (form field csrf): nothing was changed; reload the page and try again", http.StatusForbidden)
			return
		}
	}
	c.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, s)))
}

type sessionKey struct{}

// sessionOf is the session ServeHTTP authenticated.
func sessionOf(r *http.Request) session {
	s, _ := r.Context().Value(sessionKey{}).(session)
	return s
}

// authenticate returns the request's session, or the status to refuse it
// with: 401 without a valid bearer token or session cookie, 429 while the
// client address has used up its failed logins. A wrong bearer token
// counts as a failed login.
func (c *Console) authenticate(w http.ResponseWriter, r *http.Request) (session, int) {
	now := c.cfg.Now()
	if auth := r.Header.Get("Authorization"); auth != "" {
		ip := client(r)
		if _, blocked := c.limiter.blocked(ip, now); blocked {
			return session{}, http.StatusTooManyRequests
		}
		secret, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok {
			return session{}, http.StatusUnauthorized
		}
		tok, ok := c.cfg.Tokens.match(strings.TrimSpace(secret))
		if !ok {
			c.limiter.fail(ip, now)
			c.cfg.Logger.Warn().Str("client", ip).Msg("console: a bearer token was refused")
			return session{}, http.StatusUnauthorized
		}
		c.limiter.succeed(ip)
		return session{tok: tok}, 0
	}
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, http.StatusUnauthorized
	}
	s, ok := parseSession(c.cfg.Tokens, ck.Value, now)
	if !ok {
		clearCookie(w, r, sessionCookie)
		return session{}, http.StatusUnauthorized
	}
	return s, 0
}

// login serves the login form (GET) and signs in (POST): the token's
// secret, and the value of the login cookie echoed in the form's csrf
// field, which a cross-site form cannot know.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	now := c.cfg.Now()
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	}
	next := safeNext(r.FormValue("next"))
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if ck, err := r.Cookie(sessionCookie); err == nil {
			if _, ok := parseSession(c.cfg.Tokens, ck.Value, now); ok {
				http.Redirect(w, r, next, http.StatusSeeOther)
				return
			}
		}
		c.loginForm(w, r, http.StatusOK, next, "")
	case http.MethodPost:
		ip := client(r)
		if until, blocked := c.limiter.blocked(ip, now); blocked {
			c.loginForm(w, r, http.StatusTooManyRequests, next, fmt.Sprintf("Too many failed logins from this address: try again after %s.", until.UTC().Format("15:04 MST")))
			return
		}
		ck, err := r.Cookie(loginCookie)
		if err != nil || !equalConstantTime(ck.Value, r.PostFormValue("csrf")) {
			c.loginForm(w, r, http.StatusForbidden, next, "The login form expired or came from another site: nothing was changed. Try again.")
			return
		}
		tok, ok := c.cfg.Tokens.match(strings.TrimSpace(r.PostFormValue("token")))
		if !ok {
			c.limiter.fail(ip, now)
			c.cfg.Logger.Warn().Str("client", ip).Msg("console: a login was refused")
			c.loginForm(w, r, http.StatusUnauthorized, next, "That token is not valid.")
			return
		}
		c.limiter.succeed(ip)
		s := session{tok: tok, expires: now.Add(SessionLifetime).Truncate(time.Second)}
		setCookie(w, r, sessionCookie, s.cookieValue(), SessionLifetime)
		clearCookie(w, r, loginCookie)
		c.cfg.Logger.Info().Str("actor", tok.name).Str("client", ip).Msg("console: signed in")
		http.Redirect(w, r, next, http.StatusSeeOther)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// loginForm renders the login page with a fresh login cookie.
func (c *Console) loginForm(w http.ResponseWriter, r *http.Request, status int, next, problem string) {
	v := randomToken()
	setCookie(w, r, loginCookie, v, loginFormLifetime)
	c.render(w, r, status, "login", page{Title: "Log in", CSRF: v, Data: struct{ Next, Problem string }{next, problem}})
}

// safeNext is where to go after logging in: a console path, else the
// overview.
func safeNext(next string) string {
	if !strings.HasPrefix(next, basePath) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") || next == basePath+"login" {
		return basePath
	}
	return next
}

// logout ends the session in this browser.
func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	clearCookie(w, r, sessionCookie)
	http.Redirect(w, r, basePath+"login", http.StatusSeeOther)
}

// page is what every template gets.
type page struct {
	Title string
	// Nav is the section the page belongs to, for the menu.
	Nav string
	// Actor and CSRF are the session's; empty on the login page.
	Actor, CSRF string
	// Refresh, when positive, reloads the page after that many seconds.
	Refresh int
	// Notice is a line about what was just done.
	Notice string
	Data   any
}

// render writes page name with status.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	if s := sessionOf(r); s.tok.name != "" {
		p.Actor, p.CSRF = s.tok.name, s.csrf()
	}
	t, ok := c.pages[name]
	if !ok {
		http.Error(w, "no template "+name, http.StatusInternalServerError)
		return
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", p); err != nil {
		c.cfg.Logger.Error().Err(err).Str("page", name).Msg("console: render")
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// fail renders the error page.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	c.render(w, r, status, "error", page{Title: http.StatusText(status), Data: msg})
}
