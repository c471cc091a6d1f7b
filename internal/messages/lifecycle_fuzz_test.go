package messages

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// lifecycleReasons is every Reason the lifecycle decoders can produce, with
// N for a number; see reasons.
var lifecycleReasons []string

// init runs after fuzz_test.go's, which completes reasons (files are
// initialized in name order).
func init() {
	lifecycleReasons = append(slices.Clone(reasons),
		"must be one of N, N, N",
		`must be a string of digits such as "N", or "none"`,
		"must not be negative",
		"must hold zoom_phone",
		"must hold at least one profile field",
		"may change only one of type, plan_united_type and zoom_one_type at a time",
		"the e-mail cannot be changed here",
		"passwords are not set through updates",
		"must be disassociate or delete",
		"is required when a transfer_* flag is given",
		"must be an address other than email",
	)
}

// checkLifecycleError checks the invariants of a failed lifecycle decode.
func checkLifecycleError(t *testing.T, call string, err error) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) || len(ve.Fields) == 0 {
		t.Fatalf("%s = %#v; want a non-empty *ValidationError matching ErrInvalid", call, err)
	}
	if !slices.IsSortedFunc(ve.Fields, func(a, b FieldError) int { return strings.Compare(a.Field, b.Field) }) {
		t.Fatalf("%s fields = %q; want them sorted by field", call, ve.Fields)
	}
	for _, fe := range ve.Fields {
		if !slices.ContainsFunc(lifecycleReasons, func(r string) bool {
			return digits.ReplaceAllString(r, "N") == digits.ReplaceAllString(fe.Reason, "N")
		}) {
			t.Fatalf("%s reason %q is not a known reason; reasons must not quote the input", call, fe.Reason)
		}
	}
}

// otherPersonal returns s replaced by other characters of the same length,
// or nil for nil.
func otherPersonal(s *string) *string {
	if s == nil {
		return nil
	}
	o := strings.Repeat("x", len(*s))
	if o == *s {
		o = strings.Repeat("y", len(*s))
	}
	return &o
}

// otherEmail changes the part of email that MaskEmail hides.
func otherEmail(email string) string {
	at := strings.LastIndexByte(email, '@')
	if at < 0 {
		return strings.Repeat("z", len(email))
	}
	_, n := utf8.DecodeRuneInString(email)
	if n > at {
		return email
	}
	return email[:n] + strings.Repeat("z", at-n) + email[at:]
}

var fuzzVerbs = []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"}

func FuzzDecodeUpdate(f *testing.F) {
	f.Add([]byte(update(`{"first_name":"Al","type":2,"feature":{"zoom_phone":true},"custom_attributes":[{"key":"k","value":"v"}]}`)))
	f.Add([]byte(update(`{"zoom_one_type":576460752303423488,"manager":"m@example.com","dept":null}`)))
	f.Add([]byte(update(`{"email":"x@example.com","password":"p","type":2,"plan_united_type":"1"}`)))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeUpdate(data)
		if err != nil {
			checkLifecycleError(t, fmt.Sprintf("DecodeUpdate(%q)", data), err)
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("DecodeUpdate(%q) succeeded but Validate() = %v", data, err)
		}
		if got := BestEffortEmail(data); got != r.Email {
			t.Fatalf("BestEffortEmail(%q) = %q; want %q as DecodeUpdate decoded", data, got, r.Email)
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("json.Marshal(DecodeUpdate(%q)) error = %v", data, err)
		}
		again, err := DecodeUpdate(b)
		if err != nil || again.Email != r.Email || !reflect.DeepEqual(again.Profile, r.Profile) {
			t.Fatalf("DecodeUpdate(%s) = %#v, %v; want %#v as from DecodeUpdate(%q)", b, again, err, r, data)
		}
		// Formatting must not depend on what is redacted or masked.
		other := r
		other.Email = otherEmail(r.Email)
		other.User = []byte(strings.Repeat("u", len(r.User)))
		p := &other.Profile
		for _, s := range []**string{&p.FirstName, &p.LastName, &p.DisplayName, &p.Dept, &p.JobTitle, &p.Company,
			&p.Location, &p.CostCenter, &p.Manager, &p.Timezone, &p.Language, &p.Pronouns} {
			*s = otherPersonal(*s)
		}
		p.CustomAttributes = slices.Clone(p.CustomAttributes)
		for i := range p.CustomAttributes {
			p.CustomAttributes[i].Value = *otherPersonal(&p.CustomAttributes[i].Value)
		}
		for _, verb := range fuzzVerbs {
			if got, want := fmt.Sprintf(verb, r), fmt.Sprintf(verb, other); got != want {
				t.Fatalf("Sprintf(%q) = %q, but %q with other personal data", verb, got, want)
			}
		}
	})
}

func FuzzDecodeDelete(f *testing.F) {
	f.Add([]byte(`{"email":"a@example.com"}`))
	f.Add([]byte(`{"email":"a@example.com","action":"delete","transfer_email":"b@example.com","transfer_docs":false}`))
	f.Add([]byte(`{"email":"A@example.com","transfer_email":"a@EXAMPLE.com","transfer_meeting":true}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeDelete(data)
		if err != nil {
			checkLifecycleError(t, fmt.Sprintf("DecodeDelete(%q)", data), err)
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("DecodeDelete(%q) succeeded but Validate() = %v", data, err)
		}
		if r.Action != DeleteActionDisassociate && r.Action != DeleteActionDelete {
			t.Fatalf("DecodeDelete(%q).Action = %q; want disassociate or delete", data, r.Action)
		}
		if got := BestEffortEmail(data); got != r.Email {
			t.Fatalf("BestEffortEmail(%q) = %q; want %q as DecodeDelete decoded", data, got, r.Email)
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("json.Marshal(DecodeDelete(%q)) error = %v", data, err)
		}
		if again, err := DecodeDelete(b); err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("DecodeDelete(%s) = %#v, %v; want %#v as from DecodeDelete(%q)", b, again, err, r, data)
		}
		other := r
		other.Email, other.TransferEmail = otherEmail(r.Email), otherEmail(r.TransferEmail)
		for _, verb := range fuzzVerbs {
			if got, want := fmt.Sprintf(verb, r), fmt.Sprintf(verb, other); got != want {
				t.Fatalf("Sprintf(%q) = %q, but %q with other addresses", verb, got, want)
			}
		}
	})
}

// FuzzBestEffortEmail holds BestEffortEmail to agreeing with every strict
// decoder that accepts the body, and to never panicking on anything else.
func FuzzBestEffortEmail(f *testing.F) {
	addSeeds(f)
	f.Add([]byte(`{"email":"a@example.com"}`))
	f.Add([]byte(`{"em\u0061il":"a\u0040example.com","user":{"x":"}"}}`))
	f.Add([]byte(body("create", `"{\"email\":\"b@example.com\",\"type\":1}"`)))
	f.Add([]byte(`{"user_info":{"type":1},"email":`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got := BestEffortEmail(data)
		if len(got) > maxBestEffortBytes || !utf8.ValidString(got) {
			t.Fatalf("BestEffortEmail(%q) = %q; want valid UTF-8 of at most %d bytes", data, got, maxBestEffortBytes)
		}
		if r, err := Decode(data); err == nil && got != r.UserInfo.Email {
			t.Fatalf("BestEffortEmail(%q) = %q; want %q as Decode decoded", data, got, r.UserInfo.Email)
		}
		if r, err := DecodeUpdate(data); err == nil && got != r.Email {
			t.Fatalf("BestEffortEmail(%q) = %q; want %q as DecodeUpdate decoded", data, got, r.Email)
		}
		if r, err := DecodeStatus(data); err == nil && got != r.Email {
			t.Fatalf("BestEffortEmail(%q) = %q; want %q as DecodeStatus decoded", data, got, r.Email)
		}
		if r, err := DecodeDelete(data); err == nil && got != r.Email {
			t.Fatalf("BestEffortEmail(%q) = %q; want %q as DecodeDelete decoded", data, got, r.Email)
		}
		// The key of any address is stable and never empty.
		if got != "" {
			if k := UserKey(got); k == "" || UserKey(k) != k {
				t.Fatalf("UserKey(%q) = %q; want a non-empty fixed point", got, k)
			}
		}
	})
}
