// Package retry decides what happens to a request after each attempt: ack
// it, try again at once, hand it back to the broker for later, park it,
// dead-letter it, or pause all work because the account itself has a
// problem. It also owns the backoff schedules. It knows neither NATS nor
// Zoom: callers classify what happened into a Kind first.
package retry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Kind classifies what happened to one delivery of a request: the answer
// of an attempt, or what kept it from being made.
type Kind int

// The kinds of what happened.
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
	// wait until the quota resets (Case.RetryAt). It never counts as a
	// failed attempt.
	RateLimited
	// Transient means a failure that may go away by itself: 5xx, time-out,
	// connection error, the delivery's own time limit.
	Transient
	// AccountProblem means the failure belongs to the account or the
	// service's credentials, not to the request: rejected credentials,
	// missing scope, no privilege.
	AccountProblem
	// Paused means an account problem found earlier still pauses all
	// work until Case.RetryAt; no call was made.
	Paused
	// Interrupted means shutdown cut the delivery short, or it arrived
	// while shutting down.
	Interrupted
	// Panicked means handling the delivery panicked.
	Panicked
	// Unrecorded means the outcome could not be recorded (the result or
	// dead letter was not acknowledged by its stream).
	Unrecorded
	// Blocked means an earlier request about the same user is not finished
	// yet; it may be retried at Case.RetryAt (zero: soon).
	Blocked
	// BlockedLong means an earlier request about the same user waits for
	// something long (a closed quota gate, or it is parked itself): the
	// request is parked.
	BlockedLong
	// Superseded means the request left the stream while this delivery
	// had it: the server handed it to another, which finished it.
	Superseded
	// Copied means a parked copy of the request took over from this
	// delivery of the original.
	Copied
	// Unpaced means the delivery's time ran out while it waited for its
	// pace or a pause: the request itself is fine, and nothing failed.
	Unpaced
	// Held means the guard against mass deprovisioning holds the request
	// until an operator decides.
	Held
)

var kindNames = [...]string{"succeeded", "invalid", "rejected", "not_found", "rate_limited", "transient",
	"account_problem", "paused", "interrupted", "panicked", "unrecorded", "blocked", "blocked_long", "superseded",
	"copied", "unpaced", "held"}

func (k Kind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return fmt.Sprintf("kind(%d)", int(k))
	}
	return kindNames[k]
}

// Verdict is what to do with the message.
type Verdict int

// The verdicts.
const (
	// Ack means the request is finished: record its result, then ack.
	Ack Verdict = iota
	// DeadLetter means the request cannot succeed: record a dead letter and
	// a failed result, then terminate it.
	DeadLetter
	// RetryNow means try again within this delivery after Decision.Delay.
	RetryNow
	// RetryLater means the delivery failed transiently: count the failure
	// and hand the message back for redelivery after Decision.Delay.
	RetryLater
	// Defer means a quota is exhausted: record a deferred result and hand
	// the message back until the reset (Decision.Delay).
	Defer
	// HandBack means give the message back after Decision.Delay (zero: at
	// once) without counting a failure: the request itself is fine.
	HandBack
	// Pause means stop taking new work for Decision.Delay because of an
	// account-level problem, and hand the message back for that long.
	Pause
	// Drop means acknowledge the message without a result: another
	// delivery, or a parked copy, carries the request.
	Drop
	// Park means store a copy of the request on the parked subject and
	// acknowledge the original, so the request waits without holding an
	// ack-pending slot of its consumer.
	Park
	// Hold means record that the guard holds the request (a held event)
	// and hand it back for Decision.Delay, when the guard is looked at
	// again.
	Hold
)

var verdictNames = [...]string{"ack", "dead_letter", "retry_now", "retry_later", "defer", "hand_back", "pause", "drop", "park", "hold"}

func (v Verdict) String() string {
	if v < 0 || int(v) >= len(verdictNames) {
		return fmt.Sprintf("verdict(%d)", int(v))
	}
	return verdictNames[v]
}

// Case is what the caller knows about a delivery so far.
type Case struct {
	// Kind classifies it.
	Kind Kind
	// Try is the 1-based number of this attempt within the current
	// delivery.
	Try int
	// Expired says the delivery's own time limit is spent: no further
	// attempt fits in it.
	Expired bool
	// FailedDeliveries is how many earlier deliveries of this request ended
	// in a transient failure. Quota deferrals and hand-backs are not
	// counted.
	FailedDeliveries int
	// RetryAt is when a rate-limited, held or blocked request may be tried
	// again. The zero value means unknown.
	RetryAt time.Time
	// Pauses is how many account-level pauses happened in a row before
	// this one, so the pause grows while the problem lasts.
	Pauses int
	// Waits is how many times in a row this request was blocked by an
	// earlier one about the same user, so the wait grows.
	Waits int
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

// Sleep waits d, or until ctx ends or wake (nil: never) is closed.
func Sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-wake:
	case <-t.C:
	}
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
	// Pause spaces the retries while the account has a problem.
	Pause Schedule
	// RateLimitFallback is the wait after a rate limit whose reset time is
	// unknown.
	RateLimitFallback time.Duration
	// Unrecorded is the wait before a request whose outcome could not be
	// recorded (NATS unreachable) is handled again.
	Unrecorded time.Duration
	// Blocked spaces the retries of a request waiting for an earlier one
	// about the same user, when that one's end is unknown.
	Blocked Schedule
	// Held is how long a request the guard holds waits before it is
	// looked at again (a decision lets it go within that).
	Held time.Duration
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
		Pause:             Schedule{Initial: 5 * time.Second, Max: 5 * time.Minute, Multiplier: 2, Jitter: 0.1},
		RateLimitFallback: time.Second,
		Unrecorded:        5 * time.Second,
		// Short: the earlier request usually ends within a Zoom call, and a
		// longer wait only stretches the user's chain.
		Blocked: Schedule{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2, Jitter: 0.2},
		Held:    10 * time.Second,
	}
}

// Decide maps what happened to a delivery to what happens next. It is the
// single place where that choice is made; the caller only carries it out.
func (p Policy) Decide(o Case, now time.Time) Decision {
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
		return Decision{Verdict: Defer, Delay: QuotaWait(now, retryAt, p.rand())}
	case Transient:
		if o.Try < p.TriesPerDelivery && !o.Expired {
			return Decision{Verdict: RetryNow, Delay: p.InProcess.Delay(o.Try)}
		}
		if o.FailedDeliveries+1 >= p.MaxAttempts {
			return Decision{Verdict: DeadLetter, Exhausted: true}
		}
		return Decision{Verdict: RetryLater, Delay: p.Redelivery.Delay(o.FailedDeliveries + 1)}
	case AccountProblem:
		return Decision{Verdict: Pause, Delay: p.Pause.Delay(o.Pauses + 1)}
	case Paused:
		return Decision{Verdict: Pause, Delay: max(o.RetryAt.Sub(now), minQuotaWait)}
	case Panicked:
		return Decision{Verdict: HandBack, Delay: p.Redelivery.Delay(1)}
	case Unrecorded:
		return Decision{Verdict: HandBack, Delay: p.Unrecorded}
	case Blocked:
		if !o.RetryAt.IsZero() {
			return Decision{Verdict: HandBack, Delay: QuotaWait(now, o.RetryAt, p.rand())}
		}
		return Decision{Verdict: HandBack, Delay: p.Blocked.Delay(o.Waits + 1)}
	case BlockedLong:
		return Decision{Verdict: Park}
	case Held:
		return Decision{Verdict: Hold, Delay: p.Held}
	case Superseded, Copied:
		return Decision{Verdict: Drop}
	default: // Interrupted, Unpaced and anything unknown: give it back at once.
		return Decision{Verdict: HandBack}
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
