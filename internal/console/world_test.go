package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/zoomprov/consumer/internal/app"
	"github.com/zoomprov/consumer/internal/audit"
	"github.com/zoomprov/consumer/internal/console"
	"github.com/zoomprov/consumer/internal/dlq"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The logins of every test world: alice and bob.
const (
	aliceSecret = "alice-secret-0123456789abcdef"
	bobSecret   = "bob-secret-0123456789abcdef00"
)

// world is an embedded JetStream server, the Zoom simulator and the real
// service between them (internal/app, which serves the console on its
// HTTP address), plus a console of its own behind an httptest server, as
// a second replica would serve it.
type world struct {
	t      *testing.T
	js     jetstream.JetStream
	topo   topology.Topology
	sim    *testenv.Simulator
	tokens *console.Tokens
	// appURL is the console the service serves; url the httptest one.
	appURL, url string
	log         *testenv.SyncBuffer
}

// newWorld starts the world; the service trips its guard after
// guardLimit destructive calls.
func newWorld(t *testing.T) *world {
	t.Helper()
	ns, err := testenv.StartNATS(testenv.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(ns.Shutdown)
	sim := testenv.NewSimulator(testenv.SimConfig{})
	t.Cleanup(sim.Close)
	tokenFile := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokenFile, []byte("# the console's logins\nalice:"+aliceSecret+"\n\nbob:"+bobSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := console.LoadTokens(tokenFile)
	if err != nil {
		t.Fatalf("LoadTokens: %v", err)
	}
	topo := topology.Default()
	w := &world{t: t, topo: topo, sim: sim, tokens: tokens, log: &testenv.SyncBuffer{}}
	cfg := app.Config{
		NATSURL:       ns.URL(),
		ZoomAccountID: testenv.DefaultSimAccountID, ZoomClientID: testenv.DefaultSimClientID, ZoomClientSecret: testenv.DefaultSimClientSecret,
		ZoomAPIURL: sim.APIURL(), ZoomTokenURL: sim.TokenURL(), ZoomTimeout: 5 * time.Second,
		ZoomRateLimit: 20, MaxInFlight: 16, MaxAttempts: 3, AckWait: 10 * time.Second, ShutdownTimeout: 2 * time.Second,
		Actions: topology.Actions(), Provision: true, GuardLimit: 2, GuardWindow: time.Hour,
		RequestStream: topo.RequestStream, RequestPrefix: topo.RequestPrefix, OperationPrefix: topo.OperationPrefix,
		ResultStream: topo.ResultStream, ResultPrefix: topo.ResultPrefix, DeadLetterStream: topo.DeadLetterStream,
		DeadLetterPrefix: topo.DeadLetterPrefix, ConsumerPrefix: topo.ConsumerPrefix, ResultMaxAge: topo.ResultMaxAge,
		HTTPAddr: "127.0.0.1:0", ConsoleTokens: tokens,
	}
	svc := app.New(cfg, zerolog.New(w.log).Level(zerolog.InfoLevel), "test")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("service: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("the service did not stop within 30s")
		}
	})
	select {
	case <-svc.Ready():
	case err := <-done:
		t.Fatalf("the service did not start: %v\n%s", err, w.log.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("the service did not start within 30s\n%s", w.log.String())
	}
	w.appURL = "http://" + svc.HTTPAddr() + "/console/"

	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if w.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	con, err := console.New(console.Config{JS: w.js, Topology: topo, Tokens: tokens, Logger: zerolog.New(w.log)})
	if err != nil {
		t.Fatalf("console.New: %v", err)
	}
	srv := httptest.NewServer(con)
	t.Cleanup(srv.Close)
	w.url = srv.URL + "/console/"
	return w
}

// publish publishes a request body on action's subject with id as its
// Nats-Msg-Id.
func (w *world) publish(id, action, body string) {
	w.t.Helper()
	m := nats.NewMsg(w.topo.RequestSubject(action))
	m.Data = []byte(body)
	if _, err := w.js.PublishMsg(context.Background(), m, jetstream.WithMsgID(id)); err != nil {
		w.t.Fatalf("publish %s: %v", id, err)
	}
}

// deadLetter publishes an ssoCreate request for email that Zoom answers
// once with 404 (group missing): it is dead-lettered, and a replay
// creates the user.
func (w *world) deadLetter(id, email string) {
	w.t.Helper()
	w.sim.FailEmail(email, 1, testenv.Fault{Status: 404, Code: 4130, Message: "Group does not exist: sales."})
	w.publish(id, "ssoCreate", fmt.Sprintf(`{"action":"ssoCreate","user_info":{"email":%q,"type":1,"first_name":"Test"}}`, email))
}

// deadLetters waits until the dead-letter stream holds n and returns
// them by request id.
func (w *world) deadLetters(n int) map[string]dlq.Entry {
	w.t.Helper()
	var entries []dlq.Entry
	testenv.Eventually(w.t, 20*time.Second, func() (bool, string) {
		var err error
		entries, err = dlq.List(context.Background(), w.js, w.topo, dlq.Filter{})
		return err == nil && len(entries) == n, fmt.Sprintf("%d dead letters (%v); want %d", len(entries), err, n)
	})
	out := map[string]dlq.Entry{}
	for _, e := range entries {
		out[e.RequestID(w.topo)] = e
	}
	return out
}

// count is how many dead letters there are.
func (w *world) count() uint64 {
	w.t.Helper()
	n, err := dlq.Count(context.Background(), w.js, w.topo)
	if err != nil {
		w.t.Fatal(err)
	}
	return n
}

// audits returns the audit events of kind on the result stream.
func (w *world) audits(kind string) []audit.CloudEvent {
	w.t.Helper()
	ctx := context.Background()
	s, err := w.js.Stream(ctx, w.topo.ResultStream)
	if err != nil {
		w.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	var out []audit.CloudEvent
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) || err == nil && m.Subject != w.topo.ResultPrefix+"."+kind {
			continue
		}
		if err != nil {
			w.t.Fatal(err)
		}
		var ev audit.CloudEvent
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			w.t.Fatalf("audit event %d: %v", seq, err)
		}
		out = append(out, ev)
	}
	return out
}

// response is an HTTP answer, read whole.
type response struct {
	code   int
	header http.Header
	body   string
}

// noRedirects shows redirects instead of following them.
var noRedirects = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       30 * time.Second,
}

// do sends a request to the console at base (path relative to
// /console/), with the cookies and headers given, and a form when form
// is not nil (a POST).
func do(t *testing.T, base, method, path string, form url.Values, header http.Header, cookies ...*http.Cookie) response {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{code: resp.StatusCode, header: resp.Header, body: string(b)}
}

// cookie returns the cookie name set by r, or nil.
func (r response) cookie(name string) *http.Cookie {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// login signs in at base with secret through the login form and returns
// the session cookie and the CSRF token of the pages.
func login(t *testing.T, base, secret string) (*http.Cookie, string) {
	t.Helper()
	form := do(t, base, http.MethodGet, "login", nil, nil)
	lc := form.cookie("zoomprov_console_login")
	if form.code != http.StatusOK || lc == nil {
		t.Fatalf("GET login = %d with login cookie %v; want 200 and one", form.code, lc)
	}
	res := do(t, base, http.MethodPost, "login", url.Values{"csrf": {lc.Value}, "token": {secret}}, nil, lc)
	sc := res.cookie("zoomprov_console")
	if res.code != http.StatusSeeOther || sc == nil {
		t.Fatalf("POST login = %d with session cookie %v; want 303 and one:\n%s", res.code, sc, res.body)
	}
	page := do(t, base, http.MethodGet, "", nil, nil, sc)
	return sc, csrfOf(t, page)
}

// csrfOf finds the CSRF token in a page.
func csrfOf(t *testing.T, r response) string {
	t.Helper()
	const marker = `name="csrf" value="`
	i := strings.Index(r.body, marker)
	if i < 0 {
		t.Fatalf("no CSRF token in the page (%d):\n%s", r.code, r.body)
	}
	rest := r.body[i+len(marker):]
	return rest[:strings.IndexByte(rest, '"')]
}
