// Package retry decides what happens to a request after each attempt: ack
// it, try again at once, hand it back to the broker for later, dead-letter
// it, or hold all work because the account itself has a problem. It also
// owns the backoff schedules. It knows neither NATS nor Zoom: callers
// classify what happened into a Kind first.
package retry

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Kind classifies the result of one attempt at a request.
type Kind int

// The kinds of attempt results.
const (
	// Succeeded means the request reached its goal (created, or found to
	// exist already).
	Succeeded Kind = iota
	// Invalid means the request was malformed before any call was made.
	Invalid
	// Rejected means the remote side refused the request for a reason that
	// retrying cannot change (Zoom 400).
	Rejected
	// NotFound means something the request refers to does not exist
	// (Zoom 404).
	NotFound
	// RateLimited means a quota was exhausted; the request is fine and must
	// wait until the quota resets. It never counts as a failed attempt.
	RateLimited
	// Transient means a failure that may go away by itself: 5xx, time-out,
	// connection error.
	Transient
	// AccountProblem means the failure belongs to the account or the
	// service's credentials, not to the request: rejected credentials,
	// missing scope, no privilege.
	AccountProblem
	// Interrupted means the attempt was cut short by shutdown.
	Interrupted
)

var kindNames = [...]string{"succeeded", "invalid", "rejected", "not_found", "rate_limited", "transient", "account_problem", "interrupted"}

func (k Kind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return fmt.Sprintf("kind(%d)", int(k))
	}
	return kindNames[k]
}

// Verdict is what to do with the message after an attempt.
type Verdict int

// The verdicts.
const (
	// Ack means the request is finished.
	Ack Verdict = iota
	// RetryNow means try again within this delivery after Decision.Delay.
	RetryNow
	// NakAfter means hand the message back for redelivery after
	// Decision.Delay (zero: at once, e.g. to another replica on shutdown).
	NakAfter
	// DeadLetter means the request cannot succeed: move it to the
	// dead-letter stream.
	DeadLetter
	// Hold means stop taking new work for Decision.Delay because of an
	// account-level problem, and hand the message back for that long.
	Hold
)

var verdictNames = [...]string{"ack", "retry_now", "nak", "dead_letter", "hold"}

func (v Verdict) String() string {
	if v < 0 || int(v) >= len(verdictNames) {
		return fmt.Sprintf("verdict(%d)", int(v))
	}
	return verdictNames[v]
}

// Outcome is what the caller knows after one attempt.
type Outcome struct {
	// Kind classifies the attempt.
	Kind Kind
	// Try is the 1-based number of this attempt within the current delivery.
	Try int
	// FailedDeliveries is how many earlier deliveries of this request ended
	// in a transient failure. Quota deferrals and shutdown hand-backs are not
	// counted.
	FailedDeliveries int
	// RetryAt is when a rate-limited request may be tried again. The zero
	// value means unknown: about a second from now.
	RetryAt time.Time
	// Holds is how many account-level holds happened in a row before this
	// one, so the hold grows while the problem lasts.
	Holds int
}

// Decision is the verdict with its delay.
type Decision struct {
	Verdict Verdict
	Delay   time.Duration
	// Exhausted is set with DeadLetter when the request failed transiently
	// too often, as opposed to being permanently refused.
	Exhausted bool
}

// Schedule is an exponential backoff with jitter. Its zero value is not
// useful; see DefaultPolicy for tested values.
type Schedule struct {
	// Initial is the first delay.
	Initial time.Duration
	// Max caps every delay, before jitter.
	Max time.Duration
	// Multiplier grows the delay after each step; zero means 2.
	Multiplier float64
	// Jitter is the randomization factor: each delay is drawn uniformly
	// from [d*(1-Jitter), d*(1+Jitter)]. Zero means no jitter.
	Jitter float64
}

// Delay returns the delay before step n (1-based). It is built on
// backoff.ExponentialBackOff with MaxElapsedTime switched off: the number of
// steps is bounded by the caller (MaxAttempts), never by backoff's default
// 15-minute elapsed-time limit.
func (s Schedule) Delay(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	b := &backoff.ExponentialBackOff{
		InitialInterval:     s.Initial,
		RandomizationFactor: s.Jitter,
		Multiplier:          s.Multiplier,
		MaxInterval:         s.Max,
		MaxElapsedTime:      0,
		Stop:                backoff.Stop,
		Clock:               backoff.SystemClock,
	}
	if b.Multiplier == 0 {
		b.Multiplier = 2
	}
	b.Reset()
	var d time.Duration
	for range n {
		d = b.NextBackOff()
	}
	return d
}

// Policy holds every limit of the retry decision.
type Policy struct {
	// MaxAttempts is how many deliveries may fail transiently before the
	// request is dead-lettered as retries_exhausted.
	MaxAttempts int
	// TriesPerDelivery is how many attempts one delivery makes on transient
	// failures before handing the message back to the broker.
	TriesPerDelivery int
	// InProcess spaces the attempts within one delivery.
	InProcess Schedule
	// Redelivery spaces the deliveries after transient failures.
	Redelivery Schedule
	// Hold spaces the retries while the account has a problem.
	Hold Schedule
	// RateLimitFallback is the wait after a rate limit whose reset time is
	// unknown.
	RateLimitFallback time.Duration
	// Rand returns a number in [0, 1) for jitter; nil means math/rand.
	Rand func() float64
}

// DefaultPolicy returns the service's defaults for maxAttempts deliveries.
func DefaultPolicy(maxAttempts int) Policy {
	return Policy{
		MaxAttempts:       maxAttempts,
		TriesPerDelivery:  3,
		InProcess:         Schedule{Initial: 200 * time.Millisecond, Max: 2 * time.Second, Multiplier: 2, Jitter: 0.2},
		Redelivery:        Schedule{Initial: 5 * time.Second, Max: 5 * time.Minute, Multiplier: 2, Jitter: 0.2},
		Hold:              Schedule{Initial: 5 * time.Second, Max: 5 * time.Minute, Multiplier: 2, Jitter: 0.1},
		RateLimitFallback: time.Second,
	}
}

// Decide maps one attempt's outcome to what happens next. It is the single
// place where that choice is made.
func (p Policy) Decide(o Outcome, now time.Time) Decision {
	switch o.Kind {
	case Succeeded:
		return Decision{Verdict: Ack}
	case Invalid, Rejected, NotFound:
		return Decision{Verdict: DeadLetter}
	case RateLimited:
		retryAt := o.RetryAt
		if retryAt.IsZero() {
			retryAt = now.Add(p.RateLimitFallback)
		}
		return Decision{Verdict: NakAfter, Delay: QuotaWait(now, retryAt, p.rand())}
	case Transient:
		if o.Try < p.TriesPerDelivery {
			return Decision{Verdict: RetryNow, Delay: p.InProcess.Delay(o.Try)}
		}
		if o.FailedDeliveries+1 >= p.MaxAttempts {
			return Decision{Verdict: DeadLetter, Exhausted: true}
		}
		return Decision{Verdict: NakAfter, Delay: p.Redelivery.Delay(o.FailedDeliveries + 1)}
	case AccountProblem:
		return Decision{Verdict: Hold, Delay: p.Hold.Delay(o.Holds + 1)}
	default: // Interrupted and anything unknown: give it back at once.
		return Decision{Verdict: NakAfter}
	}
}

func (p Policy) rand() float64 {
	if p.Rand != nil {
		return p.Rand()
	}
	return rand.Float64()
}

// Jitter bounds for quota waits: up to 10% of the wait, at most 5 minutes,
// so a daily reset is spread over minutes instead of every replica and every
// parked request hitting Zoom in the same second.
const (
	quotaJitterShare = 0.10
	quotaJitterMax   = 5 * time.Minute
	// minQuotaWait keeps a reset time that is already past (clock skew) from
	// turning into an immediate redelivery loop.
	minQuotaWait = 100 * time.Millisecond
	// maxQuotaWait bounds a wait whatever the reset time says: no Zoom limit
	// lasts longer than a day, and a bound keeps wait plus jitter from
	// overflowing.
	maxQuotaWait = 25 * time.Hour
)

// QuotaWait returns how long to wait from now until retryAt, plus a jitter
// of u (in [0, 1)) times 10% of the wait, capped at 5 minutes.
func QuotaWait(now, retryAt time.Time, u float64) time.Duration {
	wait := retryAt.Sub(now)
	if wait < minQuotaWait {
		wait = minQuotaWait
	}
	if wait > maxQuotaWait {
		wait = maxQuotaWait
	}
	j := time.Duration(float64(wait) * quotaJitterShare)
	if j > quotaJitterMax {
		j = quotaJitterMax
	}
	return wait + time.Duration(u*float64(j))
}
