package testenv

import (
	"errors"
	"fmt"
	"strings"
)

// Errors of the Admin methods.
var (
	// ErrNoSuchUser: no user has that id or email.
	ErrNoSuchUser = errors.New("testenv: no such user")
	// ErrUserExists: another user already has that email or id.
	ErrUserExists = errors.New("testenv: user exists")
	// ErrInvalidChange: the change would leave the user in a state the
	// API could never produce, or is not one an admin can make.
	ErrInvalidChange = errors.New("testenv: invalid change")
	// ErrNoPhoneLicence: the change needs a Zoom Phone licence and none is
	// left (SimConfig.PhoneLicenses).
	ErrNoPhoneLicence = errors.New("testenv: no Zoom Phone licence left")
)

// The Admin methods change users "by hand", as an admin does in Zoom's web
// portal (or a user accepting an invitation does): the change is visible
// to every API call at once, but it is not an API call. It is neither in
// Requests nor in Stats, History, Deletions or Creations, takes no part in
// rate limits, user locks or faults, and advances no SimCall.Seq; so tests
// that count the service's calls are not disturbed by it. The users'
// states stay the ones the API produces: pending until the invitation is
// accepted, licences removed by deactivation, Zoom Phone licences taken
// from and returned to the pool.

// AdminCreate adds u to the account and returns it as stored. Empty or
// zero fields get these values: ID a new id; Type 1 (Basic); Status
// "pending" when u.Action is "create" (an invitation), else "active";
// CreatedAt the sim clock's now. A user created "inactive" holds no
// licence, as if created and then deactivated. u.ZoomPhone takes a Zoom
// Phone licence. It does not count as a creation (Creations).
//
// Errors: ErrUserExists when the email (case-insensitively) or id is
// taken, ErrInvalidChange for a malformed email or an unknown type or
// status, ErrNoPhoneLicence.
func (s *Simulator) AdminCreate(u SimUser) (SimUser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := u.clone()
	if c.Type == 0 {
		c.Type = 1
	}
	if c.Status == "" {
		c.Status = statusActive
		if c.Action == actionCreate {
			c.Status = statusPending
		}
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = s.now()
	}
	if c.ID == "" {
		c.ID = newUserID()
	} else if _, ok := s.usersByID[c.ID]; ok {
		return SimUser{}, fmt.Errorf("testenv: admin create: id %q: %w", c.ID, ErrUserExists)
	}
	if err := s.checkUserLocked(&c, nil); err != nil {
		return SimUser{}, fmt.Errorf("testenv: admin create: %w", err)
	}
	if c.Status == statusInactive {
		c.ZoomPhone = false // deactivateLocked would hand a licence back
		s.deactivateLocked(&c)
	}
	if c.ZoomPhone && !s.takePhoneLocked() {
		return SimUser{}, fmt.Errorf("testenv: admin create: %w", ErrNoPhoneLicence)
	}
	p := &c
	s.storeLocked(p)
	return p.clone(), nil
}

// AdminUpdate changes the user named by id or email (case-insensitively)
// as edit does to a copy of it, then stores the copy. edit runs with the
// simulator locked and must not call it. It may change the email (as an
// admin can), the names, the profile and licence fields, Admin and
// ZoomPhone (which takes or returns a Zoom Phone licence); not ID, nor
// Status (use AdminSetStatus, which applies what a status change does).
// History, Deletions and Creations stay under the old email.
//
// Errors: ErrNoSuchUser; ErrInvalidChange for a changed ID or Status, a
// malformed email or an unknown type; ErrUserExists when the new email
// belongs to another user; ErrNoPhoneLicence. Nothing changes on error.
func (s *Simulator) AdminUpdate(idOrEmail string, edit func(u *SimUser)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.findLocked(idOrEmail)
	if !ok {
		return fmt.Errorf("testenv: admin update %q: %w", idOrEmail, ErrNoSuchUser)
	}
	c := u.clone()
	edit(&c)
	switch {
	case c.ID != u.ID:
		return fmt.Errorf("testenv: admin update %q: the id cannot change: %w", idOrEmail, ErrInvalidChange)
	case c.Status != u.Status:
		return fmt.Errorf("testenv: admin update %q: change the status with AdminSetStatus: %w", idOrEmail, ErrInvalidChange)
	}
	if err := s.checkUserLocked(&c, u); err != nil {
		return fmt.Errorf("testenv: admin update %q: %w", idOrEmail, err)
	}
	switch {
	case c.ZoomPhone && !u.ZoomPhone:
		if !s.takePhoneLocked() {
			return fmt.Errorf("testenv: admin update %q: %w", idOrEmail, ErrNoPhoneLicence)
		}
	case !c.ZoomPhone && u.ZoomPhone:
		s.returnPhoneLocked()
	}
	delete(s.users, strings.ToLower(u.Email))
	*u = c
	s.storeLocked(u)
	return nil
}

// AdminSetStatus sets the status of the user named by id or email
// (case-insensitively):
//   - "active" activates an inactive user (its licences are not given
//     back, as with the API), or accepts a pending user's invitation;
//   - "inactive" deactivates an active user as PUT /users/{userId}/status
//     does: type 1 (Basic), no Zoom United or Workplace plan, the Zoom
//     Phone licence back to the pool.
//
// Setting the status a user already has changes nothing. Unlike the API,
// the portal's owner may change an admin's status.
//
// Errors: ErrNoSuchUser; ErrInvalidChange for "pending" or another
// status, and for deactivating a pending user, who has no account yet
// (the API answers 1120).
func (s *Simulator) AdminSetStatus(idOrEmail, status string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.findLocked(idOrEmail)
	if !ok {
		return fmt.Errorf("testenv: admin set status %q: %w", idOrEmail, ErrNoSuchUser)
	}
	switch {
	case status == u.Status:
	case status == statusActive:
		u.Status = statusActive
	case status == statusInactive && u.Status == statusPending:
		return fmt.Errorf("testenv: admin set status %q: a pending user cannot be deactivated: %w", idOrEmail, ErrInvalidChange)
	case status == statusInactive:
		s.deactivateLocked(u)
	default:
		return fmt.Errorf("testenv: admin set status %q: status %q: %w", idOrEmail, status, ErrInvalidChange)
	}
	return nil
}

// AdminDelete removes the user named by id or email (case-insensitively)
// from the account, or withdraws a pending user's invitation. Its Zoom
// Phone licence goes back to the pool. It is not recorded in Deletions.
//
// Errors: ErrNoSuchUser.
func (s *Simulator) AdminDelete(idOrEmail string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.findLocked(idOrEmail)
	if !ok {
		return fmt.Errorf("testenv: admin delete %q: %w", idOrEmail, ErrNoSuchUser)
	}
	if u.ZoomPhone {
		s.returnPhoneLocked()
	}
	delete(s.users, strings.ToLower(u.Email))
	delete(s.usersByID, u.ID)
	return nil
}

// checkUserLocked checks that c, the new state of was (nil for a new
// user), is one the API could produce.
func (s *Simulator) checkUserLocked(c, was *SimUser) error {
	if !emailShaped(c.Email) {
		return fmt.Errorf("email %q: %w", c.Email, ErrInvalidChange)
	}
	if other, ok := s.users[strings.ToLower(c.Email)]; ok && other != was {
		return fmt.Errorf("email %q: %w", c.Email, ErrUserExists)
	}
	switch c.Type {
	case 1, 2, 4, 99:
	default:
		return fmt.Errorf("type %d: %w", c.Type, ErrInvalidChange)
	}
	switch c.Status {
	case statusActive, statusInactive, statusPending:
	default:
		return fmt.Errorf("status %q: %w", c.Status, ErrInvalidChange)
	}
	return nil
}

// deactivateLocked deactivates u: status inactive, and every licence
// removed (type 1, no Zoom United or Workplace plan, the Zoom Phone
// licence back to the pool). Activation gives none of them back.
func (s *Simulator) deactivateLocked(u *SimUser) {
	u.Status = statusInactive
	u.Type, u.PlanUnitedType, u.ZoomOneType = 1, "", 0
	if u.ZoomPhone {
		s.returnPhoneLocked()
	}
	u.ZoomPhone = false
}

// takePhoneLocked takes a Zoom Phone licence from the pool, reporting
// false when none is left.
func (s *Simulator) takePhoneLocked() bool {
	switch {
	case s.phone == 0:
		return false
	case s.phone > 0:
		s.phone--
	}
	return true
}

// returnPhoneLocked puts a Zoom Phone licence back into the pool.
func (s *Simulator) returnPhoneLocked() {
	if s.phone >= 0 {
		s.phone++
	}
}
