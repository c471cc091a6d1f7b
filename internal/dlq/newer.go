package dlq

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/ledger"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/topology"
)

// Superseded is a dead letter whose user has a request later in stream
// order that finished successfully (the per-user ledger says so):
// replaying it would apply the older request after the newer one, for
// example create again someone who has since been deleted. Replay refuses
// it unless Options.Force is set.
type Superseded struct {
	Seq       uint64
	RequestID string
	// Newer is the latest of the newer requests that succeeded, and Count
	// how many there are.
	Newer ledger.Request
	Count int
	// Forced is set when Options.Force replayed it anyway.
	Forced bool
}

// Error says why the dead letter is refused, naming the newer request.
func (s Superseded) Error() string {
	more := ""
	if s.Count > 1 {
		more = fmt.Sprintf(" (and %d more)", s.Count-1)
	}
	return fmt.Sprintf("a newer request about the same user succeeded: %s (%s, %s, stream sequence %d)%s; replaying would apply the older request after it",
		s.Newer.RequestID, s.Newer.Action, s.Newer.Outcome, s.Newer.StreamSequence, more)
}

// ErrLedgerUnavailable is matched by the error Replay returns when it
// cannot read the per-user ledger to look for newer requests (its bucket
// is missing, or unreadable) and Options.Force is not set.
var ErrLedgerUnavailable = errors.New("dlq: cannot read the per-user ledger to look for newer requests about the same users")

// ReplayOrder returns entries in the order Replay republishes them: the
// order given, but the dead letters about one user (same address, compared
// as the per-user order compares them) among themselves in the order their
// requests had in the request stream (Original-Sequence), so that a replay
// of several requests about one user cannot reorder that user's life.
func ReplayOrder(entries []Entry) []Entry {
	out := slices.Clone(entries)
	positions := map[string][]int{}
	var users []string
	for i, e := range out {
		if e.Email == "" || e.HeaderErr != nil {
			continue
		}
		k := messages.UserKey(e.Email)
		if _, ok := positions[k]; !ok {
			users = append(users, k)
		}
		positions[k] = append(positions[k], i)
	}
	for _, k := range users {
		pos := positions[k]
		if len(pos) < 2 {
			continue
		}
		group := make([]Entry, len(pos))
		for j, p := range pos {
			group[j] = out[p]
		}
		slices.SortStableFunc(group, func(a, b Entry) int {
			return cmp.Compare(a.DeadLetter.OriginalSequence, b.DeadLetter.OriginalSequence)
		})
		for j, p := range pos {
			out[p] = group[j]
		}
	}
	return out
}

// supersededEntries looks up in the ledger the user of each entry that
// check selects, and returns, by index, those with a request later than
// the dead-lettered one (Original-Sequence) that succeeded. The replays of
// the same dead letter do not count: a rerun of an interrupted replay
// finds its own earlier replay, which is no newer request. When the
// ledger cannot be read, force skips the check and no force is an error
// matching ErrLedgerUnavailable.
func supersededEntries(ctx context.Context, js jetstream.JetStream, topo topology.Topology, entries []Entry, check func(int) bool, force bool) (map[int]*Superseded, error) {
	out := map[int]*Superseded{}
	var l *ledger.Ledger
	records := map[string]ledger.Record{}
	for i, e := range entries {
		if !check(i) || e.Email == "" || e.DeadLetter.OriginalSequence == 0 {
			continue
		}
		if l == nil {
			var err error
			if l, err = ledger.Open(ctx, js, topo); err != nil {
				if force {
					return out, nil
				}
				return nil, fmt.Errorf("%w: %w", ErrLedgerUnavailable, err)
			}
		}
		key := ledger.Key(e.Email)
		rec, ok := records[key]
		if !ok {
			var err error
			if rec, err = l.Get(ctx, e.Email); err != nil {
				if force {
					return out, nil
				}
				return nil, fmt.Errorf("%w: %w", ErrLedgerUnavailable, err)
			}
			records[key] = rec
		}
		own := ReplayID(e.RequestID(topo), e.Seq)
		var newer []ledger.Request
		for _, q := range rec.SucceededAfter(e.DeadLetter.OriginalSequence) {
			if q.RequestID != own {
				newer = append(newer, q)
			}
		}
		if len(newer) > 0 {
			out[i] = &Superseded{Seq: e.Seq, RequestID: e.RequestID(topo), Newer: newer[len(newer)-1], Count: len(newer)}
		}
	}
	return out, nil
}
