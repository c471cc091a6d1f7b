package messages

import (
	"fmt"
	"strconv"
	"strings"
)

// The lifecycle requests print like Request: emails masked with MaskEmail,
// every free-text profile value "[redacted]" when set, so that a stray %v
// in a log line writes no personal data. Only fields that are set are
// printed. The licence fields, zoom_phone, the delete action, the transfer
// flags and custom attributes' keys and names (the account's identifiers,
// not the user's data) print as they are.

// String returns a log-safe rendering of r.
func (r UpdateRequest) String() string {
	return "{Email:" + MaskEmail(r.Email) + " User:" + redactBytes(r.User) + " Profile:" + r.Profile.String() + "}"
}

// GoString returns a log-safe Go-syntax rendering of r for %#v.
func (r UpdateRequest) GoString() string {
	return "messages.UpdateRequest{Email:" + strconv.Quote(MaskEmail(r.Email)) +
		", User:" + strconv.Quote(redactBytes(r.User)) + ", Profile:" + r.Profile.GoString() + "}"
}

// Format implements fmt.Formatter so that every verb goes through String or
// GoString; without it %x or %d would print the fields themselves.
func (r UpdateRequest) Format(f fmt.State, verb rune) {
	format(f, verb, r.String(), r.GoString())
}

// String returns a log-safe rendering of u listing the fields it sets.
func (u UserUpdate) String() string {
	return "{" + strings.Join(u.parts(false), " ") + "}"
}

// GoString returns a log-safe Go-syntax rendering of u for %#v.
func (u UserUpdate) GoString() string {
	return "messages.UserUpdate{" + strings.Join(u.parts(true), ", ") + "}"
}

// Format implements fmt.Formatter; see UpdateRequest.Format.
func (u UserUpdate) Format(f fmt.State, verb rune) {
	format(f, verb, u.String(), u.GoString())
}

// parts renders the set fields of u, as name:value pairs of String or of
// GoString.
func (u UserUpdate) parts(goSyntax bool) []string {
	var out []string
	add := func(name, plain, gs string) {
		if goSyntax {
			out = append(out, name+":"+gs)
		} else {
			out = append(out, name+":"+plain)
		}
	}
	text := func(name string, s *string) {
		if s != nil {
			add(name, redact(*s), strconv.Quote(redact(*s)))
		}
	}
	text("FirstName", u.FirstName)
	text("LastName", u.LastName)
	text("DisplayName", u.DisplayName)
	if u.Type != nil {
		add("Type", strconv.Itoa(*u.Type), "&"+strconv.Itoa(*u.Type))
	}
	text("Dept", u.Dept)
	text("JobTitle", u.JobTitle)
	text("Company", u.Company)
	text("Location", u.Location)
	text("CostCenter", u.CostCenter)
	text("Manager", u.Manager)
	text("Timezone", u.Timezone)
	text("Language", u.Language)
	text("Pronouns", u.Pronouns)
	if u.PlanUnitedType != nil {
		add("PlanUnitedType", *u.PlanUnitedType, "&"+strconv.Quote(*u.PlanUnitedType))
	}
	if u.ZoomOneType != nil {
		n := strconv.FormatInt(*u.ZoomOneType, 10)
		add("ZoomOneType", n, "&"+n)
	}
	if u.Feature != nil {
		b := strconv.FormatBool(u.Feature.ZoomPhone)
		add("Feature", "{ZoomPhone:"+b+"}", "&messages.UpdateFeature{ZoomPhone:"+b+"}")
	}
	if u.CustomAttributes != nil {
		plain := make([]string, len(u.CustomAttributes))
		gs := make([]string, len(u.CustomAttributes))
		for i, a := range u.CustomAttributes {
			plain[i], gs[i] = a.String(), a.GoString()
		}
		add("CustomAttributes", "["+strings.Join(plain, " ")+"]",
			"[]messages.CustomAttribute{"+strings.Join(gs, ", ")+"}")
	}
	return out
}

// String returns a log-safe rendering of a: the value is redacted.
func (a CustomAttribute) String() string {
	return "{Key:" + a.Key + " Name:" + a.Name + " Value:" + redact(a.Value) + "}"
}

// GoString returns a log-safe Go-syntax rendering of a for %#v.
func (a CustomAttribute) GoString() string {
	return "messages.CustomAttribute{Key:" + strconv.Quote(a.Key) + ", Name:" + strconv.Quote(a.Name) +
		", Value:" + strconv.Quote(redact(a.Value)) + "}"
}

// Format implements fmt.Formatter; see UpdateRequest.Format.
func (a CustomAttribute) Format(f fmt.State, verb rune) {
	format(f, verb, a.String(), a.GoString())
}

// String returns a log-safe rendering of r.
func (r StatusRequest) String() string {
	return "{Email:" + MaskEmail(r.Email) + "}"
}

// GoString returns a log-safe Go-syntax rendering of r for %#v.
func (r StatusRequest) GoString() string {
	return "messages.StatusRequest{Email:" + strconv.Quote(MaskEmail(r.Email)) + "}"
}

// Format implements fmt.Formatter; see UpdateRequest.Format.
func (r StatusRequest) Format(f fmt.State, verb rune) {
	format(f, verb, r.String(), r.GoString())
}

// String returns a log-safe rendering of r.
func (r DeleteRequest) String() string {
	parts := []string{"Email:" + MaskEmail(r.Email), "Action:" + r.Action}
	if r.TransferEmail != "" {
		parts = append(parts, "TransferEmail:"+MaskEmail(r.TransferEmail))
	}
	for _, f := range r.flagParts() {
		parts = append(parts, f[0]+":"+f[1])
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// GoString returns a log-safe Go-syntax rendering of r for %#v.
func (r DeleteRequest) GoString() string {
	parts := []string{"Email:" + strconv.Quote(MaskEmail(r.Email)), "Action:" + strconv.Quote(r.Action)}
	if r.TransferEmail != "" {
		parts = append(parts, "TransferEmail:"+strconv.Quote(MaskEmail(r.TransferEmail)))
	}
	for _, f := range r.flagParts() {
		parts = append(parts, f[0]+":&"+f[1])
	}
	return "messages.DeleteRequest{" + strings.Join(parts, ", ") + "}"
}

// Format implements fmt.Formatter; see UpdateRequest.Format.
func (r DeleteRequest) Format(f fmt.State, verb rune) {
	format(f, verb, r.String(), r.GoString())
}

// flagParts returns the set transfer flags as Go field name and value.
func (r DeleteRequest) flagParts() [][2]string {
	var out [][2]string
	for _, f := range deleteFlags {
		if b := *f.flag(&r); b != nil {
			out = append(out, [2]string{fieldName(f.key), strconv.FormatBool(*b)})
		}
	}
	return out
}

// fieldName turns a JSON key such as "transfer_meeting" into the Go field
// name "TransferMeeting".
func fieldName(key string) string {
	var b strings.Builder
	for part := range strings.SplitSeq(key, "_") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

// redactBytes hides raw JSON such as UpdateRequest.User.
func redactBytes(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return redacted
}
