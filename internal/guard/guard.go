// Package guard holds destructive operations (deactivate, delete) back
// when more of them reach Zoom than an account should ever see in a
// while: the day an HR feed goes wrong, it would otherwise deactivate or
// delete the whole company within minutes. Every replica shares one
// budget, GUARD_LIMIT calls in a sliding GUARD_WINDOW, kept in the quota
// bucket under the key "guard" and changed only by compare-and-set, so
// replicas racing for the last slot never exceed it. A destructive request
// that finds the window full trips the guard: no destructive call reaches
// Zoom until an operator releases the held requests or rejects them.
package guard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/audit"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/topology"
)

// Key is the guard's key in the quota bucket.
const Key = "guard"

// MaxLimit bounds GUARD_LIMIT: the window keeps one timestamp per call.
const MaxLimit = 10000

// Destructive reports whether op is one the guard counts.
func Destructive(op messages.Operation) bool {
	return op == messages.OpDeactivate || op == messages.OpDelete
}

// Destructive actions, as their consumers are named.
var Actions = []string{string(messages.OpDeactivate), string(messages.OpDelete)}

// State is the guard as the quota bucket keeps it.
type State struct {
	// Limit and Window are the settings of the replica that wrote last.
	Limit  int           `json:"limit"`
	Window time.Duration `json:"window"`
	// Calls are the destructive calls in the current window (Unix
	// milliseconds, ascending): each was a slot taken before its call.
	Calls []int64 `json:"calls"`
	// Took names the request that took each slot of Calls, in the same
	// order ("<incarnation>:<stream position>"), so that one still under
	// way when the guard trips is not announced as held. Empty in a state
	// written before it existed.
	Took []string `json:"took,omitempty"`
	// Tripped is set from the trip until an operator decides.
	Tripped   bool      `json:"tripped"`
	TrippedAt time.Time `json:"tripped_at,omitzero"`
	TrippedBy string    `json:"tripped_by,omitempty"`
	// Incarnation is the request stream's (see topology.Incarnation) to
	// which ApprovedUpTo and RejectedUpTo refer.
	Incarnation string `json:"incarnation,omitempty"`
	// ApprovedUpTo: destructive requests stored at or below this stream
	// position proceed without taking a slot (a release). RejectedUpTo:
	// they are dead-lettered without a call (a rejection).
	ApprovedUpTo uint64 `json:"approved_up_to,omitempty"`
	RejectedUpTo uint64 `json:"rejected_up_to,omitempty"`
	// Decision is the last operator decision, for status.
	Decision *Decision `json:"decision,omitempty"`
}

// Decision is an operator's release or rejection.
type Decision struct {
	Verb   string    `json:"verb"` // "released" or "rejected"
	Actor  string    `json:"actor"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
	UpTo   uint64    `json:"up_to_sequence"`
}

// prune drops the calls older than the window before now.
func (s *State) prune(now time.Time) {
	cut := now.Add(-s.Window).UnixMilli()
	i := sort.Search(len(s.Calls), func(i int) bool { return s.Calls[i] > cut })
	if len(s.Took) == len(s.Calls) {
		s.Took = s.Took[i:]
	} else {
		s.Took = nil
	}
	s.Calls = s.Calls[i:]
}

// Used is how many destructive calls the window before now holds.
func (s State) Used(now time.Time) int {
	s.Calls = append([]int64(nil), s.Calls...)
	s.prune(now)
	return len(s.Calls)
}

// take takes a slot at now for a destructive call: it reports whether
// the call may go; if not, the guard is tripped (or was).
func (s *State) take(now time.Time, replica, slot string) bool {
	if s.Tripped {
		return false
	}
	s.prune(now)
	if s.Limit > 0 && len(s.Calls) >= s.Limit {
		s.Tripped, s.TrippedAt, s.TrippedBy = true, now, replica
		return false
	}
	if len(s.Took) != len(s.Calls) {
		s.Took = make([]string, len(s.Calls)) // unknown, from an older state
	}
	s.Calls = append(s.Calls, now.UnixMilli())
	s.Took = append(s.Took, slot)
	return true
}

// slotName names the request at pos in the request stream's incarnation
// in Took.
func slotName(incarnation string, pos uint64) string {
	return incarnation + ":" + strconv.FormatUint(pos, 10)
}

// TookSlot reports whether the request at pos in the request stream's
// incarnation took one of the window's slots: it went on before the trip,
// and is not held even while it is still stored.
func (s State) TookSlot(incarnation string, pos uint64) bool {
	return slices.Contains(s.Took, slotName(incarnation, pos))
}

// Verdict is what the guard says of one destructive request.
type Verdict int

// The verdicts.
const (
	// Go: the call may be made (a slot is taken, or the request was
	// approved).
	Go Verdict = iota
	// Held: the guard is tripped; the request waits for a decision.
	Held
	// Rejected: an operator rejected it; it is dead-lettered.
	Rejected
)

// Check says what the guard decided about a destructive request stored at
// pos of incarnation, without taking a slot: Rejected or approved (Go
// with approved set), or Held while tripped.
func (s State) Check(incarnation string, pos uint64) (v Verdict, approved bool) {
	if s.Incarnation == incarnation && incarnation != "" {
		// The decision with the lower bound came first (positions only
		// grow): it covers what it reaches; the later one the rest.
		rejectFirst := s.RejectedUpTo <= s.ApprovedUpTo
		switch {
		case rejectFirst && pos <= s.RejectedUpTo, !rejectFirst && pos > s.ApprovedUpTo && pos <= s.RejectedUpTo:
			return Rejected, false
		case pos <= s.ApprovedUpTo:
			return Go, true
		}
	}
	if s.Tripped {
		return Held, false
	}
	return Go, false
}

// Store reads and changes the guard in the quota bucket.
type Store struct {
	KV jetstream.KeyValue
}

// Read returns the guard's state and its revision (0: never written).
func (st Store) Read(ctx context.Context) (State, uint64, error) {
	e, err := st.KV.Get(ctx, Key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return State{}, 0, nil
	}
	if err != nil {
		return State{}, 0, fmt.Errorf("guard: read: %w", err)
	}
	var s State
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return State{}, 0, fmt.Errorf("guard: read: %w", err)
	}
	return s, e.Revision(), nil
}

// update applies change to the stored state with compare-and-set,
// reading again after losing to another writer. change returns false to
// write nothing.
func (st Store) update(ctx context.Context, change func(*State) bool) (State, uint64, error) {
	for {
		s, rev, err := st.Read(ctx)
		if err != nil {
			return s, rev, err
		}
		if !change(&s) {
			return s, rev, nil
		}
		data, err := json.Marshal(s)
		if err != nil {
			return s, rev, err
		}
		var next uint64
		if rev == 0 {
			next, err = st.KV.Create(ctx, Key, data)
		} else {
			next, err = st.KV.Update(ctx, Key, data, rev)
		}
		switch {
		case err == nil:
			return s, next, nil
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyExists):
			if ctx.Err() != nil {
				return s, rev, ctx.Err()
			}
			continue // another replica changed it: read again
		default:
			return s, rev, fmt.Errorf("guard: write: %w", err)
		}
	}
}

// Take decides, for the whole account, about a destructive call of the
// request stored at pos of incarnation, right before it: Rejected or Held
// as the stored guard says, Go without a slot when an operator approved
// it, else Go with a slot taken in the window, or Held when the window is
// full, which trips the guard (tripped says this call tripped it). All of
// it on the state read from the bucket, changed by compare-and-set: a
// replica's own view may lag a decision. It returns the state as written
// or read, and its revision.
func (st Store) Take(ctx context.Context, limit int, window time.Duration, now time.Time, replica, incarnation string, pos uint64) (v Verdict, tripped bool, s State, rev uint64, err error) {
	s, rev, err = st.update(ctx, func(s *State) bool {
		var approved bool
		if v, approved = s.Check(incarnation, pos); v != Go || approved {
			tripped = false
			return false
		}
		s.Limit, s.Window = limit, window
		if s.take(now, replica, slotName(incarnation, pos)) {
			v, tripped = Go, false
			return true
		}
		v, tripped = Held, true
		return true
	})
	return v, tripped, s, rev, err
}

// ErrOpen is returned by Decide when the guard is not tripped.
var ErrOpen = errors.New("guard: the guard is open; there is nothing to decide")

// Decide releases (approve) or rejects every destructive request stored
// up to upTo in the request stream's incarnation, opens the guard and
// starts the window afresh. It returns the state before the decision.
func (st Store) Decide(ctx context.Context, approve bool, incarnation string, upTo uint64, d Decision) (State, error) {
	var before State
	_, _, err := st.update(ctx, func(s *State) bool {
		before = *s
		if !s.Tripped {
			return false
		}
		s.Tripped, s.TrippedAt, s.TrippedBy = false, time.Time{}, ""
		s.Calls, s.Took = nil, nil
		if s.Incarnation != incarnation {
			s.ApprovedUpTo, s.RejectedUpTo = 0, 0
		}
		s.Incarnation = incarnation
		if approve {
			s.ApprovedUpTo = max(s.ApprovedUpTo, upTo)
		} else {
			s.RejectedUpTo = max(s.RejectedUpTo, upTo)
		}
		s.Decision = &d
		return true
	})
	if err != nil {
		return before, err
	}
	if !before.Tripped {
		return before, ErrOpen
	}
	return before, nil
}

// Waiting is how many destructive requests wait in the request stream
// (originals and parked copies): every one stored is unfinished. It is 0
// when the stream cannot be read.
func Waiting(ctx context.Context, js jetstream.JetStream, t topology.Topology) int {
	s, err := js.Stream(ctx, t.RequestStream)
	if err != nil {
		return 0
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(t.OperationPrefix+".>"))
	if err != nil {
		return 0
	}
	n := 0
	for _, a := range Actions {
		n += int(info.State.Subjects[t.RequestSubject(a)] + info.State.Subjects[t.ParkedSubject(a)])
	}
	return n
}

// Load reads the guard from the quota bucket of t (the zero State when no
// replica wrote it yet). A missing bucket is an error matching
// jetstream.ErrBucketNotFound.
func Load(ctx context.Context, js jetstream.JetStream, t topology.Topology) (State, error) {
	kv, err := js.KeyValue(ctx, t.QuotaBucket)
	if err != nil {
		return State{}, fmt.Errorf("guard: %w", err)
	}
	st, _, err := Store{KV: kv}.Read(ctx)
	return st, err
}

// Resolution is what Release or Reject did.
type Resolution struct {
	// Verb is "released" or "rejected".
	Verb string
	// Before is the guard as it was before the decision.
	Before State
	// UpTo is the request stream's last sequence when the decision was
	// taken: it covers every destructive request stored up to it.
	UpTo uint64
	// Held is how many destructive requests were waiting (Waiting).
	Held int
	// Event is the audit event recorded (Kind "guard", Verb "released" or
	// "rejected").
	Event audit.CloudEvent
}

// Release lets every destructive request stored so far go to Zoom
// without counting against the limit, opens the guard and starts its
// window afresh; Reject dead-letters them (guard_rejected) without a
// call. Both resume the destructive consumers (the replicas resume them
// too when they see the decision, but none may be running), and record
// an audit event with actor, reason and the guard's facts. They are the
// one implementation behind `consumer guard release|reject` and the
// console.
//
// They fail with an error matching ErrOpen, changing nothing, when the
// guard is not tripped; with audit.ErrNoActor or audit.ErrNoReason
// before anything changes; and, once the decision is stored, with an
// error saying so when only the audit event could not be recorded.
func Release(ctx context.Context, js jetstream.JetStream, t topology.Topology, actor, reason string, now time.Time) (Resolution, error) {
	return decide(ctx, js, t, true, actor, reason, now)
}

// Reject: see Release.
func Reject(ctx context.Context, js jetstream.JetStream, t topology.Topology, actor, reason string, now time.Time) (Resolution, error) {
	return decide(ctx, js, t, false, actor, reason, now)
}

func decide(ctx context.Context, js jetstream.JetStream, t topology.Topology, approve bool, actor, reason string, now time.Time) (Resolution, error) {
	verb := "rejected"
	if approve {
		verb = "released"
	}
	switch {
	case strings.TrimSpace(actor) == "":
		return Resolution{}, audit.ErrNoActor
	case strings.TrimSpace(reason) == "":
		return Resolution{}, audit.ErrNoReason
	}
	kv, err := js.KeyValue(ctx, t.QuotaBucket)
	if err != nil {
		return Resolution{}, fmt.Errorf("guard: %w", err)
	}
	stream, err := js.Stream(ctx, t.RequestStream)
	if err != nil {
		return Resolution{}, fmt.Errorf("guard: %w", err)
	}
	info := stream.CachedInfo()
	res := Resolution{Verb: verb, UpTo: info.State.LastSeq, Held: Waiting(ctx, js, t)}
	res.Before, err = Store{KV: kv}.Decide(ctx, approve, topology.Incarnation(info.Created), res.UpTo,
		Decision{Verb: verb, Actor: actor, Reason: reason, At: now, UpTo: res.UpTo})
	if err != nil {
		return res, err
	}
	for _, a := range Actions {
		_, _ = js.ResumeConsumer(ctx, t.RequestStream, t.ConsumerName(a))
	}
	b := res.Before
	res.Event, err = audit.Publish(context.WithoutCancel(ctx), js, t, audit.Event{Kind: "guard", Verb: verb, Actor: actor, Reason: reason,
		Data: map[string]any{"limit": b.Limit, "window": b.Window.String(), "used": b.Used(b.TrippedAt),
			"up_to_sequence": res.UpTo, "requests": res.Held}}, now)
	if err != nil {
		return res, fmt.Errorf("guard: %s, but recording it failed: %w", verb, err)
	}
	return res, nil
}
