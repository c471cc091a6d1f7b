package zoom

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// User statuses, the values of User.Status and the listings of ListUsers.
const (
	UserActive   = "active"
	UserInactive = "inactive"
	// UserPending is a user invited with action "create" who has not
	// accepted the invitation yet.
	UserPending = "pending"
)

// DefaultPageSize is the page size ListUsers and EachUser ask for when
// given none. Zoom's current spec allows up to 2,000 users a page while
// its pagination guide says 300: 300 is asked for, and pages of any size
// are accepted.
const DefaultPageSize = 300

// ErrPageTokenExpired reports that Zoom refused a listing's next page
// token: it expired (Zoom's last 15 minutes) or was never issued. The
// listing of that status must start again from its first page; the error
// also matches the *APIError Zoom answered with (errors.As).
var ErrPageTokenExpired = errors.New("zoom: next page token expired or unknown")

// UserPage is one page of a listing of users (GET /users).
type UserPage struct {
	// Users are the page's users, in Zoom's order. Pending users may have
	// no ID.
	Users []User `json:"users"`
	// NextPageToken asks for the next page; it is empty on the last one.
	NextPageToken string `json:"next_page_token"`
	// TotalRecords is how many users the whole listing has.
	TotalRecords int `json:"total_records"`
	// PageSize is the page size Zoom served, which may differ from the
	// one asked for.
	PageSize int `json:"page_size"`
	// PageCount and PageNumber belong to Zoom's deprecated paging by page
	// number; they may be zero.
	PageCount  int `json:"page_count"`
	PageNumber int `json:"page_number"`
	// TrackingID is Zoom's x-zm-trackingid, which Zoom support asks for.
	TrackingID string `json:"-"`
	// RateLimit holds the rate-limit headers of the answer.
	RateLimit RateLimit `json:"-"`
}

// ListUsers calls GET /users for one page of the users with status
// (UserActive, UserInactive or UserPending; empty means UserActive, as for
// Zoom). pageSize is the number of users asked for, 0 meaning
// DefaultPageSize; Zoom may serve another. pageToken is empty for the
// first page, else the NextPageToken of the page before, asked with the
// same status and pageSize. The caller paces the call: it is Zoom's
// Medium label, and no action's quota holds it.
//
// Errors as for CreateUser; an expired or unknown pageToken is an error
// matching ErrPageTokenExpired. A bad status or a negative pageSize is
// refused before any call.
func (c *Client) ListUsers(ctx context.Context, status string, pageSize int, pageToken string) (UserPage, error) {
	return c.listUsers(ctx, "list users", status, pageSize, pageToken)
}

// EachUser walks every page of the users with status, as ListUsers with
// pageSize fetches them, and calls fn for each user in turn, so that a
// caller need not hold them all. It stops at the first error: fn's,
// returned as is, or ListUsers', when fn may already have seen some of
// the users. On ErrPageTokenExpired the caller starts the walk again,
// from the first page. Each page waits for the Limiter first, with the
// Call {Op: "list users", Label: LabelMedium} and no Action.
//
// Zoom does not document what a listing shows of users who change during
// it (the simulator answers every page from the state at the first one),
// and each status is a listing of its own: a user whose status changes
// between the walks of two statuses may be in both or in neither.
func (c *Client) EachUser(ctx context.Context, status string, pageSize int, fn func(User) error) error {
	token := ""
	for {
		if err := c.wait(ctx, Call{Op: "list users", Label: LabelMedium}); err != nil {
			return err
		}
		page, err := c.ListUsers(ctx, status, pageSize, token)
		if err != nil {
			return err
		}
		for _, u := range page.Users {
			if err := fn(u); err != nil {
				return err
			}
		}
		if page.NextPageToken == "" {
			return nil
		}
		if page.NextPageToken == token {
			// Asking again would get the same page again, forever.
			return errors.New("zoom: list users: the next page token did not change")
		}
		token = page.NextPageToken
	}
}

// CountUsers returns how many users have status (as ListUsers takes it):
// the total_records of a one-user page, in one call, which the caller
// paces (Zoom's Medium label).
// Errors as for ListUsers.
func (c *Client) CountUsers(ctx context.Context, status string) (int, error) {
	page, err := c.listUsers(ctx, "count users", status, 1, "")
	if err != nil {
		return 0, err
	}
	return page.TotalRecords, nil
}

func (c *Client) listUsers(ctx context.Context, op, status string, pageSize int, pageToken string) (UserPage, error) {
	switch status {
	case "":
		status = UserActive
	case UserActive, UserInactive, UserPending:
	default:
		return UserPage{}, fmt.Errorf("zoom: %s: status %q is none of %q, %q and %q", op, sanitize(status, 40), UserActive, UserInactive, UserPending)
	}
	switch {
	case pageSize < 0:
		return UserPage{}, fmt.Errorf("zoom: %s: negative page size %d", op, pageSize)
	case pageSize == 0:
		pageSize = DefaultPageSize
	}
	q := url.Values{"status": {status}, "page_size": {strconv.Itoa(pageSize)}}
	if pageToken != "" {
		q.Set("next_page_token", pageToken)
	}
	var page UserPage
	res, err := c.do(ctx, call{op: op, method: http.MethodGet, url: c.baseURL + "/users?" + q.Encode(), medium: true, ok: isOK, into: &page})
	if err != nil {
		var apiErr *APIError
		if pageToken != "" && errors.As(err, &apiErr) && tokenRefused(apiErr) {
			return UserPage{}, &pageTokenError{apiErr}
		}
		return UserPage{}, err
	}
	page.TrackingID, page.RateLimit = res.TrackingID, res.RateLimit
	return page, nil
}

// tokenRefused reports whether e, the answer to a request for a next page,
// refuses its token. Zoom documents that tokens expire but not how it
// answers one (the reference is silent): read as such is what it answers
// invalid parameters with, 400 and code 300 (as the simulator does),
// unless its field errors name another parameter.
func tokenRefused(e *APIError) bool {
	if e.StatusCode != http.StatusBadRequest || e.Code != 300 {
		return false
	}
	for _, f := range e.Fields {
		if f.Field != "next_page_token" {
			return false
		}
	}
	return true
}

// pageTokenError is Zoom's refusal of a next page token: it matches
// ErrPageTokenExpired and unwraps to Zoom's *APIError.
type pageTokenError struct{ err *APIError }

func (e *pageTokenError) Error() string {
	return e.err.Error() + " (next page token expired or unknown)"
}

func (e *pageTokenError) Is(target error) bool { return target == ErrPageTokenExpired }

func (e *pageTokenError) Unwrap() error { return e.err }
