package zoom_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zoomprov/consumer/internal/zoom"
	"github.com/zoomprov/consumer/testenv"
)

// tick is the spacing of the steady runs: 10 calls per second of sim time.
const tick = 100 * time.Millisecond

// steadyEmail is the user every steady-run call looks up.
const steadyEmail = "steady@example.com"

// runResult is what a steady run did.
type runResult struct {
	calls, tokens, unauthorized int
}

// steadyRun makes one GetUser call per tick of sim time for span, starting
// at the clock's current time, and calls revoke (if not nil) before the
// calls whose index is in revokeAt. Every call must succeed.
func (e *env) steadyRun(t *testing.T, span time.Duration, revokeAt map[int]bool, revoke func()) runResult {
	t.Helper()
	ctx := context.Background()
	n := int(span / tick)
	for i := range n {
		if i > 0 {
			e.clock.Advance(tick)
		}
		if revokeAt[i] {
			revoke()
		}
		if _, err := e.client.GetUser(ctx, steadyEmail); err != nil {
			t.Fatalf("GetUser(%q) at call %d (%v into the run) error: %v", steadyEmail, i, time.Duration(i)*tick, err)
		}
	}
	st := e.sim.Stats()
	return runResult{
		calls:        n,
		tokens:       st.Requests[testenv.RouteToken][http.StatusOK],
		unauthorized: st.Requests[testenv.RouteGetUser][http.StatusUnauthorized],
	}
}

// checkRecoveries checks, in the simulator's log, that every 401 is
// followed by exactly one token request and then a successful retry with
// the new token.
func (e *env) checkRecoveries(t *testing.T) {
	t.Helper()
	log := e.sim.Requests()
	for i, r := range log {
		if r.Status != http.StatusUnauthorized {
			continue
		}
		if i+2 >= len(log) {
			t.Errorf("401 at log entry %d is the end of the log; want a token request and a retry after it", i)
			continue
		}
		tok, retry := log[i+1], log[i+2]
		if tok.Route != testenv.RouteToken || tok.Status != http.StatusOK {
			t.Errorf("after the 401 at log entry %d: %s answered %d; want one token request answered 200", i, tok.Route, tok.Status)
		}
		if retry.Route != r.Route || retry.Path != r.Path || retry.Status != http.StatusOK || retry.Authorization == r.Authorization {
			t.Errorf("after the 401 at log entry %d and its token: %s %s answered %d (same token %v); want the retry of %s answered 200 with the new token",
				i, retry.Method, retry.Path, retry.Status, retry.Authorization == r.Authorization, r.Path)
		}
	}
}

// tokenBound is the ceiling: ⌈span / (¾·ttl)⌉ + 1.
func tokenBound(span, ttl time.Duration) int {
	d := 3 * ttl
	return int((4*span+d-1)/d) + 1
}

// TestTokenRequestsSteadyRate is issue 12: at a steady 10 calls per second
// a token is fetched about once per ¾ of its lifetime, not once per call,
// and a revoked token costs exactly one more. Spans are 2.5 lifetimes, at
// least the 45 s; the 3,599 s token stays at 45 s (its refresh
// point is checked by TestTokenRefreshMargin) so that the run stays short.
func TestTokenRequestsSteadyRate(t *testing.T) {
	tests := []struct {
		ttl, span time.Duration
	}{
		{ttl: 3599 * time.Second, span: 45 * time.Second},
		{ttl: 120 * time.Second, span: 300 * time.Second},
		{ttl: 30 * time.Second, span: 75 * time.Second},
		{ttl: 5 * time.Second, span: 45 * time.Second},
		{ttl: 1 * time.Second, span: 45 * time.Second},
	}
	for _, tc := range tests {
		for _, revocations := range []int{0, 2} {
			t.Run(fmt.Sprintf("ttl %v revoked %d", tc.ttl, revocations), func(t *testing.T) {
				e := newEnv(t, testenv.SimConfig{TokenTTL: tc.ttl, MaxRecordedRequests: -1}, nil)
				e.sim.AddUser(steadyEmail, 1)
				// At a third and two thirds of the run; none of these calls
				// falls on a refresh, where the revoked token would be
				// replaced before it was used (and the check below fails).
				n := int(tc.span / tick)
				revokeAt := map[int]bool{}
				for k := 1; k <= revocations; k++ {
					revokeAt[k*n/(revocations+1)] = true
				}
				got := e.steadyRun(t, tc.span, revokeAt, e.sim.ExpireTokens)
				bound := tokenBound(tc.span, tc.ttl) + revocations
				t.Logf("ttl %v, span %v: %d calls, %d token requests (bound %d), %d 401s",
					tc.ttl, tc.span, got.calls, got.tokens, bound, got.unauthorized)
				if got.tokens > bound {
					t.Errorf("token requests for %d calls over %v with %v tokens = %d; want at most %d", got.calls, tc.span, tc.ttl, got.tokens, bound)
				}
				// A token is replaced before it expires: only revoked ones
				// are refused.
				if got.unauthorized != revocations {
					t.Errorf("401s with %d revocations = %d; want %d", revocations, got.unauthorized, revocations)
				}
				e.checkRecoveries(t)
			})
		}
	}
}

// TestTokenRefreshMargin checks when a token is replaced: a quarter of its
// lifetime early, at most RefreshBefore (one minute by default).
func TestTokenRefreshMargin(t *testing.T) {
	tests := []struct {
		ttl, refreshBefore time.Duration
		margin             time.Duration
	}{
		{ttl: 3599 * time.Second, margin: time.Minute},
		{ttl: 240 * time.Second, margin: time.Minute},
		{ttl: 120 * time.Second, margin: 30 * time.Second},
		{ttl: 30 * time.Second, margin: 7500 * time.Millisecond},
		{ttl: 5 * time.Second, margin: 1250 * time.Millisecond},
		{ttl: 1 * time.Second, margin: 250 * time.Millisecond},
		{ttl: 3599 * time.Second, refreshBefore: 5 * time.Minute, margin: 5 * time.Minute},
		{ttl: 3599 * time.Second, refreshBefore: time.Hour, margin: 3599 * time.Second / 4},
		{ttl: 120 * time.Second, refreshBefore: 10 * time.Second, margin: 10 * time.Second},
		{ttl: 30 * time.Second, refreshBefore: -time.Second, margin: 0},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("ttl %v refresh before %v", tc.ttl, tc.refreshBefore), func(t *testing.T) {
			e := newEnv(t, testenv.SimConfig{TokenTTL: tc.ttl}, func(c *zoom.Config) { c.RefreshBefore = tc.refreshBefore })
			e.sim.AddUser(steadyEmail, 1)
			ctx := context.Background()
			start := e.clock.Now()
			refresh := start.Add(tc.ttl - tc.margin)
			for _, step := range []struct {
				at     time.Time
				tokens int
			}{
				{at: start, tokens: 1},
				{at: refresh.Add(-tick), tokens: 1},
				{at: refresh, tokens: 2},
			} {
				e.clock.Advance(step.at.Sub(e.clock.Now()))
				if _, err := e.client.GetUser(ctx, steadyEmail); err != nil {
					t.Fatalf("GetUser(%q) at %v error: %v", steadyEmail, step.at.Sub(start), err)
				}
				if got := e.sim.Stats().TokensIssued; got != step.tokens {
					t.Errorf("tokens issued after a call at %v of a %v token = %d; want %d", step.at.Sub(start), tc.ttl, got, step.tokens)
				}
			}
			if got := e.sim.Stats().Requests[testenv.RouteGetUser][http.StatusUnauthorized]; got != 0 {
				t.Errorf("401s = %d; want 0 (the refresh comes before expiry)", got)
			}
		})
	}
}

// TestTokenWithoutExpiresIn: a token answer without a usable expires_in
// gives a token that is never replaced early; when the API refuses it, one
// new token is fetched and the call retried.
func TestTokenWithoutExpiresIn(t *testing.T) {
	const ttl, span = 30 * time.Second, 100 * time.Second
	for _, tc := range []struct {
		name string
		mode testenv.ExpiresIn
	}{
		{name: "omitted", mode: testenv.ExpiresInOmitted},
		{name: "zero", mode: testenv.ExpiresInZero},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, testenv.SimConfig{TokenTTL: ttl, TokenExpiresIn: tc.mode, MaxRecordedRequests: -1}, nil)
			e.sim.AddUser(steadyEmail, 1)
			got := e.steadyRun(t, span, nil, nil)
			// The simulator refuses each token at its TTL: at 30, 60 and
			// 90 s of a 100 s run.
			wantUnauthorized := int((span - 1) / ttl)
			t.Logf("expires_in %s, real ttl %v, span %v: %d calls, %d token requests, %d 401s", tc.name, ttl, span, got.calls, got.tokens, got.unauthorized)
			if got.unauthorized != wantUnauthorized {
				t.Errorf("401s = %d; want %d (one per expiry)", got.unauthorized, wantUnauthorized)
			}
			if got.tokens != 1+got.unauthorized {
				t.Errorf("token requests = %d; want %d (the first and one per 401)", got.tokens, 1+got.unauthorized)
			}
			e.checkRecoveries(t)
		})
	}
}

// tokenGate holds the client's token requests while armed, so that a test
// can gather callers behind one fetch.
type tokenGate struct {
	base    *http.Transport
	armed   atomic.Bool
	release chan struct{}
	held    atomic.Int32 // token requests that met the armed gate
}

func newTokenGate(t *testing.T) *tokenGate {
	g := &tokenGate{base: &http.Transport{MaxIdleConnsPerHost: 128}, release: make(chan struct{})}
	t.Cleanup(g.base.CloseIdleConnections)
	return g
}

func (g *tokenGate) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == "/oauth/token" && g.armed.Load() {
		g.held.Add(1)
		select {
		case <-g.release:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	return g.base.RoundTrip(r)
}

// goroutinesIn counts the goroutines with fn on their stack.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte(fn)) {
			count++
		}
	}
	return count
}

const accessTokenFrame = "zoom.(*Client).accessToken("

// TestTokenConcurrentAtExpiry: 64 callers that find the cached token due
// for replacement at once share one token request. The gate holds that
// request until all 64 are inside the token logic, so each of them had to
// decide whether to fetch while the first fetch was under way.
func TestTokenConcurrentAtExpiry(t *testing.T) {
	const ttl, callers = 30 * time.Second, 64
	tests := []struct {
		name  string
		after time.Duration // clock advance after the first token
	}{
		{name: "at the refresh point", after: ttl * 3 / 4},
		{name: "at expiry", after: ttl},
		{name: "long after expiry", after: 10 * ttl},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gate := newTokenGate(t)
			e := newEnv(t, testenv.SimConfig{TokenTTL: ttl}, func(c *zoom.Config) {
				c.HTTPClient = &http.Client{Transport: gate}
			})
			e.sim.AddUser(steadyEmail, 1)
			ctx := context.Background()
			if err := e.client.TokenValid(ctx); err != nil {
				t.Fatalf("TokenValid() error: %v", err)
			}
			e.clock.Advance(tc.after)
			gate.armed.Store(true)

			start := make(chan struct{})
			errs := make(chan error, callers)
			var wg sync.WaitGroup
			for range callers {
				wg.Go(func() {
					<-start
					if _, err := e.client.GetUser(ctx, steadyEmail); err != nil {
						errs <- err
					}
				})
			}
			close(start)
			testenv.Eventually(t, 10*time.Second, func() (bool, string) {
				n := goroutinesIn(accessTokenFrame)
				return n == callers, fmt.Sprintf("%d of %d callers inside accessToken", n, callers)
			})
			close(gate.release)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("GetUser(%q) error: %v", steadyEmail, err)
			}
			if got := gate.held.Load(); got != 1 {
				t.Errorf("token requests started by %d concurrent callers = %d; want 1", callers, got)
			}
			st := e.sim.Stats()
			if st.TokensIssued != 2 {
				t.Errorf("tokens issued = %d; want 2 (the first and one shared refresh)", st.TokensIssued)
			}
			if got := st.Requests[testenv.RouteGetUser]; got[http.StatusOK] != callers || len(got) != 1 {
				t.Errorf("GET /v2/users/{userId} answers = %v; want %d × 200 and nothing else", got, callers)
			}
			auths := map[string]bool{}
			for _, r := range e.routeRequests(testenv.RouteGetUser) {
				auths[r.Authorization] = true
			}
			if len(auths) != 1 {
				t.Errorf("distinct Authorization headers = %d; want 1 (the new token)", len(auths))
			}
		})
	}
}

// TestTokenFreshPathTakesNoLock: while one caller fetches a new token
// (forced by a 401), another with a token that is fresh by the clock
// reaches the API without waiting for that fetch; its own 401 then shares
// the fetch under way.
func TestTokenFreshPathTakesNoLock(t *testing.T) {
	gate := newTokenGate(t)
	e := newEnv(t, testenv.SimConfig{MaxRecordedRequests: -1}, func(c *zoom.Config) {
		c.HTTPClient = &http.Client{Transport: gate}
	})
	e.sim.AddUser(steadyEmail, 1)
	ctx := context.Background()
	if err := e.client.TokenValid(ctx); err != nil {
		t.Fatalf("TokenValid() error: %v", err)
	}
	e.sim.ExpireTokens()
	gate.armed.Store(true)

	unauthorized := func() int {
		return e.sim.Stats().Requests[testenv.RouteGetUser][http.StatusUnauthorized]
	}
	errs := make(chan error, 2)
	call := func() {
		_, err := e.client.GetUser(ctx, steadyEmail)
		errs <- err
	}
	go call()
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		return gate.held.Load() == 1, fmt.Sprintf("%d token requests held; want the first caller's", gate.held.Load())
	})
	go call()
	// The second caller's request reaches the simulator while the fetch
	// is still held.
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		n := unauthorized()
		return n == 2, fmt.Sprintf("%d 401s; want 2 while the token fetch is held", n)
	})
	if got := gate.held.Load(); got != 1 {
		t.Errorf("token requests started = %d; want 1 (the second 401 waits for the first fetch)", got)
	}
	close(gate.release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("GetUser(%q) error: %v", steadyEmail, err)
		}
	}
	if got := e.sim.Stats().TokensIssued; got != 2 {
		t.Errorf("tokens issued = %d; want 2 (one shared forced refresh)", got)
	}
	e.checkRecoveriesShared(t)
}

// checkRecoveriesShared checks that the two refused requests were each
// retried once, successfully, with a token other than the refused one.
func (e *env) checkRecoveriesShared(t *testing.T) {
	t.Helper()
	var refused, retried []string
	for _, r := range e.routeRequests(testenv.RouteGetUser) {
		switch r.Status {
		case http.StatusUnauthorized:
			refused = append(refused, r.Authorization)
		case http.StatusOK:
			retried = append(retried, r.Authorization)
		}
	}
	if len(refused) != 2 || len(retried) != 2 {
		t.Fatalf("GET /v2/users/{userId}: %d refused, %d answered 200; want 2 and 2", len(refused), len(retried))
	}
	for _, a := range retried {
		if a == refused[0] || a == refused[1] {
			t.Errorf("a retry carried the refused token")
		}
	}
}

// TestTokenLifetimeFromAnswer: the lifetime comes from expires_in however
// the token endpoint writes it; a token already expired on arrival
// (negative expires_in) is used until the API refuses it, not fetched
// again for every call. The fake API accepts every token it issued.
func TestTokenLifetimeFromAnswer(t *testing.T) {
	const span = 45 * time.Second
	tests := []struct {
		name      string
		expiresIn string // raw JSON; empty: left out
		want      int    // token requests over the span
	}{
		{name: "number", expiresIn: "30", want: 2},       // at 0 and 22.5 s
		{name: "string", expiresIn: `"30"`, want: 2},     // as PayPal writes it
		{name: "negative", expiresIn: "-30", want: 1},    // never by the clock
		{name: "omitted", want: 1},                       // never by the clock
		{name: "3599 s", expiresIn: "3599", want: 1},     // due at 3,539 s, after the span
		{name: "one second", expiresIn: "1", want: 57},   // every 0.8 s
		{name: "zero", expiresIn: "0", want: 1},          // never by the clock
		{name: "null", expiresIn: "null", want: 1},       // never by the clock
		{name: "two minutes", expiresIn: "120", want: 1}, // due at 90 s, after the span
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeZoom(t, tc.expiresIn, fakeAnswer{status: http.StatusOK, body: `{"id":"u1","email":"steady@example.com","type":1}`})
			clock := newTestClock(time.Now())
			c := f.client(t, clock, nil)
			ctx := context.Background()
			n := int(span / tick)
			for i := range n {
				if i > 0 {
					clock.Advance(tick)
				}
				if _, err := c.GetUser(ctx, steadyEmail); err != nil {
					t.Fatalf("GetUser(%q) at call %d error: %v", steadyEmail, i, err)
				}
			}
			if got := f.tokens(); got != tc.want {
				t.Errorf("token requests for %d calls over %v with expires_in %s = %d; want %d", n, span, tc.expiresIn, got, tc.want)
			}
			if got := len(f.requests()); got != n {
				t.Errorf("API requests = %d; want %d (no 401 retries)", got, n)
			}
		})
	}
}
