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
			for m, last := range f.msgs {
				if now.Sub(last) >= every {
					due = append(due, m)
					f.msgs[m] = now
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
