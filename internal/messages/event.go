package messages

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Outcome is what became of a request. It is the suffix of the event type.
type Outcome string

// The outcomes of a request.
const (
	// OutcomeCreated means Zoom created the user.
	OutcomeCreated Outcome = "created"
	// OutcomeExists means Zoom already had a user with the email (HTTP
	// 409), which counts as success because the request is idempotent.
	OutcomeExists Outcome = "exists"
	// OutcomeFailed means the request was dead-lettered; Result.Reason
	// says why.
	OutcomeFailed Outcome = "failed"
	// OutcomeDeferred means the request will be tried again at
	// Result.RetryAt, for example after Zoom's daily quota resets.
	OutcomeDeferred Outcome = "deferred"
	// OutcomeUpdated, OutcomeDeactivated, OutcomeActivated and
	// OutcomeDeleted mean Zoom applied a lifecycle operation (also when
	// the user already was in the asked state; a delete of a user Zoom
	// does not have is OutcomeDeleted with ZoomCode 1001).
	OutcomeUpdated     Outcome = "updated"
	OutcomeDeactivated Outcome = "deactivated"
	OutcomeActivated   Outcome = "activated"
	OutcomeDeleted     Outcome = "deleted"
	// OutcomeHeld means the guard against mass deprovisioning holds the
	// (destructive) request until an operator releases or rejects it; a
	// terminal event follows then. One per request.
	OutcomeHeld Outcome = "held"
)

// Outcomes lists every outcome, for metrics labels and subject filters.
var Outcomes = []Outcome{OutcomeCreated, OutcomeExists, OutcomeFailed, OutcomeDeferred, OutcomeHeld,
	OutcomeUpdated, OutcomeDeactivated, OutcomeActivated, OutcomeDeleted}

// SuccessOf is the outcome of a lifecycle operation Zoom applied.
func SuccessOf(op Operation) Outcome {
	switch op {
	case OpUpdate:
		return OutcomeUpdated
	case OpDeactivate:
		return OutcomeDeactivated
	case OpActivate:
		return OutcomeActivated
	case OpDelete:
		return OutcomeDeleted
	}
	return ""
}

// Terminal reports whether o is final: no later event will follow for the
// same request. OutcomeDeferred and OutcomeHeld are not.
func (o Outcome) Terminal() bool {
	switch o {
	case OutcomeCreated, OutcomeExists, OutcomeFailed, OutcomeUpdated, OutcomeDeactivated, OutcomeActivated, OutcomeDeleted:
		return true
	}
	return false
}

// Reason explains an OutcomeFailed (and, for deferrals, why the request
// waits). It is also the value of the HeaderReason dead-letter header.
type Reason string

// The reasons a request fails.
const (
	// ReasonInvalidRequest means the message failed Decode.
	ReasonInvalidRequest Reason = "invalid_request"
	// ReasonZoomRejected means Zoom answered with a 4xx that retrying
	// cannot fix.
	ReasonZoomRejected Reason = "zoom_rejected"
	// ReasonNotFound means Zoom answered 404 Not Found; for POST /v2/users
	// Zoom documents this for a missing group (code 4130) and for a Zoom
	// Phone request with no licence left (code 1102).
	ReasonNotFound Reason = "not_found"
	// ReasonRetriesExhausted means transient failures went on past the
	// retry budget.
	ReasonRetriesExhausted Reason = "retries_exhausted"
	// ReasonGuard says why a request is OutcomeHeld: the guard against
	// mass deprovisioning holds it until an operator decides.
	ReasonGuard Reason = "guard"
	// ReasonGuardRejected means an operator rejected the request the guard
	// held (consumer guard reject): it was never sent to Zoom.
	ReasonGuardRejected Reason = "guard_rejected"
)

// CloudEvents attributes shared by every result event.
const (
	// EventSource is the CloudEvents "source" of every result event.
	EventSource = "zoom-provisioner"
	// EventTypePrefix is prepended to the Outcome to form the event type,
	// such as "zoom.user.provisioning.created".
	EventTypePrefix = "zoom.user.provisioning."
	// ContentTypeCloudEvents is the Content-Type header of a result event
	// message in CloudEvents structured mode.
	ContentTypeCloudEvents = "application/cloudevents+json"
	// SpecVersion is the CloudEvents specification version of the events.
	SpecVersion = "1.0"
	// DataSchema is the CloudEvents "dataschema" of every result event:
	// the $id of api/schemas/result.schema.json, the JSON Schema (draft
	// 2020-12) of the whole event, whose $defs/data describes Result. The
	// "v1" in it is the contract's major version; it changes only with a
	// breaking change (docs/compatibility.md).
	DataSchema = "https://zoomprov.github.io/consumer/schemas/v1/result.schema.json"
)

// dataContentType is the media type of Event.Data.
const dataContentType = "application/json"

// Result is the "data" of a result event. It is an external contract:
// every field is always present in the JSON, even when zero, except
// ReplayOf, so consumers never need to tell a missing field from an empty
// one.
type Result struct {
	RequestID   string  `json:"request_id"`
	Action      string  `json:"action"`
	Email       string  `json:"email"`
	Outcome     Outcome `json:"outcome"`
	ZoomUserID  string  `json:"zoom_user_id"`
	HTTPStatus  int     `json:"http_status"`
	ZoomCode    int     `json:"zoom_code"`
	ZoomMessage string  `json:"zoom_message"`
	Reason      Reason  `json:"reason"`
	// RetryAt is the RFC 3339 UTC time of the next attempt for
	// OutcomeDeferred and "" otherwise.
	RetryAt        string `json:"retry_at"`
	Attempt        int    `json:"attempt"`
	StreamSequence uint64 `json:"stream_sequence"`
	// ReplayOf is the original request ID when the request was replayed
	// from the dead-letter stream.
	ReplayOf string `json:"replay_of,omitempty"`
	// Request is the request as the service decoded it, without any
	// password, on the terminal result of a valid request: what a
	// projection of the result stream (the per-user ledger) needs to know
	// of what was applied.
	Request json.RawMessage `json:"request,omitempty"`
}

// Event is a CloudEvents 1.0 event in structured mode: the attributes and
// the Result travel together as one JSON document with content type
// ContentTypeCloudEvents.
type Event struct {
	SpecVersion     string `json:"specversion"`
	ID              string `json:"id"`
	Source          string `json:"source"`
	Type            string `json:"type"`
	Subject         string `json:"subject"`
	Time            string `json:"time"`
	DataContentType string `json:"datacontenttype"`
	// DataSchema is DataSchema in every event NewEvent makes.
	DataSchema string `json:"dataschema"`
	// TraceParent is the W3C Trace Context distributed-tracing extension
	// attribute, copied from the request when it had one.
	TraceParent string `json:"traceparent,omitempty"`
	Data        Result `json:"data"`
}

// EventID returns the CloudEvents id for the outcome of a request:
// "<requestID>:result" for a terminal outcome and
// "<requestID>:deferred:<attempt>" for a deferral. The id is deterministic
// so that publishing the same outcome twice (after a crash between publish
// and ack) is deduplicated by JetStream and by consumers.
func EventID(requestID string, o Outcome, attempt int) string {
	switch o {
	case OutcomeDeferred:
		return requestID + ":deferred:" + strconv.Itoa(attempt)
	case OutcomeHeld:
		return requestID + ":held"
	}
	return requestID + ":result"
}

// NewEvent wraps r in an event. The id comes from EventID, the type is
// EventTypePrefix plus r.Outcome, the subject is r.RequestID, the data
// schema is DataSchema and the time is now in UTC, RFC 3339 with fractional
// seconds. TraceParent is left for the caller to set.
func NewEvent(r Result, now time.Time) Event {
	return Event{
		SpecVersion:     SpecVersion,
		ID:              EventID(r.RequestID, r.Outcome, r.Attempt),
		Source:          EventSource,
		Type:            EventTypePrefix + string(r.Outcome),
		Subject:         r.RequestID,
		Time:            now.UTC().Format(time.RFC3339Nano),
		DataContentType: dataContentType,
		DataSchema:      DataSchema,
		Data:            r,
	}
}

// Marshal encodes the event with encoding/json, every Result field present
// and in the order of the struct, without HTML escaping (a Zoom message
// such as "a<b" stays readable).
func (e Event) Marshal() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// DecodeEvent parses a structured-mode result event. Unknown attributes are
// ignored, because CloudEvents lets intermediaries add extension
// attributes. It fails if the JSON is malformed or if the attributes
// CloudEvents requires (specversion "1.0", id, source, type) are missing.
func DecodeEvent(data []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(data, &e); err != nil {
		return Event{}, fmt.Errorf("messages: decode event: %w", err)
	}
	var missing []string
	for _, a := range []struct{ name, value string }{
		{"id", e.ID}, {"source", e.Source}, {"type", e.Type},
	} {
		if a.value == "" {
			missing = append(missing, a.name)
		}
	}
	switch {
	case e.SpecVersion != SpecVersion:
		return Event{}, errors.New(`messages: decode event: specversion must be "` + SpecVersion + `"`)
	case len(missing) > 0:
		return Event{}, errors.New("messages: decode event: missing required attributes: " + strings.Join(missing, ", "))
	}
	return e, nil
}
