package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/zoomprov/consumer/internal/metrics"
)

// value returns the value of the series name{labels}, and whether it
// exists, from a gathered registry.
func value(t *testing.T, m *metrics.Metrics, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			if !labelsMatch(s, labels) {
				continue
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
	}
	return 0, false
}

func labelsMatch(s *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, l := range s.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// Ensure a nil *Metrics is a valid "no metrics" value: every method does
// nothing instead of panicking, so callers need no checks.
func TestNilMetrics(t *testing.T) {
	var m *metrics.Metrics
	m.Request("create", "created")
	m.Delivered("created", 1)
	m.DeadLetter("create", "not_found")
	m.RateLimited(metrics.LimitDaily)
	m.PublishFailed(metrics.PublishResult)
	m.ObserveService(func() metrics.ServiceState { return metrics.ServiceState{} })
	m.ObserveNATS(func() bool { return true }, func() uint64 { return 0 })
	m.ObserveReady(func() bool { return true })
	m.Handled("create", "created", time.Now(), time.Now())
	m.SetVersion("v1")
	m.ObserveBacklog(func(context.Context) ([]metrics.Backlog, error) { return nil, nil }, time.Second, time.Second)
	if m.Registry() != nil {
		t.Errorf("nil Metrics Registry() = non-nil; want nil")
	}
	base := http.DefaultTransport
	if got := m.ZoomTransport(base, "http://x/oauth/token"); got != base {
		t.Errorf("nil Metrics ZoomTransport = %T; want the base transport unchanged", got)
	}
}

// Ensure label values outside the fixed lists collapse into "other", so a
// stray subject's token or a future reason can never add series.
func TestLabelsAreBounded(t *testing.T) {
	m := metrics.New()
	m.Request("ssoCreate", "created")
	m.Request("SSOCreate", "created")
	m.Request("ssoCreate.extra", "created")
	m.Request("ssoCreate", "something-new")
	m.DeadLetter("a@b.example", "invalid_request")
	m.DeadLetter("create", "made_up")
	m.RateLimited("weekly")
	m.PublishFailed("unknown-kind") // ignored

	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"zoomprov_requests_total", map[string]string{"action": "ssoCreate", "outcome": "created"}, 1},
		{"zoomprov_requests_total", map[string]string{"action": "other", "outcome": "created"}, 2},
		{"zoomprov_requests_total", map[string]string{"action": "ssoCreate", "outcome": "other"}, 1},
		{"zoomprov_dead_letters_total", map[string]string{"action": "other", "reason": "invalid_request"}, 1},
		{"zoomprov_dead_letters_total", map[string]string{"action": "create", "reason": "other"}, 1},
		{"zoomprov_zoom_rate_limited_total", map[string]string{"limit": "unknown"}, 1},
		{"zoomprov_publish_failures_total", map[string]string{"kind": "result"}, 0},
	}
	for _, tc := range tests {
		got, ok := value(t, m, tc.name, tc.labels)
		if !ok || got != tc.want {
			t.Errorf("%s%v = %v (present %v); want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if !strings.HasPrefix(f.GetName(), metrics.Namespace+"_") || f.GetName() == "zoomprov_build_info" {
			continue // go_info{version="go1.26.8"} and the like: one value per build
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if strings.Contains(l.GetValue(), "@") || strings.Contains(l.GetValue(), ".") {
					t.Errorf("%s has label %s=%q; want only fixed values", f.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// Ensure every series of the fixed label lists exists from the start at
// zero, so increase() and alerts see the first event.
func TestSeriesStartAtZero(t *testing.T) {
	m := metrics.New()
	for _, tc := range []struct {
		name   string
		labels map[string]string
	}{
		{"zoomprov_requests_total", map[string]string{"action": "create", "outcome": "deferred"}},
		{"zoomprov_dead_letters_total", map[string]string{"action": "custCreate", "reason": "retries_exhausted"}},
		{"zoomprov_zoom_requests_total", map[string]string{"endpoint": "token", "status_class": "4xx"}},
		{"zoomprov_zoom_requests_total", map[string]string{"endpoint": "list_users", "status_class": "5xx"}},
		{"zoomprov_zoom_rate_limited_total", map[string]string{"limit": "daily"}},
		{"zoomprov_zoom_tokens_fetched_total", map[string]string{}},
	} {
		if got, ok := value(t, m, tc.name, tc.labels); !ok || got != 0 {
			t.Errorf("%s%v = %v (present %v); want 0, present", tc.name, tc.labels, got, ok)
		}
	}
}

// Ensure the Zoom transport names endpoints by method and path (never by
// the address in GET /users/{email}, nor by a query), tells GET /users
// (list) from GET /users/{userId} and /users/email (look-ups), classes
// statuses, counts token fetches, times calls, and passes
// CloseIdleConnections on.
func TestZoomTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/oauth/token":
			w.WriteHeader(http.StatusOK)
		case r.Method == http.MethodPost && r.URL.Path == "/v2/users":
			w.WriteHeader(http.StatusTooManyRequests)
		case r.Method == http.MethodGet && r.URL.Path == "/v2/users":
			w.WriteHeader(http.StatusOK)
		case strings.HasPrefix(r.URL.Path, "/v2/users/"):
			w.WriteHeader(http.StatusNotFound)
		default:
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	m := metrics.New()
	base := &countingTransport{RoundTripper: srv.Client().Transport}
	c := &http.Client{Transport: m.ZoomTransport(base, srv.URL+"/oauth/token")}
	do := func(method, path string) {
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	do(http.MethodPost, "/oauth/token")
	do(http.MethodPost, "/oauth/token")
	do(http.MethodPost, "/v2/users")
	do(http.MethodGet, "/v2/users/alice@example.com")
	do(http.MethodGet, "/v2/users/email?email=alice@example.com")
	do(http.MethodGet, "/v2/users?status=pending&page_size=300&next_page_token=abc")
	do(http.MethodGet, "/v2/other")

	// A call that gets no answer at all.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	req, _ := http.NewRequest(http.MethodPost, deadURL+"/v2/users", nil)
	if res, err := c.Do(req); err == nil {
		res.Body.Close()
		t.Fatalf("POST to a closed server succeeded; want an error")
	}

	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"zoomprov_zoom_requests_total", map[string]string{"endpoint": "token", "status_class": "2xx"}, 2},
		{"zoomprov_zoom_requests_total", map[string]string{"endpoint": "create_user", "status_class": "4xx"}, 1},
		{"zoomprov_zoom_requests_total", map[string]string{"endpoint": "create_user", "status_class": "error"}, 1},
		{"zoomprov_zoom_requests_total", map[string]string{"endpoint": "get_user", "status_class": "4xx"}, 2},
		{"zoomprov_zoom_requests_total", map[string]string{"endpoint": "list_users", "status_class": "2xx"}, 1},
		{"zoomprov_zoom_requests_total", map[string]string{"endpoint": "list_users", "status_class": "4xx"}, 0},
		{"zoomprov_zoom_requests_total", map[string]string{"endpoint": "other", "status_class": "5xx"}, 1},
		{"zoomprov_zoom_tokens_fetched_total", map[string]string{}, 2},
		{"zoomprov_zoom_request_duration_seconds", map[string]string{"endpoint": "create_user"}, 2},
		{"zoomprov_zoom_request_duration_seconds", map[string]string{"endpoint": "token"}, 2},
	} {
		if got, ok := value(t, m, tc.name, tc.labels); !ok || got != tc.want {
			t.Errorf("%s%v = %v (present %v); want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	c.CloseIdleConnections()
	if base.closed != 1 {
		t.Errorf("CloseIdleConnections reached the base transport %d times; want 1", base.closed)
	}
}

type countingTransport struct {
	http.RoundTripper
	closed int
}

func (c *countingTransport) CloseIdleConnections() {
	c.closed++
	if ci, ok := c.RoundTripper.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// Ensure the state gauges are read at scrape time: both gate scopes are
// always reported, a closed gate shows 1 and its seconds to reset, and the
// NATS and readiness gauges follow their functions.
func TestStateGauges(t *testing.T) {
	m := metrics.New()
	if _, ok := value(t, m, "zoomprov_paused", map[string]string{}); ok {
		t.Errorf("zoomprov_paused present before ObserveService; want absent")
	}
	st := metrics.ServiceState{Bound: true, Paused: true, InFlight: 3, Replicas: 2, RateShare: 10, Pace: 7.5,
		GateResets: map[string]time.Duration{"create": 90 * time.Second}}
	m.ObserveService(func() metrics.ServiceState { return st })
	connected := true
	m.ObserveNATS(func() bool { return connected }, func() uint64 { return 4 })
	m.ObserveReady(func() bool { return false })

	check := func(name string, labels map[string]string, want float64) {
		t.Helper()
		if got, ok := value(t, m, name, labels); !ok || got != want {
			t.Errorf("%s%v = %v (present %v); want %v", name, labels, got, ok, want)
		}
	}
	check("zoomprov_quota_gate_closed", map[string]string{"scope": "create"}, 1)
	check("zoomprov_quota_gate_reset_seconds", map[string]string{"scope": "create"}, 90)
	check("zoomprov_quota_gate_closed", map[string]string{"scope": "all"}, 0)
	check("zoomprov_quota_gate_reset_seconds", map[string]string{"scope": "all"}, 0)
	check("zoomprov_paused", map[string]string{}, 1)
	check("zoomprov_consumers_bound", map[string]string{}, 1)
	check("zoomprov_in_flight_requests", map[string]string{}, 3)
	check("zoomprov_replicas", map[string]string{}, 2)
	check("zoomprov_zoom_rate_share_requests_per_second", map[string]string{}, 10)
	check("zoomprov_zoom_pace_requests_per_second", map[string]string{}, 7.5)
	check("zoomprov_zoom_credentials_accepted", map[string]string{}, 0)
	check("zoomprov_nats_connected", map[string]string{}, 1)
	check("zoomprov_nats_reconnects_total", map[string]string{}, 4)
	check("zoomprov_ready", map[string]string{}, 0)

	st.GateResets = nil
	connected = false
	check("zoomprov_quota_gate_closed", map[string]string{"scope": "create"}, 0)
	check("zoomprov_nats_connected", map[string]string{}, 0)
}

// Ensure the handler serves the text format, every zoomprov_ metric has a
// unit-bearing or conventional name, and the Go runtime collectors are
// there too.
func TestHandler(t *testing.T) {
	m := metrics.New()
	m.Request("create", "created")
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	res, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Errorf("go_goroutines missing; want the Go collector registered")
	}
	for name, f := range fams {
		if !strings.HasPrefix(name, "zoomprov_") {
			continue
		}
		if f.GetHelp() == "" {
			t.Errorf("%s has no help text", name)
		}
		if f.GetType() == dto.MetricType_COUNTER && !strings.HasSuffix(name, "_total") {
			t.Errorf("counter %s does not end in _total", name)
		}
	}
}

// Ensure Handled records terminal outcomes only: the last-handled time
// moves to now (never back), and the handling time from the stored time
// lands in the histogram; Request alone moves the last-handled time too.
func TestHandled(t *testing.T) {
	start := time.Now()
	m := metrics.New()
	last := func(action string) float64 {
		t.Helper()
		v, ok := value(t, m, "zoomprov_last_handled_timestamp_seconds", map[string]string{"action": action})
		if !ok {
			t.Fatalf("zoomprov_last_handled_timestamp_seconds{action=%s} absent; want every action present from the start", action)
		}
		return v
	}
	if v := last("delete"); v < float64(start.Unix())-1 || v > float64(time.Now().Unix())+1 {
		t.Errorf("last handled before any request = %v; want the start, about %d", v, start.Unix())
	}

	now := time.Date(2030, 1, 2, 3, 4, 5, 678e6, time.UTC)
	m.Handled("ssoCreate", "created", now.Add(-90*time.Second), now)
	m.Handled("ssoCreate", "deferred", now.Add(-time.Hour), now.Add(time.Minute)) // not terminal: ignored
	m.Handled("ssoCreate", "retry", now.Add(-time.Hour), now.Add(time.Minute))
	m.Handled("ssoCreate", "failed", now.Add(-61*time.Second), now.Add(-time.Minute)) // earlier: the gauge stays
	m.Handled("a@b.example", "deleted", now.Add(-2*time.Second), now)

	if got, want := last("ssoCreate"), float64(now.UnixMilli())/1000; got != want {
		t.Errorf("last handled ssoCreate = %v; want %v (the latest terminal outcome, to the millisecond)", got, want)
	}
	if got, ok := value(t, m, "zoomprov_request_handling_duration_seconds", map[string]string{"action": "ssoCreate"}); !ok || got != 2 {
		t.Errorf("handling duration ssoCreate count = %v (present %v); want 2 (created and failed)", got, ok)
	}
	if got, ok := value(t, m, "zoomprov_request_handling_duration_seconds", map[string]string{"action": "other"}); !ok || got != 1 {
		t.Errorf("handling duration other count = %v (present %v); want 1", got, ok)
	}
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "zoomprov_request_handling_duration_seconds" {
			continue
		}
		for _, s := range f.GetMetric() {
			if labelsMatch(s, map[string]string{"action": "ssoCreate"}) && s.GetHistogram().GetSampleSum() != 91 {
				t.Errorf("handling duration ssoCreate sum = %v; want 91 (90 s and 1 s)", s.GetHistogram().GetSampleSum())
			}
			if n := len(s.GetHistogram().GetBucket()); n != len(metrics.HandlingBuckets) {
				t.Errorf("handling duration has %d buckets; want %d", n, len(metrics.HandlingBuckets))
			}
		}
	}

	before := time.Now()
	m.Request("update", "updated")
	if v := last("update"); v < float64(before.UnixMilli())/1000 {
		t.Errorf("last handled update after Request(update, updated) = %v; want at least %v", v, float64(before.UnixMilli())/1000)
	}
	m.Request("activate", "retry")
	if v := last("activate"); v >= float64(before.UnixMilli())/1000 {
		t.Errorf("last handled activate after a retry = %v; want the start, before %v", v, float64(before.UnixMilli())/1000)
	}
}

// Ensure zoomprov_build_info is one series at 1 naming the Go toolchain
// and the version set.
func TestBuildInfo(t *testing.T) {
	m := metrics.New()
	m.SetVersion("v1.2.3")
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "zoomprov_build_info" {
			continue
		}
		if len(f.GetMetric()) != 1 {
			t.Fatalf("zoomprov_build_info has %d series; want 1", len(f.GetMetric()))
		}
		s := f.GetMetric()[0]
		got := map[string]string{}
		for _, l := range s.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if s.GetGauge().GetValue() != 1 || got["version"] != "v1.2.3" || got["goversion"] != runtime.Version() || got["natsgo"] == "" {
			t.Errorf("zoomprov_build_info = %v %v; want 1 with version v1.2.3, goversion %s and natsgo", got, s.GetGauge().GetValue(), runtime.Version())
		}
		return
	}
	t.Error("zoomprov_build_info absent")
}

// Ensure a closed gate reports the time it reopens, to the second, and
// an open one 0.
func TestGateReopenTimestamp(t *testing.T) {
	m := metrics.New()
	m.ObserveService(func() metrics.ServiceState {
		return metrics.ServiceState{GateResets: map[string]time.Duration{"all": 90 * time.Second}}
	})
	want := float64(time.Now().Add(90 * time.Second).Unix())
	got, ok := value(t, m, "zoomprov_quota_gate_reopen_timestamp_seconds", map[string]string{"scope": "all"})
	if !ok || got < want-1 || got > want+2 || got != float64(int64(got)) {
		t.Errorf("reopen timestamp {scope=all} = %v (present %v); want about %v, whole seconds", got, ok, want)
	}
	if got, ok := value(t, m, "zoomprov_quota_gate_reopen_timestamp_seconds", map[string]string{"scope": "create"}); !ok || got != 0 {
		t.Errorf("reopen timestamp {scope=create} = %v (present %v); want 0 while open", got, ok)
	}
}

// Ensure the backlog is read at scrape time, once per cache period, with
// ages computed at each scrape; unknown consumers collapse into "other";
// a failed reading reports what it read and counts an error; a reading
// that outlives the timeout is cut off.
func TestBacklogCollector(t *testing.T) {
	m := metrics.New()
	if _, ok := value(t, m, "zoomprov_backlog_requests", map[string]string{"action": "create"}); ok {
		t.Errorf("zoomprov_backlog_requests present before ObserveBacklog; want absent")
	}
	stored := time.Now().Add(-90 * time.Second)
	reads := 0
	var fail error
	m.ObserveBacklog(func(context.Context) ([]metrics.Backlog, error) {
		reads++
		return []metrics.Backlog{
			{Action: "create", Requests: 7, Oldest: stored},
			{Action: "parked", Requests: 0},
			{Action: "bogus", Requests: 1, Oldest: stored},
			{Action: "made-up", Requests: 2, Oldest: stored.Add(-time.Hour)},
		}, fail
	}, time.Hour, time.Second)

	check := func(name, action string, lo, hi float64) {
		t.Helper()
		got, ok := value(t, m, name, map[string]string{"action": action})
		if !ok || got < lo || got > hi {
			t.Errorf("%s{action=%s} = %v (present %v); want %v to %v", name, action, got, ok, lo, hi)
		}
	}
	check("zoomprov_backlog_requests", "create", 7, 7)
	check("zoomprov_backlog_oldest_age_seconds", "create", 90, 95)
	check("zoomprov_backlog_requests", "parked", 0, 0)
	check("zoomprov_backlog_oldest_age_seconds", "parked", 0, 0)
	check("zoomprov_backlog_requests", "other", 3, 3)
	check("zoomprov_backlog_oldest_age_seconds", "other", 3690, 3695)
	if reads != 1 {
		t.Errorf("backlog read %d times for several gathers within the cache period; want 1", reads)
	}

	fail = errors.New("consumer zoom-provisioner-delete: timeout")
	m.ObserveBacklog(func(context.Context) ([]metrics.Backlog, error) {
		reads++
		return []metrics.Backlog{{Action: "update", Requests: 2}}, fail
	}, 0, time.Second)
	check("zoomprov_backlog_requests", "update", 2, 2)
	if _, ok := value(t, m, "zoomprov_backlog_requests", map[string]string{"action": "create"}); ok {
		t.Errorf("zoomprov_backlog_requests{action=create} present though the last reading did not read it; want absent")
	}
	if got, _ := value(t, m, "zoomprov_backlog_read_errors_total", map[string]string{}); got < 1 {
		t.Errorf("zoomprov_backlog_read_errors_total = %v after a failed reading; want at least 1", got)
	}

	m.ObserveBacklog(func(ctx context.Context) ([]metrics.Backlog, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}, 0, 50*time.Millisecond)
	start := time.Now()
	if _, ok := value(t, m, "zoomprov_backlog_requests", map[string]string{"action": "update"}); ok {
		t.Errorf("zoomprov_backlog_requests present after a timed-out reading; want absent")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a scrape with a hanging backlog reading took %v; want it cut off at the timeout", took)
	}
}
