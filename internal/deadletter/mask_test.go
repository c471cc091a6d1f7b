package deadletter_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/zoomprov/consumer/internal/deadletter"
)

// Ensure MaskBody never shows a password, wherever it is and whatever
// shape the body is in, and keeps everything else.
func TestMaskBody(t *testing.T) {
	const secret = "Sup3r-s3cret"
	tests := []struct {
		name   string
		body   string
		wantOK bool
		want   []string // substrings of the output
	}{
		{name: "object", wantOK: true,
			body: `{"action":"autoCreate","user_info":{"email":"a@example.com","type":1,"password":"` + secret + `"}}`,
			want: []string{`"password": "********"`, `"email": "a@example.com"`, "\n  \"user_info\": {"}},
		{name: "user_info as a string", wantOK: true,
			body: `{"action":"autoCreate","user_info":"{\"email\":\"a@example.com\",\"type\":1,\"password\":\"` + secret + `\"}"}`,
			want: []string{`\"password\":\"********\"`, `a@example.com`}},
		{name: "escaped quote in the password", wantOK: true,
			body: `{"user_info":{"password":"ab\"` + secret + `\\"}}`, want: []string{`"password": "********"`}},
		{name: "other letter case and spaces", wantOK: true,
			body: `{"user_info":{"PassWord" :  "` + secret + `"}}`, want: []string{`"PassWord": "********"`}},
		{name: "duplicate key", wantOK: true,
			body: `{"user_info":{"password":"x","password":"` + secret + `"}}`, want: []string{`"password": "********"`}},
		{name: "not a string", wantOK: true,
			body: `{"user_info":{"password":{"v":"` + secret + `"},"type":1}}`, want: []string{`"password": "********"`, `"type": 1`}},
		{name: "a number", wantOK: true,
			body: `{"user_info":{"password":12345678,"type":1}}`, want: []string{`"password": "********"`}},
		{name: "truncated in the password", wantOK: false,
			body: `{"action":"autoCreate","user_info":{"password":"` + secret, want: []string{`"password":"********"`}},
		{name: "truncated inside a string user_info", wantOK: false,
			body: `{"user_info":"{\"password\":\"` + secret, want: []string{`password`}},
		{name: "invalid UTF-8", wantOK: false,
			body: "{\"user_info\":{\"password\":\"" + secret + "\",\"first_name\":\"\xff\"", want: []string{"\uFFFD"}},
		{name: "no password", wantOK: true,
			body: `{"action":"ssoCreate","user_info":{"email":"a@example.com","type":1}}`, want: []string{`"type": 1`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := deadletter.MaskBody([]byte(tc.body))
			if ok != tc.wantOK {
				t.Errorf("MaskBody(%q) ok = %v; want %v", tc.body, ok, tc.wantOK)
			}
			if strings.Contains(got, "s3cret") || strings.Contains(got, "12345678") {
				t.Errorf("MaskBody(%q) = %q; it shows the password", tc.body, got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("MaskBody(%q) = %q; want it to contain %q", tc.body, got, w)
				}
			}
			if ok && !json.Valid([]byte(got)) {
				t.Errorf("MaskBody(%q) = %q; not valid JSON", tc.body, got)
			}
		})
	}
}
