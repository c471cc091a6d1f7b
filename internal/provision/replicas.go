package provision

import (
	"context"
	"encoding/json"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"
)

// Replica leases: every replica writes "replica.<id>" in the quota bucket
// every leaseRefresh; a lease older than leaseTTL belongs to a replica that
// is gone, and its share of the budget returns to the others.
const (
	replicaKeyPrefix = "replica."
	leaseRefresh     = 2 * time.Second
	leaseTTL         = 3 * leaseRefresh
	// staleLeasePurge is when any replica removes a dead replica's lease, so
	// the bucket does not grow with every restart.
	staleLeasePurge = time.Minute
)

// Adaptive slow-down after a per-second 429: another app on the account is
// drawing from the same budget, so this replica slows to three quarters of
// its pace (down to a quarter at most), then recovers a tenth of its share
// every leaseRefresh once no 429 came for slowDownHold.
const (
	slowDownFactor = 0.75
	minPaceFactor  = 0.25
	recoverStep    = 0.1
	slowDownHold   = 3 * time.Second
)

// lease is a replica's entry in the quota bucket.
type lease struct {
	ID string `json:"id"`
	// Budget is the replica's configured account budget (ZOOM_RATE_LIMIT).
	Budget float64 `json:"budget"`
}

// ReplicaShare is one live replica's part of the account's per-second
// budget.
type ReplicaShare struct {
	ID    string  `json:"id"`
	Share float64 `json:"share"`
}

// shares splits the budget among the live replicas. When the budget is a
// whole number at least as large as the replica count, every replica gets a
// whole number of requests per second (the first ones in id order one more),
// so the shares add up to the budget in every one-second window, not just
// on average: 20/s over three replicas is 7, 7 and 6, never 6.67 each
// (which can put 7+7+7 = 21 requests into one window).
func shares(leases []lease) []ReplicaShare {
	if len(leases) == 0 {
		return nil
	}
	sort.Slice(leases, func(i, j int) bool { return leases[i].ID < leases[j].ID })
	budget := leases[0].Budget
	for _, l := range leases[1:] {
		budget = math.Min(budget, l.Budget) // disagreeing settings: the safe one wins
	}
	n := float64(len(leases))
	out := make([]ReplicaShare, len(leases))
	whole := budget == math.Trunc(budget) && budget >= n
	base := math.Floor(budget / n)
	extra := int(budget) % len(leases)
	for i, l := range leases {
		share := budget / n
		if whole {
			share = base
			if i < extra {
				share++
			}
		}
		out[i] = ReplicaShare{ID: l.ID, Share: share}
	}
	return out
}

// Pacer paces this replica's calls to Zoom. It is the zoom.Limiter the Zoom
// client waits on before every call: it spaces calls evenly at this
// replica's share of the account's per-second budget (resized as replicas
// come and go, and slowed down after a per-second 429), and it refuses a
// create call whose quota gate is closed, so a request that waited for its
// turn does not then spend a call on a quota known to be exhausted.
type Pacer struct {
	limiter *rate.Limiter // nil: no client-side pacing
	// turn lets one caller at a time reserve the next slot. Without it
	// every waiting worker would reserve a slot at the current rate, and
	// a smaller share (a replica joined) or a slow-down would only take
	// effect after all of those reservations had been spent.
	turn   chan struct{}
	budget float64
	now    func() time.Time
	gates  gates

	mu       sync.Mutex
	share    float64
	replicas int
	factor   float64
	lastSlow time.Time
}

// NewPacer returns a Pacer for an account budget of budget requests per
// second; zero means no client-side pacing (quota gates still apply).
func NewPacer(budget float64) *Pacer {
	p := &Pacer{budget: budget, share: budget, replicas: 1, factor: 1, now: time.Now, turn: make(chan struct{}, 1)}
	if budget > 0 {
		// Burst 1: calls are spaced evenly, never more than the limit in
		// any one-second window.
		p.limiter = rate.NewLimiter(rate.Limit(budget), 1)
	}
	return p
}

// GateClosedError is returned by Pacer.Wait when the call's quota gate is
// closed.
type GateClosedError struct{ Gate Gate }

func (e *GateClosedError) Error() string {
	return "provision: quota gate " + e.Gate.Scope + " closed until " + e.Gate.Until.UTC().Format(time.RFC3339)
}

type gateActionKey struct{}

// withGate marks ctx as carrying a call of action, subject to its gate.
func withGate(ctx context.Context, action string) context.Context {
	return context.WithValue(ctx, gateActionKey{}, action)
}

// Wait blocks until this replica may make its next Zoom call, then checks
// the quota gate of the call's action (see withGate).
func (p *Pacer) Wait(ctx context.Context) error {
	if p.limiter != nil {
		select {
		case p.turn <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		err := p.limiter.Wait(ctx)
		<-p.turn
		if err != nil {
			return err
		}
	}
	if action, ok := ctx.Value(gateActionKey{}).(string); ok {
		if gt, closed := p.gates.closed(action, p.now()); closed {
			return &GateClosedError{Gate: gt}
		}
	}
	return nil
}

func (p *Pacer) applyLocked() {
	if p.limiter != nil {
		p.limiter.SetLimit(rate.Limit(math.Max(p.share*p.factor, 0.01)))
	}
}

// setShare records a new membership.
func (p *Pacer) setShare(share float64, replicas int) (changed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	changed = share != p.share || replicas != p.replicas
	p.share, p.replicas = share, replicas
	p.applyLocked()
	return changed
}

// slowDown reacts to a per-second 429.
func (p *Pacer) slowDown(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.Sub(p.lastSlow) < time.Second {
		return // one 429 burst, one step
	}
	p.lastSlow = now
	p.factor = math.Max(minPaceFactor, p.factor*slowDownFactor)
	p.applyLocked()
}

// recover raises the pace again after a quiet period.
func (p *Pacer) recover(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.factor < 1 && now.Sub(p.lastSlow) >= slowDownHold {
		p.factor = math.Min(1, p.factor+recoverStep)
		p.applyLocked()
	}
}

// current returns the share, the live replica count and the pace now.
func (p *Pacer) current() (share float64, replicas int, pace float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.share, p.replicas, p.share * p.factor
}

// coordinate keeps this replica's lease fresh, follows the other replicas'
// leases, and resizes the pace when replicas come and go. On a clean stop it
// removes its lease so its share returns to the others at once.
func (s *Service) coordinate(ctx context.Context) {
	key := replicaKeyPrefix + s.replicaID
	data, _ := json.Marshal(lease{ID: s.replicaID, Budget: s.pacer.budget})
	put := func() {
		if _, err := s.quotaKV.Put(ctx, key, data); err != nil && ctx.Err() == nil {
			s.log.Warn().Err(err).Msg("renew replica lease")
		}
	}
	put()
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = s.quotaKV.Delete(dctx, key)
	}()

	w, err := s.quotaKV.Watch(ctx, replicaKeyPrefix+"*")
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn().Err(err).Msg("watch replica leases; pacing alone at the full budget")
		}
		return
	}
	defer w.Stop()
	seen := map[string]seenLease{}
	tick := time.NewTicker(leaseRefresh)
	defer tick.Stop()
	s.resize(ctx, seen)
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				s.resize(ctx, seen)
				continue
			}
			id := strings.TrimPrefix(e.Key(), replicaKeyPrefix)
			if e.Operation() != jetstream.KeyValuePut {
				delete(seen, id)
				s.resize(ctx, seen)
				continue
			}
			var l lease
			if json.Unmarshal(e.Value(), &l) != nil {
				continue
			}
			_, known := seen[id]
			seen[id] = seenLease{lease: l, at: e.Created()}
			if !known {
				s.resize(ctx, seen)
			}
		case <-tick.C:
			put()
			s.resize(ctx, seen)
			s.pacer.recover(time.Now())
		}
	}
}

type seenLease struct {
	lease
	at time.Time
}

// resize recomputes this replica's share from the live leases.
func (s *Service) resize(ctx context.Context, seen map[string]seenLease) {
	now := time.Now() // lease times are the server's clock, not the service's

	live := make([]lease, 0, len(seen))
	for id, sl := range seen {
		age := now.Sub(sl.at)
		switch {
		case age < leaseTTL || id == s.replicaID:
			live = append(live, sl.lease)
		case age > staleLeasePurge:
			_ = s.quotaKV.Purge(ctx, replicaKeyPrefix+id)
			delete(seen, id)
		}
	}
	if _, ok := seen[s.replicaID]; !ok {
		live = append(live, lease{ID: s.replicaID, Budget: s.pacer.budget})
	}
	for _, sh := range shares(live) {
		if sh.ID == s.replicaID {
			if s.pacer.setShare(sh.Share, len(live)) {
				s.log.Info().Float64("share_per_second", sh.Share).Int("replicas", len(live)).
					Float64("account_budget", s.pacer.budget).Msg("zoom request budget shared")
			}
		}
	}
}
