package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/zoomprov/consumer/internal/audit"
	"github.com/zoomprov/consumer/internal/ledger"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/internal/zoom"
)

// LeaseKey is the key of the quota bucket that says which replica scans
// now, when the last scan started and finished, and what it found: one
// replica at a time scans, chosen by compare-and-set on this key.
const LeaseKey = "reconcile.leader"

// The drift report event: on <result prefix>.drift, of type
// zoom.user.provisioning.drift.report (audit.Type), with ReportEntries of
// each list at most.
const (
	EventKind     = "drift"
	EventVerb     = "report"
	ReportEntries = 100
)

// Summary is what a scan found, in figures: the drift report's counts,
// and what every replica reports in its gauges.
type Summary struct {
	Scanned  int `json:"scanned"`
	Managed  int `json:"managed"`
	InSync   int `json:"in_sync"`
	Calls    int `json:"zoom_calls"`
	Restarts int `json:"listing_restarts,omitempty"`
	// Counts are the users of each kind of drift and the unmanaged ones
	// (GaugeKinds).
	Counts   map[Kind]int `json:"counts"`
	Started  time.Time    `json:"started_at"`
	Finished time.Time    `json:"finished_at"`
}

// Summarize returns rep's figures.
func Summarize(rep Report) Summary {
	s := Summary{Scanned: rep.Scanned, Managed: rep.Managed, InSync: rep.InSync, Calls: rep.Calls, Restarts: rep.Restarts,
		Counts: map[Kind]int{}, Started: rep.Started.UTC(), Finished: rep.Finished.UTC()}
	for _, k := range GaugeKinds {
		s.Counts[k] = rep.Counts[k]
	}
	return s
}

// leaseState is the value of LeaseKey.
type leaseState struct {
	// Holder is the replica scanning now; empty between scans. It renews
	// the entry every LeaseTTL/3 while it scans.
	Holder  string    `json:"holder,omitempty"`
	Renewed time.Time `json:"renewed_at,omitzero"`
	// Started is when the current scan (or the last one) started, on its
	// holder's clock: the next is due an Interval later.
	Started time.Time `json:"started_at,omitzero"`
	// Last is the last scan that finished; LastError why the last one
	// that did not finish failed, if it came after.
	Last      *Summary `json:"last,omitempty"`
	LastError string   `json:"last_error,omitempty"`
}

// PeriodicConfig configures Periodic. Topology, Interval and Zoom are
// required; zero values of the others mean the documented defaults.
type PeriodicConfig struct {
	Topology topology.Topology
	// Interval is how often a scan starts, on whichever replica.
	Interval time.Duration
	// Apply publishes the corrective requests of the drift each scan finds
	// (RECONCILE_APPLY).
	Apply bool
	// ReplicaID names this replica as the lease's holder and in the report
	// event's actor; empty means NewReplicaID("").
	ReplicaID string
	// Zoom lists the users; Limiter paces each page (this replica's
	// Pacer: the scan's calls come out of its share of ZOOM_RATE_LIMIT);
	// SlowDown is told of per-second 429s.
	Zoom     Lister
	Limiter  zoom.Limiter
	SlowDown func(time.Time)
	// Logger gets a line per scan and per problem.
	Logger zerolog.Logger
	// Observe, if not nil, is called with the last finished scan's summary
	// each time this replica reads the lease (every Tick), whoever ran it,
	// so that every replica's gauges say the same.
	Observe func(Summary)
	// LeaseTTL is how long a holder's entry may go unrenewed, on the clock
	// of the replica that reads it, before another replica may take over;
	// zero means 30 s.
	LeaseTTL time.Duration
	// Tick is how often this replica reads the lease; zero means a quarter
	// of Interval, at most LeaseTTL/3, at least 100 ms.
	Tick time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Periodic runs a scan every Interval on one replica at a time, publishes
// each scan's drift report, and (with Apply) its corrective requests.
type Periodic struct {
	js  jetstream.JetStream
	cfg PeriodicConfig
	log zerolog.Logger

	// seenRev and seenAt: the lease's revision this replica read last, and
	// when it first read it (its own clock): a holder whose revision stays
	// the same for LeaseTTL is gone.
	seenRev uint64
	seenAt  time.Time
}

// NewPeriodic returns a Periodic on js for cfg.
func NewPeriodic(js jetstream.JetStream, cfg PeriodicConfig) *Periodic {
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 30 * time.Second
	}
	if cfg.Tick <= 0 {
		cfg.Tick = max(min(cfg.Interval/4, cfg.LeaseTTL/3), 100*time.Millisecond)
	}
	if cfg.ReplicaID == "" {
		cfg.ReplicaID = NewReplicaID("")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Periodic{js: js, cfg: cfg, log: cfg.Logger.With().Str("component", "reconcile").Logger()}
}

// bucketTimeout bounds one operation on the quota bucket.
const bucketTimeout = 5 * time.Second

// Run reads the lease every Tick and, when a scan is due and no live
// replica holds the lease, takes it and scans, until ctx is done. A scan
// under way when ctx ends stops, and its lease is given back so that
// another replica takes the scan up at once.
func (p *Periodic) Run(ctx context.Context) {
	t := time.NewTicker(p.cfg.Tick)
	defer t.Stop()
	var kv jetstream.KeyValue
	for {
		if kv == nil {
			kctx, cancel := context.WithTimeout(ctx, bucketTimeout)
			kv, _ = p.js.KeyValue(kctx, p.cfg.Topology.QuotaBucket)
			cancel()
		}
		if kv != nil {
			p.step(ctx, kv)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// step reads the lease once and scans if this replica may.
func (p *Periodic) step(ctx context.Context, kv jetstream.KeyValue) {
	kctx, cancel := context.WithTimeout(ctx, bucketTimeout)
	e, err := kv.Get(kctx, LeaseKey)
	cancel()
	var st leaseState
	var rev uint64
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		if ctx.Err() == nil {
			p.log.Debug().Err(err).Msg("read the reconciliation lease")
		}
		return
	default:
		rev = e.Revision()
		if json.Unmarshal(e.Value(), &st) != nil {
			st = leaseState{} // written by hand: overwritten by the next scan
		}
	}
	if st.Last != nil && p.cfg.Observe != nil {
		p.cfg.Observe(*st.Last)
	}
	now := p.cfg.Now()
	if rev != p.seenRev {
		p.seenRev, p.seenAt = rev, now
	}
	if st.Holder != "" && now.Sub(p.seenAt) < p.cfg.LeaseTTL {
		return // a live replica scans
	}
	if !st.Started.IsZero() && now.Before(st.Started.Add(p.cfg.Interval)) {
		return // not due
	}
	if st.Holder != "" {
		p.log.Info().Str("holder", st.Holder).Msg("the replica holding the reconciliation lease stopped renewing it; taking over")
	}
	prev := st.Started
	st.Holder, st.Renewed, st.Started = p.cfg.ReplicaID, now, now
	rev, err = p.write(ctx, kv, st, rev)
	if err != nil {
		return // another replica took it first, or the bucket failed
	}
	p.seenRev, p.seenAt = rev, now
	p.scan(ctx, kv, st, rev, prev)
}

// write stores st under LeaseKey if its revision is still rev (0: if there
// is none), and returns the new revision.
func (p *Periodic) write(ctx context.Context, kv jetstream.KeyValue, st leaseState, rev uint64) (uint64, error) {
	data, err := json.Marshal(st)
	if err != nil {
		return 0, err
	}
	kctx, cancel := context.WithTimeout(ctx, bucketTimeout)
	defer cancel()
	if rev == 0 {
		return kv.Create(kctx, LeaseKey, data)
	}
	return kv.Update(kctx, LeaseKey, data, rev)
}

// scan runs one scan holding the lease (renewed while it runs), publishes
// its report and corrections, and gives the lease back with what it
// found. prev is the last scan's start, restored when this one is
// interrupted by shutdown so that another replica starts it at once.
func (p *Periodic) scan(ctx context.Context, kv jetstream.KeyValue, st leaseState, rev uint64, prev time.Time) {
	sctx, cancel := context.WithCancel(ctx)
	var mu sync.Mutex
	cur := rev
	lost := false
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		t := time.NewTicker(p.cfg.LeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
			mu.Lock()
			st.Renewed = p.cfg.Now()
			r, err := p.write(sctx, kv, st, cur)
			switch {
			case err == nil:
				cur = r
			case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
				// Another replica counted this one gone and took over:
				// stop, so that two scans never run at once for long.
				lost = true
				cancel()
			}
			mu.Unlock()
		}
	}()

	l, err := ledger.Open(sctx, p.js, p.cfg.Topology)
	var rep Report
	if err == nil {
		keep := ReportEntries
		if p.cfg.Apply {
			keep = 0 // every drift is corrected; the event still holds the first ReportEntries
		}
		rep, err = Scan(sctx, Config{Zoom: p.cfg.Zoom, Ledger: l, Limiter: p.cfg.Limiter, SlowDown: p.cfg.SlowDown,
			KeepDrift: keep, KeepUnmanaged: ReportEntries, Now: p.cfg.Now})
	}
	cancel()
	<-renewed
	if lost {
		p.log.Warn().Msg("lost the reconciliation lease during a scan; the scan stopped")
		return
	}

	// The rest runs even while shutting down: it is short, and the lease
	// must be given back.
	wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*bucketTimeout)
	defer wcancel()
	st.Holder, st.Renewed = "", p.cfg.Now()
	switch {
	case err != nil && ctx.Err() != nil:
		st.Started = prev // interrupted: due again at once, for another replica
	case err != nil:
		st.LastError = err.Error()
		p.log.Warn().Err(err).Msg("reconciliation scan failed; the next starts after the interval")
	default:
		sum := Summarize(rep)
		st.Last, st.LastError = &sum, ""
		p.report(wctx, rep, sum)
	}
	if _, err := p.write(wctx, kv, st, cur); err != nil {
		p.log.Warn().Err(err).Msg("give the reconciliation lease back; the other replicas take it once it is stale")
	}
	if st.Last != nil && p.cfg.Observe != nil {
		p.cfg.Observe(*st.Last)
	}
}

// report publishes the drift report of a finished scan (and its
// corrections, with Apply), and logs it.
func (p *Periodic) report(ctx context.Context, rep Report, sum Summary) {
	data := map[string]any{
		"scanned": sum.Scanned, "managed": sum.Managed, "in_sync": sum.InSync, "counts": sum.Counts,
		"zoom_calls": sum.Calls, "started_at": sum.Started, "finished_at": sum.Finished,
		"interval": p.cfg.Interval.String(), "applied": p.cfg.Apply,
		"drift": first(rep.Drift, ReportEntries), "unmanaged": first(rep.Unmanaged, ReportEntries),
		"truncated": len(rep.Drift) > ReportEntries || sum.Counts[KindUnmanaged] > len(rep.Unmanaged) || kept(rep) > len(rep.Drift),
	}
	ev := p.log.Info().Int("scanned", sum.Scanned).Int("managed", sum.Managed).Int("in_sync", sum.InSync).
		Int("drift", len(rep.Drift)).Int("unmanaged", sum.Counts[KindUnmanaged]).Int("zoom_calls", sum.Calls).
		Dur("took", sum.Finished.Sub(sum.Started))
	if p.cfg.Apply {
		runID := NewRunID(p.cfg.Now())
		cs, skipped := Plan(p.cfg.Topology, runID, rep.Drift)
		ids, err := Publish(ctx, p.js, p.cfg.Topology, cs)
		if ids == nil {
			ids = []string{}
		}
		if skipped == nil {
			skipped = []Skipped{}
		}
		data["run"], data["published"], data["skipped"] = runID, ids, first(skipped, ReportEntries)
		if err != nil {
			p.log.Warn().Err(err).Int("published", len(ids)).Int("corrections", len(cs)).Msg("publish the corrective requests")
			data["publish_error"] = err.Error()
		}
		ev = ev.Int("published", len(ids)).Int("skipped", len(skipped))
	}
	ev.Msg("reconciliation scan finished")
	if _, err := audit.Publish(ctx, p.js, p.cfg.Topology, audit.Event{
		Kind: EventKind, Verb: EventVerb, Subject: p.cfg.ReplicaID,
		Actor:  "zoom-provisioner/" + p.cfg.ReplicaID,
		Reason: "periodic reconciliation (RECONCILE_INTERVAL=" + p.cfg.Interval.String() + ")",
		Data:   data,
	}, p.cfg.Now()); err != nil {
		p.log.Warn().Err(err).Msg("publish the drift report")
	}
}

// kept is how many drift entries the counts hold (a user may have two).
func kept(rep Report) int {
	n := 0
	for _, k := range Kinds {
		n += rep.Counts[k]
	}
	return n
}

// first returns at most n elements of xs, never nil.
func first[T any](xs []T, n int) []T {
	if len(xs) > n {
		xs = xs[:n]
	}
	if xs == nil {
		return []T{}
	}
	return xs
}

// String describes a summary in one line, for logs and tests.
func (s Summary) String() string {
	return fmt.Sprintf("scanned %d, managed %d, in sync %d, counts %v", s.Scanned, s.Managed, s.InSync, s.Counts)
}
