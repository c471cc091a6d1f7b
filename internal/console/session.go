package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Cookie names and lifetimes.
const (
	// sessionCookie holds a signed session: "v1.<name>.<expiry>.<mac>".
	sessionCookie = "zoomprov_console"
	// loginCookie holds the random value the login form must echo (a
	// double-submit CSRF token for the one form posted before a session
	// exists).
	loginCookie = "zoomprov_console_login"
	// SessionLifetime is how long a login lasts: a working day. There is
	// no server-side session to revoke; changing a login's secret in the
	// token file (and restarting) ends its sessions.
	SessionLifetime   = 12 * time.Hour
	loginFormLifetime = time.Hour
)

// session is an authenticated operator: by cookie (expires set) or by
// bearer token (expires zero).
type session struct {
	tok     token
	expires time.Time
}

// mac signs parts under the login's key.
func (s session) mac(parts ...string) string {
	m := hmac.New(sha256.New, s.tok.key)
	m.Write([]byte(strings.Join(parts, "|")))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrf is the CSRF token of the session: derived from it, so any replica
// can check it, and different for every login and every session.
func (s session) csrf() string {
	if s.expires.IsZero() {
		return s.mac("csrf", "bearer", s.tok.name)
	}
	return s.mac("csrf", "v1", s.tok.name, strconv.FormatInt(s.expires.Unix(), 10))
}

// checkCSRF reports whether got is the session's CSRF token, in constant
// time.
func (s session) checkCSRF(got string) bool {
	return got != "" && hmac.Equal([]byte(got), []byte(s.csrf()))
}

// cookieValue is the signed session cookie.
func (s session) cookieValue() string {
	exp := strconv.FormatInt(s.expires.Unix(), 10)
	return "v1." + base64.RawURLEncoding.EncodeToString([]byte(s.tok.name)) + "." + exp + "." + s.mac("session", "v1", s.tok.name, exp)
}

// parseSession verifies a session cookie against the logins: its
// signature under the named login's key, and its expiry.
func parseSession(tokens *Tokens, value string, now time.Time) (session, bool) {
	parts := strings.Split(value, ".")
	if len(parts) != 4 || parts[0] != "v1" {
		return session{}, false
	}
	name, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return session{}, false
	}
	exp, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return session{}, false
	}
	tok, ok := tokens.byName(string(name))
	if !ok {
		return session{}, false
	}
	s := session{tok: tok, expires: time.Unix(exp, 0)}
	if !hmac.Equal([]byte(parts[3]), []byte(s.mac("session", "v1", tok.name, parts[2]))) || !now.Before(s.expires) {
		return session{}, false
	}
	return s, true
}

// secure reports whether r came over TLS, to the service or to the proxy
// in front of it (X-Forwarded-Proto): its cookies are then Secure.
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: basePath, MaxAge: int(maxAge / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure(r),
	})
}

func clearCookie(w http.ResponseWriter, r *http.Request, name string) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: "", Path: basePath, MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure(r),
	})
}

// randomToken is 32 random bytes, URL-safe.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// equalConstantTime compares two strings in constant time.
func equalConstantTime(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// Failed logins: each client address may fail MaxFailures times within
// FailureWindow; after that every login from it (form or bearer token)
// is refused with 429 until its oldest failure leaves the window. Kept in
// memory per replica.
const (
	MaxFailures   = 10
	FailureWindow = 15 * time.Minute
	// maxClients bounds the addresses remembered; beyond it, failures of
	// new addresses count together under one entry.
	maxClients = 10000
)

// limiter counts failed logins per client address.
type limiter struct {
	mu    sync.Mutex
	fails map[string][]time.Time
}

func newLimiter() *limiter { return &limiter{fails: map[string][]time.Time{}} }

// client is the address failures are counted under: the connection's IP
// (behind a proxy, the proxy's: X-Forwarded-For is not trusted).
func client(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// recent drops failures older than the window; callers hold mu.
func (l *limiter) recent(key string, now time.Time) []time.Time {
	fs := l.fails[key]
	i := 0
	for i < len(fs) && now.Sub(fs[i]) >= FailureWindow {
		i++
	}
	fs = fs[i:]
	if len(fs) == 0 {
		delete(l.fails, key)
		return nil
	}
	l.fails[key] = fs
	return fs
}

// blocked reports whether key has used up its failures, and until when.
func (l *limiter) blocked(key string, now time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fs := l.recent(l.key(key, now), now)
	if len(fs) < MaxFailures {
		return time.Time{}, false
	}
	return fs[len(fs)-MaxFailures].Add(FailureWindow), true
}

// fail records a failed login of key.
func (l *limiter) fail(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.key(key, now)
	fs := append(l.recent(k, now), now)
	if len(fs) > MaxFailures {
		fs = fs[len(fs)-MaxFailures:]
	}
	l.fails[k] = fs
}

// succeed forgets key's failures.
func (l *limiter) succeed(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, key)
}

// key is key itself, or the shared overflow entry once maxClients
// addresses are remembered (expired ones pruned first); callers hold mu.
func (l *limiter) key(key string, now time.Time) string {
	if _, ok := l.fails[key]; ok || len(l.fails) < maxClients {
		return key
	}
	for k := range l.fails {
		l.recent(k, now)
	}
	if len(l.fails) < maxClients {
		return key
	}
	return "overflow"
}
