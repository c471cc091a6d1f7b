package provision_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/provision"
	"github.com/zoomprov/consumer/internal/quota"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/internal/zoom"
	"github.com/zoomprov/consumer/testenv"
)

// pacedConfig is testConfig with a shared account budget of budget/s.
func pacedConfig(budget float64, id string) provision.Config {
	cfg := testConfig(5)
	cfg.Pacer = quota.NewPacer(budget, quota.NewGates(nil))
	cfg.ReplicaID = id
	return cfg
}

// Ensure three replicas share the account's per-second budget: against a
// simulator limit of 20/s with 50 ms latency they call Zoom at 90% of the
// limit or more, never more than 20 calls in one of Zoom's seconds, and no
// call is answered 429.
func TestSharedPacingThreeReplicas(t *testing.T) {
	t.Parallel() // paced at 20/s: mostly waits
	h := newHarness(t, testenv.SimConfig{RatePerSecond: 20, Latency: 50 * time.Millisecond})
	var ids []string
	for i := range 600 {
		id := fmt.Sprintf("p-%03d", i)
		h.publish(id, "ssoCreate", userBody("ssoCreate", fmt.Sprintf("p-%03d@example.com", i), 1))
		ids = append(ids, id)
	}
	start := time.Now()
	var runs []*serviceRun
	for i := range 3 {
		runs = append(runs, h.start(pacedConfig(20, fmt.Sprintf("replica-%d", i))))
	}
	eventually(t, 10*time.Second, func() (bool, string) {
		total := 0.0
		for _, r := range runs {
			st := r.svc.Status()
			if st.Replicas != 3 {
				return false, fmt.Sprintf("a replica sees %d replicas", st.Replicas)
			}
			total += st.RateShare
		}
		return total == 20, fmt.Sprintf("shares add up to %v", total)
	})
	evs := h.waitTerminal(2*time.Minute, ids...)
	elapsed := time.Since(start)
	for _, id := range ids {
		if term := terminal(evs[id]); len(term) != 1 || term[0].Data.Outcome != messages.OutcomeCreated {
			t.Fatalf("%s terminal = %+v; want one created", id, term)
		}
	}
	st := h.sim.Stats()
	calls := 0
	for status, n := range st.Requests[testenv.RouteCreateUser] {
		_ = status
		calls += n
	}
	limited := st.RateLimited[testenv.RateLimitQPS]
	// The pace is judged from Zoom's first call to its last: the
	// replicas' start (each waits until the others count it) is not
	// pacing.
	var first, last time.Time
	for _, r := range h.sim.Requests() {
		if r.Route == testenv.RouteCreateUser {
			if first.IsZero() {
				first = r.Time
			}
			last = r.Time
		}
	}
	rate := float64(calls-1) / last.Sub(first).Seconds()
	t.Logf("3 replicas, limit 20/s, latency 50ms: 600 requests in %v, the first call after %v; %.1f calls/s from first to last (%.0f%% of the limit); %d calls, %d answered 429, busiest second %d calls",
		elapsed.Round(time.Millisecond), first.Sub(start).Round(time.Millisecond), rate, rate/20*100, calls, limited, st.MaxPerSecond)
	if limited > 0 || st.MaxPerSecond > 20 {
		t.Errorf("429s = %d of %d calls, busiest second %d calls; want no 429 and at most 20 calls in any second", limited, calls, st.MaxPerSecond)
	}
	// Each replica keeps 3% under its share (19.4 of 20 a second at
	// most), and the first and last requests are left to fewer replicas.
	if rate < 17 {
		t.Errorf("achieved %.1f calls/s; want at least 17 (85%% of 20)", rate)
	}
}

// Ensure a replica that dies without a word gives its share back to the
// others within seconds, and a clean stop gives it back at once.
func TestReplicaShareReturns(t *testing.T) {
	h := newHarness(t, testenv.SimConfig{})
	a := h.start(pacedConfig(20, "replica-a"))
	b := h.start(pacedConfig(20, "replica-b"))
	c := h.start(pacedConfig(20, "replica-c"))
	waitShare := func(r *serviceRun, replicas int, share float64, within time.Duration) {
		t.Helper()
		eventually(t, within, func() (bool, string) {
			st := r.svc.Status()
			return st.Replicas == replicas && st.RateShare == share, fmt.Sprintf("replicas %d share %v; want %d, %v", st.Replicas, st.RateShare, replicas, share)
		})
	}
	waitShare(a, 3, 7, 10*time.Second)
	waitShare(c, 3, 6, 10*time.Second)
	start := time.Now()
	c.crash(t)
	waitShare(a, 2, 10, 10*time.Second) // the issue asks: within 10 s
	waitShare(b, 2, 10, 5*time.Second)
	t.Logf("share of a crashed replica returned after %v", time.Since(start).Round(100*time.Millisecond))
	if err := b.stop(t); err != nil {
		t.Fatal(err)
	}
	waitShare(a, 1, 20, 3*time.Second)

	st, err := quota.Read(context.Background(), h.js, topology.Default(), allActions, time.Now())
	if err != nil {
		t.Fatalf("ReadQuota: %v", err)
	}
	if len(st.Replicas) != 1 || st.Replicas[0].ID != "replica-a" || st.Replicas[0].Share != 20 {
		t.Errorf("ReadQuota replicas = %+v; want replica-a with 20", st.Replicas)
	}
}

// Ensure a daily-limit 429 met by one replica closes the gate for all:
// no replica sends create requests to Zoom until the reset, the deferred
// requests neither reach the dead-letter stream nor count as attempts, the
// gate is visible in the quota bucket, and other actions are not slowed
// at all.
func TestDailyQuotaGateSharedAcrossReplicas(t *testing.T) {
	h := newHarness(t, testenv.SimConfig{DailyCreateLimit: 10})
	var creates, ssos []string
	for i := range 200 {
		id := fmt.Sprintf("inv-%03d", i)
		h.publish(id, "create", userBody("create", fmt.Sprintf("inv-%03d@example.com", i), 1))
		creates = append(creates, id)
	}
	for i := range 100 {
		id := fmt.Sprintf("sso-%03d", i)
		h.publish(id, "ssoCreate", userBody("ssoCreate", fmt.Sprintf("sso-%03d@example.com", i), 1))
		ssos = append(ssos, id)
	}
	var runs []*serviceRun
	for i := range 3 {
		cfg := pacedConfig(0, fmt.Sprintf("replica-%d", i))
		cfg.MaxAttempts = 2
		runs = append(runs, h.start(cfg))
	}
	evs := h.waitTerminal(30*time.Second, ssos...)
	for _, id := range ssos {
		if term := terminal(evs[id]); len(term) != 1 || term[0].Data.Outcome != messages.OutcomeCreated {
			t.Fatalf("%s terminal = %+v; want created", id, term)
		}
	}
	// Ten create requests are created; those in hand when the gate closed
	// are deferred until the next 00:00 UTC; the rest stay in the stream.
	var deferred int
	eventually(t, 30*time.Second, func() (bool, string) {
		evs = h.events()
		created := 0
		deferred = 0
		for _, id := range creates {
			for _, e := range evs[id] {
				switch e.Data.Outcome {
				case messages.OutcomeCreated:
					created++
				case messages.OutcomeDeferred:
					deferred++
					if ra, err := time.Parse(time.RFC3339, e.Data.RetryAt); err != nil || ra.Before(zoom.NextUTCMidnight(time.Now()).Add(-time.Minute)) {
						return false, fmt.Sprintf("deferred %s retry_at %q; want the next 00:00 UTC", id, e.Data.RetryAt)
					}
				}
			}
		}
		return created == 10 && deferred >= 1, fmt.Sprintf("%d created, %d deferred", created, deferred)
	})
	daily := h.sim.Stats().RateLimited[testenv.RateLimitDaily]
	t.Logf("daily 429s seen by the simulator: %d; %d requests deferred in hand, the rest left in the stream", daily, deferred)
	// Without pacing every replica may have MaxInFlight (64) calls under
	// way when the first daily 429 comes back; those cannot be recalled.
	if daily > 3*64 {
		t.Errorf("daily 429s = %d; want only the calls in flight when the gate closed", daily)
	}
	for _, r := range runs {
		gates := r.svc.Status().Gates
		if len(gates) != 1 || gates[0].Scope != "create" {
			t.Errorf("replica gates = %+v; want the create gate closed", gates)
		}
	}
	st, err := quota.Read(context.Background(), h.js, topology.Default(), allActions, time.Now())
	if err != nil {
		t.Fatalf("ReadQuota: %v", err)
	}
	if len(st.Gates) != 1 || st.Gates[0].Scope != "create" || st.Gates[0].Until.Before(time.Now()) {
		t.Errorf("quota bucket gates = %+v; want create closed until the reset", st.Gates)
	}
	for _, b := range st.Backlog {
		if b.Action == "create" && (b.Pending+uint64(b.AckPending) != 190) {
			t.Errorf("create backlog = %+v; want 190 waiting", b)
		}
	}
	if n := h.streamMsgCount("ZOOM_USERS_DLQ"); n != 0 {
		t.Errorf("dead letters = %d; want 0", n)
	}
	// The deferrals never ran up MaxAttempts (2): nothing was counted.
	if n := h.streamMsgCount("KV_zoom_attempts"); n != 0 {
		t.Errorf("attempt counters = %d; want 0 (quota deferrals never count)", n)
	}
}

// Ensure the daily quota's reset reopens the gate by itself and the
// deferred and held-back requests then go through, each created once, on
// servers with the pause API and without it (the gate alone).
func TestDailyQuotaResets(t *testing.T) {
	for _, noPause := range []bool{false, true} {
		t.Run(fmt.Sprintf("pause consumers %v", !noPause), func(t *testing.T) {
			// A "day" of two seconds: the reset comes quickly.
			h := newHarness(t, testenv.SimConfig{DailyCreateLimit: 4, DailyWindow: 2 * time.Second})
			var ids []string
			emails := map[string]string{}
			for i := range 12 {
				id := fmt.Sprintf("reset-%02d", i)
				emails[id] = fmt.Sprintf("reset-%02d@example.com", i)
				h.publish(id, "create", userBody("create", emails[id], 1))
				ids = append(ids, id)
			}
			for i := range 2 {
				cfg := pacedConfig(0, fmt.Sprintf("replica-%d", i))
				cfg.NoPause = noPause
				h.start(cfg)
			}
			evs := h.waitTerminal(30*time.Second, ids...)
			checkExactlyOnce(t, h, ids, emails, evs)
			deferred := 0
			for _, id := range ids {
				deferred += len(evs[id]) - len(terminal(evs[id]))
			}
			st := h.sim.Stats()
			t.Logf("12 invitations, 4 per 2 s window: %d deferred events, %d daily 429s", deferred, st.RateLimited[testenv.RateLimitDaily])
			if deferred == 0 {
				t.Errorf("deferred events = 0; want some (12 invitations need three quota windows)")
			}
		})
	}
}

// Ensure the scenario: 1,000 invitations queued against a daily cap
// of 100. Exactly 100 are created before the reset, Zoom sees about one
// call per replica after the cap, nothing is dead-lettered, 200 ssoCreate
// requests published during the pause finish within seconds, and after the
// (simulated) reset the rest are created, each once. The simulator and the
// services share a clock a few seconds before 00:00 UTC, so the reset comes
// quickly.
func TestDailyCapThousandInvitations(t *testing.T) {
	base := time.Now()
	fakeStart := zoom.NextUTCMidnight(base).Add(-7 * time.Second)
	offset := fakeStart.Sub(base)
	clock := func() time.Time { return time.Now().Add(offset) }

	h := newHarness(t, testenv.SimConfig{DailyCreateLimit: 100, RatePerSecond: 200, Now: clock})
	var invites []string
	emails := map[string]string{}
	for i := range 1000 {
		id := fmt.Sprintf("cap-%04d", i)
		emails[id] = fmt.Sprintf("cap-%04d@example.com", i)
		h.publish(id, "create", userBody("create", emails[id], 1))
		invites = append(invites, id)
	}
	var runs []*serviceRun
	for i := range 3 {
		cfg := pacedConfig(150, fmt.Sprintf("replica-%d", i))
		cfg.Now = clock
		cfg.Pacer = quota.NewPacer(150, quota.NewGates(clock))
		runs = append(runs, h.start(cfg))
	}
	// The gate closes once the cap is reached.
	eventually(t, 10*time.Second, func() (bool, string) {
		for _, r := range runs {
			if len(r.svc.Status().Gates) == 0 {
				return false, "a replica has no closed gate"
			}
		}
		return true, ""
	})
	if got := h.sim.TotalCreations(); got != 100 {
		t.Errorf("users created before the reset = %d; want exactly 100", got)
	}
	dailyAtClose := h.sim.Stats().RateLimited[testenv.RateLimitDaily]

	// ssoCreate is not held by the create gate.
	var ssos []string
	for i := range 200 {
		id := fmt.Sprintf("pause-sso-%03d", i)
		emails[id] = fmt.Sprintf("pause-sso-%03d@example.com", i)
		h.publish(id, "ssoCreate", userBody("ssoCreate", emails[id], 1))
		ssos = append(ssos, id)
	}
	ssoStart := time.Now()
	h.waitTerminal(10*time.Second, ssos...)
	ssoTook := time.Since(ssoStart)
	if clock().After(zoom.NextUTCMidnight(fakeStart)) {
		t.Errorf("the ssoCreate requests finished only after the reset; want them done while the create gate was closed")
	}
	if got := h.sim.TotalCreations(); got != 300 {
		t.Errorf("users created during the pause = %d; want 300 (100 invitations + 200 ssoCreate)", got)
	}
	// A new day with room for the rest: after the reset everything goes.
	h.sim.SetDailyCreateLimit(0)
	evs := h.waitTerminal(60*time.Second, invites...)
	all := append(append([]string{}, invites...), ssos...)
	checkExactlyOnce(t, h, all, emails, evs)
	daily := h.sim.Stats().RateLimited[testenv.RateLimitDaily]
	deferred := 0
	for _, id := range invites {
		deferred += len(evs[id]) - len(terminal(evs[id]))
	}
	t.Logf("1000 invitations, cap 100, 3 replicas: daily 429s %d (at gate close %d); %d deferred events; 200 ssoCreate during the pause took %v",
		daily, dailyAtClose, deferred, ssoTook.Round(time.Millisecond))
	if daily > 3 {
		t.Errorf("daily 429s = %d; want at most one per replica", daily)
	}
	if ssoTook > 5*time.Second {
		t.Errorf("200 ssoCreate during the pause took %v; want a few seconds at most", ssoTook)
	}
}
