package testenv

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Route templates of the user-lifecycle calls, keys of SimStats.Requests
// like the others.
const (
	RoutePatchUser  = "PATCH /v2/users/{userId}"
	RouteUserStatus = "PUT /v2/users/{userId}/status"
	RouteDeleteUser = "DELETE /v2/users/{userId}"
)

// stateChanging reports whether route changes a user. Those calls are
// serialized per user (see History) and recorded when performed.
func stateChanging(route string) bool {
	switch route {
	case RouteCreateUser, RoutePatchUser, RouteUserStatus, RouteDeleteUser:
		return true
	}
	return false
}

// createShare returns share for POST /v2/users and 0 for other routes.
func createShare(route string, share float64) float64 {
	if route == RouteCreateUser {
		return share
	}
	return 0
}

// SimCustomAttribute is one of a SimUser's custom attributes.
type SimCustomAttribute struct {
	Key   string `json:"key"`
	Name  string `json:"name"`
	Value string `json:"value"`
}

// SimCall is one state-changing call that the simulator performed for a
// user: a creation, an update, a status change or a deletion.
//
// The simulator is stricter than Zoom documents: Zoom answers 429 "A
// request to disassociate this user has already been made" when a second
// disassociation of one user arrives while the first is served; the
// simulator does so for every state-changing call (POST /v2/users, PATCH,
// PUT status, DELETE) that arrives while another one for the same user,
// named by id or email, is still being served, from admission until its
// answer is written (latency, delays and stalls included). A performed call
// therefore never overlaps another for that user, and History is the exact
// order in which Zoom applied them.
type SimCall struct {
	// Seq orders every performed call of the simulator, across users,
	// starting at 1.
	Seq int64
	// Time is the sim-clock time the call was performed.
	Time time.Time
	// Method, Route, Path (escaped), Query (raw) and Body are the request's.
	Method, Route, Path, Query string
	Body                       []byte
	// UserID is the id of the user the call acted on.
	UserID string
	// Status is the answer the simulator produced: 201, 204 or 200.
	Status int
	// Fault is the fault injected into the call, if any.
	Fault FaultKind
	// AnswerLost reports that the call was performed but its answer never
	// reached the client: an AfterCreate fault (scripted, or RandomFaults'
	// DropAfterCreate and LostAnswer) replaced it, or the client gave up
	// during the fault's delay.
	AnswerLost bool
}

// simCall tracks a request's SimCall until it is performed.
type simCall struct {
	SimCall
	key       string // the user lock, also the History key
	index     int    // position in history[key] once performed
	performed bool
}

// SimDeletion is a user removed by DELETE /v2/users/{userId}.
type SimDeletion struct {
	// Seq is the SimCall.Seq of the deletion.
	Seq int64
	// User is the user as it was just before the deletion.
	User SimUser
	// Action is "disassociate" or "delete".
	Action string
	// TransferEmail is the transfer_email parameter, if any.
	TransferEmail string
	// Transferred lists the transfer_* flags that were true, without the
	// prefix, such as "meeting" and "recording", in Zoom's order.
	Transferred []string
}

// transferKinds are the transfer_* parameters of Zoom's DELETE, in the
// order Zoom documents them.
var transferKinds = []string{"meeting", "webinar", "recording", "whiteboard", "clipfiles", "notes", "visitors", "docs"}

// History returns, in the order they were performed, the state-changing
// calls the simulator performed for the user with email
// (case-insensitively): creations, updates, status changes and deletions,
// including those whose answer was lost. It spans deletions and
// re-creations of the same email. Calls Zoom refused (4xx, 429) or that
// failed before being performed are not included.
func (s *Simulator) History(email string) []SimCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.history[strings.ToLower(email)]
	out := make([]SimCall, len(h))
	for i, c := range h {
		c.Body = bytes.Clone(c.Body)
		out[i] = c
	}
	return out
}

// Deletions returns the deletions of the user with email
// (case-insensitively), oldest first.
func (s *Simulator) Deletions(email string) []SimDeletion {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.deletions[strings.ToLower(email)]
	out := make([]SimDeletion, len(d))
	for i, x := range d {
		x.User = x.User.clone()
		x.Transferred = slices.Clone(x.Transferred)
		out[i] = x
	}
	return out
}

// SetManagedDomain marks domain (case-insensitively) as one of the
// account's managed domains, or unmarks it. See SimConfig.ManagedDomains.
func (s *Simulator) SetManagedDomain(domain string, managed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if managed {
		s.managed[strings.ToLower(domain)] = true
	} else {
		delete(s.managed, strings.ToLower(domain))
	}
}

// SetAdmin makes the user with email (case-insensitively) an account admin,
// or not, and reports whether the user exists.
func (s *Simulator) SetAdmin(email string, admin bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[strings.ToLower(email)]
	if ok {
		u.Admin = admin
	}
	return ok
}

func (u *SimUser) clone() SimUser {
	c := *u
	c.CustomAttributes = slices.Clone(u.CustomAttributes)
	c.LastPatch = bytes.Clone(u.LastPatch)
	return c
}

// findLocked looks a user up by id or, case-insensitively, by email, as
// Zoom's {userId} path parameter allows.
func (s *Simulator) findLocked(id string) (*SimUser, bool) {
	if u, ok := s.usersByID[id]; ok {
		return u, true
	}
	u, ok := s.users[strings.ToLower(id)]
	return u, ok
}

// userKeyLocked returns the lower-cased email of the user named by id, or
// id lower-cased when there is no such user.
func (s *Simulator) userKeyLocked(id string) string {
	if u, ok := s.findLocked(id); ok {
		return strings.ToLower(u.Email)
	}
	return strings.ToLower(id)
}

// performedLocked appends call, performed on u with status, to the user's
// History.
func (s *Simulator) performedLocked(call *simCall, u *SimUser, status int) {
	if call == nil {
		return
	}
	s.seq++
	call.Seq, call.Time, call.UserID, call.Status = s.seq, s.now(), u.ID, status
	key := strings.ToLower(u.Email)
	call.key, call.index, call.performed = key, len(s.history[key]), true
	c := call.SimCall
	c.Body = bytes.Clone(c.Body)
	s.history[key] = append(s.history[key], c)
}

// answerLost marks call's History entry, if it was performed, as answered
// by a fault instead.
func (s *Simulator) answerLost(call *simCall) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if call.performed {
		s.history[call.key][call.index].AnswerLost = true
	}
}

// verbOf names a state-changing call for the 429 of an overlapping one.
func verbOf(r *http.Request, rt apiRoute, body []byte) string {
	switch rt.template {
	case RouteCreateUser:
		return "create"
	case RoutePatchUser:
		return "update"
	case RouteUserStatus:
		var b struct {
			Action string `json:"action"`
		}
		if json.Unmarshal(body, &b) == nil && (b.Action == "activate" || b.Action == "deactivate") {
			return b.Action
		}
		return "change the status of"
	case RouteDeleteUser:
		if r.URL.Query().Get("action") == "delete" {
			return "delete"
		}
		return "disassociate"
	}
	return ""
}

func userNotFound(id string) reply {
	return errorReply(http.StatusNotFound, 1001, "User does not exist: "+id+".")
}

var errNotObject = errors.New("not a JSON object")

// decodeJSONBody decodes a JSON object body into v as Zoom would: the
// content type must be JSON, unknown fields are ignored, and a type
// mismatch names the field. The reply is the 400 to answer, if any.
func decodeJSONBody(r *http.Request, body []byte, v any) (reply, bool) {
	bad := errorReply(http.StatusBadRequest, 300, "Request Body should be a valid JSON object.")
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return bad, false
	}
	err := errNotObject
	if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '{' {
		err = json.Unmarshal(body, v)
	}
	var te *json.UnmarshalTypeError
	switch {
	case err == nil:
		return reply{}, true
	case errors.As(err, &te) && te.Field != "":
		return validationFailed(fieldError{Field: te.Field, Message: "Invalid field."}), false
	default:
		return bad, false
	}
}

// patchBody is the part of Zoom's PATCH /users/{userId} body the simulator
// applies; other fields are ignored, as Zoom ignores unknown ones.
type patchBody struct {
	FirstName      *string `json:"first_name"`
	LastName       *string `json:"last_name"`
	DisplayName    *string `json:"display_name"`
	Dept           *string `json:"dept"`
	JobTitle       *string `json:"job_title"`
	Company        *string `json:"company"`
	Location       *string `json:"location"`
	CostCenter     *string `json:"cost_center"`
	Manager        *string `json:"manager"`
	Timezone       *string `json:"timezone"`
	Language       *string `json:"language"`
	Pronouns       *string `json:"pronouns"`
	Type           *int    `json:"type"`
	PlanUnitedType *string `json:"plan_united_type"`
	ZoomOneType    *int64  `json:"zoom_one_type"`
	Feature        *struct {
		ZoomPhone *bool `json:"zoom_phone"`
	} `json:"feature"`
	CustomAttributes *[]SimCustomAttribute `json:"custom_attributes"`
}

// patchUser answers PATCH /users/{userId}: 204 with no body.
func (s *Simulator) patchUser(r *http.Request, id string, call *simCall) reply {
	var p patchBody
	if rep, ok := decodeJSONBody(r, call.Body, &p); !ok {
		return rep
	}
	licences := 0
	for _, set := range []bool{p.Type != nil, p.PlanUnitedType != nil, p.ZoomOneType != nil} {
		if set {
			licences++
		}
	}
	if licences > 1 {
		return errorReply(http.StatusBadRequest, 300, `You can't change the "type" or "plan_united_type" or "zoom_one_type" at the same time.`)
	}
	if p.Type != nil && *p.Type == 3 {
		return errorReply(http.StatusBadRequest, 300, "Your account can't set user type as On-prem.")
	}
	if p.PlanUnitedType != nil && !validPlanUnitedType(*p.PlanUnitedType) {
		return errorReply(http.StatusBadRequest, 300, `The value provided for "plan_united_type" parameter is invalid. Try again with a valid value.`)
	}
	if errs := validatePatch(p); len(errs) > 0 {
		return validationFailed(errs...)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.findLocked(id)
	if !ok {
		return userNotFound(id)
	}
	if p.Feature != nil && p.Feature.ZoomPhone != nil && *p.Feature.ZoomPhone != u.ZoomPhone {
		if *p.Feature.ZoomPhone {
			if s.phone == 0 {
				return errorReply(http.StatusNotFound, 1102, "No Zoom Phone licence available.")
			}
			if s.phone > 0 {
				s.phone--
			}
		} else if s.phone >= 0 {
			s.phone++
		}
		u.ZoomPhone = *p.Feature.ZoomPhone
	}
	for _, f := range []struct {
		from *string
		to   *string
	}{
		{p.FirstName, &u.FirstName}, {p.LastName, &u.LastName}, {p.DisplayName, &u.DisplayName},
		{p.Dept, &u.Dept}, {p.JobTitle, &u.JobTitle}, {p.Company, &u.Company}, {p.Location, &u.Location},
		{p.CostCenter, &u.CostCenter}, {p.Manager, &u.Manager}, {p.Timezone, &u.Timezone},
		{p.Language, &u.Language}, {p.Pronouns, &u.Pronouns},
	} {
		if f.from != nil {
			*f.to = *f.from
		}
	}
	if p.Type != nil {
		u.Type = *p.Type
	}
	if p.PlanUnitedType != nil {
		u.PlanUnitedType = *p.PlanUnitedType
		if u.PlanUnitedType == "none" {
			u.PlanUnitedType = ""
		}
	}
	if p.ZoomOneType != nil {
		u.ZoomOneType = *p.ZoomOneType
	}
	if p.CustomAttributes != nil {
		// Attributes are set by key; the others keep their values.
		for _, a := range *p.CustomAttributes {
			i := slices.IndexFunc(u.CustomAttributes, func(b SimCustomAttribute) bool { return b.Key == a.Key })
			if i < 0 {
				u.CustomAttributes = append(u.CustomAttributes, a)
			} else {
				u.CustomAttributes[i] = a
			}
		}
	}
	u.LastPatch = bytes.Clone(call.Body)
	s.performedLocked(call, u, http.StatusNoContent)
	return reply{status: http.StatusNoContent}
}

// validatePatch returns the field errors of an update.
func validatePatch(p patchBody) []fieldError {
	var errs []fieldError
	add := func(field, msg string) { errs = append(errs, fieldError{Field: field, Message: msg}) }
	long := func(field string, v *string, limit int) {
		if v != nil && utf8.RuneCountInString(*v) > limit {
			add(field, "Length must be at most "+strconv.Itoa(limit)+".")
		}
	}
	long("first_name", p.FirstName, 64)
	long("last_name", p.LastName, 64)
	long("display_name", p.DisplayName, 128)
	if p.Type != nil && *p.Type != 1 && *p.Type != 2 && *p.Type != 4 {
		add("type", "Invalid field.")
	}
	long("job_title", p.JobTitle, 128)
	long("company", p.Company, 255)
	long("location", p.Location, 256)
	if p.ZoomOneType != nil && *p.ZoomOneType < 0 {
		add("zoom_one_type", "Invalid field.")
	}
	if c := p.CustomAttributes; c != nil && len(*c) > 5 {
		add("custom_attributes", "Size must be at most 5.")
	}
	return errs
}

// validPlanUnitedType reports whether v is in Zoom's enum: "none" or a
// power of two from 1 to 131072, in decimal without leading zeros.
func validPlanUnitedType(v string) bool {
	if v == "none" {
		return true
	}
	n, err := strconv.Atoi(v)
	return err == nil && strconv.Itoa(n) == v && n >= 1 && n <= 131072 && n&(n-1) == 0
}

// userStatus answers PUT /users/{userId}/status: 200 (or 204 with
// SimConfig.StatusNoContent) with no body.
//
// Deactivation sets status "inactive" and removes every licence: type 1
// (Basic), no Zoom United or Workplace plan, no Zoom Phone (its licence goes
// back to the pool). Activation sets "active" and gives nothing back. A
// call that asks for the status the user already has succeeds: Zoom
// documents no error for it. Zoom's enum also has clock_in and clock_out;
// the simulator refuses them like any other action (400, code 300).
//
// A pending user (invited with action=create, not yet accepted) has no
// account to change: the simulator answers 400 with code 1120, Zoom's code
// for "a valid invitation to join the Zoom account wasn't found for this
// user". Zoom's status reference lists no code for this case; 1120 is what
// its PATCH and DELETE references give for users whose invitation is not
// accepted, hence the choice.
func (s *Simulator) userStatus(r *http.Request, id string, call *simCall) reply {
	var b struct {
		Action *string `json:"action"`
	}
	if rep, ok := decodeJSONBody(r, call.Body, &b); !ok {
		return rep
	}
	switch {
	case b.Action == nil:
		return validationFailed(fieldError{Field: "action", Message: "This field is required."})
	case *b.Action != "activate" && *b.Action != "deactivate":
		return validationFailed(fieldError{Field: "action", Message: "Invalid field."})
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.findLocked(id)
	switch {
	case !ok:
		return userNotFound(id)
	case u.Admin:
		return errorReply(http.StatusBadRequest, 200, "Zoom Room and Admin users' status cannot be activated or deactivated.")
	case u.Status == "pending":
		return errorReply(http.StatusBadRequest, 1120, "A valid invitation to join the Zoom account wasn't found for this user.")
	}
	if *b.Action == "deactivate" {
		s.deactivateLocked(u)
	} else {
		u.Status = "active"
	}
	status := http.StatusOK
	if s.statusNo {
		status = http.StatusNoContent
	}
	s.performedLocked(call, u, status)
	return reply{status: status}
}

// deleteUser answers DELETE /users/{userId}?action=...: 204 with no body.
// The user is removed (Creations keeps counting it) and the deletion
// recorded in Deletions. A repeated deletion answers 404, code 1001.
//
// disassociate, the default, is refused for users of a managed domain
// (1107) and for admins (1117). A true transfer_* flag needs
// transfer_email, which must name another user of the account (400, code
// 300); false flags need nothing.
func (s *Simulator) deleteUser(r *http.Request, id string, call *simCall) reply {
	q := r.URL.Query()
	action := q.Get("action")
	switch action {
	case "":
		action = "disassociate"
	case "disassociate", "delete":
	default:
		return validationFailed(fieldError{Field: "action", Message: "Invalid field."})
	}
	var transferred []string
	for _, k := range transferKinds {
		switch v, set := q.Get("transfer_"+k), q.Has("transfer_"+k); {
		case !set || v == "false":
		case v == "true":
			transferred = append(transferred, k)
		default:
			return validationFailed(fieldError{Field: "transfer_" + k, Message: "Invalid field."})
		}
	}
	to := q.Get("transfer_email")

	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.findLocked(id)
	if !ok {
		return userNotFound(id)
	}
	if action == "disassociate" {
		at := strings.LastIndexByte(u.Email, '@')
		if s.managed[strings.ToLower(u.Email[at+1:])] {
			return errorReply(http.StatusBadRequest, 1107, "You can not disassociate a user with managed domain.")
		}
		if u.Admin {
			return errorReply(http.StatusBadRequest, 1117, "You can not disassociate an Admin user.")
		}
	}
	switch {
	case to == "":
		if len(transferred) > 0 {
			return validationFailed(fieldError{Field: "transfer_email", Message: "This field is required."})
		}
	case strings.EqualFold(to, u.Email):
		return errorReply(http.StatusBadRequest, 300, "The transfer-to email address cannot be the same as the unlinked or deleted user's email address.")
	default:
		if _, ok := s.users[strings.ToLower(to)]; !ok {
			return errorReply(http.StatusBadRequest, 300, "The destination user does not exist: "+to+".")
		}
	}

	s.performedLocked(call, u, http.StatusNoContent)
	key := strings.ToLower(u.Email)
	s.deletions[key] = append(s.deletions[key], SimDeletion{
		Seq: call.Seq, User: u.clone(), Action: action, TransferEmail: to, Transferred: transferred,
	})
	if u.ZoomPhone && s.phone >= 0 {
		s.phone++
	}
	delete(s.users, key)
	delete(s.usersByID, u.ID)
	return reply{status: http.StatusNoContent}
}
