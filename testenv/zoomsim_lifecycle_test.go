package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// lifecycle bundles a simulator, a client and a token for the lifecycle
// tests.
type lifecycle struct {
	t    *testing.T
	s    *Simulator
	c    *http.Client
	auth string
}

func newLifecycle(t *testing.T, cfg SimConfig) *lifecycle {
	t.Helper()
	s := startSim(t, cfg)
	c := newClient(t, 5*time.Second)
	return &lifecycle{t: t, s: s, c: c, auth: getToken(t, c, s)}
}

func (l *lifecycle) patch(user, body string) result {
	l.t.Helper()
	return mustSend(l.t, l.c, http.MethodPatch, userURL(l.s, user), l.auth, "application/json", []byte(body))
}

func (l *lifecycle) status(user, action string) result {
	l.t.Helper()
	return mustSend(l.t, l.c, http.MethodPut, userURL(l.s, user)+"/status", l.auth, "application/json",
		[]byte(`{"action":"`+action+`"}`))
}

func (l *lifecycle) del(user, query string) result {
	l.t.Helper()
	u := userURL(l.s, user)
	if query != "" {
		u += "?" + query
	}
	return mustSend(l.t, l.c, http.MethodDelete, u, l.auth, "", nil)
}

// user returns the stored user, failing if it is missing.
func (l *lifecycle) user(email string) SimUser {
	l.t.Helper()
	u, ok := l.s.User(email)
	if !ok {
		l.t.Fatalf("User(%q) missing", email)
	}
	return u
}

// anyBody is wantStatus's code for a success whose body is not checked.
const anyBody = -1

// wantStatus fails unless r has status and, for an error, Zoom's code; a
// success with code 0 must have no body.
func wantStatus(t *testing.T, what string, r result, status, code int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s = %d %s; want %d", what, r.status, r.body, status)
	}
	switch {
	case status >= 400:
		if got := r.zoomErr(t).Code; got != code {
			t.Fatalf("%s code = %d (%s); want %d", what, got, r.body, code)
		}
	case code == 0 && len(r.body) != 0:
		t.Fatalf("%s body = %q; want none", what, r.body)
	}
}

func TestPatchUser(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantCode   int
		wantFields []string
		wantMsg    string
		check      func(t *testing.T, u SimUser)
	}{
		{
			name:       "profile fields",
			body:       `{"first_name":"Ann","last_name":"Lee","display_name":"Ann L","dept":"R&D","job_title":"CTO","company":"Ex","location":"SJ","cost_center":"CC","manager":"m@example.com","timezone":"Europe/Paris","language":"fr-FR","pronouns":"she/her","unknown_field":1}`,
			wantStatus: 204,
			check: func(t *testing.T, u SimUser) {
				got := []string{u.FirstName, u.LastName, u.DisplayName, u.Dept, u.JobTitle, u.Company, u.Location, u.CostCenter, u.Manager, u.Timezone, u.Language, u.Pronouns}
				want := []string{"Ann", "Lee", "Ann L", "R&D", "CTO", "Ex", "SJ", "CC", "m@example.com", "Europe/Paris", "fr-FR", "she/her"}
				if !slices.Equal(got, want) {
					t.Errorf("profile after PATCH = %q; want %q", got, want)
				}
				if u.Type != 2 {
					t.Errorf("Type after a PATCH without type = %d; want 2 unchanged", u.Type)
				}
			},
		},
		{
			name: "null leaves a field alone", body: `{"first_name":null,"dept":"x"}`, wantStatus: 204,
			check: func(t *testing.T, u SimUser) {
				if u.FirstName != "Ada" || u.Dept != "x" {
					t.Errorf("FirstName, Dept = %q, %q; want Ada, x", u.FirstName, u.Dept)
				}
			},
		},
		{
			name: "type", body: `{"type":1}`, wantStatus: 204,
			check: func(t *testing.T, u SimUser) {
				if u.Type != 1 {
					t.Errorf("Type = %d; want 1", u.Type)
				}
			},
		},
		{
			name: "zoom_one_type beyond 2^53", body: `{"zoom_one_type":576460752303423488}`, wantStatus: 204,
			check: func(t *testing.T, u SimUser) {
				if u.ZoomOneType != 576460752303423488 {
					t.Errorf("ZoomOneType = %d; want 576460752303423488", u.ZoomOneType)
				}
			},
		},
		{
			name: "plan_united_type", body: `{"plan_united_type":"16384"}`, wantStatus: 204,
			check: func(t *testing.T, u SimUser) {
				if u.PlanUnitedType != "16384" {
					t.Errorf("PlanUnitedType = %q; want 16384", u.PlanUnitedType)
				}
			},
		},
		{
			name: "custom attributes", body: `{"custom_attributes":[{"key":"k1","name":"A","value":"1"},{"key":"k2","value":"2"}]}`, wantStatus: 204,
			check: func(t *testing.T, u SimUser) {
				want := []SimCustomAttribute{{"k1", "A", "1"}, {"k2", "", "2"}}
				if !reflect.DeepEqual(u.CustomAttributes, want) {
					t.Errorf("CustomAttributes = %+v; want %+v", u.CustomAttributes, want)
				}
			},
		},
		{name: "type and plan_united_type", body: `{"type":2,"plan_united_type":"1"}`, wantStatus: 400, wantCode: 300, wantMsg: `You can't change the "type" or "plan_united_type" or "zoom_one_type" at the same time.`},
		{name: "type and zoom_one_type", body: `{"type":2,"zoom_one_type":16}`, wantStatus: 400, wantCode: 300, wantMsg: `You can't change the "type" or "plan_united_type" or "zoom_one_type" at the same time.`},
		{name: "plan_united_type and zoom_one_type", body: `{"plan_united_type":"1","zoom_one_type":16}`, wantStatus: 400, wantCode: 300, wantMsg: `You can't change the "type" or "plan_united_type" or "zoom_one_type" at the same time.`},
		{name: "type 3", body: `{"type":3}`, wantStatus: 400, wantCode: 300, wantMsg: "Your account can't set user type as On-prem."},
		{name: "type 7", body: `{"type":7}`, wantStatus: 400, wantCode: 300, wantFields: []string{"type"}},
		{name: "type 99", body: `{"type":99}`, wantStatus: 400, wantCode: 300, wantFields: []string{"type"}},
		{name: "type as a string", body: `{"type":"2"}`, wantStatus: 400, wantCode: 300, wantFields: []string{"type"}},
		{name: "zoom_phone as a string", body: `{"feature":{"zoom_phone":"yes"}}`, wantStatus: 400, wantCode: 300, wantFields: []string{"feature.zoom_phone"}},
		{name: "plan_united_type not in the enum", body: `{"plan_united_type":"3"}`, wantStatus: 400, wantCode: 300, wantMsg: `The value provided for "plan_united_type" parameter is invalid. Try again with a valid value.`},
		{name: "negative zoom_one_type", body: `{"zoom_one_type":-1}`, wantStatus: 400, wantCode: 300, wantFields: []string{"zoom_one_type"}},
		{
			name: "lengths", wantStatus: 400, wantCode: 300,
			body:       `{"first_name":"` + strings.Repeat("é", 65) + `","display_name":"` + strings.Repeat("x", 129) + `","company":"` + strings.Repeat("x", 256) + `"}`,
			wantFields: []string{"first_name", "display_name", "company"},
		},
		{name: "six custom attributes", body: `{"custom_attributes":[{},{},{},{},{},{}]}`, wantStatus: 400, wantCode: 300, wantFields: []string{"custom_attributes"}},
		{name: "not JSON", body: `dept=x`, wantStatus: 400, wantCode: 300, wantMsg: "Request Body should be a valid JSON object."},
		{name: "an array", body: `[{"dept":"x"}]`, wantStatus: 400, wantCode: 300, wantMsg: "Request Body should be a valid JSON object."},
		{name: "empty body", body: ``, wantStatus: 400, wantCode: 300, wantMsg: "Request Body should be a valid JSON object."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLifecycle(t, SimConfig{})
			mustSend(t, l.c, "POST", l.s.APIURL()+"/users", l.auth, "application/json", createJSON("ssoCreate", "ann@example.com", 2))
			before := l.user("ann@example.com")
			r := l.patch("Ann@Example.com", tc.body)
			wantStatus(t, "PATCH "+tc.body, r, tc.wantStatus, tc.wantCode)
			after := l.user("ann@example.com")
			if tc.wantStatus != 204 {
				if tc.wantMsg != "" && r.zoomErr(t).Message != tc.wantMsg {
					t.Errorf("PATCH %s message = %q; want %q", tc.body, r.zoomErr(t).Message, tc.wantMsg)
				}
				if tc.wantFields != nil && !slices.Equal(r.fields(), tc.wantFields) {
					t.Errorf("PATCH %s fields = %q; want %q", tc.body, r.fields(), tc.wantFields)
				}
				if !reflect.DeepEqual(after, before) {
					t.Errorf("User after a refused PATCH = %+v; want %+v unchanged", after, before)
				}
				if h := l.s.History("ann@example.com"); len(h) != 1 {
					t.Errorf("History after a refused PATCH = %+v; want only the creation", h)
				}
				return
			}
			if string(after.LastPatch) != tc.body {
				t.Errorf("LastPatch = %q; want %q", after.LastPatch, tc.body)
			}
			tc.check(t, after)
		})
	}
}

func TestPatchUserAddressing(t *testing.T) {
	l := newLifecycle(t, SimConfig{})
	id := l.s.AddUser("Bea@Example.com", 1)
	wantStatus(t, "PATCH by id", l.patch(id, `{"dept":"a"}`), 204, 0)
	wantStatus(t, "PATCH by email in another case", l.patch("bea@EXAMPLE.com", `{"job_title":"b"}`), 204, 0)
	if u := l.user("bea@example.com"); u.Dept != "a" || u.JobTitle != "b" {
		t.Errorf("User = %+v; want dept a and job title b", u)
	}
	r := l.patch("nobody@example.com", `{"dept":"a"}`)
	wantStatus(t, "PATCH of a missing user", r, 404, 1001)
	if msg := r.zoomErr(t).Message; msg != "User does not exist: nobody@example.com." {
		t.Errorf("404 message = %q; want Zoom's", msg)
	}
	// The content type must be JSON, as for POST /users.
	r = mustSend(t, l.c, http.MethodPatch, userURL(l.s, id), l.auth, "text/plain", []byte(`{"dept":"x"}`))
	wantStatus(t, "PATCH as text/plain", r, 400, 300)
}

func TestPatchUserZoomPhone(t *testing.T) {
	l := newLifecycle(t, SimConfig{PhoneLicenses: 1})
	l.s.AddUser("a@example.com", 2)
	l.s.AddUser("b@example.com", 2)
	wantStatus(t, "enable phone for a", l.patch("a@example.com", `{"feature":{"zoom_phone":true}}`), 204, 0)
	wantStatus(t, "enable phone for b, none left", l.patch("b@example.com", `{"feature":{"zoom_phone":true}}`), 404, 1102)
	wantStatus(t, "disable phone for a", l.patch("a@example.com", `{"feature":{"zoom_phone":false}}`), 204, 0)
	wantStatus(t, "enable phone for b with a's licence", l.patch("b@example.com", `{"feature":{"zoom_phone":true}}`), 204, 0)
	if a, b := l.user("a@example.com"), l.user("b@example.com"); a.ZoomPhone || !b.ZoomPhone {
		t.Errorf("ZoomPhone of a, b = %v, %v; want false, true", a.ZoomPhone, b.ZoomPhone)
	}
	wantStatus(t, "plan none", l.patch("a@example.com", `{"plan_united_type":"1"}`), 204, 0)
	wantStatus(t, "plan none", l.patch("a@example.com", `{"plan_united_type":"none"}`), 204, 0)
	if u := l.user("a@example.com"); u.PlanUnitedType != "" {
		t.Errorf("PlanUnitedType after none = %q; want empty", u.PlanUnitedType)
	}
}

func TestUserStatus(t *testing.T) {
	t.Run("deactivate removes every licence, activate restores none", func(t *testing.T) {
		l := newLifecycle(t, SimConfig{PhoneLicenses: 1})
		l.s.AddUser("a@example.com", 2)
		wantStatus(t, "PATCH plan", l.patch("a@example.com", `{"zoom_one_type":16}`), 204, 0)
		wantStatus(t, "PATCH phone", l.patch("a@example.com", `{"feature":{"zoom_phone":true}}`), 204, 0)
		wantStatus(t, "deactivate", l.status("A@example.com", "deactivate"), 200, 0)
		u := l.user("a@example.com")
		if u.Status != "inactive" || u.Type != 1 || u.ZoomOneType != 0 || u.ZoomPhone || u.PlanUnitedType != "" {
			t.Errorf("User after deactivate = %+v; want inactive, type 1, no plan, no phone", u)
		}
		wantStatus(t, "deactivate again", l.status("a@example.com", "deactivate"), 200, 0)
		wantStatus(t, "activate", l.status("a@example.com", "activate"), 200, 0)
		if u := l.user("a@example.com"); u.Status != "active" || u.Type != 1 || u.ZoomOneType != 0 || u.ZoomPhone {
			t.Errorf("User after activate = %+v; want active and still type 1 without licences", u)
		}
		// The phone licence went back to the pool.
		l.s.AddUser("b@example.com", 2)
		wantStatus(t, "phone for b", l.patch("b@example.com", `{"feature":{"zoom_phone":true}}`), 204, 0)
		// A rehire is activate, then an update of the licence.
		wantStatus(t, "licence", l.patch("a@example.com", `{"type":2}`), 204, 0)
		if u := l.user("a@example.com"); u.Type != 2 {
			t.Errorf("Type after rehire = %d; want 2", u.Type)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		l := newLifecycle(t, SimConfig{})
		id := l.s.AddUser("a@example.com", 2)
		l.s.AddUser("admin@example.com", 2)
		if !l.s.SetAdmin("ADMIN@example.com", true) || l.s.SetAdmin("none@example.com", true) {
			t.Fatalf("SetAdmin reports the wrong existence")
		}
		mustCreate(t, l.c, l.s, l.auth, "create", "pending@example.com")
		put := func(user, ct, body string) result {
			return mustSend(t, l.c, http.MethodPut, userURL(l.s, user)+"/status", l.auth, ct, []byte(body))
		}
		tests := []struct {
			name         string
			r            result
			status, code int
			fields       []string
		}{
			{"missing user", l.status("none@example.com", "deactivate"), 404, 1001, nil},
			{"clock_in", l.status(id, "clock_in"), 400, 300, []string{"action"}},
			{"unknown action", l.status(id, "suspend"), 400, 300, []string{"action"}},
			{"missing action", put(id, "application/json", `{}`), 400, 300, []string{"action"}},
			{"action not a string", put(id, "application/json", `{"action":1}`), 400, 300, []string{"action"}},
			{"bad JSON", put(id, "application/json", `{"action":`), 400, 300, nil},
			{"not JSON content", put(id, "text/plain", `{"action":"deactivate"}`), 400, 300, nil},
			{"admin", l.status("admin@example.com", "deactivate"), 400, 200, nil},
			{"pending", l.status("pending@example.com", "deactivate"), 400, 1120, nil},
			{"pending activate", l.status("pending@example.com", "activate"), 400, 1120, nil},
		}
		for _, tc := range tests {
			wantStatus(t, tc.name, tc.r, tc.status, tc.code)
			if tc.fields != nil && !slices.Equal(tc.r.fields(), tc.fields) {
				t.Errorf("%s fields = %q; want %q", tc.name, tc.r.fields(), tc.fields)
			}
		}
		if u := l.user("a@example.com"); u.Status != "active" || u.Type != 2 {
			t.Errorf("User after refused calls = %+v; want active type 2", u)
		}
		if got := l.s.Stats().Requests[RouteUserStatus]; got[400] != 9 || got[404] != 1 {
			t.Errorf("Stats().Requests[RouteUserStatus] = %v; want 9 × 400 and 1 × 404", got)
		}
	})

	t.Run("StatusNoContent", func(t *testing.T) {
		l := newLifecycle(t, SimConfig{StatusNoContent: true})
		l.s.AddUser("a@example.com", 1)
		wantStatus(t, "deactivate", l.status("a@example.com", "deactivate"), 204, 0)
		if h := l.s.History("a@example.com"); len(h) != 1 || h[0].Status != 204 {
			t.Errorf("History = %+v; want one call answered 204", h)
		}
	})
}

func TestDeleteUser(t *testing.T) {
	t.Run("disassociate, then a redelivery", func(t *testing.T) {
		l := newLifecycle(t, SimConfig{})
		mustCreate(t, l.c, l.s, l.auth, "ssoCreate", "a@example.com")
		wantStatus(t, "DELETE", l.del("A@Example.com", ""), 204, 0)
		if _, ok := l.s.User("a@example.com"); ok {
			t.Errorf("User(a) still stored after DELETE")
		}
		wantStatus(t, "DELETE again", l.del("a@example.com", ""), 404, 1001)
		wantStatus(t, "GET after DELETE", mustSend(t, l.c, "GET", userURL(l.s, "a@example.com"), l.auth, "", nil), 404, 1001)
		d := l.s.Deletions("a@example.com")
		if len(d) != 1 || d[0].Action != "disassociate" || d[0].User.Email != "a@example.com" || d[0].TransferEmail != "" || d[0].Transferred != nil {
			t.Errorf("Deletions(a) = %+v; want one disassociation", d)
		}
		// Creations still counts the deleted user, and counts a re-creation.
		if r := mustCreate(t, l.c, l.s, l.auth, "ssoCreate", "a@example.com"); r.status != 201 {
			t.Fatalf("re-create = %d; want 201", r.status)
		}
		if got := l.s.Creations("a@example.com"); got != 2 {
			t.Errorf("Creations(a) after delete and re-create = %d; want 2", got)
		}
	})

	t.Run("by id, with transfers", func(t *testing.T) {
		l := newLifecycle(t, SimConfig{PhoneLicenses: 1})
		id := l.s.AddUser("a@example.com", 2)
		l.s.AddUser("b@example.com", 2)
		wantStatus(t, "phone for a", l.patch(id, `{"feature":{"zoom_phone":true}}`), 204, 0)
		const query = "action=delete&transfer_email=B%40example.com&transfer_meeting=true&transfer_webinar=false&transfer_recording=true&transfer_docs=true&transfer_visitors=false"
		r := l.del(id, query)
		wantStatus(t, "DELETE with transfers", r, 204, 0)
		d := l.s.Deletions("A@EXAMPLE.COM")
		if len(d) != 1 || d[0].Action != "delete" || d[0].TransferEmail != "B@example.com" ||
			!slices.Equal(d[0].Transferred, []string{"meeting", "recording", "docs"}) || d[0].User.ID != id {
			t.Errorf("Deletions(a) = %+v; want a deletion transferring meeting, recording and docs to B", d)
		}
		if h := l.s.History("a@example.com"); len(h) != 2 || h[1].Seq != d[0].Seq || h[1].Query != query {
			t.Errorf("History(a) = %+v; want the PATCH and the DELETE with its query", h)
		}
		// a's phone licence went back.
		wantStatus(t, "phone for b", l.patch("b@example.com", `{"feature":{"zoom_phone":true}}`), 204, 0)
	})

	t.Run("refusals", func(t *testing.T) {
		l := newLifecycle(t, SimConfig{ManagedDomains: []string{"Corp.Example"}})
		l.s.AddUser("m@corp.example", 2)
		l.s.AddUser("admin@example.com", 2)
		l.s.SetAdmin("admin@example.com", true)
		l.s.AddUser("u@example.com", 2)
		l.s.AddUser("x@other.example", 2)
		tests := []struct {
			name, user, query string
			status, code      int
			field, msg        string
		}{
			{"managed domain, disassociate by default", "m@corp.example", "", 400, 1107, "", "You can not disassociate a user with managed domain."},
			{"managed domain, disassociate", "M@CORP.example", "action=disassociate", 400, 1107, "", ""},
			{"admin", "admin@example.com", "", 400, 1117, "", "You can not disassociate an Admin user."},
			{"unknown action", "u@example.com", "action=remove", 400, 300, "action", ""},
			{"true flag without transfer_email", "u@example.com", "transfer_recording=true", 400, 300, "transfer_email", ""},
			{"transfer to a missing user", "u@example.com", "transfer_email=ghost%40example.com&transfer_meeting=true", 400, 300, "", "The destination user does not exist: ghost@example.com."},
			{"transfer to oneself", "u@example.com", "transfer_email=U%40example.com&transfer_meeting=true", 400, 300, "", "The transfer-to email address cannot be the same as the unlinked or deleted user's email address."},
			{"flag not a boolean", "u@example.com", "transfer_email=x%40other.example&transfer_notes=yes", 400, 300, "transfer_notes", ""},
			{"missing user", "ghost@example.com", "action=delete", 404, 1001, "", ""},
		}
		for _, tc := range tests {
			r := l.del(tc.user, tc.query)
			wantStatus(t, tc.name, r, tc.status, tc.code)
			if tc.field != "" && !slices.Equal(r.fields(), []string{tc.field}) {
				t.Errorf("%s fields = %q; want %q", tc.name, r.fields(), tc.field)
			}
			if tc.msg != "" && r.zoomErr(t).Message != tc.msg {
				t.Errorf("%s message = %q; want %q", tc.name, r.zoomErr(t).Message, tc.msg)
			}
		}
		for _, e := range []string{"m@corp.example", "admin@example.com", "u@example.com"} {
			if _, ok := l.s.User(e); !ok || len(l.s.Deletions(e)) != 0 {
				t.Errorf("User(%s) removed by a refused DELETE", e)
			}
		}
		// What Zoom does allow.
		wantStatus(t, "delete a managed-domain user", l.del("m@corp.example", "action=delete"), 204, 0)
		wantStatus(t, "delete an admin", l.del("admin@example.com", "action=delete"), 204, 0)
		wantStatus(t, "false flags need no transfer_email", l.del("u@example.com", "transfer_meeting=false"), 204, 0)
		l.s.SetManagedDomain("other.example", true)
		wantStatus(t, "SetManagedDomain", l.del("x@other.example", ""), 400, 1107)
		l.s.SetManagedDomain("OTHER.example", false)
		wantStatus(t, "SetManagedDomain off", l.del("x@other.example", ""), 204, 0)
		if st := l.s.Stats().Requests[RouteDeleteUser]; st[204] != 4 || st[400] != 9 || st[404] != 1 {
			t.Errorf("Stats().Requests[RouteDeleteUser] = %v; want 4 × 204, 9 × 400, 1 × 404", st)
		}
	})
}

// call is one state-changing request for TestOverlap.
type call struct {
	name string
	verb string // as the 429 names it
	send func(ctx context.Context, l *lifecycle, user string) (result, error)
}

func sendCtx(ctx context.Context, l *lifecycle, method, url, ct string, body string) (result, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return result{}, err
	}
	req.Header.Set("Authorization", l.auth)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := l.c.Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: b}, err
}

var overlapCalls = []call{
	{"create", "create", func(ctx context.Context, l *lifecycle, user string) (result, error) {
		return sendCtx(ctx, l, "POST", l.s.APIURL()+"/users", "application/json", string(createJSON("ssoCreate", user, 1)))
	}},
	{"update", "update", func(ctx context.Context, l *lifecycle, user string) (result, error) {
		return sendCtx(ctx, l, http.MethodPatch, userURL(l.s, user), "application/json", `{"dept":"x"}`)
	}},
	{"deactivate", "deactivate", func(ctx context.Context, l *lifecycle, user string) (result, error) {
		return sendCtx(ctx, l, http.MethodPut, userURL(l.s, user)+"/status", "application/json", `{"action":"deactivate"}`)
	}},
	{"activate", "activate", func(ctx context.Context, l *lifecycle, user string) (result, error) {
		return sendCtx(ctx, l, http.MethodPut, userURL(l.s, user)+"/status", "application/json", `{"action":"activate"}`)
	}},
	{"disassociate", "disassociate", func(ctx context.Context, l *lifecycle, user string) (result, error) {
		return sendCtx(ctx, l, http.MethodDelete, userURL(l.s, user), "", "")
	}},
	{"delete", "delete", func(ctx context.Context, l *lifecycle, user string) (result, error) {
		return sendCtx(ctx, l, http.MethodDelete, userURL(l.s, user)+"?action=delete", "", "")
	}},
}

// TestOverlap holds every pair of state-changing calls for one user, the
// first kept in service by a delay, to the 429 the second must get, and
// checks that the user is free again once the first has ended.
func TestOverlap(t *testing.T) {
	for _, first := range overlapCalls {
		for _, second := range overlapCalls {
			t.Run(first.name+" then "+second.name, func(t *testing.T) {
				l := newLifecycle(t, SimConfig{})
				id := ""
				if first.name != "create" {
					id = l.s.AddUser("Ann@example.com", 2)
				}
				// The first call is admitted, takes the user and waits.
				l.s.FailNext(1, Fault{Delay: time.Minute})
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() {
					_, err := first.send(ctx, l, "ann@example.com")
					done <- err
				}()
				waitFor(t, "the first call to be admitted", func() bool { return l.s.Stats().Faults[FaultDelay] == 1 })

				// The second names the user differently: by id when it
				// exists, in other case otherwise.
				target := "ANN@Example.com"
				if id != "" && second.name != "create" {
					target = id
				}
				// Another user is not held up.
				other, err := second.send(context.Background(), l, "zed@example.com")
				if err != nil || other.status == 429 {
					t.Errorf("%s for another user = %d, %v; want no 429", second.name, other.status, err)
				}
				l.s.FailNext(1, Fault{Status: 500}) // must not be used up by the refused call
				r, err := second.send(context.Background(), l, target)
				if err != nil {
					t.Fatalf("%s during %s: %v", second.name, first.name, err)
				}
				wantStatus(t, second.name+" during "+first.name, r, 429, 429)
				want := "Too many concurrent requests. A request to " + first.verb + " this user has already been made."
				if msg := r.zoomErr(t).Message; msg != want {
					t.Errorf("429 message = %q; want %q", msg, want)
				}
				if r.header.Get("Retry-After") != "" || r.header.Get("X-RateLimit-Type") != "" {
					t.Errorf("overlap 429 headers = %v; want no Retry-After or X-RateLimit-Type", r.header)
				}

				cancel()
				<-done
				waitFor(t, "the first call to end", func() bool { return l.s.Stats().InFlight == 0 })
				r, err = second.send(context.Background(), l, target)
				if err != nil || r.status != 500 {
					t.Errorf("%s after %s ended = %d %s, %v; want the scripted 500", second.name, first.name, r.status, r.body, err)
				}
				if st := l.s.Stats(); st.Overlaps != 1 || st.RateLimited[RateLimitQPS] != 0 {
					t.Errorf("Stats() overlaps = %d, QPS 429s = %d; want 1 and 0", st.Overlaps, st.RateLimited[RateLimitQPS])
				}
			})
		}
	}
}

// TestOverlapLatency checks the overlap that Latency causes, and that a
// client sending its next call as soon as it has an answer never gets a
// 429.
func TestOverlapLatency(t *testing.T) {
	l := newLifecycle(t, SimConfig{Latency: 50 * time.Millisecond})
	l.s.AddUser("a@example.com", 2)
	results := make(chan result, 2)
	for range 2 {
		go func() {
			r, _ := sendCtx(context.Background(), l, http.MethodPatch, userURL(l.s, "a@example.com"), "application/json", `{"dept":"x"}`)
			results <- r
		}()
	}
	got := []int{(<-results).status, (<-results).status}
	slices.Sort(got)
	if !slices.Equal(got, []int{204, 429}) {
		t.Errorf("two concurrent PATCHes with 50ms latency = %v; want one 204 and one 429", got)
	}

	// Back-to-back calls never find the user still busy. (net/http sends
	// an answer only once its handler has returned, so this cannot tell a
	// release before the answer from one just after it; record releases
	// before, so as not to depend on that buffering.)
	l.s.SetLatency(0)
	for i := range 200 {
		if r := l.patch("a@example.com", fmt.Sprintf(`{"dept":"d%d"}`, i)); r.status != 204 {
			t.Fatalf("sequential PATCH #%d = %d %s; want 204", i, r.status, r.body)
		}
	}
	if got := l.s.Stats().Overlaps; got != 1 {
		t.Errorf("Stats().Overlaps = %d; want only the concurrent one", got)
	}
}

func TestHistory(t *testing.T) {
	l := newLifecycle(t, SimConfig{})
	other := l.s.AddUser("other@example.com", 1)
	body := createJSON("autoCreate", "a@example.com", 2)
	body = []byte(strings.Replace(string(body), `"type":2`, `"type":2,"password":"Zoom2024Pass"`, 1))
	wantStatus(t, "create", mustSend(t, l.c, "POST", l.s.APIURL()+"/users", l.auth, "application/json", body), 201, anyBody)
	wantStatus(t, "update", l.patch("a@example.com", `{"job_title":"CTO"}`), 204, 0)
	wantStatus(t, "other user", l.patch(other, `{"dept":"x"}`), 204, 0)
	wantStatus(t, "refused update", l.patch("a@example.com", `{"type":2,"zoom_one_type":16}`), 400, 300)
	wantStatus(t, "deactivate", l.status("A@EXAMPLE.COM", "deactivate"), 200, 0)
	wantStatus(t, "activate", l.status("a@example.com", "activate"), 200, 0)
	wantStatus(t, "licence", l.patch("a@example.com", `{"type":2}`), 204, 0)
	wantStatus(t, "delete", l.del("a@example.com", "action=delete"), 204, 0)
	wantStatus(t, "redelivered delete", l.del("a@example.com", "action=delete"), 404, 1001)
	wantStatus(t, "re-create", mustSend(t, l.c, "POST", l.s.APIURL()+"/users", l.auth, "application/json", body), 201, anyBody)

	h := l.s.History("A@example.com")
	type row struct {
		seq           int64
		route, detail string
		status        int
	}
	var got []row
	for _, c := range h {
		detail := string(c.Body)
		if c.Route == RouteDeleteUser {
			detail = c.Query
		}
		if c.Route == RouteCreateUser {
			detail = ""
		}
		got = append(got, row{c.Seq, c.Route, detail, c.Status})
	}
	want := []row{
		{1, RouteCreateUser, "", 201},
		{2, RoutePatchUser, `{"job_title":"CTO"}`, 204},
		{4, RouteUserStatus, `{"action":"deactivate"}`, 200},
		{5, RouteUserStatus, `{"action":"activate"}`, 200},
		{6, RoutePatchUser, `{"type":2}`, 204},
		{7, RouteDeleteUser, "action=delete", 204},
		{8, RouteCreateUser, "", 201},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("History(a) = %+v; want %+v", got, want)
	}
	if h[0].UserID == h[6].UserID || h[1].UserID != h[0].UserID || h[1].Method != http.MethodPatch || h[1].Path != "/v2/users/a%40example.com" {
		t.Errorf("History(a) ids and paths = %+v; want the first user's id until the re-creation, and the escaped path", h)
	}
	for _, c := range h {
		if c.AnswerLost || c.Fault != FaultNone {
			t.Errorf("History entry %+v; want no fault", c)
		}
	}
	if oh := l.s.History("other@example.com"); len(oh) != 1 || oh[0].Seq != 3 {
		t.Errorf("History(other) = %+v; want the one PATCH with Seq 3", oh)
	}
	if h := l.s.History("nobody@example.com"); len(h) != 0 {
		t.Errorf("History(nobody) = %+v; want none", h)
	}
	// Snapshots are copies.
	h[1].Body[0] = 'X'
	if l.s.History("a@example.com")[1].Body[0] != '{' {
		t.Errorf("modifying a History snapshot changed the simulator")
	}
}

// TestLostAnswers checks that AfterCreate faults perform every
// state-changing call and mark its History entry.
func TestLostAnswers(t *testing.T) {
	tests := []struct {
		name      string
		fault     Fault
		send      func(l *lifecycle) (result, error)
		wantErr   bool
		wantKind  FaultKind
		wantState func(l *lifecycle) bool
	}{
		{
			name: "PATCH, dropped", fault: Fault{Drop: true, AfterCreate: true}, wantErr: true, wantKind: FaultDropAfterCreate,
			send: func(l *lifecycle) (result, error) {
				return send(l.c, http.MethodPatch, userURL(l.s, "a@example.com"), l.auth, "application/json", []byte(`{"dept":"lost"}`))
			},
			wantState: func(l *lifecycle) bool { u, _ := l.s.User("a@example.com"); return u.Dept == "lost" },
		},
		{
			name: "deactivate, 502 page", fault: Fault{HTML: true, AfterCreate: true}, wantKind: FaultHTMLAfterCreate,
			send: func(l *lifecycle) (result, error) {
				return send(l.c, http.MethodPut, userURL(l.s, "a@example.com")+"/status", l.auth, "application/json", []byte(`{"action":"deactivate"}`))
			},
			wantState: func(l *lifecycle) bool { u, _ := l.s.User("a@example.com"); return u.Status == "inactive" },
		},
		{
			name: "DELETE, 500", fault: Fault{Status: 500, AfterCreate: true}, wantKind: FaultStatusAfterCreate,
			send: func(l *lifecycle) (result, error) {
				return send(l.c, http.MethodDelete, userURL(l.s, "a@example.com"), l.auth, "", nil)
			},
			wantState: func(l *lifecycle) bool { _, ok := l.s.User("a@example.com"); return !ok },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLifecycle(t, SimConfig{})
			l.s.AddUser("a@example.com", 2)
			l.s.FailEmail("A@example.com", 1, tc.fault)
			r, err := tc.send(l)
			if (err != nil) != tc.wantErr || (err == nil && r.status < 500) {
				t.Fatalf("call with %+v = %d, %v; want a lost answer", tc.fault, r.status, err)
			}
			if !tc.wantState(l) {
				t.Errorf("the call with %+v was not performed", tc.fault)
			}
			h := l.s.History("a@example.com")
			if len(h) != 1 || !h[0].AnswerLost || h[0].Fault != tc.wantKind {
				t.Errorf("History = %+v; want one call with AnswerLost and fault %q", h, tc.wantKind)
			}
		})
	}

	t.Run("client gone during the delay", func(t *testing.T) {
		l := newLifecycle(t, SimConfig{})
		l.s.AddUser("a@example.com", 2)
		l.s.FailNext(1, Fault{Delay: time.Minute, AfterCreate: true})
		short := newClient(t, 100*time.Millisecond)
		if r, err := send(short, http.MethodPatch, userURL(l.s, "a@example.com"), l.auth, "application/json", []byte(`{"dept":"x"}`)); err == nil {
			t.Fatalf("PATCH with a one-minute delay = %d; want a client time-out", r.status)
		}
		waitFor(t, "the handler to give up", func() bool { return l.s.Stats().InFlight == 0 })
		if h := l.s.History("a@example.com"); len(h) != 1 || !h[0].AnswerLost {
			t.Errorf("History = %+v; want the performed PATCH with AnswerLost", h)
		}
	})

	t.Run("refused calls are not performed", func(t *testing.T) {
		l := newLifecycle(t, SimConfig{})
		l.s.FailNext(1, Fault{Drop: true, AfterCreate: true})
		if _, err := send(l.c, http.MethodDelete, userURL(l.s, "ghost@example.com"), l.auth, "", nil); err == nil {
			t.Fatalf("DELETE with a drop succeeded")
		}
		if h := l.s.History("ghost@example.com"); len(h) != 0 {
			t.Errorf("History(ghost) = %+v; want none: the 404 performed nothing", h)
		}
	})
}

func TestLifecycleRandomFaults(t *testing.T) {
	t.Run("LostAnswer", func(t *testing.T) {
		l := newLifecycle(t, SimConfig{})
		l.s.AddUser("a@example.com", 2)
		l.s.SetRandomFaults(RandomFaults{Seed: 1, LostAnswer: 1})
		if r := mustSend(t, l.c, "GET", userURL(l.s, "a@example.com"), l.auth, "", nil); r.status != 200 {
			t.Errorf("GET with LostAnswer=1 = %d; want 200: only state-changing calls lose answers", r.status)
		}
		if _, err := send(l.c, http.MethodPatch, userURL(l.s, "a@example.com"), l.auth, "application/json", []byte(`{"dept":"x"}`)); err == nil {
			t.Errorf("PATCH with LostAnswer=1 succeeded; want a dropped connection")
		}
		if _, err := create(l.c, l.s, l.auth, "ssoCreate", "b@example.com"); err == nil {
			t.Errorf("create with LostAnswer=1 succeeded; want a dropped connection")
		}
		if u := l.user("a@example.com"); u.Dept != "x" || l.s.Creations("b@example.com") != 1 {
			t.Errorf("User(a).Dept = %q, Creations(b) = %d; want both calls performed", u.Dept, l.s.Creations("b@example.com"))
		}
		if h := l.s.History("a@example.com"); len(h) != 1 || !h[0].AnswerLost || h[0].Fault != FaultDropAfterCreate {
			t.Errorf("History(a) = %+v; want the PATCH with a lost answer", h)
		}
	})

	t.Run("DropAfterCreate stays with POST /users", func(t *testing.T) {
		l := newLifecycle(t, SimConfig{})
		l.s.AddUser("a@example.com", 2)
		l.s.SetRandomFaults(RandomFaults{Seed: 1, DropAfterCreate: 1})
		wantStatus(t, "PATCH with DropAfterCreate=1", l.patch("a@example.com", `{"dept":"x"}`), 204, 0)
		wantStatus(t, "DELETE with DropAfterCreate=1", l.del("a@example.com", ""), 204, 0)
	})

	t.Run("ServerError", func(t *testing.T) {
		l := newLifecycle(t, SimConfig{})
		l.s.AddUser("a@example.com", 2)
		l.s.SetRandomFaults(RandomFaults{Seed: 1, ServerError: 1})
		for _, r := range []result{l.patch("a@example.com", `{"dept":"x"}`), l.status("a@example.com", "deactivate"), l.del("a@example.com", "")} {
			if r.status < 500 {
				t.Errorf("lifecycle call with ServerError=1 = %d; want 5xx", r.status)
			}
		}
		if u := l.user("a@example.com"); u.Dept != "" || u.Status != "active" || len(l.s.History("a@example.com")) != 0 {
			t.Errorf("User after 5xx without AfterCreate = %+v; want it untouched", u)
		}
	})
}

// TestLifecycleSharedLimit checks that the new routes draw from the one
// per-second budget of every /v2 route.
func TestLifecycleSharedLimit(t *testing.T) {
	clk := newTestClock(epoch)
	l := newLifecycle(t, SimConfig{Now: clk.Now, RatePerSecond: 3})
	id := l.s.AddUser("a@example.com", 2)
	wantStatus(t, "PATCH", l.patch(id, `{"dept":"x"}`), 204, 0)
	wantStatus(t, "GET", mustSend(t, l.c, "GET", userURL(l.s, id), l.auth, "", nil), 200, anyBody)
	wantStatus(t, "status", l.status(id, "deactivate"), 200, 0)
	r := l.del(id, "")
	wantStatus(t, "DELETE over the limit", r, 429, 429)
	if r.header.Get("X-RateLimit-Type") != RateLimitQPS {
		t.Errorf("429 X-RateLimit-Type = %q; want %q", r.header.Get("X-RateLimit-Type"), RateLimitQPS)
	}
	clk.Advance(time.Second)
	wantStatus(t, "DELETE in the next second", l.del(id, ""), 204, 0)
	st := l.s.Stats()
	want := map[string]map[int]int{
		RoutePatchUser: {204: 1}, RouteUserStatus: {200: 1}, RouteDeleteUser: {204: 1, 429: 1}, RouteGetUser: {200: 1},
	}
	for route, m := range want {
		if !reflect.DeepEqual(st.Requests[route], m) {
			t.Errorf("Stats().Requests[%q] = %v; want %v", route, st.Requests[route], m)
		}
	}
	if st.Overlaps != 0 {
		t.Errorf("Stats().Overlaps = %d; want 0", st.Overlaps)
	}
}

// ExampleSimulator_History shows how a test checks the order in which Zoom
// applied one user's calls, and that none of them overlapped.
func ExampleSimulator_History() {
	sim := NewSimulator(SimConfig{})
	defer sim.Close()
	sim.AddUser("ada@example.com", 2)

	form := url.Values{"grant_type": {"account_credentials"}, "account_id": {DefaultSimAccountID}}
	req, _ := http.NewRequest("POST", sim.TokenURL(), strings.NewReader(form.Encode()))
	req.SetBasicAuth(DefaultSimClientID, DefaultSimClientSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()

	user := sim.APIURL() + "/users/ada%40example.com"
	for _, c := range []struct{ method, url, body string }{
		{"PUT", user + "/status", `{"action":"deactivate"}`},
		{"PUT", user + "/status", `{"action":"activate"}`},
		{"PATCH", user, `{"type":2}`}, // a rehire gets its licence back
		{"DELETE", user + "?action=delete", ""},
	} {
		req, _ := http.NewRequest(c.method, c.url, strings.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
	}
	for _, call := range sim.History("Ada@Example.com") {
		fmt.Println(call.Seq, call.Route, call.Status)
	}
	fmt.Println("overlaps:", sim.Stats().Overlaps)
	// Output:
	// 1 PUT /v2/users/{userId}/status 200
	// 2 PUT /v2/users/{userId}/status 200
	// 3 PATCH /v2/users/{userId} 204
	// 4 DELETE /v2/users/{userId} 204
	// overlaps: 0
}

// Ensure Repeats tells a call performed again after its answer was lost
// (a retry) from one performed again after its answer arrived (a request
// applied twice), from the simulator's own record.
func TestRepeats(t *testing.T) {
	l := newLifecycle(t, SimConfig{})
	u := "r@example.com"
	l.s.AddUser(u, 1)
	l.s.FailEmail(u, 1, Fault{Status: 502, AfterCreate: true})
	wantStatus(t, "update, answer lost", l.patch(u, `{"job_title":"A"}`), 502, 502)
	wantStatus(t, "retried update", l.patch(u, `{"job_title":"A"}`), 204, 0)
	l.s.FailEmail(u, 1, Fault{Status: 503})
	wantStatus(t, "failed update", l.patch(u, `{"job_title":"B"}`), 503, 503)
	wantStatus(t, "next update", l.patch(u, `{"job_title":"B"}`), 204, 0)
	if got := l.s.Repeats(u); got != (Repeats{Retried: 1}) {
		t.Errorf("Repeats after retries = %+v; want 1 retried (the failed call was not performed)", got)
	}
	wantStatus(t, "update applied twice", l.patch(u, `{"job_title":"B"}`), 204, 0)
	wantStatus(t, "delete", l.del(u, "action=delete"), 204, 0)
	wantStatus(t, "delete again", l.del(u, "action=delete"), 404, 1001)
	if got := l.s.Repeats("R@example.com"); got != (Repeats{Retried: 1, Duplicated: 1}) {
		t.Errorf("Repeats = %+v; want 1 retried, 1 duplicated (a delete of a user gone is not performed)", got)
	}
}
