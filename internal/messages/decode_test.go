package messages

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// body builds a request body from an action and the raw JSON of user_info.
func body(action, userInfo string) string {
	return `{"action":` + strconv.Quote(action) + `,"user_info":` + userInfo + `}`
}

func boolPtr(b bool) *bool { return &b }

func TestDecodeValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Request
	}{
		{
			name: "create minimal",
			in:   body("create", `{"email":"alice@example.com","type":1}`),
			want: Request{Action: ActionCreate, UserInfo: UserInfo{Email: "alice@example.com", Type: 1}},
		},
		{
			name: "autoCreate with password",
			in:   body("autoCreate", `{"email":"bob@corp.example.org","type":2,"first_name":"Bob","last_name":"Smith","password":"Tr1cky-Pa55"}`),
			want: Request{Action: ActionAutoCreate, UserInfo: UserInfo{
				Email: "bob@corp.example.org", Type: 2, FirstName: "Bob", LastName: "Smith", Password: "Tr1cky-Pa55",
			}},
		},
		{
			name: "autoCreate password of 8 and 32 multibyte characters",
			in:   body("autoCreate", `{"email":"b@example.org","type":1,"password":"`+strings.Repeat("é", 32)+`"}`),
			want: Request{Action: ActionAutoCreate, UserInfo: UserInfo{Email: "b@example.org", Type: 1, Password: strings.Repeat("é", 32)}},
		},
		{
			name: "custCreate",
			in:   body("custCreate", `{"email":"u-1@ISV.partner.example.com","type":2}`),
			want: Request{Action: ActionCustCreate, UserInfo: UserInfo{Email: "u-1@ISV.partner.example.com", Type: 2}},
		},
		{
			name: "ssoCreate type 99 with a password, which is ignored not rejected",
			in:   body("ssoCreate", `{"email":"carol@sso.example.net","type":99,"password":"x"}`),
			want: Request{Action: ActionSSOCreate, UserInfo: UserInfo{Email: "carol@sso.example.net", Type: 99, Password: "x"}},
		},
		{
			name: "type 4",
			in:   body("create", `{"email":"d@example.com","type":4}`),
			want: Request{Action: ActionCreate, UserInfo: UserInfo{Email: "d@example.com", Type: 4}},
		},
		{
			name: "user_info as a JSON string",
			in:   body("create", strconv.Quote(`{"email":"dave@example.com","type":1,"feature":{"zoom_phone":false}}`)),
			want: Request{Action: ActionCreate, UserInfo: UserInfo{
				Email: "dave@example.com", Type: 1, Feature: &Feature{ZoomPhone: boolPtr(false)},
			}},
		},
		{
			name: "every field, with int64 values beyond 2^53",
			in: body("create", `{"email":"erin@example.co.uk","type":2,"first_name":"Erin","last_name":"O'Brien",
				"display_name":"Erin <Ops>","feature":{"zoom_phone":true,"zoom_one_type":576460752303423488},
				"plan_united_type":"16","division_ids":["div-1"],
				"license_info_list":[{"license_type":"MEETING","license_option":2,"subscription_id":"SUBREF-1"},
				{"license_type":"ZOOM_WORKPLACE_BUNDLE","license_option":4398046511104,"subscription_id":"SUBREF-2"}]}`),
			want: Request{Action: ActionCreate, UserInfo: UserInfo{
				Email: "erin@example.co.uk", Type: 2, FirstName: "Erin", LastName: "O'Brien", DisplayName: "Erin <Ops>",
				Feature:        &Feature{ZoomPhone: boolPtr(true), ZoomOneType: 576460752303423488},
				PlanUnitedType: "16", DivisionIDs: []string{"div-1"},
				LicenseInfoList: []LicenseInfo{
					{LicenseType: "MEETING", LicenseOption: 2, SubscriptionID: "SUBREF-1"},
					{LicenseType: "ZOOM_WORKPLACE_BUNDLE", LicenseOption: 4398046511104, SubscriptionID: "SUBREF-2"},
				},
			}},
		},
		{
			name: "null and empty collections mean absent",
			in:   body("create", `{"email":"f@example.com","type":1,"first_name":null,"feature":null,"division_ids":[],"license_info_list":[]}`),
			want: Request{Action: ActionCreate, UserInfo: UserInfo{Email: "f@example.com", Type: 1}},
		},
		{
			name: "names at their limits in multibyte characters",
			in: body("create", `{"email":"g@example.com","type":1,"first_name":"`+strings.Repeat("é", 64)+
				`","last_name":"`+strings.Repeat("山", 64)+`","display_name":"`+strings.Repeat("😀", 128)+`"}`),
			want: Request{Action: ActionCreate, UserInfo: UserInfo{
				Email: "g@example.com", Type: 1, FirstName: strings.Repeat("é", 64),
				LastName: strings.Repeat("山", 64), DisplayName: strings.Repeat("😀", 128),
			}},
		},
		{
			name: "email of exactly 128 characters",
			in:   body("create", `{"email":"`+strings.Repeat("a", 116)+`@example.com","type":1}`),
			want: Request{Action: ActionCreate, UserInfo: UserInfo{Email: strings.Repeat("a", 116) + "@example.com", Type: 1}},
		},
		{
			name: "escaped characters and surrounding whitespace",
			in:   "\n\t " + body("create", `{"email":"h\u0040example.com","type":1,"first_name":"Zo\u00eb \"Z\""}`) + " \r\n",
			want: Request{Action: ActionCreate, UserInfo: UserInfo{Email: "h@example.com", Type: 1, FirstName: `Zoë "Z"`}},
		},
		{
			name: "members in any order",
			in:   `{"user_info":{"type":1,"email":"i@example.com"},"action":"create"}`,
			want: Request{Action: ActionCreate, UserInfo: UserInfo{Email: "i@example.com", Type: 1}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode([]byte(tc.in))
			if err != nil {
				t.Fatalf("Decode(%q) error = %v; want nil", tc.in, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Decode(%q) = %#v; want %#v", tc.in, got.ForZoom(), tc.want.ForZoom())
			}
		})
	}
}

func TestDecodeInvalid(t *testing.T) {
	valid := `{"email":"alice@example.com","type":1}`
	tests := []struct {
		name string
		in   string
		want []FieldError
	}{
		// Whole-body problems.
		{
			name: "empty",
			in:   "",
			want: []FieldError{{"", "body is empty"}},
		},
		{
			name: "whitespace only",
			in:   " \n\t",
			want: []FieldError{{"", "body is empty"}},
		},
		{
			name: "one byte over the limit",
			in:   body("create", valid) + strings.Repeat(" ", MaxBodyBytes+1-len(body("create", valid))),
			want: []FieldError{{"", fmt.Sprintf("body is %d bytes; the limit is %d bytes", MaxBodyBytes+1, MaxBodyBytes)}},
		},
		{
			name: "1 MiB",
			in:   body("create", `{"email":"a@example.com","type":1,"first_name":"`+strings.Repeat("x", 1<<20)+`"}`),
			want: []FieldError{{"", fmt.Sprintf("body is %d bytes; the limit is 65536 bytes", 1<<20+len(body("create", `{"email":"a@example.com","type":1,"first_name":""}`)))}},
		},
		{
			name: "not UTF-8",
			in:   body("create", "{\"email\":\"a@example.com\",\"type\":1,\"first_name\":\"\xff\xfe\"}"),
			want: []FieldError{{"", "body is not valid UTF-8"}},
		},
		{
			name: "garbage",
			in:   "hello, world",
			want: []FieldError{{"", "body is not valid JSON (syntax error near byte offset 1)"}},
		},
		{
			name: "binary",
			in:   "\x00\x01\x02",
			want: []FieldError{{"", "body is not valid JSON (syntax error near byte offset 1)"}},
		},
		{
			name: "truncated",
			in:   `{"action":"create","user_info":{"email":"a@example.com","ty`,
			want: []FieldError{{"", "body is truncated JSON"}},
		},
		{
			name: "truncated after a key",
			in:   `{"action":`,
			want: []FieldError{{"", "body is truncated JSON"}},
		},
		{
			name: "missing comma",
			in:   `{"action":"create" "user_info":{}}`,
			want: []FieldError{{"", "body is not valid JSON (syntax error near byte offset 19)"}},
		},
		{
			name: "array",
			in:   `[` + body("create", valid) + `]`,
			want: []FieldError{{"", "body must be a JSON object"}},
		},
		{
			name: "string",
			in:   strconv.Quote(body("create", valid)),
			want: []FieldError{{"", "body must be a JSON object"}},
		},
		{
			name: "null",
			in:   `null`,
			want: []FieldError{{"", "body must be a JSON object"}},
		},
		{
			name: "trailing object",
			in:   body("create", valid) + `{}`,
			want: []FieldError{{"", "body has data after the JSON object"}},
		},
		{
			name: "trailing garbage",
			in:   body("create", valid) + ` x`,
			want: []FieldError{{"", "body has data after the JSON object"}},
		},
		{
			name: "nested too deeply",
			in:   body("create", `{"email":"a@example.com","type":1,"x":`+strings.Repeat("[", 100)+strings.Repeat("]", 100)+`}`),
			want: []FieldError{{"", "body nests JSON deeper than 32 levels"}},
		},

		// Missing, unknown and duplicate fields.
		{
			name: "empty object",
			in:   `{}`,
			want: []FieldError{{"action", "is required"}, {"user_info", "is required"}},
		},
		{
			name: "user_info null",
			in:   `{"action":"create","user_info":null}`,
			want: []FieldError{{"user_info", "is required"}},
		},
		{
			name: "empty user_info",
			in:   body("create", `{}`),
			want: []FieldError{{"user_info.email", "is required"}, {"user_info.type", "is required"}},
		},
		{
			name: "unknown fields at every level",
			in: `{"action":"create","Action":"x","user_info":{"email":"a@example.com","type":1,"phone":"1",
				"feature":{"zoom_phone":true,"video":1},"license_info_list":[{"license_type":"MEETING","subscription_id":"S","seats":3}]}}`,
			want: []FieldError{
				{"Action", "unknown field"},
				{"user_info.feature.video", "unknown field"},
				{"user_info.license_info_list[0].seats", "unknown field"},
				{"user_info.phone", "unknown field"},
			},
		},
		{
			name: "odd unknown keys are quoted",
			in:   body("create", `{"email":"a@example.com","type":1,"a b\n":1,"":2}`),
			want: []FieldError{{`user_info.""`, "unknown field"}, {`user_info."a b\n"`, "unknown field"}},
		},
		{
			name: "duplicate key at the top level",
			in:   `{"action":"create","user_info":` + valid + `,"action":"ssoCreate"}`,
			want: []FieldError{{"action", "duplicate key"}},
		},
		{
			name: "duplicate key in user_info, reported once",
			in:   body("create", `{"email":"a@example.com","type":1,"email":"b@example.com","email":"c@example.com"}`),
			want: []FieldError{{"user_info.email", "duplicate key"}},
		},
		{
			name: "duplicate key in feature and license item",
			in: body("create", `{"email":"a@example.com","type":1,"feature":{"zoom_phone":true,"zoom_phone":false},
				"license_info_list":[{"license_type":"MEETING","subscription_id":"S","subscription_id":"T"}]}`),
			want: []FieldError{
				{"user_info.feature.zoom_phone", "duplicate key"},
				{"user_info.license_info_list[0].subscription_id", "duplicate key"},
			},
		},
		{
			name: "duplicate key inside an unknown field",
			in:   body("create", `{"email":"a@example.com","type":1,"extra":{"k":1,"k":2}}`),
			want: []FieldError{{"user_info.extra", "unknown field"}, {"user_info.extra.k", "duplicate key"}},
		},
		{
			name: "duplicate user_info as object and string",
			in:   `{"action":"create","user_info":` + valid + `,"user_info":` + strconv.Quote(valid) + `}`,
			want: []FieldError{{"user_info", "duplicate key"}},
		},

		// Wrong JSON types.
		{
			name: "type as a string",
			in:   body("create", `{"email":"a@example.com","type":"1"}`),
			want: []FieldError{{"user_info.type", "must be an integer"}},
		},
		{
			name: "type as a fraction",
			in:   body("create", `{"email":"a@example.com","type":1.5}`),
			want: []FieldError{{"user_info.type", "must be an integer"}},
		},
		{
			name: "type as 1.0 and 1e0",
			in:   body("create", `{"email":"a@example.com","type":1.0,"feature":{"zoom_one_type":1e0}}`),
			want: []FieldError{{"user_info.feature.zoom_one_type", "must be an integer"}, {"user_info.type", "must be an integer"}},
		},
		{
			name: "integers out of range",
			in: body("create", `{"email":"a@example.com","type":4294967297,
				"feature":{"zoom_one_type":9223372036854775808}}`),
			want: []FieldError{
				{"user_info.feature.zoom_one_type", "must be an integer that fits in 64 bits"},
				{"user_info.type", "must be one of 1, 2, 4, 99"},
			},
		},
		{
			name: "every field mistyped",
			in: `{"action":1,"user_info":{"email":["a@example.com"],"type":true,"first_name":42,"last_name":{},
				"display_name":false,"password":12345678,"feature":[],"plan_united_type":1,"division_ids":"d",
				"license_info_list":{}}}`,
			want: []FieldError{
				{"action", "must be a string"},
				{"user_info.display_name", "must be a string"},
				{"user_info.division_ids", "must be an array of strings"},
				{"user_info.email", "must be a string"},
				{"user_info.feature", "must be an object"},
				{"user_info.first_name", "must be a string"},
				{"user_info.last_name", "must be a string"},
				{"user_info.license_info_list", "must be an array of objects"},
				{"user_info.password", "must be a string"},
				{"user_info.plan_united_type", "must be a string"},
				{"user_info.type", "must be an integer"},
			},
		},
		{
			name: "mistyped nested values",
			in: body("create", `{"email":"a@example.com","type":1,"feature":{"zoom_phone":"yes","zoom_one_type":"16"},
				"division_ids":[1],"license_info_list":["MEETING",{"license_type":1,"license_option":"2","subscription_id":null}]}`),
			want: []FieldError{
				{"user_info.division_ids[0]", "must be a string"},
				{"user_info.feature.zoom_one_type", "must be an integer"},
				{"user_info.feature.zoom_phone", "must be a boolean"},
				{"user_info.license_info_list[0]", "must be an object"},
				{"user_info.license_info_list[1].license_option", "must be an integer"},
				{"user_info.license_info_list[1].license_type", "must be a string"},
				{"user_info.license_info_list[1].subscription_id", "is required"},
			},
		},
		{
			name: "user_info as a number",
			in:   body("create", `7`),
			want: []FieldError{{"user_info", "must be an object or a string holding a JSON object"}},
		},

		// user_info in string form gets the same rules.
		{
			name: "string form with unknown field and duplicate key",
			in:   body("create", strconv.Quote(`{"email":"a@example.com","type":1,"type":2,"phone":"1"}`)),
			want: []FieldError{{"user_info.phone", "unknown field"}, {"user_info.type", "duplicate key"}},
		},
		{
			name: "string form with a wrong type",
			in:   body("create", strconv.Quote(`{"email":"a@example.com","type":"2"}`)),
			want: []FieldError{{"user_info.type", "must be an integer"}},
		},
		{
			name: "string form truncated",
			in:   body("create", strconv.Quote(`{"email":"a@example.com","type":1`)),
			want: []FieldError{{"user_info", "string form is truncated JSON"}},
		},
		{
			name: "string form not JSON",
			in:   body("create", `"email=a@example.com&type=1"`),
			want: []FieldError{{"user_info", "string form is not valid JSON (syntax error near byte offset 1)"}},
		},
		{
			name: "string form empty",
			in:   body("create", `""`),
			want: []FieldError{{"user_info", "string form is empty"}},
		},
		{
			name: "string form holding an array",
			in:   body("create", strconv.Quote(`[`+valid+`]`)),
			want: []FieldError{{"user_info", "string form must be a JSON object"}},
		},
		{
			name: "string form with trailing data",
			in:   body("create", strconv.Quote(valid+` {}`)),
			want: []FieldError{{"user_info", "string form has data after the JSON object"}},
		},
		{
			name: "string form holding a string",
			in:   body("create", strconv.Quote(strconv.Quote(valid))),
			want: []FieldError{{"user_info", "string form must be a JSON object"}},
		},

		// Validation rules.
		{
			name: "unknown action",
			in:   body("delete", valid),
			want: []FieldError{{"action", "must be one of create, autoCreate, custCreate, ssoCreate"}},
		},
		{
			name: "action in the wrong case",
			in:   body("AutoCreate", valid),
			want: []FieldError{{"action", "must be one of create, autoCreate, custCreate, ssoCreate"}},
		},
		{
			name: "empty action",
			in:   body("", valid),
			want: []FieldError{{"action", "is required"}},
		},
		{
			name: "type 3 and 0",
			in:   body("create", `{"email":"a@example.com","type":3}`),
			want: []FieldError{{"user_info.type", "must be one of 1, 2, 4, 99"}},
		},
		{
			name: "type 0",
			in:   body("create", `{"email":"a@example.com","type":0}`),
			want: []FieldError{{"user_info.type", "must be one of 1, 2, 4, 99"}},
		},
		{
			name: "type 99 without ssoCreate",
			in:   body("create", `{"email":"a@example.com","type":99}`),
			want: []FieldError{{"user_info.type", "99 is only allowed with action ssoCreate"}},
		},
		{
			name: "email too long, counted in characters",
			in:   body("create", `{"email":"`+strings.Repeat("é", 117)+`@example.com","type":1}`),
			want: []FieldError{{"user_info.email", "must be at most 128 characters (got 129)"}},
		},
		{
			name: "email without @",
			in:   body("create", `{"email":"alice.example.com","type":1}`),
			want: []FieldError{{"user_info.email", "must be a bare email address such as name@example.com, without a display name"}},
		},
		{
			name: "email with two @",
			in:   body("create", `{"email":"a@b@example.com","type":1}`),
			want: []FieldError{{"user_info.email", "must be a bare email address such as name@example.com, without a display name"}},
		},
		{
			name: "email with empty local part",
			in:   body("create", `{"email":"@example.com","type":1}`),
			want: []FieldError{{"user_info.email", "must be a bare email address such as name@example.com, without a display name"}},
		},
		{
			name: "email domain without a dot",
			in:   body("create", `{"email":"a@localhost","type":1}`),
			want: []FieldError{{"user_info.email", "must be a bare email address such as name@example.com, without a display name"}},
		},
		{
			name: "email domain with an empty label",
			in:   body("create", `{"email":"a@example..com","type":1}`),
			want: []FieldError{{"user_info.email", "must be a bare email address such as name@example.com, without a display name"}},
		},
		{
			name: "email with a domain literal",
			in:   body("create", `{"email":"a@[192.0.2.1]","type":1}`),
			want: []FieldError{{"user_info.email", "must be a bare email address such as name@example.com, without a display name"}},
		},
		{
			name: "email with a quoted local part",
			in:   body("create", `{"email":"\"a\"@example.com","type":1}`),
			want: []FieldError{{"user_info.email", "must be a bare email address such as name@example.com, without a display name"}},
		},
		{
			name: "email with a display name",
			in:   body("create", `{"email":"Bob <b@x.com>","type":1}`),
			want: []FieldError{{"user_info.email", "must be a bare email address such as name@example.com, without a display name or angle brackets"}},
		},
		{
			name: "email in angle brackets",
			in:   body("create", `{"email":"<b@x.com>","type":1}`),
			want: []FieldError{{"user_info.email", "must be a bare email address such as name@example.com, without a display name or angle brackets"}},
		},
		{
			name: "email with a comment",
			in:   body("create", `{"email":"b@x.com(work)","type":1}`),
			want: []FieldError{{"user_info.email", "must be a bare email address such as name@example.com, without a display name"}},
		},
		{
			name: "email with a space",
			in:   body("create", `{"email":"a b@example.com","type":1}`),
			want: []FieldError{{"user_info.email", "must not contain spaces"}},
		},
		{
			name: "email with NUL",
			in:   body("create", `{"email":"a\u0000@example.com","type":1}`),
			want: []FieldError{{"user_info.email", "must not contain control characters"}},
		},
		{
			name: "email with CRLF",
			in:   body("create", `{"email":"a@example.com\r\nBcc: x@example.com","type":1}`),
			want: []FieldError{{"user_info.email", "must not contain control characters"}},
		},
		{
			name: "names with control characters",
			in:   body("create", `{"email":"a@example.com","type":1,"first_name":"A\tB","last_name":"C\u0000","display_name":"D\nE\u0085"}`),
			want: []FieldError{
				{"user_info.display_name", "must not contain control characters"},
				{"user_info.first_name", "must not contain control characters"},
				{"user_info.last_name", "must not contain control characters"},
			},
		},
		{
			name: "names one character too long in multibyte characters",
			in: body("create", `{"email":"a@example.com","type":1,"first_name":"`+strings.Repeat("é", 65)+
				`","last_name":"`+strings.Repeat("山", 65)+`","display_name":"`+strings.Repeat("😀", 129)+`"}`),
			want: []FieldError{
				{"user_info.display_name", "must be at most 128 characters (got 129)"},
				{"user_info.first_name", "must be at most 64 characters (got 65)"},
				{"user_info.last_name", "must be at most 64 characters (got 65)"},
			},
		},
		{
			name: "autoCreate without password",
			in:   body("autoCreate", valid),
			want: []FieldError{{"user_info.password", "is required for action autoCreate"}},
		},
		{
			name: "autoCreate password too short",
			in:   body("autoCreate", `{"email":"a@example.com","type":1,"password":"Ab1defg"}`),
			want: []FieldError{{"user_info.password", "must be 8 to 32 characters"}},
		},
		{
			name: "autoCreate password too long",
			in:   body("autoCreate", `{"email":"a@example.com","type":1,"password":"`+strings.Repeat("é", 33)+`"}`),
			want: []FieldError{{"user_info.password", "must be 8 to 32 characters"}},
		},
		{
			name: "plan_united_type not numeric",
			in:   body("create", `{"email":"a@example.com","type":1,"plan_united_type":"pro"}`),
			want: []FieldError{{"user_info.plan_united_type", `must be a string of digits such as "1"`}},
		},
		{
			name: "two division ids",
			in:   body("create", `{"email":"a@example.com","type":1,"division_ids":["a","b"]}`),
			want: []FieldError{{"user_info.division_ids", "must have at most 1 entry (got 2)"}},
		},
		{
			name: "license list problems",
			in: body("create", `{"email":"a@example.com","type":1,"license_info_list":[
				{"license_type":"WEBINAR","license_option":2,"subscription_id":"S"},{"license_option":2},
				{"license_type":"MEETING","license_option":2,"subscription_id":""}]}`),
			want: []FieldError{
				{"user_info.license_info_list", "must have at most 2 items (got 3)"},
				{"user_info.license_info_list[0].license_type", "must be MEETING or ZOOM_WORKPLACE_BUNDLE"},
				{"user_info.license_info_list[1].license_type", "is required"},
				{"user_info.license_info_list[1].subscription_id", "is required"},
				{"user_info.license_info_list[2].subscription_id", "is required"},
			},
		},
		{
			name: "all problems at once, sorted by field",
			in:   `{"user_info":{"type":3,"email":"x","last_name":1,"first_name":"` + strings.Repeat("a", 65) + `","zzz":1},"action":"nope"}`,
			want: []FieldError{
				{"action", "must be one of create, autoCreate, custCreate, ssoCreate"},
				{"user_info.email", "must be a bare email address such as name@example.com, without a display name"},
				{"user_info.first_name", "must be at most 64 characters (got 65)"},
				{"user_info.last_name", "must be a string"},
				{"user_info.type", "must be one of 1, 2, 4, 99"},
				{"user_info.zzz", "unknown field"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.in))
			in := tc.in
			if len(in) > 200 {
				in = in[:200] + "..."
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Decode(%q) = %v; want an error matching ErrInvalid", in, err)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Decode(%q) = %T; want *ValidationError", in, err)
			}
			if !reflect.DeepEqual(ve.Fields, tc.want) {
				t.Errorf("Decode(%q) fields = %q; want %q", in, ve.Fields, tc.want)
			}
		})
	}
}

// TestDecodeUserInfoForms checks that both forms of user_info decode to the
// same Request.
func TestDecodeUserInfoForms(t *testing.T) {
	for _, ui := range []string{
		`{"email":"a@example.com","type":2,"first_name":"Ann","feature":{"zoom_phone":true},"division_ids":["d"]}`,
		`{"email":"b@example.com","type":1,"license_info_list":[{"license_type":"MEETING","license_option":2,"subscription_id":"S"}]}`,
	} {
		asObject, err := Decode([]byte(body("create", ui)))
		if err != nil {
			t.Fatalf("Decode(object form %q) error = %v", ui, err)
		}
		asString, err := Decode([]byte(body("create", strconv.Quote(ui))))
		if err != nil {
			t.Fatalf("Decode(string form %q) error = %v", ui, err)
		}
		if !reflect.DeepEqual(asObject, asString) {
			t.Errorf("Decode(string form %q) = %+v; want %+v as for the object form", ui, asString, asObject)
		}
	}
}

// TestDecodePartialRequest checks that a failed Decode still returns what it
// could read, which callers put into the failure event.
func TestDecodePartialRequest(t *testing.T) {
	in := body("create", `{"email":"a@example.com","type":"1"}`)
	got, err := Decode([]byte(in))
	if err == nil {
		t.Fatalf("Decode(%q) error = nil; want an error", in)
	}
	if got.Action != ActionCreate || got.UserInfo.Email != "a@example.com" {
		t.Errorf("Decode(%q) = %+v; want action create and the email", in, got)
	}
}

func TestValidate(t *testing.T) {
	ok := UserInfo{Email: "a@example.com", Type: 1}
	tests := []struct {
		name string
		in   Request
		want []FieldError // nil means valid
	}{
		{"create", Request{Action: ActionCreate, UserInfo: ok}, nil},
		{"ssoCreate type 99", Request{Action: ActionSSOCreate, UserInfo: UserInfo{Email: "a@example.com", Type: 99}}, nil},
		{"custCreate with an unused short password", Request{Action: ActionCustCreate, UserInfo: UserInfo{Email: "a@example.com", Type: 2, Password: "x"}}, nil},
		{"autoCreate", Request{Action: ActionAutoCreate, UserInfo: UserInfo{Email: "a@example.com", Type: 1, Password: "12345678"}}, nil},
		{"UTF-8 local part", Request{Action: ActionCreate, UserInfo: UserInfo{Email: "jörg@example.de", Type: 1}}, nil},
		{"plus address", Request{Action: ActionCreate, UserInfo: UserInfo{Email: "a+zoom@mail.example.com", Type: 1}}, nil},
		{
			name: "zero request",
			in:   Request{},
			want: []FieldError{{"action", "is required"}, {"user_info.email", "is required"}, {"user_info.type", "must be one of 1, 2, 4, 99"}},
		},
		{
			name: "bad license item in a struct",
			in: Request{Action: ActionCreate, UserInfo: UserInfo{Email: "a@example.com", Type: 2,
				LicenseInfoList: []LicenseInfo{{LicenseType: "meeting", SubscriptionID: "S"}}}},
			want: []FieldError{{"user_info.license_info_list[0].license_type", "must be MEETING or ZOOM_WORKPLACE_BUNDLE"}},
		},
		{
			name: "email over the limit and not an address",
			in:   Request{Action: ActionCreate, UserInfo: UserInfo{Email: strings.Repeat("x", 129), Type: 1}},
			want: []FieldError{
				{"user_info.email", "must be at most 128 characters (got 129)"},
				{"user_info.email", "must be a bare email address such as name@example.com, without a display name"},
			},
		},
		{
			name: "DEL in a name",
			in:   Request{Action: ActionCreate, UserInfo: UserInfo{Email: "a@example.com", Type: 1, LastName: "x\x7f"}},
			want: []FieldError{{"user_info.last_name", "must not contain control characters"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.in.Validate()
			if tc.want == nil {
				if err != nil {
					t.Errorf("%+v.Validate() = %v; want nil", tc.in, err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("%+v.Validate() = %v; want a *ValidationError matching ErrInvalid", tc.in, err)
			}
			if !reflect.DeepEqual(ve.Fields, tc.want) {
				t.Errorf("%+v.Validate() fields = %q; want %q", tc.in, ve.Fields, tc.want)
			}
		})
	}
}

func TestValidationErrorError(t *testing.T) {
	tests := []struct {
		in   *ValidationError
		want string
	}{
		{&ValidationError{}, "messages: invalid request"},
		{&ValidationError{Fields: []FieldError{{"", "body is empty"}}}, "messages: invalid request: body is empty"},
		{
			&ValidationError{Fields: []FieldError{
				{"user_info.email", "must be at most 128 characters"},
				{"user_info.type", "must be one of 1, 2, 4, 99"},
			}},
			"messages: invalid request: user_info.email: must be at most 128 characters; user_info.type: must be one of 1, 2, 4, 99",
		},
	}
	for _, tc := range tests {
		if got := tc.in.Error(); got != tc.want {
			t.Errorf("%+v.Error() = %q; want %q", tc.in.Fields, got, tc.want)
		}
	}

	// A flood of problems is cut short in the message but kept in Fields.
	many := &ValidationError{}
	for i := range 25 {
		many.Fields = append(many.Fields, FieldError{Field: fmt.Sprintf("k%02d", i), Reason: "unknown field"})
	}
	if got := many.Error(); !strings.HasSuffix(got, "k19: unknown field; and 5 more") {
		t.Errorf("Error() with 25 fields = %q; want it to end after 20 with %q", got, "; and 5 more")
	}
}

func TestActionValid(t *testing.T) {
	for _, a := range Actions {
		if !a.Valid() {
			t.Errorf("Action(%q).Valid() = false; want true", a)
		}
	}
	for _, a := range []Action{"", "Create", "delete", "sso_create"} {
		if a.Valid() {
			t.Errorf("Action(%q).Valid() = true; want false", a)
		}
	}
}

func TestForZoom(t *testing.T) {
	full := UserInfo{
		Email: "a@example.com", Type: 2, Password: "Secret123",
		Feature:         &Feature{ZoomPhone: boolPtr(true)},
		DivisionIDs:     []string{"d"},
		LicenseInfoList: []LicenseInfo{{LicenseType: "MEETING", LicenseOption: 2, SubscriptionID: "S"}},
	}
	tests := []struct {
		action       Action
		wantPassword string
	}{
		{ActionCreate, ""},
		{ActionAutoCreate, "Secret123"},
		{ActionCustCreate, ""},
		{ActionSSOCreate, ""},
	}
	for _, tc := range tests {
		t.Run(string(tc.action), func(t *testing.T) {
			in := Request{Action: tc.action, UserInfo: full}
			got := in.ForZoom()
			if got.UserInfo.Password != tc.wantPassword {
				t.Errorf("%s ForZoom() password set = %t; want %t", tc.action, got.UserInfo.Password != "", tc.wantPassword != "")
			}
			want := in
			want.UserInfo.Password = tc.wantPassword
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s ForZoom() = %+v; want %+v", tc.action, got, want)
			}
			if in.UserInfo.Password != "Secret123" {
				t.Errorf("ForZoom() changed its receiver's password")
			}
			// The copy must not alias the original.
			*got.UserInfo.Feature.ZoomPhone = false
			got.UserInfo.DivisionIDs[0] = "changed"
			got.UserInfo.LicenseInfoList[0].SubscriptionID = "changed"
			if !*full.Feature.ZoomPhone || full.DivisionIDs[0] != "d" || full.LicenseInfoList[0].SubscriptionID != "S" {
				t.Fatalf("ForZoom() result shares memory with its receiver")
			}
		})
	}
	if got := (Request{Action: ActionCreate}).ForZoom(); !reflect.DeepEqual(got, Request{Action: ActionCreate}) {
		t.Errorf("Request{create}.ForZoom() = %#v; want it unchanged", got)
	}
}
