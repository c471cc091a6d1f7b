package provision

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/messages"
)

// GateScopeAll is the scope of a gate that holds every action: a daily
// limit hit by an action other than create belongs to the whole account's
// budget, not to the create quota.
const GateScopeAll = "all"

// Gate is a closed quota gate, shared by every replica through the quota
// bucket under the key "gate.<scope>". While it is closed no replica sends
// requests of its scope to Zoom.
type Gate struct {
	// Scope is an action ("create") or GateScopeAll.
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

// gates is this replica's view of the shared quota gates: what it learnt
// itself and what the bucket told it.
type gates struct {
	mu      sync.Mutex
	byScope map[string]Gate
	changed chan struct{} // closed and replaced on every change
}

func (g *gates) set(gt Gate) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.byScope == nil {
		g.byScope = map[string]Gate{}
	}
	if cur, ok := g.byScope[gt.Scope]; ok && !gt.Until.After(cur.Until) {
		return false // already closed at least that long
	}
	g.byScope[gt.Scope] = gt
	g.notifyLocked()
	return true
}

func (g *gates) remove(scope string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.byScope[scope]; ok {
		delete(g.byScope, scope)
		g.notifyLocked()
	}
}

func (g *gates) notifyLocked() {
	if g.changed != nil {
		close(g.changed)
		g.changed = nil
	}
}

// closed returns the gate that holds action at now, if any (the one that
// lasts longest when both its own and the account-wide gate are closed).
func (g *gates) closed(action string, now time.Time) (Gate, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var best Gate
	found := false
	for _, scope := range []string{action, GateScopeAll} {
		if gt, ok := g.byScope[scope]; ok && now.Before(gt.Until) && (!found || gt.Until.After(best.Until)) {
			best, found = gt, true
		}
	}
	return best, found
}

// subscribe returns a channel closed at the next change.
func (g *gates) subscribe() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.changed == nil {
		g.changed = make(chan struct{})
	}
	return g.changed
}

// all returns every gate known, open or closed.
func (g *gates) all() []Gate {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Gate, 0, len(g.byScope))
	for _, gt := range g.byScope {
		out = append(out, gt)
	}
	return out
}

// wait blocks while action's gate is closed, until it opens, changes, or
// ctx is done.
func (g *gates) wait(ctx context.Context, action string, now func() time.Time) {
	for {
		gt, ok := g.closed(action, now())
		if !ok {
			return
		}
		g.mu.Lock()
		if g.changed == nil {
			g.changed = make(chan struct{})
		}
		changed := g.changed
		g.mu.Unlock()
		t := time.NewTimer(gt.Until.Sub(now()))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-changed:
			t.Stop()
		case <-t.C:
		}
	}
}

// gateScope is the scope a daily-limit 429 on action closes.
func gateScope(action string) string {
	if action == string(messages.ActionCreate) {
		return action
	}
	return GateScopeAll
}

// closeGate closes a gate for every replica: locally at once, then in the
// quota bucket, and, where the server supports it (2.11+), by pausing the
// durable consumers of the scope until the reset so the backlog stays in
// the stream instead of holding ack-pending slots.
func (s *Service) closeGate(ctx context.Context, gt Gate) {
	if !s.gates.set(gt) {
		return
	}
	s.log.Warn().Str("scope", gt.Scope).Time("until", gt.Until).Str("reason", maskEmails(gt.Reason)).
		Uint64("backlog", s.backlog(ctx, gt.Scope)).Msg("daily quota exhausted; quota gate closed until the reset")
	if data, err := json.Marshal(gt); err == nil {
		if _, err := s.quotaKV.Put(ctx, GateKey(gt.Scope), data); err != nil {
			s.log.Warn().Err(err).Msg("could not share the quota gate; other replicas will find the limit themselves")
		}
	}
	s.pauseScope(ctx, gt)
}

// pauseScope pauses the consumers of a gate's scope until the reset. On
// servers without the pause API (before 2.11) the gate alone gives the same
// observable behaviour: nothing of that scope is fetched or sent to Zoom.
func (s *Service) pauseScope(ctx context.Context, gt Gate) {
	if !s.canPause() {
		return
	}
	for _, a := range s.cfg.Actions {
		if gt.Scope != GateScopeAll && gt.Scope != string(a) {
			continue
		}
		// The server pauses by its own clock: convert the reset into "that
		// long from now".
		until := time.Now().Add(gt.Until.Sub(s.now()))
		_, err := s.js.PauseConsumer(ctx, s.topo.RequestStream, s.topo.ConsumerName(a), until)
		if err != nil {
			s.log.Debug().Err(err).Str("consumer", s.topo.ConsumerName(a)).Msg("pause consumer not available; relying on the quota gate")
		}
	}
}

// backlog is how many requests of a gate's scope wait: in the stream or
// delivered and not yet settled (deferred). It is for log lines; an error
// reads as zero.
func (s *Service) backlog(ctx context.Context, scope string) uint64 {
	var n uint64
	for _, a := range s.cfg.Actions {
		if scope != GateScopeAll && scope != string(a) {
			continue
		}
		c, err := s.js.Consumer(ctx, s.topo.RequestStream, s.topo.ConsumerName(a))
		if err != nil {
			continue
		}
		info, err := c.Info(ctx)
		if err != nil {
			continue
		}
		n += info.NumPending + uint64(info.NumAckPending)
	}
	return n
}

// canPause reports whether consumers may be paused: configured so, and
// the server is 2.11 or newer.
func (s *Service) canPause() bool {
	if s.cfg.NoPause {
		return false
	}
	return serverAtLeast(s.js.Conn().ConnectedServerVersion(), 2, 11, 0)
}

// serverAtLeast compares a "major.minor.patch[-pre]" server version with
// major.minor.patch; an unreadable version counts as old.
func serverAtLeast(version string, major, minor, patch int) bool {
	parts := strings.SplitN(strings.TrimPrefix(version, "v"), ".", 3)
	if len(parts) < 2 {
		return false
	}
	num := func(s string) (int, bool) {
		n, err := strconv.Atoi(strings.SplitN(s, "-", 2)[0])
		return n, err == nil
	}
	ma, ok1 := num(parts[0])
	mi, ok2 := num(parts[1])
	pa := 0
	ok3 := true
	if len(parts) == 3 {
		pa, ok3 = num(parts[2])
	}
	if !ok1 || !ok2 || !ok3 {
		return false
	}
	if ma != major {
		return ma > major
	}
	if mi != minor {
		return mi > minor
	}
	return pa >= patch
}

// watchGates keeps this replica's view of the gates in step with the
// quota bucket until ctx ends.
func (s *Service) watchGates(ctx context.Context) {
	w, err := s.quotaKV.Watch(ctx, "gate.*")
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn().Err(err).Msg("watch quota gates")
		}
		return
	}
	defer w.Stop()
	// opens fires when the earliest closed gate reaches its reset, to say so
	// in the log.
	opens := time.NewTimer(time.Hour)
	defer opens.Stop()
	rearm := func() {
		opens.Stop()
		now := s.now()
		var next time.Time
		for _, gt := range s.gates.all() {
			if gt.Until.After(now) && (next.IsZero() || gt.Until.Before(next)) {
				next = gt.Until
			}
		}
		if !next.IsZero() {
			opens.Reset(next.Sub(now))
		}
	}
	rearm()
	changed := s.gates.subscribe()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
			changed = s.gates.subscribe()
			rearm()
		case <-opens.C:
			now := s.now()
			for _, gt := range s.gates.all() {
				if !gt.Until.After(now) && now.Sub(gt.Until) < time.Second {
					s.log.Info().Str("scope", gt.Scope).Time("closed_at", gt.ClosedAt).
						Uint64("backlog", s.backlog(ctx, gt.Scope)).Msg("quota reset; quota gate open again")
				}
			}
			rearm()
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil { // initial values delivered
				continue
			}
			scope := strings.TrimPrefix(e.Key(), "gate.")
			if e.Operation() != jetstream.KeyValuePut {
				s.gates.remove(scope)
				continue
			}
			var gt Gate
			if err := json.Unmarshal(e.Value(), &gt); err != nil || gt.Scope != scope {
				s.log.Warn().Str("key", e.Key()).Msg("ignoring a malformed quota gate entry")
				continue
			}
			if s.gates.set(gt) && s.now().Before(gt.Until) {
				s.log.Info().Str("scope", gt.Scope).Time("until", gt.Until).Str("closed_by", gt.ClosedBy).
					Msg("quota gate closed by another replica")
			}
		}
	}
}

// QuotaStatus is what `consumer quota` prints.
type QuotaStatus struct {
	// Gates are the gates in the quota bucket (open ones included, with
	// their last reset time).
	Gates []Gate `json:"gates"`
	// Replicas are the live replicas and their share of the account's
	// per-second budget.
	Replicas []ReplicaShare `json:"replicas"`
	// Backlog is, per action, how many requests wait in the stream and how
	// many are delivered but not yet settled (e.g. deferred).
	Backlog []Backlog `json:"backlog"`
}

// Backlog is one action's queue.
type Backlog struct {
	Action     string `json:"action"`
	Pending    uint64 `json:"pending"`
	AckPending int    `json:"ack_pending"`
	Paused     bool   `json:"paused"`
}

// ReadQuota reads the shared quota state: gates, replicas and backlog.
func ReadQuota(ctx context.Context, js jetstream.JetStream, t Topology, actions []messages.Action, now time.Time) (QuotaStatus, error) {
	var st QuotaStatus
	kv, err := js.KeyValue(ctx, t.QuotaBucket)
	if err != nil {
		return st, err
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return st, err
	}
	var leases []lease
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				continue
			}
			return st, err
		}
		switch {
		case strings.HasPrefix(k, "gate."):
			var gt Gate
			if json.Unmarshal(e.Value(), &gt) == nil {
				st.Gates = append(st.Gates, gt)
			}
		case strings.HasPrefix(k, replicaKeyPrefix):
			var l lease
			if json.Unmarshal(e.Value(), &l) == nil && now.Sub(e.Created()) < leaseTTL {
				leases = append(leases, l)
			}
		}
	}
	st.Replicas = shares(leases)
	for _, a := range actions {
		c, err := js.Consumer(ctx, t.RequestStream, t.ConsumerName(a))
		if err != nil {
			return st, err
		}
		info, err := c.Info(ctx)
		if err != nil {
			return st, err
		}
		st.Backlog = append(st.Backlog, Backlog{Action: string(a), Pending: info.NumPending, AckPending: info.NumAckPending, Paused: info.Paused})
	}
	return st, nil
}
