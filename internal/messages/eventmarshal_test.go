package messages

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// encoderMarshal is what Event.Marshal wrote before it appended fields by
// hand: a json.Encoder without HTML escaping, newline trimmed.
func encoderMarshal(t *testing.T, e Event) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		t.Fatalf("Encode(%+v): %v", e, err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func checkEventMarshal(t *testing.T, e Event) {
	t.Helper()
	got, err := e.Marshal()
	if err != nil {
		t.Fatalf("Marshal(%+v) error = %v", e, err)
	}
	if want := encoderMarshal(t, e); !bytes.Equal(got, want) {
		t.Fatalf("Marshal(%+v) =\n%s\nwant (json.Encoder)\n%s", e, got, want)
	}
}

// Ensure Marshal writes byte for byte what json.Encoder (HTML escaping
// off) writes, for every kind of character and every optional field.
func TestEventMarshalMatchesEncoder(t *testing.T) {
	odd := "a\"b\\c/d<e>f&g\x00\x01\x1f\x7f\b\f\n\r\té€😀\u2028\u2029\xff\xfe end"
	now := time.Date(2026, 11, 28, 12, 12, 20, 512345678, time.UTC)
	base := Result{RequestID: "hris-42", Action: "ssoCreate", Email: "alice@example.com", Outcome: OutcomeCreated,
		ZoomUserID: "KDcuGIm1QgePTO8WbOqwIQ", HTTPStatus: 201, Attempt: 1, StreamSequence: 42}
	for _, r := range []Result{
		base,
		{},
		{RequestID: odd, Action: odd, Email: odd, Outcome: Outcome(odd), ZoomUserID: odd, HTTPStatus: -1, ZoomCode: 1 << 40,
			ZoomMessage: odd, Reason: Reason(odd), RetryAt: odd, Attempt: -7, StreamSequence: 1<<64 - 1, ReplayOf: odd},
		{RequestID: "r", Outcome: OutcomeDeferred, RetryAt: "2026-11-29T00:00:00Z", ReplayOf: "orig"},
	} {
		e := NewEvent(r, now)
		checkEventMarshal(t, e)
		e.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
		checkEventMarshal(t, e)
		e.TraceParent, e.SpecVersion, e.Source, e.Type, e.Subject, e.Time, e.DataContentType = odd, odd, odd, odd, odd, odd, odd
		checkEventMarshal(t, e)
	}
}

func FuzzEventMarshal(f *testing.F) {
	f.Add("hris-42", "alice@example.com", "User already in the account: a@b.c <x> & \"y\"", "", 409, 1005, uint64(7))
	f.Add("\xff\u2028\x00", "", "\\", "tp", -1, 0, uint64(0))
	f.Fuzz(func(t *testing.T, id, email, msg, tp string, status, code int, seq uint64) {
		e := NewEvent(Result{RequestID: id, Action: "create", Email: email, Outcome: OutcomeFailed, HTTPStatus: status,
			ZoomCode: code, ZoomMessage: msg, Reason: ReasonZoomRejected, StreamSequence: seq, ReplayOf: tp}, time.Unix(0, 0))
		e.TraceParent = tp
		checkEventMarshal(t, e)
	})
}
