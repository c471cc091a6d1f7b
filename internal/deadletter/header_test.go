package deadletter

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/zoomprov/consumer/internal/messages"
)

func TestHeaders(t *testing.T) {
	d := Header{
		Reason:           messages.ReasonZoomRejected,
		HTTPStatus:       400,
		ZoomCode:         1107,
		ZoomMessage:      "Email domain is blocked",
		OriginalSubject:  "zoom.users.create.create",
		OriginalSequence: 18446744073709551615,
		RequestID:        "req-9",
		Deliveries:       3,
		DeadLetteredAt:   time.Date(2026, 3, 1, 10, 0, 0, 0, time.FixedZone("CET", 3600)),
	}
	want := map[string]string{
		"Zoom-Provisioning-Reason": "zoom_rejected",
		"Zoom-Http-Status":         "400",
		"Zoom-Error-Code":          "1107",
		"Zoom-Error-Message":       "Email domain is blocked",
		"Original-Subject":         "zoom.users.create.create",
		"Original-Sequence":        "18446744073709551615",
		"Request-Id":               "req-9",
		"Deliveries":               "3",
		"Dead-Lettered-At":         "2026-03-01T09:00:00Z",
	}
	if got := d.Headers(); !maps.Equal(got, want) {
		t.Errorf("Headers() = %q; want %q", got, want)
	}
	zero := Header{}.Headers()
	if got, want := slices.Sorted(maps.Keys(zero)), slices.Sorted(maps.Keys(want)); !slices.Equal(got, want) {
		t.Errorf("Header{}.Headers() keys = %q; want all nine %q", got, want)
	}
}

func TestHeadersSanitise(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want string
	}{
		{"CRLF", "bad\r\nInjected: yes", "bad  Injected: yes"},
		{"tab and NUL", "\ta\x00b ", "a b"},
		{"invalid UTF-8", "a\xffb", "a\uFFFDb"},
		{"long", strings.Repeat("x", 600), strings.Repeat("x", 512)},
		{"long multibyte", strings.Repeat("é", 300), strings.Repeat("é", 256)},
		{"cut inside a character", "x" + strings.Repeat("界", 200), "x" + strings.Repeat("界", 170)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Header{ZoomMessage: tc.msg}.Headers()[HeaderErrorMessage]
			if got != tc.want {
				t.Errorf("Headers()[%s] for %q = %q; want %q", HeaderErrorMessage, tc.msg, got, tc.want)
			}
			if len(got) > 512 || !utf8.ValidString(got) || strings.ContainsAny(got, "\r\n") {
				t.Errorf("Headers()[%s] = %q; want at most 512 bytes of UTF-8 without CR or LF", HeaderErrorMessage, got)
			}
		})
	}
	h := Header{RequestID: "a\r\nb", OriginalSubject: "s\n"}.Headers()
	if h[HeaderRequestID] != "a  b" || h[HeaderOriginalSubject] != "s" {
		t.Errorf("Headers() = %q; want CR and LF replaced in every value", h)
	}
}

// toNATS turns Headers into the map[string][]string shape of nats.Header.
func toNATS(h map[string]string) map[string][]string {
	out := make(map[string][]string, len(h))
	for k, v := range h {
		out[k] = []string{v}
	}
	return out
}

func TestParseRoundTrip(t *testing.T) {
	for _, d := range []Header{
		{
			Reason: messages.ReasonRetriesExhausted, HTTPStatus: 503, ZoomCode: 0, ZoomMessage: "Service Unavailable",
			OriginalSubject: "zoom.users.create.autoCreate", OriginalSequence: 7, RequestID: "r-1", Deliveries: 5,
			DeadLetteredAt: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC),
		},
		{
			Reason: messages.ReasonInvalidRequest, ZoomMessage: "messages: invalid request: user_info.type: must be one of 1, 2, 4, 99",
			OriginalSubject: "zoom.users.create.create", OriginalSequence: 1, RequestID: "r-2", Deliveries: 1,
			DeadLetteredAt: time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC),
		},
		{
			Reason: messages.ReasonZoomRejected, HTTPStatus: 400, ZoomCode: 300, OriginalSubject: "zoom.users.create.autoCreate", OriginalSequence: 9,
			RequestID: "r-3", Deliveries: 1, DeadLetteredAt: time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC),
			Password: PasswordSealed, SealKey: "a1b2c3d4",
		},
		{
			Reason: messages.ReasonZoomRejected, HTTPStatus: 400, ZoomCode: 300, OriginalSubject: "zoom.users.create.autoCreate", OriginalSequence: 10,
			RequestID: "r-4", Deliveries: 1, DeadLetteredAt: time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC),
			Password: PasswordRedacted,
		},
	} {
		h := toNATS(d.Headers())
		got, err := Parse(h)
		if err != nil {
			t.Fatalf("Parse(%q) error = %v", h, err)
		}
		if !reflect.DeepEqual(got, d) {
			t.Errorf("Parse(%q) = %+v; want %+v", h, got, d)
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      map[string][]string
		want    Header
		wantErr bool
	}{
		{
			name: "only the reason",
			in:   map[string][]string{HeaderReason: {"not_found"}},
			want: Header{Reason: messages.ReasonNotFound},
		},
		{
			name: "empty optional values",
			in:   map[string][]string{HeaderReason: {"not_found"}, HeaderHTTPStatus: {""}, HeaderDeadLetteredAt: {}},
			want: Header{Reason: messages.ReasonNotFound},
		},
		{
			name: "names in another case, first value wins",
			in: map[string][]string{
				"zoom-provisioning-reason": {"zoom_rejected", "ignored"},
				"ZOOM-HTTP-STATUS":         {"409"},
				"original-sequence":        {"12"},
			},
			want: Header{Reason: messages.ReasonZoomRejected, HTTPStatus: 409, OriginalSequence: 12},
		},
		{name: "no reason", in: map[string][]string{HeaderHTTPStatus: {"400"}}, wantErr: true},
		{name: "nil", in: nil, wantErr: true},
		{name: "malformed status", in: map[string][]string{HeaderReason: {"x"}, HeaderHTTPStatus: {"four hundred"}}, wantErr: true},
		{name: "malformed code", in: map[string][]string{HeaderReason: {"x"}, HeaderErrorCode: {"1.5"}}, wantErr: true},
		{name: "malformed deliveries", in: map[string][]string{HeaderReason: {"x"}, HeaderDeliveries: {"3 "}}, wantErr: true},
		{name: "negative sequence", in: map[string][]string{HeaderReason: {"x"}, HeaderOriginalSequence: {"-1"}}, wantErr: true},
		{name: "malformed time", in: map[string][]string{HeaderReason: {"x"}, HeaderDeadLetteredAt: {"yesterday"}}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Errorf("Parse(%q) = %+v, nil; want an error", tc.in, got)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse(%q) = %+v, %v; want %+v, nil", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestMsgID(t *testing.T) {
	if got, want := MsgID("req-1"), "dlq-req-1"; got != want {
		t.Errorf("MsgID(%q) = %q; want %q", "req-1", got, want)
	}
}
