package quota

import (
	"context"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/zoomprov/consumer/internal/zoom"
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

// Pacer paces this replica's calls to Zoom. It is the zoom.Limiter the Zoom
// client waits on before every call: it spaces calls evenly at this
// replica's share of the account's per-second budget (resized as replicas
// come and go, and slowed down after a per-second 429), and it refuses a
// call whose quota gate is closed, so a request that waited for its turn
// does not then spend a call on a quota known to be exhausted. It is safe
// for concurrent use.
type Pacer struct {
	limiter *rate.Limiter // nil: no client-side pacing
	// turn lets one caller at a time reserve the next slot. Without it
	// every waiting worker would reserve a slot at the current rate, and
	// a smaller share (a replica joined) or a slow-down would only take
	// effect after all of those reservations had been spent.
	turn   chan struct{}
	budget float64
	gates  *Gates

	mu       sync.Mutex
	share    float64
	replicas int
	factor   float64
	lastSlow time.Time
	// paused stops every call until resumed; so does passing leaseUntil
	// (when set), the moment the others may count this replica gone
	// unless it renews its lease first (see orphanAfter). The bound holds
	// even if the coordinator's loop is stuck.
	paused     bool
	leaseUntil time.Time
	resumed    broadcast
	// lastCall is when Wait last let a call go.
	lastCall time.Time
}

var _ zoom.Limiter = (*Pacer)(nil)

// NewPacer returns a Pacer for an account budget of budget requests per
// second (zero: no client-side pacing; the gates still apply) that
// enforces gates.
func NewPacer(budget float64, gates *Gates) *Pacer {
	p := &Pacer{budget: budget, share: budget, replicas: 1, factor: 1, gates: gates, turn: make(chan struct{}, 1)}
	if budget > 0 {
		// Burst 1: calls are spaced evenly, never more than the limit in
		// any one-second window.
		p.limiter = rate.NewLimiter(rate.Limit(budget), 1)
	}
	return p
}

// Budget is the account's per-second budget the Pacer was made with.
func (p *Pacer) Budget() float64 { return p.budget }

// Wait blocks until this replica may make its next Zoom call, then checks
// the quota gate of the call's action: *GateClosedError if it is closed.
// Whether this replica may call at all (not paused, its lease's bound not
// passed) is checked again once its place in the pacing comes: the wait
// for it can outlast the bound, and the others may then already count
// this replica gone.
func (p *Pacer) Wait(ctx context.Context, call zoom.Call) error {
	for {
		if err := p.waitResumed(ctx); err != nil {
			return err
		}
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
		p.mu.Lock()
		now := time.Now()
		paused := p.pausedLocked(now)
		if !paused {
			p.lastCall = now
		}
		p.mu.Unlock()
		if !paused {
			break
		}
	}
	if gt, closed := p.gates.Closed(call.Action); closed {
		return &GateClosedError{Gate: gt}
	}
	return nil
}

// waitResumed blocks while this replica's calls are paused.
func (p *Pacer) waitResumed(ctx context.Context) error {
	for {
		p.mu.Lock()
		paused, resumed := p.pausedLocked(time.Now()), p.resumed.wait()
		p.mu.Unlock()
		if !paused {
			return nil
		}
		select {
		case <-resumed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// paceMargin keeps a replica under its share: calls leave evenly spaced,
// but each may leave up to the owned-check's slack after its slot (10 ms,
// provision.ownedSlack) and reach Zoom some milliseconds later again on a
// loaded machine, and a share of n must never become n+1 calls in one of
// Zoom's seconds. 1% (10 ms a second) did not cover both: a failover test
// saw 41 calls of one replica in 992 ms at a share of 40.
const paceMargin = 0.03

func (p *Pacer) applyLocked() {
	if p.limiter != nil {
		p.limiter.SetLimit(rate.Limit(math.Max(p.share*p.factor*(1-paceMargin), 0.01)))
	}
}

// setShare records a new membership and reports whether it changed.
func (p *Pacer) setShare(share float64, replicas int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	changed := share != p.share || replicas != p.replicas
	p.share, p.replicas = share, replicas
	p.applyLocked()
	return changed
}

func (p *Pacer) pausedLocked(now time.Time) bool {
	return p.paused || (!p.leaseUntil.IsZero() && now.After(p.leaseUntil))
}

// setLeaseUntil bounds this replica's calls to before until: its lease
// was renewed, and holds until then.
func (p *Pacer) setLeaseUntil(until time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.leaseUntil = until
	p.resumed.notify()
}

// stopCalls pauses every call and returns when Wait last let one go.
func (p *Pacer) stopCalls() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.paused {
		p.paused = true
		p.resumed.notify()
	}
	return p.lastCall
}

// setPaused stops or resumes every call.
func (p *Pacer) setPaused(paused bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused != paused {
		p.paused = paused
		p.resumed.notify()
	}
}

// SlowDown reacts to a per-second 429 answered at now.
func (p *Pacer) SlowDown(now time.Time) {
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

// Current returns this replica's share, the live replica count, and the
// pace now (lower than the share for a while after a per-second 429, zero
// while paused), per second.
func (p *Pacer) Current() (share float64, replicas int, pace float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pausedLocked(time.Now()) {
		return p.share, p.replicas, 0
	}
	return p.share, p.replicas, p.share * p.factor
}

// Gates returns the gates the Pacer enforces.
func (p *Pacer) Gates() *Gates { return p.gates }
