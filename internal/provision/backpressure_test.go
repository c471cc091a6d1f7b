package provision_test

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/zoom"
	"github.com/zoomprov/consumer/testenv"
)

// heapAfterGC returns the live heap and the goroutine count after a full
// garbage collection.
func heapAfterGC() (uint64, int) {
	runtime.GC()
	runtime.GC() // the second cycle frees what the first one's finalizers released
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, runtime.NumGoroutine()
}

const mib = 1 << 20

// Ensure that with Zoom stalled completely and thousands of requests
// queued, the service keeps exactly MaxInFlight requests in hand, its
// memory stays flat, nothing is dead-lettered or given an outcome, and
// that once Zoom answers again it recovers by itself and every request
// ends created exactly once.
//
// The Zoom time-out and MessageTimeout are a minute, so the stalled calls
// are only slow: no transient failures, no backoff. AckWait is 2 s, shorter
// than the stall, so the heartbeats must keep the stalled requests from
// being redelivered. BACKPRESSURE_N sets the number of requests (default
// 5,000) and BACKPRESSURE_STALL how long Zoom stays stalled once the
// workers are full (default 6s).
func TestBackPressureZoomStalled(t *testing.T) {
	n := 5000
	if v := os.Getenv("BACKPRESSURE_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatalf("BACKPRESSURE_N=%q: %v", v, err)
		}
	}
	const maxInFlight = 16
	stallFor := 6 * time.Second
	if v, err := time.ParseDuration(os.Getenv("BACKPRESSURE_STALL")); err == nil {
		stallFor = v
	}
	h := newHarness(t, testenv.SimConfig{})
	h.sim.Stall()

	// Queue everything before the service starts.
	start := time.Now()
	actions := []string{"create", "autoCreate", "custCreate", "ssoCreate"}
	for i := range n {
		a := actions[i%len(actions)]
		info := fmt.Sprintf(`{"email":"bp%05d@example.com","type":1}`, i)
		if a == "autoCreate" {
			info = fmt.Sprintf(`{"email":"bp%05d@example.com","type":1,"password":"Bp-Passw0rd-%05d"}`, i, i)
		}
		m := nats.NewMsg("zoom.users.create." + a)
		m.Data = []byte(`{"action":"` + a + `","user_info":` + info + `}`)
		if _, err := h.js.PublishMsgAsync(m, jetstream.WithMsgID("bp-"+strconv.Itoa(i))); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	select {
	case <-h.js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		t.Fatalf("publishing %d requests did not complete within 30s", n)
	}
	if got := h.streamMsgCount("ZOOM_USERS"); got != uint64(n) {
		t.Fatalf("request stream holds %d; want %d", got, n)
	}
	t.Logf("queued %d requests in %v", n, time.Since(start).Round(time.Millisecond))

	cfg := testConfig(3)
	cfg.MaxInFlight = maxInFlight
	cfg.MessageTimeout = time.Minute
	cfg.Logger = zerolog.New(h.log).Level(zerolog.InfoLevel) // 5,000 outcome lines, no debug chatter
	r := h.startWith(cfg, zoom.Config{
		AccountID: testenv.DefaultSimAccountID, ClientID: testenv.DefaultSimClientID, ClientSecret: testenv.DefaultSimClientSecret,
		BaseURL: h.sim.APIURL(), TokenURL: h.sim.TokenURL(), Timeout: time.Minute,
	})

	// The workers fill up with stalled calls.
	eventually(t, 10*time.Second, func() (bool, string) {
		st, sim := r.svc.Status().InFlight, h.sim.Stats().InFlight
		return st == maxInFlight && sim == maxInFlight, fmt.Sprintf("in flight: service %d, simulator %d; want %d", st, sim, maxInFlight)
	})
	heap0, gr0 := heapAfterGC()
	t.Logf("stalled: heap %.1f MiB, %d goroutines", float64(heap0)/mib, gr0)

	// While stalled, sample once a second: still exactly MaxInFlight in
	// hand, nothing settled, memory flat.
	stallEnd := time.Now().Add(stallFor)
	var heapMax uint64
	tick := time.NewTicker(time.Second)
	for time.Now().Before(stallEnd) {
		<-tick.C // sampling interval, not a wait for a condition
		heap, gr := heapAfterGC()
		heapMax = max(heapMax, heap)
		st, ss := r.svc.Status(), h.sim.Stats()
		var pending int
		for _, a := range actions {
			pending += h.consumerInfo(a).NumAckPending
		}
		t.Logf("stalled: heap %.1f MiB, %d goroutines, in flight %d (simulator %d), ack pending %d, results %d, dead letters %d",
			float64(heap)/mib, gr, st.InFlight, ss.InFlight, pending, h.streamMsgCount("ZOOM_USERS_RESULTS"), h.streamMsgCount("ZOOM_USERS_DLQ"))
		if st.InFlight != maxInFlight || ss.InFlight != maxInFlight {
			t.Errorf("in flight: service %d, simulator %d; want %d while stalled", st.InFlight, ss.InFlight, maxInFlight)
		}
		// Each action's iterator may hold one more fetched message.
		if pending > maxInFlight+len(actions) {
			t.Errorf("ack pending = %d; want at most %d (in flight plus one buffered per action)", pending, maxInFlight+len(actions))
		}
		if got := h.streamMsgCount("ZOOM_USERS_RESULTS") + h.streamMsgCount("ZOOM_USERS_DLQ"); got != 0 {
			t.Errorf("%d results and dead letters while stalled; want 0", got)
		}
		if gr > gr0+50 {
			t.Errorf("goroutines = %d; want about %d as when the stall began", gr, gr0)
		}
	}
	tick.Stop()
	heap1, gr1 := heapAfterGC()
	growth := int64(heap1) - int64(heap0)
	t.Logf("after %v stalled: heap %.1f MiB (%+.1f MiB, peak %.1f MiB), %d goroutines (%+d)",
		stallFor, float64(heap1)/mib, float64(growth)/mib, float64(heapMax)/mib, gr1, gr1-gr0)
	if growth > 20*mib {
		t.Errorf("heap grew by %.1f MiB while Zoom was stalled; want under 20 MiB", float64(growth)/mib)
	}
	if ss := h.sim.Stats(); ss.MaxConcurrent > maxInFlight {
		t.Errorf("simulator saw %d concurrent calls; want at most MaxInFlight=%d", ss.MaxConcurrent, maxInFlight)
	}

	// Zoom answers again: everything drains by itself.
	h.sim.Unstall()
	recovery := time.Now()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "bp-" + strconv.Itoa(i)
	}
	evs := h.waitTerminal(60*time.Second, ids...)
	t.Logf("recovered: %d requests to terminal results in %v after the stall ended", n, time.Since(recovery).Round(time.Millisecond))

	for _, id := range ids {
		term := terminal(evs[id])
		if len(term) != 1 || term[0].Data.Outcome != messages.OutcomeCreated {
			t.Errorf("%s terminal results = %+v; want one created", id, term)
		}
	}
	if got := h.sim.TotalCreations(); got != n {
		t.Errorf("simulator created %d users; want %d", got, n)
	}
	for i := range n {
		if c := h.sim.Creations(fmt.Sprintf("bp%05d@example.com", i)); c != 1 {
			t.Errorf("bp%05d@example.com created %d times; want 1", i, c)
		}
	}
	if got := h.streamMsgCount("ZOOM_USERS_DLQ"); got != 0 {
		t.Errorf("dead letters = %d; want 0", got)
	}
	eventually(t, 10*time.Second, func() (bool, string) {
		left := h.streamMsgCount("ZOOM_USERS")
		return left == 0, fmt.Sprintf("request stream holds %d; want 0", left)
	})
	var redelivered int
	for _, a := range actions {
		redelivered += h.consumerInfo(a).NumRedelivered
	}
	calls := h.sim.Stats().Requests
	t.Logf("redelivered messages: %d; simulator: %v", redelivered, calls)
	// The message each action's dispatcher holds for a busy worker gets
	// heartbeats too, so a stall longer than AckWait sends nothing to Zoom
	// twice.
	if dup := calls[testenv.RouteCreateUser][409]; dup != 0 || redelivered != 0 {
		t.Errorf("%d requests sent to Zoom twice, %d redelivered after a %v stall (AckWait %v); want none", dup, redelivered, stallFor, cfg.AckWait)
	}
	if err := r.stop(t); err != nil {
		t.Errorf("Run = %v; want nil", err)
	}
}
