package testenv

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestTokenExpiresIn checks what each ExpiresIn variant puts in the token
// answer, and that the tokens still expire after TokenTTL.
func TestTokenExpiresIn(t *testing.T) {
	const ttl = 30 * time.Second
	tests := []struct {
		name    string
		mode    ExpiresIn
		present bool
		want    string // the raw expires_in value when present
	}{
		{name: "ttl", mode: ExpiresInTTL, present: true, want: "30"},
		{name: "omitted", mode: ExpiresInOmitted},
		{name: "zero", mode: ExpiresInZero, present: true, want: "0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newTestClock(epoch)
			s := startSim(t, SimConfig{Now: clk.Now, TokenTTL: ttl, TokenExpiresIn: tc.mode})
			c := newClient(t, 5*time.Second)
			req, err := http.NewRequest(http.MethodPost, s.TokenURL(), bytes.NewReader(tokenForm(DefaultSimAccountID)))
			if err != nil {
				t.Fatal(err)
			}
			req.SetBasicAuth(DefaultSimClientID, DefaultSimClientSecret)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("token request: %v", err)
			}
			defer resp.Body.Close()
			var body map[string]json.RawMessage
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("token request = %d, %v; want 200 and JSON", resp.StatusCode, err)
			}
			got, present := body["expires_in"]
			if present != tc.present || (present && string(got) != tc.want) {
				t.Errorf("token answer expires_in = %s (present %v); want %s (present %v)", got, present, tc.want, tc.present)
			}
			for _, k := range []string{"access_token", "token_type", "scope", "api_url"} {
				if _, ok := body[k]; !ok {
					t.Errorf("token answer has no %q: %v", k, body)
				}
			}
			var tok string
			if err := json.Unmarshal(body["access_token"], &tok); err != nil || tok == "" {
				t.Fatalf("access_token = %s; want a string", body["access_token"])
			}
			auth := "Bearer " + tok
			clk.Advance(ttl - time.Nanosecond)
			if r := mustSend(t, c, "GET", emailURL(s, "x@example.com"), auth, "", nil); r.status != http.StatusOK {
				t.Errorf("GET just before the TTL = %d %s; want 200", r.status, r.body)
			}
			clk.Advance(time.Nanosecond)
			r := mustSend(t, c, "GET", emailURL(s, "x@example.com"), auth, "", nil)
			if r.status != http.StatusUnauthorized || !strings.Contains(string(r.body), "expired") {
				t.Errorf("GET at the TTL = %d %s; want 401 Access token is expired", r.status, r.body)
			}
		})
	}
}
