package provision

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/metrics"
	"github.com/zoomprov/consumer/internal/retry"
	"github.com/zoomprov/consumer/internal/zoom"
)

// publishTimeout bounds each wait for a stream's acknowledgement. Settling
// runs on its own context so a message whose handling ran out of time is
// still settled.
const publishTimeout = 10 * time.Second

// settleRetryDelay is the redelivery delay after the outcome could not be
// recorded (NATS unreachable): the whole handling is repeated later, and
// de-duplication of results and dead letters makes the repeat harmless.
const settleRetryDelay = 5 * time.Second

// settle carries out a decision. It is the only code that acks, naks or
// terminates: the outcome is published first and the stream's
// acknowledgement awaited, and only then is the request acknowledged, so a
// crash at any point leaves the request to be handled again rather than
// lost.
func (s *Service) settle(ctx context.Context, log dlog, d *delivery, a attempt, dec retry.Decision) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	switch dec.Verdict {
	case retry.Ack:
		res := s.result(d, a)
		res.Outcome = a.outcome
		res.ZoomUserID = a.user.User.ID
		if err := s.publishResult(sctx, res); err != nil {
			s.unsettled(log, d, a, err)
			return
		}
		if d.delivered > 1 {
			s.forgetFailures(sctx, d)
		}
		s.ack(log, d, d.msg.Ack())
		s.creds.set(CredentialsAccepted, "")
		if s.hold.clear() {
			log.Info().Msg("account problem resolved; taking new work again")
		}
		s.logEvent(log.Info(), d, a, string(a.outcome)).Str("zoom_user_id", res.ZoomUserID).Msg("user provisioned")

	case retry.DeadLetter:
		if dec.Exhausted {
			a.reason = messages.ReasonRetriesExhausted
		}
		res := s.result(d, a)
		res.Outcome = messages.OutcomeFailed
		if err := s.publishDeadLetter(sctx, d, a); err != nil {
			s.unsettled(log, d, a, err)
			return
		}
		if err := s.publishResult(sctx, res); err != nil {
			s.unsettled(log, d, a, err)
			return
		}
		if d.delivered > 1 {
			s.forgetFailures(sctx, d)
		}
		s.ack(log, d, s.terminate(d.msg, string(a.reason)))
		s.metrics.DeadLetter(knownAction(d.action), string(a.reason))
		s.logEvent(log.Warn(), d, a, string(messages.OutcomeFailed)).Str("reason", string(a.reason)).Msg("request dead-lettered")

	case retry.NakAfter:
		switch a.kind {
		case retry.RateLimited:
			retryAt := s.now().Add(dec.Delay)
			res := s.result(d, a)
			res.Outcome = messages.OutcomeDeferred
			res.RetryAt = retryAt.UTC().Format(time.RFC3339)
			if err := s.publishResult(sctx, res); err != nil {
				s.unsettled(log, d, a, err)
				return
			}
			s.ack(log, d, d.msg.NakWithDelay(dec.Delay))
			s.logEvent(log.Info(), d, a, string(messages.OutcomeDeferred)).Time("retry_at", retryAt).Msg("quota exhausted; request deferred")
		case retry.Transient:
			// Only the last try of a delivery naks for a transient
			// failure, and handle read the count before deciding.
			n := d.failed + 1
			if err := s.recordFailure(sctx, d, n); err != nil {
				log.Warn().Err(err).Msg("could not record the failure count")
			}
			s.ack(log, d, d.msg.NakWithDelay(dec.Delay))
			s.logEvent(log.Warn(), d, a, metrics.OutcomeRetry).Int("failed_deliveries", n).Dur("retry_delay", dec.Delay).Msg("transient failure; redelivery scheduled")
		default: // interrupted by shutdown: give it back at once
			s.ack(log, d, d.msg.Nak())
			s.logEvent(log.Info(), d, a, metrics.OutcomeHandedBack).Msg("shutdown interrupted the request; handed back")
		}

	case retry.Hold:
		until, started := s.hold.start(s.now(), dec.Delay, holdReason(a), credentialsRefused(a.err))
		s.ack(log, d, d.msg.NakWithDelay(until.Sub(s.now())))
		if started {
			s.logEvent(log.Error(), d, a, metrics.OutcomeHeld).Time("held_until", until).Str("held_reason", holdReason(a)).
				Msg("account-level problem with Zoom; holding all work (check the credentials, scopes and role of the Zoom app)")
		} else {
			// One error line per hold, but still one outcome line per
			// request.
			s.logEvent(log.Info(), d, a, metrics.OutcomeHeld).Time("held_until", until).
				Msg("account-level problem with Zoom; request handed back until the hold ends")
		}
	}
}

// terminate ends a dead-lettered request. In a work-queue stream Term
// removes the message like an ack, and its reason shows in the server's
// advisory; servers before 2.10.4 do not understand a reason (2.9 left the
// message in the stream), so they get a plain ack, which removes it too.
func (s *Service) terminate(msg jetstream.Msg, reason string) error {
	if serverAtLeast(s.js.Conn().ConnectedServerVersion(), 2, 10, 4) {
		return msg.TermWithReason(reason)
	}
	return msg.Ack()
}

// credentialsRefused reports whether err is the token endpoint refusing the
// credentials.
func credentialsRefused(err error) bool {
	var tokErr *zoom.TokenError
	return errors.As(err, &tokErr) && tokErr.CredentialsRejected()
}

func holdReason(a attempt) string {
	if a.err == nil {
		return "account problem"
	}
	return maskEmails(a.err.Error())
}

// ack logs a failed ack/nak/term: the message will then come back after
// AckWait, and its handling is idempotent.
func (s *Service) ack(log dlog, d *delivery, err error) {
	if err != nil {
		log.Warn().Err(err).Msg("could not settle the message; it will be redelivered")
	}
}

// unsettled handles a failure to record an outcome: the request is handed
// back for a later redelivery instead of being acknowledged.
func (s *Service) unsettled(log dlog, d *delivery, a attempt, err error) {
	_ = d.msg.NakWithDelay(settleRetryDelay)
	s.logEvent(log.Error(), d, a, metrics.OutcomeUnsettled).AnErr("publish_error", err).Msg("could not record the outcome; request handed back")
}

// result fills the fields every result event shares.
func (s *Service) result(d *delivery, a attempt) messages.Result {
	// The subject's action: for valid requests it equals the body's, and
	// for invalid ones it is the only routing the request really had.
	action := d.action
	if action == "" {
		action = string(d.req.Action)
	}
	return messages.Result{
		RequestID:      d.requestID,
		Action:         action,
		Email:          d.email,
		HTTPStatus:     a.httpStatus,
		ZoomCode:       a.zoomCode,
		ZoomMessage:    a.zoomMsg,
		Reason:         a.reason,
		Attempt:        int(d.delivered),
		StreamSequence: d.seq,
		ReplayOf:       d.replayOf,
	}
}

// publishResult publishes a result event and waits for the result stream's
// acknowledgement. The event id doubles as Nats-Msg-Id, so the stream keeps
// only the first terminal event of a request. The trace context of ctx goes
// into the traceparent header and the event's traceparent attribute.
func (s *Service) publishResult(ctx context.Context, r messages.Result) error {
	ev := messages.NewEvent(r, s.now())
	m := nats.NewMsg(s.topo.ResultSubject(r.Outcome))
	ev.TraceParent = injectTrace(ctx, m.Header)
	data, err := ev.Marshal()
	if err != nil {
		return fmt.Errorf("provision: encode result: %w", err)
	}
	m.Data = data
	m.Header.Set("Content-Type", messages.ContentTypeCloudEvents)
	if err := s.publish(ctx, m, jetstream.WithMsgID(ev.ID), jetstream.WithExpectStream(s.topo.ResultStream)); err != nil {
		s.metrics.PublishFailed(metrics.PublishResult)
		return fmt.Errorf("provision: publish result: %w", err)
	}
	return nil
}

// publish publishes m and waits until its stream acknowledges it (or ctx
// ends): the caller settles the request only after that. The publish is
// asynchronous underneath (PublishMsgAsync and its PubAckFuture) rather
// than a request per message: the workers' publishes share one reply
// subscription and their writes are batched, which costs the service and
// the server less per message than PublishMsg, with the same guarantee.
func (s *Service) publish(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) error {
	f, err := s.pub.PublishMsgAsync(m, opts...)
	if err != nil {
		return err
	}
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// publishDeadLetter copies the original body, byte for byte, to the
// dead-letter stream with the reason in headers, and waits for the
// stream's acknowledgement.
func (s *Service) publishDeadLetter(ctx context.Context, d *delivery, a attempt) error {
	action := d.action
	if action == "" {
		action = "unknown"
	}
	dl := messages.DeadLetter{
		Reason:           a.reason,
		HTTPStatus:       a.httpStatus,
		ZoomCode:         a.zoomCode,
		ZoomMessage:      a.zoomMsg,
		OriginalSubject:  d.subject,
		OriginalSequence: d.seq,
		RequestID:        d.requestID,
		Deliveries:       int(d.delivered),
		DeadLetteredAt:   s.now(),
	}
	m := nats.NewMsg(s.topo.DeadLetterSubject(action))
	m.Data = d.data
	for k, v := range dl.Headers() {
		m.Header.Set(k, v)
	}
	// The trace context of the handling span replaces the publisher's, so
	// the dead letter hangs off the span that decided it.
	traced := injectTrace(ctx, m.Header) != ""
	// Keep the publisher's own headers (replay markers, baggage) unless
	// they clash with ours. Nats-* headers (Msg-Id, Expected-*) steer the
	// publish itself and must not be copied.
	for k, vs := range d.header {
		if _, ours := m.Header[k]; ours || strings.HasPrefix(k, "Nats-") {
			continue
		}
		if traced && (strings.EqualFold(k, HeaderTraceParent) || strings.EqualFold(k, "tracestate")) {
			continue
		}
		m.Header[k] = vs
	}
	if err := s.publish(ctx, m, jetstream.WithMsgID(messages.DeadLetterMsgID(d.requestID)), jetstream.WithExpectStream(s.topo.DeadLetterStream)); err != nil {
		s.metrics.PublishFailed(metrics.PublishDeadLetter)
		return fmt.Errorf("provision: publish dead letter: %w", err)
	}
	return nil
}

var emailPattern = regexp.MustCompile(`[^\s"'<>(),;:]+@[^\s"'<>(),;:]+`)

// maskEmails masks every e-mail address in s, for log lines that carry
// Zoom's messages ("User already in the account: a@b.c").
func maskEmails(s string) string {
	return emailPattern.ReplaceAllStringFunc(s, messages.MaskEmail)
}

// redactedError logs an error with e-mail addresses masked unless full
// addresses were asked for.
type redactedError struct {
	err  error
	full bool
}

func (r redactedError) Error() string {
	if r.full {
		return r.err.Error()
	}
	return maskEmails(r.err.Error())
}
