package provision_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zoomprov/consumer/internal/deadletter"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/quota"
	"github.com/zoomprov/consumer/testenv"
)

// Ensure every outcome of every lifecycle operation, through real streams
// and the simulator.
func TestLifecycleOutcomes(t *testing.T) {
	type want struct {
		outcome    messages.Outcome
		reason     messages.Reason
		httpStatus int
		zoomCode   int
		dlq        bool
		detail     string // in zoom_message, when set
	}
	tests := []struct {
		name   string
		action string
		body   string
		setup  func(sim *testenv.Simulator)
		want   want
	}{
		{
			name: "update 204", action: "update", body: `{"email":"u@example.com","user":{"job_title":"CTO","type":2}}`,
			setup: func(sim *testenv.Simulator) { sim.AddUser("u@example.com", 1) },
			want:  want{outcome: messages.OutcomeUpdated, httpStatus: 204},
		},
		{
			name: "update of a user Zoom does not have", action: "update", body: `{"email":"ghost@example.com","user":{"job_title":"CTO"}}`,
			want: want{outcome: messages.OutcomeFailed, reason: messages.ReasonNotFound, httpStatus: 404, zoomCode: 1001, dlq: true},
		},
		{
			name: "update with two licence fields is refused before Zoom", action: "update",
			body: `{"email":"u@example.com","user":{"type":2,"zoom_one_type":16}}`,
			want: want{outcome: messages.OutcomeFailed, reason: messages.ReasonInvalidRequest, dlq: true},
		},
		{
			name: "update rejected by Zoom", action: "update", body: `{"email":"u@example.com","user":{"plan_united_type":"99999"}}`,
			setup: func(sim *testenv.Simulator) { sim.AddUser("u@example.com", 1) },
			want:  want{outcome: messages.OutcomeFailed, reason: messages.ReasonZoomRejected, httpStatus: 400, zoomCode: 300, dlq: true},
		},
		{
			name: "deactivate", action: "deactivate", body: `{"email":"d@example.com"}`,
			setup: func(sim *testenv.Simulator) { sim.AddUser("d@example.com", 2) },
			want:  want{outcome: messages.OutcomeDeactivated, httpStatus: 200},
		},
		{
			name: "activate", action: "activate", body: `{"email":"a@example.com"}`,
			setup: func(sim *testenv.Simulator) { sim.AddUser("a@example.com", 1) },
			want:  want{outcome: messages.OutcomeActivated, httpStatus: 200},
		},
		{
			name: "deactivate a user Zoom does not have", action: "deactivate", body: `{"email":"ghost@example.com"}`,
			want: want{outcome: messages.OutcomeFailed, reason: messages.ReasonNotFound, httpStatus: 404, zoomCode: 1001, dlq: true},
		},
		{
			name: "status of an admin is refused (400 code 200: about the user, not the app)", action: "deactivate", body: `{"email":"boss@example.com"}`,
			setup: func(sim *testenv.Simulator) {
				sim.AddUser("boss@example.com", 2)
				sim.SetAdmin("boss@example.com", true)
			},
			want: want{outcome: messages.OutcomeFailed, reason: messages.ReasonZoomRejected, httpStatus: 400, zoomCode: 200, dlq: true},
		},
		{
			name: "delete 204", action: "delete", body: `{"email":"x@example.com","action":"delete"}`,
			setup: func(sim *testenv.Simulator) { sim.AddUser("x@example.com", 1) },
			want:  want{outcome: messages.OutcomeDeleted, httpStatus: 204},
		},
		{
			name: "delete of a user Zoom does not have is done", action: "delete", body: `{"email":"gone@example.com"}`,
			want: want{outcome: messages.OutcomeDeleted, httpStatus: 404, zoomCode: 1001},
		},
		{
			name: "disassociate a managed-domain user", action: "delete", body: `{"email":"m@managed.example"}`,
			setup: func(sim *testenv.Simulator) {
				sim.SetManagedDomain("managed.example", true)
				sim.AddUser("m@managed.example", 1)
			},
			want: want{outcome: messages.OutcomeFailed, reason: messages.ReasonZoomRejected, httpStatus: 400, zoomCode: 1107, dlq: true,
				detail: `send the request again with "action":"delete"`},
		},
		{
			name: "delete with a transfer flag but no transfer_email is refused before Zoom", action: "delete",
			body: `{"email":"x@example.com","transfer_meeting":true}`,
			want: want{outcome: messages.OutcomeFailed, reason: messages.ReasonInvalidRequest, dlq: true},
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, testenv.SimConfig{})
			if tc.setup != nil {
				tc.setup(h.sim)
			}
			id := "op-" + strconv.Itoa(i)
			h.publish(id, tc.action, tc.body)
			h.start(testConfig(3))
			term := terminal(h.waitTerminal(15*time.Second, id)[id])
			if len(term) != 1 {
				t.Fatalf("terminal events = %d; want 1", len(term))
			}
			got := term[0].Data
			if got.Outcome != tc.want.outcome || got.Reason != tc.want.reason || got.HTTPStatus != tc.want.httpStatus || got.ZoomCode != tc.want.zoomCode {
				t.Errorf("result = {%s %s http %d code %d}; want {%s %s http %d code %d}", got.Outcome, got.Reason, got.HTTPStatus, got.ZoomCode,
					tc.want.outcome, tc.want.reason, tc.want.httpStatus, tc.want.zoomCode)
			}
			if got.Action != tc.action || got.Email == "" || term[0].ID != id+":result" || term[0].Type != "zoom.user.provisioning."+string(tc.want.outcome) {
				t.Errorf("event = {type %s id %s action %s email %q}; want {zoom.user.provisioning.%s %s:result %s the user's}", term[0].Type, term[0].ID, got.Action, got.Email, tc.want.outcome, id, tc.action)
			}
			if tc.want.detail != "" && !strings.Contains(got.ZoomMessage, tc.want.detail) {
				t.Errorf("zoom_message = %q; want it to say %q", got.ZoomMessage, tc.want.detail)
			}
			dlq := h.storedMsgs("ZOOM_USERS_DLQ")
			switch {
			case !tc.want.dlq && len(dlq) != 0:
				t.Errorf("dead letters = %d; want 0", len(dlq))
			case tc.want.dlq && len(dlq) != 1:
				t.Errorf("dead letters = %d; want 1", len(dlq))
			case tc.want.dlq:
				m := dlq[0]
				dl, err := deadletter.Parse(m.Header)
				if err != nil {
					t.Fatalf("ParseDeadLetter: %v", err)
				}
				if string(m.Data) != tc.body || m.Subject != "zoom.users.dlq."+tc.action || dl.OriginalSubject != "zoom.users."+tc.action || dl.Reason != tc.want.reason {
					t.Errorf("dead letter = %s %q {original %s reason %s}; want zoom.users.dlq.%s, the body as sent, original zoom.users.%s, %s",
						m.Subject, m.Data, dl.OriginalSubject, dl.Reason, tc.action, tc.action, tc.want.reason)
				}
			}
		})
	}
}

// lifeStep is one request of a user's life, and how to recognise the call
// Zoom performed for it.
type lifeStep struct {
	action string
	body   string
	// matches tells whether a performed Zoom call is this step's.
	matches func(c testenv.SimCall) bool
}

func userLife(email string, withDelete bool) []lifeStep {
	patchWith := func(s string) func(c testenv.SimCall) bool {
		return func(c testenv.SimCall) bool { return c.Method == "PATCH" && strings.Contains(string(c.Body), s) }
	}
	status := func(s string) func(c testenv.SimCall) bool {
		return func(c testenv.SimCall) bool { return c.Method == "PUT" && strings.Contains(string(c.Body), `"`+s+`"`) }
	}
	steps := []lifeStep{
		{"ssoCreate", fmt.Sprintf(`{"action":"ssoCreate","user_info":{"email":%q,"type":1,"first_name":"New"}}`, email),
			func(c testenv.SimCall) bool { return c.Method == "POST" }},
		{"update", fmt.Sprintf(`{"email":%q,"user":{"first_name":"Renamed","type":2}}`, email), patchWith("Renamed")},
		{"deactivate", fmt.Sprintf(`{"email":%q}`, email), status("deactivate")},
		{"activate", fmt.Sprintf(`{"email":%q}`, email), status("activate")},
		{"update", fmt.Sprintf(`{"email":%q,"user":{"job_title":"Rehired","type":2}}`, email), patchWith("Rehired")},
	}
	if withDelete {
		steps = append(steps, lifeStep{"delete", fmt.Sprintf(`{"email":%q,"action":"delete"}`, email),
			func(c testenv.SimCall) bool { return c.Method == "DELETE" }})
	}
	return steps
}

// Ensure the per-user order: 300 users each live create → update →
// deactivate → activate → update (and every fifth is then deleted), each
// user's requests published back to back and the users interleaved, two
// replicas, Zoom failing 5% of calls with 5xx and losing 2% of answers.
// Every request ends in exactly one terminal result; every user ends in the
// state its last request asked for; the calls Zoom performed for each user
// follow stream order (a call repeated after a lost answer counts once);
// nothing reached Zoom for a user before its creation did; and no two calls
// for one user overlapped at Zoom.
//
// LIFECYCLE_USERS, LIFECYCLE_LATENCY (Zoom's, per call) and LIFECYCLE_RATE
// (the account's calls per second, which the replicas split; 0 = none)
// scale it up for a measurement.
func TestLifecycleInOrder(t *testing.T) {
	users := envInt(t, "LIFECYCLE_USERS", 300)
	latency := time.Duration(envInt(t, "LIFECYCLE_LATENCY_MS", 3)) * time.Millisecond
	rate := float64(envInt(t, "LIFECYCLE_RATE", 0))
	h := newHarness(t, testenv.SimConfig{Latency: latency, PhoneLicenses: -1})
	h.sim.SetRandomFaults(testenv.RandomFaults{Seed: 7, ServerError: 0.05, LostAnswer: 0.02})
	rng := rand.New(rand.NewPCG(1, 2))
	order := rng.Perm(users)
	var ids []string
	lives := map[string][]lifeStep{}
	for _, u := range order {
		email := fmt.Sprintf("life-%04d@example.com", u)
		life := userLife(email, u%5 == 0)
		lives[email] = life
		for i, st := range life {
			id := fmt.Sprintf("life-%04d-%d", u, i)
			h.publish(id, st.action, st.body)
			ids = append(ids, id)
		}
	}
	start := time.Now()
	for i := range 2 {
		cfg := testConfig(10)
		cfg.ReplicaID = fmt.Sprintf("life-%d", i)
		cfg.MaxInFlight = envInt(t, "LIFECYCLE_IN_FLIGHT", 0)
		if rate > 0 {
			cfg.Pacer = quota.NewPacer(rate, quota.NewGates(nil)) // the account's: the replicas split it
		}
		h.start(cfg)
	}
	evs := h.waitTerminal(3*time.Minute+time.Duration(float64(len(ids))/max(rate, 1)*float64(time.Second)), ids...)
	elapsed := time.Since(start)

	for _, id := range ids {
		term := terminal(evs[id])
		if len(term) != 1 {
			t.Errorf("%s: %d terminal results; want 1", id, len(term))
			continue
		}
		if o := term[0].Data.Outcome; o == messages.OutcomeFailed {
			t.Errorf("%s: failed (%s: %s); want every step to succeed", id, term[0].Data.Reason, term[0].Data.ZoomMessage)
		}
	}
	violations, retried, duplicated := 0, 0, 0
	for email, life := range lives {
		u, exists := h.sim.User(email)
		deleted := life[len(life)-1].action == "delete"
		switch {
		case deleted && exists:
			t.Errorf("%s: still in Zoom; want deleted", email)
		case !deleted && !exists:
			t.Errorf("%s: not in Zoom", email)
		case !deleted && (u.Status != "active" || u.Type != 2 || u.JobTitle != "Rehired" || u.FirstName != "Renamed"):
			t.Errorf("%s: final state %s type %d job %q name %q; want active, type 2, Rehired, Renamed", email, u.Status, u.Type, u.JobTitle, u.FirstName)
		}
		// The calls Zoom performed, in its order, mapped to steps; a step
		// repeated (its answer was lost, the call made again) counts once.
		var got []int
		for _, c := range h.sim.History(email) {
			step := -1
			for i, st := range life {
				if st.matches(c) {
					step = i
				}
			}
			if step < 0 {
				t.Errorf("%s: Zoom performed a call no step explains: %s %s %s", email, c.Method, c.Path, c.Body)
				continue
			}
			if len(got) == 0 || got[len(got)-1] != step {
				got = append(got, step)
			}
		}
		want := make([]int, len(life))
		for i := range want {
			want[i] = i
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			violations++
			if violations <= 5 {
				t.Errorf("%s: Zoom performed the steps in the order %v; want %v (stream order)", email, got, want)
			}
		}
		rep := h.sim.Repeats(email)
		retried += rep.Retried
		if rep.Duplicated > 0 {
			duplicated += rep.Duplicated
			t.Errorf("%s: Zoom got %d calls again after answering them with success", email, rep.Duplicated)
		}
	}
	if violations > 5 {
		t.Errorf("%d users' calls out of order in all", violations)
	}
	t.Logf("calls repeated after a failure or a lost answer: %d; after a success: %d", retried, duplicated)
	st := h.sim.Stats()
	var reads uint64
	h.mu.Lock()
	for _, r := range h.runs {
		reads += r.svc.Status().OrderReads
	}
	h.mu.Unlock()
	t.Logf("lifecycle: %d users, %d requests, 2 replicas, Zoom latency %v, rate %g/s, 5%% 5xx, 2%% lost answers: %v (%.0f requests/s, %d Zoom calls, busiest second %d); order: %d stream reads (%.2f per request); per-user overlaps at Zoom %d; faults %v",
		users, len(ids), latency, rate, elapsed.Round(time.Millisecond), float64(len(ids))/elapsed.Seconds(), len(h.sim.Requests()), st.MaxPerSecond,
		reads, float64(reads)/float64(len(ids)), st.Overlaps, st.Faults)
	if st.Overlaps != 0 {
		t.Errorf("Zoom saw %d overlapping calls for one user; want none", st.Overlaps)
	}
}

// Ensure a user whose creation waits for the daily quota holds only that
// user's later requests: another user's update, and the first user's own
// earlier-created colleague, go through while it waits; after the reset
// the creation and then its update reach Zoom, in that order.
func TestLifecycleDailyQuotaHoldsOnlyItsUser(t *testing.T) {
	// The simulator and the service share a clock that starts a quota
	// "day" of 4 s now, so the reset is 4 s away.
	const window = 4 * time.Second
	base := time.Now()
	offset := base.Truncate(window).Add(window).Sub(base)
	clock := func() time.Time { return time.Now().Add(offset) }
	h := newHarness(t, testenv.SimConfig{DailyCreateLimit: 1, DailyWindow: window, Now: clock})
	h.sim.AddUser("other@example.com", 1)
	// a takes the day's one invitation first, so that b's creation is the
	// one that waits.
	h.publish("q-create-a", "create", `{"action":"create","user_info":{"email":"a@example.com","type":1}}`)
	cfg := testConfig(3)
	cfg.Now = clock
	cfg.Pacer = quota.NewPacer(0, quota.NewGates(clock))
	h.start(cfg)
	h.waitTerminal(10*time.Second, "q-create-a")
	h.publish("q-create-b", "create", `{"action":"create","user_info":{"email":"b@example.com","type":1}}`)
	h.publish("q-update-b", "update", `{"email":"b@example.com","user":{"job_title":"Waits"}}`)
	h.publish("q-update-a", "update", `{"email":"a@example.com","user":{"job_title":"Goes"}}`)
	h.publish("q-update-other", "update", `{"email":"other@example.com","user":{"job_title":"Goes too"}}`)

	evs := h.waitTerminal(10*time.Second, "q-create-a", "q-update-a", "q-update-other")
	resetAt := base.Add(window)
	for _, id := range []string{"q-create-a", "q-update-a", "q-update-other"} {
		if term := terminal(evs[id]); len(term) != 1 || term[0].Data.Outcome == messages.OutcomeFailed {
			t.Errorf("%s: %+v; want done", id, term)
		}
	}
	if time.Now().After(resetAt) {
		t.Fatalf("the other users' requests finished only after the reset; want them done while b's creation waits")
	}
	if got := terminal(h.events()["q-update-b"]); len(got) != 0 {
		t.Errorf("b's update ended before b's creation: %+v", got)
	}
	evs = h.waitTerminal(30*time.Second, "q-create-b", "q-update-b")
	if term := terminal(evs["q-create-b"]); len(term) != 1 || term[0].Data.Outcome != messages.OutcomeCreated {
		t.Errorf("q-create-b = %+v; want created after the reset", term)
	}
	var got []string
	for _, c := range h.sim.History("b@example.com") {
		got = append(got, c.Method)
	}
	if strings.Join(got, ",") != "POST,PATCH" {
		t.Errorf("Zoom performed for b: %v; want POST then PATCH", got)
	}
	deferred := len(evs["q-create-b"]) - 1
	t.Logf("b's creation deferred %d times; its update waited behind it", deferred)
}

// envInt is the integer environment variable name, or def when unset.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a whole number", name, v)
	}
	return n
}
