package testenv

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// Repeats counts the mutating calls (POST, PATCH, PUT, DELETE) Zoom
// received again for one user, the same call right after the same call:
// Retried after the earlier one failed or its answer never reached the
// client (what retrying is for), Duplicated after the earlier one was
// answered with success (2xx, 409 for a creation, 404 for a delete): a
// request applied twice. Counting the simulator's own log, not the result
// stream, which keeps one result per request id whatever happened.
type Repeats struct{ Retried, Duplicated int }

// Repeats returns the repeated calls for the user with email.
func (s *Simulator) Repeats(email string) Repeats {
	email = strings.ToLower(email)
	var calls []RecordedRequest
	for _, r := range s.Requests() {
		if callUser(r) == email {
			calls = append(calls, r)
		}
	}
	var out Repeats
	for i := 1; i < len(calls); i++ {
		prev, cur := calls[i-1], calls[i]
		if prev.Method != cur.Method || prev.Path != cur.Path || prev.Query != cur.Query || !bytes.Equal(prev.Body, cur.Body) {
			continue
		}
		if answeredSuccess(prev) {
			out.Duplicated++
		} else {
			out.Retried++
		}
	}
	return out
}

// callUser is the lower-cased e-mail a mutating call acts on, "" for any
// other call.
func callUser(r RecordedRequest) string {
	switch r.Method {
	case http.MethodPost:
		if r.Route != RouteCreateUser {
			return ""
		}
		var body struct {
			UserInfo json.RawMessage `json:"user_info"`
		}
		var info struct {
			Email string `json:"email"`
		}
		if json.Unmarshal(r.Body, &body) != nil {
			return ""
		}
		if json.Unmarshal(body.UserInfo, &info) != nil {
			var s string // user_info given as a JSON string
			if json.Unmarshal(body.UserInfo, &s) != nil || json.Unmarshal([]byte(s), &info) != nil {
				return ""
			}
		}
		return strings.ToLower(info.Email)
	case http.MethodPatch, http.MethodPut, http.MethodDelete:
		seg, ok := strings.CutPrefix(r.Path, "/v2/users/")
		if !ok {
			return ""
		}
		seg, _, _ = strings.Cut(seg, "/")
		e, err := url.PathUnescape(seg)
		if err != nil {
			return ""
		}
		return strings.ToLower(e)
	}
	return ""
}

// answeredSuccess reports whether the client got a success answer to r.
func answeredSuccess(r RecordedRequest) bool {
	switch {
	case r.Fault != "" || r.Status == 0:
		return false // a fault replaced the answer, or none was written
	case r.Status >= 200 && r.Status < 300:
		return true
	case r.Method == http.MethodPost && r.Status == http.StatusConflict:
		return true
	case r.Method == http.MethodDelete && r.Status == http.StatusNotFound:
		return true
	}
	return false
}
