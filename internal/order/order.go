// Package order keeps each user's requests in the order the request stream
// stored them: a request may reach Zoom only when no earlier request about
// the same user is still in the stream. The request stream is a work
// queue, so a request leaves it exactly when it has its terminal result;
// the stream itself is the truth, and what this package keeps in memory is
// only a cache of it that any replica rebuilds by reading the stream.
//
// The cache maps stream sequences to users. Messages are immutable, so an
// entry never goes stale; an entry is dropped once its message is known to
// be gone. To answer "is anything about this user stored before sequence
// n?", the index first reads every message between the last one it knows
// and n (requests delivered to this replica are known without a read), then
// checks that the candidates it found are still in the stream.
package order

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/topology"
)

// readTimeout bounds one read of the stream: a request stream electing a
// leader must not hold every request behind the scan for long; the caller
// tries again a little later.
const readTimeout = 2 * time.Second

// getMsg reads one message with readTimeout.
func (x *Index) getMsg(ctx context.Context, seq uint64, opts ...jetstream.GetMsgOpt) (*jetstream.RawStreamMsg, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	x.mu.Lock()
	x.reads++
	x.mu.Unlock()
	return x.stream.GetMsg(ctx, seq, opts...)
}

// Blocker is the oldest request about a user still in the stream before a
// given one.
type Blocker struct {
	// Seq is its stream sequence and Action its action.
	Seq    uint64
	Action string
	// Local says this replica is handling it right now, so it will end
	// soon without any other request's help.
	Local bool
}

// Index is one replica's cache of the request stream, by user. It is safe
// for concurrent use.
type Index struct {
	stream jetstream.Stream
	topo   topology.Topology

	// scanMu lets one caller at a time read the stream forward.
	scanMu sync.Mutex

	mu sync.Mutex
	// scanned: every message stored at or below it is in entries, or gone.
	scanned uint64
	entries map[uint64]entry
	users   map[string][]uint64 // user key → sequences, ascending
	running map[uint64]bool
	changed chan struct{} // closed and replaced when a running one ends
	reads   uint64        // reads of the stream, for the cost figure
}

type entry struct {
	key, action string
}

// gone marks a request pruned above scanned: known gone, kept only so
// that the scan passes it without a read; the scan drops it then.
var gone entry

// New returns an index of the request stream s, which holds nothing below
// first (its first sequence now).
func New(s jetstream.Stream, t topology.Topology, first uint64) *Index {
	return &Index{
		stream:  s,
		topo:    t,
		scanned: max(first, 1) - 1,
		entries: map[uint64]entry{},
		users:   map[string][]uint64{},
		running: map[uint64]bool{},
		changed: make(chan struct{}),
	}
}

// Key is the ordering key of a request body: its user's e-mail compared
// case-insensitively, "" when it names none.
func Key(body []byte) string {
	if e := messages.BestEffortEmail(body); e != "" {
		return messages.UserKey(e)
	}
	return ""
}

// addLocked records seq's user; an empty key is recorded as read only.
func (x *Index) addLocked(seq uint64, key, action string) {
	if e, ok := x.entries[seq]; ok && e != gone {
		return
	}
	x.entries[seq] = entry{key: key, action: action}
	if key == "" {
		return
	}
	seqs := x.users[key]
	i, _ := slices.BinarySearch(seqs, seq)
	x.users[key] = slices.Insert(seqs, i, seq)
}

func (x *Index) forgetLocked(seq uint64) {
	e, ok := x.entries[seq]
	if !ok {
		return
	}
	delete(x.entries, seq)
	if e.key == "" {
		return
	}
	seqs := x.users[e.key]
	if i, found := slices.BinarySearch(seqs, seq); found {
		seqs = slices.Delete(seqs, i, i+1)
	}
	if len(seqs) == 0 {
		delete(x.users, e.key)
	} else {
		x.users[e.key] = seqs
	}
}

// Begin records that this replica handles seq, a request about key of
// action, from now until End. It returns how many requests the index
// holds now.
func (x *Index) Begin(seq uint64, key, action string) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.addLocked(seq, key, action)
	x.running[seq] = true
	return len(x.entries)
}

// End records that this replica stopped handling seq; gone says the
// server confirmed the request left the stream. An acknowledgement sent
// without confirmation may be lost, and the request handled again later:
// then the entry stays, and a later request about the user reads the
// stream to see whether it is gone. Waiters wake.
func (x *Index) End(seq uint64, gone bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.running, seq)
	if gone {
		x.forgetLocked(seq)
	}
	close(x.changed)
	x.changed = make(chan struct{})
}

// HasLater reports whether the index knows a request about key stored
// after seq: the one to settle then needs a confirmed acknowledgement.
func (x *Index) HasLater(seq uint64, key string) bool {
	if key == "" {
		return false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	seqs := x.users[key]
	return len(seqs) > 0 && seqs[len(seqs)-1] > seq
}

// Changed returns a channel closed when a request this replica handles
// next ends.
func (x *Index) Changed() <-chan struct{} {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.changed
}

// Reads is how many times the index has read the stream so far.
func (x *Index) Reads() uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.reads
}

// Blocker returns the oldest request about key stored before seq that is
// still in the stream, if any.
func (x *Index) Blocker(ctx context.Context, seq uint64, key string) (Blocker, bool, error) {
	if key == "" || seq <= 1 {
		return Blocker{}, false, nil
	}
	if err := x.scanTo(ctx, seq-1); err != nil {
		return Blocker{}, false, err
	}
	for {
		x.mu.Lock()
		var cand uint64
		for _, s := range x.users[key] {
			if s < seq {
				cand = s
			}
			break // ascending: the first is the oldest
		}
		if cand == 0 {
			x.mu.Unlock()
			return Blocker{}, false, nil
		}
		b := Blocker{Seq: cand, Action: x.entries[cand].action, Local: x.running[cand]}
		x.mu.Unlock()
		if b.Local {
			return b, true, nil
		}
		stored, err := x.Stored(ctx, cand)
		if err != nil || stored {
			return b, stored, err
		}
	}
}

// Stored reports whether request seq is still in the stream.
func (x *Index) Stored(ctx context.Context, seq uint64) (bool, error) {
	_, err := x.getMsg(ctx, seq)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		x.mu.Lock()
		x.forgetLocked(seq)
		x.mu.Unlock()
		return false, nil
	case err != nil:
		return false, fmt.Errorf("order: read request %d: %w", seq, err)
	}
	return true, nil
}

// scanTo reads, in stream order, every stored message up to upTo that the
// index does not know yet.
func (x *Index) scanTo(ctx context.Context, upTo uint64) error {
	x.scanMu.Lock()
	defer x.scanMu.Unlock()
	for {
		x.mu.Lock()
		for x.scanned < upTo {
			e, ok := x.entries[x.scanned+1]
			if !ok {
				break
			}
			x.scanned++
			if e == gone {
				delete(x.entries, x.scanned)
			}
		}
		next, done := x.scanned+1, x.scanned >= upTo
		x.mu.Unlock()
		if done {
			return nil
		}
		// The next stored message at or after next: everything between
		// is gone.
		m, err := x.getMsg(ctx, next, jetstream.WithGetMsgSubject(">"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			x.mu.Lock()
			x.scanned = max(x.scanned, upTo)
			x.mu.Unlock()
			return nil
		}
		if err != nil {
			return fmt.Errorf("order: read the request stream from %d: %w", next, err)
		}
		action, _ := x.topo.ActionOf(m.Subject)
		key := Key(m.Data)
		x.mu.Lock()
		x.addLocked(m.Sequence, key, action)
		x.scanned = max(x.scanned, m.Sequence)
		x.mu.Unlock()
	}
}

// Prune forgets what is known gone: everything below first (the stream's
// first sequence now), and requests of an action at or below that
// action's acknowledgement floor (every one of them has been acked or
// terminated). It returns how many entries remain.
func (x *Index) Prune(first uint64, ackFloors map[string]uint64) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.scanned = max(x.scanned, max(first, 1)-1) // below first: all gone
	for seq, e := range x.entries {
		if x.running[seq] {
			continue
		}
		switch {
		case seq <= x.scanned && (e == gone || seq < first):
			x.forgetLocked(seq)
		case e != gone && ackFloors[e.action] > 0 && seq <= ackFloors[e.action]:
			x.forgetLocked(seq)
			if seq > x.scanned {
				x.entries[seq] = gone
			}
		}
	}
	return len(x.entries)
}
