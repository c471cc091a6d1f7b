// Package reconcile compares the users Zoom has with what the service last
// applied to them, as the per-user ledger (package ledger) keeps it, and
// turns every difference into a corrective request that goes through the
// request stream like any other: per-user order, Zoom's quotas and the
// guard against mass deprovisioning all apply to it.
//
// A scan (Scan) walks every page of Zoom's listings of active, inactive and
// pending users and compares each user with their ledger entry as the page
// arrives, holding only a compact set of the keys seen, never the users;
// then the ledger's keys not seen are the managed users Zoom lacks. It
// makes no call to Zoom but GET /users. Plan and Publish turn the drift
// found into corrective requests; Periodic runs scans every interval on one
// replica at a time and reports what they find.
package reconcile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/zoomprov/consumer/internal/ledger"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/zoom"
)

// Kind is a kind of drift between Zoom and the ledger.
type Kind string

// The kinds of drift, in the order reports list them.
const (
	// KindMissing: the ledger expects the user active, pending or
	// inactive, and Zoom does not have them.
	KindMissing Kind = "missing"
	// KindStatus: the ledger expects the user active (or pending: an
	// invitation counts as active) and Zoom says inactive, or the reverse.
	KindStatus Kind = "status"
	// KindPresent: the ledger says the service deleted the user, and Zoom
	// has them.
	KindPresent Kind = "present"
	// KindFields: a profile field the service last set (ComparedFields)
	// differs in Zoom.
	KindFields Kind = "fields"
)

// KindUnmanaged is not drift: users Zoom has of whom the ledger expects
// nothing (no request about them ever succeeded). They are reported and
// never acted on; the gauge of drift counts them under this kind.
const KindUnmanaged Kind = "unmanaged"

// Kinds are the kinds of drift in report order.
var Kinds = []Kind{KindMissing, KindStatus, KindPresent, KindFields}

// GaugeKinds are the kinds a drift gauge reports: Kinds and KindUnmanaged.
var GaugeKinds = []Kind{KindMissing, KindStatus, KindPresent, KindFields, KindUnmanaged}

// ComparedFields are the profile fields a scan compares: those the service
// sets that Zoom's listing shows, set by a creation Zoom created or by an
// update (a deactivation sets type 1: Zoom removes the licences).
var ComparedFields = []string{"first_name", "last_name", "type"}

// What Expected and Actual hold besides Zoom's statuses.
const (
	// Absent is the Actual of a missing user.
	Absent = "absent"
)

// Drift is one difference between Zoom and the ledger about one user. Its
// JSON is the contract of `consumer reconcile --json`. A user may have
// two, status and fields.
type Drift struct {
	Email string `json:"email"`
	Kind  Kind   `json:"kind"`
	// Expected and Actual are, for missing, status and present, the
	// ledger's state (active, pending, inactive, deleted) and Zoom's
	// status (active, inactive, pending) or "absent"; for fields, objects
	// naming each field that differs with its value.
	Expected any `json:"expected"`
	Actual   any `json:"actual"`
	// ZoomUserID is Zoom's id of the user, else the one the ledger holds
	// (Zoom's listing leaves it out for pending users).
	ZoomUserID string `json:"zoom_user_id"`

	// Fix is the corrective request; nil when the drift cannot be
	// repaired, and NoFix then says why.
	Fix   *Fix   `json:"-"`
	NoFix string `json:"-"`
}

// Fix is the request that repairs a drift.
type Fix struct {
	// Action is the creation action or the lifecycle operation: the last
	// token of the request's subject.
	Action string
	// Body is the request's body.
	Body json.RawMessage
}

// Unmanaged is a user Zoom has of whom the ledger expects nothing. Its
// JSON is the contract of `consumer reconcile --json`.
type Unmanaged struct {
	Email      string `json:"email"`
	Status     string `json:"status"`
	ZoomUserID string `json:"zoom_user_id"`
}

// Expected returns the state the ledger expects the user rec describes to
// be in, and false when it expects nothing: no request about them ever
// succeeded within the results' retention (never created, only failed
// requests, or erased by `consumer user forget`).
func Expected(rec ledger.Record) (ledger.State, bool) {
	st := ledger.StateOf(rec.Applied)
	return st, st != ledger.StateUnknown
}

// Reasons a drift cannot be repaired.
const (
	noFixNoCreation = "no creation request recorded (its result predates data.request): publish the creation again"
	noFixAutoCreate = "autoCreate: the password is never kept, so the creation cannot be published again: publish it with a password"
	noFixInactive   = "the user was deactivated: publishing the creation again would make them active; create and deactivate them by hand, or consumer user forget them"
	noFixNoDelete   = "no delete parameters recorded (its result predates data.request): publish the delete again"
	noFixPending    = "Zoom cannot deactivate a pending invitation: delete the invitation, or let the user accept it"
)

// Compare returns the drift between zu, a user Zoom listed, and rec, the
// ledger's entry of the same user (the same Key); nil when they agree or
// the ledger expects nothing of the user (see Expected). Emails are
// compared case-insensitively by the caller, through the key; Zoom's
// spelling is the one reported.
func Compare(zu zoom.User, rec ledger.Record) []Drift {
	st, ok := Expected(rec)
	if !ok {
		return nil
	}
	id := zu.ID
	if id == "" {
		id = rec.ZoomUserID
	}
	email := zu.Email
	status := func(op messages.Operation) *Fix {
		return &Fix{Action: string(op), Body: statusBody(email)}
	}
	var out []Drift
	deactivating := false
	switch st {
	case ledger.StateDeleted:
		d := Drift{Email: email, Kind: KindPresent, Expected: string(st), Actual: zu.Status, ZoomUserID: id}
		if rec.Deletion != nil && len(rec.Deletion.Params) > 0 {
			d.Fix = &Fix{Action: string(messages.OpDelete), Body: rec.Deletion.Params}
		} else {
			d.NoFix = noFixNoDelete
		}
		return []Drift{d}
	case ledger.StateActive, ledger.StatePending:
		if zu.Status == zoom.UserInactive {
			out = append(out, Drift{Email: email, Kind: KindStatus, Expected: string(st), Actual: zu.Status, ZoomUserID: id,
				Fix: status(messages.OpActivate)})
		}
	case ledger.StateInactive:
		if zu.Status != zoom.UserInactive {
			d := Drift{Email: email, Kind: KindStatus, Expected: string(st), Actual: zu.Status, ZoomUserID: id}
			if zu.Status == zoom.UserPending {
				d.NoFix = noFixPending
			} else {
				d.Fix, deactivating = status(messages.OpDeactivate), true
			}
			out = append(out, d)
		}
	}
	if want, got := compareFields(zu, rec, deactivating); len(want) > 0 {
		body, err := json.Marshal(map[string]any{"email": email, "user": want})
		d := Drift{Email: email, Kind: KindFields, Expected: want, Actual: got, ZoomUserID: id}
		if err != nil {
			d.NoFix = "the expected fields do not encode: " + err.Error()
		} else {
			d.Fix = &Fix{Action: string(messages.OpUpdate), Body: body}
		}
		out = append(out, d)
	}
	return out
}

// compareFields returns the ComparedFields the ledger holds that differ in
// Zoom, as the ledger expects them and as Zoom has them. type is left out
// while the user is being deactivated (the deactivation makes it 1) and
// when the ledger expects 99 (None), which only an ssoCreate can set.
func compareFields(zu zoom.User, rec ledger.Record, deactivating bool) (want, got map[string]any) {
	for _, name := range ComparedFields {
		f, ok := rec.Profile[name]
		if !ok {
			continue
		}
		switch name {
		case "type":
			var t int
			if deactivating || json.Unmarshal(f.Value, &t) != nil || t == 99 {
				continue
			}
			if deactivatedAfter(rec, f.StreamSequence) {
				// Entries written before deactivations recorded type 1
				// (see ledger.FromResult): Zoom removed the licences.
				t = 1
			}
			if zu.Type != t {
				want, got = put(want, name, t), put(got, name, zu.Type)
			}
		default:
			var s string
			if json.Unmarshal(f.Value, &s) != nil {
				continue
			}
			actual := zu.FirstName
			if name == "last_name" {
				actual = zu.LastName
			}
			if actual != s {
				want, got = put(want, name, s), put(got, name, actual)
			}
		}
	}
	return want, got
}

// deactivatedAfter reports whether rec records a deactivation after
// stream sequence seq.
func deactivatedAfter(rec ledger.Record, seq uint64) bool {
	return slices.ContainsFunc(rec.Requests, func(q ledger.Request) bool {
		return q.Outcome == messages.OutcomeDeactivated && q.StreamSequence > seq
	})
}

func put(m map[string]any, k string, v any) map[string]any {
	if m == nil {
		m = map[string]any{}
	}
	m[k] = v
	return m
}

// Missing returns the drift of a user Zoom does not have, described by
// their ledger entry rec; nil when the ledger expects nothing of them or
// expects them deleted.
func Missing(rec ledger.Record) *Drift {
	st, ok := Expected(rec)
	if !ok || st == ledger.StateDeleted {
		return nil
	}
	d := &Drift{Email: rec.Email, Kind: KindMissing, Expected: string(st), Actual: Absent, ZoomUserID: rec.ZoomUserID}
	action := creationAction(rec.Creation)
	switch {
	case action == "":
		d.NoFix = noFixNoCreation
	case action == string(messages.ActionAutoCreate):
		d.NoFix = noFixAutoCreate
	case st == ledger.StateInactive:
		d.NoFix = noFixInactive
	default:
		d.Fix = &Fix{Action: action, Body: rec.Creation.Body}
	}
	return d
}

// creationAction returns the action of a recorded creation's body, "" for
// none.
func creationAction(c *ledger.Creation) string {
	if c == nil || len(bytes.TrimSpace(c.Body)) == 0 {
		return ""
	}
	var b struct {
		Action string `json:"action"`
	}
	if json.Unmarshal(c.Body, &b) != nil {
		return ""
	}
	return b.Action
}

// statusBody is the body of a deactivate or activate request.
func statusBody(email string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"email": email})
	return b
}

// String describes d in one line, for logs and tests.
func (d Drift) String() string {
	return fmt.Sprintf("%s %s: expected %v, actual %v", d.Kind, d.Email, d.Expected, d.Actual)
}
