package provision

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// kvTimeout bounds one operation on the attempts bucket. The count is read
// and written on a context of its own: the delivery's may be spent by
// then (that is how a delivery ran out of time).
const kvTimeout = 2 * time.Second

// countFailure adds this delivery's transient failure to the request's
// count and returns how many earlier deliveries failed. The count is
// changed with compare-and-set on its revision, so two deliveries of one
// request (a redelivery racing a slow first one) never lose a count. When
// the bucket cannot be read the count is unknown: it is left alone and
// zero returned, which errs towards another attempt, never towards a
// premature dead letter.
func (s *Service) countFailure(ctx context.Context, d *delivery) int {
	kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), kvTimeout)
	defer cancel()
	key := attemptsKey(d.seq)
	for try := 0; kctx.Err() == nil; try++ {
		if try > 0 {
			// Another delivery changed the count meanwhile: read it again,
			// after a pause that keeps racers from colliding again.
			sleep(kctx, time.Duration(rand.Int64N(int64(time.Duration(min(try, 10))*time.Millisecond)))+time.Millisecond)
		}
		e, err := s.attempts.Get(kctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if _, err := s.attempts.Create(kctx, key, []byte("1")); err == nil {
				return 0
			} else if !errors.Is(err, jetstream.ErrKeyExists) {
				s.logCountErr(d, err)
				return 0
			}
		case err != nil:
			s.logCountErr(d, err)
			return 0
		default:
			n, _ := strconv.Atoi(string(e.Value()))
			_, err := s.attempts.Update(kctx, key, []byte(strconv.Itoa(n+1)), e.Revision())
			if err == nil {
				return n
			}
			if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
				s.logCountErr(d, err)
				return n
			}
		}
	}
	s.logCountErr(d, kctx.Err())
	return 0
}

func (s *Service) logCountErr(d *delivery, err error) {
	dlog{s: s, d: d}.Warn().Err(err).Msg("could not count the failure; the count stays as it was")
}

// forgetFailures removes a finished request's count.
func (s *Service) forgetFailures(ctx context.Context, d *delivery) {
	if err := s.attempts.Delete(ctx, attemptsKey(d.seq)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		s.log.Debug().Err(err).Uint64("stream_seq", d.seq).Msg("forget failure count")
	}
}

func attemptsKey(seq uint64) string { return "seq-" + strconv.FormatUint(seq, 10) }
