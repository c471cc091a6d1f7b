package provision_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/zoomprov/consumer/internal/deadletter"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/metrics"
	"github.com/zoomprov/consumer/internal/provision"
	"github.com/zoomprov/consumer/internal/zoom"
	"github.com/zoomprov/consumer/testenv"
)

// Credentials of the hygiene scenario: distinctive, so that any copy of
// them in the output is found.
const (
	hygAccountID = "hyg-account-7d1"
	hygClientID  = "hyg-client-id-3c9"
	hygSecret    = "HYG-client-SECRET-5f1e9a7c3b20"
)

// hygZoomConfig is the Zoom client configuration of the scenario's
// services, measured by m's transport like the real command's.
func hygZoomConfig(sim *testenv.Simulator, m *metrics.Metrics, tokenURL string) zoom.Config {
	return zoom.Config{
		AccountID: hygAccountID, ClientID: hygClientID, ClientSecret: hygSecret,
		BaseURL: sim.APIURL(), TokenURL: sim.TokenURL(), Timeout: 2 * time.Second,
		HTTPClient: &http.Client{Transport: m.ZoomTransport(http.DefaultTransport.(*http.Transport).Clone(), tokenURL)},
	}
}

// hygRequest is one request of the scenario and the outcome it must get.
type hygRequest struct {
	id, action, email, password string
	userInfo                    string // overrides the generated user_info
	setup                       func(sim *testenv.Simulator)
	outcome                     messages.Outcome
	reason                      messages.Reason
}

func (r hygRequest) body() string {
	if r.userInfo != "" {
		return `{"action":"` + r.action + `","user_info":` + r.userInfo + `}`
	}
	ui := fmt.Sprintf(`{"email":%q,"type":1,"first_name":"Hygiene"`, r.email)
	if r.password != "" {
		ui += fmt.Sprintf(`,"password":%q`, r.password)
	}
	return `{"action":"` + r.action + `","user_info":` + ui + `}}`
}

// Ensure that, with the service logging at trace level through a scenario
// that reaches every outcome (created, exists, invalid, rejected, not
// found, retries exhausted, per-second and daily 429s, an expired token
// refreshed, credentials rejected then accepted again), no password,
// client secret, Basic credential or bearer token appears in the log, a
// result event, a dead letter's headers, the key-value buckets, the
// service status, a metrics scrape or an error string, and that e-mail
// addresses are masked in the log.
func TestSecretHygiene(t *testing.T) {
	h := newHarness(t, testenv.SimConfig{AccountID: hygAccountID, ClientID: hygClientID, ClientSecret: hygSecret})
	m := metrics.New()
	var log syncBuffer
	cfg := testConfig(3)
	cfg.Logger = zerolog.New(&log).Level(zerolog.TraceLevel)
	cfg.Metrics = m
	cfg.CredentialsCheck = 100 * time.Millisecond
	r := h.startWith(cfg, hygZoomConfig(h.sim, m, h.sim.TokenURL()))

	dailyReset := time.Now().Add(1500 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	reqs := []hygRequest{
		{id: "hyg-created", action: "ssoCreate", email: "created.person@hyg.example.com", password: "HygPw-sso-Dropped-11",
			outcome: messages.OutcomeCreated},
		{id: "hyg-created-auto", action: "autoCreate", email: "auto.person@hyg.example.com", password: "HygPw-Auto-Secret-22",
			outcome: messages.OutcomeCreated},
		{id: "hyg-exists", action: "custCreate", email: "exists.person@hyg.example.com", password: "HygPw-Cust-Exists-33",
			setup:   func(sim *testenv.Simulator) { sim.AddUser("exists.person@hyg.example.com", 1) },
			outcome: messages.OutcomeExists},
		{id: "hyg-invalid", action: "autoCreate", password: "HygPw-Invalid-Mail-44",
			userInfo: `{"email":"invalid person@hyg.example.com","type":1,"password":"HygPw-Invalid-Mail-44"}`,
			outcome:  messages.OutcomeFailed, reason: messages.ReasonInvalidRequest},
		{id: "hyg-invalid-short", action: "autoCreate", email: "short.password@hyg.example.com", password: "HygPw-7",
			outcome: messages.OutcomeFailed, reason: messages.ReasonInvalidRequest},
		{id: "hyg-invalid-dup", action: "autoCreate", password: "HygPw-Duplicate-55",
			userInfo: `{"email":"dup.person@hyg.example.com","type":1,"password":"HygPw-Duplicate-55","password":"HygPw-Duplicate-56"}`,
			outcome:  messages.OutcomeFailed, reason: messages.ReasonInvalidRequest},
		// The simulator applies Zoom's password rules: no digit is a 400.
		{id: "hyg-rejected", action: "autoCreate", email: "rejected.person@hyg.example.com", password: "HygPw-NoDigits-Here",
			outcome: messages.OutcomeFailed, reason: messages.ReasonZoomRejected},
		{id: "hyg-not-found", action: "ssoCreate", email: "group.missing@hyg.example.com", password: "HygPw-NotFound-66",
			setup: func(sim *testenv.Simulator) {
				sim.FailEmail("group.missing@hyg.example.com", 0, testenv.Fault{Status: 404, Code: 4130, Message: "Group does not exist: group.missing@hyg.example.com."})
			},
			outcome: messages.OutcomeFailed, reason: messages.ReasonNotFound},
		{id: "hyg-exhausted", action: "autoCreate", email: "gateway.down@hyg.example.com", password: "HygPw-Exhausted-77",
			setup: func(sim *testenv.Simulator) {
				sim.FailEmail("gateway.down@hyg.example.com", 0, testenv.Fault{Status: 502, HTML: true})
			},
			outcome: messages.OutcomeFailed, reason: messages.ReasonRetriesExhausted},
		{id: "hyg-qps", action: "autoCreate", email: "per.second@hyg.example.com", password: "HygPw-PerSecond-88",
			setup: func(sim *testenv.Simulator) {
				sim.FailEmail("per.second@hyg.example.com", 1, testenv.Fault{Status: 429,
					Message: "You have reached the maximum per-second rate limit for this API. Try again later.",
					Headers: map[string]string{"X-RateLimit-Type": "QPS", "Retry-After": "1"}})
			},
			outcome: messages.OutcomeCreated},
		{id: "hyg-daily", action: "create", email: "daily.limit@hyg.example.com", password: "HygPw-Daily-Limit-99",
			setup: func(sim *testenv.Simulator) {
				sim.FailEmail("daily.limit@hyg.example.com", 1, testenv.Fault{Status: 429,
					Message: "You have exceeded the daily rate limit (1500) of user invite requests permitted for this account. You may resume these requests at GMT 00:00:00.",
					Headers: map[string]string{"X-RateLimit-Type": "Daily-limit", "Retry-After": dailyReset}})
			},
			outcome: messages.OutcomeCreated},
		{id: "hyg-401", action: "autoCreate", email: "token.expired@hyg.example.com", password: "HygPw-Token-Expired-10",
			setup: func(sim *testenv.Simulator) {
				sim.FailEmail("token.expired@hyg.example.com", 1, testenv.Fault{Status: 401, Code: 124, Message: "Access token is expired."})
			},
			outcome: messages.OutcomeCreated},
	}
	ids := make([]string, 0, len(reqs)+2)
	for _, q := range reqs {
		if q.setup != nil {
			q.setup(h.sim)
		}
		h.publish(q.id, q.action, q.body())
		ids = append(ids, q.id)
	}
	h.waitTerminal(30*time.Second, ids...)

	// Every token issued so far expires: the next call gets a real 401,
	// and the client fetches a new token.
	h.sim.ExpireTokens()
	expired := hygRequest{id: "hyg-expired", action: "autoCreate", email: "all.expired@hyg.example.com", password: "HygPw-All-Expired-12", outcome: messages.OutcomeCreated}
	h.publish(expired.id, expired.action, expired.body())
	h.waitTerminal(15*time.Second, expired.id)
	reqs = append(reqs, expired)

	// The credentials are refused: the service holds, then recovers.
	var statuses []string
	h.sim.RejectCredentials(true)
	held := hygRequest{id: "hyg-held", action: "autoCreate", email: "held.person@hyg.example.com", password: "HygPw-Held-Person-13", outcome: messages.OutcomeCreated}
	h.publish(held.id, held.action, held.body())
	eventually(t, 10*time.Second, func() (bool, string) {
		st := r.svc.Status()
		return st.Paused && st.ZoomCredentials == provision.CredentialsRejected, fmt.Sprintf("status %+v; want paused, credentials rejected", st)
	})
	statuses = append(statuses, statusJSON(t, r.svc.Status()))
	// Errors the client itself returns while the credentials are refused.
	var clientErrs []error
	clientErrs = append(clientErrs, r.zc.TokenValid(context.Background()))
	_, err := r.zc.CreateUser(context.Background(), zoom.CreateUserRequest{Action: "autoCreate",
		UserInfo: json.RawMessage(`{"email":"direct@hyg.example.com","type":1,"password":"HygPw-Direct-Call-14"}`)})
	clientErrs = append(clientErrs, err)
	h.sim.RejectCredentials(false)
	h.waitTerminal(20*time.Second, held.id)
	eventually(t, 5*time.Second, func() (bool, string) { return !r.svc.Status().Paused, "still paused" })
	statuses = append(statuses, statusJSON(t, r.svc.Status()))
	reqs = append(reqs, held)

	evs := h.events()
	for _, q := range reqs {
		term := terminal(evs[q.id])
		if len(term) != 1 || term[0].Data.Outcome != q.outcome || term[0].Data.Reason != q.reason {
			t.Errorf("%s terminal results = %+v; want one %s %s", q.id, term, q.outcome, q.reason)
		}
	}
	deferred := map[string]bool{}
	for id, es := range evs {
		if len(es) > len(terminal(es)) {
			deferred[id] = true
		}
	}
	if !deferred["hyg-qps"] || !deferred["hyg-daily"] {
		t.Errorf("requests with deferred events = %v; want hyg-qps and hyg-daily among them", deferred)
	}

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	scrape := rec.Body.String()
	if !strings.Contains(scrape, "# TYPE") {
		t.Errorf("metrics scrape has no metrics:\n%s", scrape)
	}
	if err := r.stop(t); err != nil {
		clientErrs = append(clientErrs, err)
	}

	// The needles: the client secret in every form it travels in, every
	// token the simulator saw, every password.
	basic := base64.StdEncoding.EncodeToString([]byte(hygClientID + ":" + hygSecret))
	needles := map[string]string{
		"client secret":             hygSecret,
		"Basic credentials":         basic,
		"Basic scheme":              "Basic ",
		"Bearer scheme":             "Bearer ",
		"base64 of the secret":      base64.StdEncoding.EncodeToString([]byte(hygSecret)),
		"secret as a query value":   "client_secret=",
		"direct call's password":    "HygPw-Direct-Call-14",
		"second duplicate password": "HygPw-Duplicate-56",
	}
	tokens := map[string]bool{}
	sawBasic := false
	for _, rq := range h.sim.Requests() {
		if tok, ok := strings.CutPrefix(rq.Authorization, "Bearer "); ok && tok != "" {
			tokens[tok] = true
		}
		sawBasic = sawBasic || rq.Authorization == "Basic "+basic
	}
	if len(tokens) < 3 || !sawBasic {
		t.Errorf("simulator saw %d bearer tokens and Basic credentials %v; want at least 3 tokens (a refresh after the 401 and after the expiry) and the credentials", len(tokens), sawBasic)
	}
	for tok := range tokens {
		needles["bearer token "+tok[:6]+"..."] = tok
	}
	for _, q := range reqs {
		if q.password != "" {
			needles["password of "+q.id] = q.password
		}
	}

	haystacks := map[string]string{"log": log.String(), "metrics scrape": scrape}
	for i, s := range statuses {
		haystacks[fmt.Sprintf("status %d", i)] = s
	}
	for i, err := range clientErrs {
		if err == nil {
			t.Errorf("client call %d while credentials were refused succeeded; want an error", i)
			continue
		}
		haystacks[fmt.Sprintf("error %d", i)] = err.Error()
	}
	for _, msg := range h.storedMsgs("ZOOM_USERS_RESULTS") {
		haystacks["result "+msg.Subject+" "+fmt.Sprint(msg.Sequence)] = string(msg.Data) + "\n" + fmt.Sprint(msg.Header)
	}
	dlq := h.storedMsgs("ZOOM_USERS_DLQ")
	if len(dlq) != 6 {
		t.Errorf("dead letters = %d; want 6 (three invalid, rejected, not found, exhausted)", len(dlq))
	}
	for _, msg := range dlq {
		// The body is the original request, by contract; only the
		// headers are the service's own words.
		haystacks["dead letter headers "+msg.Header.Get(deadletter.HeaderRequestID)] = fmt.Sprint(msg.Header)
	}
	for _, bucket := range []string{"zoom_quota", "zoom_attempts"} {
		for k, v := range kvContents(t, h.js, bucket) {
			haystacks["bucket "+bucket+" "+k] = v
		}
	}

	for what, hay := range haystacks {
		for name, needle := range needles {
			if strings.Contains(hay, needle) {
				t.Errorf("%s contains the %s %q:\n%s", what, name, needle, excerpt(hay, needle))
			}
		}
	}

	// E-mail addresses are masked in the log: never in full, but their
	// masked form is there (so the check is not vacuous).
	for _, q := range reqs {
		if q.email == "" {
			continue
		}
		if strings.Contains(log.String(), q.email) {
			t.Errorf("log contains the full address %q:\n%s", q.email, excerpt(log.String(), q.email))
		}
	}
	for _, e := range []string{"created.person@hyg.example.com", "group.missing@hyg.example.com", "daily.limit@hyg.example.com"} {
		if masked := messages.MaskEmail(e); !strings.Contains(log.String(), masked) {
			t.Errorf("log does not contain the masked address %q; want the outcome lines to name it", masked)
		}
	}
	if !strings.Contains(log.String(), `"level":"debug"`) {
		t.Errorf("log has no debug lines; want the scenario logged at debug level and above")
	}
}

// Ensure LOG_EMAILS=true really logs full addresses, so the masking seen
// in TestSecretHygiene is the setting's doing.
func TestLogEmailsLogsFullAddresses(t *testing.T) {
	h := newHarness(t, testenv.SimConfig{})
	cfg := testConfig(3)
	cfg.LogEmails = true
	var log syncBuffer
	cfg.Logger = zerolog.New(&log).Level(zerolog.DebugLevel)
	zcfg := zoom.Config{
		AccountID: testenv.DefaultSimAccountID, ClientID: testenv.DefaultSimClientID, ClientSecret: testenv.DefaultSimClientSecret,
		BaseURL: h.sim.APIURL(), TokenURL: h.sim.TokenURL(), Timeout: 2 * time.Second,
	}
	h.startWith(cfg, zcfg)
	h.publish("full-created", "ssoCreate", userBody("ssoCreate", "full.created@hyg.example.com", 1))
	h.publish("full-invalid", "ssoCreate", userBody("ssoCreate", "full.invalid@hyg", 1))
	h.waitTerminal(15*time.Second, "full-created", "full-invalid")
	// The outcome's log line follows its stored result.
	for _, e := range []string{"full.created@hyg.example.com", "full.invalid@hyg"} {
		eventually(t, 10*time.Second, func() (bool, string) {
			return strings.Contains(log.String(), e), fmt.Sprintf("log with LogEmails does not contain %q:\n%s", e, log.String())
		})
	}
}

func statusJSON(t *testing.T, st provision.Status) string {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatalf("marshal status: %v", err)
	}
	return string(b)
}

// kvContents returns every key and value of a key-value bucket.
func kvContents(t *testing.T, js jetstream.JetStream, bucket string) map[string]string {
	t.Helper()
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		t.Fatalf("bucket %s: %v", bucket, err)
	}
	keys, err := kv.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("bucket %s keys: %v", bucket, err)
	}
	sort.Strings(keys)
	out := map[string]string{}
	for _, k := range keys {
		e, err := kv.Get(ctx, k)
		if err != nil {
			continue // deleted since
		}
		out[k] = string(e.Value())
	}
	return out
}

// excerpt returns the text around the first needle in hay.
func excerpt(hay, needle string) string {
	i := strings.Index(hay, needle)
	if i < 0 {
		return ""
	}
	start, end := max(0, i-200), min(len(hay), i+len(needle)+200)
	return "..." + hay[start:end] + "..."
}

// Ensure a Zoom message that names an e-mail address is masked in every log
// line, including the one that reports a closed quota gate. (Zoom's daily
// limit text names no address today; its 409 text does, and the gate
// logs whatever text the 429 carried.)
func TestGateReasonMasksEmails(t *testing.T) {
	h := newHarness(t, testenv.SimConfig{})
	h.sim.FailEmail("gate.reason@hyg.example.com", 1, testenv.Fault{Status: 429,
		Message: "You have exceeded the daily rate limit (1500) of user invite requests permitted for this account (gate.reason@hyg.example.com).",
		Headers: map[string]string{"X-RateLimit-Type": "Daily-limit", "Retry-After": time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)}})
	h.publish("gate-reason", "create", userBody("create", "gate.reason@hyg.example.com", 1))
	h.start(testConfig(3))
	h.waitTerminal(15*time.Second, "gate-reason")
	if log := h.log.String(); strings.Contains(log, "gate.reason@hyg.example.com") {
		t.Errorf("log contains the full address:\n%s", excerpt(log, "gate.reason@hyg.example.com"))
	}
}
