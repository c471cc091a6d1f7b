package provision_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/provision"
	"github.com/zoomprov/consumer/internal/quota"
	"github.com/zoomprov/consumer/internal/retry"
	"github.com/zoomprov/consumer/internal/zoom"
	"github.com/zoomprov/consumer/testenv"
)

// Ensure a request whose handling keeps running out of MessageTimeout is
// dead-lettered after MaxAttempts like any transient failure. Zoom answers
// 503 every time; the in-process retries wait 200 ms then 400 ms, so the
// 300 ms time limit ends every delivery during its second wait. Before the
// fix a spent time limit counted as a shutdown: the request was handed back
// at once, uncounted, for ever.
func TestMessageTimeoutCountsAsTransient(t *testing.T) {
	h := newHarness(t, testenv.SimConfig{})
	h.sim.FailEmail("slow@example.com", 0, testenv.Fault{Status: 503})
	cfg := testConfig(2)
	cfg.Policy.InProcess = retry.Schedule{Initial: 200 * time.Millisecond, Max: 400 * time.Millisecond, Multiplier: 2}
	cfg.MessageTimeout = 300 * time.Millisecond
	h.start(cfg)
	h.publish("slow-1", "ssoCreate", userBody("ssoCreate", "slow@example.com", 1))
	evs := h.waitTerminal(20*time.Second, "slow-1")
	term := terminal(evs["slow-1"])
	if len(term) != 1 || term[0].Data.Outcome != messages.OutcomeFailed || term[0].Data.Reason != messages.ReasonRetriesExhausted {
		t.Fatalf("terminal = %+v; want one failed, retries_exhausted", term)
	}
	if got := term[0].Data.Attempt; got != 2 {
		t.Errorf("dead-lettered on delivery %d; want 2 (MaxAttempts)", got)
	}
	if n := h.streamMsgCount("ZOOM_USERS_DLQ"); n != 1 {
		t.Errorf("dead letters = %d; want 1", n)
	}
}

// Ensure a New that gets a clock does not change the clock of the Pacer
// and gates it is given: they belong to the caller, who may share them.
// Before the fix New set the Pacer's clock to its own (a data race when two
// services shared one, and a gate read on the wrong clock).
func TestNewLeavesThePacerAlone(t *testing.T) {
	h := newHarness(t, testenv.SimConfig{})
	gates := quota.NewGates(time.Now)
	pacer := quota.NewPacer(0, gates)
	gates.Set(quota.Gate{Scope: "create", Until: time.Now().Add(time.Hour)})
	later := func() time.Time { return time.Now().Add(2 * time.Hour) }
	// Two services sharing one pacer, started at once, while the pacer is
	// in use: -race reports any write New makes into it.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			_ = pacer.Wait(context.Background(), zoom.Call{Action: "ssoCreate"})
		}
	}()
	for i := range 2 {
		cfg := testConfig(3)
		cfg.Pacer = pacer
		cfg.Now = later
		cfg.ReplicaID = fmt.Sprintf("shared-%d", i)
		h.start(cfg)
	}
	<-done
	if _, closed := gates.Closed("create"); !closed {
		t.Errorf("after New with a clock two hours ahead the caller's gate reads open; want it read on the caller's clock (closed)")
	}
}

// Ensure a recovered panic is logged with its stack, and the request is
// handed back and then handled normally.
func TestPanicLoggedWithStack(t *testing.T) {
	h := newHarness(t, testenv.SimConfig{})
	var panicked atomic.Bool
	h.wrapZoom = func(zc *zoom.Client) provision.Zoom { return &panicOnce{Client: zc, done: &panicked} }
	cfg := testConfig(3)
	cfg.Policy.Redelivery = retry.Schedule{Initial: 10 * time.Millisecond, Max: 10 * time.Millisecond}
	h.start(cfg)
	h.publish("panic-1", "ssoCreate", userBody("ssoCreate", "panic@example.com", 1))
	evs := h.waitTerminal(10*time.Second, "panic-1")
	if term := terminal(evs["panic-1"]); len(term) != 1 || term[0].Data.Outcome != messages.OutcomeCreated {
		t.Fatalf("terminal = %+v; want created after the panic", term)
	}
	log := h.log.String()
	var line string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "panic while handling a request") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no panic line in the log:\n%s", log)
	}
	if !strings.Contains(line, `"stack":"goroutine `) || !strings.Contains(line, "panicOnce") {
		t.Errorf("panic line has no stack naming the panicking function: %s", line)
	}
	if !strings.Contains(line, `"request_id":"panic-1"`) {
		t.Errorf("panic line does not name the request: %s", line)
	}
}

// panicOnce is the real Zoom client whose first CreateUser panics.
type panicOnce struct {
	*zoom.Client
	done *atomic.Bool
}

func (p *panicOnce) CreateUser(ctx context.Context, req zoom.CreateUserRequest) (zoom.Response, error) {
	if p.done.CompareAndSwap(false, true) {
		panic("injected")
	}
	return p.Client.CreateUser(ctx, req)
}

// Ensure a delivery whose time runs out while it waits for its pace never
// counts as a failure: the request is handed back and created later, not
// dead-lettered as retries_exhausted. The pace is 2 calls a second for 8
// requests, and each delivery may last 300 ms; before, every such wait
// counted toward MaxAttempts (2).
func TestPacingWaitIsNoFailure(t *testing.T) {
	h := newHarness(t, testenv.SimConfig{})
	cfg := testConfig(2)
	cfg.MessageTimeout = 300 * time.Millisecond
	cfg.Pacer = quota.NewPacer(2, quota.NewGates(nil))
	h.start(cfg)
	var ids []string
	for i := range 8 {
		id := fmt.Sprintf("paced-%d", i)
		h.publish(id, "ssoCreate", userBody("ssoCreate", id+"@example.com", 1))
		ids = append(ids, id)
	}
	evs := h.waitTerminal(30*time.Second, ids...)
	for _, id := range ids {
		if term := terminal(evs[id]); len(term) != 1 || term[0].Data.Outcome != messages.OutcomeCreated {
			t.Errorf("%s: %+v; want created", id, term)
		}
	}
	if n := h.streamMsgCount("ZOOM_USERS_DLQ"); n != 0 {
		t.Errorf("dead letters = %d; want 0", n)
	}
}

// Ensure a replica whose clock runs ahead of Zoom's does not loop on the
// daily limit: its gate reopens before Zoom's reset, Zoom answers 429 with
// the same Retry-After (now in the replica's past), and the gate closes
// for a minute instead. Before, the gate stayed open and the request was
// tried every 100 ms until Zoom's reset, a call and a deferred event each
// time.
func TestClockAheadOfZoomDoesNotLoop(t *testing.T) {
	const window, skew = 8 * time.Second, 3 * time.Second
	base := time.Now()
	offset := base.Truncate(window).Add(window).Sub(base)
	zoomClock := func() time.Time { return time.Now().Add(offset) }
	ahead := func() time.Time { return zoomClock().Add(skew) }
	h := newHarness(t, testenv.SimConfig{DailyCreateLimit: 1, DailyWindow: window, Now: zoomClock})
	cfg := testConfig(3)
	cfg.Now = ahead
	cfg.Pacer = quota.NewPacer(0, quota.NewGates(ahead))
	h.start(cfg)
	h.publish("ahead-a", "create", `{"action":"create","user_info":{"email":"a@example.com","type":1}}`)
	h.waitTerminal(10*time.Second, "ahead-a")
	h.publish("ahead-b", "create", `{"action":"create","user_info":{"email":"b@example.com","type":1}}`)
	// Until Zoom's reset, b may be tried at most twice: once to close the
	// gate, once when this replica's clock reopens it early. The test
	// watches that long: it counts calls over a span of time.
	reset := base.Add(window)
	<-time.After(time.Until(reset.Add(-200 * time.Millisecond)))
	if n := countStatus(h.sim, testenv.RouteCreateUser, 429); n > 2 {
		t.Errorf("POSTs answered 429 before Zoom's reset = %d; want at most 2", n)
	}
	if n := len(h.events()["ahead-b"]); n > 2 {
		t.Errorf("deferred events for b = %d; want at most 2", n)
	}
}

// countStatus is how many requests on route the simulator answered with
// status.
func countStatus(sim *testenv.Simulator, route string, status int) int {
	n := 0
	for _, r := range sim.Requests() {
		if r.Route == route && r.Status == status {
			n++
		}
	}
	return n
}
