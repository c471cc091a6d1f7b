package provision_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zoomprov/consumer/internal/deadletter"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/zoom"
	"github.com/zoomprov/consumer/testenv"
)

// Ensure each row of the outcome table holds end to end, through real
// streams: the result event, the dead letter with its headers, and an empty
// request stream.
func TestOutcomes(t *testing.T) {
	type want struct {
		outcome    messages.Outcome
		reason     messages.Reason
		httpStatus int
		zoomCode   int
		deferrals  int  // deferred events before the terminal one (at least)
		dlq        bool // a dead letter is expected
		zoomCalls  bool // whether Zoom may be called at all
	}
	tests := []struct {
		name   string
		action string
		body   string
		setup  func(sim *testenv.Simulator)
		want   want
	}{
		{
			name: "201 created", action: "ssoCreate",
			body: `{"action":"ssoCreate","user_info":{"email":"alice@example.com","type":1,"password":"if42!LfH@"}}`,
			want: want{outcome: messages.OutcomeCreated, httpStatus: 201, zoomCalls: true},
		},
		{
			name: "user_info as a JSON string", action: "custCreate",
			body: `{"action":"custCreate","user_info":"{\"email\":\"str@example.com\",\"type\":2}"}`,
			want: want{outcome: messages.OutcomeCreated, httpStatus: 201, zoomCalls: true},
		},
		{
			name: "409 exists, id looked up", action: "ssoCreate",
			body:  `{"action":"ssoCreate","user_info":{"email":"bob@example.com","type":1}}`,
			setup: func(sim *testenv.Simulator) { sim.AddUser("bob@example.com", 1) },
			want:  want{outcome: messages.OutcomeExists, httpStatus: 409, zoomCode: 1005, zoomCalls: true},
		},
		// Only 409 with code 1005 means "already in the account"; another
		// 409 is a conflict retrying cannot resolve: a zoom_rejected dead
		// letter, never "exists".
		{
			name: "409 with another code", action: "ssoCreate",
			body: `{"action":"ssoCreate","user_info":{"email":"conflict@example.com","type":1}}`,
			setup: func(sim *testenv.Simulator) {
				// Only the POST: a look-up would find no such user.
				sim.FailNext(1, testenv.Fault{Status: 409, Code: 3001, Message: "Conflict."})
			},
			want: want{outcome: messages.OutcomeFailed, reason: messages.ReasonZoomRejected, httpStatus: 409, zoomCode: 3001, dlq: true, zoomCalls: true},
		},
		{
			name: "invalid before Zoom", action: "custCreate",
			body: `{"action":"custCreate","user_info":{"email":"not-an-email","type":2}}`,
			want: want{outcome: messages.OutcomeFailed, reason: messages.ReasonInvalidRequest, dlq: true},
		},
		{
			name: "not JSON", action: "create",
			body: `this is not json`,
			want: want{outcome: messages.OutcomeFailed, reason: messages.ReasonInvalidRequest, dlq: true},
		},
		{
			name: "action differs from subject", action: "create",
			body: `{"action":"ssoCreate","user_info":{"email":"mismatch@example.com","type":1}}`,
			want: want{outcome: messages.OutcomeFailed, reason: messages.ReasonInvalidRequest, dlq: true},
		},
		{
			name: "400 rejected", action: "autoCreate",
			body: `{"action":"autoCreate","user_info":{"email":"weak@example.com","type":1,"password":"password1"}}`,
			want: want{outcome: messages.OutcomeFailed, reason: messages.ReasonZoomRejected, httpStatus: 400, zoomCode: 300, dlq: true, zoomCalls: true},
		},
		{
			name: "404 group missing", action: "ssoCreate",
			body: `{"action":"ssoCreate","user_info":{"email":"carol@example.com","type":1}}`,
			setup: func(sim *testenv.Simulator) {
				sim.FailEmail("carol@example.com", 0, testenv.Fault{Status: 404, Code: 4130, Message: "Group does not exist: sales."})
			},
			want: want{outcome: messages.OutcomeFailed, reason: messages.ReasonNotFound, httpStatus: 404, zoomCode: 4130, dlq: true, zoomCalls: true},
		},
		{
			name: "404 no phone licence", action: "ssoCreate",
			body: `{"action":"ssoCreate","user_info":{"email":"phone@example.com","type":2,"feature":{"zoom_phone":true}}}`,
			want: want{outcome: messages.OutcomeFailed, reason: messages.ReasonNotFound, httpStatus: 404, zoomCode: 1102, dlq: true, zoomCalls: true},
		},
		{
			name: "5xx until attempts run out", action: "custCreate",
			body: `{"action":"custCreate","user_info":{"email":"down@example.com","type":2}}`,
			setup: func(sim *testenv.Simulator) {
				sim.FailEmail("down@example.com", 0, testenv.Fault{Status: 503, HTML: true})
			},
			want: want{outcome: messages.OutcomeFailed, reason: messages.ReasonRetriesExhausted, httpStatus: 503, dlq: true, zoomCalls: true},
		},
		{
			name: "5xx then success", action: "custCreate",
			body: `{"action":"custCreate","user_info":{"email":"flaky@example.com","type":2}}`,
			setup: func(sim *testenv.Simulator) {
				// 4 failures: the first delivery's 3 tries and one more.
				sim.FailEmail("flaky@example.com", 4, testenv.Fault{Status: 502, HTML: true})
			},
			want: want{outcome: messages.OutcomeCreated, httpStatus: 201, zoomCalls: true},
		},
		{
			name: "per-second 429 without headers", action: "ssoCreate",
			body: `{"action":"ssoCreate","user_info":{"email":"qps@example.com","type":1}}`,
			setup: func(sim *testenv.Simulator) {
				sim.FailEmail("qps@example.com", 1, testenv.Fault{Status: 429, Message: "You have reached the maximum per-second rate limit for this API. Try again later."})
			},
			want: want{outcome: messages.OutcomeCreated, httpStatus: 201, deferrals: 1, zoomCalls: true},
		},
		{
			name: "401 expired token, refreshed", action: "ssoCreate",
			body: `{"action":"ssoCreate","user_info":{"email":"token@example.com","type":1}}`,
			setup: func(sim *testenv.Simulator) {
				sim.FailEmail("token@example.com", 1, testenv.Fault{Status: 401, Code: 124, Message: "Access token is expired."})
			},
			want: want{outcome: messages.OutcomeCreated, httpStatus: 201, zoomCalls: true},
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, testenv.SimConfig{})
			if tc.setup != nil {
				tc.setup(h.sim)
			}
			id := "req-" + strconv.Itoa(i)
			h.publish(id, tc.action, tc.body)
			h.start(testConfig(3))
			evs := h.waitTerminal(15*time.Second, id)[id]

			term := terminal(evs)
			if len(term) != 1 {
				t.Fatalf("terminal events = %d; want 1", len(term))
			}
			got := term[0].Data
			if got.Outcome != tc.want.outcome || got.Reason != tc.want.reason || got.HTTPStatus != tc.want.httpStatus || got.ZoomCode != tc.want.zoomCode {
				t.Errorf("result = {%s %s http %d code %d}; want {%s %s http %d code %d}", got.Outcome, got.Reason, got.HTTPStatus, got.ZoomCode,
					tc.want.outcome, tc.want.reason, tc.want.httpStatus, tc.want.zoomCode)
			}
			if got.RequestID != id || got.Action != tc.action || term[0].ID != id+":result" || term[0].Subject != id {
				t.Errorf("event ids = {id %s subject %s request %s action %s}; want {%s:result %s %s %s}", term[0].ID, term[0].Subject, got.RequestID, got.Action, id, id, id, tc.action)
			}
			if got.Outcome == messages.OutcomeCreated || got.Outcome == messages.OutcomeExists {
				u, ok := h.sim.User(got.Email)
				if !ok || got.ZoomUserID == "" || got.ZoomUserID != u.ID {
					t.Errorf("zoom_user_id = %q; want the simulator's id %q", got.ZoomUserID, u.ID)
				}
			}
			if deferred := len(evs) - len(term); deferred < tc.want.deferrals {
				t.Errorf("deferred events = %d; want at least %d", deferred, tc.want.deferrals)
			}

			dlq := h.storedMsgs("ZOOM_USERS_DLQ")
			if !tc.want.dlq {
				if len(dlq) != 0 {
					t.Errorf("dead letters = %d; want 0", len(dlq))
				}
			} else {
				if len(dlq) != 1 {
					t.Fatalf("dead letters = %d; want 1", len(dlq))
				}
				m := dlq[0]
				if want := strings.Replace(tc.body, `"password1"`, `"`+deadletter.PasswordRedacted+`"`, 1); string(m.Data) != want {
					t.Errorf("dead letter body = %q; want the original with the password redacted, %q", m.Data, want)
				}
				if want := "zoom.users.dlq." + tc.action; m.Subject != want {
					t.Errorf("dead letter subject = %s; want %s", m.Subject, want)
				}
				dl, err := deadletter.Parse(m.Header)
				if err != nil {
					t.Fatalf("ParseDeadLetter: %v", err)
				}
				if dl.Reason != tc.want.reason || dl.HTTPStatus != tc.want.httpStatus || dl.ZoomCode != tc.want.zoomCode ||
					dl.RequestID != id || dl.OriginalSubject != "zoom.users.create."+tc.action || dl.OriginalSequence != got.StreamSequence ||
					dl.Deliveries < 1 || dl.DeadLetteredAt.IsZero() {
					t.Errorf("dead letter headers = %+v; want reason %s, status %d, code %d, request %s", dl, tc.want.reason, tc.want.httpStatus, tc.want.zoomCode, id)
				}
				if got := m.Header.Get("Nats-Msg-Id"); got != "dlq-"+id {
					t.Errorf("dead letter Nats-Msg-Id = %q; want %q", got, "dlq-"+id)
				}
			}
			// Acks are asynchronous: the stream empties shortly after the
			// result is recorded.
			eventually(t, 5*time.Second, func() (bool, string) {
				n := h.streamMsgCount("ZOOM_USERS")
				return n == 0, fmt.Sprintf("request stream holds %d messages; want 0", n)
			})
			if calls := len(h.sim.Requests()); !tc.want.zoomCalls && calls != 0 {
				t.Errorf("zoom saw %d requests; want none for a request invalid before Zoom", calls)
			}
		})
	}
}

// Ensure a daily-limit 429 without headers defers the request until the
// next 00:00 UTC (plus at most the jitter) and leaves it in the stream.
func TestDailyLimitWithoutHeadersDefersToMidnight(t *testing.T) {
	h := newHarness(t, testenv.SimConfig{})
	h.sim.FailEmail("daily@example.com", 1, testenv.Fault{Status: 429,
		Message: "You have exceeded the daily rate limit (1500) of user invite requests permitted for this account. You may resume these requests at GMT 00:00:00."})
	h.publish("daily-1", "create", userBody("create", "daily@example.com", 1))
	before := time.Now()
	h.start(testConfig(3))

	var ev messages.Event
	eventually(t, 10*time.Second, func() (bool, string) {
		evs := h.events()["daily-1"]
		if len(evs) == 0 {
			return false, "no deferred event"
		}
		ev = evs[0]
		return true, ""
	})
	if ev.Data.Outcome != messages.OutcomeDeferred || ev.ID != "daily-1:deferred:1" {
		t.Fatalf("event = %s %s; want deferred daily-1:deferred:1", ev.Data.Outcome, ev.ID)
	}
	retryAt, err := time.Parse(time.RFC3339, ev.Data.RetryAt)
	if err != nil {
		t.Fatalf("retry_at %q: %v", ev.Data.RetryAt, err)
	}
	midnight := zoom.NextUTCMidnight(before)
	if retryAt.Before(midnight.Add(-time.Second)) || retryAt.After(midnight.Add(5*time.Minute+time.Second)) {
		t.Errorf("retry_at = %s; want between %s and 5 minutes later", retryAt, midnight)
	}
	if ci := h.consumerInfo("create"); ci.NumAckPending != 1 {
		t.Errorf("create consumer ack pending = %d; want 1 (the deferred request)", ci.NumAckPending)
	}
	if n := h.streamMsgCount("ZOOM_USERS"); n != 1 {
		t.Errorf("request stream = %d messages; want 1", n)
	}
	if dl := h.streamMsgCount("ZOOM_USERS_DLQ"); dl != 0 {
		t.Errorf("dead letters = %d; want 0", dl)
	}
}

// Ensure quota deferrals never count toward MAX_ATTEMPTS: a request deferred
// more often than MaxAttempts, with one transiently failed delivery among
// them, still ends created.
func TestQuotaDeferralsDoNotCountAsAttempts(t *testing.T) {
	h := newHarness(t, testenv.SimConfig{})
	qps := testenv.Fault{Status: 429, Message: "You have reached the maximum per-second rate limit for this API. Try again later."}
	h.sim.FailEmail("busy@example.com", 4, qps)
	h.sim.FailEmail("busy@example.com", 3, testenv.Fault{Status: 500})
	h.publish("busy-1", "custCreate", userBody("custCreate", "busy@example.com", 2))
	h.start(testConfig(2))
	evs := h.waitTerminal(15*time.Second, "busy-1")["busy-1"]
	term := terminal(evs)
	if len(term) != 1 || term[0].Data.Outcome != messages.OutcomeCreated {
		t.Fatalf("terminal = %+v; want one created", term)
	}
	if got := len(evs) - 1; got != 4 {
		t.Errorf("deferred events = %d; want 4", got)
	}
	if term[0].Data.Attempt <= 2 {
		t.Errorf("created on delivery %d; want more deliveries than MaxAttempts=2", term[0].Data.Attempt)
	}
	if n := h.streamMsgCount("ZOOM_USERS_DLQ"); n != 0 {
		t.Errorf("dead letters = %d; want 0", n)
	}
}

// Ensure rejected credentials hold all work without dead-lettering or
// losing anything, show in Status, and that work resumes by itself once
// the credentials are accepted again.
func TestAccountProblemHoldsWork(t *testing.T) {
	h := newHarness(t, testenv.SimConfig{})
	h.sim.RejectCredentials(true)
	for i := range 5 {
		h.publish("hold-"+strconv.Itoa(i), "ssoCreate", userBody("ssoCreate", "hold"+strconv.Itoa(i)+"@example.com", 1))
	}
	r := h.start(testConfig(2))
	eventually(t, 10*time.Second, func() (bool, string) {
		st := r.svc.Status()
		return st.Paused, "service not paused"
	})
	if got := h.streamMsgCount("ZOOM_USERS_RESULTS"); got != 0 {
		t.Errorf("result events while paused = %d; want 0", got)
	}
	if got := h.streamMsgCount("ZOOM_USERS_DLQ"); got != 0 {
		t.Errorf("dead letters while paused = %d; want 0", got)
	}
	if got := h.streamMsgCount("ZOOM_USERS"); got != 5 {
		t.Errorf("requests in stream while paused = %d; want 5", got)
	}
	h.sim.RejectCredentials(false)
	ids := []string{"hold-0", "hold-1", "hold-2", "hold-3", "hold-4"}
	evs := h.waitTerminal(20*time.Second, ids...)
	for _, id := range ids {
		if term := terminal(evs[id]); len(term) != 1 || term[0].Data.Outcome != messages.OutcomeCreated {
			t.Errorf("%s terminal = %v; want one created", id, term)
		}
	}
	eventually(t, 5*time.Second, func() (bool, string) { return !r.svc.Status().Paused, "still paused" })
}

// Ensure Provision can run again on existing streams (a restart or a
// second replica) and leaves one consumer per action with the contract's
// filter.
func TestProvisionIsIdempotent(t *testing.T) {
	h := newHarness(t, testenv.SimConfig{})
	for _, a := range messages.Actions {
		ci := h.consumerInfo(string(a))
		if ci.Config.FilterSubject != "zoom.users.create."+string(a) || ci.Config.MaxDeliver != -1 {
			t.Errorf("consumer %s: filter %q max deliver %d; want zoom.users.create.%s, -1", a, ci.Config.FilterSubject, ci.Config.MaxDeliver, a)
		}
	}
	r := h.start(testConfig(3))
	if err := r.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	r2 := h.start(testConfig(3))
	if err := r2.stop(t); err != nil {
		t.Fatalf("second Run: %v", err)
	}
	s, err := h.js.Stream(context.Background(), "ZOOM_USERS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Retention.String() != "WorkQueue" || info.Config.Duplicates != 24*time.Hour {
		t.Errorf("request stream retention %s duplicates %v; want WorkQueue, 24h", info.Config.Retention, info.Config.Duplicates)
	}
}

// Ensure requests published on subjects that name no action (a typo in the
// action, extra tokens) are dead-lettered rather than left in the stream
// forever, since no per-action consumer would ever take them.
func TestStraySubjectsAreDeadLettered(t *testing.T) {
	h := newHarness(t, testenv.SimConfig{})
	h.publish("stray-case", "SSOCreate", userBody("ssoCreate", "case@example.com", 1))
	h.publish("stray-deep", "ssoCreate.extra", userBody("ssoCreate", "deep@example.com", 1))
	h.publish("fine", "ssoCreate", userBody("ssoCreate", "fine@example.com", 1))
	h.start(testConfig(3))
	evs := h.waitTerminal(15*time.Second, "stray-case", "stray-deep", "fine")
	for _, id := range []string{"stray-case", "stray-deep"} {
		term := terminal(evs[id])
		if len(term) != 1 || term[0].Data.Outcome != messages.OutcomeFailed || term[0].Data.Reason != messages.ReasonInvalidRequest {
			t.Errorf("%s terminal = %+v; want one failed invalid_request", id, term)
		}
	}
	if term := terminal(evs["fine"]); len(term) != 1 || term[0].Data.Outcome != messages.OutcomeCreated {
		t.Errorf("fine terminal = %+v; want created", term)
	}
	subjects := map[string]bool{}
	for _, m := range h.storedMsgs("ZOOM_USERS_DLQ") {
		subjects[m.Subject] = true
	}
	if !subjects["zoom.users.dlq.SSOCreate"] || !subjects["zoom.users.dlq.ssoCreate.extra"] || len(subjects) != 2 {
		t.Errorf("dead-letter subjects = %v; want zoom.users.dlq.SSOCreate and zoom.users.dlq.ssoCreate.extra", subjects)
	}
	eventually(t, 5*time.Second, func() (bool, string) {
		n := h.streamMsgCount("ZOOM_USERS")
		return n == 0, fmt.Sprintf("request stream holds %d messages", n)
	})
	if got := h.sim.Creations("case@example.com") + h.sim.Creations("deep@example.com"); got != 0 {
		t.Errorf("zoom created %d stray users; want 0", got)
	}
}
