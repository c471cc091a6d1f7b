package provision

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/metrics"
	"github.com/zoomprov/consumer/internal/retry"
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

// settle carries out a decision, once per delivery. It switches on the
// verdict only, never on what caused it, and it is the only code that
// acks, naks or terminates: an outcome is published first and the
// stream's acknowledgement awaited, and only then is the request
// acknowledged, so a crash at any point leaves the request to be handled
// again rather than lost. An outcome that cannot be recorded hands the
// request back. It reports whether the message is known to have left the
// stream.
func (s *Service) settle(ctx context.Context, d *delivery, a attempt, dec retry.Decision) (gone bool) {
	// ctx ends only when the shutdown bound is reached (not with the
	// delivery's own time limit, which process keeps to itself).
	sctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	log := d.log
	unrecorded := func(err error) bool {
		log.Error().AnErr("publish_error", err).Msg("could not record the outcome")
		a = attempt{kind: retry.Unrecorded, err: err}
		dec = s.decide(a)
		s.logSettleErr(log, d.msg.NakWithDelay(dec.Delay))
		s.recordOutcome(log.Info(), d, a, metrics.OutcomeUnsettled).Dur("retry_delay", dec.Delay).Msg("request handed back")
		return false
	}
	switch dec.Verdict {
	case retry.Ack:
		res := s.result(d, a)
		res.Outcome = a.outcome
		res.ZoomUserID = a.user.User.ID
		res.Request = d.applied()
		if err := s.publishResult(sctx, res); err != nil {
			return unrecorded(err)
		}
		if d.delivered > 1 {
			s.forgetFailures(sctx, d)
		}
		gone = s.ack(sctx, log, d)
		s.credentialsAccepted()
		if s.pause.Clear() {
			log.Info().Msg("account problem resolved; taking new work again")
		}
		s.recordOutcome(log.Info(), d, a, string(a.outcome)).Str("zoom_user_id", res.ZoomUserID).Msg("request done")

	case retry.DeadLetter:
		if dec.Exhausted {
			a.reason = messages.ReasonRetriesExhausted
		}
		// Remember the verdict first: a crash before the request is
		// terminated must not let a redelivery call Zoom after all.
		s.markDeadLettered(sctx, d, a)
		if err := s.publishDeadLetter(sctx, d, a); err != nil {
			return unrecorded(err)
		}
		res := s.result(d, a)
		res.Outcome = messages.OutcomeFailed
		if a.kind != retry.Invalid {
			res.Request = d.applied()
		}
		if err := s.publishResult(sctx, res); err != nil {
			return unrecorded(err)
		}
		s.forgetFailures(sctx, d)
		s.logSettleErr(log, s.terminate(d.msg, string(a.reason)))
		s.metrics.DeadLetter(knownAction(d.action), string(a.reason))
		s.recordOutcome(log.Warn(), d, a, string(messages.OutcomeFailed)).Str("reason", string(a.reason)).Msg("request dead-lettered")

	case retry.Defer:
		retryAt := s.now().Add(dec.Delay)
		res := s.result(d, a)
		res.Outcome = messages.OutcomeDeferred
		res.RetryAt = retryAt.UTC().Format(time.RFC3339)
		if err := s.publishResult(sctx, res); err != nil {
			return unrecorded(err)
		}
		s.logSettleErr(log, d.msg.NakWithDelay(dec.Delay))
		s.recordOutcome(log.Info(), d, a, string(messages.OutcomeDeferred)).Time("retry_at", retryAt).Msg("quota exhausted; request deferred")

	case retry.RetryLater:
		s.logSettleErr(log, d.msg.NakWithDelay(dec.Delay))
		s.recordOutcome(log.Warn(), d, a, metrics.OutcomeRetry).Int("failed_deliveries", a.failedDeliveries+1).Dur("retry_delay", dec.Delay).
			Msg("transient failure; redelivery scheduled")

	case retry.Pause:
		reason := pauseReason(a)
		until, started := s.pause.Start(dec.Delay, reason, credentialsRefused(a.err))
		s.logSettleErr(log, d.msg.NakWithDelay(max(until.Sub(s.now()), 0)))
		if started {
			s.recordOutcome(log.Error(), d, a, metrics.OutcomePaused).Time("paused_until", until).Str("pause_reason", reason).
				Msg("account-level problem with Zoom; pausing all work (check the credentials, scopes and role of the Zoom app)")
		} else {
			// One error line per pause, but still one outcome line per
			// request.
			s.recordOutcome(log.Info(), d, a, metrics.OutcomePaused).Time("paused_until", until).
				Msg("account-level problem with Zoom; request handed back until the pause ends")
		}

	case retry.Hold:
		res := s.result(d, a)
		res.Outcome = messages.OutcomeHeld
		if err := s.publishResult(sctx, res); err != nil {
			return unrecorded(err)
		}
		delay := dec.Delay
		if !d.copied() && s.canPause() {
			// Its consumer is paused while the guard is tripped: handed
			// back at once, it comes again as soon as the decision
			// resumes the consumer, not a delay later.
			delay = 0
		}
		s.logSettleErr(log, d.msg.NakWithDelay(delay))
		s.recordOutcome(log.Info(), d, a, string(messages.OutcomeHeld)).Dur("retry_delay", delay).
			Msg("held by the guard against mass deprovisioning until an operator decides")

	case retry.Park:
		seq, err := s.publishCopy(sctx, d)
		if err != nil {
			return unrecorded(err)
		}
		later, err := s.index().LaterOriginal(sctx, d.orderRequest(), seq)
		if err != nil || later {
			// A later request about the user is stored before the copy:
			// it would not see the copy, so the original stays.
			s.logSettleErr(log, s.deleteMsg(sctx, seq))
			delay := s.cfg.Policy.Blocked.Delay(a.waits + 1)
			s.logSettleErr(log, d.msg.NakWithDelay(delay))
			s.recordOutcome(log.Info(), d, a, metrics.OutcomeWaiting).Dur("retry_delay", delay).Msg("request handed back")
			return false
		}
		gone = s.doubleAck(sctx, log, d)
		s.recordOutcome(log.Info(), d, a, metrics.OutcomeParked).Uint64("parked_seq", seq).Msg("request parked until its turn")

	case retry.Drop:
		// Another delivery, or a parked copy, carries the request: this
		// message only has to leave.
		gone = s.doubleAck(sctx, log, d)
		label := metrics.OutcomeSuperseded
		if a.kind == retry.Copied {
			label = metrics.OutcomeParked
		}
		s.recordOutcome(log.Info(), d, a, label).Msg("request carried on by another delivery; this one ends without a result")

	default: // retry.HandBack; a RetryNow never reaches here
		if dec.Delay > 0 {
			s.logSettleErr(log, d.msg.NakWithDelay(dec.Delay))
		} else {
			s.logSettleErr(log, d.msg.Nak())
		}
		s.recordOutcome(log.Info(), d, a, handBackLabel(a.kind)).Dur("retry_delay", dec.Delay).Msg("request handed back")
	}
	return gone
}

// handBackLabel names a hand-back's outcome in metrics and log lines.
func handBackLabel(k retry.Kind) string {
	switch k {
	case retry.Panicked:
		return metrics.OutcomePanicked
	case retry.Blocked:
		return metrics.OutcomeWaiting
	}
	return metrics.OutcomeHandedBack
}

// ack acknowledges a finished request. A lifecycle operation, or a request
// with later ones about the same user waiting, is acknowledged with the
// server's confirmation: an acknowledgement lost in a reconnection would
// let the request be handled again after the later ones (a deleted user
// created again, an update applied after the deactivation that followed
// it). Other requests are acknowledged without a round trip. It reports
// whether the server confirmed.
func (s *Service) ack(ctx context.Context, log zerolog.Logger, d *delivery) bool {
	if d.op == "" && (d.turn == nil || !d.turn.HasLater()) {
		s.logSettleErr(log, d.msg.Ack())
		return false
	}
	return s.doubleAck(ctx, log, d)
}

// doubleAck acknowledges with the server's confirmation.
func (s *Service) doubleAck(ctx context.Context, log zerolog.Logger, d *delivery) bool {
	err := d.msg.DoubleAck(ctx)
	s.logSettleErr(log, err)
	return err == nil || errors.Is(err, jetstream.ErrMsgAlreadyAckd)
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

func pauseReason(a attempt) string {
	if a.err == nil {
		return "account problem"
	}
	return maskEmails(a.err.Error())
}

// logSettleErr logs a failed ack, nak or term: the message then comes back
// after AckWait, and its handling is idempotent.
func (s *Service) logSettleErr(log zerolog.Logger, err error) {
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
		action = string(d.create.Action)
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
