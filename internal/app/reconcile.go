package app

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/zoomprov/consumer/internal/metrics"
	"github.com/zoomprov/consumer/internal/quota"
	"github.com/zoomprov/consumer/internal/reconcile"
	"github.com/zoomprov/consumer/internal/zoom"
)

// startReconcile starts the periodic reconciliation when cfg asks for it
// (RECONCILE_INTERVAL): one replica at a time lists Zoom's users, paced by
// this replica's pacer (its share of ZOOM_RATE_LIMIT), and reports the
// drift; every replica's zoomprov_drift_users says what the last scan
// found. It runs until ctx ends; the returned func waits for that.
func startReconcile(ctx context.Context, cfg Config, js jetstream.JetStream, zc *zoom.Client, pacer *quota.Pacer, m *metrics.Metrics, log zerolog.Logger) (wait func()) {
	if cfg.ReconcileInterval <= 0 {
		return func() {}
	}
	p := reconcile.NewPeriodic(js, reconcile.PeriodicConfig{
		Topology: cfg.Topology(), Interval: cfg.ReconcileInterval, Apply: cfg.ReconcileApply,
		Zoom: zc, Limiter: pacer, SlowDown: pacer.SlowDown, Logger: log,
		Observe: func(s reconcile.Summary) {
			counts := make(map[string]int, len(s.Counts))
			for k, n := range s.Counts {
				counts[string(k)] = n
			}
			m.SetDrift(counts, s.Finished)
		},
	})
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	return func() { <-done }
}
