// Package quota decides when this replica may call Zoom: it paces calls at
// the replica's share of the account's per-second budget (shared with the
// other replicas through replica leases in a key-value bucket), keeps the
// daily-quota gates every replica shares, and holds all work while the
// account itself has a problem.
package quota

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/retry"

	"github.com/zoomprov/consumer/internal/messages"
)

// ScopeAll is the scope of a gate that holds every action: a daily limit
// hit by an action other than create belongs to the whole account's
// budget, not to the create quota.
const ScopeAll = "all"

// Gate is a closed quota gate, shared by every replica through the quota
// bucket under the key "gate.<scope>". While it is closed no replica sends
// requests of its scope to Zoom.
type Gate struct {
	// Scope is an action ("create") or ScopeAll.
	Scope string `json:"scope"`
	// Until is when the quota resets (Zoom's Retry-After, or the next
	// 00:00 UTC).
	Until time.Time `json:"until"`
	// Reason is Zoom's message that closed the gate.
	Reason string `json:"reason"`
	// ClosedAt and ClosedBy say when and by which replica.
	ClosedAt time.Time `json:"closed_at"`
	ClosedBy string    `json:"closed_by"`
}

// GateKey is the quota bucket key of scope's gate.
func GateKey(scope string) string { return "gate." + scope }

// ScopeOf is the scope a daily-limit 429 on action closes: only create has
// a daily quota of its own.
func ScopeOf(action string) string {
	if action == string(messages.ActionCreate) {
		return action
	}
	return ScopeAll
}

// Covers reports whether the gate, while closed, holds back requests of action:
// its own scope's, or every action's for ScopeAll.
func (g Gate) Covers(action string) bool { return g.Scope == ScopeAll || g.Scope == action }

// Closed reports whether the gate is still closed at now.
func (g Gate) Closed(now time.Time) bool { return now.Before(g.Until) }

// GateClosedError is returned by Pacer.Wait when the call's quota gate is
// closed.
type GateClosedError struct{ Gate Gate }

func (e *GateClosedError) Error() string {
	return "quota: gate " + e.Gate.Scope + " closed until " + e.Gate.Until.UTC().Format(time.RFC3339)
}

// broadcast wakes every waiter at the next change: a channel closed and
// replaced on each change. The zero value is ready to use; the owner's
// mutex guards it.
type broadcast struct{ ch chan struct{} }

// wait returns the channel the next change closes.
func (b *broadcast) wait() <-chan struct{} {
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

// notify wakes every waiter.
func (b *broadcast) notify() {
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}

// Gates is this replica's view of the shared quota gates: what it learnt
// itself and what the bucket told it. It is safe for concurrent use.
type Gates struct {
	now func() time.Time

	mu      sync.Mutex
	byScope map[string]Gate
	changed broadcast
}

// NewGates returns an empty set of gates on the clock now (nil: time.Now).
func NewGates(now func() time.Time) *Gates {
	if now == nil {
		now = time.Now
	}
	return &Gates{now: now, byScope: map[string]Gate{}}
}

// Set records a closed gate. It reports whether that changed anything: a
// gate already closed at least that long is kept.
func (g *Gates) Set(gt Gate) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if cur, ok := g.byScope[gt.Scope]; ok && !gt.Until.After(cur.Until) {
		return false
	}
	g.byScope[gt.Scope] = gt
	g.changed.notify()
	return true
}

// Remove forgets scope's gate (an operator deleted it from the bucket). It
// reports whether there was one.
func (g *Gates) Remove(scope string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.byScope[scope]; ok {
		delete(g.byScope, scope)
		g.changed.notify()
		return true
	}
	return false
}

// closedScope returns scope's gate when it is closed now.
func (g *Gates) closedScope(scope string) (Gate, bool) {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	gt, ok := g.byScope[scope]
	return gt, ok && gt.Closed(now)
}

// MaxGateClose bounds how long any gate closes: no Zoom limit lasts longer
// than a day.
const MaxGateClose = 25 * time.Hour

// ErrGateOpen is returned by OpenGate when the gate is not closed.
var ErrGateOpen = errors.New("quota: the gate is open")

// OpenGate opens scope's gate before its reset, for every replica: it
// removes the gate from the quota bucket (only the entry read: a gate
// closed again meanwhile stays), and each replica then resumes the
// consumers the gate paused. It returns the gate it opened, or
// ErrGateOpen.
func OpenGate(ctx context.Context, kv jetstream.KeyValue, scope string, now time.Time) (Gate, error) {
	e, err := kv.Get(ctx, GateKey(scope))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Gate{}, ErrGateOpen
	}
	if err != nil {
		return Gate{}, err
	}
	var gt Gate
	if err := json.Unmarshal(e.Value(), &gt); err != nil || !gt.Closed(now) {
		return gt, ErrGateOpen
	}
	if err := kv.Delete(ctx, GateKey(scope), jetstream.LastRevision(e.Revision())); err != nil {
		return gt, fmt.Errorf("quota: open gate %s: %w", scope, err)
	}
	return gt, nil
}

// Closed returns the closed gate that holds action now, if any: the one
// that lasts longest when both its own and the account-wide gate are
// closed.
func (g *Gates) Closed(action string) (Gate, bool) {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	var best Gate
	found := false
	for _, gt := range g.byScope {
		if gt.Covers(action) && gt.Closed(now) && (!found || gt.Until.After(best.Until)) {
			best, found = gt, true
		}
	}
	return best, found
}

// All returns every gate known, open or closed.
func (g *Gates) All() []Gate {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Gate, 0, len(g.byScope))
	for _, gt := range g.byScope {
		out = append(out, gt)
	}
	return out
}

// Changed returns a channel closed at the next change.
func (g *Gates) Changed() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.changed.wait()
}

// Wait blocks while a gate holds action, until it opens, changes, or ctx
// is done.
func (g *Gates) Wait(ctx context.Context, action string) {
	for ctx.Err() == nil {
		changed := g.Changed()
		gt, ok := g.Closed(action)
		if !ok {
			return
		}
		retry.Sleep(ctx, gt.Until.Sub(g.now()), changed)
	}
}
