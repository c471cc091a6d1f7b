package provision_test

import (
	"testing"
	"time"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/testenv"
)

// Ensure a 429 whose Retry-After no Zoom limit can mean neither parks a
// request for years nor closes a quota gate for millennia, and that the
// deferred event's retry_at is never in the past: Zoom's limits reset
// within a day.
func TestImplausibleRetryAfter(t *testing.T) {
	tests := []struct {
		name, action, limitType, retryAfter string
	}{
		// A delay of three years: the request is parked for three years.
		{name: "per-second limit, delay of years", action: "ssoCreate", limitType: "QPS", retryAfter: "99999999"},
		// A Unix time in milliseconds (year 58160): the nak delay
		// overflows (retry_at in 1734), the create gate closes locally
		// until 58160 and cannot be shared (json refuses the year).
		{name: "daily limit, unix milliseconds", action: "create", limitType: "Daily-limit", retryAfter: "1773187200000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, testenv.SimConfig{})
			h.sim.FailEmail("parked@example.com", 1, testenv.Fault{Status: 429,
				Message: "You have exceeded the rate limit for this API.",
				Headers: map[string]string{"X-RateLimit-Type": tc.limitType, "Retry-After": tc.retryAfter}})
			before := time.Now()
			h.publish("parked", tc.action, userBody(tc.action, "parked@example.com", 1))
			r := h.start(testConfig(3))
			var evs []messages.Event
			eventually(t, 10*time.Second, func() (bool, string) {
				evs = h.events()["parked"]
				return len(evs) > 0, "no event for the request"
			})
			for _, e := range evs {
				if e.Data.Outcome != messages.OutcomeDeferred {
					continue
				}
				at, err := time.Parse(time.RFC3339, e.Data.RetryAt)
				if err != nil || at.Before(before.Add(-time.Second)) || at.After(before.Add(25*time.Hour)) {
					t.Errorf("deferred retry_at = %q; want a time within a day from now", e.Data.RetryAt)
				}
			}
			for _, g := range r.svc.Status().Gates {
				if g.Until.After(before.Add(25 * time.Hour)) {
					t.Errorf("quota gate %s closed until %v; want at most a day", g.Scope, g.Until)
				}
			}
		})
	}
}
