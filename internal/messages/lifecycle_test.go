package messages

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

func strPtr(s string) *string { return &s }
func intPtr(i int) *int       { return &i }
func i64Ptr(i int64) *int64   { return &i }

// update builds an update body from the raw JSON of user.
func update(user string) string {
	return `{"email":"alice@example.com","user":` + user + `}`
}

// wantInvalid checks that err is a *ValidationError matching ErrInvalid
// with exactly want.
func wantInvalid(t *testing.T, call string, err error, want []FieldError) {
	t.Helper()
	if len(call) > 200 {
		call = call[:200] + "..."
	}
	var ve *ValidationError
	if !errors.Is(err, ErrInvalid) || !errors.As(err, &ve) {
		t.Fatalf("%s = %v; want a *ValidationError matching ErrInvalid", call, err)
	}
	if !reflect.DeepEqual(ve.Fields, want) {
		t.Errorf("%s fields = %q; want %q", call, ve.Fields, want)
	}
}

func TestOperationValid(t *testing.T) {
	for _, o := range Operations {
		if !o.Valid() {
			t.Errorf("Operation(%q).Valid() = false; want true", o)
		}
	}
	for _, o := range []Operation{"", "Update", "create", "disassociate", "status", "delete "} {
		if o.Valid() {
			t.Errorf("Operation(%q).Valid() = true; want false", o)
		}
	}
	if want := []Operation{"update", "deactivate", "activate", "delete"}; !reflect.DeepEqual(Operations, want) {
		t.Errorf("Operations = %q; want %q", Operations, want)
	}
}

func TestDecodeUpdateValid(t *testing.T) {
	full := `{"first_name":"Alice","last_name":"Liddell","display_name":"Alice L","dept":"R&D","job_title":"CTO",
		"company":"Example, Inc.","location":"San Jose","cost_center":"CC-1","manager":"bob@example.com",
		"timezone":"America/Chicago","language":"en-US","pronouns":"she/her","zoom_one_type":576460752303423488,
		"feature":{"zoom_phone":false},"custom_attributes":[{"key":"cbf_1","name":"A1","value":"1"},{"key":"cbf_2"}]}`
	tests := []struct {
		name      string
		in        string
		wantEmail string
		want      UserUpdate
		wantUser  string // the raw user object; "" means the user member of in as written
	}{
		{
			name:      "minimal",
			in:        update(`{"job_title":"CTO"}`),
			wantEmail: "alice@example.com",
			want:      UserUpdate{JobTitle: strPtr("CTO")},
		},
		{
			name:      "every field, zoom_one_type beyond 2^53",
			in:        update(full),
			wantEmail: "alice@example.com",
			want: UserUpdate{
				FirstName: strPtr("Alice"), LastName: strPtr("Liddell"), DisplayName: strPtr("Alice L"),
				Dept: strPtr("R&D"), JobTitle: strPtr("CTO"), Company: strPtr("Example, Inc."),
				Location: strPtr("San Jose"), CostCenter: strPtr("CC-1"), Manager: strPtr("bob@example.com"),
				Timezone: strPtr("America/Chicago"), Language: strPtr("en-US"), Pronouns: strPtr("she/her"),
				ZoomOneType: i64Ptr(576460752303423488), Feature: &UpdateFeature{ZoomPhone: false},
				CustomAttributes: []CustomAttribute{{Key: "cbf_1", Name: "A1", Value: "1"}, {Key: "cbf_2"}},
			},
		},
		{"type 1", update(`{"type":1}`), "alice@example.com", UserUpdate{Type: intPtr(1)}, ""},
		{"type 2", update(`{"type":2}`), "alice@example.com", UserUpdate{Type: intPtr(2)}, ""},
		{"type 4", update(`{"type":4}`), "alice@example.com", UserUpdate{Type: intPtr(4)}, ""},
		{"plan_united_type", update(`{"plan_united_type":"131072"}`), "alice@example.com", UserUpdate{PlanUnitedType: strPtr("131072")}, ""},
		{"plan_united_type none", update(`{"plan_united_type":"none"}`), "alice@example.com", UserUpdate{PlanUnitedType: strPtr("none")}, ""},
		{"zoom_one_type 0 turns it off", update(`{"zoom_one_type":0}`), "alice@example.com", UserUpdate{ZoomOneType: i64Ptr(0)}, ""},
		{
			name:      "empty strings clear, and count as fields",
			in:        update(`{"display_name":"","dept":""}`),
			wantEmail: "alice@example.com",
			want:      UserUpdate{DisplayName: strPtr(""), Dept: strPtr("")},
		},
		{
			name:      "null members are absent but kept in the raw object",
			in:        update(`{"first_name":null,"pronouns":"they","type":null,"feature":null}`),
			wantEmail: "alice@example.com",
			want:      UserUpdate{Pronouns: strPtr("they")},
		},
		{
			name:      "one licence field with the others null",
			in:        update(`{"type":2,"plan_united_type":null,"zoom_one_type":null}`),
			wantEmail: "alice@example.com",
			want:      UserUpdate{Type: intPtr(2)},
		},
		{
			name:      "empty custom_attributes array",
			in:        update(`{"custom_attributes":[]}`),
			wantEmail: "alice@example.com",
			want:      UserUpdate{CustomAttributes: []CustomAttribute{}},
		},
		{
			name:      "custom attribute with null name",
			in:        update(`{"custom_attributes":[{"key":"k","name":null,"value":"v"}]}`),
			wantEmail: "alice@example.com",
			want:      UserUpdate{CustomAttributes: []CustomAttribute{{Key: "k", Value: "v"}}},
		},
		{
			name: "limits in multibyte characters",
			in: update(`{"first_name":"` + strings.Repeat("é", 64) + `","display_name":"` + strings.Repeat("😀", 128) +
				`","company":"` + strings.Repeat("山", 255) + `","location":"` + strings.Repeat("é", 256) +
				`","job_title":"` + strings.Repeat("é", 128) + `","timezone":"` + strings.Repeat("x", 64) + `"}`),
			wantEmail: "alice@example.com",
			want: UserUpdate{
				FirstName: strPtr(strings.Repeat("é", 64)), DisplayName: strPtr(strings.Repeat("😀", 128)),
				Company: strPtr(strings.Repeat("山", 255)), Location: strPtr(strings.Repeat("é", 256)),
				JobTitle: strPtr(strings.Repeat("é", 128)), Timezone: strPtr(strings.Repeat("x", 64)),
			},
		},
		{
			name:      "escapes, whitespace and member order",
			in:        " \n{ \"user\" : { \"last_name\" : \"O\\u0027Brien \\\"B\\\"\" } , \"email\" : \"b\\u0040example.com\" }\t",
			wantEmail: "b@example.com",
			want:      UserUpdate{LastName: strPtr(`O'Brien "B"`)},
			wantUser:  `{ "last_name" : "O\u0027Brien \"B\"" }`,
		},
		{
			name:      "email with upper case and plus",
			in:        `{"email":"Alice+Zoom@Example.COM","user":{"dept":"x"}}`,
			wantEmail: "Alice+Zoom@Example.COM",
			want:      UserUpdate{Dept: strPtr("x")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeUpdate([]byte(tc.in))
			if err != nil {
				t.Fatalf("DecodeUpdate(%q) error = %v; want nil", tc.in, err)
			}
			if got.Email != tc.wantEmail {
				t.Errorf("DecodeUpdate(%q).Email = %q; want %q", tc.in, got.Email, tc.wantEmail)
			}
			if !reflect.DeepEqual(got.Profile, tc.want) {
				t.Errorf("DecodeUpdate(%q).Profile = %#v; want %#v", tc.in, got.Profile, tc.want)
			}
			wantUser := tc.wantUser
			if wantUser == "" {
				wantUser = strings.TrimSuffix(strings.TrimPrefix(tc.in, `{"email":"`+tc.wantEmail+`","user":`), "}")
			}
			if string(got.User) != wantUser {
				t.Errorf("DecodeUpdate(%q).User = %s; want the object byte for byte: %s", tc.in, got.User, wantUser)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("DecodeUpdate(%q).Validate() = %v; want nil", tc.in, err)
			}
		})
	}
}

// TestDecodeUpdateCopies checks that the raw user object does not alias
// the caller's buffer, which a NATS client may reuse.
func TestDecodeUpdateCopies(t *testing.T) {
	in := []byte(update(`{"dept":"x"}`))
	r, err := DecodeUpdate(in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = ' '
	}
	if string(r.User) != `{"dept":"x"}` {
		t.Errorf("DecodeUpdate(...).User = %q after the input was overwritten; want a copy", r.User)
	}
}

func TestDecodeUpdateInvalid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []FieldError
	}{
		// Whole-body problems, as for Decode.
		{"empty", "", []FieldError{{"", "body is empty"}}},
		{"not JSON", "email=a@example.com", []FieldError{{"", "body is not valid JSON (syntax error near byte offset 1)"}}},
		{"truncated", `{"email":"a@example.com","user":{"dept"`, []FieldError{{"", "body is truncated JSON"}}},
		{"array", `[` + update(`{"dept":"x"}`) + `]`, []FieldError{{"", "body must be a JSON object"}}},
		{"trailing data", update(`{"dept":"x"}`) + `{}`, []FieldError{{"", "body has data after the JSON object"}}},
		{"not UTF-8", update("{\"dept\":\"\xff\"}"), []FieldError{{"", "body is not valid UTF-8"}}},
		{
			name: "one byte over the limit",
			in:   update(`{"dept":"x"}`) + strings.Repeat(" ", MaxBodyBytes+1-len(update(`{"dept":"x"}`))),
			want: []FieldError{{"", fmt.Sprintf("body is %d bytes; the limit is %d bytes", MaxBodyBytes+1, MaxBodyBytes)}},
		},
		{
			name: "nested too deeply",
			in:   update(`{"dept":"x","x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`),
			want: []FieldError{{"", "body nests JSON deeper than 32 levels"}},
		},

		// Missing, unknown, duplicate and mistyped members.
		{"empty object", `{}`, []FieldError{{"email", "is required"}, {"user", "is required"}}},
		{"nulls", `{"email":null,"user":null}`, []FieldError{{"email", "is required"}, {"user", "is required"}}},
		{"empty email", `{"email":"","user":{"dept":"x"}}`, []FieldError{{"email", "is required"}}},
		{
			name: "unknown fields at every level",
			in: `{"email":"a@example.com","action":"update","user":{"dept":"x","group_id":"g","feature":{"zoom_phone":true,"zoom_one_type":16},
				"custom_attributes":[{"key":"k","id":"1"}]}}`,
			want: []FieldError{
				{"action", "unknown field"},
				{"user.custom_attributes[0].id", "unknown field"},
				{"user.feature.zoom_one_type", "unknown field"},
				{"user.group_id", "unknown field"},
			},
		},
		{
			name: "fields of other calls are unknown",
			in:   update(`{"dept":"x","license_info_list":[],"division_ids":["d"],"vanity_name":"v","pmi":1234567890}`),
			want: []FieldError{
				{"user.division_ids", "unknown field"}, {"user.license_info_list", "unknown field"},
				{"user.pmi", "unknown field"}, {"user.vanity_name", "unknown field"},
			},
		},
		{
			name: "duplicate keys at every level",
			in: `{"email":"a@example.com","email":"b@example.com","user":{"dept":"x","dept":"y",
				"feature":{"zoom_phone":true,"zoom_phone":false},"custom_attributes":[{"key":"k","key":"l"}]}}`,
			want: []FieldError{
				{"email", "duplicate key"},
				{"user.custom_attributes[0].key", "duplicate key"},
				{"user.dept", "duplicate key"},
				{"user.feature.zoom_phone", "duplicate key"},
			},
		},
		{
			name: "every field mistyped",
			in: `{"email":1,"user":{"first_name":1,"last_name":true,"display_name":[],"type":"2","dept":{},"job_title":2,
				"company":false,"location":1,"cost_center":1,"manager":1,"timezone":1,"language":1,"pronouns":1,
				"feature":[],"custom_attributes":{}}}`,
			want: []FieldError{
				{"email", "must be a string"},
				{"user.company", "must be a string"},
				{"user.cost_center", "must be a string"},
				{"user.custom_attributes", "must be an array of objects"},
				{"user.dept", "must be a string"},
				{"user.display_name", "must be a string"},
				{"user.feature", "must be an object"},
				{"user.first_name", "must be a string"},
				{"user.job_title", "must be a string"},
				{"user.language", "must be a string"},
				{"user.last_name", "must be a string"},
				{"user.location", "must be a string"},
				{"user.manager", "must be a string"},
				{"user.pronouns", "must be a string"},
				{"user.timezone", "must be a string"},
				{"user.type", "must be an integer"},
			},
		},
		{"plan_united_type as a number", update(`{"plan_united_type":1}`), []FieldError{{"user.plan_united_type", "must be a string"}}},
		{"zoom_one_type as a string", update(`{"zoom_one_type":"16"}`), []FieldError{{"user.zoom_one_type", "must be an integer"}}},
		{"zoom_one_type as a float", update(`{"zoom_one_type":1.6e1}`), []FieldError{{"user.zoom_one_type", "must be an integer"}}},
		{
			name: "zoom_one_type beyond 64 bits",
			in:   update(`{"zoom_one_type":18446744073709551616}`),
			want: []FieldError{{"user.zoom_one_type", "must be an integer that fits in 64 bits"}},
		},
		{"type as 2.0", update(`{"type":2.0}`), []FieldError{{"user.type", "must be an integer"}}},
		{"zoom_phone as a string", update(`{"feature":{"zoom_phone":"true"}}`), []FieldError{{"user.feature.zoom_phone", "must be a boolean"}}},
		{
			name: "mistyped custom attributes",
			in:   update(`{"custom_attributes":["k",{"key":1,"name":[],"value":false}]}`),
			want: []FieldError{
				{"user.custom_attributes[0]", "must be an object"},
				{"user.custom_attributes[1].key", "must be a string"},
				{"user.custom_attributes[1].name", "must be a string"},
				{"user.custom_attributes[1].value", "must be a string"},
			},
		},
		{"user as a string", `{"email":"a@example.com","user":"{\"dept\":\"x\"}"}`, []FieldError{{"user", "must be an object"}}},
		{"user as an array", `{"email":"a@example.com","user":[{"dept":"x"}]}`, []FieldError{{"user", "must be an object"}}},

		// The update's own rules.
		{"empty user", update(`{}`), []FieldError{{"user", "must hold at least one profile field"}}},
		{"only nulls", update(`{"dept":null,"type":null}`), []FieldError{{"user", "must hold at least one profile field"}}},
		{
			name: "only unknown fields",
			in:   update(`{"phone":"555"}`),
			want: []FieldError{{"user", "must hold at least one profile field"}, {"user.phone", "unknown field"}},
		},
		{"email inside user", update(`{"dept":"x","email":"new@example.com"}`), []FieldError{{"user.email", "the e-mail cannot be changed here"}}},
		{"email inside user, null", update(`{"dept":"x","email":null}`), []FieldError{{"user.email", "the e-mail cannot be changed here"}}},
		{"password inside user", update(`{"dept":"x","password":"Secret123"}`), []FieldError{{"user.password", "passwords are not set through updates"}}},
		{
			name: "only email and password",
			in:   update(`{"email":"new@example.com","password":"x","password":"y"}`),
			want: []FieldError{
				{"user", "must hold at least one profile field"},
				{"user.email", "the e-mail cannot be changed here"},
				{"user.password", "duplicate key"},
				{"user.password", "passwords are not set through updates"},
			},
		},
		{
			name: "type and plan_united_type",
			in:   update(`{"type":2,"plan_united_type":"1"}`),
			want: []FieldError{{"user", "may change only one of type, plan_united_type and zoom_one_type at a time"}},
		},
		{
			name: "type and zoom_one_type",
			in:   update(`{"type":1,"zoom_one_type":16}`),
			want: []FieldError{{"user", "may change only one of type, plan_united_type and zoom_one_type at a time"}},
		},
		{
			name: "all three licence fields, one mistyped",
			in:   update(`{"type":"2","plan_united_type":"1","zoom_one_type":16}`),
			want: []FieldError{
				{"user", "may change only one of type, plan_united_type and zoom_one_type at a time"},
				{"user.type", "must be an integer"},
			},
		},
		{"type 3", update(`{"type":3}`), []FieldError{{"user.type", "must be one of 1, 2, 4"}}},
		{"type 99", update(`{"type":99}`), []FieldError{{"user.type", "must be one of 1, 2, 4"}}},
		{"type 0", update(`{"type":0}`), []FieldError{{"user.type", "must be one of 1, 2, 4"}}},
		{"type beyond 32 bits", update(`{"type":4294967298}`), []FieldError{{"user.type", "must be one of 1, 2, 4"}}},
		{"plan_united_type not digits", update(`{"plan_united_type":"pro"}`), []FieldError{{"user.plan_united_type", `must be a string of digits such as "1", or "none"`}}},
		{"plan_united_type empty", update(`{"plan_united_type":""}`), []FieldError{{"user.plan_united_type", `must be a string of digits such as "1", or "none"`}}},
		{"plan_united_type None", update(`{"plan_united_type":"None"}`), []FieldError{{"user.plan_united_type", `must be a string of digits such as "1", or "none"`}}},
		{"negative zoom_one_type", update(`{"zoom_one_type":-16}`), []FieldError{{"user.zoom_one_type", "must not be negative"}}},
		{"empty feature", update(`{"feature":{}}`), []FieldError{{"user.feature", "must hold zoom_phone"}}},
		{"feature with null zoom_phone", update(`{"feature":{"zoom_phone":null}}`), []FieldError{{"user.feature", "must hold zoom_phone"}}},
		{
			name: "every string one character too long",
			in: update(`{"first_name":"` + strings.Repeat("é", 65) + `","last_name":"` + strings.Repeat("x", 65) +
				`","display_name":"` + strings.Repeat("😀", 129) + `","dept":"` + strings.Repeat("x", 129) +
				`","job_title":"` + strings.Repeat("x", 129) + `","company":"` + strings.Repeat("x", 256) +
				`","location":"` + strings.Repeat("x", 257) + `","cost_center":"` + strings.Repeat("x", 129) +
				`","manager":"` + strings.Repeat("x", 129) + `","timezone":"` + strings.Repeat("x", 65) +
				`","language":"` + strings.Repeat("x", 65) + `","pronouns":"` + strings.Repeat("x", 65) + `"}`),
			want: []FieldError{
				{"user.company", "must be at most 255 characters (got 256)"},
				{"user.cost_center", "must be at most 128 characters (got 129)"},
				{"user.dept", "must be at most 128 characters (got 129)"},
				{"user.display_name", "must be at most 128 characters (got 129)"},
				{"user.first_name", "must be at most 64 characters (got 65)"},
				{"user.job_title", "must be at most 128 characters (got 129)"},
				{"user.language", "must be at most 64 characters (got 65)"},
				{"user.last_name", "must be at most 64 characters (got 65)"},
				{"user.location", "must be at most 256 characters (got 257)"},
				{"user.manager", "must be at most 128 characters (got 129)"},
				{"user.pronouns", "must be at most 64 characters (got 65)"},
				{"user.timezone", "must be at most 64 characters (got 65)"},
			},
		},
		{
			name: "control characters",
			in:   update(`{"first_name":"A\tB","job_title":"x\u0000","manager":"m\r\nBcc: x","custom_attributes":[{"key":"k\n","value":"v\u0085"}]}`),
			want: []FieldError{
				{"user.custom_attributes[0].key", "must not contain control characters"},
				{"user.custom_attributes[0].value", "must not contain control characters"},
				{"user.first_name", "must not contain control characters"},
				{"user.job_title", "must not contain control characters"},
				{"user.manager", "must not contain control characters"},
			},
		},
		{
			name: "custom attribute rules",
			in: update(`{"custom_attributes":[{"name":"n"},{"key":null},{"key":"` + strings.Repeat("k", 129) + `","name":"` +
				strings.Repeat("n", 129) + `","value":"` + strings.Repeat("v", 257) + `"},{"key":"a"},{"key":"b"},{"key":"c"}]}`),
			want: []FieldError{
				{"user.custom_attributes", "must have at most 5 items (got 6)"},
				{"user.custom_attributes[0].key", "is required"},
				{"user.custom_attributes[1].key", "is required"},
				{"user.custom_attributes[2].key", "must be at most 128 characters (got 129)"},
				{"user.custom_attributes[2].name", "must be at most 128 characters (got 129)"},
				{"user.custom_attributes[2].value", "must be at most 256 characters (got 257)"},
			},
		},
		{
			name: "email rules are creation's",
			in:   `{"email":"Alice <a@example.com>","user":{"dept":"x"}}`,
			want: []FieldError{{"email", "must be a bare email address such as name@example.com, without a display name or angle brackets"}},
		},
		{
			name: "email too long",
			in:   `{"email":"` + strings.Repeat("é", 117) + `@example.com","user":{"dept":"x"}}`,
			want: []FieldError{{"email", "must be at most 128 characters (got 129)"}},
		},
		{
			name: "all problems at once, sorted",
			in:   `{"user":{"type":7,"zoom_one_type":16,"email":"x","feature":{},"zzz":1},"email":"a b@example.com","x":1}`,
			want: []FieldError{
				{"email", "must not contain spaces"},
				{"user", "may change only one of type, plan_united_type and zoom_one_type at a time"},
				{"user.email", "the e-mail cannot be changed here"},
				{"user.feature", "must hold zoom_phone"},
				{"user.type", "must be one of 1, 2, 4"},
				{"user.zzz", "unknown field"},
				{"x", "unknown field"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeUpdate([]byte(tc.in))
			wantInvalid(t, fmt.Sprintf("DecodeUpdate(%q)", tc.in), err, tc.want)
		})
	}
}

// TestDecodeUpdatePartial checks that a failed decode still yields the
// email for the failure event.
func TestDecodeUpdatePartial(t *testing.T) {
	in := `{"email":"a@example.com","user":{"type":9}}`
	got, err := DecodeUpdate([]byte(in))
	if err == nil || got.Email != "a@example.com" {
		t.Errorf("DecodeUpdate(%q) = %v, %v; want an error and the email", in, got, err)
	}
}

func TestUpdateRequestValidate(t *testing.T) {
	tests := []struct {
		name string
		in   UpdateRequest
		want []FieldError // nil means valid
	}{
		{"valid", UpdateRequest{Email: "a@example.com", User: []byte(`{"dept":"x"}`)}, nil},
		{"profile is not consulted", UpdateRequest{Email: "a@example.com", User: []byte(`{"dept":"x"}`), Profile: UserUpdate{Type: intPtr(9)}}, nil},
		{"zero", UpdateRequest{}, []FieldError{{"email", "is required"}, {"user", "is required"}}},
		{"user not JSON", UpdateRequest{Email: "a@example.com", User: []byte(`{"dept":`)}, []FieldError{{"user", "value is truncated JSON"}}},
		{"user an array", UpdateRequest{Email: "a@example.com", User: []byte(`[]`)}, []FieldError{{"user", "value must be a JSON object"}}},
		{"user not UTF-8", UpdateRequest{Email: "a@example.com", User: []byte("{\"dept\":\"\xff\"}")}, []FieldError{{"user", "must be valid UTF-8"}}},
		{
			name: "user too large",
			in:   UpdateRequest{Email: "a@example.com", User: []byte(`{"dept":"` + strings.Repeat("x", MaxBodyBytes) + `"}`)},
			want: []FieldError{{"user", "must be at most 65536 bytes"}},
		},
		{
			name: "rules of the user object",
			in:   UpdateRequest{Email: "a@example.com", User: []byte(`{"type":2,"zoom_one_type":16,"password":"p","dept":"x","dept":"y"}`)},
			want: []FieldError{
				{"user", "may change only one of type, plan_united_type and zoom_one_type at a time"},
				{"user.dept", "duplicate key"},
				{"user.password", "passwords are not set through updates"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.in.Validate()
			if tc.want == nil {
				if err != nil {
					t.Errorf("%v.Validate() = %v; want nil", tc.in, err)
				}
				return
			}
			wantInvalid(t, fmt.Sprintf("%v.Validate()", tc.in), err, tc.want)
		})
	}
}

func TestDecodeStatus(t *testing.T) {
	valid := []struct{ in, want string }{
		{`{"email":"alice@example.com"}`, "alice@example.com"},
		{` {"email" : "B\u00f6b@Example.de"} `, "Böb@Example.de"},
		{`{"email":"` + strings.Repeat("a", 116) + `@example.com"}`, strings.Repeat("a", 116) + "@example.com"},
	}
	for _, tc := range valid {
		got, err := DecodeStatus([]byte(tc.in))
		if err != nil || got != (StatusRequest{Email: tc.want}) {
			t.Errorf("DecodeStatus(%q) = %v, %v; want email %q", tc.in, got, err, tc.want)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("DecodeStatus(%q).Validate() = %v; want nil", tc.in, err)
		}
	}

	invalid := []struct {
		name string
		in   string
		want []FieldError
	}{
		{"empty", ``, []FieldError{{"", "body is empty"}}},
		{"not UTF-8", "{\"email\":\"\xc3(@example.com\"}", []FieldError{{"", "body is not valid UTF-8"}}},
		{"too large", `{"email":"a@example.com"}` + strings.Repeat(" ", MaxBodyBytes), []FieldError{{"", fmt.Sprintf("body is %d bytes; the limit is %d bytes", MaxBodyBytes+len(`{"email":"a@example.com"}`), MaxBodyBytes)}}},
		{"string", `"a@example.com"`, []FieldError{{"", "body must be a JSON object"}}},
		{"empty object", `{}`, []FieldError{{"email", "is required"}}},
		{"null email", `{"email":null}`, []FieldError{{"email", "is required"}}},
		{"empty email", `{"email":""}`, []FieldError{{"email", "is required"}}},
		{"email mistyped", `{"email":["a@example.com"]}`, []FieldError{{"email", "must be a string"}}},
		{"duplicate email", `{"email":"a@example.com","email":"b@example.com"}`, []FieldError{{"email", "duplicate key"}}},
		{"unknown fields", `{"email":"a@example.com","action":"deactivate","user":{}}`, []FieldError{{"action", "unknown field"}, {"user", "unknown field"}}},
		{"wrong case", `{"Email":"a@example.com"}`, []FieldError{{"Email", "unknown field"}, {"email", "is required"}}},
		{"no @", `{"email":"alice"}`, []FieldError{{"email", "must be a bare email address such as name@example.com, without a display name"}}},
		{"CRLF", `{"email":"a@example.com\r\n"}`, []FieldError{{"email", "must not contain control characters"}}},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeStatus([]byte(tc.in))
			wantInvalid(t, fmt.Sprintf("DecodeStatus(%q)", tc.in), err, tc.want)
		})
	}
	wantInvalid(t, "StatusRequest{}.Validate()", StatusRequest{}.Validate(), []FieldError{{"email", "is required"}})
}

func TestDecodeDeleteValid(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		in   string
		want DeleteRequest
	}{
		{`{"email":"a@example.com"}`, DeleteRequest{Email: "a@example.com", Action: "disassociate"}},
		{`{"email":"a@example.com","action":null}`, DeleteRequest{Email: "a@example.com", Action: "disassociate"}},
		{`{"email":"a@example.com","action":"disassociate"}`, DeleteRequest{Email: "a@example.com", Action: "disassociate"}},
		{`{"email":"a@example.com","action":"delete"}`, DeleteRequest{Email: "a@example.com", Action: "delete"}},
		{
			`{"email":"a@example.com","transfer_email":"b@example.com"}`,
			DeleteRequest{Email: "a@example.com", Action: "disassociate", TransferEmail: "b@example.com"},
		},
		{
			`{"email":"a@example.com","action":"delete","transfer_email":"b@example.com","transfer_meeting":true,
			"transfer_webinar":false,"transfer_recording":true,"transfer_whiteboard":false,"transfer_clipfiles":true,
			"transfer_notes":false,"transfer_docs":true}`,
			DeleteRequest{Email: "a@example.com", Action: "delete", TransferEmail: "b@example.com",
				TransferMeeting: &yes, TransferWebinar: &no, TransferRecording: &yes, TransferWhiteboard: &no,
				TransferClipfiles: &yes, TransferNotes: &no, TransferDocs: &yes},
		},
		{
			`{"email":"a@example.com","transfer_email":"b@example.com","transfer_notes":null}`,
			DeleteRequest{Email: "a@example.com", Action: "disassociate", TransferEmail: "b@example.com"},
		},
		{
			`{"transfer_meeting":false,"transfer_email":"a+b@example.com","email":"a@example.com"}`,
			DeleteRequest{Email: "a@example.com", Action: "disassociate", TransferEmail: "a+b@example.com", TransferMeeting: &no},
		},
	}
	for _, tc := range tests {
		got, err := DecodeDelete([]byte(tc.in))
		if err != nil {
			t.Errorf("DecodeDelete(%q) error = %v; want nil", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("DecodeDelete(%q) = %#v; want %#v", tc.in, got, tc.want)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("DecodeDelete(%q).Validate() = %v; want nil", tc.in, err)
		}
	}
}

func TestDecodeDeleteInvalid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []FieldError
	}{
		{"empty", ` `, []FieldError{{"", "body is empty"}}},
		{"syntax", `{"email":"a@example.com",}`, []FieldError{{"", "body is not valid JSON (syntax error near byte offset 25)"}}},
		{"not UTF-8", "{\"email\":\"a@example.com\",\"transfer_email\":\"\xe2\x82\"}", []FieldError{{"", "body is not valid UTF-8"}}},
		{"deep", `{"email":"a@example.com","x":` + strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40) + `}`, []FieldError{{"", "body nests JSON deeper than 32 levels"}}},
		{"empty object", `{}`, []FieldError{{"email", "is required"}}},
		{"unknown fields", `{"email":"a@example.com","transfer_visitors":true,"encrypted_email":false}`, []FieldError{{"encrypted_email", "unknown field"}, {"transfer_visitors", "unknown field"}}},
		{"duplicates", `{"email":"a@example.com","action":"delete","action":"disassociate"}`, []FieldError{{"action", "duplicate key"}}},
		{
			name: "every field mistyped",
			in: `{"email":1,"action":true,"transfer_email":[],"transfer_meeting":"true","transfer_webinar":1,
				"transfer_recording":{},"transfer_whiteboard":"false","transfer_clipfiles":0,"transfer_notes":[],"transfer_docs":"yes"}`,
			want: []FieldError{
				{"action", "must be a string"},
				{"email", "must be a string"},
				{"transfer_clipfiles", "must be a boolean"},
				{"transfer_docs", "must be a boolean"},
				{"transfer_email", "must be a string"},
				{"transfer_meeting", "must be a boolean"},
				{"transfer_notes", "must be a boolean"},
				{"transfer_recording", "must be a boolean"},
				{"transfer_webinar", "must be a boolean"},
				{"transfer_whiteboard", "must be a boolean"},
			},
		},
		{"unknown action", `{"email":"a@example.com","action":"remove"}`, []FieldError{{"action", "must be disassociate or delete"}}},
		{"action in the wrong case", `{"email":"a@example.com","action":"Delete"}`, []FieldError{{"action", "must be disassociate or delete"}}},
		{"empty action", `{"email":"a@example.com","action":""}`, []FieldError{{"action", "is required"}}},
		{"flag without transfer_email", `{"email":"a@example.com","transfer_recording":true}`, []FieldError{{"transfer_email", "is required when a transfer_* flag is given"}}},
		{"false flag without transfer_email", `{"email":"a@example.com","transfer_docs":false}`, []FieldError{{"transfer_email", "is required when a transfer_* flag is given"}}},
		{"flag with empty transfer_email", `{"email":"a@example.com","transfer_email":"","transfer_docs":true}`, []FieldError{{"transfer_email", "is required when a transfer_* flag is given"}}},
		{"flag with null transfer_email", `{"email":"a@example.com","transfer_email":null,"transfer_notes":true}`, []FieldError{{"transfer_email", "is required when a transfer_* flag is given"}}},
		{
			name: "flag with a mistyped transfer_email",
			in:   `{"email":"a@example.com","transfer_email":7,"transfer_meeting":true}`,
			want: []FieldError{{"transfer_email", "must be a string"}},
		},
		{"transfer to oneself", `{"email":"a@example.com","transfer_email":"a@example.com"}`, []FieldError{{"transfer_email", "must be an address other than email"}}},
		{"transfer to oneself in another case", `{"email":"Ann@Example.com","transfer_email":"aNN@example.COM","transfer_meeting":true}`, []FieldError{{"transfer_email", "must be an address other than email"}}},
		{"transfer to oneself with the Kelvin sign", `{"email":"kim@example.com","transfer_email":"\u212aim@example.com"}`, []FieldError{{"transfer_email", "must be an address other than email"}}},
		{"transfer_email not an address", `{"email":"a@example.com","transfer_email":"Bob <b@example.com>"}`, []FieldError{{"transfer_email", "must be a bare email address such as name@example.com, without a display name or angle brackets"}}},
		{"transfer_email too long", `{"email":"a@example.com","transfer_email":"` + strings.Repeat("b", 117) + `@example.com"}`, []FieldError{{"transfer_email", "must be at most 128 characters (got 129)"}}},
		{
			name: "all problems at once",
			in:   `{"email":"bad","action":"purge","transfer_webinar":true,"x":null}`,
			want: []FieldError{
				{"action", "must be disassociate or delete"},
				{"email", "must be a bare email address such as name@example.com, without a display name"},
				{"transfer_email", "is required when a transfer_* flag is given"},
				{"x", "unknown field"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeDelete([]byte(tc.in))
			wantInvalid(t, fmt.Sprintf("DecodeDelete(%q)", tc.in), err, tc.want)
		})
	}
	wantInvalid(t, "DeleteRequest{}.Validate()", DeleteRequest{}.Validate(), []FieldError{{"action", "is required"}, {"email", "is required"}})
}

// TestLifecycleNotFormatted checks that no verb prints an email in full or
// a profile value, for every request type, by value and by pointer.
func TestLifecycleNotFormatted(t *testing.T) {
	yes := true
	up, err := DecodeUpdate([]byte(`{"email":"alice.secret@example.com","user":{"first_name":"Alicesecret",
		"last_name":"Liddellsecret","display_name":"DisplaySecret","dept":"DeptSecret","job_title":"TitleSecret",
		"company":"CompanySecret","location":"LocationSecret","cost_center":"CenterSecret","manager":"manager.secret@example.com",
		"timezone":"Zone/Secret","language":"LangSecret","pronouns":"PronounSecret","plan_united_type":"16",
		"feature":{"zoom_phone":true},"custom_attributes":[{"key":"cbf_1","name":"Badge","value":"ValueSecret"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	st := StatusRequest{Email: "alice.secret@example.com"}
	del := DeleteRequest{Email: "alice.secret@example.com", Action: "delete", TransferEmail: "bob.secret@example.com", TransferDocs: &yes}
	values := []any{up, &up, up.Profile, &up.Profile, up.Profile.CustomAttributes, st, &st, del, &del,
		[]UpdateRequest{up}, map[string]DeleteRequest{"d": del}, struct{ S StatusRequest }{st}}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.4v", "%-v"}
	for _, v := range values {
		for _, verb := range verbs {
			got := fmt.Sprintf(verb, v)
			low := strings.ToLower(got)
			for _, secret := range []string{"secret", fmt.Sprintf("%x", "secret"), fmt.Sprintf("%X", "secret")} {
				if strings.Contains(low, strings.ToLower(secret)) {
					t.Errorf("Sprintf(%q, %T) = %q; want no personal data", verb, v, got)
				}
			}
		}
	}
	got := fmt.Sprintf("%v", up)
	for _, want := range []string{"a***@example.com", "PlanUnitedType:16", "ZoomPhone:true", "Key:cbf_1 Name:Badge Value:[redacted]", "FirstName:[redacted]"} {
		if !strings.Contains(got, want) {
			t.Errorf("Sprintf(%%v, update) = %q; want it to contain %q", got, want)
		}
	}
	if got, want := fmt.Sprintf("%v", del), "{Email:a***@example.com Action:delete TransferEmail:b***@example.com TransferDocs:true}"; got != want {
		t.Errorf("Sprintf(%%v, delete) = %q; want %q", got, want)
	}
	if got, want := fmt.Sprintf("%#v", st), `messages.StatusRequest{Email:"a***@example.com"}`; got != want {
		t.Errorf("Sprintf(%%#v, status) = %q; want %q", got, want)
	}
	// Errors never quote values either.
	_, err = DecodeUpdate([]byte(`{"email":"secret <x@example.com>","user":{"type":"secret","dept":"` + strings.Repeat("secret", 30) + `"}}`))
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("DecodeUpdate error = %v; want one that quotes no value", err)
	}
}

func TestUserKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"alice@example.com", "alice@example.com"},
		{"Alice@Example.COM", "alice@example.com"},
		{"ALICE+ZOOM@EXAMPLE.COM", "alice+zoom@example.com"},
		{"Jörg@Example.de", "jörg@example.de"},
		{"JÖRG@example.de", "jörg@example.de"},
		{"\u212aim@example.com", "kim@example.com"}, // Kelvin sign
		{"Kim@example.com", "kim@example.com"},
		{"ſam@example.com", "sam@example.com"}, // long s
		{"ΣΊΣΥΦΟΣ@example.gr", "σίσυφοσ@example.gr"},
		{"σίσυφος@example.gr", "σίσυφοσ@example.gr"}, // final sigma folds with sigma
		{"", ""},
	}
	for _, tc := range tests {
		if got := UserKey(tc.in); got != tc.want {
			t.Errorf("UserKey(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
	// EqualFold is the relation the key must respect, for every rune that
	// has a case.
	for r := rune(0); r <= 0x1FFFF; r++ {
		for f := r; ; {
			f = unicode.SimpleFold(f)
			if f == r {
				break
			}
			a, b := "x"+string(r)+"@example.com", "x"+string(f)+"@example.com"
			if UserKey(a) != UserKey(b) {
				t.Fatalf("UserKey(%q) = %q, UserKey(%q) = %q; want equal keys, since EqualFold holds", a, UserKey(a), b, UserKey(b))
			}
		}
	}
}

// TestBestEffortEmail covers bodies of every kind, valid or not.
func TestBestEffortEmail(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"update", update(`{"dept":"x"}`), "alice@example.com"},
		{"email after user", `{"user":{"email":"new@example.com","x":[1,{"y":"}"}]},"email":"a@example.com"}`, "a@example.com"},
		{"status", `{"email":"a@example.com"}`, "a@example.com"},
		{"delete", `{"action":"delete","transfer_email":"b@example.com","email":"a@example.com"}`, "a@example.com"},
		{"create", body("create", `{"type":1,"email":"c@example.com"}`), "c@example.com"},
		{"create, string form", body("create", strconv.Quote(`{"type":1,"email":"d@example.com"}`)), "d@example.com"},
		{"escapes", `{"em\u0061il":"e\u0040example.com\ud83d\ude00"}`, "e@example.com😀"},
		{"escaped quote in an earlier value", `{"x":"a\"b\\","email":"f@example.com"}`, "f@example.com"},
		{"invalid request", `{"email":"g@example.com","user":{"type":"bad"},"zzz":1}`, "g@example.com"},
		{"truncated after the email", `{"email":"h@example.com","user":{"dept`, "h@example.com"},
		{"truncated before", `{"user":{"dept":"x"},"email":"h@exam`, ""},
		{"first of duplicates", `{"email":"i@example.com","email":"j@example.com"}`, "i@example.com"},
		{"empty then another", `{"email":"","user_info":{"email":"k@example.com"}}`, "k@example.com"},
		{"user_info without email, then email", `{"user_info":{"type":1},"email":"l@example.com"}`, "l@example.com"},
		{"string-form user_info without email", `{"user_info":"{\"type\":1}","email":"m@example.com"}`, "m@example.com"},
		{"not a string", `{"email":42}`, ""},
		{"null", `{"email":null}`, ""},
		{"nested only", `{"x":{"email":"n@example.com"}}`, ""},
		{"array", `[{"email":"o@example.com"}]`, ""},
		{"garbage", "\x00\xff{", ""},
		{"empty", "", ""},
		{"not UTF-8", "{\"email\":\"p\xff@example.com\"}", ""},
		{"too long", `{"email":"` + strings.Repeat("q", 600) + `@example.com"}`, ""},
		{"beyond the size limit", `{"x":"` + strings.Repeat("x", MaxBodyBytes) + `","email":"r@example.com"}`, ""},
		{"deep nesting skipped", `{"x":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `,"email":"s@example.com"}`, "s@example.com"},
		{"whitespace", " \n{ \"email\" :\t\"t@example.com\" } ", "t@example.com"},
		{"case matters in keys", `{"Email":"u@example.com"}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := BestEffortEmail([]byte(tc.in)); got != tc.want {
				in := tc.in
				if len(in) > 100 {
					in = in[:100] + "..."
				}
				t.Errorf("BestEffortEmail(%q) = %q; want %q", in, got, tc.want)
			}
		})
	}
}

// BenchmarkBestEffortEmail compares BestEffortEmail with the strict
// decoders on the same bodies, since it runs on every stored request.
func BenchmarkBestEffortEmail(b *testing.B) {
	bodies := []struct {
		name string
		body []byte
		full func([]byte) error
	}{
		{"create", []byte(body("ssoCreate", `{"email":"alice@example.com","type":1,"first_name":"Alice","last_name":"Liddell"}`)),
			func(d []byte) error { _, err := Decode(d); return err }},
		{"update", []byte(`{"email":"alice@example.com","user":{"first_name":"Alice","job_title":"CTO","dept":"R&D","type":2,"feature":{"zoom_phone":true}}}`),
			func(d []byte) error { _, err := DecodeUpdate(d); return err }},
		{"delete", []byte(`{"email":"alice@example.com","action":"delete","transfer_email":"bob@example.com","transfer_recording":true}`),
			func(d []byte) error { _, err := DecodeDelete(d); return err }},
	}
	for _, bb := range bodies {
		b.Run(bb.name+"/BestEffortEmail", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if BestEffortEmail(bb.body) != "alice@example.com" {
					b.Fatal("wrong email")
				}
			}
		})
		b.Run(bb.name+"/strict", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bb.full(bb.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
