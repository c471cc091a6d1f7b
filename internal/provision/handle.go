package provision

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/retry"
	"github.com/zoomprov/consumer/internal/zoom"
)

// attempt is what happened to a delivery: an attempt's answer, or what
// kept it from being made.
type attempt struct {
	kind    retry.Kind
	outcome messages.Outcome // the success's outcome when kind is Succeeded
	user    zoom.Response
	err     error
	reason  messages.Reason
	// httpStatus, zoomCode and trackingID are Zoom's answer.
	httpStatus, zoomCode int
	trackingID           string
	// detail is Zoom's message, or the service's own explanation (a
	// validation failure, a closed gate) for the result and dead letter.
	detail  string
	retryAt time.Time
	// try is the attempt's number within the delivery; expired says the
	// delivery's time ran out.
	try     int
	expired bool
	// failedDeliveries is how many earlier deliveries failed transiently,
	// counted when this delivery's tries ran out; waits how often in a row
	// the request was handed back to wait for an earlier one.
	failedDeliveries, waits int
}

// handle takes one message from receipt to its single settlement:
//
//	decode → wait for turn → (pace → call → classify, again while the
//	policy says retry now) → decide → settle
//
// A panic anywhere on the way is an attempt like any other (see safely).
func (s *Service) handle(ctx context.Context, msg jetstream.Msg) {
	since := s.track.release(msg)
	if since.IsZero() {
		since = time.Now()
	}
	s.track.add(msg, since)
	defer s.track.remove(msg)
	d, ok := s.newDelivery(msg)
	if !ok {
		return
	}
	ctx, span := s.startSpan(ctx, d)
	defer span.End()

	problem := s.decode(d)
	var n int
	d.turn, n = s.index().Enter(d.orderRequest())
	if n > int(s.pruneAt.Load()) {
		select {
		case s.pruneSoon <- struct{}{}:
		default:
		}
	}
	a, dec := s.process(ctx, d, problem)
	gone := s.settle(ctx, d, a, dec)
	d.turn.Leave(gone)
}

// process makes attempts until one is decisive: the delivery's own time
// limit (MessageTimeout) bounds them all. An invalid request (problem)
// makes none.
func (s *Service) process(ctx context.Context, d *delivery, problem *attempt) (attempt, retry.Decision) {
	if problem != nil {
		return *problem, s.decide(*problem)
	}
	callCtx := ctx
	ctx, cancel := context.WithTimeout(ctx, s.cfg.MessageTimeout)
	defer cancel()
	for try := 1; ; try++ {
		a := s.safely(ctx, callCtx, d, try)
		dec := s.decide(a)
		if dec.Verdict != retry.RetryNow {
			return a, dec
		}
		d.log.Debug().Err(a.err).Int("retry_attempt", try).Dur("retry_delay", dec.Delay).Msg("transient failure; retrying")
		retry.Sleep(ctx, dec.Delay, nil)
		switch {
		case errors.Is(ctx.Err(), context.Canceled):
			a = attempt{kind: retry.Interrupted, err: ctx.Err(), try: try}
			return a, s.decide(a)
		case ctx.Err() != nil:
			// The delivery's time ran out between tries of a failing
			// call: the failure counts.
			a.expired = true
			a.failedDeliveries = s.countFailure(ctx, d)
			return a, s.decide(a)
		}
	}
}

// safely makes one attempt; a panic becomes an attempt of kind Panicked,
// logged with its stack. ctx bounds the waits (the delivery's time);
// callCtx, which only the shutdown bound cuts, runs the Zoom call itself,
// so that a call whose place in the pacing came late still has its whole
// time-out.
func (s *Service) safely(ctx, callCtx context.Context, d *delivery, try int) (a attempt) {
	defer func() {
		if r := recover(); r != nil {
			d.log.Error().Interface("panic", r).Str("stack", string(debug.Stack())).
				Msg("panic while handling a request")
			a = attempt{kind: retry.Panicked, err: fmt.Errorf("provision: panic: %v", r), try: try}
		}
	}()
	a = s.tryOnce(ctx, callCtx, d)
	a.try, a.expired = try, ctx.Err() != nil
	if a.kind == retry.Transient && (try >= s.cfg.Policy.TriesPerDelivery || a.expired) {
		a.failedDeliveries = s.countFailure(ctx, d)
	}
	return a
}

// tryOnce is one pass down the path: respect a pause, wait for the turn,
// then pace and call.
func (s *Service) tryOnce(ctx, callCtx context.Context, d *delivery) attempt {
	if d.turn.Again() {
		// The first delivery, still in hand here, carries the request;
		// this one comes back later and finds it done, or takes over.
		return attempt{kind: retry.Blocked, err: errors.New("provision: another delivery of the request is in hand here"),
			detail: "another delivery of this request is being handled"}
	}
	if until, reason, paused := s.pause.State(); paused {
		// Another request just found an account problem: do not spend a
		// Zoom call to find it again.
		return attempt{kind: retry.Paused, retryAt: until, err: errors.New("provision: paused: " + reason)}
	}
	if a, ok := s.waitTurn(ctx, d); !ok {
		return a
	}
	if d.delivered > 1 {
		if a, ok := s.deadLettered(ctx, d); ok {
			return a
		}
	}
	return s.call(ctx, callCtx, d)
}

// decide asks the policy what to do: the one place an outcome is chosen.
func (s *Service) decide(a attempt) retry.Decision {
	return s.cfg.Policy.Decide(s.caseOf(a), s.now())
}

// caseOf is what the policy needs to know of an attempt.
func (s *Service) caseOf(a attempt) retry.Case {
	return retry.Case{
		Kind:             a.kind,
		Try:              max(a.try, 1),
		Expired:          a.expired,
		FailedDeliveries: a.failedDeliveries,
		RetryAt:          a.retryAt,
		Pauses:           s.pause.Count(),
		Waits:            a.waits,
	}
}

// handBack returns a message that was fetched but not started, so another
// replica can take it at once.
func (s *Service) handBack(msg jetstream.Msg) {
	d, ok := s.newDelivery(msg)
	if !ok {
		return
	}
	a := attempt{kind: retry.Interrupted, err: errors.New("provision: shutting down")}
	s.settle(context.Background(), d, a, s.decide(a))
}

// reconnects is how often the connection to NATS was re-established.
func (s *Service) reconnects() uint64 { return s.js.Conn().Stats().Reconnects }
