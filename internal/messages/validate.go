package messages

import (
	"cmp"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/zoomprov/consumer/internal/password"
)

// ErrInvalid is matched by every error that Decode and Validate return, so
// callers can tell a bad request (dead-letter it) from anything else with
// errors.Is(err, ErrInvalid).
var ErrInvalid = errors.New("messages: invalid request")

// FieldError is one problem with one field of a request.
type FieldError struct {
	// Field is the JSON path of the field, such as "user_info.email" or
	// "user_info.license_info_list[1].license_type". It is empty when the
	// problem concerns the whole body, such as malformed JSON.
	Field string
	// Reason says what is wrong in words a person reading a dead letter can
	// act on. It never contains the field's value, only lengths and limits.
	Reason string
}

// ValidationError lists every problem found in a request, so that a producer
// can fix them all at once instead of one dead letter at a time.
type ValidationError struct {
	// Fields holds the problems sorted by Field.
	Fields []FieldError
}

// maxErrorFields bounds how many problems Error prints. A hostile body can
// hold thousands of unknown keys; the dead letter should stay readable.
const maxErrorFields = 20

// Error joins the problems into one line, for example
// "messages: invalid request: user_info.email: must be at most 128
// characters (got 130); user_info.type: must be one of 1, 2, 4, 99".
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString(ErrInvalid.Error())
	for i, f := range e.Fields {
		if i == maxErrorFields {
			fmt.Fprintf(&b, "; and %d more", len(e.Fields)-i)
			break
		}
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		if f.Field != "" {
			b.WriteString(f.Field)
			b.WriteString(": ")
		}
		b.WriteString(f.Reason)
	}
	return b.String()
}

// Is reports whether target is ErrInvalid, so that errors.Is(err, ErrInvalid)
// holds for every *ValidationError.
func (e *ValidationError) Is(target error) bool {
	return target == ErrInvalid
}

// Limits from Zoom's create-user schema.
const (
	maxEmailChars       = 128
	maxNameChars        = 64
	maxDisplayNameChars = 128
	minPasswordChars    = password.MinChars
	maxPasswordChars    = password.MaxChars
	maxDivisionIDs      = 1
	maxLicenseItems     = 2
)

// Validate checks r against Zoom's create-user rules and returns a
// *ValidationError listing every problem, or nil. Decode calls it; the
// operators' replay tool calls it on requests it builds itself.
//
// The rules: action is one of Actions; email is present, at most 128
// characters and a bare address (one "@", non-empty local part, a dotted
// domain, no spaces, no display name); type is 1, 2, 4 or 99, and 99 only
// with ssoCreate; first_name and last_name are at most 64 characters and
// display_name at most 128 (counted in characters, not bytes); email and
// names hold no control characters; autoCreate needs a password of 8 to 32
// characters (Zoom checks its complexity), or one sealed for the service
// (internal/password), well formed, whose length is checked when it is
// opened; plan_united_type, if set, is a
// string of digits; division_ids has at most one entry; license_info_list
// has at most two items, each with license_type MEETING or
// ZOOM_WORKPLACE_BUNDLE and a subscription_id.
//
// Validate never puts field values into the error, so the password cannot
// leak into a dead letter or a log.
func (r Request) Validate() error {
	var v validator
	v.request(r)
	return v.err()
}

// validator collects FieldErrors.
type validator struct {
	fields []FieldError
}

func (v *validator) add(field, reason string) {
	v.fields = append(v.fields, FieldError{Field: field, Reason: reason})
}

func (v *validator) addf(field, format string, args ...any) {
	v.add(field, fmt.Sprintf(format, args...))
}

// err returns the collected problems sorted by field, or nil. It returns a
// plain nil rather than a nil *ValidationError so that err != nil works.
func (v *validator) err() error {
	if len(v.fields) == 0 {
		return nil
	}
	slices.SortStableFunc(v.fields, func(a, b FieldError) int { return cmp.Compare(a.Field, b.Field) })
	return &ValidationError{Fields: v.fields}
}

func (v *validator) request(r Request) {
	switch {
	case r.Action == "":
		v.add("action", "is required")
	case !r.Action.Valid():
		v.add("action", "must be one of create, autoCreate, custCreate, ssoCreate")
	}

	u := r.UserInfo
	v.email("user_info.email", u.Email)

	switch u.Type {
	case 1, 2, 4:
	case 99:
		// Zoom only lets SSO pre-provisioning create users without a plan.
		if r.Action != ActionSSOCreate {
			v.add("user_info.type", "99 is only allowed with action ssoCreate")
		}
	default:
		v.add("user_info.type", "must be one of 1, 2, 4, 99")
	}

	v.name("user_info.first_name", u.FirstName, maxNameChars)
	v.name("user_info.last_name", u.LastName, maxNameChars)
	v.name("user_info.display_name", u.DisplayName, maxDisplayNameChars)

	// Only autoCreate uses the password; for the other actions ForZoom drops
	// it, so its length does not matter. Only the length is checked here
	// because Zoom's complexity rules depend on account settings.
	if r.Action == ActionAutoCreate {
		switch n := utf8.RuneCountInString(u.Password); {
		case n == 0:
			v.add("user_info.password", "is required for action autoCreate")
		case password.IsSealed(u.Password):
			// Sealed for the service (internal/password): its shape is
			// checked here, its length once the service opens it, just
			// before the Zoom call.
			if password.Check(u.Password) != nil {
				v.add("user_info.password", "must be a well-formed sealed password (sealedbox:v1:<key id>:<base64>)")
			}
		case n < minPasswordChars || n > maxPasswordChars:
			// The actual length is left out: it says something about
			// the secret.
			v.addf("user_info.password", "must be %d to %d characters", minPasswordChars, maxPasswordChars)
		}
	}

	if u.PlanUnitedType != "" && !allDigits(u.PlanUnitedType) {
		v.add("user_info.plan_united_type", `must be a string of digits such as "1"`)
	}
	if n := len(u.DivisionIDs); n > maxDivisionIDs {
		v.addf("user_info.division_ids", "must have at most %d entry (got %d)", maxDivisionIDs, n)
	}
	if n := len(u.LicenseInfoList); n > maxLicenseItems {
		v.addf("user_info.license_info_list", "must have at most %d items (got %d)", maxLicenseItems, n)
	}
	for i, l := range u.LicenseInfoList {
		path := fmt.Sprintf("user_info.license_info_list[%d]", i)
		switch l.LicenseType {
		case "MEETING", "ZOOM_WORKPLACE_BUNDLE":
		case "":
			v.add(path+".license_type", "is required")
		default:
			v.add(path+".license_type", "must be MEETING or ZOOM_WORKPLACE_BUNDLE")
		}
		if l.SubscriptionID == "" {
			v.add(path+".subscription_id", "is required")
		}
	}
}

func (v *validator) email(field, email string) {
	if email == "" {
		v.add(field, "is required")
		return
	}
	if n := utf8.RuneCountInString(email); n > maxEmailChars {
		v.addf(field, "must be at most %d characters (got %d)", maxEmailChars, n)
	}
	switch {
	case strings.ContainsFunc(email, unicode.IsControl):
		v.add(field, "must not contain control characters")
	case strings.ContainsAny(email, "<>"):
		v.add(field, "must be a bare email address such as name@example.com, without a display name or angle brackets")
	case strings.ContainsFunc(email, unicode.IsSpace):
		v.add(field, "must not contain spaces")
	case !bareAddress(email):
		v.add(field, "must be a bare email address such as name@example.com, without a display name")
	}
}

// bareAddress reports whether s is a plain addr-spec. net/mail accepts far
// more than Zoom does (display names, comments, angle brackets), so its
// result must also round-trip to exactly s, and the shape checks reject what
// RFC 5322 allows but no mailbox uses.
func bareAddress(s string) bool {
	if strings.Count(s, "@") != 1 {
		return false
	}
	local, domain, _ := strings.Cut(s, "@")
	// A domain literal such as [192.0.2.1] is valid RFC 5322 but no
	// address Zoom can invite.
	if local == "" || !strings.Contains(domain, ".") || strings.ContainsAny(domain, "[]") {
		return false
	}
	for label := range strings.SplitSeq(domain, ".") {
		if label == "" {
			return false
		}
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Name == "" && a.Address == s
}

func (v *validator) name(field, s string, limit int) {
	if n := utf8.RuneCountInString(s); n > limit {
		v.addf(field, "must be at most %d characters (got %d)", limit, n)
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		v.add(field, "must not contain control characters")
	}
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
