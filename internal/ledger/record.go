// Package ledger is the per-user ledger of the Zoom provisioning consumer:
// a projection of the result stream that answers "what happened to this
// person?" in one key-value read, and that keeps what the service last
// applied to each user in Zoom (for replays and for reconciliation).
//
// The source of truth stays the result stream. The ledger is the bucket
// topology.Topology.LedgerBucket, one entry (a Record, as JSON) per user,
// under Key(email): a hash of messages.UserKey, never the address itself.
// Every replica of the service runs a Projector, which pulls the results
// from one shared durable consumer and folds each terminal result into its
// user's Record with compare-and-set on the entry's revision. A Record is
// a join of what the results say: the set of finished requests (deduplicated
// by request id and outcome) and registers that keep the value of the
// result latest in stream order (the last successful outcome, the last
// creation, each profile field, the last deletion). Merging is commutative,
// associative and idempotent, so the order in which results are applied,
// how often, and by how many replicas at once does not change the Record:
// a redelivered result changes nothing, and Reindex can rebuild the ledger
// from the result stream while the replicas keep writing.
//
// Requests older than the results' retention (RESULT_MAX_AGE) are dropped
// on each write, and the bucket's TTL, the same age, removes the entries of
// users with no activity for that long. Forget erases one person: their
// entry, their result events and their dead letters, with an audit event.
package ledger

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/zoomprov/consumer/internal/messages"
)

// Key returns the bucket key of the user email names: the hex of the first
// 16 bytes of the SHA-256 of messages.UserKey(email). Two spellings of one
// address that the per-user order treats as one user (case) have one key;
// the address never appears in a key or a subject.
func Key(email string) string {
	sum := sha256.Sum256([]byte(messages.UserKey(email)))
	return hex.EncodeToString(sum[:16])
}

// State is what the ledger says of a user in Zoom.
type State string

// The states of a user.
const (
	// StateActive: the last successful outcome was created (not by an
	// invitation), exists, activated or updated.
	StateActive State = "active"
	// StatePending: the last successful outcome was created by an
	// action=create invitation the user has not necessarily accepted.
	StatePending State = "pending"
	// StateInactive: the last successful outcome was deactivated.
	StateInactive State = "inactive"
	// StateDeleted: the last successful outcome was deleted.
	StateDeleted State = "deleted"
	// StateUnknown: no request about the user ever succeeded within the
	// results' retention (or the ledger was told to forget them).
	StateUnknown State = "unknown"
)

// StateOf is the state the last successful terminal outcome gives a user
// (nil: none, StateUnknown). The action matters only for created: an
// action=create invitation leaves the user pending.
func StateOf(last *Applied) State {
	if last == nil {
		return StateUnknown
	}
	switch last.Outcome {
	case messages.OutcomeCreated:
		if last.Action == string(messages.ActionCreate) {
			return StatePending
		}
		return StateActive
	case messages.OutcomeExists, messages.OutcomeActivated, messages.OutcomeUpdated:
		return StateActive
	case messages.OutcomeDeactivated:
		return StateInactive
	case messages.OutcomeDeleted:
		return StateDeleted
	}
	return StateUnknown
}

// Succeeded reports whether o is a terminal outcome in which Zoom applied
// (or already had) what was asked: every terminal outcome but failed.
func Succeeded(o messages.Outcome) bool {
	return o.Terminal() && o != messages.OutcomeFailed
}

// Request is one request about the user that has a terminal result. Its
// JSON is the contract of `consumer user show --json`.
type Request struct {
	RequestID string `json:"request_id"`
	// Action is the creation action (create, autoCreate, …) or the
	// lifecycle operation (update, …).
	Action string `json:"action"`
	// StreamSequence is the request's position in the request stream:
	// the order in which requests about a user take effect.
	StreamSequence uint64           `json:"stream_sequence"`
	Outcome        messages.Outcome `json:"outcome"`
	// Reason is why a failed request failed; empty for a success.
	Reason messages.Reason `json:"reason"`
	// Time is when the result was recorded (the result event's time).
	Time time.Time `json:"time"`
}

// Applied is a user's last successful terminal outcome, in stream order.
type Applied struct {
	StreamSequence uint64           `json:"stream_sequence"`
	RequestID      string           `json:"request_id"`
	Action         string           `json:"action"`
	Outcome        messages.Outcome `json:"outcome"`
}

// Creation is the last creation request that succeeded (created or
// exists), as the service decoded it, without any password: what
// reconciliation publishes again for a user Zoom lost.
type Creation struct {
	StreamSequence uint64           `json:"stream_sequence"`
	RequestID      string           `json:"request_id"`
	Outcome        messages.Outcome `json:"outcome"`
	// Body is the body of Zoom's POST /v2/users: action and user_info.
	Body json.RawMessage `json:"body"`
}

// Field is the value a profile field was last set to, and by which
// request (its stream sequence).
type Field struct {
	Value          json.RawMessage `json:"value"`
	StreamSequence uint64          `json:"stream_sequence"`
}

// Deletion is the last delete that succeeded: its parameters (action,
// transfer_email, transfer_* flags), which reconciliation republishes.
type Deletion struct {
	StreamSequence uint64          `json:"stream_sequence"`
	RequestID      string          `json:"request_id"`
	Params         json.RawMessage `json:"params"`
}

// Forgotten marks an entry an operator erased (Forget): results up to and
// including the result-stream sequence Through are never applied to it
// again.
type Forgotten struct {
	At      time.Time `json:"at"`
	Through uint64    `json:"through"`
}

// FormatVersion is the version of the Record format, its "v".
const FormatVersion = 1

// MaxRequests bounds the requests a Record keeps (the oldest go first),
// so that an entry stays far below NATS's 1 MiB message limit whatever
// happens to one user within the results' retention.
const MaxRequests = 2000

// Record is one user's ledger entry, the value of Key(email) in the
// bucket. Every field is the join of the results applied to it; see the
// package comment.
type Record struct {
	// Version is FormatVersion.
	Version int `json:"v"`
	// Email is the address as the request latest in stream order spelt it.
	Email string `json:"email,omitempty"`
	// State is StateOf(Applied), kept for readers of the raw entry.
	State State `json:"state"`
	// ZoomUserID is the Zoom id the latest result that named one gave.
	ZoomUserID string `json:"zoom_user_id,omitempty"`
	// Requests are the requests with a terminal result within the
	// results' retention, in stream order.
	Requests []Request `json:"requests"`
	// Applied is the last successful terminal outcome.
	Applied *Applied `json:"applied,omitempty"`
	// Creation is the last creation that succeeded.
	Creation *Creation `json:"creation,omitempty"`
	// Profile holds the profile fields (first_name, last_name, type, dept,
	// …) as a creation that Zoom created or an update last set them (a
	// deactivation sets type 1: Zoom removes the licences), those set
	// before the last creation or deletion excluded.
	Profile map[string]Field `json:"profile,omitempty"`
	// ProfileSince is the stream sequence of the last created or deleted
	// outcome: profile fields set before it no longer apply.
	ProfileSince uint64 `json:"profile_since,omitempty"`
	// Deletion is the last delete that succeeded.
	Deletion *Deletion `json:"deletion,omitempty"`
	// EmailSequence and ZoomUserIDSequence are the stream sequences of the
	// requests that set Email and ZoomUserID.
	EmailSequence      uint64 `json:"email_sequence,omitempty"`
	ZoomUserIDSequence uint64 `json:"zoom_user_id_sequence,omitempty"`
	// Forgotten is set once an operator erased the user.
	Forgotten *Forgotten `json:"forgotten,omitempty"`
	// Updated is when the entry was last written.
	Updated time.Time `json:"updated"`
}

// Known reports whether r says anything about the user: a request
// finished within the results' retention, or one succeeded.
func (r Record) Known() bool { return len(r.Requests) > 0 || r.Applied != nil }

// SucceededAfter returns the requests of r after stream sequence seq that
// succeeded, in stream order.
func (r Record) SucceededAfter(seq uint64) []Request {
	var out []Request
	for _, q := range r.Requests {
		if q.StreamSequence > seq && Succeeded(q.Outcome) {
			out = append(out, q)
		}
	}
	return out
}

// View is a user as `consumer user show --json` prints it: the contract
// (docs/contract.md, "The per-user ledger").
type View struct {
	Email      string    `json:"email"`
	State      State     `json:"state"`
	ZoomUserID string    `json:"zoom_user_id"`
	Requests   []Request `json:"requests"`
}

// View returns what r says of the user asked about as email: email itself
// for a user the ledger does not know, else the address as the requests
// spelt it. Requests is never nil.
func (r Record) View(email string) View {
	v := View{Email: email, State: StateUnknown, Requests: []Request{}}
	if !r.Known() {
		return v
	}
	if r.Email != "" {
		v.Email = r.Email
	}
	v.State, v.ZoomUserID = StateOf(r.Applied), r.ZoomUserID
	v.Requests = append(v.Requests, r.Requests...)
	return v
}

// FromResult returns the Record of one result: the request it finished,
// and, for a success, the registers it sets. ok is false for a result
// that is not a request's terminal result about a user (deferred, no
// email), which the ledger ignores. A result without data.request (older
// events, invalid requests) counts for the state and the history alone.
func FromResult(res messages.Result, at time.Time) (rec Record, ok bool) {
	if !res.Outcome.Terminal() || res.Email == "" || res.RequestID == "" {
		return Record{}, false
	}
	seq := res.StreamSequence
	rec = Record{
		Version: FormatVersion, Email: res.Email, EmailSequence: seq,
		Requests: []Request{{
			RequestID: res.RequestID, Action: res.Action, StreamSequence: seq,
			Outcome: res.Outcome, Reason: res.Reason, Time: at.UTC(),
		}},
	}
	if Succeeded(res.Outcome) {
		rec.Applied = &Applied{StreamSequence: seq, RequestID: res.RequestID, Action: res.Action, Outcome: res.Outcome}
		if res.ZoomUserID != "" {
			rec.ZoomUserID, rec.ZoomUserIDSequence = res.ZoomUserID, seq
		}
		body := withoutPasswords(res.Request)
		switch res.Outcome {
		case messages.OutcomeCreated, messages.OutcomeExists:
			if body != nil {
				rec.Creation = &Creation{StreamSequence: seq, RequestID: res.RequestID, Outcome: res.Outcome, Body: body}
			}
			// Zoom applied the body only when it created the user: a
			// 409 left the existing user as it was.
			if res.Outcome == messages.OutcomeCreated {
				rec.ProfileSince = seq
				rec.Profile = fields(member(body, "user_info"), seq, "email")
			}
		case messages.OutcomeUpdated:
			rec.Profile = fields(member(body, "user"), seq)
		case messages.OutcomeDeactivated:
			// Zoom's deactivation removes every licence: the user is
			// Basic (type 1) from then on, and activation gives no
			// licence back, so that is the type the service last applied.
			rec.Profile = map[string]Field{"type": {Value: json.RawMessage("1"), StreamSequence: seq}}
		case messages.OutcomeDeleted:
			rec.ProfileSince = seq
			if body != nil {
				rec.Deletion = &Deletion{StreamSequence: seq, RequestID: res.RequestID, Params: body}
			}
		}
	}
	rec.State = StateOf(rec.Applied)
	return rec, true
}

// Merge returns the join of a and b: every request of either (one per
// request id and outcome), and each register from whichever of them set it
// later in stream order. Merge(a, b) equals Merge(b, a), and Merge(a, a)
// equals a, so results can be applied in any order, any number of times.
func Merge(a, b Record) Record {
	out := Record{Version: FormatVersion}
	out.Email, out.EmailSequence = laterString(a.Email, a.EmailSequence, b.Email, b.EmailSequence)
	out.ZoomUserID, out.ZoomUserIDSequence = laterString(a.ZoomUserID, a.ZoomUserIDSequence, b.ZoomUserID, b.ZoomUserIDSequence)
	out.Requests = mergeRequests(a.Requests, b.Requests)
	out.Applied = later(a.Applied, b.Applied, func(x *Applied) (uint64, string) {
		return x.StreamSequence, x.RequestID + "\x00" + string(x.Outcome)
	})
	out.Creation = later(a.Creation, b.Creation, func(x *Creation) (uint64, string) {
		return x.StreamSequence, x.RequestID + "\x00" + string(x.Outcome) + "\x00" + string(x.Body)
	})
	out.Deletion = later(a.Deletion, b.Deletion, func(x *Deletion) (uint64, string) {
		return x.StreamSequence, x.RequestID + "\x00" + string(x.Params)
	})
	out.Forgotten = later(a.Forgotten, b.Forgotten, func(x *Forgotten) (uint64, string) {
		return x.Through, x.At.UTC().Format(time.RFC3339Nano)
	})
	out.ProfileSince = max(a.ProfileSince, b.ProfileSince)
	for _, p := range []map[string]Field{a.Profile, b.Profile} {
		for name, f := range p {
			if f.StreamSequence < out.ProfileSince {
				continue
			}
			cur, ok := out.Profile[name]
			if ok && (cur.StreamSequence > f.StreamSequence ||
				cur.StreamSequence == f.StreamSequence && bytes.Compare(cur.Value, f.Value) >= 0) {
				continue
			}
			if out.Profile == nil {
				out.Profile = map[string]Field{}
			}
			out.Profile[name] = f
		}
	}
	if a.Updated.After(b.Updated) {
		out.Updated = a.Updated
	} else {
		out.Updated = b.Updated
	}
	out.State = StateOf(out.Applied)
	return out
}

// Prune drops the requests recorded before now-maxAge (none when maxAge is
// zero), and the oldest beyond MaxRequests. The registers stay: the state
// is the last successful outcome even when its request has aged out.
func (r Record) Prune(now time.Time, maxAge time.Duration) Record {
	if maxAge > 0 {
		cutoff := now.Add(-maxAge)
		r.Requests = slices.DeleteFunc(slices.Clone(r.Requests), func(q Request) bool { return q.Time.Before(cutoff) })
	}
	if n := len(r.Requests); n > MaxRequests {
		r.Requests = slices.Clone(r.Requests[n-MaxRequests:])
	}
	if r.Requests == nil {
		r.Requests = []Request{}
	}
	return r
}

// same reports whether a and b hold the same facts (Updated aside).
func same(a, b Record) bool {
	a.Updated, b.Updated = time.Time{}, time.Time{}
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// mergeRequests is the union of a and b, one per request id and outcome,
// sorted by stream sequence (then request id and outcome, so that the
// order never depends on which came first).
func mergeRequests(a, b []Request) []Request {
	type id struct {
		request string
		outcome messages.Outcome
	}
	seen := make(map[id]int, len(a)+len(b))
	out := make([]Request, 0, len(a)+len(b))
	for _, q := range slices.Concat(a, b) {
		k := id{q.RequestID, q.Outcome}
		if i, dup := seen[k]; dup {
			// The same result applied twice: keep one, the same whichever
			// came first.
			if compareRequest(q, out[i]) < 0 {
				out[i] = q
			}
			continue
		}
		seen[k] = len(out)
		out = append(out, q)
	}
	slices.SortFunc(out, compareRequest)
	return out
}

func compareRequest(x, y Request) int {
	return cmp.Or(
		cmp.Compare(x.StreamSequence, y.StreamSequence),
		strings.Compare(x.RequestID, y.RequestID),
		strings.Compare(string(x.Outcome), string(y.Outcome)),
		x.Time.Compare(y.Time),
		strings.Compare(x.Action, y.Action),
		strings.Compare(string(x.Reason), string(y.Reason)),
	)
}

// later returns whichever of a and b is later by key (sequence, then a
// tie-breaker), nil only when both are.
func later[T any](a, b *T, key func(*T) (uint64, string)) *T {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	sa, ta := key(a)
	sb, tb := key(b)
	if sb > sa || sb == sa && tb > ta {
		return b
	}
	return a
}

func laterString(a string, sa uint64, b string, sb uint64) (string, uint64) {
	if a == "" || b != "" && (sb > sa || sb == sa && b > a) {
		return b, sb
	}
	return a, sa
}

// member returns the raw value of a top-level member of a JSON object, nil
// when there is none.
func member(body json.RawMessage, name string) json.RawMessage {
	if body == nil {
		return nil
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) != nil {
		return nil
	}
	return obj[name]
}

// fields returns the members of the JSON object obj as profile fields set
// at seq, but for those named in skip.
func fields(obj json.RawMessage, seq uint64, skip ...string) map[string]Field {
	if obj == nil {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(obj, &m) != nil {
		return nil
	}
	out := map[string]Field{}
	for name, v := range m {
		if slices.Contains(skip, name) || isPassword(name) {
			continue
		}
		out[name] = Field{Value: compact(v), StreamSequence: seq}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// withoutPasswords returns body, compacted, with every member named
// password (in any case, at any depth) removed: the service never puts one
// in data.request, and the ledger must hold none even if a future result
// did. nil when body is empty or not JSON.
func withoutPasswords(body json.RawMessage) json.RawMessage {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return nil
	}
	out, err := json.Marshal(strip(v))
	if err != nil {
		return nil
	}
	return out
}

func strip(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if isPassword(k) {
				delete(x, k)
				continue
			}
			x[k] = strip(e)
		}
	case []any:
		for i, e := range x {
			x[i] = strip(e)
		}
	}
	return v
}

func isPassword(name string) bool { return strings.EqualFold(name, "password") }

func compact(v json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if json.Compact(&b, v) != nil {
		return v
	}
	return b.Bytes()
}
