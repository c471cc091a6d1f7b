package quota

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/zoomprov/consumer/internal/retry"
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
	// kvTimeout bounds one bucket operation: a bucket whose leader is
	// being re-elected must not hold a tick for the API's default 5 s.
	kvTimeout = 1500 * time.Millisecond
	// orphanAfter is how long this replica may go without renewing its own
	// lease before the others may count it gone (leaseTTL, less a tick of
	// margin). Past it, this replica stops calling Zoom until it renews:
	// otherwise the others would take its share while it still used it.
	// Renewals refused because the bucket has no leader at all (an
	// election) do not count: no replica can renew then, and none counts
	// another gone until it has renewed for a whole leaseTTL again.
	orphanAfter = leaseTTL - leaseRefresh
	// A replica that finds others uses its share only once each of them
	// counts it (their leases list it in Sees), and then only after
	// joinWindow more, so no one-second window gets both their old pace
	// and its new one.
	joinWindow = time.Second + 100*time.Millisecond
)

// Backoffs of the bucket's writes and watches after a failure.
var (
	gateWriteBackoff = retry.Schedule{Initial: 200 * time.Millisecond, Max: time.Second}
	watchBackoff     = retry.Schedule{Initial: 250 * time.Millisecond, Max: 5 * time.Second}
)

// lease is a replica's entry in the quota bucket.
type lease struct {
	ID string `json:"id"`
	// Budget is the replica's configured account budget (ZOOM_RATE_LIMIT).
	Budget float64 `json:"budget"`
	// Sees lists the replicas counted in the share it uses now: its
	// acknowledgement that a newcomer may start.
	Sees []string `json:"sees,omitempty"`
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

// Coordinator keeps this replica's pacer and gates in step with the other
// replicas through the quota bucket: it renews this replica's lease,
// follows the others', resizes the share as replicas come and go, and
// shares closed gates.
type Coordinator struct {
	kv        jetstream.KeyValue
	nc        *nats.Conn // for reads from the bucket's leader
	pacer     *Pacer
	gates     *Gates
	replicaID string
	log       zerolog.Logger
	// backlog reports how many requests a scope holds back, for log lines.
	backlog func(ctx context.Context, scope string) uint64
	opened  func(ctx context.Context, scope string)
}

// CoordinatorConfig configures a Coordinator.
type CoordinatorConfig struct {
	// ReplicaID names this replica's lease.
	ReplicaID string
	// Conn, the connection of kv, reads leases from the bucket's stream
	// leader (see readLeader). Required.
	Conn *nats.Conn
	// Log receives a line on every share change, gate change and bucket
	// problem.
	Log zerolog.Logger
	// Backlog, if not nil, reports how many requests of a scope wait, for
	// the gate log lines.
	Backlog func(ctx context.Context, scope string) uint64
	// Opened, if not nil, is called when a closed gate is removed from the
	// bucket before its reset (an operator opened it).
	Opened func(ctx context.Context, scope string)
}

// NewCoordinator returns a Coordinator over the quota bucket kv for pacer
// and its gates.
func NewCoordinator(kv jetstream.KeyValue, pacer *Pacer, cfg CoordinatorConfig) *Coordinator {
	if cfg.Conn == nil {
		panic("quota: NewCoordinator without CoordinatorConfig.Conn")
	}
	c := &Coordinator{kv: kv, nc: cfg.Conn, pacer: pacer, gates: pacer.gates, replicaID: cfg.ReplicaID, log: cfg.Log, backlog: cfg.Backlog, opened: cfg.Opened}
	if c.backlog == nil {
		c.backlog = func(context.Context, string) uint64 { return 0 }
	}
	if pacer.budget > 0 {
		// No call before Run knows who else is there (see followLeases).
		pacer.setPaused(true)
	}
	return c
}

// Run follows the gates, and with a budget the leases, until ctx ends. On a
// clean stop it pauses the pacer and, a join window after the last call,
// removes this replica's lease so its share returns to the others.
func (c *Coordinator) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() { defer close(done); c.followGates(ctx) }()
	if c.pacer.budget > 0 {
		c.followLeases(ctx)
	}
	<-done
}

// CloseGate closes a gate for every replica: locally at once, then in the
// quota bucket. It reports whether the gate was new to this replica.
func (c *Coordinator) CloseGate(ctx context.Context, gt Gate) bool {
	if !c.gates.Set(gt) {
		return false
	}
	var err error
	for try := range 3 {
		kctx, cancel := context.WithTimeout(ctx, kvTimeout)
		err = WriteGate(kctx, c.kv, gt)
		cancel()
		if err == nil || ctx.Err() != nil {
			break
		}
		retry.Sleep(ctx, gateWriteBackoff.Delay(try+1), nil)
	}
	if err != nil {
		c.log.Warn().Err(err).Str("scope", gt.Scope).Msg("could not share the quota gate; other replicas will find the limit themselves")
	}
	return true
}

// WriteGate stores gt in the quota bucket unless the gate stored there
// already lasts as long or longer: two replicas closing one gate at once
// (or one reading an older reset) never shorten it. Every write is a
// compare-and-set on the key's revision.
func WriteGate(ctx context.Context, kv jetstream.KeyValue, gt Gate) error {
	data, err := json.Marshal(gt)
	if err != nil {
		return err
	}
	key := GateKey(gt.Scope)
	for ctx.Err() == nil {
		e, err := kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if _, err = kv.Create(ctx, key, data); err == nil || !errors.Is(err, jetstream.ErrKeyExists) {
				return err
			}
			continue // created meanwhile: compare with it
		case err != nil:
			return err
		}
		var cur Gate
		if json.Unmarshal(e.Value(), &cur) == nil && cur.Scope == gt.Scope && !gt.Until.After(cur.Until) {
			return nil
		}
		if _, err = kv.Update(ctx, key, data, e.Revision()); err == nil || !isRevisionMismatch(err) {
			return err
		}
	}
	return ctx.Err()
}

// purgeLease removes replica id's lease if it is still the one read at
// revision rev: a renewal since then (a replica back from a long pause)
// is kept. It reports whether the lease is gone.
func (c *Coordinator) purgeLease(ctx context.Context, id string, rev uint64) bool {
	pctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	return c.kv.Purge(pctx, replicaKeyPrefix+id, jetstream.LastRevision(rev)) == nil
}

// isRevisionMismatch reports whether a compare-and-set lost to another
// writer.
func isRevisionMismatch(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
}

// followGates keeps the gates in step with the bucket, watching again after
// the watch fails (a leader change of the bucket).
func (c *Coordinator) followGates(ctx context.Context) {
	// opens fires when the earliest closed gate reaches its reset, to say so
	// in the log.
	opens := time.NewTimer(time.Hour)
	defer opens.Stop()
	rearm := func() {
		opens.Stop()
		now := c.gates.now()
		var next time.Time
		for _, gt := range c.gates.All() {
			if gt.Until.After(now) && (next.IsZero() || gt.Until.Before(next)) {
				next = gt.Until
			}
		}
		if !next.IsZero() {
			opens.Reset(next.Sub(now))
		}
	}
	var stops sync.WaitGroup
	defer stops.Wait()
	for failures := 0; ctx.Err() == nil; failures++ {
		w, err := c.kv.Watch(ctx, GateKey("*"))
		if err != nil {
			if ctx.Err() == nil && failures%10 == 0 {
				c.log.Warn().Err(err).Msg("watch quota gates; retrying")
			}
			retry.Sleep(ctx, watchBackoff.Delay(failures+1), nil)
			continue
		}
		failures = 0
		rearm()
		c.watchGates(ctx, w, opens, rearm)
		stopAside(&stops, w)
	}
}

// stopAside stops a watcher without waiting for it: stopping deletes the
// watch's consumer, a request that can take the API's whole time-out in an
// election, and a loop held up that long lets its replica's lease lapse
// while the others take its share.
func stopAside(stops *sync.WaitGroup, w jetstream.KeyWatcher) {
	stops.Go(func() { _ = w.Stop() })
}

func (c *Coordinator) watchGates(ctx context.Context, w jetstream.KeyWatcher, opens *time.Timer, rearm func()) {
	changed := c.gates.Changed()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
			changed = c.gates.Changed()
			rearm()
		case <-opens.C:
			now := c.gates.now()
			for _, gt := range c.gates.All() {
				if !gt.Until.After(now) && now.Sub(gt.Until) < time.Second {
					c.log.Info().Str("scope", gt.Scope).Time("closed_at", gt.ClosedAt).
						Uint64("backlog", c.backlog(ctx, gt.Scope)).Msg("quota reset; quota gate open again")
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
				if gt, closed := c.gates.closedScope(scope); closed && c.gates.Remove(scope) {
					c.log.Info().Str("scope", scope).Time("until", gt.Until).Msg("quota gate opened before its reset")
					if c.opened != nil {
						c.opened(ctx, scope)
					}
				}
				continue
			}
			var gt Gate
			if err := json.Unmarshal(e.Value(), &gt); err != nil || gt.Scope != scope {
				c.log.Warn().Str("key", e.Key()).Msg("ignoring a malformed quota gate entry")
				continue
			}
			if limit := c.gates.now().Add(MaxGateClose); gt.Until.After(limit) {
				// No Zoom limit lasts longer than a day: an entry that says
				// otherwise was written by hand, or by a clock far ahead.
				c.log.Warn().Str("scope", gt.Scope).Time("until", gt.Until).Time("capped_at", limit).
					Msg("quota gate in the bucket closes for longer than any Zoom limit; capping it")
				gt.Until = limit
			}
			if c.gates.Set(gt) && gt.Closed(c.gates.now()) {
				c.log.Info().Str("scope", gt.Scope).Time("until", gt.Until).Str("closed_by", gt.ClosedBy).
					Msg("quota gate closed by another replica")
			}
		}
	}
}

// seenLease is a lease with the server time and the bucket revision of
// its last renewal.
type seenLease struct {
	lease
	at  time.Time
	rev uint64
}

// followLeases keeps this replica's lease fresh and its share in step with
// the live replicas. Lease ages are read on the server's clock (this
// replica's own renewal time against the others'), so clock skew between
// hosts does not matter. A replica only counts another gone after reading
// its stale lease from the bucket itself: when the bucket cannot be read
// (its leader is being elected, or lost) the membership, and so the share,
// stays as it was, and this replica pauses its calls if its own lease goes
// unrenewed for long enough that the others may count it gone.
func (c *Coordinator) followLeases(ctx context.Context) {
	key := replicaKeyPrefix + c.replicaID
	defer func() {
		// A clean stop gives the share back at once, so first no more
		// calls, and the last one's second over: no one-second window may
		// get both this replica's last calls and the others' larger pace.
		last := c.pacer.stopCalls()
		time.Sleep(time.Until(last.Add(joinWindow)))
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = c.kv.Delete(dctx, key)
	}()
	m := &membership{c: c, key: key, seen: map[string]seenLease{}, live: []string{c.replicaID}, renewedAt: time.Now()}
	// Until this replica knows who else is there, it does not call Zoom:
	// the others may already be using the whole budget.
	c.pacer.setPaused(true)
	var joinAt <-chan time.Time
	join := func() {
		if !m.joined && joinAt == nil && m.healthy && m.acknowledged() {
			joinAt = time.After(joinWindow)
		}
	}
	m.renew(ctx)
	tick := time.NewTicker(leaseRefresh)
	defer tick.Stop()
	var w jetstream.KeyWatcher
	var stops sync.WaitGroup
	defer stops.Wait()
	stopWatch := func() {
		if w != nil {
			stopAside(&stops, w)
			w = nil
		}
	}
	defer stopWatch()
	// A watch is made on the side: making one can take the API's whole
	// time-out during an election, and the loop must keep renewing.
	made := make(chan jetstream.KeyWatcher, 1)
	making := false
	defer func() {
		if making {
			if nw := <-made; nw != nil {
				_ = nw.Stop()
			}
		}
	}()
	var retryAfter time.Duration // after a failed try: not too eager
	var watchedSince time.Time
	for ctx.Err() == nil {
		if w == nil && !making {
			making = true
			go func(delay time.Duration) {
				retry.Sleep(ctx, delay, nil)
				nw, err := c.kv.Watch(ctx, replicaKeyPrefix+"*")
				if err != nil {
					nw = nil
				}
				made <- nw
			}(retryAfter)
		}
		var updates <-chan jetstream.KeyValueEntry
		if w != nil {
			updates = w.Updates()
		}
		select {
		case <-ctx.Done():
			return
		case nw := <-made:
			making, w, retryAfter, watchedSince = false, nw, 0, time.Now()
			if w == nil {
				retryAfter = leaseRefresh / 4
			}
		case e, ok := <-updates:
			if !ok {
				w = nil // watch again at the next turn
				continue
			}
			if e == nil { // the initial values are in
				m.resize(ctx)
				if len(m.seen) <= 1 && m.healthy && !m.joined {
					m.joined = true // alone: nobody to wait for
					m.resize(ctx)
				}
				join()
				continue
			}
			if m.observe(e) && m.resize(ctx) {
				// Tell a newcomer at once that it is counted, rather than
				// at the next renewal.
				m.renew(ctx)
			}
			join()
		case <-joinAt:
			joinAt = nil
			if m.acknowledged() { // nobody new came meanwhile
				m.joined = true
			}
			m.resize(ctx)
			join()
		case <-tick.C:
			if w != nil && time.Since(watchedSince) >= leaseRefresh && m.watchBehind() {
				// Our own last renewal never came through the watch, so
				// neither would a newcomer's lease: watch afresh.
				c.log.Info().Msg("the watch of the replica leases fell behind; watching afresh")
				stopWatch()
			}
			m.renew(ctx)
			if m.resize(ctx) {
				m.renew(ctx) // tell a newcomer at once that it is counted
			}
			join()
			c.pacer.recover(time.Now())
		}
	}
}

// membership is followLeases' view of the live replicas.
type membership struct {
	c    *Coordinator
	key  string // this replica's lease
	seen map[string]seenLease
	// live are the replicas counted in the share in use, sorted; they go
	// into this replica's lease as Sees.
	live []string
	// putRev is the revision of this replica's last renewal, and
	// watchedRev the last of its own the watch delivered.
	putRev, watchedRev uint64
	// joinRev is the revision of this replica's first renewal since it
	// (re)joined: only a lease written after it acknowledges the join.
	joinRev uint64
	// selfAt is the server time of this replica's last renewal, zero until
	// one is read back; healthy says the last renewal and read-back
	// worked.
	selfAt  time.Time
	healthy bool
	// renewedAt is the local time of the last successful renewal, or of the
	// last refusal for want of a bucket leader; healthySince is when the
	// renewals started working again.
	renewedAt    time.Time
	healthySince time.Time
	orphaned     bool
	// extended says the bound was extended for want of a bucket leader
	// since the last renewal (see renew).
	extended bool
	// joined says this replica may use its share (see joinWindow). It
	// is lost when the lease lapses: the others may have counted this
	// replica gone and taken its share meanwhile.
	joined bool
}

// observe records a watched lease entry and reports whether it may
// change the replicas counted: a lease gone, or one of a replica not
// counted now.
func (m *membership) observe(e jetstream.KeyValueEntry) bool {
	if e.Key() == m.key {
		m.watchedRev = max(m.watchedRev, e.Revision())
	}
	id := strings.TrimPrefix(e.Key(), replicaKeyPrefix)
	if e.Operation() != jetstream.KeyValuePut {
		// A clean stop deletes its lease: its share returns at once.
		_, known := m.seen[id]
		delete(m.seen, id)
		return known
	}
	var l lease
	if json.Unmarshal(e.Value(), &l) != nil {
		return false
	}
	m.seen[id] = seenLease{lease: l, at: e.Created(), rev: e.Revision()}
	return !slices.Contains(m.live, id)
}

// watchBehind reports whether the watch has not delivered this replica's
// previous renewal, a leaseRefresh after it was written.
func (m *membership) watchBehind() bool { return m.watchedRev < m.putRev }

// acknowledged reports whether every other replica counted in this one's
// share counts this one too, in a lease written since this one (re)joined.
func (m *membership) acknowledged() bool {
	if m.joinRev == 0 {
		return false // not renewed since (re)joining
	}
	for _, id := range m.live {
		if id == m.c.replicaID {
			continue
		}
		sl, ok := m.seen[id]
		switch {
		case !ok, sl.rev <= m.joinRev, !slices.Contains(sl.Sees, m.c.replicaID):
			return false
		}
	}
	return true
}

// renew writes this replica's lease and reads it back for the server's time.
func (m *membership) renew(ctx context.Context) {
	// The bound counts from before the write: the server stamps the lease
	// later than this, so the others cannot count it stale sooner.
	start := time.Now()
	own := lease{ID: m.c.replicaID, Budget: m.c.pacer.budget, Sees: m.live}
	data, _ := json.Marshal(own)
	kctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	rev, err := m.c.kv.Put(kctx, m.key, data)
	var e leaderEntry
	if err == nil {
		m.putRev = rev
		e, err = m.c.readLeader(kctx, m.key)
	}
	if err != nil {
		if ctx.Err() == nil && m.healthy {
			m.c.log.Warn().Err(err).Msg("renew replica lease; keeping the current share until the quota bucket answers")
		}
		if (errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders)) && !m.extended {
			// The bucket has no leader: nobody can renew, so nobody can
			// count this replica gone either. But a replica cut off from
			// the leader alone gets the same answer while the others
			// renew, so the bound is extended once per outage, no more.
			m.extended = true
			m.renewedAt = start
			m.c.pacer.setLeaseUntil(m.renewedAt.Add(orphanAfter))
		}
		m.healthy = false
		return
	}
	if !m.healthy {
		if !m.selfAt.IsZero() {
			m.c.log.Info().Msg("replica lease renewed again")
		}
		m.healthySince = time.Now()
	}
	if time.Since(m.renewedAt) > orphanAfter || m.joinRev == 0 {
		// First renewal, or the lease's bound passed before this renewal
		// came through (the pacer stopped): the others may have counted
		// this replica gone and use its share. Rejoin as a newcomer does,
		// paused before the renewal below lifts the bound.
		if m.joined {
			m.c.log.Info().Msg("replica lease lapsed; waiting until the other replicas count this one again")
			m.joined = false
		}
		m.c.pacer.setPaused(true)
		m.joinRev = rev
	}
	m.healthy, m.selfAt, m.renewedAt, m.extended = true, e.created, start, false
	m.c.pacer.setLeaseUntil(m.renewedAt.Add(orphanAfter))
	m.seen[m.c.replicaID] = seenLease{lease: own, at: m.selfAt, rev: rev}
}

// resize recomputes this replica's share from the live leases and reports
// whether the replicas it counts changed.
func (m *membership) resize(ctx context.Context) bool {
	c := m.c
	if orphaned := time.Since(m.renewedAt) > orphanAfter; orphaned != m.orphaned {
		m.orphaned = orphaned
		if orphaned {
			c.log.Warn().Msg("replica lease not renewed for too long; pausing Zoom calls until it is, so the replicas never exceed the budget")
		}
	}
	// Count others gone only after renewing for a whole leaseTTL: after an
	// outage of the bucket the others need that long to renew too.
	settled := m.healthy && time.Since(m.healthySince) >= leaseTTL
	live := make([]lease, 0, len(m.seen))
	for id, sl := range m.seen {
		if id == c.replicaID || !settled || m.selfAt.Sub(sl.at) < leaseTTL {
			live = append(live, sl.lease)
			continue
		}
		// It looks gone: confirm from the bucket before giving its share
		// away (the watch may simply have fallen behind).
		kctx, cancel := context.WithTimeout(ctx, kvTimeout)
		e, err := c.readLeader(kctx, replicaKeyPrefix+id)
		cancel()
		if err == nil && m.selfAt.Sub(e.created) >= leaseTTL && slices.Contains(m.live, id) {
			c.log.Info().Str("replica", id).Dur("lease_age", m.selfAt.Sub(e.created)).Msg("replica lease stale; counting that replica gone")
		}
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			delete(m.seen, id)
		case err != nil:
			live = append(live, sl.lease) // cannot tell: keep it
		case m.selfAt.Sub(e.created) < leaseTTL:
			fresh := seenLease{lease: sl.lease, at: e.created, rev: e.seq}
			var l lease
			if json.Unmarshal(e.value, &l) == nil {
				fresh.lease = l // what it lists now
			}
			m.seen[id] = fresh
			live = append(live, fresh.lease)
		case m.selfAt.Sub(e.created) > staleLeasePurge:
			c.log.Debug().Str("replica", id).Msg("purging a dead replica's lease")
			if c.purgeLease(ctx, id, e.seq) {
				delete(m.seen, id)
			}
		}
	}
	if _, ok := m.seen[c.replicaID]; !ok {
		live = append(live, lease{ID: c.replicaID, Budget: c.pacer.budget})
	}
	ids := make([]string, len(live))
	for i, l := range live {
		ids[i] = l.ID
	}
	slices.Sort(ids)
	changed := !slices.Equal(ids, m.live)
	m.live = ids
	for _, sh := range shares(live) {
		if sh.ID != c.replicaID {
			continue
		}
		c.pacer.setPaused(m.orphaned || !m.joined)
		if c.pacer.setShare(sh.Share, len(live)) {
			c.log.Info().Float64("share_per_second", sh.Share).Int("replicas", len(live)).
				Float64("account_budget", c.pacer.budget).Msg("zoom request budget shared")
		}
	}
	return changed
}
