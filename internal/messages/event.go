package messages

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
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
)

// Terminal reports whether o is final: no later event will follow for the
// same request. Only OutcomeDeferred is not terminal.
func (o Outcome) Terminal() bool {
	switch o {
	case OutcomeCreated, OutcomeExists, OutcomeFailed:
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
	if o == OutcomeDeferred {
		return requestID + ":deferred:" + strconv.Itoa(attempt)
	}
	return requestID + ":result"
}

// NewEvent wraps r in an event. The id comes from EventID, the type is
// EventTypePrefix plus r.Outcome, the subject is r.RequestID and the time is
// now in UTC, RFC 3339 with fractional seconds. TraceParent is left for the
// caller to set.
func NewEvent(r Result, now time.Time) Event {
	return Event{
		SpecVersion:     SpecVersion,
		ID:              EventID(r.RequestID, r.Outcome, r.Attempt),
		Source:          EventSource,
		Type:            EventTypePrefix + string(r.Outcome),
		Subject:         r.RequestID,
		Time:            now.UTC().Format(time.RFC3339Nano),
		DataContentType: dataContentType,
		Data:            r,
	}
}

// Marshal encodes e as the body of a structured-mode CloudEvents message.
// Unlike json.Marshal it leaves "<", ">" and "&" unescaped, so that Zoom's
// messages read naturally in the event.
//
// The bytes are exactly what a json.Encoder with SetEscapeHTML(false)
// writes for e (without the newline), appended field by field instead of
// through reflection: every request publishes an event, and reflection was
// a noticeable part of the cost of one. TestEventMarshalMatchesEncoder and
// FuzzEventMarshal hold the two to the same output. The error is always
// nil; it stays for callers written against the encoder.
func (e Event) Marshal() ([]byte, error) {
	b := make([]byte, 0, 512)
	b = appendField(b, `{"specversion":`, e.SpecVersion)
	b = appendField(b, `,"id":`, e.ID)
	b = appendField(b, `,"source":`, e.Source)
	b = appendField(b, `,"type":`, e.Type)
	b = appendField(b, `,"subject":`, e.Subject)
	b = appendField(b, `,"time":`, e.Time)
	b = appendField(b, `,"datacontenttype":`, e.DataContentType)
	if e.TraceParent != "" {
		b = appendField(b, `,"traceparent":`, e.TraceParent)
	}
	r := &e.Data
	b = appendField(b, `,"data":{"request_id":`, r.RequestID)
	b = appendField(b, `,"action":`, r.Action)
	b = appendField(b, `,"email":`, r.Email)
	b = appendField(b, `,"outcome":`, string(r.Outcome))
	b = appendField(b, `,"zoom_user_id":`, r.ZoomUserID)
	b = append(b, `,"http_status":`...)
	b = strconv.AppendInt(b, int64(r.HTTPStatus), 10)
	b = append(b, `,"zoom_code":`...)
	b = strconv.AppendInt(b, int64(r.ZoomCode), 10)
	b = appendField(b, `,"zoom_message":`, r.ZoomMessage)
	b = appendField(b, `,"reason":`, string(r.Reason))
	b = appendField(b, `,"retry_at":`, r.RetryAt)
	b = append(b, `,"attempt":`...)
	b = strconv.AppendInt(b, int64(r.Attempt), 10)
	b = append(b, `,"stream_sequence":`...)
	b = strconv.AppendUint(b, r.StreamSequence, 10)
	if r.ReplayOf != "" {
		b = appendField(b, `,"replay_of":`, r.ReplayOf)
	}
	return append(b, '}', '}'), nil
}

// appendField appends prefix (punctuation and a key) and s as a JSON
// string.
func appendField(b []byte, prefix, s string) []byte {
	return appendJSONString(append(b, prefix...), s)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string escaped as encoding/json
// escapes it with HTML escaping off: quote, backslash and control
// characters escaped (\b, \f, \n, \r and \t in short form), invalid UTF-8
// replaced by \ufffd, and U+2028 and U+2029 escaped for JavaScript.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
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
