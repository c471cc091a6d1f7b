// Package metrics holds the Prometheus collectors of the provisioning
// consumer. Every metric is named zoomprov_<what>_<unit>, and every label
// takes its values from a short fixed list (an unknown value becomes
// "other"), so no e-mail address, request id or subject can ever become a
// label value and grow the series without bound.
//
// The collectors live on a Registry of their own, not on Prometheus's
// global one, so that tests can run several services in one process. All
// methods are safe on a nil *Metrics and then do nothing, so code that
// records metrics needs no "metrics enabled?" checks.
package metrics

import (
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/zoomprov/consumer/internal/messages"
)

// Namespace is the prefix of every metric of the service.
const Namespace = "zoomprov"

// Other is the label value that stands for any value outside a label's
// fixed list.
const Other = "other"

// Outcomes of one delivery, the values of the "outcome" label of
// zoomprov_requests_total besides the result outcomes (messages.Outcomes):
// what the service does without a result event.
const (
	OutcomeRetry      = "retry"       // transient failure, redelivery scheduled
	OutcomePaused     = "paused"      // account-level problem, handed back until the pause ends
	OutcomeParked     = "parked"      // waits for an earlier request about the same user as a parked copy
	OutcomeHandedBack = "handed_back" // shutdown interrupted the request
	OutcomeUnsettled  = "unsettled"   // the outcome could not be published; handed back
	OutcomeWaiting    = "waiting"     // an earlier request about the same user is not finished; handed back
	OutcomePanicked   = "panicked"    // handling panicked; handed back
	OutcomeSuperseded = "superseded"  // another delivery finished the request; this one ends without a result
)

// outcomes is the fixed list of the "outcome" label: every result outcome,
// then what the service does without a result event.
var outcomes = func() []string {
	var out []string
	for _, o := range messages.Outcomes {
		out = append(out, string(o))
	}
	return append(out, OutcomeRetry, OutcomePaused, OutcomeParked, OutcomeHandedBack, OutcomeUnsettled, OutcomeWaiting, OutcomePanicked, OutcomeSuperseded, Other)
}()

// reasons is the fixed list of the "reason" label of dead letters.
var reasons = []string{
	string(messages.ReasonInvalidRequest), string(messages.ReasonZoomRejected), string(messages.ReasonNotFound),
	string(messages.ReasonRetriesExhausted), Other,
}

// Zoom endpoints, the values of the "endpoint" label.
const (
	EndpointCreateUser = "create_user"
	EndpointGetUser    = "get_user"
	EndpointUpdateUser = "update_user"
	EndpointUserStatus = "user_status"
	EndpointDeleteUser = "delete_user"
	EndpointListUsers  = "list_users"
	EndpointToken      = "token"
)

var endpoints = []string{EndpointCreateUser, EndpointGetUser, EndpointUpdateUser, EndpointUserStatus, EndpointDeleteUser, EndpointListUsers, EndpointToken, Other}

// statusClasses are the values of the "status_class" label; "error" is a
// call that got no HTTP answer (time-out, refused or reset connection).
var statusClasses = []string{"1xx", "2xx", "3xx", "4xx", "5xx", "error"}

// Rate-limit types, the values of the "limit" label of
// zoomprov_zoom_rate_limited_total: Zoom's two limits, a 429 that said
// neither, and a 429 from the OAuth token endpoint.
const (
	LimitPerSecond = "per_second"
	LimitDaily     = "daily"
	LimitUnknown   = "unknown"
	LimitToken     = "token"
)

var limits = []string{LimitPerSecond, LimitDaily, LimitUnknown, LimitToken}

// Publish kinds, the values of the "kind" label of
// zoomprov_publish_failures_total.
const (
	PublishResult     = "result"
	PublishDeadLetter = "dead_letter"
)

var publishKinds = []string{PublishResult, PublishDeadLetter}

// GateScopes are the quota gate scopes always reported, open or closed.
var GateScopes = []string{string(messages.ActionCreate), "all"}

// Metrics is the service's set of collectors. Create it with New.
type Metrics struct {
	reg *prometheus.Registry

	// Pre-resolved children: the hot path indexes maps instead of hashing
	// label values on every call.
	requests    map[string]map[string]prometheus.Counter // action → outcome
	deadLetters map[string]map[string]prometheus.Counter // action → reason
	deliveries  map[string]prometheus.Observer           // outcome
	zoomCalls   map[string]map[string]prometheus.Counter // endpoint → status class
	zoomLatency map[string]prometheus.Observer           // endpoint
	rateLimited map[string]prometheus.Counter            // limit
	publishFail map[string]prometheus.Counter            // kind
	tokens      prometheus.Counter

	state *stateCollector

	handled *handledMetrics
	backlog *backlogCollector
	build   *buildCollector
	drift   *driftMetrics
}

// New returns a Metrics whose collectors, plus the Go runtime and process
// collectors, are registered on a new Registry.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), state: newStateCollector()}
	actions := make([]string, 0, len(messages.Actions)+len(messages.Operations)+1)
	for _, a := range messages.Actions {
		actions = append(actions, string(a))
	}
	for _, o := range messages.Operations {
		actions = append(actions, string(o))
	}
	actions = append(actions, Other)

	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "requests_total",
		Help: "Deliveries of requests settled, by action (create, autoCreate, custCreate, ssoCreate, update, deactivate, activate, delete, other) and outcome. With a result event: created, exists, updated, deactivated, activated, deleted, failed (also dead-lettered), deferred (a 429: retried after Zoom's reset). Without one, the request is delivered again: retry (a transient failure), paused (an account-level problem pauses all work), handed_back (shutdown), unsettled (its outcome could not be stored), waiting (an earlier request about the same user is not finished), panicked; parked: moved to the parked subject to wait for an earlier request about the same user, with no ack-pending slot; superseded: another delivery already finished the request.",
	}, []string{"action", "outcome"})
	deadLetters := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "dead_letters_total",
		Help: "Requests moved to the dead-letter stream, by action and reason: invalid_request (refused before any Zoom call), zoom_rejected (Zoom answered 400, or a 409 other than user exists), not_found (Zoom answered 404: group, licence or user missing), retries_exhausted (MAX_ATTEMPTS transient failures).",
	}, []string{"action", "reason"})
	deliveries := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "request_deliveries",
		Help:    "Deliveries a request took until its terminal outcome (JetStream's NumDelivered at settlement), by outcome (created, exists, updated, deactivated, activated, deleted, failed).",
		Buckets: []float64{1, 2, 3, 5, 10, 20, 50, 100},
	}, []string{"outcome"})
	zoomCalls := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "zoom_requests_total",
		Help: "HTTP calls to Zoom, by endpoint (create_user: POST /users; get_user: GET /users/{email}; update_user: PATCH /users/{email}; user_status: PUT /users/{email}/status; delete_user: DELETE /users/{email}; token: the OAuth token endpoint; other) and status class (1xx to 5xx, or error: no HTTP answer, such as a time-out or a refused or reset connection).",
	}, []string{"endpoint", "status_class"})
	zoomLatency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "zoom_request_duration_seconds",
		Help:    "Seconds from sending an HTTP call to Zoom to its response headers (or its failure), by endpoint (create_user, get_user, update_user, user_status, delete_user, token, other).",
		Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30},
	}, []string{"endpoint"})
	rateLimited := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "zoom_rate_limited_total",
		Help: "429 answers from Zoom on any endpoint, by limit: per_second (the account's per-second budget), daily (a daily cap: closes a quota gate), unknown (neither header nor message said which), token (the OAuth token endpoint's own limit).",
	}, []string{"limit"})
	publishFail := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "publish_failures_total",
		Help: "Result events (kind=result) and dead letters (kind=dead_letter) whose stream did not acknowledge their publication; the request is handed back and handled again.",
	}, []string{"kind"})
	m.tokens = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Name: "zoom_tokens_fetched_total",
		Help: "Access tokens Zoom's OAuth token endpoint issued to this replica (2xx answers).",
	})
	m.reg.MustRegister(requests, deadLetters, deliveries, zoomCalls, zoomLatency, rateLimited, publishFail, m.tokens, m.state,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.handled = newHandledMetrics(m.reg, time.Now())
	m.backlog, m.build = newBacklogCollector(), newBuildCollector()
	m.reg.MustRegister(m.backlog, m.build)
	m.drift = newDriftMetrics()

	m.requests = curry2(requests, actions, outcomes)
	m.deadLetters = curry2(deadLetters, actions, reasons)
	m.zoomCalls = curry2(zoomCalls, endpoints, statusClasses)
	m.deliveries = map[string]prometheus.Observer{}
	for _, o := range messages.Outcomes {
		if o.Terminal() {
			m.deliveries[string(o)] = deliveries.WithLabelValues(string(o))
		}
	}
	m.zoomLatency = map[string]prometheus.Observer{}
	for _, e := range endpoints {
		m.zoomLatency[e] = zoomLatency.WithLabelValues(e)
	}
	m.rateLimited = map[string]prometheus.Counter{}
	for _, l := range limits {
		m.rateLimited[l] = rateLimited.WithLabelValues(l)
	}
	m.publishFail = map[string]prometheus.Counter{}
	for _, k := range publishKinds {
		m.publishFail[k] = publishFail.WithLabelValues(k)
	}
	return m
}

// curry2 resolves every child of a two-label vector up front, which also
// makes every series visible at zero from the first scrape (so rate() and
// increase() see the first event).
func curry2(v *prometheus.CounterVec, first, second []string) map[string]map[string]prometheus.Counter {
	out := make(map[string]map[string]prometheus.Counter, len(first))
	for _, a := range first {
		row := make(map[string]prometheus.Counter, len(second))
		for _, b := range second {
			row[b] = v.WithLabelValues(a, b)
		}
		out[a] = row
	}
	return out
}

// pick returns m[k], or m[Other] for a value outside the fixed list.
func pick[V any](m map[string]V, k string) V {
	if v, ok := m[k]; ok {
		return v
	}
	return m[Other]
}

// Registry is the registry holding every collector, for tests and for
// callers that add collectors of their own.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Request counts one settled delivery of a request of action with outcome
// (a messages.Outcome or one of the Outcome* constants). A terminal outcome
// also moves zoomprov_last_handled_timestamp_seconds{action} to now.
func (m *Metrics) Request(action, outcome string) {
	if m == nil {
		return
	}
	pick(pick(m.requests, action), outcome).Inc()
	if messages.Outcome(outcome).Terminal() {
		// So that the last-handled time is right before every caller
		// also calls Handled, which has the request's stored time.
		pick(m.handled.last, action).set(time.Now())
	}
}

// Delivered records how many deliveries a request took when it reached
// its terminal outcome (created, exists or failed).
func (m *Metrics) Delivered(outcome string, numDelivered uint64) {
	if m == nil {
		return
	}
	if o, ok := m.deliveries[outcome]; ok {
		o.Observe(float64(numDelivered))
	}
}

// DeadLetter counts one dead letter of action for reason.
func (m *Metrics) DeadLetter(action, reason string) {
	if m == nil {
		return
	}
	pick(pick(m.deadLetters, action), reason).Inc()
}

// RateLimited counts one 429 of the given limit type (one of the Limit*
// constants; anything else counts as LimitUnknown).
func (m *Metrics) RateLimited(limit string) {
	if m == nil {
		return
	}
	c, ok := m.rateLimited[limit]
	if !ok {
		c = m.rateLimited[LimitUnknown]
	}
	c.Inc()
}

// PublishFailed counts a result event or dead letter (PublishResult,
// PublishDeadLetter) that its stream did not acknowledge.
func (m *Metrics) PublishFailed(kind string) {
	if m == nil {
		return
	}
	if c, ok := m.publishFail[kind]; ok {
		c.Inc()
	}
}

// zoomCall records one HTTP call to Zoom.
func (m *Metrics) zoomCall(endpoint string, status int, err error, took time.Duration) {
	class := "error"
	if err == nil {
		class = statusClass(status)
	}
	pick(pick(m.zoomCalls, endpoint), class).Inc()
	pick(m.zoomLatency, endpoint).Observe(took.Seconds())
	if endpoint == EndpointToken && class == "2xx" {
		m.tokens.Inc()
	}
}

func statusClass(code int) string {
	if code < 100 || code > 599 {
		return "error"
	}
	return statusClasses[code/100-1]
}

// ServiceState is a snapshot of the provisioning service, read at every
// scrape so the gauges are never stale.
type ServiceState struct {
	// Bound is true while every consumer is bound and consuming.
	Bound bool
	// Paused is true while an account-level problem pauses all work.
	Paused bool
	// CredentialsAccepted is true once Zoom's token endpoint accepted the
	// credentials, and until it refuses them.
	CredentialsAccepted bool
	// InFlight is the number of requests being handled.
	InFlight int
	// Replicas, RateShare and Pace: live replicas sharing the account's
	// budget, this replica's share and its current pace, per second.
	Replicas        int
	RateShare, Pace float64
	// GateResets maps the scope of every closed quota gate to the time
	// until which it is closed.
	GateResets map[string]time.Duration
	// GuardLimit is GUARD_LIMIT (0: the guard is off); GuardUsed the
	// destructive calls its window holds; GuardTripped whether it holds
	// the destructive requests for an operator's decision.
	GuardLimit, GuardUsed int
	GuardTripped          bool
	// OrderReads is how often the service read the request stream to keep
	// the per-user order.
	OrderReads uint64
}

// ObserveService makes every scrape read the service's state from fn. A
// later call replaces fn.
func (m *Metrics) ObserveService(fn func() ServiceState) {
	if m == nil {
		return
	}
	m.state.mu.Lock()
	defer m.state.mu.Unlock()
	m.state.service = fn
}

// ObserveNATS makes every scrape report the NATS connection: connected is
// whether it is up now, reconnects how many times it reconnected.
func (m *Metrics) ObserveNATS(connected func() bool, reconnects func() uint64) {
	if m == nil {
		return
	}
	m.state.mu.Lock()
	defer m.state.mu.Unlock()
	m.state.natsUp, m.state.natsReconnects = connected, reconnects
}

// ObserveReady makes every scrape report readiness as /readyz answers it.
func (m *Metrics) ObserveReady(ready func() bool) {
	if m == nil {
		return
	}
	m.state.mu.Lock()
	defer m.state.mu.Unlock()
	m.state.ready = ready
}

// stateCollector reports gauges computed at scrape time from functions the
// service and the command register.
type stateCollector struct {
	mu             sync.Mutex
	service        func() ServiceState
	natsUp         func() bool
	natsReconnects func() uint64
	ready          func() bool

	gateClosed, gateReset, rateShare, pace, replicas, inFlight, paused, bound, creds, natsConnected, natsReconnectsDesc, readyDesc *prometheus.Desc
	gateReopen, guardTripped, guardUsed, guardLimit, orderReads                                                                    *prometheus.Desc
	now                                                                                                                            func() time.Time
}

func newStateCollector() *stateCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
	}
	return &stateCollector{
		gateClosed:         d("quota_gate_closed", "1 while the quota gate of the scope is closed after a daily-limit 429 (create: the create action's daily invitations; all: the account's daily limit, holding every action), 0 while open.", "scope"),
		gateReset:          d("quota_gate_reset_seconds", "Seconds until the closed quota gate of the scope reopens at Zoom's reset, counting down; 0 while open. zoomprov_quota_gate_reopen_timestamp_seconds says when.", "scope"),
		rateShare:          d("zoom_rate_share_requests_per_second", "This replica's share of ZOOM_RATE_LIMIT, the account's per-second budget split between live replicas (0: no client-side limit)."),
		pace:               d("zoom_pace_requests_per_second", "This replica's current pace: its share, lowered for a while after a per-second 429."),
		replicas:           d("replicas", "Live replicas sharing the account's per-second budget, as this replica sees them."),
		inFlight:           d("in_flight_requests", "Requests this replica is handling now (fetched and not yet settled)."),
		paused:             d("paused", "1 while an account-level problem (credentials, scope, role) pauses all work, else 0."),
		bound:              d("consumers_bound", "1 while the durable consumer of every action this replica serves is bound and consuming, else 0."),
		creds:              d("zoom_credentials_accepted", "1 while Zoom's token endpoint accepts the app's credentials, 0 when it refused them or they are not verified yet."),
		natsConnected:      d("nats_connected", "1 while the NATS connection is up, else 0."),
		natsReconnectsDesc: d("nats_reconnects_total", "Times this replica's NATS connection was re-established since it started."),
		readyDesc:          d("ready", "1 while /readyz answers 200, else 0."),
		gateReopen:         d("quota_gate_reopen_timestamp_seconds", "Unix time (seconds, to the second) at which the closed quota gate of the scope (create, all) reopens: Zoom's reset, from its Retry-After or else the next 00:00 UTC; 0 while open.", "scope"),
		guardTripped:       d("guard_tripped", "1 while the guard against mass deprovisioning holds every deactivation and deletion until an operator decides (consumer guard release|reject), else 0; 0 when the guard is off."),
		guardUsed:          d("guard_used", "Deactivations and deletions that reached Zoom within the guard's window (GUARD_WINDOW), for the whole account, as this replica last saw it."),
		guardLimit:         d("guard_limit", "GUARD_LIMIT: how many deactivations and deletions may reach Zoom within GUARD_WINDOW before the guard trips; 0 when the guard is off."),
		orderReads:         prometheus.NewDesc(Namespace+"_order_reads_total", "Reads of the request stream this replica made to keep each user's requests in order (its cost; see docs/design.md).", nil, nil),
		now:                time.Now,
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.gateClosed, c.gateReset, c.rateShare, c.pace, c.replicas, c.inFlight, c.paused, c.bound, c.creds, c.natsConnected, c.natsReconnectsDesc, c.readyDesc} {
		ch <- d
	}
	ch <- c.gateReopen
	ch <- c.guardTripped
	ch <- c.guardUsed
	ch <- c.guardLimit
	ch <- c.orderReads
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	service, natsUp, natsReconnects, ready := c.service, c.natsUp, c.natsReconnects, c.ready
	c.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if service != nil {
		st := service()
		scopes := append([]string(nil), GateScopes...)
		for s := range st.GateResets {
			if !slices.Contains(scopes, s) {
				scopes = append(scopes, s)
			}
		}
		for _, s := range scopes {
			left, closed := st.GateResets[s]
			gauge(c.gateClosed, b2f(closed), s)
			gauge(c.gateReset, max(left.Seconds(), 0), s)
			reopen := 0.0
			if closed {
				// ServiceState carries the time left, taken a moment
				// ago: rounded to the second, the reopening time does not
				// drift from scrape to scrape.
				reopen = float64(c.now().Add(left).Round(time.Second).Unix())
			}
			gauge(c.gateReopen, reopen, s)
		}
		gauge(c.rateShare, st.RateShare)
		gauge(c.pace, st.Pace)
		gauge(c.replicas, float64(st.Replicas))
		gauge(c.inFlight, float64(st.InFlight))
		gauge(c.paused, b2f(st.Paused))
		gauge(c.bound, b2f(st.Bound))
		gauge(c.creds, b2f(st.CredentialsAccepted))
		gauge(c.guardTripped, b2f(st.GuardTripped))
		gauge(c.guardUsed, float64(st.GuardUsed))
		gauge(c.guardLimit, float64(st.GuardLimit))
		ch <- prometheus.MustNewConstMetric(c.orderReads, prometheus.CounterValue, float64(st.OrderReads))
	}
	if natsUp != nil {
		gauge(c.natsConnected, b2f(natsUp()))
	}
	if natsReconnects != nil {
		ch <- prometheus.MustNewConstMetric(c.natsReconnectsDesc, prometheus.CounterValue, float64(natsReconnects()))
	}
	if ready != nil {
		gauge(c.readyDesc, b2f(ready()))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
