package provision

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/guard"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/retry"
)

// Fetching: each action's dispatcher asks its consumer for as many
// messages as there are free workers, so every fetched message goes
// straight to a worker and gets progress heartbeats from the moment it
// arrives; none waits unseen in a client buffer while Zoom is slow or a
// gate is closed or the account paused. While an action's consumer is busy, a fetch is a
// no-wait request for a batch; once it comes back short, the dispatcher
// waits for the next message with a long poll that holds no worker.
const (
	// idleWait is a long poll's lifetime, and idleHeartbeat the server's
	// heartbeat during it: a pull request lost with a leader (a SIGKILLed
	// node never answers it) is noticed after two missed heartbeats.
	idleWait      = 5 * time.Second
	idleHeartbeat = time.Second
	// gatherWait is how long a dispatcher that has free workers waits for
	// more to come free before it fetches: a batch per round trip instead
	// of a round trip per message, for at most this much idle time.
	gatherWait = 2 * time.Millisecond
	// fetchRetryMax caps the wait between fetches that failed for want of
	// a consumer leader: a new leader is used within this much of its
	// election, and an unanswered request costs the server next to
	// nothing.
	fetchRetryMax = 250 * time.Millisecond
)

// fetchBackoff spaces the fetches that failed for want of a consumer
// leader, up to fetchRetryMax.
var fetchBackoff = retry.Schedule{Initial: 50 * time.Millisecond, Max: fetchRetryMax}

// slots counts free workers. A dispatcher takes slots before fetching, and
// a worker gives its slot back when it has settled a message.
type slots struct{ free chan struct{} }

func newSlots(n int) *slots {
	s := &slots{free: make(chan struct{}, n)}
	for range n {
		s.free <- struct{}{}
	}
	return s
}

// acquire takes at least one slot (waiting for it) and up to most, waiting
// up to gatherWait for want of them. It returns 0 only when ctx ends.
func (s *slots) acquire(ctx context.Context, want, most int) int {
	select {
	case <-s.free:
	case <-ctx.Done():
		return 0
	}
	n := 1
	var deadline <-chan time.Time
	for n < most {
		select {
		case <-s.free:
			n++
			continue
		default:
		}
		if n >= want {
			return n
		}
		if deadline == nil {
			t := time.NewTimer(gatherWait)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-s.free:
			n++
		case <-deadline:
			return n
		case <-ctx.Done():
			return n
		}
	}
	return n
}

// release gives n slots back.
func (s *slots) release(n int) {
	for range n {
		s.free <- struct{}{}
	}
}

// dispatch feeds one action's messages to the workers until ctx ends.
// While the account is paused or the action's quota gate is closed it
// fetches nothing new.
func (s *Service) dispatch(ctx context.Context, action string, cons jetstream.Consumer, work chan<- jetstream.Msg) error {
	want := max(1, s.cfg.FetchBatch/4)
	busy := true
	failures := 0 // fetch errors in a row
	var warned time.Time
	for ctx.Err() == nil {
		s.pause.Wait(ctx)
		s.gates.Wait(ctx, action)
		if s.cfg.GuardLimit > 0 && guard.Destructive(messages.Operation(action)) {
			s.guard.wait(ctx)
		}
		if ctx.Err() != nil {
			return nil
		}
		var err error
		if busy {
			busy, err = s.fetchBatch(ctx, cons, want, work)
		} else {
			busy, err = s.poll(ctx, cons, work)
		}
		if err == nil {
			if failures > 0 && !warned.IsZero() {
				s.log.Info().Str("consumer", s.topo.ConsumerName(action)).Int("failed_fetches", failures).Msg("fetching again")
			}
			failures, warned = 0, time.Time{}
			continue
		}
		failures++
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, jetstream.ErrConnectionClosed):
			return ErrConnectionClosed
		case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
			s.log.Warn().Err(err).Str("consumer", s.topo.ConsumerName(action)).Msg("consumer gone; binding again")
			if cons, err = s.rebind(ctx, action); err != nil || cons == nil {
				return err
			}
		case errors.Is(err, jetstream.ErrNoHeartbeat), errors.Is(err, jetstream.ErrConsumerLeadershipChanged):
			// The pull request was lost with a leader: ask again at once.
		default:
			// No responders: the consumer has no leader (an election after
			// a node died, 4 to 9 s in nats-server); other errors are as
			// passing. Ask again soon, a little later each time up to
			// fetchRetryMax, and say so once in a while.
			if time.Since(warned) > 30*time.Second {
				s.log.Warn().Err(err).Str("consumer", s.topo.ConsumerName(action)).Msg("fetch failed; retrying")
				warned = time.Now()
			}
			retry.Sleep(ctx, fetchBackoff.Delay(failures), nil)
			// A consumer deleted between two fetches (with its stream,
			// say) answers no responders too, not "deleted": look now and
			// then whether it is gone, or this dispatcher would wait for
			// a leader forever.
			if failures%8 == 0 && s.consumerGone(ctx, action) {
				s.log.Warn().Str("consumer", s.topo.ConsumerName(action)).Msg("consumer gone; binding again")
				if cons, err = s.rebind(ctx, action); err != nil || cons == nil {
					return err
				}
			}
		}
		busy = false
	}
	return nil
}

// fetchBatch takes free workers, fetches at most that many messages
// without waiting, and hands each to a worker. It reports whether the
// consumer filled the batch (more are likely waiting).
func (s *Service) fetchBatch(ctx context.Context, cons jetstream.Consumer, want int, work chan<- jetstream.Msg) (bool, error) {
	n := s.free.acquire(ctx, want, s.cfg.FetchBatch)
	if n == 0 {
		return false, ctx.Err()
	}
	batch, err := cons.FetchNoWait(n)
	if err != nil {
		s.free.release(n)
		return false, err
	}
	got := 0
	for msg := range batch.Messages() {
		got++
		s.track.queue(msg, time.Now())
		s.toWorker(ctx, msg, work)
	}
	s.free.release(n - got)
	return got == n, batch.Error()
}

// poll waits for the next message of an idle consumer without holding a
// worker; the message, once here, waits heartbeated for one.
func (s *Service) poll(ctx context.Context, cons jetstream.Consumer, work chan<- jetstream.Msg) (bool, error) {
	pctx, cancel := context.WithTimeout(ctx, idleWait)
	defer cancel()
	batch, err := cons.Fetch(1, jetstream.FetchContext(pctx), jetstream.FetchHeartbeat(idleHeartbeat))
	if err != nil {
		return false, err
	}
	got := false
	for msg := range batch.Messages() {
		got = true
		s.track.queue(msg, time.Now())
		if s.free.acquire(ctx, 1, 1) == 0 {
			s.track.release(msg)
			s.handBack(msg)
			continue
		}
		s.toWorker(ctx, msg, work)
	}
	err = batch.Error()
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		err = nil // the long poll's own end
	}
	return got, err
}

// toWorker gives a message for which a slot is held to a worker, or hands
// it back when shutdown began.
func (s *Service) toWorker(ctx context.Context, msg jetstream.Msg, work chan<- jetstream.Msg) {
	// Known to the order before its worker starts, in stream order: the
	// worker of a later request fetched with it, which may get to its
	// turn first, then needs no read of the stream to learn of it.
	if md, err := msg.Metadata(); err == nil {
		if s.consumerRecreated(md.Consumer, md.Sequence.Consumer) {
			// Recreated with its stream, maybe, while this dispatcher's
			// fetches went on: the first new message must not be handled
			// with the old stream's request ids and order.
			if stream, err := s.js.Stream(ctx, s.topo.RequestStream); err == nil {
				s.follow(stream.CachedInfo())
			}
		}
		x := s.index()
		x.Expect(x.Of(msg.Subject(), md.Sequence.Stream, msg.Headers(), msg.Data()))
	}
	if ctx.Err() == nil {
		select {
		case work <- msg:
			return
		case <-ctx.Done():
		}
	}
	s.track.release(msg)
	s.free.release(1)
	s.handBack(msg)
}

// consumerGone reports whether action's consumer, or its stream, no
// longer exists (false when that cannot be told now).
func (s *Service) consumerGone(ctx context.Context, action string) bool {
	_, err := s.js.Consumer(ctx, s.topo.RequestStream, s.topo.ConsumerName(action))
	return errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound)
}

// consumerRecreated records consumer's delivery sequence seq and reports
// whether it went back: a consumer's deliveries, redeliveries included,
// are numbered upwards, so the consumer was deleted and created again.
func (s *Service) consumerRecreated(consumer string, seq uint64) bool {
	s.deliveredMu.Lock()
	defer s.deliveredMu.Unlock()
	if s.delivered == nil {
		s.delivered = map[string]uint64{}
	}
	last, seen := s.delivered[consumer]
	s.delivered[consumer] = seq
	return seen && seq <= last
}

// rebind binds the consumer again after the server dropped it (e.g. an
// operator deleted it), recreating it first when provisioning is allowed,
// with backoff until ctx ends. A nil consumer means ctx ended.
func (s *Service) rebind(ctx context.Context, action string) (jetstream.Consumer, error) {
	sched := retry.Schedule{Initial: 250 * time.Millisecond, Max: 10 * time.Second, Jitter: 0.2}
	for n := 1; ; n++ {
		if s.cfg.Provision {
			cc := s.topo.ConsumerConfig(action, s.cfg.AckWait, s.cfg.MaxAckPending)
			if _, err := s.js.CreateOrUpdateConsumer(ctx, s.topo.RequestStream, cc); err != nil && ctx.Err() == nil {
				s.log.Warn().Err(err).Str("consumer", cc.Durable).Msg("recreate consumer")
			}
		}
		c, err := s.js.Consumer(ctx, s.topo.RequestStream, s.topo.ConsumerName(action))
		if err == nil {
			// The consumer may be gone with its stream (recreated by an
			// operator): the request ids and the order start afresh.
			if stream, err := s.js.Stream(ctx, s.topo.RequestStream); err == nil {
				s.follow(stream.CachedInfo())
			}
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		s.log.Warn().Err(err).Str("consumer", s.topo.ConsumerName(action)).Msg("bind consumer")
		retry.Sleep(ctx, sched.Delay(n), nil)
	}
}
