package messages

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"unicode/utf8"
)

// Operation is a user-lifecycle operation published next to the creation
// requests. Its value is the last token of the request's subject, as in
// "zoom.users.update".
type Operation string

// The lifecycle operations and the Zoom call each one makes.
const (
	// OpUpdate changes a user's profile: PATCH /users/{email} with the
	// request's "user" object as the body.
	OpUpdate Operation = "update"
	// OpDeactivate deactivates a user: PUT /users/{email}/status with
	// {"action":"deactivate"}. Zoom removes every licence the user holds.
	OpDeactivate Operation = "deactivate"
	// OpActivate reactivates a deactivated user: PUT /users/{email}/status
	// with {"action":"activate"}. Zoom does not give back the licences that
	// deactivation removed; a rehire is activate, then an update of the
	// licence.
	OpActivate Operation = "activate"
	// OpDelete disassociates or deletes a user: DELETE /users/{email} with
	// the action and transfer parameters in the query.
	OpDelete Operation = "delete"
)

// Operations lists every valid Operation in the order the issue lists them.
// Callers must not modify it.
var Operations = []Operation{OpUpdate, OpDeactivate, OpActivate, OpDelete}

// Valid reports whether o is one of Operations. The comparison is
// case-sensitive, as subject tokens are.
func (o Operation) Valid() bool {
	return slices.Contains(Operations, o)
}

// The values of DeleteRequest.Action, Zoom's DELETE /users/{userId} action.
const (
	// DeleteActionDisassociate unlinks the user from the account and leaves
	// them a free Zoom account. It is Zoom's default, and Zoom refuses it
	// for users of a managed domain (400, code 1107) and for admins (400,
	// code 1117).
	DeleteActionDisassociate = "disassociate"
	// DeleteActionDelete removes the user and their data for good.
	DeleteActionDelete = "delete"
)

// UpdateRequest is one "update this user's profile" message, published on
// zoom.users.update:
//
//	{"email": "alice@example.com", "user": {"job_title": "CTO", "type": 2}}
//
// UpdateRequest implements fmt.Formatter so that printing it with any verb
// shows neither the full email nor a profile value.
type UpdateRequest struct {
	// Email is the user's address, their key in Zoom.
	Email string `json:"email"`
	// User is the "user" object exactly as received. It is the body of
	// Zoom's PATCH /users/{email}, sent byte for byte, so that no field the
	// producer set is lost or rewritten on the way. Note that a member set
	// to null counts as absent here, as everywhere in a request, but is
	// still sent.
	User json.RawMessage `json:"user"`
	// Profile is the typed view of User that DecodeUpdate validated. It is
	// for reading (logs, tests, the simulator's expectations); Zoom gets
	// User.
	Profile UserUpdate `json:"-"`
}

// UserUpdate is the typed view of an update's "user" object: the profile
// fields of Zoom's PATCH /users/{userId}. A nil pointer is a field the
// request does not change; see DecodeUpdate for the limits on each.
type UserUpdate struct {
	FirstName   *string `json:"first_name,omitempty"`
	LastName    *string `json:"last_name,omitempty"`
	DisplayName *string `json:"display_name,omitempty"`
	// Type is the user type: 1 Basic, 2 Licensed, 4 Unassigned without
	// Meetings Basic. It is one of the three licence fields, of which an
	// update may hold only one.
	Type       *int    `json:"type,omitempty"`
	Dept       *string `json:"dept,omitempty"`
	JobTitle   *string `json:"job_title,omitempty"`
	Company    *string `json:"company,omitempty"`
	Location   *string `json:"location,omitempty"`
	CostCenter *string `json:"cost_center,omitempty"`
	// Manager is the manager's email or display name in the same account.
	Manager  *string `json:"manager,omitempty"`
	Timezone *string `json:"timezone,omitempty"`
	Language *string `json:"language,omitempty"`
	Pronouns *string `json:"pronouns,omitempty"`
	// PlanUnitedType is a Zoom United plan, a JSON string of digits such as
	// "1", or "none" to turn Zoom United off. A licence field.
	PlanUnitedType *string `json:"plan_united_type,omitempty"`
	// ZoomOneType is a Zoom Workplace plan option, 0 to turn it off. Some
	// values exceed 2^53, so it is an int64 and never passes through
	// float64. A licence field.
	ZoomOneType *int64 `json:"zoom_one_type,omitempty"`
	// Feature is the "feature" object.
	Feature *UpdateFeature `json:"feature,omitempty"`
	// CustomAttributes is the account's custom attributes to set. An empty,
	// non-nil slice is an empty array in the request.
	CustomAttributes []CustomAttribute `json:"custom_attributes,omitempty"`
}

// UpdateFeature is the "feature" object of an update. Zoom's PATCH schema
// has one member, zoom_phone, and an update's feature must hold it.
type UpdateFeature struct {
	// ZoomPhone turns Zoom Phone on or off. Off unassigns the user's
	// numbers and phones.
	ZoomPhone bool `json:"zoom_phone"`
}

// CustomAttribute is one item of UserUpdate.CustomAttributes.
type CustomAttribute struct {
	Key   string `json:"key"`
	Name  string `json:"name,omitempty"`
	Value string `json:"value,omitempty"`
}

// StatusRequest is one "deactivate this user" or "activate this user"
// message, published on zoom.users.deactivate or zoom.users.activate; the
// subject says which:
//
//	{"email": "alice@example.com"}
//
// StatusRequest implements fmt.Formatter so that no verb prints the full
// email.
type StatusRequest struct {
	Email string `json:"email"`
}

// DeleteRequest is one "disassociate or delete this user" message,
// published on zoom.users.delete:
//
//	{"email": "alice@example.com", "action": "delete",
//	 "transfer_email": "bob@example.com", "transfer_recording": true}
//
// DeleteRequest implements fmt.Formatter so that no verb prints either
// email in full.
type DeleteRequest struct {
	Email string `json:"email"`
	// Action is DeleteActionDisassociate or DeleteActionDelete. DecodeDelete
	// fills in DeleteActionDisassociate, Zoom's default, when the body has
	// none.
	Action string `json:"action"`
	// TransferEmail is the user who receives the transferred data. It is
	// required when any Transfer flag is set.
	TransferEmail string `json:"transfer_email,omitempty"`
	// The transfer flags, sent to Zoom as query parameters when not nil. A
	// pointer keeps an explicit false.
	TransferMeeting    *bool `json:"transfer_meeting,omitempty"`
	TransferWebinar    *bool `json:"transfer_webinar,omitempty"`
	TransferRecording  *bool `json:"transfer_recording,omitempty"`
	TransferWhiteboard *bool `json:"transfer_whiteboard,omitempty"`
	TransferClipfiles  *bool `json:"transfer_clipfiles,omitempty"`
	TransferNotes      *bool `json:"transfer_notes,omitempty"`
	TransferDocs       *bool `json:"transfer_docs,omitempty"`
}

// Limits of an update's profile fields. Zoom's PATCH schema gives the
// names, job_title, company and location theirs; it gives none for the
// other strings, so these bound them at sizes no real value reaches: a
// department or cost centre is a short label, a manager an email (at most
// 128 characters) or a display name (at most 128), a time zone an IANA name
// (the longest is 32 characters), a language and pronouns a few words.
const (
	maxJobTitleChars    = 128
	maxCompanyChars     = 255
	maxLocationChars    = 256
	maxDeptChars        = 128
	maxCostCenterChars  = 128
	maxManagerChars     = 128
	maxTimezoneChars    = 64
	maxLanguageChars    = 64
	maxPronounsChars    = 64
	maxCustomAttributes = 5 // Zoom's maxItems
	maxAttrKeyChars     = 128
	maxAttrNameChars    = 128
	maxAttrValueChars   = 256
)

// updateStrings maps the update's string fields to their limits.
var updateStrings = []struct {
	key   string
	limit int
	field func(*UserUpdate) **string
}{
	{"first_name", maxNameChars, func(u *UserUpdate) **string { return &u.FirstName }},
	{"last_name", maxNameChars, func(u *UserUpdate) **string { return &u.LastName }},
	{"display_name", maxDisplayNameChars, func(u *UserUpdate) **string { return &u.DisplayName }},
	{"dept", maxDeptChars, func(u *UserUpdate) **string { return &u.Dept }},
	{"job_title", maxJobTitleChars, func(u *UserUpdate) **string { return &u.JobTitle }},
	{"company", maxCompanyChars, func(u *UserUpdate) **string { return &u.Company }},
	{"location", maxLocationChars, func(u *UserUpdate) **string { return &u.Location }},
	{"cost_center", maxCostCenterChars, func(u *UserUpdate) **string { return &u.CostCenter }},
	{"manager", maxManagerChars, func(u *UserUpdate) **string { return &u.Manager }},
	{"timezone", maxTimezoneChars, func(u *UserUpdate) **string { return &u.Timezone }},
	{"language", maxLanguageChars, func(u *UserUpdate) **string { return &u.Language }},
	{"pronouns", maxPronounsChars, func(u *UserUpdate) **string { return &u.Pronouns }},
}

// updateFields is every member an update's "user" may hold.
var updateFields = func() []string {
	var keys []string
	for _, s := range updateStrings {
		keys = append(keys, s.key)
	}
	return append(keys, "type", "plan_united_type", "zoom_one_type", "feature", "custom_attributes")
}()

// DecodeUpdate parses and validates the body of an update request with the
// rules of Decode: at most MaxBodyBytes of UTF-8 holding one JSON object,
// exact field names, no unknown fields, duplicate keys or wrong JSON types
// at any level, null meaning absent.
//
// The body has exactly "email" and "user". email follows creation's rules
// (required, at most 128 characters, a bare address). user is an object
// holding at least one of Zoom's profile fields:
//
//   - first_name, last_name (at most 64 characters), display_name (128),
//     job_title (128), company (255), location (256), dept, cost_center,
//     manager (128 each), timezone, language, pronouns (64 each): strings
//     without control characters;
//   - type: 1, 2 or 4;
//   - plan_united_type: a string of digits, or "none";
//   - zoom_one_type: a non-negative integer of up to 64 bits;
//   - feature: an object holding zoom_phone, a boolean (the only member of
//     Zoom's PATCH feature schema);
//   - custom_attributes: at most 5 objects of strings key (required, 128),
//     name (128) and value (256).
//
// user may hold only one of type, plan_united_type and zoom_one_type,
// because Zoom refuses two licence changes in one call (400, code 300). It
// must not hold email, which this call cannot change, or password, which is
// not set through updates.
//
// Every error is a *ValidationError listing all problems; it matches
// ErrInvalid and quotes no value. On error the returned request holds what
// could be decoded (the email, for a failure event) and must not be sent.
func DecodeUpdate(data []byte) (UpdateRequest, error) {
	var r UpdateRequest
	err := decodeStrict(data, func(d *decoder, root *node) {
		m := d.members(root, "", "email", "user")
		r.Email = d.optString(m, "email", "email")
		n, ok := m["user"]
		switch {
		case !ok:
			d.add("user", "is required")
		case d.want(n, kindObject, "user", "must be an object"):
			r.Profile = d.userUpdate(n, "user")
			if raw, ok := memberValue(data, "user"); ok {
				r.User = bytes.Clone(raw)
			}
		}
	}, func(v *validator) { v.email("email", r.Email) })
	return r, err
}

// Validate checks r as DecodeUpdate checks a body: the email, and the User
// object parsed again with every rule of DecodeUpdate. Profile is not
// consulted, since Zoom is sent User. It returns a *ValidationError or nil.
func (r UpdateRequest) Validate() error {
	d := &decoder{}
	d.email("email", r.Email)
	switch {
	case len(r.User) == 0:
		d.add("user", "is required")
	case len(r.User) > MaxBodyBytes:
		d.addf("user", "must be at most %d bytes", MaxBodyBytes)
	case !utf8.Valid(r.User):
		d.add("user", "must be valid UTF-8")
	default:
		n, dups, reason := parseObject(r.User, "value", "user")
		if reason != "" {
			d.add("user", reason)
			break
		}
		d.fields = append(d.fields, dups...)
		d.userUpdate(n, "user")
	}
	return d.err()
}

// userUpdate decodes and validates the "user" object n found at path.
func (d *decoder) userUpdate(n *node, path string) UserUpdate {
	var u UserUpdate
	// email and password are named, not "unknown", because a producer may
	// well expect them to work; null does not excuse them either.
	seen := map[string]bool{}
	for _, mb := range n.members {
		switch {
		case seen[mb.key]:
		case mb.key == "email":
			d.add(join(path, "email"), "the e-mail cannot be changed here")
		case mb.key == "password":
			d.add(join(path, "password"), "passwords are not set through updates")
		}
		seen[mb.key] = true
	}
	m := d.members(n, path, append(slices.Clip(updateFields), "email", "password")...)
	delete(m, "email")
	delete(m, "password")
	if len(m) == 0 {
		d.add(path, "must hold at least one profile field")
	}
	licences := 0
	for _, k := range []string{"type", "plan_united_type", "zoom_one_type"} {
		if _, ok := m[k]; ok {
			licences++
		}
	}
	if licences > 1 {
		d.add(path, "may change only one of type, plan_united_type and zoom_one_type at a time")
	}

	for _, f := range updateStrings {
		*f.field(&u) = d.boundedString(m, f.key, join(path, f.key), f.limit)
	}
	if v, ok := m["type"]; ok {
		p := join(path, "type")
		if t, ok := d.int(v, p); ok {
			if t == 1 || t == 2 || t == 4 {
				i := int(t)
				u.Type = &i
			} else {
				d.add(p, "must be one of 1, 2, 4")
			}
		}
	}
	if v, ok := m["plan_united_type"]; ok {
		p := join(path, "plan_united_type")
		if s, ok := d.string(v, p); ok {
			if allDigits(s) || s == "none" {
				u.PlanUnitedType = &s
			} else {
				d.add(p, `must be a string of digits such as "1", or "none"`)
			}
		}
	}
	if v, ok := m["zoom_one_type"]; ok {
		p := join(path, "zoom_one_type")
		if t, ok := d.int(v, p); ok {
			if t >= 0 {
				u.ZoomOneType = &t
			} else {
				d.add(p, "must not be negative")
			}
		}
	}
	if v, ok := m["feature"]; ok {
		p := join(path, "feature")
		if d.want(v, kindObject, p, "must be an object") {
			fm := d.members(v, p, "zoom_phone")
			if b, ok := fm["zoom_phone"]; !ok {
				d.add(p, "must hold zoom_phone")
			} else if d.want(b, kindBool, join(p, "zoom_phone"), "must be a boolean") {
				u.Feature = &UpdateFeature{ZoomPhone: b.boolean}
			}
		}
	}
	if v, ok := m["custom_attributes"]; ok {
		p := join(path, "custom_attributes")
		if d.want(v, kindArray, p, "must be an array of objects") {
			if n := len(v.elems); n > maxCustomAttributes {
				d.addf(p, "must have at most %d items (got %d)", maxCustomAttributes, n)
			}
			u.CustomAttributes = make([]CustomAttribute, 0, len(v.elems))
			for i, e := range v.elems {
				ip := fmt.Sprintf("%s[%d]", p, i)
				var a CustomAttribute
				if d.want(e, kindObject, ip, "must be an object") {
					am := d.members(e, ip, "key", "name", "value")
					if _, ok := am["key"]; !ok {
						d.add(ip+".key", "is required")
					}
					a.Key = deref(d.boundedString(am, "key", ip+".key", maxAttrKeyChars))
					a.Name = deref(d.boundedString(am, "name", ip+".name", maxAttrNameChars))
					a.Value = deref(d.boundedString(am, "value", ip+".value", maxAttrValueChars))
				}
				u.CustomAttributes = append(u.CustomAttributes, a)
			}
		}
	}
	return u
}

// boundedString decodes the optional string member key of m: at most limit
// characters, no control characters. It returns nil when the member is
// absent or invalid.
func (d *decoder) boundedString(m map[string]*node, key, path string, limit int) *string {
	n, ok := m[key]
	if !ok {
		return nil
	}
	s, ok := d.string(n, path)
	if !ok {
		return nil
	}
	before := len(d.fields)
	d.name(path, s, limit)
	if len(d.fields) != before {
		return nil
	}
	return &s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// DecodeStatus parses and validates the body of an activate or deactivate
// request, {"email": "..."}, with the rules of Decode; the email follows
// creation's rules. Errors are as for DecodeUpdate.
func DecodeStatus(data []byte) (StatusRequest, error) {
	var r StatusRequest
	err := decodeStrict(data, func(d *decoder, root *node) {
		m := d.members(root, "", "email")
		r.Email = d.optString(m, "email", "email")
	}, func(v *validator) { v.status(r) })
	return r, err
}

// Validate checks r's email with creation's rules and returns a
// *ValidationError or nil.
func (r StatusRequest) Validate() error {
	var v validator
	v.status(r)
	return v.err()
}

func (v *validator) status(r StatusRequest) {
	v.email("email", r.Email)
}

// deleteFlags names the transfer flags of a DeleteRequest in the order
// Zoom's DELETE documents them.
var deleteFlags = []struct {
	key  string
	flag func(*DeleteRequest) **bool
}{
	{"transfer_meeting", func(r *DeleteRequest) **bool { return &r.TransferMeeting }},
	{"transfer_webinar", func(r *DeleteRequest) **bool { return &r.TransferWebinar }},
	{"transfer_recording", func(r *DeleteRequest) **bool { return &r.TransferRecording }},
	{"transfer_whiteboard", func(r *DeleteRequest) **bool { return &r.TransferWhiteboard }},
	{"transfer_clipfiles", func(r *DeleteRequest) **bool { return &r.TransferClipfiles }},
	{"transfer_notes", func(r *DeleteRequest) **bool { return &r.TransferNotes }},
	{"transfer_docs", func(r *DeleteRequest) **bool { return &r.TransferDocs }},
}

// DecodeDelete parses and validates the body of a delete request with the
// rules of Decode. The body holds email (creation's rules), optionally
// action ("disassociate", the default filled in when absent or null, or
// "delete"), transfer_email and the boolean flags transfer_meeting,
// transfer_webinar, transfer_recording, transfer_whiteboard,
// transfer_clipfiles, transfer_notes and transfer_docs. Any flag, true or
// false, needs transfer_email, a bare address (creation's rules) other than
// email, compared as UserKey compares. Errors are as for DecodeUpdate.
func DecodeDelete(data []byte) (DeleteRequest, error) {
	var r DeleteRequest
	err := decodeStrict(data, func(d *decoder, root *node) {
		known := []string{"email", "action", "transfer_email"}
		for _, f := range deleteFlags {
			known = append(known, f.key)
		}
		m := d.members(root, "", known...)
		r.Email = d.optString(m, "email", "email")
		if n, ok := m["action"]; ok {
			r.Action, _ = d.string(n, "action")
		} else {
			r.Action = DeleteActionDisassociate
		}
		r.TransferEmail = d.optString(m, "transfer_email", "transfer_email")
		for _, f := range deleteFlags {
			if n, ok := m[f.key]; ok && d.want(n, kindBool, f.key, "must be a boolean") {
				b := n.boolean
				*f.flag(&r) = &b
			}
		}
	}, func(v *validator) { v.deleteRequest(r) })
	return r, err
}

// Validate checks r as DecodeDelete checks a body, except that Action must
// be set: it returns a *ValidationError or nil.
func (r DeleteRequest) Validate() error {
	var v validator
	v.deleteRequest(r)
	return v.err()
}

func (v *validator) deleteRequest(r DeleteRequest) {
	v.email("email", r.Email)
	switch r.Action {
	case DeleteActionDisassociate, DeleteActionDelete:
	case "":
		v.add("action", "is required")
	default:
		v.add("action", "must be disassociate or delete")
	}
	flags := false
	for _, f := range deleteFlags {
		flags = flags || *f.flag(&r) != nil
	}
	switch {
	case r.TransferEmail == "":
		if flags {
			v.add("transfer_email", "is required when a transfer_* flag is given")
		}
	default:
		before := len(v.fields)
		v.email("transfer_email", r.TransferEmail)
		if len(v.fields) == before && UserKey(r.TransferEmail) == UserKey(r.Email) {
			v.add("transfer_email", "must be an address other than email")
		}
	}
}

// CheckOperation validates the body of a lifecycle request as the consumer
// will: with DecodeUpdate, DecodeStatus or DecodeDelete.
func CheckOperation(op Operation, body []byte) error {
	var err error
	switch op {
	case OpUpdate:
		_, err = DecodeUpdate(body)
	case OpDelete:
		_, err = DecodeDelete(body)
	case OpActivate, OpDeactivate:
		_, err = DecodeStatus(body)
	default:
		err = fmt.Errorf("%w: unknown operation %q", ErrInvalid, op)
	}
	return err
}
