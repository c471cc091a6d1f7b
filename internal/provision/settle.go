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
	"github.com/zoomprov/consumer/internal/seal"
	"github.com/zoomprov/consumer/internal/zoom"
)

// publishAckTimeout bounds one wait for a stream's acknowledgement, and
// settleTimeout all of settling: a publish that gets no answer (the
// stream's leader died with it, or the stream has none while it elects
// one, which takes up to ten seconds or so) is sent again, with the same
// message id so the stream keeps one copy, until settleTimeout. The
// request stays in hand, with heartbeats, meanwhile: handing it back would
// repeat its Zoom call, and a user created by the first would end
// "exists". Only the shutdown bound cuts it shorter.
const (
	publishAckTimeout = 2 * time.Second
	settleTimeout     = time.Minute
)

// settle carries out a decision. It switches on the verdict only, never on
// what caused it, and it is the only code that acks, naks or terminates:
// the outcome is published first and the stream's acknowledgement awaited,
// and only then is the request acknowledged, so a crash at any point
// leaves the request to be handled again rather than lost. When the
// outcome cannot be recorded, that is decided like anything else.
func (s *Service) settle(ctx context.Context, d *delivery, a attempt, dec retry.Decision) {
	// ctx ends only when the shutdown bound is reached (not with the
	// delivery's own time limit, which handle keeps to itself).
	sctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	log := dlog{s: s, d: d, subject: d.stray}
	unrecorded := func(err error) {
		log.Error().AnErr("publish_error", err).Msg("could not record the outcome")
		s.settle(ctx, d, attempt{kind: retry.Unrecorded, err: err}, s.decide(d, retry.Outcome{Kind: retry.Unrecorded, Try: 1}))
	}
	switch dec.Verdict {
	case retry.Ack:
		res := s.result(d, a)
		res.Outcome = a.outcome
		res.ZoomUserID = a.user.User.ID
		if err := s.publishResult(sctx, res); err != nil {
			unrecorded(err)
			return
		}
		if d.delivered > 1 {
			s.forgetFailures(sctx, d)
		}
		s.ack(sctx, log, d)
		s.credentialsAccepted()
		if s.hold.Clear() {
			log.Info().Msg("account problem resolved; taking new work again")
		}
		s.recordOutcome(log.Info(), d, a, string(a.outcome)).Str("zoom_user_id", res.ZoomUserID).Msg("request done")

	case retry.DeadLetter:
		if dec.Exhausted {
			a.reason = messages.ReasonRetriesExhausted
		}
		res := s.result(d, a)
		res.Outcome = messages.OutcomeFailed
		if err := s.publishDeadLetter(sctx, d, a); err != nil {
			unrecorded(err)
			return
		}
		if err := s.publishResult(sctx, res); err != nil {
			unrecorded(err)
			return
		}
		if d.delivered > 1 || dec.Exhausted {
			s.forgetFailures(sctx, d)
		}
		s.logSettleErr(log, s.terminate(d.msg, string(a.reason)))
		s.metrics.DeadLetter(knownAction(d.action), string(a.reason))
		s.recordOutcome(log.Warn(), d, a, string(messages.OutcomeFailed)).Str("reason", string(a.reason)).Msg("request dead-lettered")

	case retry.Defer:
		retryAt := s.now().Add(dec.Delay)
		res := s.result(d, a)
		res.Outcome = messages.OutcomeDeferred
		res.RetryAt = retryAt.UTC().Format(time.RFC3339)
		if err := s.publishResult(sctx, res); err != nil {
			unrecorded(err)
			return
		}
		s.logSettleErr(log, d.msg.NakWithDelay(dec.Delay))
		s.recordOutcome(log.Info(), d, a, string(messages.OutcomeDeferred)).Time("retry_at", retryAt).Msg("quota exhausted; request deferred")

	case retry.RetryLater:
		s.logSettleErr(log, d.msg.NakWithDelay(dec.Delay))
		s.recordOutcome(log.Warn(), d, a, metrics.OutcomeRetry).Int("failed_deliveries", d.failed+1).Dur("retry_delay", dec.Delay).
			Msg("transient failure; redelivery scheduled")

	case retry.Hold:
		reason := holdReason(a)
		until, started := s.hold.Start(dec.Delay, reason, credentialsRefused(a.err))
		s.logSettleErr(log, d.msg.NakWithDelay(max(until.Sub(s.now()), 0)))
		if started {
			s.recordOutcome(log.Error(), d, a, metrics.OutcomeHeld).Time("held_until", until).Str("held_reason", reason).
				Msg("account-level problem with Zoom; holding all work (check the credentials, scopes and role of the Zoom app)")
		} else {
			// One error line per hold, but still one outcome line per
			// request.
			s.recordOutcome(log.Info(), d, a, metrics.OutcomeHeld).Time("held_until", until).
				Msg("account-level problem with Zoom; request handed back until the hold ends")
		}

	case retry.Drop:
		d.gone = true
		s.recordOutcome(log.Info(), d, a, dec.Label).Msg("request finished by another delivery; this one ends without a result")

	default: // retry.HandBack; a RetryNow never reaches here
		if dec.Delay > 0 {
			s.logSettleErr(log, d.msg.NakWithDelay(dec.Delay))
		} else {
			s.logSettleErr(log, d.msg.Nak())
		}
		s.recordOutcome(log.Info(), d, a, dec.Label).Dur("retry_delay", dec.Delay).Msg("request handed back")
	}
}

// ack acknowledges a finished request. A lifecycle operation, or a request
// with later ones about the same user waiting, is acknowledged with the
// server's confirmation: an acknowledgement lost in a reconnection would
// let the request be handled again after the later ones (a deleted user
// created again, an update applied after the deactivation that followed
// it). Other requests are acknowledged without a round trip.
func (s *Service) ack(ctx context.Context, log dlog, d *delivery) {
	if d.op == "" && !s.order.HasLater(d.seq, d.key) {
		s.logSettleErr(log, d.msg.Ack())
		return
	}
	err := d.msg.DoubleAck(ctx)
	s.logSettleErr(log, err)
	d.gone = err == nil || errors.Is(err, jetstream.ErrMsgAlreadyAckd)
}

// terminate ends a dead-lettered request. In a work-queue stream Term
// removes the message like an ack, and its reason shows in the server's
// advisory; servers before 2.10.4 do not understand a reason (2.9 left the
// message in the stream), so they get a plain ack, which removes it too.
func (s *Service) terminate(msg message, reason string) error {
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

// logSettleErr logs a failed ack, nak or term: the message then comes back
// after AckWait, and its handling is idempotent.
func (s *Service) logSettleErr(log dlog, err error) {
	if err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
		log.Warn().Err(err).Msg("could not settle the message; it will be redelivered")
	}
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
		ZoomMessage:    a.detail,
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

// publish publishes m and waits until its stream acknowledges it, sending
// it again (same message id: the stream keeps one) after a lost or failed
// acknowledgement until ctx ends. The publish is asynchronous underneath
// (PublishMsgAsync and its PubAckFuture) rather than a request per
// message: the workers' publishes share one reply subscription and their
// writes are batched, which costs the service and the server less per
// message than PublishMsg, with the same guarantee.
func (s *Service) publish(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) error {
	var err error
	for try := 1; ; try++ {
		if err = s.publishOnce(ctx, m, opts...); err == nil || ctx.Err() != nil || !passing(err) {
			return err
		}
		if try > 1 {
			s.log.Debug().Err(err).Str("subject", m.Subject).Int("try", try).Msg("publish not acknowledged; sending again")
		}
		sleep(ctx, min(time.Duration(try)*100*time.Millisecond, time.Second))
		if ctx.Err() != nil {
			return err
		}
	}
}

// passing reports whether a publish error may go away by itself: no answer
// in time, no stream leader (no responders), too many publishes pending, a
// connection being re-established. A stream that refuses the message (a
// wrong expected stream, a message too large) refuses it again.
func passing(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code >= 500
	}
	return true
}

func (s *Service) publishOnce(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) error {
	// A fresh message each time: the client keeps m with its future.
	c := nats.NewMsg(m.Subject)
	c.Data, c.Header = m.Data, m.Header
	f, err := s.pub.PublishMsgAsync(c, opts...)
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
		ZoomMessage:      a.detail,
		OriginalSubject:  d.subject,
		OriginalSequence: d.seq,
		RequestID:        d.requestID,
		Deliveries:       int(d.delivered),
		DeadLetteredAt:   s.now(),
	}
	m := nats.NewMsg(s.topo.DeadLetterSubject(action))
	m.Data, dl.Password, dl.SealKey = sealPasswords(s.cfg.Seal, d.data)
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

// sealPasswords returns body with every password sealed with keys, or
// redacted without them (or if sealing fails), so that a dead letter,
// which may be kept for years, never holds one in plain text; with what
// became of them and the sealing key's id, "" when there were none.
func sealPasswords(keys *seal.Keyring, body []byte) (out []byte, state, keyID string) {
	redact := func([]byte) (string, error) { return messages.PasswordRedacted, nil }
	if keys != nil {
		out, n, err := messages.ReplacePasswords(body, func(raw []byte) (string, error) { return keys.Seal(raw) })
		switch {
		case err == nil && n == 0:
			return body, "", ""
		case err == nil:
			return out, messages.PasswordSealed, keys.ID()
		}
	}
	out, n, err := messages.ReplacePasswords(body, redact)
	if err != nil || n == 0 {
		return body, "", ""
	}
	return out, messages.PasswordRedacted, ""
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
