package testenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"testing"
	"time"
)

// listAnswer is the wire format of GET /v2/users, decoded independently
// of the simulator's own types.
type listAnswer struct {
	PageCount     *int         `json:"page_count"`
	PageNumber    *int         `json:"page_number"`
	PageSize      *int         `json:"page_size"`
	TotalRecords  *int         `json:"total_records"`
	NextPageToken *string      `json:"next_page_token"`
	Users         []listedUser `json:"users"`
}

type listedUser struct {
	ID          *string `json:"id"`
	Email       string  `json:"email"`
	FirstName   string  `json:"first_name"`
	LastName    string  `json:"last_name"`
	DisplayName string  `json:"display_name"`
	Type        int     `json:"type"`
	Status      string  `json:"status"`
	Dept        string  `json:"dept"`
	CreatedAt   string  `json:"created_at"`
}

// listURL is GET /v2/users with the query params, given as name, value
// pairs.
func listURL(s *Simulator, params ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(params); i += 2 {
		q.Set(params[i], params[i+1])
	}
	u := s.APIURL() + "/users"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// list fetches one page, failing unless it is a 200 with every field of
// Zoom's answer present.
func (l *lifecycle) list(params ...string) listAnswer {
	l.t.Helper()
	r := mustSend(l.t, l.c, http.MethodGet, listURL(l.s, params...), l.auth, "", nil)
	if r.status != http.StatusOK {
		l.t.Fatalf("GET /v2/users %v = %d %s; want 200", params, r.status, r.body)
	}
	var a listAnswer
	if err := json.Unmarshal(r.body, &a); err != nil {
		l.t.Fatalf("GET /v2/users %v body %s: %v", params, r.body, err)
	}
	if a.PageCount == nil || a.PageNumber == nil || a.PageSize == nil || a.TotalRecords == nil || a.NextPageToken == nil || a.Users == nil {
		l.t.Fatalf("GET /v2/users %v = %s; want page_count, page_number, page_size, total_records, next_page_token and users", params, r.body)
	}
	return a
}

// listAll walks every page of status with pageSize, checking the paging
// fields of each page, and returns the users in order.
func (l *lifecycle) listAll(status string, pageSize, wantServed, wantTotal int) []listedUser {
	l.t.Helper()
	var all []listedUser
	token := ""
	wantPages := (wantTotal + wantServed - 1) / wantServed
	for n := 1; ; n++ {
		params := []string{"status", status, "page_size", fmt.Sprint(pageSize)}
		if token != "" {
			params = append(params, "next_page_token", token)
		}
		a := l.list(params...)
		last := n == wantPages || wantPages == 0
		wantLen := wantServed
		if last {
			wantLen = wantTotal - (n-1)*wantServed
		}
		if *a.PageSize != wantServed || *a.TotalRecords != wantTotal || *a.PageCount != wantPages || *a.PageNumber != n ||
			len(a.Users) != wantLen || (*a.NextPageToken == "") != last {
			l.t.Fatalf("%s page %d: page_size %d, total_records %d, page_count %d, page_number %d, %d users, next_page_token %q; "+
				"want %d, %d, %d, %d, %d users, a token: %v",
				status, n, *a.PageSize, *a.TotalRecords, *a.PageCount, *a.PageNumber, len(a.Users), *a.NextPageToken,
				wantServed, wantTotal, wantPages, n, wantLen, !last)
		}
		all = append(all, a.Users...)
		if last {
			return all
		}
		token = *a.NextPageToken
	}
}

func emailsOf(us []listedUser) []string {
	var out []string
	for _, u := range us {
		out = append(out, u.Email)
	}
	return out
}

// sorted returns a sorted copy of ss.
func sorted(ss []string) []string {
	out := slices.Clone(ss)
	slices.Sort(out)
	return out
}

// mustAdminCreate creates u by hand, failing the test on error.
func mustAdminCreate(t *testing.T, s *Simulator, u SimUser) SimUser {
	t.Helper()
	got, err := s.AdminCreate(u)
	if err != nil {
		t.Fatalf("AdminCreate(%q) error: %v", u.Email, err)
	}
	return got
}

// Ensure each status is listed on its own, page by page at the simulator's
// ceiling, with every user once, ids for all but the pending ones, and the
// deprecated page fields filled in.
func TestListUsersPagination(t *testing.T) {
	clk := newTestClock(epoch)
	l := newLifecycle(t, SimConfig{Now: clk.Now, MaxPageSize: 2})
	want := map[string][]string{}
	for i := range 5 {
		e := fmt.Sprintf("active%d@example.com", i)
		l.s.AddUser(e, 2)
		want[statusActive] = append(want[statusActive], e)
		clk.Advance(time.Second)
	}
	for i := range 3 {
		e := fmt.Sprintf("pending%d@example.com", i)
		if r := mustCreate(t, l.c, l.s, l.auth, "create", e); r.status != http.StatusCreated {
			t.Fatalf("create %s = %d %s", e, r.status, r.body)
		}
		want[statusPending] = append(want[statusPending], e)
	}
	for i := range 2 {
		e := fmt.Sprintf("inactive%d@example.com", i)
		mustAdminCreate(t, l.s, SimUser{Email: e, Status: statusInactive})
		want[statusInactive] = append(want[statusInactive], e)
	}
	clk.Advance(time.Minute)

	for _, status := range []string{statusActive, statusInactive, statusPending} {
		t.Run(status, func(t *testing.T) {
			l.t = t
			got := l.listAll(status, 300, 2, len(want[status]))
			if emails := sorted(emailsOf(got)); !slices.Equal(emails, sorted(want[status])) {
				t.Errorf("listed %s users = %v; want %v, each once", status, emails, want[status])
			}
			for _, u := range got {
				su, _ := l.s.User(u.Email)
				if u.Status != status || u.Type != su.Type || u.FirstName != su.FirstName {
					t.Errorf("listed %+v; want status %s and the stored user's fields %+v", u, status, su)
				}
				switch {
				case status == statusPending && u.ID != nil:
					t.Errorf("pending %s listed with id %q; want none", u.Email, *u.ID)
				case status != statusPending && (u.ID == nil || *u.ID != su.ID):
					t.Errorf("%s listed with id %v; want %q", u.Email, u.ID, su.ID)
				}
			}
			if status == statusActive {
				// Creation order: AddUser advanced the clock between users.
				if emails := emailsOf(got); !slices.Equal(emails, want[statusActive]) {
					t.Errorf("active users listed in order %v; want creation order %v", emails, want[statusActive])
				}
			}
		})
	}
	l.t = t

	// No status means active; no page_size means 30, served at 2 here.
	a := l.list()
	if *a.PageSize != 2 || *a.TotalRecords != 5 || a.Users[0].Status != statusActive {
		t.Errorf("GET /v2/users = page_size %d, total_records %d, first %+v; want 2, 5, an active user", *a.PageSize, *a.TotalRecords, a.Users[0])
	}
	l.s.SetMaxPageSize(0)
	if a := l.list(); *a.PageSize != 30 || len(a.Users) != 5 || *a.NextPageToken != "" {
		t.Errorf("GET /v2/users with the default ceiling = page_size %d, %d users, token %q; want 30, 5, none", *a.PageSize, len(a.Users), *a.NextPageToken)
	}
	if a := l.list("page_size", "3000"); *a.PageSize != DefaultSimMaxPageSize {
		t.Errorf("GET /v2/users?page_size=3000 page_size = %d; want %d (clamped)", *a.PageSize, DefaultSimMaxPageSize)
	}
	if a := l.list("status", statusInactive, "page_size", "1"); *a.TotalRecords != 2 || *a.PageCount != 2 {
		t.Errorf("page_size=1 = total_records %d, page_count %d; want 2, 2 (CountUsers' way)", *a.TotalRecords, *a.PageCount)
	}

	// An empty status lists nothing, still with every field.
	for _, e := range want[statusInactive] {
		if err := l.s.AdminDelete(e); err != nil {
			t.Fatal(err)
		}
	}
	if a := l.list("status", statusInactive); *a.TotalRecords != 0 || len(a.Users) != 0 || *a.NextPageToken != "" {
		t.Errorf("empty listing = %+v; want no users and no token", a)
	}
}

func TestListUsersRefusals(t *testing.T) {
	clk := newTestClock(epoch)
	l := newLifecycle(t, SimConfig{Now: clk.Now, MaxPageSize: 1})
	l.s.AddUser("a@example.com", 1)
	l.s.AddUser("b@example.com", 1)
	first := l.list("status", statusActive, "page_size", "5")
	token := *first.NextPageToken
	if token == "" {
		t.Fatalf("first page has no next_page_token")
	}
	for _, tc := range []struct {
		name   string
		params []string
		fields []string // the field errors, if a validation failure
	}{
		{"unknown status", []string{"status", "deleted"}, []string{"status"}},
		{"page_size 0", []string{"page_size", "0"}, []string{"page_size"}},
		{"negative page_size", []string{"page_size", "-1"}, []string{"page_size"}},
		{"page_size not a number", []string{"page_size", "ten"}, []string{"page_size"}},
		{"role_id", []string{"role_id", "2"}, nil},
		{"page_number", []string{"page_number", "2"}, nil},
		{"unknown token", []string{"status", statusActive, "page_size", "5", "next_page_token", "nope"}, nil},
		{"token with another status", []string{"status", statusInactive, "page_size", "5", "next_page_token", token}, nil},
		{"token with another page_size", []string{"status", statusActive, "next_page_token", token}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustSend(t, l.c, http.MethodGet, listURL(l.s, tc.params...), l.auth, "", nil)
			wantStatus(t, "GET /v2/users", r, http.StatusBadRequest, 300)
			if got := r.fields(); !slices.Equal(got, tc.fields) {
				t.Errorf("field errors = %v; want %v", got, tc.fields)
			}
		})
	}
	if r := mustSend(t, l.c, http.MethodGet, listURL(l.s), "", "", nil); r.status != http.StatusUnauthorized {
		t.Errorf("GET /v2/users without a token = %d; want 401", r.status)
	}
	// The refusals spent nothing: the token still works.
	if a := l.list("status", statusActive, "page_size", "5", "next_page_token", token); len(a.Users) != 1 {
		t.Errorf("second page after the refusals = %d users; want 1", len(a.Users))
	}
}

// Ensure a next_page_token lasts 15 minutes on the sim clock from the page
// that issued it, may be used again meanwhile (a retried page), and then
// gets 400/300; ExpirePageTokens ends them all at once.
func TestListUsersPageTokenExpiry(t *testing.T) {
	clk := newTestClock(epoch)
	l := newLifecycle(t, SimConfig{Now: clk.Now, MaxPageSize: 1})
	for _, e := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		l.s.AddUser(e, 1)
		clk.Advance(time.Second) // listed in this order
	}
	page := func(token string) result {
		return mustSend(t, l.c, http.MethodGet, listURL(l.s, "page_size", "1", "next_page_token", token), l.auth, "", nil)
	}
	t1 := *l.list("page_size", "1").NextPageToken
	clk.Advance(DefaultSimPageTokenTTL - time.Nanosecond)
	a := l.list("page_size", "1", "next_page_token", t1)
	t2 := *a.NextPageToken
	again := l.list("page_size", "1", "next_page_token", t1)
	if !reflect.DeepEqual(again.Users, a.Users) || *again.PageNumber != 2 {
		t.Errorf("page 2 fetched again = %+v; want the same users %+v", again.Users, a.Users)
	}
	clk.Advance(time.Nanosecond)
	r := page(t1)
	wantStatus(t, "token after 15 minutes", r, http.StatusBadRequest, 300)
	if m := r.zoomErr(t).Message; m != msgPageToken {
		t.Errorf("expired token message = %q; want %q", m, msgPageToken)
	}
	// t2 was issued 15 minutes less a nanosecond ago.
	if a := l.list("page_size", "1", "next_page_token", t2); a.Users[0].Email != "c@example.com" {
		t.Errorf("page 3 = %+v; want c@example.com", a.Users)
	}

	t3 := *l.list("page_size", "1").NextPageToken
	l.s.ExpirePageTokens()
	wantStatus(t, "token after ExpirePageTokens", page(t3), http.StatusBadRequest, 300)
	wantStatus(t, "t2 after ExpirePageTokens", page(t2), http.StatusBadRequest, 300)
}

// Ensure one listing's pages all come from the state at its first page,
// whatever changes meanwhile (by the API or by hand), and that the next
// listing shows the changes.
func TestListUsersStable(t *testing.T) {
	clk := newTestClock(epoch)
	l := newLifecycle(t, SimConfig{Now: clk.Now, MaxPageSize: 2})
	var emails []string
	for i := range 4 {
		e := fmt.Sprintf("u%d@example.com", i)
		l.s.AddUser(e, 2)
		emails = append(emails, e)
		clk.Advance(time.Second)
	}
	first := l.list("page_size", "2")
	if got := emailsOf(first.Users); !slices.Equal(got, emails[:2]) {
		t.Fatalf("page 1 = %v; want %v", got, emails[:2])
	}

	// Between the pages: page 2's users are deleted and deactivated, a
	// page-1 user renamed, new users come, by hand and through the API.
	if err := l.s.AdminDelete(emails[2]); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, "deactivate u3", l.status(emails[3], "deactivate"), http.StatusOK, 0)
	if err := l.s.AdminUpdate(emails[0], func(u *SimUser) { u.FirstName = "Renamed" }); err != nil {
		t.Fatal(err)
	}
	mustAdminCreate(t, l.s, SimUser{Email: "new@example.com"})
	if r := mustCreate(t, l.c, l.s, l.auth, "custCreate", "api@example.com"); r.status != http.StatusCreated {
		t.Fatalf("custCreate = %d %s", r.status, r.body)
	}

	second := l.list("page_size", "2", "next_page_token", *first.NextPageToken)
	if got := emailsOf(second.Users); !slices.Equal(got, emails[2:]) || *second.TotalRecords != 4 || *second.NextPageToken != "" {
		t.Errorf("page 2 = %v, total_records %d, token %q; want %v as at page 1, 4, none", got, *second.TotalRecords, *second.NextPageToken, emails[2:])
	}
	if u := second.Users[1]; u.Status != statusActive || u.Type != 2 {
		t.Errorf("page 2 shows u3 as %s type %d; want active type 2, as at page 1", u.Status, u.Type)
	}

	l.s.SetMaxPageSize(0)
	now := l.list()
	want := []string{emails[0], emails[1], "new@example.com", "api@example.com"}
	if got := sorted(emailsOf(now.Users)); !slices.Equal(got, sorted(want)) {
		t.Errorf("the next listing = %v; want %v", got, want)
	}
	if now.Users[0].FirstName != "Renamed" {
		t.Errorf("the next listing shows u0 as %+v; want it renamed", now.Users[0])
	}
	if a := l.list("status", statusInactive); len(a.Users) != 1 || a.Users[0].Email != emails[3] || a.Users[0].Type != 1 {
		t.Errorf("inactive listing = %+v; want u3 with type 1", a.Users)
	}
}

// Ensure GET /v2/users is rate limited as Medium: its own limit, its own
// windows and X-RateLimit-Category, apart from the Light calls'; and that
// scripted faults reach it, the page staying available for a retry.
func TestListUsersMediumLimit(t *testing.T) {
	clk := newTestClock(time.Date(2026, 3, 1, 12, 0, 0, 250e6, time.UTC))
	l := newLifecycle(t, SimConfig{Now: clk.Now, RatePerSecond: 1, MediumRatePerSecond: 2, MaxPageSize: 1})
	l.s.AddUser("a@example.com", 1)
	l.s.AddUser("b@example.com", 1)
	check := func(what string, r result, status int, category, limit, remaining string) {
		t.Helper()
		if r.status != status || r.header.Get("X-RateLimit-Category") != category ||
			r.header.Get("X-RateLimit-Limit") != limit || r.header.Get("X-RateLimit-Remaining") != remaining {
			t.Errorf("%s = %d, category %q, limit %q, remaining %q; want %d, %q, %q, %q", what, r.status,
				r.header.Get("X-RateLimit-Category"), r.header.Get("X-RateLimit-Limit"), r.header.Get("X-RateLimit-Remaining"),
				status, category, limit, remaining)
		}
	}
	get := func() result {
		return mustSend(t, l.c, http.MethodGet, listURL(l.s, "page_size", "1"), l.auth, "", nil)
	}
	check("list 1", get(), http.StatusOK, "Medium", "2", "1")
	check("GET user", mustSend(t, l.c, http.MethodGet, userURL(l.s, "a@example.com"), l.auth, "", nil), http.StatusOK, "Light", "1", "0")
	check("list 2", get(), http.StatusOK, "Medium", "2", "0")
	r := get()
	check("list 3", r, http.StatusTooManyRequests, "Medium", "2", "0")
	if r.header.Get("X-RateLimit-Type") != RateLimitQPS || r.header.Get("Retry-After") != "2026-03-01T12:00:01Z" {
		t.Errorf("list 429 type %q, Retry-After %q; want QPS, the next second", r.header.Get("X-RateLimit-Type"), r.header.Get("Retry-After"))
	}
	check("GET user 2", mustSend(t, l.c, http.MethodGet, userURL(l.s, "a@example.com"), l.auth, "", nil), http.StatusTooManyRequests, "Light", "1", "0")
	st := l.s.Stats()
	if st.MaxMediumPerSecond != 2 || st.MaxPerSecond != 1 || st.RateLimited[RateLimitQPS] != 2 {
		t.Errorf("Stats() MaxMediumPerSecond %d, MaxPerSecond %d, RateLimited[QPS] %d; want 2, 1, 2",
			st.MaxMediumPerSecond, st.MaxPerSecond, st.RateLimited[RateLimitQPS])
	}
	if got := st.Requests[RouteListUsers]; !reflect.DeepEqual(got, map[int]int{200: 2, 429: 1}) {
		t.Errorf("Stats().Requests[%q] = %v; want 200: 2, 429: 1", RouteListUsers, got)
	}

	clk.Advance(time.Second)
	l.s.SetMediumRatePerSecond(0)
	first := l.list("page_size", "1")
	l.s.FailNext(1, Fault{Status: http.StatusServiceUnavailable})
	r = mustSend(t, l.c, http.MethodGet, listURL(l.s, "page_size", "1", "next_page_token", *first.NextPageToken), l.auth, "", nil)
	wantStatus(t, "page 2 with a fault", r, http.StatusServiceUnavailable, http.StatusServiceUnavailable)
	if a := l.list("page_size", "1", "next_page_token", *first.NextPageToken); len(a.Users) != 1 || a.Users[0].Email == first.Users[0].Email {
		t.Errorf("page 2 retried = %+v; want the other user", a.Users)
	}
}

// Ensure changes by hand show in GET and in listings, keep the states the
// API produces, and leave no trace among the API's calls and counters.
func TestAdminChanges(t *testing.T) {
	clk := newTestClock(epoch)
	s := startSim(t, SimConfig{Now: clk.Now, PhoneLicenses: 1})

	invited := mustAdminCreate(t, s, SimUser{Email: "Invited@example.com", Action: "create", FirstName: "In"})
	if invited.Status != statusPending || invited.ID == "" || invited.Type != 1 || !invited.CreatedAt.Equal(epoch) {
		t.Errorf("AdminCreate(action create) = %+v; want pending, an id, type 1, created now", invited)
	}
	boss := mustAdminCreate(t, s, SimUser{Email: "boss@example.com", Type: 2, ZoomPhone: true, PlanUnitedType: "1"})
	if boss.Status != statusActive {
		t.Errorf("AdminCreate() status = %q; want active", boss.Status)
	}
	gone := mustAdminCreate(t, s, SimUser{Email: "gone@example.com", Type: 2, Status: statusInactive})
	if gone.Type != 1 {
		t.Errorf("AdminCreate(inactive, type 2) type = %d; want 1: an inactive user holds no licence", gone.Type)
	}
	if _, err := s.AdminCreate(SimUser{Email: "phone@example.com", ZoomPhone: true}); !errors.Is(err, ErrNoPhoneLicence) {
		t.Errorf("AdminCreate(ZoomPhone) with the only licence taken = %v; want ErrNoPhoneLicence", err)
	}

	steps := []struct {
		name string
		do   func() error
	}{
		{"accept the invitation", func() error { return s.AdminSetStatus("invited@example.com", statusActive) }},
		{"rename and move", func() error {
			return s.AdminUpdate(invited.ID, func(u *SimUser) {
				u.Email, u.LastName, u.DisplayName, u.Dept = "moved@example.com", "Vited", "In Vited", "Sales"
			})
		}},
		{"deactivate boss", func() error { return s.AdminSetStatus("BOSS@example.com", statusInactive) }},
		{"reactivate gone", func() error { return s.AdminSetStatus("gone@example.com", statusActive) }},
		{"delete gone", func() error { return s.AdminDelete("gone@example.com") }},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
	}
	if u, _ := s.User("boss@example.com"); u.Status != statusInactive || u.Type != 1 || u.PlanUnitedType != "" || u.ZoomPhone {
		t.Errorf("deactivated by hand = %+v; want inactive, type 1, no plan, no phone", u)
	}
	if _, err := s.AdminCreate(SimUser{Email: "phone@example.com", ZoomPhone: true}); err != nil {
		t.Errorf("AdminCreate(ZoomPhone) after the deactivation returned the licence = %v; want nil", err)
	}

	// Nothing above was an API call.
	st := s.Stats()
	if n := len(s.Requests()); n != 0 || len(st.Requests) != 0 || st.Creations != 0 || st.MaxPerSecond != 0 {
		t.Errorf("after changes by hand: %d requests logged, Stats %+v; want none", n, st)
	}
	for _, e := range []string{"invited@example.com", "moved@example.com", "boss@example.com", "gone@example.com"} {
		if h, d, c := s.History(e), s.Deletions(e), s.Creations(e); len(h) != 0 || len(d) != 0 || c != 0 {
			t.Errorf("%s: History %v, Deletions %v, Creations %d; want none", e, h, d, c)
		}
	}

	// What the API sees.
	l := &lifecycle{t: t, s: s, c: newClient(t, 5*time.Second)}
	l.auth = getToken(t, l.c, s)
	r := mustSend(t, l.c, http.MethodGet, userURL(s, "moved@example.com"), l.auth, "", nil)
	var got userJSON
	if err := json.Unmarshal(r.body, &got); err != nil || r.status != http.StatusOK {
		t.Fatalf("GET moved = %d %s", r.status, r.body)
	}
	if want := (userJSON{ID: invited.ID, Email: "moved@example.com", FirstName: "In", LastName: "Vited", DisplayName: "In Vited",
		Type: 1, Status: statusActive, CreatedAt: epoch.Format(time.RFC3339)}); got != want {
		t.Errorf("GET moved = %+v; want %+v", got, want)
	}
	wantStatus(t, "GET the old email", mustSend(t, l.c, http.MethodGet, userURL(s, "invited@example.com"), l.auth, "", nil), http.StatusNotFound, 1001)
	wantStatus(t, "GET the deleted user", mustSend(t, l.c, http.MethodGet, userURL(s, "gone@example.com"), l.auth, "", nil), http.StatusNotFound, 1001)
	active := l.list()
	if got := sorted(emailsOf(active.Users)); !slices.Equal(got, []string{"moved@example.com", "phone@example.com"}) {
		t.Errorf("active users = %v; want moved and phone", got)
	}
	if u := active.Users[slices.IndexFunc(active.Users, func(u listedUser) bool { return u.Email == "moved@example.com" })]; u.Dept != "Sales" {
		t.Errorf("listed moved = %+v; want dept Sales", u)
	}
	if got := emailsOf(l.list("status", statusInactive).Users); !slices.Equal(got, []string{"boss@example.com"}) {
		t.Errorf("inactive users = %v; want boss", got)
	}
	if got := emailsOf(l.list("status", statusPending).Users); len(got) != 0 {
		t.Errorf("pending users = %v; want none", got)
	}

	// The API's calls still start at Seq 1: the changes by hand took none.
	wantStatus(t, "PATCH moved", l.patch("moved@example.com", `{"job_title":"x"}`), http.StatusNoContent, 0)
	if h := s.History("moved@example.com"); len(h) != 1 || h[0].Seq != 1 {
		t.Errorf("History(moved) = %+v; want the PATCH alone, Seq 1", h)
	}
}

// Ensure a refused change by hand names its reason and changes nothing.
func TestAdminRefusals(t *testing.T) {
	s := startSim(t, SimConfig{})
	a := mustAdminCreate(t, s, SimUser{Email: "a@example.com", Type: 2})
	mustAdminCreate(t, s, SimUser{Email: "p@example.com", Action: "create"})
	mustAdminCreate(t, s, SimUser{Email: "b@example.com"})
	for _, tc := range []struct {
		name string
		do   func() error
		want error
	}{
		{"create an existing email", func() error { _, err := s.AdminCreate(SimUser{Email: "A@Example.com"}); return err }, ErrUserExists},
		{"create an existing id", func() error { _, err := s.AdminCreate(SimUser{Email: "c@example.com", ID: a.ID}); return err }, ErrUserExists},
		{"create a malformed email", func() error { _, err := s.AdminCreate(SimUser{Email: "not an email"}); return err }, ErrInvalidChange},
		{"create type 3", func() error { _, err := s.AdminCreate(SimUser{Email: "c@example.com", Type: 3}); return err }, ErrInvalidChange},
		{"create status deleted", func() error { _, err := s.AdminCreate(SimUser{Email: "c@example.com", Status: "deleted"}); return err }, ErrInvalidChange},
		{"create with a phone, none left", func() error { _, err := s.AdminCreate(SimUser{Email: "c@example.com", ZoomPhone: true}); return err }, ErrNoPhoneLicence},
		{"update nobody", func() error { return s.AdminUpdate("nobody@example.com", func(*SimUser) {}) }, ErrNoSuchUser},
		{"update the id", func() error { return s.AdminUpdate("a@example.com", func(u *SimUser) { u.ID = "x" }) }, ErrInvalidChange},
		{"update the status", func() error {
			return s.AdminUpdate("a@example.com", func(u *SimUser) { u.Status = statusInactive; u.FirstName = "X" })
		}, ErrInvalidChange},
		{"update to a taken email", func() error {
			return s.AdminUpdate("a@example.com", func(u *SimUser) { u.Email = "B@example.com"; u.FirstName = "X" })
		}, ErrUserExists},
		{"update to type 7", func() error { return s.AdminUpdate("a@example.com", func(u *SimUser) { u.Type = 7 }) }, ErrInvalidChange},
		{"give a phone, none left", func() error { return s.AdminUpdate("a@example.com", func(u *SimUser) { u.ZoomPhone = true }) }, ErrNoPhoneLicence},
		{"deactivate a pending user", func() error { return s.AdminSetStatus("p@example.com", statusInactive) }, ErrInvalidChange},
		{"set pending", func() error { return s.AdminSetStatus("a@example.com", statusPending) }, ErrInvalidChange},
		{"set status of nobody", func() error { return s.AdminSetStatus("nobody@example.com", statusActive) }, ErrNoSuchUser},
		{"delete nobody", func() error { return s.AdminDelete("nobody@example.com") }, ErrNoSuchUser},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(); !errors.Is(err, tc.want) {
				t.Errorf("error = %v; want %v", err, tc.want)
			}
		})
	}
	if u, ok := s.User("a@example.com"); !ok || u.FirstName != "" || u.Status != statusActive || u.Type != 2 || u.ZoomPhone {
		t.Errorf("a after the refusals = %+v, %v; want it unchanged", u, ok)
	}
	if _, ok := s.User("c@example.com"); ok {
		t.Errorf("c exists after refused creations")
	}
	if u, _ := s.User("p@example.com"); u.Status != statusPending {
		t.Errorf("p status = %q; want pending", u.Status)
	}
}
