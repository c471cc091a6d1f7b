package zoom_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/zoomprov/consumer/internal/metrics"
	"github.com/zoomprov/consumer/internal/quota"
	"github.com/zoomprov/consumer/internal/zoom"
	"github.com/zoomprov/consumer/testenv"
)

// account fills e's simulator with users of every status, created a
// second apart on e's clock so that they are listed in this order, and
// returns their emails by status.
func (e *env) account(t *testing.T, active, inactive, pending int) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	add := func(status string, u testenv.SimUser) {
		u.Email = fmt.Sprintf("%s%02d@example.com", status, len(out[status]))
		u.FirstName, u.LastName, u.DisplayName = "F"+u.Email[:3], "L", "D"
		if _, err := e.sim.AdminCreate(u); err != nil {
			t.Fatalf("AdminCreate(%q): %v", u.Email, err)
		}
		out[status] = append(out[status], u.Email)
		e.clock.Advance(time.Second)
	}
	for range active {
		add(zoom.UserActive, testenv.SimUser{Type: 2, Dept: "Sales"})
	}
	for range inactive {
		add(zoom.UserInactive, testenv.SimUser{Status: "inactive"})
	}
	for range pending {
		add(zoom.UserPending, testenv.SimUser{Action: "create"})
	}
	return out
}

// wantUser is the zoom.User a listing should give for the simulator's
// user with email.
func (e *env) wantUser(t *testing.T, email string) zoom.User {
	t.Helper()
	u, ok := e.sim.User(email)
	if !ok {
		t.Fatalf("sim.User(%q) missing", email)
	}
	id := u.ID
	if u.Status == zoom.UserPending {
		id = "" // Zoom lists pending users without their id
	}
	return zoom.User{ID: id, Email: u.Email, FirstName: u.FirstName, LastName: u.LastName, DisplayName: u.DisplayName,
		Type: u.Type, Status: u.Status, Dept: u.Dept}
}

// listQueries returns the query of every GET /v2/users the simulator
// answered.
func (e *env) listQueries(t *testing.T) []url.Values {
	t.Helper()
	var out []url.Values
	for _, r := range e.routeRequests(testenv.RouteListUsers) {
		q, err := url.ParseQuery(r.Query)
		if err != nil {
			t.Fatalf("query %q: %v", r.Query, err)
		}
		out = append(out, q)
	}
	return out
}

// Ensure ListUsers asks for one status's page with the default page size,
// follows the token with the same status and page size, accepts the page
// size Zoom serves, and decodes every field.
func TestListUsersPages(t *testing.T) {
	e := newEnv(t, testenv.SimConfig{MaxPageSize: 2}, nil)
	emails := e.account(t, 5, 1, 2)
	ctx := context.Background()

	var got []zoom.User
	token := ""
	for n := 1; ; n++ {
		page, err := e.client.ListUsers(ctx, "", 0, token)
		if err != nil {
			t.Fatalf("ListUsers(page %d) error: %v", n, err)
		}
		wantLen, last := 2, n == 3
		if last {
			wantLen = 1
		}
		if len(page.Users) != wantLen || page.TotalRecords != 5 || page.PageSize != 2 || page.PageCount != 3 ||
			page.PageNumber != n || (page.NextPageToken == "") != last {
			t.Fatalf("ListUsers(page %d) = %d users, total %d, page size %d, page %d of %d, token %q; want %d users, 5, 2, %d of 3, a token %v",
				n, len(page.Users), page.TotalRecords, page.PageSize, page.PageNumber, page.PageCount, page.NextPageToken, wantLen, n, !last)
		}
		reqs := e.routeRequests(testenv.RouteListUsers)
		if page.TrackingID == "" || page.TrackingID != reqs[len(reqs)-1].TrackingID {
			t.Errorf("ListUsers(page %d).TrackingID = %q; want the simulator's", n, page.TrackingID)
		}
		got = append(got, page.Users...)
		if last {
			break
		}
		token = page.NextPageToken
	}
	for i, email := range emails[zoom.UserActive] {
		if want := e.wantUser(t, email); got[i] != want {
			t.Errorf("listed user %d = %+v; want %+v", i, got[i], want)
		}
	}

	qs := e.listQueries(t)
	for i, q := range qs {
		want := url.Values{"status": {"active"}, "page_size": {"300"}}
		if i > 0 {
			want.Set("next_page_token", q.Get("next_page_token"))
		}
		if q.Encode() != want.Encode() || (i > 0 && q.Get("next_page_token") == "") {
			t.Errorf("request %d query = %v; want %v with a token after the first", i, q, want)
		}
	}

	// Pending users come without an id; other page sizes are asked as given.
	page, err := e.client.ListUsers(ctx, zoom.UserPending, 7, "")
	if err != nil {
		t.Fatalf("ListUsers(pending) error: %v", err)
	}
	for i, email := range emails[zoom.UserPending] {
		if want := e.wantUser(t, email); page.Users[i] != want || page.Users[i].ID != "" {
			t.Errorf("pending user %d = %+v; want %+v, no id", i, page.Users[i], want)
		}
	}
	if q := e.listQueries(t); q[len(q)-1].Get("page_size") != "7" || q[len(q)-1].Get("status") != "pending" {
		t.Errorf("ListUsers(pending, 7) query = %v; want status=pending, page_size=7", q[len(q)-1])
	}
}

// Ensure EachUser gives every user of a status once, in order, across
// pages, and stops at fn's first error, returning it as is and asking for
// no further page.
func TestEachUser(t *testing.T) {
	e := newEnv(t, testenv.SimConfig{MaxPageSize: 2}, nil)
	emails := e.account(t, 5, 3, 2)
	ctx := context.Background()
	for _, status := range []string{zoom.UserActive, zoom.UserInactive, zoom.UserPending} {
		before := len(e.routeRequests(testenv.RouteListUsers))
		var got []zoom.User
		if err := e.client.EachUser(ctx, status, 0, func(u zoom.User) error { got = append(got, u); return nil }); err != nil {
			t.Fatalf("EachUser(%s) error: %v", status, err)
		}
		var want []zoom.User
		for _, email := range emails[status] {
			want = append(want, e.wantUser(t, email))
		}
		if !slices.Equal(got, want) {
			t.Errorf("EachUser(%s) gave %+v; want %+v", status, got, want)
		}
		if pages, wantPages := len(e.routeRequests(testenv.RouteListUsers))-before, (len(want)+1)/2; pages != wantPages {
			t.Errorf("EachUser(%s) asked for %d pages; want %d", status, pages, wantPages)
		}
	}

	errStop := errors.New("stop")
	before := len(e.routeRequests(testenv.RouteListUsers))
	seen := 0
	err := e.client.EachUser(ctx, zoom.UserActive, 0, func(zoom.User) error {
		seen++
		if seen == 3 { // the first user of page 2
			return errStop
		}
		return nil
	})
	if err != errStop {
		t.Errorf("EachUser with fn failing = %v; want fn's error as is", err)
	}
	if pages := len(e.routeRequests(testenv.RouteListUsers)) - before; seen != 3 || pages != 2 {
		t.Errorf("EachUser stopped by fn: %d users seen, %d pages; want 3, 2", seen, pages)
	}

	if err := e.client.EachUser(ctx, "deleted", 0, func(zoom.User) error { return nil }); err == nil {
		t.Errorf("EachUser(deleted) = nil; want an error")
	}
}

// Ensure an expired or unknown page token is ErrPageTokenExpired, still an
// *APIError, that a walk started again succeeds, and that other refusals
// are not mistaken for it.
func TestListUsersPageTokenExpired(t *testing.T) {
	e := newEnv(t, testenv.SimConfig{MaxPageSize: 1}, nil)
	emails := e.account(t, 3, 0, 0)
	ctx := context.Background()

	first, err := e.client.ListUsers(ctx, zoom.UserActive, 1, "")
	if err != nil {
		t.Fatalf("ListUsers(first page) error: %v", err)
	}
	e.clock.Advance(15 * time.Minute)
	_, err = e.client.ListUsers(ctx, zoom.UserActive, 1, first.NextPageToken)
	var apiErr *zoom.APIError
	if !errors.Is(err, zoom.ErrPageTokenExpired) || !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || apiErr.Code != 300 {
		t.Fatalf("ListUsers(token 15 minutes old) error = %v; want ErrPageTokenExpired from Zoom's 400/300", err)
	}
	if errors.Is(err, zoom.ErrUserNotFound) || transientStatus(apiErr.StatusCode) {
		t.Errorf("ListUsers(expired token) error %v matches ErrUserNotFound or is retryable; want neither", err)
	}
	if _, err := e.client.ListUsers(ctx, zoom.UserActive, 1, "made-up"); !errors.Is(err, zoom.ErrPageTokenExpired) {
		t.Errorf("ListUsers(unknown token) error = %v; want ErrPageTokenExpired", err)
	}

	// A walk whose token expires under it: fn is slow (the clock moves
	// 15 minutes at its first user).
	seen := 0
	err = e.client.EachUser(ctx, zoom.UserActive, 1, func(zoom.User) error {
		seen++
		e.clock.Advance(15 * time.Minute)
		return nil
	})
	if !errors.Is(err, zoom.ErrPageTokenExpired) || seen != 1 {
		t.Errorf("EachUser with a token expiring = %v after %d users; want ErrPageTokenExpired after 1", err, seen)
	}
	var all []string
	if err := e.client.EachUser(ctx, zoom.UserActive, 1, func(u zoom.User) error { all = append(all, u.Email); return nil }); err != nil {
		t.Fatalf("EachUser started again: %v", err)
	}
	if !slices.Equal(all, emails[zoom.UserActive]) {
		t.Errorf("EachUser started again gave %v; want %v", all, emails[zoom.UserActive])
	}

	// Other answers to a page request are what they are.
	e.sim.FailNext(1, testenv.Fault{Status: http.StatusServiceUnavailable})
	_, err = e.client.ListUsers(ctx, zoom.UserActive, 1, "")
	if !errors.As(err, &apiErr) || !transientStatus(apiErr.StatusCode) || errors.Is(err, zoom.ErrPageTokenExpired) {
		t.Errorf("ListUsers(first page) answered 503 = %v; want a retryable *APIError", err)
	}
	e.sim.FailNext(1, testenv.Fault{Status: http.StatusBadRequest, Code: 300})
	if _, err := e.client.ListUsers(ctx, zoom.UserActive, 1, ""); errors.Is(err, zoom.ErrPageTokenExpired) || !errors.As(err, &apiErr) {
		t.Errorf("ListUsers(no token) answered 400/300 = %v; want an *APIError, not ErrPageTokenExpired", err)
	}
}

// Ensure only Zoom's refusal of the token itself is read as
// ErrPageTokenExpired: a 400/300 naming another parameter is not.
func TestPageTokenRefusalShapes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		token   string
		body    string
		expired bool
	}{
		{"plain 400/300", "t1", `{"code":300,"message":"The next page token is invalid or expired."}`, true},
		{"field next_page_token", "t1", `{"code":300,"message":"Validation Failed.","errors":[{"field":"next_page_token","message":"Invalid field."}]}`, true},
		{"field page_size", "t1", `{"code":300,"message":"Validation Failed.","errors":[{"field":"page_size","message":"Invalid field."}]}`, false},
		{"another code", "t1", `{"code":4711,"message":"Invalid access token, does not contain scopes:[user:read:list_users:admin]."}`, false},
		{"first page", "", `{"code":300,"message":"The next page token is invalid or expired."}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeZoom(t, "3599", fakeAnswer{status: http.StatusBadRequest, body: tc.body})
			c := f.client(t, newTestClock(time.Now()), nil)
			_, err := c.ListUsers(context.Background(), zoom.UserActive, 10, tc.token)
			var apiErr *zoom.APIError
			if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest {
				t.Fatalf("ListUsers = %v; want Zoom's 400 as *APIError", err)
			}
			if got := errors.Is(err, zoom.ErrPageTokenExpired); got != tc.expired {
				t.Errorf("ListUsers error %v matches ErrPageTokenExpired: %v; want %v", err, got, tc.expired)
			}
		})
	}
}

// Ensure a page Zoom answers 200 but unreadably is a retryable fault, and
// that EachUser stops when Zoom hands back the token it was given.
func TestListUsersOddAnswers(t *testing.T) {
	f := newFakeZoom(t, "3599", fakeAnswer{status: http.StatusOK, body: `<html>maintenance</html>`})
	c := f.client(t, newTestClock(time.Now()), nil)
	_, err := c.ListUsers(context.Background(), zoom.UserActive, 0, "")
	var apiErr *zoom.APIError
	if !errors.As(err, &apiErr) || !transientStatus(apiErr.StatusCode) {
		t.Errorf("ListUsers answered an unreadable 200 = %v; want a retryable *APIError", err)
	}

	page := `{"page_size":1,"total_records":3,"next_page_token":"same","users":[{"email":"a@example.com","type":1,"status":"active"}]}`
	f = newFakeZoom(t, "3599", fakeAnswer{status: http.StatusOK, body: page})
	c = f.client(t, newTestClock(time.Now()), nil)
	seen := 0
	err = c.EachUser(context.Background(), zoom.UserActive, 1, func(zoom.User) error { seen++; return nil })
	if err == nil || errors.As(err, &apiErr) {
		t.Errorf("EachUser with a token that never changes = %v; want a local error", err)
	}
	if n := len(f.requests()); n != 2 || seen != 2 {
		t.Errorf("EachUser with a token that never changes: %d requests, %d users; want 2, 2", n, seen)
	}
}

func TestCountUsers(t *testing.T) {
	e := newEnv(t, testenv.SimConfig{MaxPageSize: 2}, nil)
	e.account(t, 4, 1, 3)
	ctx := context.Background()
	for _, tc := range []struct {
		status string
		want   int
	}{{"", 4}, {zoom.UserActive, 4}, {zoom.UserInactive, 1}, {zoom.UserPending, 3}} {
		before := len(e.listQueries(t))
		got, err := e.client.CountUsers(ctx, tc.status)
		if err != nil || got != tc.want {
			t.Errorf("CountUsers(%q) = %d, %v; want %d", tc.status, got, err, tc.want)
		}
		qs := e.listQueries(t)
		if len(qs)-before != 1 || qs[len(qs)-1].Get("page_size") != "1" {
			t.Errorf("CountUsers(%q) made %d calls, the last %v; want one with page_size=1", tc.status, len(qs)-before, qs[len(qs)-1])
		}
	}
	if n, err := e.client.CountUsers(ctx, "gone"); err == nil {
		t.Errorf("CountUsers(gone) = %d, nil; want an error", n)
	}
}

// Ensure every page EachUser walks waits for the Limiter as a Medium call
// with no action, so pacing spaces the pages and a closed create gate does
// not hold them; a single ListUsers or CountUsers is its caller's to pace.
func TestListUsersLimiter(t *testing.T) {
	lim := &countingLimiter{next: rateLimiter{rate.NewLimiter(20, 1)}}
	e := newEnv(t, testenv.SimConfig{MaxPageSize: 1}, func(c *zoom.Config) { c.Limiter = lim })
	e.account(t, 5, 0, 0)
	ctx := context.Background()
	if err := e.client.TokenValid(ctx); err != nil {
		t.Fatalf("TokenValid() error: %v", err)
	}
	start := time.Now()
	n := 0
	if err := e.client.EachUser(ctx, "", 1, func(zoom.User) error { n++; return nil }); err != nil || n != 5 {
		t.Fatalf("EachUser = %v after %d users; want 5 users", err, n)
	}
	// 20/s with a burst of 1: five pages, four waits of 50 ms.
	if elapsed, floor := time.Since(start), 190*time.Millisecond; elapsed < floor {
		t.Errorf("5 pages at 20/s took %v; want at least %v", elapsed, floor)
	}
	want := slices.Repeat([]zoom.Call{{Op: "list users", Label: zoom.LabelMedium}}, 5)
	if !slices.Equal(lim.calls, want) {
		t.Errorf("limiter saw %+v; want %+v", lim.calls, want)
	}
	if _, err := e.client.CountUsers(ctx, zoom.UserPending); err != nil {
		t.Fatalf("CountUsers error: %v", err)
	}
	if _, err := e.client.GetUser(ctx, "active00@example.com"); err != nil || len(lim.calls) != 5 {
		t.Errorf("GetUser = %v, limiter waits %d; want no wait for calls the caller makes", err, len(lim.calls))
	}

	// The service's own limiter, with the create quota's gate closed.
	gates := quota.NewGates(e.clock.Now)
	gates.Set(quota.Gate{Scope: "create", Until: e.clock.Now().Add(time.Hour)})
	pacer := quota.NewPacer(0, gates)
	g := newEnv(t, testenv.SimConfig{}, func(c *zoom.Config) { c.Limiter = pacer })
	g.sim.AddUser("a@example.com", 1)
	n = 0
	if err := g.client.EachUser(ctx, "", 0, func(zoom.User) error { n++; return nil }); err != nil || n != 1 {
		t.Errorf("EachUser with the create gate closed = %v after %d users; want the user", err, n)
	}
	var closed *quota.GateClosedError
	if err := pacer.Wait(ctx, zoom.Call{Op: "create user", Action: "create"}); !errors.As(err, &closed) {
		t.Errorf("pacer.Wait(create) with the create gate closed = %v; want *quota.GateClosedError (the gate works)", err)
	}
}

// Ensure Zoom's Medium per-second limit comes back as a per-second
// *APIError naming the Medium category.
func TestListUsersRateLimited(t *testing.T) {
	e := newEnv(t, testenv.SimConfig{MediumRatePerSecond: 1}, nil)
	ctx := context.Background()
	if _, err := e.client.CountUsers(ctx, ""); err != nil {
		t.Fatalf("CountUsers error: %v", err)
	}
	_, err := e.client.ListUsers(ctx, "", 0, "")
	var apiErr *zoom.APIError
	if !errors.Is(err, zoom.ErrRateLimited) || !errors.As(err, &apiErr) || apiErr.Limit() != zoom.LimitPerSecond ||
		apiErr.RateLimit.Category != "Medium" || errors.Is(err, zoom.ErrPageTokenExpired) {
		t.Fatalf("ListUsers over the Medium limit = %v (%+v); want a per-second 429 in the Medium category", err, apiErr)
	}
}

// Ensure the instrumented transport labels listing and counting
// list_users, and a look-up get_user.
func TestListUsersMetrics(t *testing.T) {
	m := metrics.New()
	e := newEnv(t, testenv.SimConfig{}, func(c *zoom.Config) {
		c.HTTPClient = &http.Client{Transport: m.ZoomTransport(&http.Transport{}, c.TokenURL)}
	})
	e.sim.AddUser("a@example.com", 1)
	ctx := context.Background()
	if _, err := e.client.ListUsers(ctx, "", 0, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.CountUsers(ctx, zoom.UserPending); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.GetUser(ctx, "a@example.com"); err != nil {
		t.Fatal(err)
	}
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "zoomprov_zoom_requests_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			var endpoint, class string
			for _, l := range s.GetLabel() {
				switch l.GetName() {
				case "endpoint":
					endpoint = l.GetValue()
				case "status_class":
					class = l.GetValue()
				}
			}
			if v := s.GetCounter().GetValue(); v != 0 {
				got[endpoint+" "+class] = v
			}
		}
	}
	want := map[string]float64{"list_users 2xx": 2, "get_user 2xx": 1, "token 2xx": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("zoomprov_zoom_requests_total = %v; want %v", got, want)
	}
}

// Ensure a bad status or page size is refused before any call.
func TestListUsersRefusedLocally(t *testing.T) {
	lim := &countingLimiter{}
	e := newEnv(t, testenv.SimConfig{}, func(c *zoom.Config) { c.Limiter = lim })
	ctx := context.Background()
	for _, tc := range []struct {
		status   string
		pageSize int
	}{{"Active", 0}, {"deleted", 10}, {"active\n", 10}, {zoom.UserActive, -1}} {
		_, err := e.client.ListUsers(ctx, tc.status, tc.pageSize, "")
		var apiErr *zoom.APIError
		if err == nil || errors.As(err, &apiErr) || strings.ContainsRune(err.Error(), '\n') {
			t.Errorf("ListUsers(%q, %d) = %v; want a local one-line error", tc.status, tc.pageSize, err)
		}
	}
	if n, w := len(e.sim.Requests()), lim.waits.Load(); n != 0 || w != 0 {
		t.Errorf("after refused listings: %d requests, %d limiter waits; want none", n, w)
	}
}
