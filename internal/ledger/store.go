package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/topology"
)

// ErrNoLedger is matched by the error Open returns when the ledger's
// bucket does not exist (a service that never ran with
// PROVISION_STREAMS=true, or an operator who did not create it).
var ErrNoLedger = errors.New("ledger: the ledger's bucket does not exist")

// ErrContention is matched by the error of a write that lost the
// compare-and-set race maxAttempts times in a row.
var ErrContention = errors.New("ledger: the entry kept changing under the write")

// maxAttempts bounds the compare-and-set attempts of one write. Replicas
// write one user's entry at once only while they apply results about that
// user at once, so a few attempts always suffice.
const maxAttempts = 50

// Ledger reads and writes the ledger's bucket. Its methods are safe for
// concurrent use.
type Ledger struct {
	kv     jetstream.KeyValue
	maxAge time.Duration
	now    func() time.Time
}

// Open returns the ledger of topo, whose requests age out after
// topo.ResultMaxAge. A missing bucket is an error matching ErrNoLedger.
func Open(ctx context.Context, js jetstream.JetStream, topo topology.Topology) (*Ledger, error) {
	kv, err := js.KeyValue(ctx, topo.LedgerBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNoLedger, topo.LedgerBucket)
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: bucket %s: %w", topo.LedgerBucket, err)
	}
	return &Ledger{kv: kv, maxAge: topo.ResultMaxAge, now: time.Now}, nil
}

// Get returns the Record of the user email names, its requests older than
// the results' retention dropped. A user the ledger does not know has the
// zero Record (Known is false), which is not an error.
func (l *Ledger) Get(ctx context.Context, email string) (Record, error) {
	rec, _, _, err := l.read(ctx, Key(email))
	if err != nil {
		return Record{}, err
	}
	return rec.Prune(l.now(), l.maxAge), nil
}

// Show returns what the ledger says of the person email names (Get, then
// Record.View): the one reading behind `consumer user show` and the
// console's user page. A person the ledger does not know is StateUnknown
// with no requests, not an error; a missing bucket matches ErrNoLedger.
func Show(ctx context.Context, js jetstream.JetStream, topo topology.Topology, email string) (View, error) {
	l, err := Open(ctx, js, topo)
	if err != nil {
		return View{}, err
	}
	rec, err := l.Get(ctx, email)
	if err != nil {
		return View{}, err
	}
	return rec.View(email), nil
}

// read returns the entry under key, its revision, and whether there is
// one. An entry that does not decode reads as empty: the next write
// rebuilds it from the results it applies, and Reindex from all of them.
func (l *Ledger) read(ctx context.Context, key string) (rec Record, rev uint64, exists bool, err error) {
	e, err := l.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Record{}, 0, false, nil
	}
	if err != nil {
		return Record{}, 0, false, fmt.Errorf("ledger: read %s: %w", key, err)
	}
	if json.Unmarshal(e.Value(), &rec) != nil {
		rec = Record{}
	}
	return rec, e.Revision(), true, nil
}

// update applies fn to the entry under key with compare-and-set: fn gets
// the current Record and returns the new one; when that holds the same
// facts as the current one, nothing is written. A write that finds the
// entry changed since it was read starts again from the new value.
func (l *Ledger) update(ctx context.Context, key string, fn func(cur Record) Record) (written bool, err error) {
	for range maxAttempts {
		cur, rev, exists, err := l.read(ctx, key)
		if err != nil {
			return false, err
		}
		now := l.now()
		next := fn(cur).Prune(now, l.maxAge)
		if exists && same(cur, next) {
			return false, nil
		}
		next.Version, next.Updated = FormatVersion, now.UTC()
		data, err := json.Marshal(next)
		if err != nil {
			return false, fmt.Errorf("ledger: encode %s: %w", key, err)
		}
		if exists {
			_, err = l.kv.Update(ctx, key, data, rev)
		} else {
			_, err = l.kv.Create(ctx, key, data)
		}
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			continue // another writer got there first: merge into theirs
		default:
			return false, fmt.Errorf("ledger: write %s: %w", key, err)
		}
	}
	return false, fmt.Errorf("%w: %s, %d attempts", ErrContention, key, maxAttempts)
}
