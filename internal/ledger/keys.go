package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Entry returns the Record under key (a Key of some address), as Get
// does for an address: its requests older than the results' retention
// dropped, the zero Record when there is no entry. Reconciliation reads
// the entries of users Zoom did not list this way, knowing only their
// keys.
func (l *Ledger) Entry(ctx context.Context, key string) (Record, error) {
	rec, _, _, err := l.read(ctx, key)
	if err != nil {
		return Record{}, err
	}
	return rec.Prune(l.now(), l.maxAge), nil
}

// EachKey calls fn with the key of every entry of the bucket, in no
// particular order, reading only the keys (never the entries) through one
// listing. It stops at fn's first error and returns it; an empty bucket
// calls fn never.
func (l *Ledger) EachKey(ctx context.Context, fn func(key string) error) error {
	// The lister's goroutine ends when its context does, or once every
	// key is listed; a caller that stops early cancels it and drains what
	// it was sending, so that it never blocks on a send for good.
	lctx, cancel := context.WithCancel(ctx)
	lister, err := l.kv.ListKeys(lctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		cancel()
		return nil
	}
	if err != nil {
		cancel()
		return fmt.Errorf("ledger: list keys: %w", err)
	}
	defer func() {
		cancel()
		for range lister.Keys() {
		}
	}()
	for k := range lister.Keys() { // closed once every key is listed
		if err := fn(k); err != nil {
			return err
		}
	}
	return ctx.Err()
}
