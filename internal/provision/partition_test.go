package provision_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/zoomprov/consumer/internal/quota"
	"github.com/zoomprov/consumer/testenv"
)

// Ensure a replica cut off from NATS while it has calls queued for their
// pace stops calling Zoom once its lease's bound passes, even the calls
// whose place in the pacing comes later: the other replica counts it gone
// and takes the whole budget. Zoom's per-second limit (20) is the budget:
// it holds in every second, with no 429. Before, the check of the bound
// ran only before the wait for a place, and the cut-off replica's queue
// kept calling at its old share beside the other's whole budget.
func TestStalledReplicaKeepsTheBudget(t *testing.T) {
	const budget = 20
	h := newHarness(t, testenv.SimConfig{RatePerSecond: budget})
	proxy := testenv.StartProxy(t, testenv.HostPort(h.ns.URL()))
	urls := []string{proxy.URL(), h.ns.URL()}
	h.nextURL = func() string { u := urls[0]; urls = urls[1:]; return u }
	const n = 400
	var ids []string
	for i := range n {
		id := fmt.Sprintf("cut-%03d", i)
		h.publish(id, "ssoCreate", userBody("ssoCreate", id+"@example.com", 1))
		ids = append(ids, id)
	}
	for i, inFlight := range []int{200, 64} {
		cfg := testConfig(10)
		// Production's ack wait: the queued deliveries do not look stale
		// (which would have them read the stream, and fail, before each
		// call).
		cfg.AckWait = 30 * time.Second
		cfg.MaxInFlight = inFlight
		cfg.ReplicaID = fmt.Sprintf("cut-%d", i)
		cfg.Pacer = quota.NewPacer(budget, quota.NewGates(nil))
		h.start(cfg)
	}
	// Both replicas call at half the budget; then the first one's
	// connection stalls with its 200 requests queued for their pace, for
	// as long as the second one takes to create the rest.
	eventually(t, 20*time.Second, func() (bool, string) {
		created := h.sim.Stats().Creations
		return created >= 40, fmt.Sprintf("%d created", created)
	})
	proxy.Stall()
	eventually(t, 30*time.Second, func() (bool, string) {
		created := h.sim.Stats().Creations
		return created >= 200, fmt.Sprintf("%d created with the first replica stalled", created)
	})
	proxy.Resume()
	h.waitTerminal(90*time.Second, ids...)
	st := h.sim.Stats()
	if st.MaxPerSecond > budget || st.RateLimited[testenv.RateLimitQPS] > 0 {
		t.Errorf("Zoom saw at most %d calls in one second and %d per-second 429s; want at most %d and none",
			st.MaxPerSecond, st.RateLimited[testenv.RateLimitQPS], budget)
	}
	t.Logf("busiest second %d calls (budget %d), %d per-second 429s, %d POSTs for %d users",
		st.MaxPerSecond, budget, st.RateLimited[testenv.RateLimitQPS], len(h.sim.Requests()), n)
}
