package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/topology"
)

// ReindexReport is what Reindex did.
type ReindexReport struct {
	// Cleared counts the entries cleared before the rebuild (markers of
	// forgotten people are kept, without what followed them).
	Cleared int
	// Through is the last result-stream sequence read.
	Through uint64
	// Read counts the messages read; Applied the terminal results about a
	// user among them.
	Read, Applied int
	// Users counts the entries written.
	Users int
}

// reindexWriters is how many entries Reindex writes at once.
const reindexWriters = 8

// Reindex rebuilds the ledger from the result stream: it clears every
// entry (a Forgotten marker stays, so that nothing it erased comes back),
// reads every result up to the stream's last sequence at that moment, and
// merges each user's results into their entry with compare-and-set.
//
// The replicas may keep writing meanwhile: a result they apply after an
// entry was cleared survives (the merge keeps it), one they applied before
// it was cleared was stored before the last sequence was read, so Reindex
// applies it again; both writes merge, in either order, into the same
// entry. progress, if not nil, is called with the messages read so far and
// the number to read.
func Reindex(ctx context.Context, js jetstream.JetStream, topo topology.Topology, progress func(read, total uint64)) (ReindexReport, error) {
	var rep ReindexReport
	l, err := Open(ctx, js, topo)
	if err != nil {
		return rep, err
	}
	forgotten, err := l.clear(ctx, &rep)
	if err != nil {
		return rep, err
	}
	if rep.Through, err = lastResult(ctx, js, topo); err != nil {
		return rep, err
	}
	users := map[string]Record{}
	err = scanResults(ctx, js, topo, rep.Through, func(m jetstream.Msg, md *jetstream.MsgMetadata) error {
		rep.Read++
		if progress != nil && rep.Read%1000 == 0 {
			progress(md.Sequence.Stream, rep.Through)
		}
		r, ok := decodeResult(topo, m.Subject(), m.Data(), md.Sequence.Stream, md.Timestamp)
		if !ok {
			return nil
		}
		if f, ok := forgotten[r.key]; ok && r.seq <= f {
			return nil
		}
		rep.Applied++
		users[r.key] = Merge(users[r.key], r.rec)
		return nil
	})
	if err != nil {
		return rep, err
	}
	if progress != nil {
		progress(rep.Through, rep.Through)
	}

	keys := make(chan string)
	errs := make(chan error, reindexWriters)
	var mu sync.Mutex
	var wg sync.WaitGroup
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range reindexWriters {
		wg.Go(func() {
			for key := range keys {
				rec := users[key]
				if _, err := l.update(wctx, key, func(cur Record) Record { return Merge(cur, rec) }); err != nil {
					errs <- err
					cancel()
					return
				}
				mu.Lock()
				rep.Users++
				mu.Unlock()
			}
		})
	}
feed:
	for key := range users {
		select {
		case keys <- key:
		case <-wctx.Done():
			break feed
		}
	}
	close(keys)
	wg.Wait()
	close(errs)
	if err := errors.Join(collect(errs)...); err != nil {
		return rep, err
	}
	return rep, ctx.Err()
}

func collect(errs <-chan error) []error {
	var out []error
	for err := range errs {
		out = append(out, err)
	}
	return out
}

// clear empties the bucket before a rebuild: each entry is purged, but a
// Forgotten marker, which is reset to the marker alone. It returns the
// markers' Through by key.
func (l *Ledger) clear(ctx context.Context, rep *ReindexReport) (map[string]uint64, error) {
	lister, err := l.kv.ListKeys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return map[string]uint64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: list keys: %w", err)
	}
	var keys []string
	for k := range lister.Keys() { // closed once every key is listed
		keys = append(keys, k)
	}
	forgotten := map[string]uint64{}
	for _, key := range keys {
		rec, _, exists, err := l.read(ctx, key)
		if err != nil {
			return nil, err
		}
		if !exists {
			continue
		}
		if f := rec.Forgotten; f != nil {
			forgotten[key] = f.Through
			if _, err := l.update(ctx, key, func(cur Record) Record {
				return Record{Version: FormatVersion, State: StateUnknown, Requests: []Request{}, Forgotten: cur.Forgotten}
			}); err != nil {
				return nil, err
			}
		} else if err := l.kv.Purge(ctx, key); err != nil {
			return nil, fmt.Errorf("ledger: clear %s: %w", key, err)
		}
		rep.Cleared++
	}
	return forgotten, nil
}
