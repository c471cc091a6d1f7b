package messages

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestOutcomeTerminal(t *testing.T) {
	tests := []struct {
		in   Outcome
		want bool
	}{
		{OutcomeCreated, true},
		{OutcomeExists, true},
		{OutcomeFailed, true},
		{OutcomeDeferred, false},
		{"", false},
		{"unknown", false},
	}
	for _, tc := range tests {
		if got := tc.in.Terminal(); got != tc.want {
			t.Errorf("Outcome(%q).Terminal() = %t; want %t", tc.in, got, tc.want)
		}
	}
}

func TestEventID(t *testing.T) {
	tests := []struct {
		requestID string
		outcome   Outcome
		attempt   int
		want      string
	}{
		{"req-1", OutcomeCreated, 1, "req-1:result"},
		{"req-1", OutcomeExists, 3, "req-1:result"},
		{"req-1", OutcomeFailed, 0, "req-1:result"},
		{"req-1", OutcomeDeferred, 1, "req-1:deferred:1"},
		{"req-1", OutcomeDeferred, 12, "req-1:deferred:12"},
	}
	for _, tc := range tests {
		if got := EventID(tc.requestID, tc.outcome, tc.attempt); got != tc.want {
			t.Errorf("EventID(%q, %q, %d) = %q; want %q", tc.requestID, tc.outcome, tc.attempt, got, tc.want)
		}
	}
}

// fixedEvent is the event of the golden tests.
func fixedEvent() Event {
	now := time.Date(2026, 3, 1, 9, 30, 0, 123456789, time.FixedZone("CET", 3600))
	return NewEvent(Result{
		RequestID:      "01HZX3J9Q7",
		Action:         "autoCreate",
		Email:          "alice@example.com",
		Outcome:        OutcomeDeferred,
		HTTPStatus:     429,
		ZoomCode:       429,
		ZoomMessage:    "You have exceeded the daily rate limit <1500> & more",
		RetryAt:        "2026-03-02T00:00:00Z",
		Attempt:        2,
		StreamSequence: 42,
	}, now)
}

func TestNewEventGolden(t *testing.T) {
	got, err := fixedEvent().Marshal()
	if err != nil {
		t.Fatalf("Marshal() error = %v", err)
	}
	const want = `{"specversion":"1.0","id":"01HZX3J9Q7:deferred:2","source":"zoom-provisioner",` +
		`"type":"zoom.user.provisioning.deferred","subject":"01HZX3J9Q7","time":"2026-03-01T08:30:00.123456789Z",` +
		`"datacontenttype":"application/json","dataschema":"https://zoomprov.github.io/consumer/schemas/v1/result.schema.json",` +
		`"data":{"request_id":"01HZX3J9Q7","action":"autoCreate",` +
		`"email":"alice@example.com","outcome":"deferred","zoom_user_id":"","http_status":429,"zoom_code":429,` +
		`"zoom_message":"You have exceeded the daily rate limit <1500> & more","reason":"","retry_at":"2026-03-02T00:00:00Z",` +
		`"attempt":2,"stream_sequence":42}}`
	if string(got) != want {
		t.Errorf("Marshal() =\n%s\nwant\n%s", got, want)
	}
}

// TestEventKeys checks the contract's field set: every key is present even
// when its value is zero, and replay_of only when set.
func TestEventKeys(t *testing.T) {
	eventKeys := []string{"data", "datacontenttype", "dataschema", "id", "source", "specversion", "subject", "time", "type"}
	dataKeys := []string{"action", "attempt", "email", "http_status", "outcome", "reason", "request_id",
		"retry_at", "stream_sequence", "zoom_code", "zoom_message", "zoom_user_id"}

	tests := []struct {
		name      string
		event     Event
		wantEvent []string
		wantData  []string
	}{
		{"zero result", NewEvent(Result{}, time.Unix(0, 0)), eventKeys, dataKeys},
		{"fixed", fixedEvent(), eventKeys, dataKeys},
		{
			name: "replayed with trace",
			event: func() Event {
				e := NewEvent(Result{RequestID: "r2", Outcome: OutcomeCreated, ReplayOf: "r1"}, time.Unix(0, 0))
				e.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
				return e
			}(),
			wantEvent: append(slices.Clone(eventKeys), "traceparent"),
			wantData:  append(slices.Clone(dataKeys), "replay_of"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.event.Marshal()
			if err != nil {
				t.Fatalf("Marshal() error = %v", err)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("Marshal() = %s, not a JSON object: %v", b, err)
			}
			var data map[string]json.RawMessage
			if err := json.Unmarshal(m["data"], &data); err != nil {
				t.Fatalf("Marshal() data = %s, not a JSON object: %v", m["data"], err)
			}
			if got, want := sortedKeys(m), sorted(tc.wantEvent); !slices.Equal(got, want) {
				t.Errorf("Marshal() event keys = %q; want %q", got, want)
			}
			if got, want := sortedKeys(data), sorted(tc.wantData); !slices.Equal(got, want) {
				t.Errorf("Marshal() data keys = %q; want %q", got, want)
			}
		})
	}
}

func sortedKeys(m map[string]json.RawMessage) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	return sorted(keys)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestNewEvent(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, o := range []Outcome{OutcomeCreated, OutcomeExists, OutcomeFailed, OutcomeDeferred} {
		r := Result{RequestID: "id", Outcome: o, Attempt: 1}
		e := NewEvent(r, now)
		want := Event{
			SpecVersion: "1.0", ID: EventID("id", o, 1), Source: "zoom-provisioner",
			Type: "zoom.user.provisioning." + string(o), Subject: "id", Time: "2026-01-02T03:04:05Z",
			DataContentType: "application/json",
			DataSchema:      "https://zoomprov.github.io/consumer/schemas/v1/result.schema.json", Data: r,
		}
		if !reflect.DeepEqual(e, want) {
			t.Errorf("NewEvent(%+v) = %+v; want %+v", r, e, want)
		}
	}
}

func TestDecodeEventRoundTrip(t *testing.T) {
	events := []Event{fixedEvent(), NewEvent(Result{RequestID: "x", Outcome: OutcomeFailed, Reason: ReasonZoomRejected, ReplayOf: "w"}, time.Now())}
	events[1].TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, e := range events {
		b, err := e.Marshal()
		if err != nil {
			t.Fatalf("Marshal() error = %v", err)
		}
		got, err := DecodeEvent(b)
		if err != nil {
			t.Fatalf("DecodeEvent(%s) error = %v", b, err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Errorf("DecodeEvent(%s) = %+v; want %+v", b, got, e)
		}
	}
}

func TestDecodeEventErrors(t *testing.T) {
	valid, err := fixedEvent().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"garbage", "not json"},
		{"array", "[]"},
		{"wrong version", strings.Replace(string(valid), `"1.0"`, `"0.3"`, 1)},
		{"no id", strings.Replace(string(valid), `"id":"01HZX3J9Q7:deferred:2"`, `"id":""`, 1)},
		{"no type", `{"specversion":"1.0","id":"a","source":"s"}`},
		{"mistyped data", `{"specversion":"1.0","id":"a","source":"s","type":"t","data":{"attempt":"1"}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeEvent([]byte(tc.in)); err == nil {
				t.Errorf("DecodeEvent(%q) error = nil; want an error", tc.in)
			}
		})
	}
	// Extension attributes are allowed.
	ext := `{"specversion":"1.0","id":"a","source":"s","type":"t","partitionkey":"p"}`
	if _, err := DecodeEvent([]byte(ext)); err != nil {
		t.Errorf("DecodeEvent(%q) = %v; want nil", ext, err)
	}
}
