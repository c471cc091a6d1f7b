package metrics

import (
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zoomprov/consumer/internal/messages"
)

// actionLabels are the actions and lifecycle operations, the known values
// of every "action" label (Other stands for the rest).
var actionLabels = func() []string {
	var out []string
	for _, a := range messages.Actions {
		out = append(out, string(a))
	}
	for _, o := range messages.Operations {
		out = append(out, string(o))
	}
	return out
}()

// HandlingBuckets are the buckets of zoomprov_request_handling_duration_seconds,
// from 10 ms (a request handled as it arrives) to a day (one that waited
// for Zoom's daily quota to reset).
var HandlingBuckets = []float64{
	0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
	300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600,
}

// handledMetrics are the metrics of requests reaching their terminal
// outcome.
type handledMetrics struct {
	duration map[string]prometheus.Observer // action
	last     map[string]*lastHandled        // action
}

// lastHandled is a gauge that only moves forward: a slow worker finishing
// an early request must not move the time of the last one back.
type lastHandled struct {
	mu sync.Mutex
	g  prometheus.Gauge
	v  float64
}

func (l *lastHandled) set(t time.Time) {
	v := unixSeconds(t)
	l.mu.Lock()
	defer l.mu.Unlock()
	if v > l.v {
		l.v = v
		l.g.Set(v)
	}
}

func newHandledMetrics(reg prometheus.Registerer, start time.Time) *handledMetrics {
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "request_handling_duration_seconds",
		Help:    "Seconds from the request stream storing a request to its terminal outcome (created, exists, updated, deactivated, activated, deleted or failed) being settled, by action: waiting in the stream, for an earlier request about the same user and for quota included.",
		Buckets: HandlingBuckets,
	}, []string{"action"})
	last := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "last_handled_timestamp_seconds",
		Help: "Unix time (seconds) at which this replica last settled a request of the action with a terminal outcome (created, exists, updated, deactivated, activated, deleted or failed); the replica's start until it has.",
	}, []string{"action"})
	reg.MustRegister(duration, last)
	h := &handledMetrics{duration: map[string]prometheus.Observer{}, last: map[string]*lastHandled{}}
	for _, a := range append(actionLabels, Other) {
		h.duration[a] = duration.WithLabelValues(a)
		h.last[a] = &lastHandled{g: last.WithLabelValues(a)}
		h.last[a].set(start)
	}
	return h
}

// Handled records a request of action settled with outcome at now, which
// the request stream stored at stored: for a terminal outcome it moves
// zoomprov_last_handled_timestamp_seconds{action} to now and observes
// now - stored in zoomprov_request_handling_duration_seconds; other
// outcomes (deferred, retry, ...) record nothing. Call it once per
// settled delivery, with the message's stored time.
func (m *Metrics) Handled(action, outcome string, stored, now time.Time) {
	if m == nil || !messages.Outcome(outcome).Terminal() {
		return
	}
	pick(m.handled.last, action).set(now)
	if !stored.IsZero() {
		pick(m.handled.duration, action).Observe(max(now.Sub(stored).Seconds(), 0))
	}
}

// SetVersion sets the version label of zoomprov_build_info (the build's
// version, e.g. from -ldflags; "unknown" until set).
func (m *Metrics) SetVersion(version string) {
	if m == nil {
		return
	}
	m.build.mu.Lock()
	defer m.build.mu.Unlock()
	m.build.version = version
}

// buildCollector reports zoomprov_build_info.
type buildCollector struct {
	desc                   *prometheus.Desc
	goVersion, natsVersion string

	mu      sync.Mutex
	version string
}

func newBuildCollector() *buildCollector {
	c := &buildCollector{
		desc: prometheus.NewDesc(Namespace+"_build_info",
			"Always 1; the labels name the build: version (the service's, from its build), goversion (the Go toolchain it was built with), natsgo (the nats.go client module's version).",
			[]string{"version", "goversion", "natsgo"}, nil),
		goVersion: runtime.Version(), natsVersion: "unknown", version: "unknown",
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/nats-io/nats.go" {
				c.natsVersion = d.Version
			}
		}
	}
	return c
}

func (c *buildCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *buildCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	v := c.version
	c.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1, v, c.goVersion, c.natsVersion)
}

// unixSeconds is t as Unix seconds with millisecond precision, 0 for the
// zero time.
func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixMilli()) / 1000
}
