package retry

import (
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// now is a fixed instant for every test: nothing here reads the clock.
var now = time.Date(2026, 3, 10, 14, 0, 0, 0, time.UTC)

// testPolicy is a policy without schedule jitter, so every delay is exact,
// and with a fixed Rand, so every quota wait is exact too.
func testPolicy() Policy {
	return Policy{
		MaxAttempts:       3,
		TriesPerDelivery:  3,
		InProcess:         Schedule{Initial: 100 * time.Millisecond, Max: 400 * time.Millisecond, Multiplier: 2},
		Redelivery:        Schedule{Initial: 5 * time.Second, Max: 40 * time.Second, Multiplier: 2},
		Pause:             Schedule{Initial: 5 * time.Second, Max: 5 * time.Minute, Multiplier: 2},
		RateLimitFallback: time.Second,
		Unrecorded:        7 * time.Second,
		Blocked:           Schedule{Initial: 250 * time.Millisecond, Max: 2 * time.Second, Multiplier: 2},
		Held:              30 * time.Second,
		Rand:              func() float64 { return 0.5 },
	}
}

func withMaxAttempts(n int) Policy {
	p := testPolicy()
	p.MaxAttempts = n
	return p
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name   string
		policy Policy // zero value: testPolicy()
		out    Case
		want   Decision
	}{
		{name: "succeeded", out: Case{Kind: Succeeded, Try: 1}, want: Decision{Verdict: Ack}},
		{name: "succeeded after earlier failures", out: Case{Kind: Succeeded, Try: 3, FailedDeliveries: 2, Pauses: 4}, want: Decision{Verdict: Ack}},

		{name: "invalid", out: Case{Kind: Invalid, Try: 1}, want: Decision{Verdict: DeadLetter}},
		{name: "rejected", out: Case{Kind: Rejected, Try: 1}, want: Decision{Verdict: DeadLetter}},
		{name: "not found", out: Case{Kind: NotFound, Try: 1}, want: Decision{Verdict: DeadLetter}},
		// A permanent refusal is never "exhausted", however often the
		// request failed transiently before.
		{name: "rejected after failed deliveries", out: Case{Kind: Rejected, Try: 3, FailedDeliveries: 9}, want: Decision{Verdict: DeadLetter}},

		// Rand is 0.5: the jitter is half of min(10% of the wait, 5m).
		{
			name: "rate limited daily reset 10h away",
			out:  Case{Kind: RateLimited, Try: 1, RetryAt: now.Add(10 * time.Hour)},
			want: Decision{Verdict: Defer, Delay: 10*time.Hour + 150*time.Second},
		},
		{
			name: "rate limited 30s away",
			out:  Case{Kind: RateLimited, Try: 1, RetryAt: now.Add(30 * time.Second)},
			want: Decision{Verdict: Defer, Delay: 31500 * time.Millisecond},
		},
		{
			name: "rate limited reset time unknown uses fallback",
			out:  Case{Kind: RateLimited, Try: 1},
			want: Decision{Verdict: Defer, Delay: time.Second + 50*time.Millisecond},
		},
		{
			name: "rate limited reset time in the past waits a little",
			out:  Case{Kind: RateLimited, Try: 1, RetryAt: now.Add(-time.Hour)},
			want: Decision{Verdict: Defer, Delay: 105 * time.Millisecond},
		},
		{
			name: "rate limited reset time is now waits a little",
			out:  Case{Kind: RateLimited, Try: 1, RetryAt: now},
			want: Decision{Verdict: Defer, Delay: 105 * time.Millisecond},
		},
		// Quota deferrals never count as failures: even past MaxAttempts
		// the request waits instead of being dead-lettered.
		{
			name: "rate limited never dead-letters",
			out:  Case{Kind: RateLimited, Try: 3, FailedDeliveries: 99, RetryAt: now.Add(30 * time.Second)},
			want: Decision{Verdict: Defer, Delay: 31500 * time.Millisecond},
		},

		{name: "transient first try", out: Case{Kind: Transient, Try: 1}, want: Decision{Verdict: RetryNow, Delay: 100 * time.Millisecond}},
		{name: "transient second try", out: Case{Kind: Transient, Try: 2}, want: Decision{Verdict: RetryNow, Delay: 200 * time.Millisecond}},
		{
			name:   "transient in-process delay capped",
			policy: func() Policy { p := testPolicy(); p.TriesPerDelivery = 10; return p }(),
			out:    Case{Kind: Transient, Try: 8},
			want:   Decision{Verdict: RetryNow, Delay: 400 * time.Millisecond},
		},
		// The in-process retries do not look at FailedDeliveries: only the
		// last try of a delivery can end it.
		{name: "transient first try after failed deliveries", out: Case{Kind: Transient, Try: 1, FailedDeliveries: 2}, want: Decision{Verdict: RetryNow, Delay: 100 * time.Millisecond}},

		// MaxAttempts 3: deliveries 1 and 2 may fail, the third one's
		// failure dead-letters.
		{name: "transient last try of first delivery", out: Case{Kind: Transient, Try: 3, FailedDeliveries: 0}, want: Decision{Verdict: RetryLater, Delay: 5 * time.Second}},
		{name: "transient last try of second delivery", out: Case{Kind: Transient, Try: 3, FailedDeliveries: 1}, want: Decision{Verdict: RetryLater, Delay: 10 * time.Second}},
		{name: "transient last try of last delivery", out: Case{Kind: Transient, Try: 3, FailedDeliveries: 2}, want: Decision{Verdict: DeadLetter, Exhausted: true}},
		{name: "transient beyond the last delivery", out: Case{Kind: Transient, Try: 3, FailedDeliveries: 7}, want: Decision{Verdict: DeadLetter, Exhausted: true}},
		{name: "transient try past TriesPerDelivery", out: Case{Kind: Transient, Try: 4, FailedDeliveries: 0}, want: Decision{Verdict: RetryLater, Delay: 5 * time.Second}},
		{name: "transient MaxAttempts 1", policy: withMaxAttempts(1), out: Case{Kind: Transient, Try: 3}, want: Decision{Verdict: DeadLetter, Exhausted: true}},
		// Redelivery delays grow with each failed delivery up to the cap.
		{name: "transient redelivery 3", policy: withMaxAttempts(10), out: Case{Kind: Transient, Try: 3, FailedDeliveries: 2}, want: Decision{Verdict: RetryLater, Delay: 20 * time.Second}},
		{name: "transient redelivery 4", policy: withMaxAttempts(10), out: Case{Kind: Transient, Try: 3, FailedDeliveries: 3}, want: Decision{Verdict: RetryLater, Delay: 40 * time.Second}},
		{name: "transient redelivery capped", policy: withMaxAttempts(10), out: Case{Kind: Transient, Try: 3, FailedDeliveries: 8}, want: Decision{Verdict: RetryLater, Delay: 40 * time.Second}},
		{name: "transient redelivery boundary", policy: withMaxAttempts(10), out: Case{Kind: Transient, Try: 3, FailedDeliveries: 9}, want: Decision{Verdict: DeadLetter, Exhausted: true}},

		{name: "account problem first hold", out: Case{Kind: AccountProblem, Try: 1}, want: Decision{Verdict: Pause, Delay: 5 * time.Second}},
		{name: "account problem second hold", out: Case{Kind: AccountProblem, Try: 1, Pauses: 1}, want: Decision{Verdict: Pause, Delay: 10 * time.Second}},
		{name: "account problem third hold", out: Case{Kind: AccountProblem, Try: 1, Pauses: 2}, want: Decision{Verdict: Pause, Delay: 20 * time.Second}},
		{name: "account problem hold capped", out: Case{Kind: AccountProblem, Try: 1, Pauses: 10}, want: Decision{Verdict: Pause, Delay: 5 * time.Minute}},
		{name: "account problem long outage", out: Case{Kind: AccountProblem, Try: 1, Pauses: 5000}, want: Decision{Verdict: Pause, Delay: 5 * time.Minute}},
		// An account problem is not the request's fault: it never
		// dead-letters, whatever the failure count.
		{name: "account problem never dead-letters", out: Case{Kind: AccountProblem, Try: 3, FailedDeliveries: 99}, want: Decision{Verdict: Pause, Delay: 5 * time.Second}},

		// The delivery's time limit is spent: no more tries in process; the
		// failure counts like any last try, so a request that always runs
		// out of time is still dead-lettered after MaxAttempts.
		{name: "transient expired on first try", out: Case{Kind: Transient, Try: 1, Expired: true}, want: Decision{Verdict: RetryLater, Delay: 5 * time.Second}},
		{name: "transient expired on last delivery", out: Case{Kind: Transient, Try: 1, Expired: true, FailedDeliveries: 2}, want: Decision{Verdict: DeadLetter, Exhausted: true}},

		{name: "held until the hold ends", out: Case{Kind: Paused, Try: 1, RetryAt: now.Add(7 * time.Second)}, want: Decision{Verdict: Pause, Delay: 7 * time.Second}},
		{name: "held, hold just ended", out: Case{Kind: Paused, Try: 1, RetryAt: now}, want: Decision{Verdict: Pause, Delay: 100 * time.Millisecond}},

		{name: "panicked", out: Case{Kind: Panicked, Try: 1, FailedDeliveries: 9}, want: Decision{Verdict: HandBack, Delay: 5 * time.Second}},
		{name: "unrecorded", out: Case{Kind: Unrecorded, Try: 1}, want: Decision{Verdict: HandBack, Delay: 7 * time.Second}},
		{name: "blocked, end unknown", out: Case{Kind: Blocked, Try: 1}, want: Decision{Verdict: HandBack, Delay: 250 * time.Millisecond}},
		{name: "blocked again", out: Case{Kind: Blocked, Try: 1, Waits: 2}, want: Decision{Verdict: HandBack, Delay: time.Second}},
		{name: "blocked, capped", out: Case{Kind: Blocked, Try: 1, Waits: 40}, want: Decision{Verdict: HandBack, Delay: 2 * time.Second}},
		// Behind a request that waits for the daily quota: until its reset.
		{name: "blocked behind a quota wait", out: Case{Kind: Blocked, Try: 1, RetryAt: now.Add(30 * time.Second)}, want: Decision{Verdict: HandBack, Delay: 31500 * time.Millisecond}},
		// A blocked request never counts as failed: it cannot dead-letter.
		{name: "blocked never dead-letters", out: Case{Kind: Blocked, Try: 1, FailedDeliveries: 99}, want: Decision{Verdict: HandBack, Delay: 250 * time.Millisecond}},
		// Another delivery finished it: nothing is recorded or settled twice.
		{name: "superseded", out: Case{Kind: Superseded, Try: 3, FailedDeliveries: 9}, want: Decision{Verdict: Drop}},
		{name: "copied", out: Case{Kind: Copied, Try: 1}, want: Decision{Verdict: Drop}},
		{name: "held by the guard", out: Case{Kind: Held, Try: 1, FailedDeliveries: 9}, want: Decision{Verdict: Hold, Delay: 30 * time.Second}},
		{name: "blocked long", out: Case{Kind: BlockedLong, Try: 1, RetryAt: now.Add(time.Hour)}, want: Decision{Verdict: Park}},
		{name: "unpaced is no failure", out: Case{Kind: Unpaced, Try: 1, Expired: true, FailedDeliveries: 99}, want: Decision{Verdict: HandBack}},

		{name: "interrupted", out: Case{Kind: Interrupted, Try: 2, FailedDeliveries: 2}, want: Decision{Verdict: HandBack}},
		{name: "unknown kind", out: Case{Kind: Kind(99), Try: 1}, want: Decision{Verdict: HandBack}},
		{name: "negative kind", out: Case{Kind: Kind(-1), Try: 1}, want: Decision{Verdict: HandBack}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.policy
			if p.MaxAttempts == 0 {
				p = testPolicy()
			}
			if got := p.Decide(tc.out, now); got != tc.want {
				t.Errorf("Decide(%+v) = %+v; want %+v", tc.out, got, tc.want)
			}
		})
	}
}

// Ensure a rate-limited request waits until the reset plus a jitter of at
// most min(10% of the wait, 5 minutes), for any value Rand returns.
func TestDecideRateLimitedJitterBounds(t *testing.T) {
	waits := []time.Duration{time.Second, 30 * time.Second, 10 * time.Minute, 49 * time.Minute, 51 * time.Minute, 10 * time.Hour, 24 * time.Hour}
	for _, u := range []float64{0, 0.25, 0.5, 0.999999} {
		p := testPolicy()
		p.Rand = func() float64 { return u }
		for _, wait := range waits {
			out := Case{Kind: RateLimited, Try: 1, RetryAt: now.Add(wait)}
			got := p.Decide(out, now)
			maxJitter := min(wait/10, 5*time.Minute)
			if got.Verdict != Defer || got.Delay < wait || got.Delay > wait+maxJitter {
				t.Errorf("Decide(%+v) with Rand %v = %+v; want %v after a delay in [%v, %v]", out, u, got, Defer, wait, wait+maxJitter)
			}
		}
	}
}

// Ensure the default Rand (math/rand) keeps the quota wait in bounds, and
// that a reset time already past never gives a zero or negative delay.
func TestDecideRateLimitedDefaultRand(t *testing.T) {
	p := DefaultPolicy(5)
	for range 1000 {
		out := Case{Kind: RateLimited, Try: 1, RetryAt: now.Add(-time.Minute)}
		if got := p.Decide(out, now); got.Verdict != Defer || got.Delay < minQuotaWait || got.Delay > minQuotaWait*11/10 {
			t.Fatalf("Decide(%+v) = %+v; want %v after a delay in [%v, %v]", out, got, Defer, minQuotaWait, minQuotaWait*11/10)
		}
		out = Case{Kind: RateLimited, Try: 1}
		if got := p.Decide(out, now); got.Verdict != Defer || got.Delay < time.Second || got.Delay > 1100*time.Millisecond {
			t.Fatalf("Decide(%+v) = %+v; want %v after a delay in [1s, 1.1s]", out, got, Defer)
		}
	}
}

// Ensure the default policy's redelivery delays, jitter included, grow
// with each failed delivery until the cap, and stay in their jitter bounds.
func TestDecideDefaultPolicyRedeliveryGrows(t *testing.T) {
	p := DefaultPolicy(12)
	bases := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute}
	for range 50 {
		var prev time.Duration
		for i, base := range bases {
			out := Case{Kind: Transient, Try: p.TriesPerDelivery, FailedDeliveries: i}
			got := p.Decide(out, now)
			lo, hi := jitterBounds(base, p.Redelivery.Jitter)
			if got.Verdict != RetryLater || got.Delay < lo || got.Delay > hi {
				t.Fatalf("Decide(%+v) = %+v; want %v after a delay in [%v, %v]", out, got, RetryLater, lo, hi)
			}
			// With 20% jitter, consecutive steps of a doubling schedule
			// cannot overlap: [0.8d, 1.2d] vs [1.6d, 2.4d].
			if i > 0 && base > bases[i-1] && got.Delay <= prev {
				t.Fatalf("Decide(%+v).Delay = %v; want more than the previous delivery's %v", out, got.Delay, prev)
			}
			prev = got.Delay
		}
	}
}

// jitterBounds is [d*(1-j), d*(1+j)], plus the one nanosecond that
// backoff's formula may add at the top.
func jitterBounds(d time.Duration, j float64) (lo, hi time.Duration) {
	return time.Duration(float64(d) * (1 - j)), time.Duration(float64(d)*(1+j)) + 1
}

func TestQuotaWait(t *testing.T) {
	tests := []struct {
		name    string
		retryAt time.Time
		u       float64
		want    time.Duration
	}{
		{name: "daily reset 10h away, no jitter", retryAt: now.Add(10 * time.Hour), u: 0, want: 10 * time.Hour},
		// 10% of 10h is 1h: capped at 5 minutes.
		{name: "daily reset 10h away, half jitter", retryAt: now.Add(10 * time.Hour), u: 0.5, want: 10*time.Hour + 150*time.Second},
		{name: "daily reset 10h away, top jitter", retryAt: now.Add(10 * time.Hour), u: 1, want: 10*time.Hour + 5*time.Minute},
		{name: "30s away, no jitter", retryAt: now.Add(30 * time.Second), u: 0, want: 30 * time.Second},
		{name: "30s away, half jitter", retryAt: now.Add(30 * time.Second), u: 0.5, want: 31500 * time.Millisecond},
		{name: "30s away, top jitter", retryAt: now.Add(30 * time.Second), u: 1, want: 33 * time.Second},
		// 10% of 50 minutes is exactly the 5-minute cap.
		{name: "50m away, top jitter", retryAt: now.Add(50 * time.Minute), u: 1, want: 55 * time.Minute},
		{name: "past, no jitter", retryAt: now.Add(-time.Hour), u: 0, want: minQuotaWait},
		{name: "past, half jitter", retryAt: now.Add(-time.Hour), u: 0.5, want: 105 * time.Millisecond},
		{name: "now", retryAt: now, u: 0, want: minQuotaWait},
		{name: "below the minimum", retryAt: now.Add(50 * time.Millisecond), u: 0, want: minQuotaWait},
		{name: "zero time", retryAt: time.Time{}, u: 0, want: minQuotaWait},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := QuotaWait(now, tc.retryAt, tc.u); got != tc.want {
				t.Errorf("QuotaWait(%v, %v, %v) = %v; want %v", now, tc.retryAt, tc.u, got, tc.want)
			}
		})
	}
}

// Ensure the quota jitter stays within its bounds for any u in [0, 1).
func TestQuotaWaitJitterBounds(t *testing.T) {
	tests := []struct {
		name      string
		wait      time.Duration
		maxJitter time.Duration
	}{
		{name: "10h away", wait: 10 * time.Hour, maxJitter: 5 * time.Minute},
		{name: "30s away", wait: 30 * time.Second, maxJitter: 3 * time.Second},
		{name: "1m away", wait: time.Minute, maxJitter: 6 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, u := range []float64{0, 0.1, 0.5, 0.9, 0.999999} {
				got := QuotaWait(now, now.Add(tc.wait), u)
				if got < tc.wait || got > tc.wait+tc.maxJitter {
					t.Errorf("QuotaWait(now, now+%v, %v) = %v; want in [%v, %v]", tc.wait, u, got, tc.wait, tc.wait+tc.maxJitter)
				}
			}
		})
	}
}

func TestScheduleDelay(t *testing.T) {
	doubling := Schedule{Initial: time.Second, Max: 10 * time.Second, Multiplier: 2}
	tests := []struct {
		name string
		s    Schedule
		n    int
		want time.Duration
	}{
		{name: "step 1 is Initial", s: doubling, n: 1, want: time.Second},
		{name: "step 2", s: doubling, n: 2, want: 2 * time.Second},
		{name: "step 3", s: doubling, n: 3, want: 4 * time.Second},
		{name: "step 4", s: doubling, n: 4, want: 8 * time.Second},
		{name: "step 5 capped", s: doubling, n: 5, want: 10 * time.Second},
		{name: "step 6 capped", s: doubling, n: 6, want: 10 * time.Second},
		{name: "step 0 is step 1", s: doubling, n: 0, want: time.Second},
		{name: "negative step is step 1", s: doubling, n: -7, want: time.Second},
		{name: "zero multiplier means 2", s: Schedule{Initial: time.Second, Max: time.Minute}, n: 4, want: 8 * time.Second},
		{name: "multiplier 3", s: Schedule{Initial: time.Second, Max: time.Minute, Multiplier: 3}, n: 3, want: 9 * time.Second},
		{name: "multiplier 1.5", s: Schedule{Initial: time.Second, Max: time.Minute, Multiplier: 1.5}, n: 3, want: 2250 * time.Millisecond},
		{name: "step 1000 capped", s: doubling, n: 1000, want: 10 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.s.Delay(tc.n); got != tc.want {
				t.Errorf("%+v.Delay(%d) = %v; want %v", tc.s, tc.n, got, tc.want)
			}
		})
	}
}

// Ensure each jittered delay stays in [d*(1-Jitter), d*(1+Jitter)], where
// d is the unjittered delay of that step.
func TestScheduleDelayJitter(t *testing.T) {
	s := Schedule{Initial: time.Second, Max: 16 * time.Second, Multiplier: 2, Jitter: 0.5}
	plain := Schedule{Initial: s.Initial, Max: s.Max, Multiplier: s.Multiplier}
	for n := 1; n <= 8; n++ {
		lo, hi := jitterBounds(plain.Delay(n), s.Jitter)
		for range 200 {
			if got := s.Delay(n); got < lo || got > hi {
				t.Fatalf("%+v.Delay(%d) = %v; want in [%v, %v]", s, n, got, lo, hi)
			}
		}
	}
}

// Ensure a large step count still yields a capped, positive delay and never
// backoff.Stop. Delay builds a fresh backoff on every call and runs its
// steps at once, so backoff's elapsed-time limit (15 minutes by default,
// switched off here) can never end a schedule: the number of deliveries is
// MaxAttempts' business alone.
func TestScheduleDelayLargeStep(t *testing.T) {
	p := DefaultPolicy(5)
	tests := []struct {
		name string
		s    Schedule
	}{
		{name: "in-process", s: p.InProcess},
		{name: "redelivery", s: p.Redelivery},
		{name: "pause", s: p.Pause},
		{name: "no jitter", s: Schedule{Initial: time.Second, Max: time.Hour}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, hi := jitterBounds(tc.s.Max, tc.s.Jitter)
			for _, n := range []int{64, 1000, 100_000} {
				got := tc.s.Delay(n)
				if got == backoff.Stop || got <= 0 || got > hi {
					t.Errorf("%+v.Delay(%d) = %v; want in (0, %v]", tc.s, n, got, hi)
				}
			}
		})
	}
}

func TestDefaultPolicy(t *testing.T) {
	for _, maxAttempts := range []int{1, 5, 20} {
		p := DefaultPolicy(maxAttempts)
		if p.MaxAttempts != maxAttempts {
			t.Errorf("DefaultPolicy(%d).MaxAttempts = %d; want %d", maxAttempts, p.MaxAttempts, maxAttempts)
		}
	}
	p := DefaultPolicy(5)
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"TriesPerDelivery", p.TriesPerDelivery, 3},
		{"InProcess", p.InProcess, Schedule{Initial: 200 * time.Millisecond, Max: 2 * time.Second, Multiplier: 2, Jitter: 0.2}},
		{"Redelivery", p.Redelivery, Schedule{Initial: 5 * time.Second, Max: 5 * time.Minute, Multiplier: 2, Jitter: 0.2}},
		{"Pause", p.Pause, Schedule{Initial: 5 * time.Second, Max: 5 * time.Minute, Multiplier: 2, Jitter: 0.1}},
		{"RateLimitFallback", p.RateLimitFallback, time.Second},
		{"Rand is nil", p.Rand == nil, true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("DefaultPolicy(5).%s = %v; want %v", c.name, c.got, c.want)
		}
	}

}

func TestKindString(t *testing.T) {
	tests := []struct {
		k    Kind
		want string
	}{
		{Succeeded, "succeeded"},
		{Invalid, "invalid"},
		{Rejected, "rejected"},
		{NotFound, "not_found"},
		{RateLimited, "rate_limited"},
		{Transient, "transient"},
		{AccountProblem, "account_problem"},
		{Paused, "paused"},
		{Interrupted, "interrupted"},
		{Panicked, "panicked"},
		{Unrecorded, "unrecorded"},
		{Blocked, "blocked"},
		{BlockedLong, "blocked_long"},
		{Superseded, "superseded"},
		{Copied, "copied"},
		{Unpaced, "unpaced"},
		{Held, "held"},
		{Kind(17), "kind(17)"},
		{Kind(-1), "kind(-1)"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := tc.k.String(); got != tc.want {
				t.Errorf("Kind(%d).String() = %q; want %q", int(tc.k), got, tc.want)
			}
		})
	}
}

func TestVerdictString(t *testing.T) {
	tests := []struct {
		v    Verdict
		want string
	}{
		{Ack, "ack"},
		{DeadLetter, "dead_letter"},
		{RetryNow, "retry_now"},
		{RetryLater, "retry_later"},
		{Defer, "defer"},
		{HandBack, "hand_back"},
		{Pause, "pause"},
		{Drop, "drop"},
		{Park, "park"},
		{Hold, "hold"},
		{Verdict(10), "verdict(10)"},
		{Verdict(-1), "verdict(-1)"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := tc.v.String(); got != tc.want {
				t.Errorf("Verdict(%d).String() = %q; want %q", int(tc.v), got, tc.want)
			}
		})
	}
}
