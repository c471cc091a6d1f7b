package reconcile_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/zoomprov/consumer/internal/ledger"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/reconcile"
	"github.com/zoomprov/consumer/internal/zoom"
)

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// step is one finished request of a user's life, as its result says.
type step struct {
	id, action string
	outcome    messages.Outcome
	body       string
}

// life folds steps (stream sequences 1, 2, …) into a ledger entry, as the
// projector would, for the address email.
func life(t *testing.T, email string, steps ...step) ledger.Record {
	t.Helper()
	var rec ledger.Record
	for i, s := range steps {
		r := messages.Result{RequestID: s.id, Action: s.action, Email: email, Outcome: s.outcome, StreamSequence: uint64(i + 1)}
		if s.outcome == messages.OutcomeFailed {
			r.Reason = messages.ReasonNotFound
		}
		if s.outcome == messages.OutcomeCreated || s.outcome == messages.OutcomeExists {
			r.ZoomUserID = "zid-" + s.id
		}
		if s.body != "" {
			r.Request = json.RawMessage(s.body)
		}
		one, ok := ledger.FromResult(r, t0.Add(time.Duration(i)*time.Second))
		if !ok {
			t.Fatalf("FromResult(%+v) ignored it", r)
		}
		rec = ledger.Merge(rec, one)
	}
	return rec
}

// Steps of the tests' lives, for alice@example.com.
var (
	sso      = step{"c", "ssoCreate", messages.OutcomeCreated, `{"action":"ssoCreate","user_info":{"email":"alice@example.com","type":2,"first_name":"Alice","last_name":"Liddell"}}`}
	invite   = step{"i", "create", messages.OutcomeCreated, `{"action":"create","user_info":{"email":"alice@example.com","type":1,"first_name":"Alice"}}`}
	auto     = step{"au", "autoCreate", messages.OutcomeCreated, `{"action":"autoCreate","user_info":{"email":"alice@example.com","type":1,"first_name":"Alice"}}`}
	exists   = step{"e", "custCreate", messages.OutcomeExists, `{"action":"custCreate","user_info":{"email":"alice@example.com","type":2,"first_name":"Zed"}}`}
	bare     = step{"old", "ssoCreate", messages.OutcomeCreated, ""} // a result older than data.request
	failed   = step{"f", "ssoCreate", messages.OutcomeFailed, `{"action":"ssoCreate","user_info":{"email":"alice@example.com","type":1}}`}
	rename   = step{"u", "update", messages.OutcomeUpdated, `{"email":"alice@example.com","user":{"first_name":"Alicia","dept":"Ops"}}`}
	licence  = step{"l", "update", messages.OutcomeUpdated, `{"email":"alice@example.com","user":{"type":2}}`}
	leaves   = step{"x", "deactivate", messages.OutcomeDeactivated, `{"email":"alice@example.com"}`}
	rehired  = step{"a", "activate", messages.OutcomeActivated, `{"email":"alice@example.com"}`}
	deleted  = step{"d", "delete", messages.OutcomeDeleted, `{"email":"alice@example.com","action":"delete","transfer_email":"bob@example.com","transfer_meeting":true}`}
	deleted2 = step{"d2", "delete", messages.OutcomeDeleted, ""}
	sso2     = step{"c2", "ssoCreate", messages.OutcomeCreated, `{"action":"ssoCreate","user_info":{"email":"Alice@Example.com","type":1,"first_name":"Al"}}`}
)

// zuser is Zoom's listing of alice, with the names and type of sso.
func zuser(status string) zoom.User {
	u := zoom.User{ID: "zid-c", Email: "alice@example.com", FirstName: "Alice", LastName: "Liddell", Type: 2, Status: status}
	if status == zoom.UserPending {
		u.ID = "" // Zoom's listing leaves it out
	}
	return u
}

// summary is a drift as the tests compare it: JSON-shaped, fix flattened.
type summary struct {
	Kind               reconcile.Kind
	Expected, Actual   any
	FixAction, FixBody string
	NoFix              bool
}

func summarize(ds []reconcile.Drift) []summary {
	var out []summary
	for _, d := range ds {
		s := summary{Kind: d.Kind, Expected: roundTrip(d.Expected), Actual: roundTrip(d.Actual), NoFix: d.Fix == nil}
		if d.Fix != nil {
			s.FixAction, s.FixBody = d.Fix.Action, canonical(string(d.Fix.Body))
		}
		if (d.Fix == nil) != (d.NoFix != "") {
			panic("a drift has both a fix and a reason it has none, or neither: " + d.String())
		}
		out = append(out, s)
	}
	return out
}

// canonical is the JSON text body with its members sorted: the ledger
// keeps bodies re-encoded.
func canonical(body string) string {
	var v any
	if json.Unmarshal([]byte(body), &v) != nil {
		return body
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// canonicalized returns ss with every FixBody canonical.
func canonicalized(ss []summary) []summary {
	for i := range ss {
		ss[i].FixBody = canonical(ss[i].FixBody)
	}
	return ss
}

// roundTrip is v as --json prints it and a reader decodes it.
func roundTrip(v any) any {
	b, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

// Ensure a user Zoom lacks is missing when the ledger expects them
// active, pending or inactive, with the last creation as the fix (none for
// autoCreate, a deactivated user, or a creation without its body), and
// not when the ledger expects them deleted or nothing at all (never
// created).
func TestMissing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
		want  *summary
	}{
		{"active", []step{sso, rename}, &summary{Kind: reconcile.KindMissing, Expected: "active", Actual: "absent", FixAction: "ssoCreate", FixBody: sso.body}},
		{"pending invitation", []step{invite}, &summary{Kind: reconcile.KindMissing, Expected: "pending", Actual: "absent", FixAction: "create", FixBody: invite.body}},
		{"exists: the request that met the user", []step{exists}, &summary{Kind: reconcile.KindMissing, Expected: "active", Actual: "absent", FixAction: "custCreate", FixBody: exists.body}},
		{"deleted then recreated: the latest creation", []step{sso, deleted, sso2}, &summary{Kind: reconcile.KindMissing, Expected: "active", Actual: "absent", FixAction: "ssoCreate", FixBody: sso2.body}},
		{"autoCreate cannot be repaired", []step{auto}, &summary{Kind: reconcile.KindMissing, Expected: "active", Actual: "absent", NoFix: true}},
		{"a deactivated user is not made active", []step{sso, leaves}, &summary{Kind: reconcile.KindMissing, Expected: "inactive", Actual: "absent", NoFix: true}},
		{"no body recorded", []step{bare}, &summary{Kind: reconcile.KindMissing, Expected: "active", Actual: "absent", NoFix: true}},
		{"deleted: absent as expected", []step{sso, deleted}, nil},
		{"never created", []step{failed}, nil},
		{"nothing recorded", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := life(t, "alice@example.com", tc.steps...)
			d := reconcile.Missing(rec)
			switch {
			case tc.want == nil && d != nil:
				t.Errorf("Missing(%s) = %v; want nil", tc.name, d)
			case tc.want != nil && d == nil:
				t.Errorf("Missing(%s) = nil; want %+v", tc.name, *tc.want)
			case tc.want != nil:
				if got := summarize([]reconcile.Drift{*d}); !reflect.DeepEqual(got, canonicalized([]summary{*tc.want})) {
					t.Errorf("Missing(%s) = %+v; want %+v", tc.name, got[0], *tc.want)
				}
				if d.ZoomUserID != rec.ZoomUserID || d.Email != rec.Email {
					t.Errorf("Missing(%s): email %q, zoom id %q; want the ledger's %q, %q", tc.name, d.Email, d.ZoomUserID, rec.Email, rec.ZoomUserID)
				}
			}
		})
	}
}

// Ensure status drift: the ledger expects active (or a pending
// invitation, which counts as active) and Zoom says inactive, or the
// reverse; an invitation accepted in Zoom, or pending there while the
// ledger says active, is no drift; a pending invitation cannot be
// deactivated.
func TestStatus(t *testing.T) {
	activate := `{"email":"alice@example.com"}`
	for _, tc := range []struct {
		name   string
		steps  []step
		zoom   zoom.User
		want   []summary
		wantID string
	}{
		{"active, inactive in Zoom", []step{sso}, zuser("inactive"),
			[]summary{{Kind: reconcile.KindStatus, Expected: "active", Actual: "inactive", FixAction: "activate", FixBody: activate}}, "zid-c"},
		{"pending, inactive in Zoom", []step{invite}, func() zoom.User { u := zuser("inactive"); u.LastName, u.Type = "", 1; return u }(),
			[]summary{{Kind: reconcile.KindStatus, Expected: "pending", Actual: "inactive", FixAction: "activate", FixBody: activate}}, "zid-c"},
		{"inactive, active in Zoom (type left to the deactivation)", []step{sso, leaves}, zuser("active"),
			[]summary{{Kind: reconcile.KindStatus, Expected: "inactive", Actual: "active", FixAction: "deactivate", FixBody: activate}}, "zid-c"},
		{"inactive, pending in Zoom: not repairable", []step{sso, leaves}, func() zoom.User { u := zuser("pending"); u.Type = 1; return u }(),
			[]summary{{Kind: reconcile.KindStatus, Expected: "inactive", Actual: "pending", NoFix: true}}, "zid-c"},
		{"invitation accepted in Zoom", []step{invite}, func() zoom.User { u := zuser("active"); u.LastName, u.Type = "", 1; return u }(), nil, ""},
		{"active, pending in Zoom", []step{sso}, zuser("pending"), nil, ""},
		{"inactive, inactive in Zoom", []step{sso, leaves}, func() zoom.User { u := zuser("inactive"); u.Type = 1; return u }(), nil, ""},
		{"rehired, active in Zoom", []step{sso, leaves, rehired}, func() zoom.User { u := zuser("active"); u.Type = 1; return u }(), nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := reconcile.Compare(tc.zoom, life(t, "alice@example.com", tc.steps...))
			if got := summarize(ds); !reflect.DeepEqual(got, canonicalized(tc.want)) {
				t.Errorf("Compare(%s) = %+v; want %+v", tc.name, got, tc.want)
			}
			for _, d := range ds {
				if d.ZoomUserID != tc.wantID {
					t.Errorf("Compare(%s): zoom id %q; want %q (Zoom's, or the ledger's for a pending user)", tc.name, d.ZoomUserID, tc.wantID)
				}
			}
		})
	}
}

// Ensure present: a user the ledger says was deleted, and Zoom has, gets
// the last delete's parameters again (none recorded: not repairable); a
// user deleted and created again is not present.
func TestPresent(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
		zoom  zoom.User
		want  []summary
	}{
		{"deleted, active in Zoom", []step{sso, rename, deleted}, zuser("active"),
			[]summary{{Kind: reconcile.KindPresent, Expected: "deleted", Actual: "active", FixAction: "delete", FixBody: deleted.body}}},
		{"deleted, inactive in Zoom", []step{sso, deleted}, zuser("inactive"),
			[]summary{{Kind: reconcile.KindPresent, Expected: "deleted", Actual: "inactive", FixAction: "delete", FixBody: deleted.body}}},
		{"no parameters recorded", []step{sso, deleted2}, zuser("active"),
			[]summary{{Kind: reconcile.KindPresent, Expected: "deleted", Actual: "active", NoFix: true}}},
		{"deleted then recreated", []step{sso, deleted, sso2}, func() zoom.User { u := zuser("active"); u.FirstName, u.LastName, u.Type = "Al", "", 1; return u }(), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := summarize(reconcile.Compare(tc.zoom, life(t, "alice@example.com", tc.steps...))); !reflect.DeepEqual(got, canonicalized(tc.want)) {
				t.Errorf("Compare(%s) = %+v; want %+v", tc.name, got, tc.want)
			}
		})
	}
}

// Ensure fields: first_name, last_name and type the service last set (by
// the creation too) that differ in Zoom are named, and the fix is an
// update with the expected values; fields set before a re-creation, by a
// creation Zoom did not make (exists), or that are not compared (dept)
// do not count; a deactivation's type 1 holds after the activation until
// an update sets the licence again; type 99 is never compared; the
// email is Zoom's spelling.
func TestFields(t *testing.T) {
	typed := func(u zoom.User, typ int) zoom.User { u.Type = typ; return u }
	for _, tc := range []struct {
		name  string
		steps []step
		zoom  zoom.User
		want  []summary
	}{
		{"in sync", []step{sso}, zuser("active"), nil},
		{"a name changed by hand", []step{sso}, func() zoom.User { u := zuser("active"); u.FirstName = "Alyce"; return u }(),
			[]summary{{Kind: reconcile.KindFields, Expected: map[string]any{"first_name": "Alice"}, Actual: map[string]any{"first_name": "Alyce"},
				FixAction: "update", FixBody: `{"email":"alice@example.com","user":{"first_name":"Alice"}}`}}},
		{"renamed by the service, both names and the type off", []step{sso, rename}, func() zoom.User { u := zuser("active"); u.LastName = "L"; return typed(u, 1) }(),
			[]summary{{Kind: reconcile.KindFields, Expected: map[string]any{"first_name": "Alicia", "last_name": "Liddell", "type": 2.0},
				Actual:    map[string]any{"first_name": "Alice", "last_name": "L", "type": 1.0},
				FixAction: "update", FixBody: `{"email":"alice@example.com","user":{"first_name":"Alicia","last_name":"Liddell","type":2}}`}}},
		{"dept is not compared", []step{sso, rename}, func() zoom.User { u := zuser("active"); u.FirstName, u.Dept = "Alicia", "Sales"; return u }(), nil},
		{"exists: Zoom applied nothing", []step{exists}, zoom.User{ID: "z", Email: "alice@example.com", FirstName: "Someone", Type: 1, Status: "active"}, nil},
		{"rehired: type 1 as the deactivation left it", []step{sso, leaves, rehired}, typed(zuser("active"), 1), nil},
		{"rehired and licensed", []step{sso, leaves, rehired, licence}, typed(zuser("active"), 1),
			[]summary{{Kind: reconcile.KindFields, Expected: map[string]any{"type": 2.0}, Actual: map[string]any{"type": 1.0},
				FixAction: "update", FixBody: `{"email":"alice@example.com","user":{"type":2}}`}}},
		{"deactivated by hand: status and the licence", []step{sso}, typed(zuser("inactive"), 1),
			[]summary{
				{Kind: reconcile.KindStatus, Expected: "active", Actual: "inactive", FixAction: "activate", FixBody: `{"email":"alice@example.com"}`},
				{Kind: reconcile.KindFields, Expected: map[string]any{"type": 2.0}, Actual: map[string]any{"type": 1.0},
					FixAction: "update", FixBody: `{"email":"alice@example.com","user":{"type":2}}`},
			}},
		{"type 99 is not compared", []step{{"c", "ssoCreate", messages.OutcomeCreated, `{"action":"ssoCreate","user_info":{"email":"alice@example.com","type":99}}`}},
			zoom.User{ID: "z", Email: "alice@example.com", Type: 1, Status: "active"}, nil},
		{"fields before a re-creation do not count", []step{sso, rename, deleted, sso2}, zoom.User{ID: "z", Email: "ALICE@example.com", FirstName: "Al", LastName: "X", Type: 1, Status: "active"}, nil},
		{"Zoom's spelling of the address", []step{sso2}, zoom.User{ID: "z", Email: "ALICE@EXAMPLE.COM", FirstName: "Ally", Type: 1, Status: "active"},
			[]summary{{Kind: reconcile.KindFields, Expected: map[string]any{"first_name": "Al"}, Actual: map[string]any{"first_name": "Ally"},
				FixAction: "update", FixBody: `{"email":"ALICE@EXAMPLE.COM","user":{"first_name":"Al"}}`}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := summarize(reconcile.Compare(tc.zoom, life(t, "alice@example.com", tc.steps...))); !reflect.DeepEqual(got, canonicalized(tc.want)) {
				t.Errorf("Compare(%s) = %+v; want %+v", tc.name, got, tc.want)
			}
		})
	}
}

// Ensure the ledger expects nothing (the user is unmanaged when Zoom has
// them) of a user it does not know, one whose every request failed, and
// one an operator erased; and expects the state of the last success
// otherwise.
func TestExpected(t *testing.T) {
	forgotten := ledger.Record{Version: 1, State: ledger.StateUnknown, Requests: []ledger.Request{}, Forgotten: &ledger.Forgotten{At: t0, Through: 9}}
	for _, tc := range []struct {
		name string
		rec  ledger.Record
		want ledger.State
		ok   bool
	}{
		{"unknown", ledger.Record{}, ledger.StateUnknown, false},
		{"never created", life(t, "alice@example.com", failed, failed), ledger.StateUnknown, false},
		{"forgotten", forgotten, ledger.StateUnknown, false},
		{"pending", life(t, "alice@example.com", failed, invite), ledger.StatePending, true},
		{"deleted", life(t, "alice@example.com", sso, deleted), ledger.StateDeleted, true},
	} {
		if st, ok := reconcile.Expected(tc.rec); st != tc.want || ok != tc.ok {
			t.Errorf("Expected(%s) = %s, %t; want %s, %t", tc.name, st, ok, tc.want, tc.ok)
		}
		if ds := reconcile.Compare(zuser("active"), tc.rec); !tc.ok && ds != nil {
			t.Errorf("Compare(%s) = %v; want nil for a user the ledger expects nothing of", tc.name, ds)
		}
	}
}
