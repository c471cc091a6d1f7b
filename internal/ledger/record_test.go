package ledger_test

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zoomprov/consumer/internal/ledger"
	"github.com/zoomprov/consumer/internal/messages"
)

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// res is a terminal result of request id, at stream sequence seq, with the
// request as decoded (body) when not empty.
func res(id, action string, seq uint64, o messages.Outcome, body string) messages.Result {
	r := messages.Result{RequestID: id, Action: action, Email: "alice@example.com", Outcome: o, StreamSequence: seq}
	if o == messages.OutcomeFailed {
		r.Reason = messages.ReasonZoomRejected
	}
	if o == messages.OutcomeCreated || o == messages.OutcomeExists {
		r.ZoomUserID = "zid-" + id
	}
	if body != "" {
		r.Request = json.RawMessage(body)
	}
	return r
}

func record(t *testing.T, r messages.Result) ledger.Record {
	t.Helper()
	rec, ok := ledger.FromResult(r, t0.Add(time.Duration(r.StreamSequence)*time.Second))
	if !ok {
		t.Fatalf("FromResult(%+v) ignored it; want a record", r)
	}
	return rec
}

// Ensure the state comes from the last successful terminal outcome, in
// stream order, by the rules.
func TestStateRules(t *testing.T) {
	tests := []struct {
		name    string
		results []messages.Result
		want    ledger.State
	}{
		{"nothing", nil, ledger.StateUnknown},
		{"only failures", []messages.Result{res("a", "ssoCreate", 1, messages.OutcomeFailed, "")}, ledger.StateUnknown},
		{"created", []messages.Result{res("a", "ssoCreate", 1, messages.OutcomeCreated, "")}, ledger.StateActive},
		{"created by autoCreate", []messages.Result{res("a", "autoCreate", 1, messages.OutcomeCreated, "")}, ledger.StateActive},
		{"invited", []messages.Result{res("a", "create", 1, messages.OutcomeCreated, "")}, ledger.StatePending},
		{"invited, already there", []messages.Result{res("a", "create", 1, messages.OutcomeExists, "")}, ledger.StateActive},
		{"exists", []messages.Result{res("a", "custCreate", 1, messages.OutcomeExists, "")}, ledger.StateActive},
		{"invited then updated", []messages.Result{res("a", "create", 1, messages.OutcomeCreated, ""), res("b", "update", 2, messages.OutcomeUpdated, "")}, ledger.StateActive},
		{"deactivated", []messages.Result{res("a", "ssoCreate", 1, messages.OutcomeCreated, ""), res("b", "deactivate", 2, messages.OutcomeDeactivated, "")}, ledger.StateInactive},
		{"reactivated", []messages.Result{res("b", "deactivate", 2, messages.OutcomeDeactivated, ""), res("c", "activate", 3, messages.OutcomeActivated, "")}, ledger.StateActive},
		{"deleted", []messages.Result{res("a", "ssoCreate", 1, messages.OutcomeCreated, ""), res("d", "delete", 4, messages.OutcomeDeleted, "")}, ledger.StateDeleted},
		{"a later failure changes nothing", []messages.Result{res("b", "deactivate", 2, messages.OutcomeDeactivated, ""), res("c", "activate", 3, messages.OutcomeFailed, "")}, ledger.StateInactive},
		{"stream order, not arrival order", []messages.Result{res("d", "delete", 4, messages.OutcomeDeleted, ""), res("a", "ssoCreate", 1, messages.OutcomeCreated, "")}, ledger.StateDeleted},
		{"recreated after a delete", []messages.Result{res("d", "delete", 4, messages.OutcomeDeleted, ""), res("e", "ssoCreate", 5, messages.OutcomeCreated, "")}, ledger.StateActive},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rec ledger.Record
			for _, r := range tc.results {
				rec = ledger.Merge(rec, record(t, r))
			}
			if got := rec.View("alice@example.com").State; got != tc.want {
				t.Errorf("state = %q; want %q", got, tc.want)
			}
			if len(tc.results) > 0 && rec.State != ledger.StateOf(rec.Applied) {
				t.Errorf("stored state %q differs from StateOf(applied) %q", rec.State, ledger.StateOf(rec.Applied))
			}
		})
	}
	if got := ledger.StateOf(nil); got != ledger.StateUnknown {
		t.Errorf("StateOf(nil) = %q; want unknown", got)
	}
}

// aliceLife is one user's whole life as the service reports it, the
// request as decoded on each success but the second creation's (an older
// event).
func aliceLife() []messages.Result {
	respelt := func(r messages.Result) messages.Result {
		r.Email = "Alice@Example.com"
		return r
	}
	return []messages.Result{
		res("c1", "ssoCreate", 10, messages.OutcomeCreated, `{"action":"ssoCreate","user_info":{"email":"alice@example.com","type":1,"first_name":"Alice","last_name":"Liddell","dept":"Ops"}}`),
		res("u1", "update", 11, messages.OutcomeUpdated, `{"email":"alice@example.com","user":{"first_name":"Alicia","job_title":"Engineer"}}`),
		res("u2", "update", 12, messages.OutcomeFailed, `{"email":"alice@example.com","user":{"last_name":"Never"}}`),
		res("x1", "deactivate", 13, messages.OutcomeDeactivated, `{"email":"alice@example.com"}`),
		res("a1", "activate", 14, messages.OutcomeActivated, `{"email":"alice@example.com"}`),
		res("u3", "update", 15, messages.OutcomeUpdated, `{"email":"alice@example.com","user":{"type":2}}`),
		res("d1", "delete", 16, messages.OutcomeDeleted, `{"email":"alice@example.com","action":"delete","transfer_email":"bob@example.com","transfer_meeting":true}`),
		respelt(res("c2", "autoCreate", 17, messages.OutcomeCreated, `{"action":"autoCreate","user_info":{"email":"Alice@Example.com","type":1,"first_name":"Al","password":"Secret-123"}}`)),
		respelt(res("u4", "update", 18, messages.OutcomeUpdated, `{"email":"Alice@Example.com","user":{"last_name":"L."}}`)),
	}
}

// Ensure the registers hold what the service last applied: the creation
// body and the profile fields, those before a re-creation dropped, the
// delete's parameters, and never a password.
func TestRegisters(t *testing.T) {
	var rec ledger.Record
	for _, r := range aliceLife() {
		rec = ledger.Merge(rec, record(t, r))
	}
	if rec.Creation == nil || rec.Creation.RequestID != "c2" || strings.Contains(string(rec.Creation.Body), "Secret") || strings.Contains(string(rec.Creation.Body), "password") {
		t.Errorf("creation = %+v; want c2's body without its password", rec.Creation)
	}
	profile := map[string]string{}
	for k, f := range rec.Profile {
		profile[k] = string(f.Value)
	}
	want := map[string]string{"type": "1", "first_name": `"Al"`, "last_name": `"L."`}
	if !reflect.DeepEqual(profile, want) {
		t.Errorf("profile = %v; want %v (fields set before the re-creation dropped)", profile, want)
	}
	if rec.Deletion == nil || rec.Deletion.RequestID != "d1" || !strings.Contains(string(rec.Deletion.Params), `"transfer_email":"bob@example.com"`) {
		t.Errorf("deletion = %+v; want d1's parameters", rec.Deletion)
	}
	if rec.Email != "Alice@Example.com" || rec.ZoomUserID != "zid-c2" {
		t.Errorf("email, zoom id = %q, %q; want the latest: Alice@Example.com, zid-c2", rec.Email, rec.ZoomUserID)
	}
	if n := len(rec.Requests); n != 9 {
		t.Errorf("%d requests; want 9", n)
	}

	// Before the deletion: the profile as the creation and the updates
	// left it, the failed update ignored.
	var mid ledger.Record
	for _, r := range aliceLife()[:6] {
		mid = ledger.Merge(mid, record(t, r))
	}
	profile = map[string]string{}
	for k, f := range mid.Profile {
		profile[k] = string(f.Value)
	}
	want = map[string]string{"type": "2", "first_name": `"Alicia"`, "last_name": `"Liddell"`, "dept": `"Ops"`, "job_title": `"Engineer"`}
	if !reflect.DeepEqual(profile, want) {
		t.Errorf("profile before the deletion = %v; want %v", profile, want)
	}

	// exists keeps the body, but Zoom applied none of it.
	ex := record(t, res("e1", "custCreate", 3, messages.OutcomeExists, `{"action":"custCreate","user_info":{"email":"alice@example.com","type":2,"first_name":"Z"}}`))
	if ex.Creation == nil || ex.Profile != nil {
		t.Errorf("exists: creation %+v, profile %v; want the body kept and no profile", ex.Creation, ex.Profile)
	}
}

// Ensure a deactivation leaves type 1 in the profile (Zoom removes every
// licence, activation gives none back) until an update sets another, and
// sets no other field.
func TestDeactivationLeavesBasic(t *testing.T) {
	typeOf := func(n int) string {
		var rec ledger.Record
		for _, r := range aliceLife()[:n] {
			rec = ledger.Merge(rec, record(t, r))
		}
		return string(rec.Profile["type"].Value)
	}
	for _, tc := range []struct {
		n    int
		want string
	}{{1, "1"}, {4, "1"}, {5, "1"}, {6, "2"}} {
		if got := typeOf(tc.n); got != tc.want {
			t.Errorf("type after %s = %s; want %s", aliceLife()[tc.n-1].RequestID, got, tc.want)
		}
	}
	x := record(t, res("x9", "deactivate", 40, messages.OutcomeDeactivated, `{"email":"bob@example.com"}`))
	if len(x.Profile) != 1 || string(x.Profile["type"].Value) != "1" || x.Profile["type"].StreamSequence != 40 {
		t.Errorf("deactivation's profile = %v; want type 1 at its sequence, nothing else", x.Profile)
	}
}

// Ensure the record does not depend on the order in which results are
// applied, nor on how often: every permutation, with repeats, gives the
// same record.
func TestMergeIsOrderFree(t *testing.T) {
	life := aliceLife()
	var want ledger.Record
	for _, r := range life {
		want = ledger.Merge(want, record(t, r))
	}
	wantJSON, _ := json.Marshal(want)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		results := append([]messages.Result(nil), life...)
		for range rng.IntN(5) {
			results = append(results, life[rng.IntN(len(life))])
		}
		rng.Shuffle(len(results), func(a, b int) { results[a], results[b] = results[b], results[a] })
		// Merge partial records too, as two replicas would.
		var a, b ledger.Record
		for j, r := range results {
			if j%2 == 0 {
				a = ledger.Merge(a, record(t, r))
			} else {
				b = ledger.Merge(record(t, r), b)
			}
		}
		got := ledger.Merge(b, a)
		gotJSON, _ := json.Marshal(got)
		if string(gotJSON) != string(wantJSON) {
			t.Fatalf("permutation %d gave\n%s\nwant\n%s", i, gotJSON, wantJSON)
		}
		if again, _ := json.Marshal(ledger.Merge(got, got)); string(again) != string(gotJSON) {
			t.Fatalf("Merge(r, r) differs from r")
		}
	}
}

// Ensure a replayed request is its own entry, and the same result applied
// twice is one.
func TestRequestsDeduplicated(t *testing.T) {
	c := res("hris-9", "ssoCreate", 5, messages.OutcomeFailed, "")
	replay := res("hris-9/replay/3", "ssoCreate", 8, messages.OutcomeCreated, "")
	replay.ReplayOf = "hris-9"
	rec := ledger.Merge(ledger.Merge(record(t, c), record(t, replay)), record(t, c))
	var ids []string
	for _, q := range rec.Requests {
		ids = append(ids, q.RequestID+" "+string(q.Outcome))
	}
	if want := []string{"hris-9 failed", "hris-9/replay/3 created"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("requests = %v; want %v", ids, want)
	}
	if got := rec.SucceededAfter(5); len(got) != 1 || got[0].RequestID != "hris-9/replay/3" {
		t.Errorf("SucceededAfter(5) = %+v; want the replay", got)
	}
	if got := rec.SucceededAfter(8); len(got) != 0 {
		t.Errorf("SucceededAfter(8) = %+v; want none", got)
	}
}

// Ensure what the ledger ignores: deferrals, results naming no one.
func TestFromResultIgnores(t *testing.T) {
	for _, r := range []messages.Result{
		{RequestID: "a", Email: "a@example.com", Outcome: messages.OutcomeDeferred, StreamSequence: 1},
		{RequestID: "a", Outcome: messages.OutcomeFailed, StreamSequence: 1},
		{Email: "a@example.com", Outcome: messages.OutcomeCreated, StreamSequence: 1},
	} {
		if _, ok := ledger.FromResult(r, t0); ok {
			t.Errorf("FromResult(%+v) = ok; want it ignored", r)
		}
	}
	// An invalid request's result (no data.request) counts for history.
	rec, ok := ledger.FromResult(messages.Result{RequestID: "bad", Action: "custCreate", Email: "x", Outcome: messages.OutcomeFailed,
		Reason: messages.ReasonInvalidRequest, StreamSequence: 3}, t0)
	if !ok || len(rec.Requests) != 1 || rec.Requests[0].Reason != messages.ReasonInvalidRequest || rec.Applied != nil {
		t.Errorf("FromResult(invalid) = %+v, %v; want one failed request", rec, ok)
	}
}

// Ensure requests older than the results' retention are dropped, the
// state staying.
func TestPrune(t *testing.T) {
	var rec ledger.Record
	for _, r := range aliceLife()[:4] {
		rec = ledger.Merge(rec, record(t, r))
	}
	now := t0.Add(30*24*time.Hour + 12*time.Second) // the first two are older than 30 days
	got := rec.Prune(now, 30*24*time.Hour)
	if len(got.Requests) != 2 || got.Requests[0].RequestID != "u2" {
		t.Errorf("pruned requests = %+v; want u2 and x1", got.Requests)
	}
	if got.View("").State != ledger.StateInactive {
		t.Errorf("state after pruning = %q; want inactive", got.View("").State)
	}
	if all := rec.Prune(now, 0); len(all.Requests) != 4 {
		t.Errorf("Prune with no max age kept %d requests; want 4", len(all.Requests))
	}
}

// Ensure the key is the same for every case of an address, and never
// holds it.
func TestKey(t *testing.T) {
	k := ledger.Key("Bob@Example.COM")
	if k != ledger.Key("bob@example.com") {
		t.Errorf("Key differs by case")
	}
	if len(k) != 32 || strings.Trim(k, "0123456789abcdef") != "" {
		t.Errorf("Key = %q; want 32 hex digits", k)
	}
	if k == ledger.Key("bob@example.org") {
		t.Errorf("two addresses share a key")
	}
	// The documented value, so that operators' tools can compute it:
	// sha256("bob@example.com")[:16].
	if want := "5ff860bf1190596c7188ab851db691f0"; k != want {
		t.Errorf("Key(bob@example.com) = %s; want %s", k, want)
	}
}

// Ensure an unknown user's view is the contract's: unknown, no requests
// (an empty array, not null).
func TestViewOfUnknown(t *testing.T) {
	v := ledger.Record{}.View("nobody@example.com")
	b, _ := json.Marshal(v)
	if want := `{"email":"nobody@example.com","state":"unknown","zoom_user_id":"","requests":[]}`; string(b) != want {
		t.Errorf("view = %s; want %s", b, want)
	}
}
