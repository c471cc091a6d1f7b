package testenv

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Create actions accepted by POST /v2/users.
const (
	actionCreate     = "create"
	actionAutoCreate = "autoCreate"
	actionCustCreate = "custCreate"
	actionSSOCreate  = "ssoCreate"
)

// createBody is the subset of Zoom's POST /users body the simulator
// understands; other fields are ignored, as Zoom ignores unknown ones.
type createBody struct {
	Action   string `json:"action"`
	UserInfo struct {
		Email          string `json:"email"`
		Type           int    `json:"type"`
		FirstName      string `json:"first_name"`
		LastName       string `json:"last_name"`
		DisplayName    string `json:"display_name"`
		Password       string `json:"password"`
		PlanUnitedType string `json:"plan_united_type"`
		Feature        struct {
			ZoomPhone   bool  `json:"zoom_phone"`
			ZoomOneType int64 `json:"zoom_one_type"`
		} `json:"feature"`
	} `json:"user_info"`
}

// createRequest is a parsed POST /users body. It is parsed before
// admission because the daily quota depends on the action and scripted
// faults on the email.
type createRequest struct {
	body      createBody
	notObject bool   // not a JSON object at all
	typeField string // first field with a JSON type mismatch
}

func parseCreate(raw []byte) createRequest {
	var c createRequest
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		c.notObject = true
		return c
	}
	err := json.Unmarshal(raw, &c.body)
	var te *json.UnmarshalTypeError
	switch {
	case err == nil:
	case errors.As(err, &te) && te.Field != "":
		// Unmarshal keeps going after a type mismatch, so the other fields
		// are still usable for quota and fault matching.
		c.typeField = te.Field
	default:
		c.notObject = true
		c.body = createBody{}
	}
	return c
}

// handleAPI performs a /v2 request. A state-changing one that succeeds is
// appended to the user's History through call.
func (s *Simulator) handleAPI(r *http.Request, rt apiRoute, c createRequest, call *simCall) reply {
	switch rt.template {
	case RouteCreateUser:
		return s.createUser(r, c, call)
	case RoutePatchUser:
		return s.patchUser(r, rt.userID, call)
	case RouteUserStatus:
		return s.userStatus(r, rt.userID, call)
	case RouteDeleteUser:
		return s.deleteUser(r, rt.userID, call)
	case RouteGetUser:
		return s.getUser(rt.userID)
	case RouteUserEmail:
		return s.emailExists(r.URL.Query().Get("email"))
	case RouteListUsers:
		return s.listUsers(r.URL.Query())
	}
	return errorReply(http.StatusNotFound, http.StatusNotFound, "The requested resource does not exist.")
}

func validationFailed(errs ...fieldError) reply {
	return jsonReply(http.StatusBadRequest, zoomError{Code: 300, Message: "Validation Failed.", Errors: errs})
}

func (s *Simulator) createUser(r *http.Request, c createRequest, call *simCall) reply {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" || c.notObject {
		return errorReply(http.StatusBadRequest, 300, "Request Body should be a valid JSON object.")
	}
	if c.typeField != "" {
		return validationFailed(fieldError{Field: c.typeField, Message: "Invalid field."})
	}
	b := c.body
	ui := b.UserInfo
	if ui.Type == 3 {
		// Type 3 (On-prem) was valid in older API versions and has its own
		// message.
		return errorReply(http.StatusBadRequest, 300, "Your account can't set user type as On-prem.")
	}
	if errs := validateCreate(b); len(errs) > 0 {
		return validationFailed(errs...)
	}
	// Zoom only looks at the password for autoCreate.
	if b.Action == actionAutoCreate && !validPassword(ui.Password) {
		return errorReply(http.StatusBadRequest, 300, "Invalid parameter: password")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(ui.Email)
	if _, ok := s.users[key]; ok {
		return errorReply(http.StatusConflict, 1005, "User already in the account: "+ui.Email)
	}
	if ui.Feature.ZoomPhone {
		if s.phone == 0 {
			return errorReply(http.StatusNotFound, 1102, "No Zoom Phone licence available.")
		}
		if s.phone > 0 {
			s.phone--
		}
	}
	u := &SimUser{
		ID:          newUserID(),
		Email:       ui.Email,
		FirstName:   ui.FirstName,
		LastName:    ui.LastName,
		DisplayName: ui.DisplayName,
		Type:        ui.Type,
		Status:      "active",
		CreatedAt:   s.now(),
		Action:      b.Action,
		ZoomPhone:   ui.Feature.ZoomPhone,
	}
	if b.Action == actionCreate {
		// Invited users stay pending until they accept the emailed link.
		u.Status = "pending"
	}
	s.storeLocked(u)
	s.creations[key]++
	s.stats.Creations++
	s.performedLocked(call, u, http.StatusCreated)
	return jsonReply(http.StatusCreated, struct {
		ID        string `json:"id"`
		FirstName string `json:"first_name"`
		LastName  string `json:"last_name"`
		Email     string `json:"email"`
		Type      int    `json:"type"`
	}{u.ID, u.FirstName, u.LastName, u.Email, u.Type})
}

// validateCreate returns the field errors of a create request, in the
// order Zoom's schema lists the fields.
func validateCreate(b createBody) []fieldError {
	var errs []fieldError
	add := func(field, msg string) {
		errs = append(errs, fieldError{Field: field, Message: msg})
	}
	switch b.Action {
	case actionCreate, actionAutoCreate, actionCustCreate, actionSSOCreate:
	case "":
		add("action", "This field is required.")
	default:
		add("action", "Invalid field.")
	}
	ui := b.UserInfo
	switch {
	case ui.Email == "":
		add("user_info.email", "This field is required.")
	case utf8.RuneCountInString(ui.Email) > 128:
		add("user_info.email", "Length must be at most 128.")
	case !emailShaped(ui.Email):
		add("user_info.email", "Invalid field.")
	}
	switch ui.Type {
	case 1, 2, 4:
	case 99:
		// "None" users only exist for SSO pre-provisioning.
		if b.Action != actionSSOCreate {
			add("user_info.type", "Invalid field.")
		}
	case 0:
		add("user_info.type", "This field is required.")
	default:
		add("user_info.type", "Invalid field.")
	}
	if utf8.RuneCountInString(ui.FirstName) > 64 {
		add("user_info.first_name", "Length must be at most 64.")
	}
	if utf8.RuneCountInString(ui.LastName) > 64 {
		add("user_info.last_name", "Length must be at most 64.")
	}
	if utf8.RuneCountInString(ui.DisplayName) > 128 {
		add("user_info.display_name", "Length must be at most 128.")
	}
	return errs
}

// emailShaped reports whether e looks like a plain addr-spec: one '@', a
// local part without spaces or specials, and a dotted domain.
func emailShaped(e string) bool {
	local, domain, ok := strings.Cut(e, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") {
		return false
	}
	for _, r := range e {
		if unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune(`<>()[],;:"\`, r) {
			return false
		}
	}
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return false
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if r != '-' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
				return false
			}
		}
	}
	return true
}

// validPassword applies Zoom's default password rules for autoCreate:
// 8 to 32 characters, at least one digit, upper- and lower-case letters, not
// one repeated character, and no run of 8 consecutive characters such as
// 12345678 or abcdefgh (either direction).
func validPassword(p string) bool {
	rs := []rune(p)
	if len(rs) < 8 || len(rs) > 32 {
		return false
	}
	var upper, lower, digit bool
	same := true
	for _, r := range rs {
		upper = upper || unicode.IsUpper(r)
		lower = lower || unicode.IsLower(r)
		digit = digit || unicode.IsDigit(r)
		same = same && r == rs[0]
	}
	if !upper || !lower || !digit || same {
		return false
	}
	run, step := 1, rune(0)
	for i := 1; i < len(rs); i++ {
		d := sequenceStep(rs[i-1], rs[i])
		switch {
		case d == 0:
			run, step = 1, 0
		case d == step:
			run++
		default:
			run, step = 2, d
		}
		if run >= 8 {
			return false
		}
	}
	return true
}

// sequenceStep returns +1 or -1 if b follows or precedes a in the ASCII
// digit or letter sequence (letters compared case-insensitively), else 0.
func sequenceStep(a, b rune) rune {
	a, b = unicode.ToLower(a), unicode.ToLower(b)
	digits := '0' <= a && a <= '9' && '0' <= b && b <= '9'
	letters := 'a' <= a && a <= 'z' && 'a' <= b && b <= 'z'
	if !digits && !letters {
		return 0
	}
	if d := b - a; d == 1 || d == -1 {
		return d
	}
	return 0
}

// userJSON is the subset of Zoom's GET /users/{userId} answer the simulator
// fills in.
type userJSON struct {
	ID          string `json:"id"`
	Email       string `json:"email"`
	FirstName   string `json:"first_name"`
	LastName    string `json:"last_name"`
	DisplayName string `json:"display_name"`
	Type        int    `json:"type"`
	Status      string `json:"status"`
	CreatedAt   string `json:"created_at"`
}

// getUser answers GET /users/{userId}, where userId is an id or an email.
func (s *Simulator) getUser(id string) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.usersByID[id]
	if !ok {
		u, ok = s.users[strings.ToLower(id)]
	}
	if !ok {
		return errorReply(http.StatusNotFound, 1001, "User does not exist: "+id+".")
	}
	created := u.CreatedAt
	if u.Status == "pending" {
		// Zoom documents that pending users show the time of the call.
		created = s.now()
	}
	return jsonReply(http.StatusOK, userJSON{
		ID:          u.ID,
		Email:       u.Email,
		FirstName:   u.FirstName,
		LastName:    u.LastName,
		DisplayName: u.DisplayName,
		Type:        u.Type,
		Status:      u.Status,
		CreatedAt:   created.UTC().Format(time.RFC3339),
	})
}

// emailExists answers GET /users/email. Zoom only reports users who sign in
// with email and password, so SSO-provisioned users are not reported.
func (s *Simulator) emailExists(email string) reply {
	if email == "" {
		return validationFailed(fieldError{Field: "email", Message: "This field is required."})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[strings.ToLower(email)]
	existed := ok && u.Action != actionSSOCreate
	return jsonReply(http.StatusOK, struct {
		ExistedEmail bool `json:"existed_email"`
	}{existed})
}
