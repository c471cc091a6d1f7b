package messages

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

const secret = "S3cr3t-Passw0rd!"

// TestPasswordNotInErrors feeds Decode requests whose password is wrong in
// every way we can think of and checks that no error text holds it.
func TestPasswordNotInErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"too long", body("autoCreate", `{"email":"a@example.com","type":1,"password":"`+strings.Repeat(secret, 3)+`"}`)},
		{"too short", body("autoCreate", `{"email":"a@example.com","type":1,"password":"`+secret[:7]+`"}`)},
		{"valid password, other problems", body("autoCreate", `{"email":"bad","type":7,"x":1,"password":"`+secret+`"}`)},
		{"duplicate password", body("autoCreate", `{"email":"a@example.com","type":1,"password":"`+secret+`","password":"`+secret+`"}`)},
		{"password in string form", body("autoCreate", strconv.Quote(`{"email":"a@example.com","type":"1","password":"`+secret+`"}`))},
		{"truncated after the password", `{"action":"autoCreate","user_info":{"password":"` + secret + `","em`},
		{"syntax error after the password", `{"action":"autoCreate","user_info":{"password":"` + secret + `" "email":1}}`},
		{"control character in the password", body("autoCreate", `{"email":"a@example","type":1,"password":"`+secret+`\u0000"}`)},
		{"password in a mistyped user_info", body("autoCreate", `["`+secret+`"]`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Decode([]byte(tc.in))
			if err == nil {
				t.Fatalf("Decode(%q) error = nil; want an error", tc.in)
			}
			if strings.Contains(err.Error(), secret[:7]) {
				t.Errorf("Decode(%q) = %q; want no password in it", tc.in, err)
			}
			// The partial request returned with the error is logged by
			// callers too.
			assertNoSecret(t, r)
		})
	}
}

// TestPasswordNotFormatted checks every formatting verb on Request and
// UserInfo, by value and by pointer.
func TestPasswordNotFormatted(t *testing.T) {
	r := Request{Action: ActionAutoCreate, UserInfo: UserInfo{
		Email: "alice@example.com", Type: 1, FirstName: "Alice", LastName: "Liddell", DisplayName: "Alice L",
		Password: secret, Feature: &Feature{ZoomPhone: boolPtr(true)}, PlanUnitedType: "1",
		DivisionIDs: []string{"d"}, LicenseInfoList: []LicenseInfo{{"MEETING", 2, "S"}},
	}}
	assertNoSecret(t, r)

	got := fmt.Sprintf("%+v", r)
	for _, want := range []string{"Password:[redacted]", "a***@example.com", "SubscriptionID:S", "ZoomPhone:true"} {
		if !strings.Contains(got, want) {
			t.Errorf("Sprintf(%%+v) = %q; want it to contain %q", got, want)
		}
	}
	for _, personal := range []string{"alice@", "Alice", "Liddell"} {
		if strings.Contains(got, personal) {
			t.Errorf("Sprintf(%%+v) = %q; want no %q", got, personal)
		}
	}
	if got := fmt.Sprintf("%v", Request{Action: ActionCreate}); strings.Contains(got, redacted) {
		t.Errorf("Sprintf(%%v) of a request without secrets = %q; want no %q", got, redacted)
	}
}

// assertNoSecret formats r with every verb and fails if the output shows
// the password.
func assertNoSecret(t *testing.T, r Request) {
	t.Helper()
	values := []any{r, &r, r.UserInfo, &r.UserInfo, []Request{r}, map[string]UserInfo{"u": r.UserInfo},
		struct{ R Request }{r}}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T", "%10.3v", "%-v"}
	for _, v := range values {
		for _, verb := range verbs {
			if got := fmt.Sprintf(verb, v); strings.Contains(got, secret[:7]) || strings.Contains(got, fmt.Sprintf("%x", secret[:7])) {
				t.Errorf("Sprintf(%q, %T) = %q; want no password", verb, v, got)
			}
		}
	}
	for _, s := range []string{r.String(), r.GoString(), r.UserInfo.String(), r.UserInfo.GoString()} {
		if strings.Contains(s, secret[:7]) {
			t.Errorf("String or GoString = %q; want no password", s)
		}
	}
	if err := r.Validate(); err != nil && strings.Contains(err.Error(), secret[:7]) {
		t.Errorf("Validate() = %q; want no password", err)
	}
}

func TestMaskEmail(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"alice@example.com", "a***@example.com"},
		{"", ""},
		{"no-at-sign", "***"},
		{"@example.com", "***@example.com"},
		{"ölaf@example.de", "ö***@example.de"},
		{"a@b@example.com", "a***@example.com"},
		{"x@", "x***@"},
	}
	for _, tc := range tests {
		if got := MaskEmail(tc.in); got != tc.want {
			t.Errorf("MaskEmail(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

func TestActionFromSubject(t *testing.T) {
	const prefix = "zoom.users.create"
	tests := []struct {
		subject, prefix string
		want            string
		wantOK          bool
	}{
		{"zoom.users.create.ssoCreate", prefix, "ssoCreate", true},
		{"zoom.users.create.create", prefix, "create", true},
		{"zoom.users.create.unknownAction", prefix, "unknownAction", true},
		{"zoom.users.create", prefix, "", false},
		{"zoom.users.create.", prefix, "", false},
		{"zoom.users.create.a.b", prefix, "", false},
		{"zoom.users.createX.create", prefix, "", false},
		{"zoom.users.delete.create", prefix, "", false},
		{"other.zoom.users.create.create", prefix, "", false},
		{"", prefix, "", false},
		{"create", "", "create", true},
		{"a.create", "", "", false},
	}
	for _, tc := range tests {
		got, ok := ActionFromSubject(tc.subject, tc.prefix)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("ActionFromSubject(%q, %q) = %q, %t; want %q, %t", tc.subject, tc.prefix, got, ok, tc.want, tc.wantOK)
		}
	}
}
