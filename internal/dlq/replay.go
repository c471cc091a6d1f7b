package dlq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/zoomprov/consumer/internal/deadletter"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/quota"
	"github.com/zoomprov/consumer/internal/seal"
	"github.com/zoomprov/consumer/internal/topology"
)

// Status is what became of one entry in Replay or Purge.
type Status string

// The statuses of Progress.
const (
	// StatusReplayed: the request stream stored the republished request
	// and the dead letter was deleted.
	StatusReplayed Status = "replayed"
	// StatusDuplicate: the request stream already had this replay (an
	// earlier run published it and stopped before deleting the dead
	// letter); nothing new was stored and the dead letter was deleted.
	StatusDuplicate Status = "duplicate"
	// StatusSkipped: the entry is still invalid (see Entry.Replayable); it
	// was not replayed and stays in the dead-letter stream.
	StatusSkipped Status = "skipped"
	// StatusRefused: the entry's password cannot be opened (see
	// Entry.Open); it was not replayed and stays in the dead-letter stream.
	StatusRefused Status = "refused"
	// StatusSuperseded: a newer request about the entry's user succeeded
	// (see Superseded); it was not replayed and stays in the dead-letter
	// stream.
	StatusSuperseded Status = "superseded"
	// StatusGone: the dead letter was deleted by someone else before its
	// turn; nothing was published.
	StatusGone Status = "gone"
	// StatusDeleted: Purge deleted the dead letter.
	StatusDeleted Status = "deleted"
	// StatusFailed: publishing or deleting failed; the run stops there.
	StatusFailed Status = "failed"
)

// Progress reports one entry handled by Replay or Purge.
type Progress struct {
	// Done entries of Total have been handled, this one included.
	Done, Total int
	Entry       Entry
	Status      Status
	// Err is why the entry was skipped or failed.
	Err error
}

// Skip is an entry Replay left alone because it is still invalid.
type Skip struct {
	Seq       uint64
	RequestID string
	Err       error
}

// Summary is the outcome of Replay or Purge.
type Summary struct {
	// DryRun is set when nothing was changed; Replayed then counts what
	// would be replayed.
	DryRun bool
	// Total is the number of entries given.
	Total int
	// Replayed counts requests the request stream stored anew.
	Replayed int
	// Duplicates counts replays the request stream already had.
	Duplicates int
	// Skipped are the entries that are still invalid.
	Skipped []Skip
	// Refused are the entries whose password cannot be opened.
	Refused []Skip
	// Superseded are the entries whose user has a newer request that
	// succeeded: refused, or replayed anyway with Options.Force (Forced).
	Superseded []Superseded
	// Gone counts dead letters someone else deleted first.
	Gone int
	// Deleted counts dead letters deleted (after their replay, or by
	// Purge).
	Deleted int
	// Failed counts entries whose publish or delete failed.
	Failed int
	// Creates counts the replayable entries of action create: each costs
	// one invitation of Zoom's daily create quota.
	Creates int
	// Gate is the closed quota gate that holds some of the replayable
	// entries' actions, if any (see BlockingGate).
	Gate *quota.Gate
}

// Options tunes Replay.
type Options struct {
	// Rate is how many requests are republished per second at most; zero
	// or less means no pacing. The consumer paces its Zoom calls itself;
	// Rate keeps a large replay from filling the request stream at once.
	Rate float64
	// DryRun validates and checks the quota gates but publishes and
	// deletes nothing.
	DryRun bool
	// Force replays even while a quota gate holds the entries' actions
	// (the consumer then defers them until the quota resets), and the
	// entries whose user has a newer request that succeeded (Superseded),
	// and without that check when the ledger cannot be read.
	Force bool
	// OnProgress, if not nil, is called after each entry, from the
	// goroutine that called Replay.
	OnProgress func(Progress)
	// Now is the clock for the quota gates; nil means time.Now.
	Now func() time.Time
	// Keys open the passwords the consumer sealed; an entry with a
	// password they cannot open is refused.
	Keys *seal.Keyring
	// Actor is who replays (required unless DryRun) and Reason why
	// (optional: NoReason when empty), recorded in the audit event.
	Actor, Reason string
}

// GateClosedError is returned by Replay when a closed quota gate holds
// the action of entries to replay and Options.Force is not set.
type GateClosedError struct {
	Gate quota.Gate
	// Pending is how many replayable entries the gate holds.
	Pending int
}

func (e *GateClosedError) Error() string {
	s := fmt.Sprintf("dlq: the %s quota gate is closed until %s", e.Gate.Scope, e.Gate.Until.UTC().Format(time.RFC3339))
	if e.Gate.Reason != "" {
		s += " (" + e.Gate.Reason + ")"
	}
	return s + fmt.Sprintf(": replaying %d requests now would only defer them", e.Pending)
}

// gateRecheck is how often a long replay looks at the quota gates again,
// so that one that closes mid-run (because of the replay itself) stops it.
const gateRecheck = 5 * time.Second

// deleteTimeout bounds the delete that follows a successful publish. It
// runs even after ctx is cancelled, so an interrupted run leaves as few
// replayed dead letters behind as possible (a rerun would clean them up).
const deleteTimeout = 10 * time.Second

// ReplayID is the Nats-Msg-Id of the replay of the dead letter with
// sequence seq of request requestID.
func ReplayID(requestID string, seq uint64) string {
	return requestID + "/replay/" + strconv.FormatUint(seq, 10)
}

// ReplayMessage builds the request Replay publishes for e: its original
// body on <request prefix>.<action>, the headers its publisher set (trace
// context, for instance), Nats-Msg-Id set to ReplayID, Replayed-From set
// to "<dead-letter stream>/<sequence>", and Original-Request-Id set to the
// dead-lettered request's ID, which the consumer reports as replay_of in
// the result event. The dead-letter headers and other Nats-* headers are
// not copied.
func ReplayMessage(topo topology.Topology, e Entry) *nats.Msg {
	m := nats.NewMsg(topo.RequestSubject(e.Action))
	m.Data = e.Body
	for k, vs := range e.Headers {
		if dropOnReplay(k) {
			continue
		}
		m.Header[k] = append([]string(nil), vs...)
	}
	id := e.RequestID(topo)
	m.Header.Set(jetstream.MsgIDHeader, ReplayID(id, e.Seq))
	m.Header.Set(messages.HeaderReplayedFrom, topo.DeadLetterStream+"/"+strconv.FormatUint(e.Seq, 10))
	m.Header.Set(messages.HeaderOriginalRequestID, id)
	return m
}

// deadLetterHeaders are the headers the consumer adds to a dead letter.
var deadLetterHeaders = func() map[string]bool {
	out := map[string]bool{}
	for k := range (deadletter.Header{}).Headers() {
		out[strings.ToLower(k)] = true
	}
	out[strings.ToLower(deadletter.HeaderPassword)] = true
	out[strings.ToLower(deadletter.HeaderSealKey)] = true
	out[strings.ToLower(messages.HeaderReplayedFrom)] = true
	out[strings.ToLower(messages.HeaderOriginalRequestID)] = true
	return out
}()

func dropOnReplay(header string) bool {
	return deadLetterHeaders[strings.ToLower(header)] || strings.HasPrefix(strings.ToLower(header), "nats-")
}

// BlockingGate returns the closed quota gate, if any, that holds one of
// actions at now (the one closed longest when several are). It reads the
// shared quota bucket; a missing bucket means no gate was ever closed.
func BlockingGate(ctx context.Context, js jetstream.JetStream, topo topology.Topology, actions []string, now time.Time) (quota.Gate, bool, error) {
	st, err := quota.Read(ctx, js, topo, nil, now)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return quota.Gate{}, false, nil
	}
	if err != nil {
		return quota.Gate{}, false, fmt.Errorf("dlq: read the quota gates: %w", err)
	}
	gates := quota.NewGates(func() time.Time { return now })
	for _, g := range st.Gates {
		gates.Set(g)
	}
	var best quota.Gate
	found := false
	for _, a := range actions {
		if g, ok := gates.Closed(a); ok && (!found || g.Until.After(best.Until)) {
			best, found = g, true
		}
	}
	return best, found, nil
}

// Replay republishes entries, in ReplayOrder, and deletes each dead letter once
// the request stream has acknowledged its replay (see the package comment
// for why a rerun after a crash is safe). Entries that are still invalid
// are skipped and reported, never published. Each entry is read again just
// before its replay, so one deleted in the meantime is not replayed.
//
// Replay refuses, and leaves in place, a dead letter whose user has a
// request later in stream order that succeeded, as the per-user ledger
// says (Superseded), unless opts.Force is set; it fails with an error
// matching ErrLedgerUnavailable when it cannot read the ledger.
//
// Before anything is published, the quota gates are read: if a closed gate
// holds the action of any replayable entry (the create gate holds create,
// the account-wide gate every action), Replay returns a *GateClosedError
// and changes nothing, unless opts.Force is set. A long replay looks again
// every few seconds and stops the same way when a gate closes mid-run; the
// entries not yet replayed stay in the dead-letter stream.
//
// Replay stops at the first publish or delete that fails, and when ctx is
// done, returning the Summary so far with the error. Running it again with
// the same entries is always safe.
//
// A replay that republished or failed to republish anything is recorded
// as an audit event (Kind "dlq", Verb "replayed") with opts.Actor,
// opts.Reason, the counts and the dead letters republished, also when it
// stops early; without an actor it changes nothing and returns
// audit.ErrNoActor. It is the one implementation behind `consumer dlq
// replay` and the console.
func Replay(ctx context.Context, js jetstream.JetStream, topo topology.Topology, entries []Entry, opts Options) (Summary, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	if opts.DryRun {
		return replay(ctx, js, topo, entries, opts, now, nil)
	}
	if err := checkActor(opts.Actor); err != nil {
		return Summary{Total: len(entries)}, err
	}
	var refs []ref
	sum, err := replay(ctx, js, topo, entries, opts, now, &refs)
	return sum, record(ctx, js, topo, "replayed", opts.Actor, opts.Reason, sum, refs, err, now())
}

// replay is Replay without the audit event; it appends each dead letter
// it republishes to refs.
func replay(ctx context.Context, js jetstream.JetStream, topo topology.Topology, entries []Entry, opts Options, now func() time.Time, refs *[]ref) (Summary, error) {
	entries = ReplayOrder(entries)
	sum := Summary{DryRun: opts.DryRun, Total: len(entries)}
	invalid := make([]error, len(entries))
	refused := make([]error, len(entries))
	var actions []string
	seen := map[string]bool{}
	for i, e := range entries {
		opened, err := e.Open(opts.Keys)
		if err != nil {
			refused[i] = err
			continue
		}
		invalid[i] = opened.Replayable()
	}
	superseded, err := supersededEntries(ctx, js, topo, entries, func(i int) bool { return invalid[i] == nil && refused[i] == nil }, opts.Force)
	if err != nil {
		return sum, err
	}
	// held reports whether entry i is not to be replayed at all.
	held := func(i int) bool {
		return invalid[i] != nil || refused[i] != nil || superseded[i] != nil && !opts.Force
	}
	for i, e := range entries {
		if held(i) {
			continue
		}
		if e.Action == string(messages.ActionCreate) {
			sum.Creates++
		}
		if !seen[e.Action] {
			seen[e.Action] = true
			actions = append(actions, e.Action)
		}
	}
	pending := func(from int, g quota.Gate) int {
		n := 0
		for i := from; i < len(entries); i++ {
			if !held(i) && g.Covers(entries[i].Action) {
				n++
			}
		}
		return n
	}

	if len(actions) > 0 {
		g, closed, err := BlockingGate(ctx, js, topo, actions, now())
		if err != nil {
			return sum, err
		}
		if closed {
			sum.Gate = &g
			if !opts.DryRun && !opts.Force {
				return sum, &GateClosedError{Gate: g, Pending: pending(0, g)}
			}
		}
	}
	if opts.DryRun {
		for i, e := range entries {
			switch {
			case refused[i] != nil:
				sum.Refused = append(sum.Refused, Skip{Seq: e.Seq, RequestID: e.RequestID(topo), Err: refused[i]})
			case invalid[i] != nil:
				sum.Skipped = append(sum.Skipped, Skip{Seq: e.Seq, RequestID: e.RequestID(topo), Err: invalid[i]})
			case superseded[i] != nil && !opts.Force:
				sum.Superseded = append(sum.Superseded, *superseded[i])
			default:
				if sp := superseded[i]; sp != nil {
					sum.Superseded = append(sum.Superseded, Superseded{Seq: sp.Seq, RequestID: sp.RequestID, Newer: sp.Newer, Count: sp.Count, Forced: true})
				}
				sum.Replayed++
			}
		}
		return sum, nil
	}

	s, err := stream(ctx, js, topo)
	if err != nil {
		return sum, err
	}
	limit := rate.Inf
	if opts.Rate > 0 {
		limit = rate.Limit(opts.Rate)
	}
	limiter := rate.NewLimiter(limit, 1)
	lastGateCheck := now()
	done := 0
	report := func(e Entry, st Status, err error) {
		done++
		if opts.OnProgress != nil {
			opts.OnProgress(Progress{Done: done, Total: len(entries), Entry: e, Status: st, Err: err})
		}
	}

	for i, e := range entries {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		if refused[i] != nil {
			sum.Refused = append(sum.Refused, Skip{Seq: e.Seq, RequestID: e.RequestID(topo), Err: refused[i]})
			report(e, StatusRefused, refused[i])
			continue
		}
		if invalid[i] != nil {
			sum.Skipped = append(sum.Skipped, Skip{Seq: e.Seq, RequestID: e.RequestID(topo), Err: invalid[i]})
			report(e, StatusSkipped, invalid[i])
			continue
		}
		if sp := superseded[i]; sp != nil {
			if !opts.Force {
				sum.Superseded = append(sum.Superseded, *sp)
				report(e, StatusSuperseded, *sp)
				continue
			}
			sum.Superseded = append(sum.Superseded, Superseded{Seq: sp.Seq, RequestID: sp.RequestID, Newer: sp.Newer, Count: sp.Count, Forced: true})
		}
		if !opts.Force && now().Sub(lastGateCheck) >= gateRecheck {
			lastGateCheck = now()
			g, closed, err := BlockingGate(ctx, js, topo, []string{e.Action}, now())
			if err != nil {
				return sum, err
			}
			if closed {
				sum.Gate = &g
				return sum, &GateClosedError{Gate: g, Pending: pending(i, g)}
			}
		}

		// Read it again: someone may have purged or replayed it since it
		// was listed.
		m, err := s.GetMsg(ctx, e.Seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			sum.Gone++
			report(e, StatusGone, nil)
			continue
		}
		if err != nil {
			return sum, stopped(ctx, &sum, e, report, fmt.Errorf("dlq: read %s/%d: %w", topo.DeadLetterStream, e.Seq, err))
		}
		cur := newEntry(topo, m)
		if cur.RequestID(topo) != e.RequestID(topo) {
			// The stream was recreated and the sequence reused: the dead
			// letter that was listed is gone.
			sum.Gone++
			report(e, StatusGone, nil)
			continue
		}

		if cur, err = cur.Open(opts.Keys); err != nil {
			// It was rewritten since it was listed, with another key.
			sum.Refused = append(sum.Refused, Skip{Seq: e.Seq, RequestID: e.RequestID(topo), Err: err})
			report(e, StatusRefused, err)
			continue
		}
		if err := limiter.Wait(ctx); err != nil {
			return sum, ctxErr(ctx, err)
		}
		msg := ReplayMessage(topo, cur)
		ack, err := js.PublishMsg(ctx, msg, jetstream.WithExpectStream(topo.RequestStream))
		if err != nil {
			return sum, stopped(ctx, &sum, cur, report, fmt.Errorf("dlq: replay %s/%d to %s: %w", topo.DeadLetterStream, e.Seq, msg.Subject, err))
		}
		*refs = append(*refs, ref{Seq: e.Seq, RequestID: e.RequestID(topo)})
		st := StatusReplayed
		if ack.Duplicate {
			st = StatusDuplicate
			sum.Duplicates++
		} else {
			sum.Replayed++
		}

		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deleteTimeout)
		_, err = deleteMsg(dctx, s, e.Seq)
		cancel()
		if err != nil {
			sum.Failed++
			err = fmt.Errorf("dlq: replayed %s/%d but could not delete it (running the replay again deletes it without publishing twice): %w",
				topo.DeadLetterStream, e.Seq, err)
			report(cur, StatusFailed, err)
			return sum, err
		}
		sum.Deleted++
		report(cur, st, nil)
	}
	return sum, nil
}

// stopped records a failed entry, unless the failure is ctx ending (an
// interruption, not a failure), and returns the error to stop with.
func stopped(ctx context.Context, sum *Summary, e Entry, report func(Entry, Status, error), err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	sum.Failed++
	report(e, StatusFailed, err)
	return err
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// deleteMsg deletes a dead letter; gone is true when it was not there
// (anymore), which is not an error.
func deleteMsg(ctx context.Context, s jetstream.Stream, seq uint64) (gone bool, err error) {
	err = s.DeleteMsg(ctx, seq)
	if err == nil {
		return false, nil
	}
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return true, nil
	}
	if errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
		if _, gerr := s.GetMsg(ctx, seq); errors.Is(gerr, jetstream.ErrMsgNotFound) {
			return true, nil
		}
	}
	return false, err
}

// PurgeOptions tunes Purge.
type PurgeOptions struct {
	// Actor is who purges (required) and Reason why (optional: NoReason
	// when empty), recorded in the audit event.
	Actor, Reason string
	// OnProgress, if not nil, is called after each entry, from the
	// goroutine that called Purge.
	OnProgress func(Progress)
	// Now is the audit event's clock; nil means time.Now.
	Now func() time.Time
}

// Purge deletes entries from the dead-letter stream and calls
// opts.OnProgress, if not nil, after each. A dead letter that is already
// gone counts as Gone, not as an error. Purge stops at the first delete
// that fails and when ctx is done.
//
// A purge that deleted or failed to delete anything is recorded as an
// audit event (Kind "dlq", Verb "purged") with opts.Actor, opts.Reason,
// the counts and the dead letters deleted, also when it stops early;
// without an actor it changes nothing and returns audit.ErrNoActor. It is
// the one implementation behind `consumer dlq purge` and the console.
func Purge(ctx context.Context, js jetstream.JetStream, topo topology.Topology, entries []Entry, opts PurgeOptions) (Summary, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	if err := checkActor(opts.Actor); err != nil {
		return Summary{Total: len(entries)}, err
	}
	var refs []ref
	sum, err := purge(ctx, js, topo, entries, opts.OnProgress, &refs)
	return sum, record(ctx, js, topo, "purged", opts.Actor, opts.Reason, sum, refs, err, now())
}

func purge(ctx context.Context, js jetstream.JetStream, topo topology.Topology, entries []Entry, onProgress func(Progress), refs *[]ref) (Summary, error) {
	sum := Summary{Total: len(entries)}
	s, err := stream(ctx, js, topo)
	if err != nil {
		return sum, err
	}
	for i, e := range entries {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		gone, err := deleteMsg(ctx, s, e.Seq)
		st := StatusDeleted
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return sum, ctx.Err()
			}
			sum.Failed++
			err = fmt.Errorf("dlq: delete %s/%d: %w", topo.DeadLetterStream, e.Seq, err)
			st = StatusFailed
		case gone:
			sum.Gone++
			st = StatusGone
		default:
			sum.Deleted++
			*refs = append(*refs, ref{Seq: e.Seq, RequestID: e.RequestID(topo)})
		}
		if onProgress != nil {
			onProgress(Progress{Done: i + 1, Total: len(entries), Entry: e, Status: st, Err: err})
		}
		if err != nil {
			return sum, err
		}
	}
	return sum, nil
}
