package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DriftKinds are the values of the "kind" label of zoomprov_drift_users:
// the four kinds of drift reconciliation finds, and the users Zoom has
// that the service never managed.
var DriftKinds = []string{"missing", "status", "present", "fields", "unmanaged"}

// driftMetrics are reconciliation's gauges. They have no series until the
// first report: a replica that runs no reconciliation says nothing about
// drift.
type driftMetrics struct {
	mu       sync.Mutex
	users    *prometheus.GaugeVec
	finished prometheus.Gauge
	reported bool
}

// newDriftMetrics returns the gauges, not yet registered (SetDrift does
// at the first report).
func newDriftMetrics() *driftMetrics {
	return &driftMetrics{
		users: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "drift_users",
			Help: "Users whose state in Zoom differs from what the per-user ledger says the service last applied, by kind (missing, status, present, fields), and users in Zoom the service never managed (unmanaged), as the last periodic reconciliation (RECONCILE_INTERVAL) found them; every replica that runs it reports the same last scan, so aggregate with max.",
		}, []string{"kind"}),
		finished: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "drift_scan_timestamp_seconds",
			Help: "Unix time at which the last periodic reconciliation that zoomprov_drift_users reports finished.",
		}),
	}
}

// SetDrift sets zoomprov_drift_users to counts, by kind (DriftKinds; a kind
// missing from counts is 0, others are ignored), as found by the scan that
// finished at finished.
func (m *Metrics) SetDrift(counts map[string]int, finished time.Time) {
	if m == nil {
		return
	}
	d := m.drift
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.reported {
		m.reg.MustRegister(d.users, d.finished)
		d.reported = true
	}
	for _, k := range DriftKinds {
		d.users.WithLabelValues(k).Set(float64(counts[k]))
	}
	d.finished.Set(float64(finished.UnixMilli()) / 1000)
}
