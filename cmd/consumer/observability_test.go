package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/testenv"
)

// scrape fetches /metrics and parses it as Prometheus does.
func scrape(t testing.TB, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body, err := httpGet("http://" + addr + "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics = %d, %v; want 200", code, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams
}

// series returns the value of name{labels} (a histogram's sample count)
// and whether the series exists.
func series(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, s := range f.GetMetric() {
		if len(s.GetLabel()) != len(labels)/2 {
			continue
		}
		for _, l := range s.GetLabel() {
			found := false
			for i := 0; i+1 < len(labels); i += 2 {
				if labels[i] == l.GetName() && labels[i+1] == l.GetValue() {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case s.Counter != nil:
			return s.Counter.GetValue(), true
		case s.Gauge != nil:
			return s.Gauge.GetValue(), true
		case s.Histogram != nil:
			return float64(s.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// publishRequest publishes one request with a message id and optional
// extra headers.
func publishRequest(t testing.TB, js jetstream.JetStream, id, action, body string, hdr map[string]string) {
	t.Helper()
	m := nats.NewMsg("zoom.users.create." + action)
	m.Data = []byte(body)
	for k, v := range hdr {
		m.Header.Set(k, v)
	}
	if _, err := js.PublishMsg(context.Background(), m, jetstream.WithMsgID(id)); err != nil {
		t.Fatalf("publish %s: %v", id, err)
	}
}

// Ensure `consumer run` serves /metrics and that after a mixed batch the
// counters say what happened: users created, dead letters by reason, the
// one daily 429 and the closed create gate, and Zoom calls and tokens
// exactly as the simulator saw them.
func TestRunMetrics(t *testing.T) {
	ns := startNATS(t)
	sim := startSim(t, testenv.SimConfig{DailyCreateLimit: 1})
	sim.FailEmail("nogroup@example.com", 0, testenv.Fault{Status: 404, Code: 4130, Message: "Group does not exist: sales."})
	sim.FailEmail("flaky@example.com", 1, testenv.Fault{Status: 502, HTML: true})
	_, js := connectJS(t, ns.URL())
	provisionStreams(t, js, 30*time.Second)

	const created = 5
	var terminalIDs []string
	for i := range created {
		id := fmt.Sprintf("m-ok-%d", i)
		publishRequest(t, js, id, "ssoCreate", fmt.Sprintf(`{"action":"ssoCreate","user_info":{"email":"ok%d@example.com","type":1}}`, i), nil)
		terminalIDs = append(terminalIDs, id)
	}
	publishRequest(t, js, "m-flaky", "custCreate", `{"action":"custCreate","user_info":{"email":"flaky@example.com","type":2}}`, nil)
	publishRequest(t, js, "m-invalid-1", "custCreate", `{"action":"custCreate","user_info":{"email":"nope","type":2}}`, nil)
	publishRequest(t, js, "m-invalid-2", "ssoCreate", `not json`, nil)
	publishRequest(t, js, "m-nogroup", "ssoCreate", `{"action":"ssoCreate","user_info":{"email":"nogroup@example.com","type":1}}`, nil)
	publishRequest(t, js, "m-invite-1", "create", `{"action":"create","user_info":{"email":"inv1@example.com","type":1}}`, nil)
	publishRequest(t, js, "m-invite-2", "create", `{"action":"create","user_info":{"email":"inv2@example.com","type":1}}`, nil)
	terminalIDs = append(terminalIDs, "m-flaky", "m-invalid-1", "m-invalid-2", "m-nogroup")

	svc := startRun(t, serviceEnv(ns, sim))
	addr := svc.healthAddr(t)
	eventually(t, 30*time.Second, func() (bool, string) {
		evs := resultEvents(t, js)
		var missing []string
		for _, id := range terminalIDs {
			if len(terminalEvents(evs[id])) == 0 {
				missing = append(missing, id)
			}
		}
		invites := len(terminalEvents(evs["m-invite-1"])) + len(terminalEvents(evs["m-invite-2"]))
		deferred := len(evs["m-invite-1"]) + len(evs["m-invite-2"]) - invites
		return len(missing) == 0 && invites == 1 && deferred >= 1,
			fmt.Sprintf("missing %v; invitations created %d, deferred %d", missing, invites, deferred)
	})
	var fams map[string]*dto.MetricFamily
	eventually(t, 10*time.Second, func() (bool, string) {
		fams = scrape(t, addr)
		n, _ := series(fams, "zoomprov_requests_total", "action", "create", "outcome", "deferred")
		return n >= 1, fmt.Sprintf("deferred create requests counted: %v", n)
	})

	st := sim.Stats()
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"zoomprov_requests_total", []string{"action", "ssoCreate", "outcome", "created"}, created},
		{"zoomprov_requests_total", []string{"action", "custCreate", "outcome", "created"}, 1},
		{"zoomprov_requests_total", []string{"action", "create", "outcome", "created"}, 1},
		{"zoomprov_requests_total", []string{"action", "custCreate", "outcome", "failed"}, 1},
		{"zoomprov_requests_total", []string{"action", "ssoCreate", "outcome", "failed"}, 2},
		{"zoomprov_dead_letters_total", []string{"action", "custCreate", "reason", "invalid_request"}, 1},
		{"zoomprov_dead_letters_total", []string{"action", "ssoCreate", "reason", "invalid_request"}, 1},
		{"zoomprov_dead_letters_total", []string{"action", "ssoCreate", "reason", "not_found"}, 1},
		{"zoomprov_zoom_rate_limited_total", []string{"limit", "daily"}, 1},
		{"zoomprov_quota_gate_closed", []string{"scope", "create"}, 1},
		{"zoomprov_quota_gate_closed", []string{"scope", "all"}, 0},
		{"zoomprov_zoom_requests_total", []string{"endpoint", "create_user", "status_class", "2xx"}, float64(st.Requests[testenv.RouteCreateUser][201])},
		{"zoomprov_zoom_requests_total", []string{"endpoint", "create_user", "status_class", "5xx"}, float64(st.Requests[testenv.RouteCreateUser][502])},
		{"zoomprov_zoom_requests_total", []string{"endpoint", "create_user", "status_class", "4xx"}, float64(st.Requests[testenv.RouteCreateUser][404] + st.Requests[testenv.RouteCreateUser][429])},
		{"zoomprov_zoom_requests_total", []string{"endpoint", "token", "status_class", "2xx"}, float64(st.TokensIssued)},
		{"zoomprov_zoom_tokens_fetched_total", nil, float64(st.TokensIssued)},
		{"zoomprov_zoom_request_duration_seconds", []string{"endpoint", "create_user"}, float64(st.Requests[testenv.RouteCreateUser][201] + st.Requests[testenv.RouteCreateUser][502] + st.Requests[testenv.RouteCreateUser][404] + st.Requests[testenv.RouteCreateUser][429])},
		{"zoomprov_request_deliveries", []string{"outcome", "created"}, created + 2},
		{"zoomprov_nats_connected", nil, 1},
		{"zoomprov_consumers_bound", nil, 1},
		{"zoomprov_zoom_credentials_accepted", nil, 1},
		{"zoomprov_ready", nil, 1},
		{"zoomprov_paused", nil, 0},
		{"zoomprov_zoom_rate_share_requests_per_second", nil, 20},
	} {
		if got, ok := series(fams, tc.name, tc.labels...); !ok || got != tc.want {
			t.Errorf("%s%v = %v (present %v); want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	if st.Requests[testenv.RouteCreateUser][201] != created+2 || st.TokensIssued < 1 {
		t.Errorf("simulator saw %d creations and %d tokens; want %d creations and at least one token", st.Requests[testenv.RouteCreateUser][201], st.TokensIssued, created+2)
	}
	if n, ok := series(fams, "zoomprov_quota_gate_reset_seconds", "scope", "create"); !ok || n <= 0 {
		t.Errorf("zoomprov_quota_gate_reset_seconds{scope=create} = %v (present %v); want the time to the reset", n, ok)
	}
	if n, ok := series(fams, "zoomprov_quota_gate_reopen_timestamp_seconds", "scope", "create"); !ok || n <= float64(time.Now().Unix()) {
		t.Errorf("zoomprov_quota_gate_reopen_timestamp_seconds{scope=create} = %v (present %v); want the reset, in the future", n, ok)
	}
	// The deferred invitation waits in the create consumer's backlog.
	if n, ok := series(fams, "zoomprov_backlog_requests", "action", "create"); !ok || n < 1 {
		t.Errorf("zoomprov_backlog_requests{action=create} = %v (present %v); want the deferred invitation", n, ok)
	}
	if n, ok := series(fams, "zoomprov_backlog_oldest_age_seconds", "action", "create"); !ok || n <= 0 {
		t.Errorf("zoomprov_backlog_oldest_age_seconds{action=create} = %v (present %v); want its age", n, ok)
	}
	if n, ok := series(fams, "zoomprov_backlog_requests", "action", "ssoCreate"); !ok || n != 0 {
		t.Errorf("zoomprov_backlog_requests{action=ssoCreate} = %v (present %v); want 0, all handled", n, ok)
	}
	if n, ok := series(fams, "zoomprov_last_handled_timestamp_seconds", "action", "ssoCreate"); !ok || time.Since(time.UnixMilli(int64(n*1000))) > time.Minute {
		t.Errorf("zoomprov_last_handled_timestamp_seconds{action=ssoCreate} = %v (present %v); want a moment ago", n, ok)
	}
	if n, ok := series(fams, "zoomprov_build_info", "version", version, "goversion", runtime.Version(), "natsgo", natsgoVersion()); !ok || n != 1 {
		t.Errorf("zoomprov_build_info{version=%s,goversion=%s} = %v (present %v); want 1", version, runtime.Version(), n, ok)
	}
	for name := range fams {
		if !strings.HasPrefix(name, "zoomprov_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") && !strings.HasPrefix(name, "promhttp_") {
			t.Errorf("metric %s has none of the prefixes zoomprov_, go_, process_, promhttp_", name)
		}
	}
}

// Ensure readiness follows Zoom's answer about the credentials: not ready
// while the token endpoint rejects them at start-up, ready once it accepts
// them (no request needed), not ready again when a request finds them
// rejected, and ready again as soon as they are accepted — without a token
// request per probe.
func TestReadinessFollowsZoomCredentials(t *testing.T) {
	ns := startNATS(t)
	sim := startSim(t, testenv.SimConfig{})
	_, js := connectJS(t, ns.URL())
	provisionStreams(t, js, 30*time.Second)
	sim.RejectCredentials(true)
	svc := startRun(t, serviceEnv(ns, sim))
	addr := svc.healthAddr(t)

	eventually(t, 15*time.Second, func() (bool, string) {
		code, r, why := getReady(addr)
		return code == 503 && strings.Contains(r.Reason, "rejects the credentials"), why
	})
	if v, _ := series(scrape(t, addr), "zoomprov_ready"); v != 0 {
		t.Errorf("zoomprov_ready = %v while the credentials are rejected; want 0", v)
	}
	sim.RejectCredentials(false)
	eventually(t, 15*time.Second, func() (bool, string) {
		code, r, why := getReady(addr)
		return code == 200 && r.Ready, why
	})
	tokens := sim.Stats().TokensIssued
	for range 20 {
		if code, _, why := getReady(addr); code != 200 {
			t.Fatalf("readiness while all is well: %s", why)
		}
	}
	if got := sim.Stats().TokensIssued; got != tokens {
		t.Errorf("tokens issued during 20 probes = %d; want none (the probe reads the last check)", got-tokens)
	}
	fams := scrape(t, addr)
	for _, name := range []string{"zoomprov_ready", "zoomprov_zoom_credentials_accepted"} {
		if v, _ := series(fams, name); v != 1 {
			t.Errorf("%s = %v; want 1", name, v)
		}
	}

	// The secret is revoked while running: the next request finds out.
	sim.RejectCredentials(true)
	publishRequest(t, js, "cred-1", "ssoCreate", `{"action":"ssoCreate","user_info":{"email":"cred@example.com","type":1}}`, nil)
	eventually(t, 15*time.Second, func() (bool, string) {
		code, r, why := getReady(addr)
		return code == 503 && strings.Contains(r.Reason, "paused"), why
	})
	if v, _ := series(scrape(t, addr), "zoomprov_paused"); v != 1 {
		t.Errorf("zoomprov_paused = %v while held; want 1", v)
	}
	sim.RejectCredentials(false)
	eventually(t, 15*time.Second, func() (bool, string) {
		code, r, why := getReady(addr)
		return code == 200 && r.Ready, why
	})
	eventually(t, 30*time.Second, func() (bool, string) {
		term := terminalEvents(resultEvents(t, js)["cred-1"])
		return len(term) == 1 && term[0].Data.Outcome == messages.OutcomeCreated, fmt.Sprintf("cred-1 terminal results: %v", term)
	})
}

// collector is a fake OTLP/HTTP trace collector: it keeps the bodies of
// POST /v1/traces.
type collector struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.Method == http.MethodPost && r.URL.Path == "/v1/traces" {
		c.mu.Lock()
		c.bodies = append(c.bodies, body)
		c.mu.Unlock()
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

func (c *collector) received(traceID []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.bodies {
		if bytes.Contains(b, traceID) {
			return true
		}
	}
	return false
}

// Ensure trace context flows through `consumer run` from a request to its
// result event (header and CloudEvents attribute) and its log line, and to
// a dead letter; and that with OTEL_EXPORTER_OTLP_ENDPOINT set the spans
// reach the collector over OTLP/HTTP by the time run returns.
func TestRunTraceContext(t *testing.T) {
	ns := startNATS(t)
	sim := startSim(t, testenv.SimConfig{})
	_, js := connectJS(t, ns.URL())
	provisionStreams(t, js, 30*time.Second)
	col := &collector{}
	collectorSrv := httptest.NewServer(col)
	t.Cleanup(collectorSrv.Close)

	const (
		traceHex    = "4bf92f3577b34da6a3ce929d0e0e4736"
		tpCreated   = "00-" + traceHex + "-00f067aa0ba902b7-01"
		deadHex     = "0af7651916cd43dd8448eb211c80319c"
		tpDeadLeter = "00-" + deadHex + "-b7ad6b7169203331-01"
	)
	env := serviceEnv(ns, sim)
	env["OTEL_EXPORTER_OTLP_ENDPOINT"] = collectorSrv.URL
	svc := startRun(t, env)
	svc.healthAddr(t)
	publishRequest(t, js, "tp-created", "ssoCreate", `{"action":"ssoCreate","user_info":{"email":"tp@example.com","type":1}}`, map[string]string{"traceparent": tpCreated})
	publishRequest(t, js, "tp-dead", "custCreate", `{"action":"custCreate","user_info":{"email":"nope","type":2}}`, map[string]string{"traceparent": tpDeadLeter})
	publishRequest(t, js, "tp-none", "ssoCreate", `{"action":"ssoCreate","user_info":{"email":"none@example.com","type":1}}`, nil)

	eventually(t, 30*time.Second, func() (bool, string) {
		evs := resultEvents(t, js)
		return len(terminalEvents(evs["tp-created"])) == 1 && len(terminalEvents(evs["tp-dead"])) == 1 && len(terminalEvents(evs["tp-none"])) == 1,
			"not every request has its result yet"
	})
	ctx := context.Background()
	results, err := js.Stream(ctx, "ZOOM_USERS_RESULTS")
	if err != nil {
		t.Fatal(err)
	}
	traceOf := map[string]string{} // request id -> trace id of its result
	for seq := uint64(1); ; seq++ {
		m, err := results.GetMsg(ctx, seq)
		if err != nil {
			break // past the last result
		}
		ev, err := messages.DecodeEvent(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		hdr := m.Header.Get("traceparent")
		if hdr == "" || hdr != ev.TraceParent {
			t.Errorf("%s: traceparent header %q, CloudEvents attribute %q; want both, equal", ev.ID, hdr, ev.TraceParent)
			continue
		}
		traceOf[ev.Data.RequestID] = strings.Split(hdr, "-")[1]
	}
	if traceOf["tp-created"] != traceHex {
		t.Errorf("tp-created result trace id = %q; want the request's %s", traceOf["tp-created"], traceHex)
	}
	if traceOf["tp-dead"] != deadHex {
		t.Errorf("tp-dead result trace id = %q; want the request's %s", traceOf["tp-dead"], deadHex)
	}
	if id := traceOf["tp-none"]; len(id) != 32 || id == traceHex || id == deadHex {
		t.Errorf("tp-none result trace id = %q; want a new trace", id)
	}
	dlq, err := js.Stream(ctx, "ZOOM_USERS_DLQ")
	if err != nil {
		t.Fatal(err)
	}
	dl, err := dlq.GetLastMsgForSubject(ctx, "zoom.users.dlq.custCreate")
	if err != nil {
		t.Fatalf("dead letter: %v", err)
	}
	if tp := dl.Header.Get("traceparent"); !strings.HasPrefix(tp, "00-"+deadHex+"-") {
		t.Errorf("dead letter traceparent = %q; want trace %s", tp, deadHex)
	}

	if err := svc.stop(t); err != nil {
		t.Fatalf("run = %v", err)
	}
	// Log: the outcome line carries the trace id.
	found := false
	sc := bufio.NewScanner(strings.NewReader(svc.stderr.String()))
	for sc.Scan() {
		var l struct {
			RequestID string `json:"request_id"`
			Outcome   string `json:"outcome"`
			TraceID   string `json:"trace_id"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.RequestID == "tp-created" && l.Outcome == "created" {
			found = true
			if l.TraceID != traceHex {
				t.Errorf("tp-created outcome line trace_id = %q; want %s", l.TraceID, traceHex)
			}
		}
	}
	if !found {
		t.Errorf("no outcome line for tp-created")
	}
	// Export: run flushed the batch on the way out.
	raw, _ := hex.DecodeString(traceHex)
	if !col.received(raw) {
		t.Errorf("the collector received no span of trace %s", traceHex)
	}
}

// natsgoVersion is the nats.go module's version in this binary's build
// information.
func natsgoVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/nats-io/nats.go" {
				return d.Version
			}
		}
	}
	return "unknown"
}
