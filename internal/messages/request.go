// Package messages owns the wire format of the Zoom provisioning consumer:
// the "create this Zoom user" request read from NATS JetStream, the
// CloudEvents result event published for every request, and the headers
// carried by dead letters.
//
// The package only decodes, validates and encodes. It performs no I/O and
// imports nothing outside the standard library, so the consumer, the
// operators' replay tool and the tests can all share one definition of what
// a valid request is.
package messages

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Action is the Zoom "action" of a create-user request. It decides how Zoom
// creates the account and which other fields matter.
type Action string

// The actions accepted by Zoom's POST /v2/users.
const (
	// ActionCreate makes Zoom email the user a confirmation link; the user
	// stays pending until they accept it.
	ActionCreate Action = "create"
	// ActionAutoCreate creates an email-login user on a managed domain with
	// the password given in the request. It is the only action for which
	// Zoom reads the password.
	ActionAutoCreate Action = "autoCreate"
	// ActionCustCreate creates a user without a password who cannot sign in
	// to the web portal (Zoom ISV accounts only).
	ActionCustCreate Action = "custCreate"
	// ActionSSOCreate pre-provisions a user who signs in through SSO.
	ActionSSOCreate Action = "ssoCreate"
)

// Actions lists every valid Action in the order Zoom documents them. Callers
// use it to build subject filters; they must not modify it.
var Actions = []Action{ActionCreate, ActionAutoCreate, ActionCustCreate, ActionSSOCreate}

// Valid reports whether a is one of the four actions Zoom accepts. The
// comparison is case-sensitive because Zoom's is.
func (a Action) Valid() bool {
	switch a {
	case ActionCreate, ActionAutoCreate, ActionCustCreate, ActionSSOCreate:
		return true
	}
	return false
}

// Request is one "create this Zoom user" message. Its JSON form is the body
// of Zoom's POST /v2/users, so a valid Request (after ForZoom) can be sent
// to Zoom unchanged.
//
// Request implements fmt.Formatter so that printing it with any verb never
// reveals the password, the names or the full email address.
type Request struct {
	Action   Action   `json:"action"`
	UserInfo UserInfo `json:"user_info"`
}

// UserInfo is the "user_info" object of a create-user request. Its fields
// mirror Zoom's schema; see Validate for the limits enforced on each.
//
// UserInfo implements fmt.Formatter so that a stray %v or %+v in a log line
// cannot leak the password: String, GoString and every formatting verb print
// "[redacted]" in its place. The names are redacted and the email masked for
// the same reason, because they are personal data.
type UserInfo struct {
	Email           string        `json:"email"`
	Type            int           `json:"type"`
	FirstName       string        `json:"first_name,omitempty"`
	LastName        string        `json:"last_name,omitempty"`
	DisplayName     string        `json:"display_name,omitempty"`
	Password        string        `json:"password,omitempty"`
	Feature         *Feature      `json:"feature,omitempty"`
	PlanUnitedType  string        `json:"plan_united_type,omitempty"`
	DivisionIDs     []string      `json:"division_ids,omitempty"`
	LicenseInfoList []LicenseInfo `json:"license_info_list,omitempty"`
}

// Feature is the optional "feature" object of UserInfo.
type Feature struct {
	// ZoomPhone enables Zoom Phone for the user. It is a pointer so that an
	// explicit false survives a round trip and reaches Zoom.
	ZoomPhone *bool `json:"zoom_phone,omitempty"`
	// ZoomOneType is a Zoom Workplace bundle option. Some values exceed
	// 2^53, which is why it is an int64 and never passes through float64.
	ZoomOneType int64 `json:"zoom_one_type,omitempty"`
}

// LicenseInfo is one item of UserInfo.LicenseInfoList.
type LicenseInfo struct {
	LicenseType    string `json:"license_type"`
	LicenseOption  int64  `json:"license_option"`
	SubscriptionID string `json:"subscription_id"`
}

// MaxBodyBytes is the largest request body Decode accepts. A create-user
// request is well under a kilobyte; the limit keeps a malicious or broken
// producer from making the consumer parse megabytes.
const MaxBodyBytes = 64 << 10

// redacted replaces secrets and personal data in formatted output.
const redacted = "[redacted]"

// ForZoom returns a copy of r to send to Zoom. The password is cleared unless
// the action is autoCreate, because Zoom ignores it for every other action
// and there is no reason to send a secret that will not be used. Dropping it
// is never an error. The copy shares no memory with r.
func (r Request) ForZoom() Request {
	out := r
	if r.Action != ActionAutoCreate {
		out.UserInfo.Password = ""
	}
	if r.UserInfo.Feature != nil {
		f := *r.UserInfo.Feature
		if f.ZoomPhone != nil {
			b := *f.ZoomPhone
			f.ZoomPhone = &b
		}
		out.UserInfo.Feature = &f
	}
	if r.UserInfo.DivisionIDs != nil {
		out.UserInfo.DivisionIDs = append([]string(nil), r.UserInfo.DivisionIDs...)
	}
	if r.UserInfo.LicenseInfoList != nil {
		out.UserInfo.LicenseInfoList = append([]LicenseInfo(nil), r.UserInfo.LicenseInfoList...)
	}
	return out
}

// String returns a log-safe rendering of r. See UserInfo.String.
func (r Request) String() string {
	return "{Action:" + string(r.Action) + " UserInfo:" + r.UserInfo.String() + "}"
}

// GoString returns a log-safe Go-syntax rendering of r for %#v. See
// UserInfo.String.
func (r Request) GoString() string {
	return "messages.Request{Action:" + strconv.Quote(string(r.Action)) +
		", UserInfo:" + r.UserInfo.GoString() + "}"
}

// Format implements fmt.Formatter so that every verb, not only %v and %s,
// goes through String or GoString. Without it, %d or %x would print the
// struct's fields, including the password.
func (r Request) Format(f fmt.State, verb rune) {
	format(f, verb, r.String(), r.GoString())
}

// String returns a log-safe rendering of u in the style of %+v. The password
// and the names print as "[redacted]" when set, and the email is masked with
// MaskEmail; the other fields print as they are.
func (u UserInfo) String() string {
	var b strings.Builder
	b.WriteString("{Email:")
	b.WriteString(MaskEmail(u.Email))
	b.WriteString(" Type:")
	b.WriteString(strconv.Itoa(u.Type))
	b.WriteString(" FirstName:")
	b.WriteString(redact(u.FirstName))
	b.WriteString(" LastName:")
	b.WriteString(redact(u.LastName))
	b.WriteString(" DisplayName:")
	b.WriteString(redact(u.DisplayName))
	b.WriteString(" Password:")
	b.WriteString(redact(u.Password))
	b.WriteString(" Feature:")
	if u.Feature == nil {
		b.WriteString("<nil>")
	} else {
		b.WriteString("{ZoomPhone:")
		if u.Feature.ZoomPhone == nil {
			b.WriteString("<nil>")
		} else {
			b.WriteString(strconv.FormatBool(*u.Feature.ZoomPhone))
		}
		b.WriteString(" ZoomOneType:")
		b.WriteString(strconv.FormatInt(u.Feature.ZoomOneType, 10))
		b.WriteString("}")
	}
	b.WriteString(" PlanUnitedType:")
	b.WriteString(u.PlanUnitedType)
	fmt.Fprintf(&b, " DivisionIDs:%v LicenseInfoList:[", u.DivisionIDs)
	for i, l := range u.LicenseInfoList {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "{LicenseType:%s LicenseOption:%d SubscriptionID:%s}", l.LicenseType, l.LicenseOption, l.SubscriptionID)
	}
	b.WriteString("]}")
	return b.String()
}

// GoString returns a log-safe Go-syntax rendering of u for %#v, redacted
// the same way as String.
func (u UserInfo) GoString() string {
	var b strings.Builder
	b.WriteString("messages.UserInfo{Email:")
	b.WriteString(strconv.Quote(MaskEmail(u.Email)))
	b.WriteString(", Type:")
	b.WriteString(strconv.Itoa(u.Type))
	b.WriteString(", FirstName:")
	b.WriteString(strconv.Quote(redact(u.FirstName)))
	b.WriteString(", LastName:")
	b.WriteString(strconv.Quote(redact(u.LastName)))
	b.WriteString(", DisplayName:")
	b.WriteString(strconv.Quote(redact(u.DisplayName)))
	b.WriteString(", Password:")
	b.WriteString(strconv.Quote(redact(u.Password)))
	b.WriteString(", Feature:")
	if u.Feature == nil {
		b.WriteString("(*messages.Feature)(nil)")
	} else {
		b.WriteString("&messages.Feature{ZoomPhone:")
		if u.Feature.ZoomPhone == nil {
			b.WriteString("(*bool)(nil)")
		} else {
			fmt.Fprintf(&b, "&%t", *u.Feature.ZoomPhone)
		}
		fmt.Fprintf(&b, ", ZoomOneType:%d}", u.Feature.ZoomOneType)
	}
	fmt.Fprintf(&b, ", PlanUnitedType:%q, DivisionIDs:%#v, LicenseInfoList:%#v}", u.PlanUnitedType, u.DivisionIDs, u.LicenseInfoList)
	return b.String()
}

// Format implements fmt.Formatter so that every verb, not only %v and %s,
// goes through String or GoString. Without it, %d or %x would print the
// struct's fields, including the password.
func (u UserInfo) Format(f fmt.State, verb rune) {
	format(f, verb, u.String(), u.GoString())
}

// format writes s (or gs for %#v) to f, honouring the verb's flags and width.
func format(f fmt.State, verb rune, s, gs string) {
	if verb == 'v' && f.Flag('#') {
		io.WriteString(f, gs)
		return
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), s)
}

// redact hides a non-empty s; an empty s stays empty so that a reader can
// still tell whether the field was set.
func redact(s string) string {
	if s == "" {
		return ""
	}
	return redacted
}

// MaskEmail shortens email for logs: it keeps the first character of the
// local part and the domain, so "alice@example.com" becomes
// "a***@example.com". That is enough to correlate log lines and spot a
// misrouted domain without writing personal data to the logs. An empty
// email stays empty and a string without "@" becomes "***".
func MaskEmail(email string) string {
	if email == "" {
		return ""
	}
	at := strings.LastIndexByte(email, '@')
	if at < 0 {
		return "***"
	}
	local, domain := email[:at], email[at+1:]
	for _, r := range local {
		return string(r) + "***@" + domain
	}
	return "***@" + domain
}
