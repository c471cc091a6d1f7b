package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/audit"
	"github.com/zoomprov/consumer/internal/guard"
	"github.com/zoomprov/consumer/internal/leader"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/retry"
)

// announceEvery is how often a replica looks for destructive requests
// stored while the guard is tripped, to record that each is held.
const announceEvery = 5 * time.Second

// guardView is this replica's view of the guard, which followGuard keeps
// in step with the quota bucket.
type guardView struct {
	mu      sync.Mutex
	state   guard.State
	rev     uint64        // the bucket revision of state
	changed chan struct{} // closed and replaced at each change
}

func newGuardView() *guardView { return &guardView{changed: make(chan struct{})} }

func (g *guardView) get() guard.State {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.state
}

// set records st, read at revision rev, unless the view holds a later
// one, and reports whether the guard was tripped before.
func (g *guardView) set(st guard.State, rev uint64) (wasTripped bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	wasTripped = g.state.Tripped
	if rev != 0 && rev < g.rev {
		return wasTripped
	}
	g.state, g.rev = st, rev
	close(g.changed)
	g.changed = make(chan struct{})
	return wasTripped
}

// wait blocks while the guard is tripped, until ctx ends.
func (g *guardView) wait(ctx context.Context) {
	for ctx.Err() == nil {
		g.mu.Lock()
		tripped, changed := g.state.Tripped, g.changed
		g.mu.Unlock()
		if !tripped {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
		}
	}
}

// guarded reports whether the guard watches d: a destructive operation,
// with the guard on.
func (s *Service) guarded(d *delivery) bool {
	return s.cfg.GuardLimit > 0 && guard.Destructive(d.op)
}

// guardCheck is what the guard says of d before its call: rejected by an
// operator (a dead letter), held while tripped, or on its way (approved
// says an operator released it, so it takes no slot).
func (s *Service) guardCheck(d *delivery) (a attempt, approved, ok bool) {
	st := s.guard.get()
	switch v, approved := st.Check(s.stream().incarnation, d.seq); v {
	case guard.Rejected:
		detail := "rejected by an operator while the guard against mass deprovisioning held it"
		if dec := st.Decision; dec != nil {
			detail = fmt.Sprintf("rejected by %s at %s while the guard against mass deprovisioning held it: %s",
				dec.Actor, dec.At.UTC().Format(time.RFC3339), dec.Reason)
		}
		return attempt{kind: retry.Rejected, reason: messages.ReasonGuardRejected, detail: detail,
			err: errors.New("provision: rejected by an operator (guard)")}, false, false
	case guard.Held:
		return heldAttempt(st), false, false
	default:
		return attempt{}, approved, true
	}
}

func heldAttempt(st guard.State) attempt {
	return attempt{kind: retry.Held, reason: messages.ReasonGuard,
		err: errors.New("provision: held by the guard against mass deprovisioning"),
		detail: fmt.Sprintf("held by the guard against mass deprovisioning (more than %d deactivations and deletions in %v) until an operator releases or rejects the held requests",
			st.Limit, st.Window)}
}

// guardTake asks the guard, right before d's call, for the whole
// account: a slot in the window (or none needed: an operator approved
// it), held (the window is full, or the guard tripped), or rejected.
// Every replica shares the window, so the limit holds whoever calls.
func (s *Service) guardTake(ctx context.Context, d *delivery) (attempt, bool) {
	kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), kvTimeout)
	defer cancel()
	v, tripped, st, rev, err := guard.Store{KV: s.quotaKV}.Take(kctx, s.cfg.GuardLimit, s.cfg.GuardWindow, s.now(), s.cfg.ReplicaID,
		s.stream().incarnation, d.seq)
	if err != nil {
		return attempt{kind: retry.Blocked, err: err, detail: "the guard against mass deprovisioning could not be read"}, false
	}
	s.applyGuard(kctx, st, rev)
	if tripped {
		s.tripped(ctx, d, st)
	}
	switch v {
	case guard.Held:
		return heldAttempt(st), false
	case guard.Rejected:
		a, _, _ := s.guardCheck(d)
		return a, false
	}
	return attempt{}, true
}

// tripped records that d tripped the guard: one warning line and an
// audit event.
func (s *Service) tripped(ctx context.Context, d *delivery, st guard.State) {
	used := st.Used(st.TrippedAt)
	d.log.Warn().Int("guard_limit", st.Limit).Dur("guard_window", st.Window).Int("guard_used", used).
		Msg("guard against mass deprovisioning tripped: deactivations and deletions wait for an operator (consumer guard status)")
	_, err := audit.Publish(ctx, s.js, s.topo, audit.Event{Kind: "guard", Verb: "tripped", Subject: d.requestID,
		Actor: "zoom-provisioner/" + s.cfg.ReplicaID, Reason: fmt.Sprintf("more than %d deactivations and deletions in %v", st.Limit, st.Window),
		Data: map[string]any{"limit": st.Limit, "window": st.Window.String(), "used": used, "up_to_sequence": d.seq,
			"requests": s.heldCount(ctx)}}, s.now())
	if err != nil {
		d.log.Warn().Err(err).Msg("could not record the guard's trip")
	}
}

// heldCount is how many destructive requests wait (guard.Waiting).
func (s *Service) heldCount(ctx context.Context) int { return guard.Waiting(ctx, s.js, s.topo) }

// followGuard keeps the replica's view of the guard in step with the
// quota bucket until ctx ends: on a trip it pauses the destructive
// consumers and records that each waiting request is held; on a decision
// it resumes them.
func (s *Service) followGuard(ctx context.Context) {
	announce := time.NewTicker(announceEvery)
	defer announce.Stop()
	cursors := map[string]uint64{}
	for failures := 0; ctx.Err() == nil; {
		w, err := s.quotaKV.Watch(ctx, guard.Key)
		if err != nil {
			failures++
			retry.Sleep(ctx, fetchBackoff.Delay(failures), nil)
			continue
		}
		failures = 0
		s.watchGuard(ctx, w, announce.C, cursors)
		go func() { _ = w.Stop() }() // on the side: see quota's stopAside
	}
}

func (s *Service) watchGuard(ctx context.Context, w jetstream.KeyWatcher, announce <-chan time.Time, cursors map[string]uint64) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-announce:
			if s.guard.get().Tripped {
				s.announceHeld(ctx, cursors)
			}
			s.alignGuardPause(ctx)
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				// The stored state is in. Found open (or never written),
				// the guard may have been decided while no replica
				// watched, its consumers still paused: resume them.
				// Found tripped: pause them, if none did.
				s.alignGuardPause(ctx)
				continue
			}
			var st guard.State
			if e.Operation() == jetstream.KeyValuePut && json.Unmarshal(e.Value(), &st) != nil {
				s.log.Warn().Str("key", e.Key()).Msg("ignoring a malformed guard entry")
				continue
			}
			switch tripped, opened := s.applyGuard(ctx, st, e.Revision()); {
			case tripped:
				s.announceHeld(ctx, cursors)
			case opened:
				if d := s.guard.get().Decision; d != nil {
					s.log.Info().Str("decision", d.Verb).Str("actor", d.Actor).Str("reason", d.Reason).Uint64("up_to_sequence", d.UpTo).
						Msg("guard against mass deprovisioning opened by an operator")
				}
			}
		}
	}
}

// applyGuard records st, read at revision rev, in this replica's view,
// and acts on a change the view makes: tripped, the destructive consumers
// pause; opened, they resume. Whichever learns of the change first (the
// watch, or a delivery's own take) acts.
func (s *Service) applyGuard(ctx context.Context, st guard.State, rev uint64) (tripped, opened bool) {
	was := s.guard.set(st, rev)
	now := s.guard.get()
	tripped, opened = now.Tripped && !was, !now.Tripped && was
	if tripped || opened {
		s.alignGuardPause(ctx)
	}
	return tripped, opened
}

// guardPause is how long a trip pauses the destructive consumers: until
// a decision resumes them, with no deadline of its own. A consumer paused
// at least half that long is taken to be paused by the guard (a quota
// gate pauses until a reset, at most a day away).
const guardPause = 365 * 24 * time.Hour

// alignGuardPause brings the destructive consumers' pause in line with
// the guard, where the server supports it: paused while it is tripped, so
// that held requests wait in the stream, off every ack-pending slot (their
// dispatchers stop fetching anyway); resumed when it is open, unless a
// quota gate holds them. It runs on each change a replica sees, and every
// announceEvery besides: a pause or resume can be lost (it failed while
// the server restarted or the connection was down, or another replica's
// stale one landed last), and a consumer left paused by the guard while
// it is open would hold its requests for a year.
func (s *Service) alignGuardPause(ctx context.Context) {
	if !s.canPause() {
		return
	}
	tripped := s.guard.get().Tripped
	for _, a := range guard.Actions {
		if !slices.Contains(s.cfg.Actions, a) {
			continue
		}
		c, err := s.js.Consumer(ctx, s.topo.RequestStream, s.topo.ConsumerName(a)) // reads its info
		if err != nil {
			continue
		}
		info := c.CachedInfo()
		byGuard := info.Paused && info.PauseRemaining > guardPause/2
		switch {
		case tripped && !byGuard:
			_, err = s.js.PauseConsumer(ctx, s.topo.RequestStream, s.topo.ConsumerName(a), time.Now().Add(guardPause))
		case !tripped && byGuard:
			if _, closed := s.gates.Closed(a); closed {
				continue
			}
			_, err = s.js.ResumeConsumer(ctx, s.topo.RequestStream, s.topo.ConsumerName(a))
			if err == nil {
				s.log.Info().Str("consumer", s.topo.ConsumerName(a)).Msg("consumer resumed: the guard is open")
			}
		default:
			continue
		}
		if err != nil {
			s.log.Debug().Err(err).Str("consumer", s.topo.ConsumerName(a)).Bool("pause", tripped).Msg("could not bring the consumer's pause in line with the guard")
		}
	}
}

// announceHeld records a held event for each destructive request stored
// since the last look (originals and parked copies), so that every held
// request has one even though its consumer is paused. Every replica may
// do it: the events are de-duplicated by their id.
func (s *Service) announceHeld(ctx context.Context, cursors map[string]uint64) {
	st := s.guard.get()
	inc := s.stream().incarnation
	for _, a := range guard.Actions {
		for _, subj := range []string{s.topo.RequestSubject(a), s.topo.ParkedSubject(a)} {
			for ctx.Err() == nil {
				rctx, cancel := context.WithTimeout(ctx, kvTimeout)
				m, err := leader.Get(rctx, s.js.Conn(), s.topo.RequestStream, leader.Query{Seq: cursors[subj] + 1, NextBySubject: subj})
				cancel()
				if err != nil {
					break // none left, or no answer: the next look goes on
				}
				cursors[subj] = m.Seq
				pos, id := m.Seq, s.topo.RequestID(m.Header.Get(jetstream.MsgIDHeader), inc, m.Seq)
				if subj != s.topo.RequestSubject(a) {
					if p, err := strconv.ParseUint(m.Header.Get(messages.HeaderPosition), 10, 64); err == nil {
						pos, id = p, m.Header.Get(messages.HeaderParkedRequestID)
					}
				}
				// A request that took its slot before the trip is still
				// stored while its call is under way: it is not held.
				if v, _ := st.Check(inc, pos); v != guard.Held || st.TookSlot(inc, pos) {
					continue
				}
				h := heldAttempt(st)
				res := messages.Result{RequestID: id, Action: a, Email: messages.BestEffortEmail(m.Data), Outcome: messages.OutcomeHeld,
					Reason: messages.ReasonGuard, ZoomMessage: h.detail, StreamSequence: pos}
				if err := s.publishResult(ctx, res); err != nil {
					s.log.Warn().Err(err).Msg("could not record a held request")
					return
				}
			}
		}
	}
}
