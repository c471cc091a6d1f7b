package testenv

import (
	crand "crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The user statuses GET /v2/users lists, one listing per status; status
// defaults to active (reference §9).
const (
	statusActive   = "active"
	statusInactive = "inactive"
	statusPending  = "pending"
)

// defaultPageSize is the page_size of GET /v2/users when none is given.
const defaultPageSize = 30

// msgPageToken is the answer to an expired or unknown next_page_token.
// Zoom documents that the token expires after 15 minutes but not what it
// answers then (reference §9 is silent): the simulator answers 400 with
// code 300, Zoom's code for an invalid parameter (reference §1.5, §1.6).
const msgPageToken = "The next page token is invalid or expired."

// listing is one GET /v2/users listing: every page of it is served from
// the users as they were at its first page.
//
// Zoom documents neither how a listing is ordered nor what it shows of
// users who change between its pages. Its page tokens expire after 15
// minutes, which points to a server-side cursor over a result fixed at the
// first page, so the simulator takes a point-in-time snapshot: no user is
// skipped or listed twice, total_records stays the same on every page, and
// changes made meanwhile (by the API or by hand) show in the next listing.
// Users are ordered by creation time, then id.
type listing struct {
	status string
	// requested is the page_size asked for, pageSize the one served (at
	// most the MaxPageSize of the time the listing started).
	requested, pageSize int
	users               []listUserJSON
}

// pageToken is a next_page_token: where in its listing the next page
// starts. A token can be used again until it expires, so that a client
// may retry a page whose answer it lost.
type pageToken struct {
	list    *listing
	offset  int
	expires time.Time // on the sim clock
}

// listUsersJSON is the answer of GET /v2/users.
type listUsersJSON struct {
	// page_count and page_number belong to Zoom's deprecated page-number
	// paging; Zoom still sends them.
	PageCount     int            `json:"page_count"`
	PageNumber    int            `json:"page_number"`
	PageSize      int            `json:"page_size"`
	TotalRecords  int            `json:"total_records"`
	NextPageToken string         `json:"next_page_token"`
	Users         []listUserJSON `json:"users"`
}

// listUserJSON is one user of a GET /v2/users answer: the fields of
// reference §9 the simulator models (no pmi, verified, last_login_time).
type listUserJSON struct {
	// ID is left out for pending users, as reported for Zoom (reference
	// §4, flagged uncertain there).
	ID             string `json:"id,omitempty"`
	Email          string `json:"email"`
	FirstName      string `json:"first_name"`
	LastName       string `json:"last_name"`
	DisplayName    string `json:"display_name"`
	Type           int    `json:"type"`
	Status         string `json:"status"`
	Dept           string `json:"dept,omitempty"`
	Timezone       string `json:"timezone,omitempty"`
	Language       string `json:"language,omitempty"`
	PlanUnitedType string `json:"plan_united_type,omitempty"`
	CreatedAt      string `json:"created_at"`
}

// listUsers answers GET /v2/users?status=&page_size=&next_page_token=.
//
// page_size defaults to 30; one above the ceiling (SimConfig.MaxPageSize)
// is served at the ceiling, and the answer's page_size says so. Whether
// Zoom clamps or refuses an oversized page_size is not in the reference;
// clamping is what makes its advice "ask for 300 and accept more"
// (reference §9) work either way. A page_size that is not a positive
// integer, or an unknown status, is refused as a validation failure.
//
// A next_page_token continues the listing that issued it, and the
// request must repeat that listing's status and page_size: Zoom's
// pagination guide (developers.zoom.us/docs/api/pagination) asks for the
// same query parameters, and what Zoom does otherwise is undocumented (the
// reference is silent), so the simulator refuses a mismatch (400, code
// 300) rather than guess. An unknown or expired token is refused with
// msgPageToken.
//
// role_id and page_number (deprecated) change what is listed and are not
// simulated: a request with either is refused, so a test relying on them
// fails loudly instead of passing on a wrong listing.
func (s *Simulator) listUsers(q url.Values) reply {
	for _, p := range []string{"role_id", "page_number"} {
		if q.Has(p) {
			return errorReply(http.StatusBadRequest, 300, "The simulator does not implement the "+p+" parameter of List users.")
		}
	}
	status := q.Get("status")
	switch status {
	case "":
		status = statusActive
	case statusActive, statusInactive, statusPending:
	default:
		return validationFailed(fieldError{Field: "status", Message: "Invalid field."})
	}
	requested := defaultPageSize
	if v := q.Get("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return validationFailed(fieldError{Field: "page_size", Message: "Invalid field."})
		}
		requested = n
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, t := range s.pageTokens {
		if !now.Before(t.expires) {
			delete(s.pageTokens, k)
		}
	}
	var l *listing
	offset := 0
	if tok := q.Get("next_page_token"); tok != "" {
		t, ok := s.pageTokens[tok]
		if !ok {
			return errorReply(http.StatusBadRequest, 300, msgPageToken)
		}
		if t.list.status != status || t.list.requested != requested {
			return errorReply(http.StatusBadRequest, 300, "The next page token belongs to a listing with other status or page_size parameters.")
		}
		l, offset = t.list, t.offset
	} else {
		l = s.snapshotLocked(status, requested, now)
	}

	end := min(offset+l.pageSize, len(l.users))
	page := listUsersJSON{
		PageCount:    (len(l.users) + l.pageSize - 1) / l.pageSize,
		PageNumber:   offset/l.pageSize + 1,
		PageSize:     l.pageSize,
		TotalRecords: len(l.users),
		Users:        l.users[offset:end],
	}
	if end < len(l.users) {
		tok := newPageTokenString()
		s.pageTokens[tok] = &pageToken{list: l, offset: end, expires: now.Add(DefaultSimPageTokenTTL)}
		page.NextPageToken = tok
	}
	return jsonReply(http.StatusOK, page)
}

// snapshotLocked starts a listing of the users with status as they are
// now.
func (s *Simulator) snapshotLocked(status string, requested int, now time.Time) *listing {
	var us []*SimUser
	for _, u := range s.users {
		if u.Status == status {
			us = append(us, u)
		}
	}
	slices.SortFunc(us, func(a, b *SimUser) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	l := &listing{status: status, requested: requested, pageSize: min(requested, s.maxPage), users: make([]listUserJSON, 0, len(us))}
	for _, u := range us {
		j := listUserJSON{
			ID: u.ID, Email: u.Email, FirstName: u.FirstName, LastName: u.LastName, DisplayName: u.DisplayName,
			Type: u.Type, Status: u.Status, Dept: u.Dept, Timezone: u.Timezone, Language: u.Language,
			PlanUnitedType: u.PlanUnitedType, CreatedAt: u.CreatedAt.UTC().Format(time.RFC3339),
		}
		if u.Status == statusPending {
			j.ID = ""
			// As GET /users/{userId} does for pending users (reference §4).
			j.CreatedAt = now.UTC().Format(time.RFC3339)
		}
		l.users = append(l.users, j)
	}
	return l
}

// ExpirePageTokens makes every next_page_token issued so far expire, as 15
// minutes on the sim clock would. Tests whose simulator runs on the wall
// clock use it instead of waiting.
func (s *Simulator) ExpirePageTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.pageTokens)
}

// newPageTokenString returns a random opaque token, shaped like Zoom's
// (e.g. "Tva2K9uF6sQmPq8nR3wXcLdYbZ7hJ1gE0").
func newPageTokenString() string {
	var b [24]byte
	_, _ = crand.Read(b[:]) // crypto/rand.Read never fails since Go 1.24.
	return base64.RawURLEncoding.EncodeToString(b[:])
}
