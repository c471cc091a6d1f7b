package provision

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/retry"
)

// kvTimeout bounds one operation on the failures bucket (the attempts
// bucket of the contract). The count is read and written on a context of
// its own: the delivery's may be spent by then (that is how a delivery
// ran out of time).
const kvTimeout = 2 * time.Second

// unknownCountFactor bounds a request whose failures cannot be counted
// (the bucket does not answer): it is dead-lettered as retries_exhausted
// once delivered this many times MaxAttempts. Deliveries count quota
// waits and hand-backs too, so the bound is loose.
const unknownCountFactor = 4

// casBackoff spaces the tries of a compare-and-set that lost to another
// delivery of the request, with jitter, so that they do not collide again.
var casBackoff = retry.Schedule{Initial: time.Millisecond, Max: 10 * time.Millisecond, Jitter: 0.9}

// countFailure adds this delivery's transient failure to the request's
// count and returns how many earlier deliveries failed. The count is
// changed with compare-and-set on its revision, so two deliveries of one
// request (a redelivery racing a slow first one) never lose a count. When
// the bucket cannot be read the count is unknown: it is left alone, and
// the deliveries so far stand in for it once they pass
// unknownCountFactor × MaxAttempts, so that such a request is not retried
// for ever.
func (s *Service) countFailure(ctx context.Context, d *delivery) int {
	n, err := s.addFailure(ctx, d)
	if err == nil {
		return n
	}
	d.log.Warn().Err(err).Msg("could not count the failure; the count stays as it was")
	if int(d.delivered) >= unknownCountFactor*s.cfg.Policy.MaxAttempts {
		return s.cfg.Policy.MaxAttempts
	}
	return 0
}

func (s *Service) addFailure(ctx context.Context, d *delivery) (int, error) {
	kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), kvTimeout)
	defer cancel()
	key := s.failuresKey(d)
	for try := 0; kctx.Err() == nil; try++ {
		if try > 0 {
			// Another delivery changed the count meanwhile: read it again,
			// after a pause that keeps racers from colliding again.
			retry.Sleep(kctx, casBackoff.Delay(try), nil)
		}
		e, err := s.failures.Get(kctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if _, err := s.failures.Create(kctx, key, []byte("1")); err == nil {
				return 0, nil
			} else if !errors.Is(err, jetstream.ErrKeyExists) {
				return 0, err
			}
		case err != nil:
			return 0, err
		default:
			n, _ := strconv.Atoi(string(e.Value()))
			_, err := s.failures.Update(kctx, key, []byte(strconv.Itoa(n+1)), e.Revision())
			if err == nil {
				return n, nil
			}
			if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
				return n, err
			}
		}
	}
	return 0, kctx.Err()
}

// forgetFailures removes a finished request's count.
func (s *Service) forgetFailures(ctx context.Context, d *delivery) {
	if err := s.failures.Delete(ctx, s.failuresKey(d)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		s.log.Debug().Err(err).Uint64("stream_seq", d.seq).Msg("forget failure count")
	}
}

// deadVerdict is what markDeadLettered keeps of a dead-lettering.
type deadVerdict struct {
	Reason     messages.Reason `json:"reason"`
	HTTPStatus int             `json:"http_status,omitempty"`
	ZoomCode   int             `json:"zoom_code,omitempty"`
	Detail     string          `json:"detail,omitempty"`
}

// markDeadLettered records that the request is being dead-lettered, before
// the dead letter is published: if the service stops before the request is
// terminated, its redelivery finishes the dead-lettering (deadLettered)
// rather than call Zoom and leave both a success and a replayable dead
// letter. A failure to record is logged; the bucket's entries expire with
// the failure counts.
func (s *Service) markDeadLettered(ctx context.Context, d *delivery, a attempt) {
	if d.stray || s.failures == nil {
		return
	}
	data, _ := json.Marshal(deadVerdict{Reason: a.reason, HTTPStatus: a.httpStatus, ZoomCode: a.zoomCode, Detail: a.detail})
	kctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	if _, err := s.failures.Put(kctx, s.deadKey(d), data); err != nil {
		d.log.Warn().Err(err).Msg("could not record the dead-lettering before publishing it")
	}
}

// deadLettered returns the dead-lettering a redelivered request had begun,
// if any.
func (s *Service) deadLettered(ctx context.Context, d *delivery) (attempt, bool) {
	kctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	e, err := s.failures.Get(kctx, s.deadKey(d))
	if err != nil {
		return attempt{}, false
	}
	var v deadVerdict
	if json.Unmarshal(e.Value(), &v) != nil || v.Reason == "" {
		return attempt{}, false
	}
	kind := retry.Rejected
	if v.Reason == messages.ReasonRetriesExhausted {
		kind = retry.Transient // decided as exhausted below
	}
	a := attempt{kind: kind, reason: v.Reason, httpStatus: v.HTTPStatus, zoomCode: v.ZoomCode, detail: v.Detail,
		err: errors.New("provision: dead-lettered by an earlier delivery"), try: s.cfg.Policy.TriesPerDelivery}
	if kind == retry.Transient {
		a.failedDeliveries = s.cfg.Policy.MaxAttempts
	}
	return a, true
}

// failuresKey and deadKey are the request's keys in the failures bucket:
// by the request stream's incarnation and the request's position.
func (s *Service) failuresKey(d *delivery) string {
	return "fail-" + s.stream().incarnation + "-" + strconv.FormatUint(d.seq, 10)
}

func (s *Service) deadKey(d *delivery) string {
	return "dead-" + s.stream().incarnation + "-" + strconv.FormatUint(d.seq, 10)
}
