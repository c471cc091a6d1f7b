package provision_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/zoomprov/consumer/internal/deadletter"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/metrics"
	"github.com/zoomprov/consumer/internal/provision"
	"github.com/zoomprov/consumer/testenv"
)

// publishTraced publishes a request with a Nats-Msg-Id and, if traceparent
// is not empty, a traceparent header (under the given header name, to show
// case does not matter).
func (h *harness) publishTraced(id, action, body, header, traceparent string) {
	h.t.Helper()
	m := nats.NewMsg("zoom.users.create." + action)
	m.Data = []byte(body)
	m.Header.Set(jetstream.MsgIDHeader, id)
	if traceparent != "" {
		m.Header.Set(header, traceparent)
	}
	if _, err := h.js.PublishMsg(context.Background(), m); err != nil {
		h.t.Fatalf("publish %s: %v", id, err)
	}
}

// gathered reads one series from a Metrics registry: a counter's or
// gauge's value, a histogram's sample count.
func gathered(t testing.TB, m *metrics.Metrics, name string, labels ...string) float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, s := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range s.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if len(got) != len(want) {
				continue
			}
			for k, v := range want {
				if got[k] != v {
					continue series
				}
			}
			return seriesValue(s)
		}
	}
	t.Fatalf("no series %s%v", name, want)
	return 0
}

func seriesValue(s *dto.Metric) float64 {
	switch {
	case s.Counter != nil:
		return s.Counter.GetValue()
	case s.Gauge != nil:
		return s.Gauge.GetValue()
	case s.Histogram != nil:
		return float64(s.Histogram.GetSampleCount())
	}
	return 0
}

// traceIDOf parses a traceparent value's trace id.
func traceIDOf(t testing.TB, traceparent string) trace.TraceID {
	t.Helper()
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": traceparent})
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		t.Fatalf("traceparent %q is not valid", traceparent)
	}
	return sc.TraceID()
}

// Ensure a mixed batch of requests shows in the metrics as it happened
// (created, exists, dead letters by reason, one daily 429, the closed create
// gate), that trace context flows from each request to its result event and
// dead letter (header and CloudEvents attribute), that requests without one
// get a new trace, and that every outcome has exactly one log line with the
// fixed fields.
func TestMetricsTracesAndOutcomeLines(t *testing.T) {
	h := newHarness(t, testenv.SimConfig{DailyCreateLimit: 1})
	h.sim.AddUser("exists@example.com", 1)
	h.sim.FailEmail("nogroup@example.com", 0, testenv.Fault{Status: 404, Code: 4130, Message: "Group does not exist: sales."})

	const (
		tpCreated = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		tpInvalid = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	)
	h.publishTraced("ok-1", "ssoCreate", userBody("ssoCreate", "ok1@example.com", 1), "", "")
	h.publishTraced("ok-2", "ssoCreate", userBody("ssoCreate", "ok2@example.com", 1), "", "")
	h.publishTraced("ok-traced", "custCreate", userBody("custCreate", "traced@example.com", 2), "traceparent", tpCreated)
	h.publishTraced("exists", "ssoCreate", userBody("ssoCreate", "exists@example.com", 1), "", "")
	h.publishTraced("invalid", "custCreate", `{"action":"custCreate","user_info":{"email":"nope","type":2}}`, "", "")
	// A publisher that capitalises the header, as HTTP habits make some do.
	h.publishTraced("invalid-traced", "custCreate", `{"action":"custCreate","user_info":{"email":"nope2","type":2}}`, "Traceparent", tpInvalid)
	h.publishTraced("nogroup", "ssoCreate", userBody("ssoCreate", "nogroup@example.com", 1), "", "")
	h.publishTraced("weak", "autoCreate", `{"action":"autoCreate","user_info":{"email":"weak@example.com","type":1,"password":"password1"}}`, "", "")
	h.publishTraced("invite-1", "create", userBody("create", "invite1@example.com", 1), "", "")
	h.publishTraced("invite-2", "create", userBody("create", "invite2@example.com", 1), "", "")

	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	m := metrics.New()
	cfg := testConfig(3)
	cfg.Metrics = m
	cfg.TracerProvider = tp
	r := h.start(cfg)

	terminalIDs := []string{"ok-1", "ok-2", "ok-traced", "exists", "invalid", "invalid-traced", "nogroup", "weak"}
	evs := h.waitTerminal(20*time.Second, terminalIDs...)
	// One invitation is created, the other meets the daily limit and waits
	// behind the closed gate.
	var invited, deferred string
	eventually(t, 20*time.Second, func() (bool, string) {
		evs = h.events()
		invited, deferred = "", ""
		for _, id := range []string{"invite-1", "invite-2"} {
			switch {
			case len(terminal(evs[id])) == 1:
				invited = id
			case len(evs[id]) > 0 && evs[id][0].Data.Outcome == messages.OutcomeDeferred:
				deferred = id
			}
		}
		return invited != "" && deferred != "", fmt.Sprintf("invitations: created %q, deferred %q", invited, deferred)
	})
	// The settlement of the last outcome is counted just after its event
	// is stored: wait for the count rather than race it.
	eventually(t, 10*time.Second, func() (bool, string) {
		n := gathered(t, m, "zoomprov_requests_total", "action", "create", "outcome", "deferred")
		return n >= 1, fmt.Sprintf("deferred create requests counted: %v", n)
	})

	// Metrics: what happened, series by series.
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"zoomprov_requests_total", []string{"action", "ssoCreate", "outcome", "created"}, 2},
		{"zoomprov_requests_total", []string{"action", "custCreate", "outcome", "created"}, 1},
		{"zoomprov_requests_total", []string{"action", "create", "outcome", "created"}, 1},
		{"zoomprov_requests_total", []string{"action", "ssoCreate", "outcome", "exists"}, 1},
		{"zoomprov_requests_total", []string{"action", "custCreate", "outcome", "failed"}, 2},
		{"zoomprov_requests_total", []string{"action", "ssoCreate", "outcome", "failed"}, 1},
		{"zoomprov_requests_total", []string{"action", "autoCreate", "outcome", "failed"}, 1},
		{"zoomprov_dead_letters_total", []string{"action", "custCreate", "reason", "invalid_request"}, 2},
		{"zoomprov_dead_letters_total", []string{"action", "ssoCreate", "reason", "not_found"}, 1},
		{"zoomprov_dead_letters_total", []string{"action", "autoCreate", "reason", "zoom_rejected"}, 1},
		{"zoomprov_dead_letters_total", []string{"action", "create", "reason", "retries_exhausted"}, 0},
		{"zoomprov_zoom_rate_limited_total", []string{"limit", "daily"}, 1},
		{"zoomprov_zoom_rate_limited_total", []string{"limit", "per_second"}, 0},
		{"zoomprov_quota_gate_closed", []string{"scope", "create"}, 1},
		{"zoomprov_quota_gate_closed", []string{"scope", "all"}, 0},
		{"zoomprov_request_deliveries", []string{"outcome", "created"}, 4},
		{"zoomprov_request_deliveries", []string{"outcome", "failed"}, 4},
		{"zoomprov_paused", nil, 0},
		{"zoomprov_consumers_bound", nil, 1},
		{"zoomprov_publish_failures_total", []string{"kind", "result"}, 0},
	} {
		if got := gathered(t, m, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v; want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	// The simulated day resets at 00:00 UTC, as Zoom's does.
	if got := gathered(t, m, "zoomprov_quota_gate_reset_seconds", "scope", "create"); got <= 0 || got > 24*3600 {
		t.Errorf("zoomprov_quota_gate_reset_seconds{scope=create} = %v; want the time to the next 00:00 UTC", got)
	}

	// Trace context: result event header and attribute, dead letter header.
	results := map[string]string{} // request id -> traceparent header of its terminal event
	for _, msg := range h.storedMsgs("ZOOM_USERS_RESULTS") {
		ev, err := messages.DecodeEvent(msg.Data)
		if err != nil {
			t.Fatalf("result %d: %v", msg.Sequence, err)
		}
		hdr := msg.Header.Get(provision.HeaderTraceParent)
		if hdr == "" || ev.TraceParent != hdr {
			t.Errorf("event %s: traceparent header %q, attribute %q; want both set and equal", ev.ID, hdr, ev.TraceParent)
		}
		if ev.Data.Outcome.Terminal() {
			results[ev.Data.RequestID] = hdr
		}
	}
	if got, want := traceIDOf(t, results["ok-traced"]), traceIDOf(t, tpCreated); got != want {
		t.Errorf("ok-traced result trace id = %s; want the request's %s", got, want)
	}
	if results["ok-traced"] == tpCreated {
		t.Errorf("ok-traced result traceparent = the request's; want the handling span's id under the same trace")
	}
	if results["ok-1"] == "" || traceIDOf(t, results["ok-1"]) == traceIDOf(t, results["ok-2"]) {
		t.Errorf("untraced requests' results traceparents %q and %q; want a new trace each", results["ok-1"], results["ok-2"])
	}
	dls := map[string]nats.Header{}
	for _, msg := range h.storedMsgs("ZOOM_USERS_DLQ") {
		dls[msg.Header.Get(deadletter.HeaderRequestID)] = msg.Header
	}
	if dl, ok := dls["invalid-traced"]; !ok {
		t.Errorf("no dead letter for invalid-traced")
	} else {
		if got, want := traceIDOf(t, dl.Get("traceparent")), traceIDOf(t, tpInvalid); got != want {
			t.Errorf("dead letter trace id = %s; want the request's %s", got, want)
		}
		if v := dl.Get("Traceparent"); v != "" {
			t.Errorf("dead letter keeps the publisher's Traceparent %q beside traceparent; want one trace context", v)
		}
	}

	// Spans: one per handled delivery under the request's trace, with the
	// outcome and no e-mail address anywhere.
	spans := exp.GetSpans()
	var handled int
	for _, s := range spans {
		for _, a := range s.Attributes {
			if strings.Contains(a.Value.Emit(), "@") {
				t.Errorf("span %q attribute %s = %q; want no e-mail address", s.Name, a.Key, a.Value.Emit())
			}
		}
		if !strings.HasPrefix(s.Name, "provision ") {
			continue
		}
		handled++
		if id, _ := spanAttr(s, "messaging.message.id"); id == "ok-traced" {
			if s.SpanContext.TraceID() != traceIDOf(t, tpCreated) || s.Parent.SpanID().String() != "00f067aa0ba902b7" {
				t.Errorf("ok-traced span trace %s parent %s; want trace 4bf9… under span 00f067aa0ba902b7", s.SpanContext.TraceID(), s.Parent.SpanID())
			}
			if o, _ := spanAttr(s, "zoomprov.outcome"); o != "created" {
				t.Errorf("ok-traced span outcome = %q; want created", o)
			}
			if st, _ := spanAttr(s, "http.response.status_code"); st != "201" {
				t.Errorf("ok-traced span http.response.status_code = %q; want 201", st)
			}
		}
	}
	if handled < len(terminalIDs)+2 {
		t.Errorf("handling spans = %d; want at least %d", handled, len(terminalIDs)+2)
	}

	if err := r.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}

	// Outcome lines: exactly one per delivery settled, every fixed field.
	type line struct {
		RequestID    string   `json:"request_id"`
		Action       *string  `json:"action"`
		StreamSeq    *uint64  `json:"stream_seq"`
		NumDelivered *uint64  `json:"num_delivered"`
		Outcome      string   `json:"outcome"`
		HTTPStatus   int      `json:"http_status"`
		ZoomCode     int      `json:"zoom_code"`
		Latency      *float64 `json:"latency"`
		TrackingID   string   `json:"tracking_id"`
		TraceID      string   `json:"trace_id"`
		Email        string   `json:"email"`
	}
	perDelivery := map[string]int{}
	byID := map[string]line{}
	sc := bufio.NewScanner(strings.NewReader(h.log.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		if l.Outcome == "" {
			continue
		}
		if l.RequestID == "" || l.Action == nil || l.StreamSeq == nil || l.NumDelivered == nil || l.Latency == nil || len(l.TraceID) != 32 {
			t.Errorf("outcome line misses a fixed field (request_id, action, stream_seq, num_delivered, latency, trace_id): %s", sc.Text())
			continue
		}
		if strings.Contains(l.Email, "@") && !strings.Contains(l.Email, "***") {
			t.Errorf("outcome line has an unmasked address: %s", sc.Text())
		}
		perDelivery[fmt.Sprintf("%s#%d", l.RequestID, *l.NumDelivered)]++
		byID[l.RequestID] = l
	}
	for k, n := range perDelivery {
		if n != 1 {
			t.Errorf("delivery %s has %d outcome lines; want 1", k, n)
		}
	}
	for _, id := range append(terminalIDs, invited, deferred) {
		if _, ok := byID[id]; !ok {
			t.Errorf("no outcome line for %s", id)
		}
	}
	if l := byID["ok-traced"]; l.TraceID != traceIDOf(t, tpCreated).String() || l.HTTPStatus != 201 || l.TrackingID == "" {
		t.Errorf("ok-traced outcome line trace_id %q http_status %d tracking_id %q; want the request's trace, 201, Zoom's tracking id", l.TraceID, l.HTTPStatus, l.TrackingID)
	}
	if l := byID["nogroup"]; l.Outcome != "failed" || l.HTTPStatus != 404 || l.ZoomCode != 4130 {
		t.Errorf("nogroup outcome line outcome %q http_status %d zoom_code %d; want failed, 404, 4130", l.Outcome, l.HTTPStatus, l.ZoomCode)
	}
	if l := byID[deferred]; l.Outcome != "deferred" || l.HTTPStatus != 429 {
		t.Errorf("%s outcome line outcome %q http_status %d; want deferred, 429", deferred, l.Outcome, l.HTTPStatus)
	}
}

func spanAttr(s tracetest.SpanStub, key string) (string, bool) {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.Emit(), true
		}
	}
	return "", false
}
