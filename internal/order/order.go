// Package order keeps each user's requests in the order the request stream
// stored them: a request may reach Zoom only when no earlier request about
// the same user is still in the stream. The request stream is a work
// queue, so a request leaves it exactly when it has its terminal result;
// the stream itself is the truth, and what this package keeps in memory is
// only a cache of it that any replica rebuilds by reading the stream.
//
// A request's place in the order is its position: the sequence the stream
// first stored it at. A request that must wait long (behind a creation
// held by the daily quota, or a deletion held by the guard) is parked: a
// copy carrying its position is stored on the parked subject, and the
// original is acknowledged, so it no longer holds one of its consumer's
// ack-pending slots. A copy takes over only once its original is gone
// (see Turn.Wait and LaterOriginal).
//
// The cache maps stream sequences to users. Messages are immutable, so an
// entry never goes stale; an entry is dropped once its message is known to
// be gone. A single read goes to the stream's leader (package leader): a
// lagging replica could report a request just stored as absent. Reading
// forward goes in batches that any replica may answer, trusted only up to
// the last message they hold (see readBatch).
package order

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zoomprov/consumer/internal/leader"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/topology"
)

// readTimeout bounds one read of the stream: a request stream electing a
// leader must not hold every request behind the scan for long; the caller
// tries again a little later.
const readTimeout = 2 * time.Second

// Parked is the group of parked copies in Prune's acknowledgement floors.
const Parked = "parked"

// Request is a delivery's request as the index sees it.
type Request struct {
	// Pos is the request's position: the sequence it was first stored at.
	Pos uint64
	// Seq is the sequence of the message delivered: Pos, or that of a
	// parked copy.
	Seq uint64
	// Key is the user (Key of the body), "" for none.
	Key string
	// Action is the creation action or lifecycle operation.
	Action string
}

// Copy reports whether the request is a parked copy.
func (r Request) Copy() bool { return r.Seq != r.Pos }

// Blocker is the oldest request about a user still in the stream before a
// given one.
type Blocker struct {
	Pos, Seq uint64
	Action   string
	// Local says this replica is handling it right now, so it will end
	// soon without any other request's help.
	Local bool
	// Parked says it is a parked copy: it waits for something long.
	Parked bool
	// Self says it is the same request: a parked copy of the original
	// being handled (see Index.LaterOriginal), or the original of the
	// copy being handled, not yet gone.
	Self bool
}

// Index is one replica's cache of the request stream, by user. It is safe
// for concurrent use.
type Index struct {
	nc     *nats.Conn
	topo   topology.Topology
	stream string

	// scanMu lets one caller at a time read the stream forward.
	scanMu sync.Mutex

	mu sync.Mutex
	// scanned: every message stored at or below it is in bySeq, or gone.
	scanned uint64
	// parkedTo: every parked copy stored at or below it is in bySeq, or
	// gone (with scanned, the higher one counts).
	parkedTo uint64
	bySeq    map[uint64]*entry
	users    map[string][]*entry // user key → entries, by position
	running  map[uint64]int      // sequences handled here now: deliveries in hand
	changed  chan struct{}       // closed and replaced when a running one ends
	reads    uint64              // reads of the stream, for the cost figure
	// noBatchUntil: no batched reads before it (see readBatch).
	noBatchUntil time.Time
}

type entry struct {
	pos, seq    uint64
	key, action string
}

func (e *entry) parked() bool { return e.seq != e.pos }

// group is the acknowledgement floor that covers e (see Prune).
func (e *entry) group() string {
	if e.parked() {
		return Parked
	}
	return e.action
}

// gone marks a sequence pruned above scanned: known gone, kept only so
// that the scan passes it without a read; the scan drops it then.
var gone = &entry{}

// New returns an index of the request stream of t, read from its leader
// through nc, which holds nothing below first (its first sequence now).
func New(nc *nats.Conn, t topology.Topology, first uint64) *Index {
	return &Index{
		nc:      nc,
		topo:    t,
		stream:  t.RequestStream,
		scanned: max(first, 1) - 1,
		bySeq:   map[uint64]*entry{},
		users:   map[string][]*entry{},
		running: map[uint64]int{},
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

// Of returns the request stored as m: its position and action come from
// the copy's headers when m is a parked copy.
func (x *Index) Of(subject string, seq uint64, h nats.Header, body []byte) Request {
	r := Request{Pos: seq, Seq: seq, Key: Key(body)}
	if action, ok := x.topo.ParkedAction(subject); ok {
		r.Action = action
		if pos, err := strconv.ParseUint(h.Get(messages.HeaderPosition), 10, 64); err == nil && pos > 0 && pos < seq {
			r.Pos = pos
		}
		return r
	}
	r.Action, _ = x.topo.ActionOf(subject)
	return r
}

func (x *Index) get(ctx context.Context, q leader.Query) (leader.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	x.mu.Lock()
	x.reads++
	x.mu.Unlock()
	return leader.Get(ctx, x.nc, x.stream, q)
}

// addLocked records r unless its sequence is known.
func (x *Index) addLocked(r Request) {
	if e, ok := x.bySeq[r.Seq]; ok && e != gone {
		return
	}
	e := &entry{pos: r.Pos, seq: r.Seq, key: r.Key, action: r.Action}
	x.bySeq[r.Seq] = e
	if r.Key == "" {
		return
	}
	es := x.users[r.Key]
	i, _ := slices.BinarySearchFunc(es, e, func(a, b *entry) int {
		if a.pos != b.pos {
			return cmpUint(a.pos, b.pos)
		}
		return cmpUint(a.seq, b.seq)
	})
	x.users[r.Key] = slices.Insert(es, i, e)
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (x *Index) forgetLocked(seq uint64) {
	e, ok := x.bySeq[seq]
	if !ok {
		return
	}
	delete(x.bySeq, seq)
	if e == gone || e.key == "" {
		return
	}
	es := slices.DeleteFunc(x.users[e.key], func(o *entry) bool { return o == e })
	if len(es) == 0 {
		delete(x.users, e.key)
	} else {
		x.users[e.key] = es
	}
}

// Expect records a request fetched here before its delivery enters: a
// later request's delivery that gets to its turn first then knows it
// without a read. It is not running until it enters.
func (x *Index) Expect(r Request) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.addLocked(r)
}

// Turn is one delivery's place in its user's order, from Enter to Leave.
type Turn struct {
	x *Index
	r Request
	// again says another delivery of the same message was in hand here
	// when this one entered.
	again bool
}

// Enter records that this replica handles r until the Turn is left, and
// returns its Turn and how many requests the index holds now (for pruning).
func (x *Index) Enter(r Request) (*Turn, int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.addLocked(r)
	again := x.running[r.Seq] > 0
	x.running[r.Seq]++
	return &Turn{x: x, r: r, again: again}, len(x.bySeq)
}

// Again reports whether another delivery of the same message was in hand
// on this replica when this one entered: the server delivered it twice
// (its ack wait passed, or a restarted server lost track of it).
func (t *Turn) Again() bool { return t.again }

// Leave ends the turn; gone says the server confirmed the message left the
// stream. An acknowledgement sent without confirmation may be lost and the
// request handled again later: then the entry stays, and a later request
// about the user reads the stream to see whether it is gone. Waiters wake.
func (t *Turn) Leave(gone bool) {
	x := t.x
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.running[t.r.Seq]--; x.running[t.r.Seq] <= 0 {
		delete(x.running, t.r.Seq)
	}
	if gone {
		x.forgetLocked(t.r.Seq)
	}
	close(x.changed)
	x.changed = make(chan struct{})
}

// HasLater reports whether the index knows a request about the user
// placed after this one: settling it then needs a confirmed
// acknowledgement.
func (t *Turn) HasLater() bool {
	if t.r.Key == "" {
		return false
	}
	x := t.x
	x.mu.Lock()
	defer x.mu.Unlock()
	es := x.users[t.r.Key]
	return len(es) > 0 && es[len(es)-1].pos > t.r.Pos
}

// Wait returns when no earlier request about the user is in the stream
// (false), or the oldest that is when this replica is not handling it
// (true). An earlier request handled here is waited for. A first delivery
// of an original reads the stream up to its own position; a parked copy,
// or a redelivery (whole says so), also reads the parked copies stored
// after it, since a copy of an earlier request, or of itself, may be
// stored there. Only the parked subjects are read beyond the position: a
// redelivery in a long backlog must not read the backlog. A Blocker with
// Self set is this request's other form: see Blocker.Self.
func (t *Turn) Wait(ctx context.Context, whole bool) (Blocker, bool, error) {
	x, r := t.x, t.r
	if r.Key == "" {
		return Blocker{}, false, nil
	}
	for {
		upTo := r.Pos - 1
		if r.Copy() {
			upTo = r.Pos // its original
		}
		if err := x.scanTo(ctx, upTo); err != nil {
			return Blocker{}, false, err
		}
		if whole || r.Copy() {
			if err := x.scanParked(ctx); err != nil {
				return Blocker{}, false, err
			}
		}
		b, blocked, err := x.oldest(ctx, r)
		if err != nil || !blocked {
			return b, blocked, err
		}
		if !b.Local {
			return b, true, nil
		}
		if !x.waitEnd(ctx, b.Seq) {
			return b, true, nil
		}
	}
}

// waitEnd waits until no delivery of seq is in hand here, and reports
// false when ctx ended first. Other turns ending wake it too, and cost
// no read: only the end of the awaited one sends Wait back to the stream.
func (x *Index) waitEnd(ctx context.Context, seq uint64) bool {
	for {
		x.mu.Lock()
		running, changed := x.running[seq] > 0, x.changed
		x.mu.Unlock()
		if !running {
			return true
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return false
		}
	}
}

// oldest is the oldest request about r's user placed before r, or r's
// other form, that is still stored.
func (x *Index) oldest(ctx context.Context, r Request) (Blocker, bool, error) {
	for {
		x.mu.Lock()
		var cand *entry
		for _, e := range x.users[r.Key] {
			if e.pos > r.Pos {
				break
			}
			if e.seq != r.Seq {
				cand = e
				break
			}
		}
		if cand == nil {
			x.mu.Unlock()
			return Blocker{}, false, nil
		}
		b := Blocker{Pos: cand.pos, Seq: cand.seq, Action: cand.action, Parked: cand.parked(), Self: cand.pos == r.Pos}
		// Waiting here for another form of the same request would wait
		// for a delivery that may wait for this one: it is settled by
		// the caller instead.
		b.Local = x.running[cand.seq] > 0 && !b.Self
		x.mu.Unlock()
		if b.Local {
			return b, true, nil
		}
		stored, err := x.Stored(ctx, cand.seq)
		if err != nil || stored {
			return b, stored, err
		}
	}
}

// LaterOriginal reports whether an original request about r's user is
// stored after r and before upTo: the check a park makes once its copy is
// stored at upTo. An original placed after r but stored before the copy
// reads the stream only up to its own position, so it would not see the
// copy; the original must stay until that one is done.
func (x *Index) LaterOriginal(ctx context.Context, r Request, upTo uint64) (bool, error) {
	if r.Key == "" {
		return false, nil
	}
	if err := x.scanTo(ctx, upTo-1); err != nil {
		return false, err
	}
	for {
		x.mu.Lock()
		var cand *entry
		for _, e := range x.users[r.Key] {
			if e.pos > r.Pos && e.pos < upTo && !e.parked() {
				cand = e
				break
			}
		}
		x.mu.Unlock()
		if cand == nil {
			return false, nil
		}
		stored, err := x.Stored(ctx, cand.seq)
		if err != nil || stored {
			return stored, err
		}
	}
}

// Reads is how many times the index has read the stream so far.
func (x *Index) Reads() uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.reads
}

// Stored reports whether message seq is still in the stream.
func (x *Index) Stored(ctx context.Context, seq uint64) (bool, error) {
	_, err := x.get(ctx, leader.Query{Seq: seq})
	switch {
	case errors.Is(err, leader.ErrNotFound):
		x.mu.Lock()
		x.forgetLocked(seq)
		x.mu.Unlock()
		return false, nil
	case err != nil:
		return false, fmt.Errorf("order: read request %d: %w", seq, err)
	}
	return true, nil
}

// scanParked reads, in stream order, every parked copy stored after what
// the index knows, to the end of the stream.
func (x *Index) scanParked(ctx context.Context) error {
	x.scanMu.Lock()
	defer x.scanMu.Unlock()
	for {
		x.mu.Lock()
		next := max(x.scanned, x.parkedTo) + 1
		x.mu.Unlock()
		m, err := x.get(ctx, leader.Query{Seq: next, NextBySubject: x.topo.ParkedFilter()})
		if errors.Is(err, leader.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("order: read the parked requests from %d: %w", next, err)
		}
		r := x.Of(m.Subject, m.Seq, m.Header, m.Data)
		x.mu.Lock()
		x.addLocked(r)
		x.parkedTo = max(x.parkedTo, m.Seq)
		x.mu.Unlock()
	}
}

// scanTo reads, in stream order, every stored message up to upTo that the
// index does not know yet: in batches that any replica may answer (see
// readBatch), and from the leader where a batch proves nothing.
func (x *Index) scanTo(ctx context.Context, upTo uint64) error {
	x.scanMu.Lock()
	defer x.scanMu.Unlock()
	for {
		x.mu.Lock()
		for x.scanned < upTo {
			e, ok := x.bySeq[x.scanned+1]
			if !ok {
				break
			}
			x.scanned++
			if e == gone {
				delete(x.bySeq, x.scanned)
			}
		}
		next, done := x.scanned+1, x.scanned >= upTo
		x.mu.Unlock()
		if done {
			return nil
		}
		// One message is one read either way, and a single read costs
		// less (no subscription of its own).
		if upTo > next && !x.batchOff() {
			ms, err := x.readBatch(ctx, next, int(min(batchSize, upTo-next+1)))
			if err != nil && ctx.Err() == nil {
				// No direct gets on the stream, an older server, or none
				// allowed to this user: read from the leader for a while.
				x.turnBatchOff()
			}
			if err == nil && len(ms) > 0 {
				x.mu.Lock()
				for _, m := range ms {
					x.addLocked(x.Of(m.Subject, m.Seq, m.Header, m.Data))
				}
				x.scanned = max(x.scanned, ms[len(ms)-1].Seq)
				x.mu.Unlock()
				continue
			}
			// Nothing proven: the leader says what comes next.
		}
		// The next stored message at or after next: everything between
		// is gone.
		m, err := x.get(ctx, leader.Query{Seq: next, NextBySubject: ">"})
		if errors.Is(err, leader.ErrNotFound) {
			x.mu.Lock()
			x.scanned = max(x.scanned, upTo)
			x.mu.Unlock()
			return nil
		}
		if err != nil {
			return fmt.Errorf("order: read the request stream from %d: %w", next, err)
		}
		r := x.Of(m.Subject, m.Seq, m.Header, m.Data)
		x.mu.Lock()
		x.addLocked(r)
		x.scanned = max(x.scanned, m.Seq)
		x.mu.Unlock()
		if m.Seq >= upTo {
			return nil
		}
	}
}

// Prune forgets what is known gone: everything below first (the stream's
// first sequence now), and messages at or below their consumer's
// acknowledgement floor (floors by action, and Parked for the parked
// copies): every one of them has been acked or terminated. It returns how
// many entries remain.
func (x *Index) Prune(first uint64, floors map[string]uint64) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.scanned = max(x.scanned, max(first, 1)-1) // below first: all gone
	for seq, e := range x.bySeq {
		if x.running[seq] > 0 {
			continue
		}
		switch {
		case seq <= x.scanned && (e == gone || seq < first):
			x.forgetLocked(seq)
		case e != gone && floors[e.group()] > 0 && seq <= floors[e.group()]:
			x.forgetLocked(seq)
			if seq > x.scanned {
				x.bySeq[seq] = gone
			}
		}
	}
	return len(x.bySeq)
}
