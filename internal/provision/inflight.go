package provision

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// inflight tracks the messages being handled so that one goroutine can
// send progress heartbeats for all of them, instead of a timer per message.
type inflight struct {
	mu   sync.Mutex
	msgs map[jetstream.Msg]time.Time // message → last heartbeat (or start)
	// waiting are fetched messages a dispatcher keeps until a worker is
	// free; they get heartbeats too but do not count as in flight.
	waiting map[jetstream.Msg]time.Time
}

// queue registers a message a dispatcher keeps for a worker.
func (f *inflight) queue(m jetstream.Msg, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.waiting == nil {
		f.waiting = make(map[jetstream.Msg]time.Time)
	}
	f.waiting[m] = now
}

// release ends queue, returning when the message last had a heartbeat, so
// the worker's own tracking continues from there.
func (f *inflight) release(m jetstream.Msg) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.waiting[m]
	delete(f.waiting, m)
	return t
}

func (f *inflight) add(m jetstream.Msg, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.msgs == nil {
		f.msgs = make(map[jetstream.Msg]time.Time)
	}
	f.msgs[m] = now
}

func (f *inflight) remove(m jetstream.Msg) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.msgs, m)
}

func (f *inflight) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.msgs)
}

// heartbeat sends InProgress for every message in flight longer than every,
// so a slow Zoom call, a rate-limiter wait or in-process retries do not let
// AckWait expire and the message be delivered twice at once. It returns when
// ctx is done.
func (f *inflight) heartbeat(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = 10 * time.Second
	}
	tick := time.NewTicker(every / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			var due []jetstream.Msg
			f.mu.Lock()
			for _, set := range []map[jetstream.Msg]time.Time{f.msgs, f.waiting} {
				for m, last := range set {
					if now.Sub(last) >= every {
						due = append(due, m)
						set[m] = now
					}
				}
			}
			f.mu.Unlock()
			for _, m := range due {
				// A failure here (connection down) only means the message
				// may be redelivered; its handling is idempotent.
				_ = m.InProgress()
			}
		}
	}
}
