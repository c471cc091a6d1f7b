package retry_test

import (
	"math"
	"testing"
	"time"

	"github.com/zoomprov/consumer/internal/retry"
)

// Ensure a reset far in the future (an implausible Retry-After) cannot
// make the quota wait overflow into a negative delay, which would turn a
// deferral into an immediate redelivery and a retry_at in the past.
func TestQuotaWaitFarFuture(t *testing.T) {
	now := time.Date(2026, 3, 10, 14, 0, 0, 0, time.UTC)
	for _, retryAt := range []time.Time{now.Add(math.MaxInt64), time.Unix(1773187200000, 0)} {
		for _, u := range []float64{0, 0.5, 0.999} {
			if got := retry.QuotaWait(now, retryAt, u); got <= 0 {
				t.Errorf("QuotaWait(%v, %v, %v) = %v; want a positive delay", now, retryAt, u, got)
			}
		}
	}
}
