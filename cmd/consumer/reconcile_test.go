package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/reconcile"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/testenv"
)

// reconcileJSON is what `consumer reconcile --json` prints.
type reconcileJSON struct {
	Scanned   int                   `json:"scanned"`
	Managed   int                   `json:"managed"`
	InSync    int                   `json:"in_sync"`
	Drift     []driftJSON           `json:"drift"`
	Unmanaged []reconcile.Unmanaged `json:"unmanaged"`
	Published *[]string             `json:"published"`
	Skipped   *[]reconcile.Skipped  `json:"skipped"`
}

type driftJSON struct {
	Email      string `json:"email"`
	Kind       string `json:"kind"`
	Expected   any    `json:"expected"`
	Actual     any    `json:"actual"`
	ZoomUserID string `json:"zoom_user_id"`
}

func (d driftJSON) String() string {
	return fmt.Sprintf("%s %s %v→%v", d.Kind, d.Email, d.Expected, d.Actual)
}

// reconcileRun runs `consumer reconcile --json` with args and decodes it,
// strictly.
func reconcileRun(t *testing.T, env map[string]string, args ...string) reconcileJSON {
	t.Helper()
	res := runCLI(t, 2*time.Minute, env, "", append([]string{"reconcile", "--json"}, args...)...)
	if res.code != 0 {
		t.Fatalf("consumer reconcile --json %q = %d\nstdout: %s\nstderr: %s", args, res.code, res.stdout, res.stderr)
	}
	var out reconcileJSON
	dec := json.NewDecoder(strings.NewReader(res.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("consumer reconcile --json printed %q: %v", res.stdout, err)
	}
	if out.Drift == nil || out.Unmanaged == nil {
		t.Errorf("consumer reconcile --json: drift %v, unmanaged %v; want arrays, never null", out.Drift, out.Unmanaged)
	}
	return out
}

// driftLines describes the drift, sorted.
func driftLines(r reconcileJSON) []string {
	var out []string
	for _, d := range r.Drift {
		out = append(out, d.String())
	}
	sort.Strings(out)
	return out
}

// unmanagedLines describes the unmanaged users, sorted.
func unmanagedLines(r reconcileJSON) []string {
	var out []string
	for _, u := range r.Unmanaged {
		out = append(out, u.Email+" "+u.Status)
	}
	sort.Strings(out)
	return out
}

// reconcileLives are 60 users, every one of them provisioned through the
// service: 20 active, 8 deactivated, 8 deleted, 5 invited, 5 licensed
// (custCreate) and renamed, 5 deleted and created again, 5 whose creation
// failed (never created), 4 created with an address in mixed case.
func reconcileLives(sim *testenv.Simulator) []userLife {
	create := func(id, action, email string, typ int) lifeStep {
		return lifeStep{id, action, fmt.Sprintf(`{"action":%q,"user_info":{"email":%q,"type":%d,"first_name":"First","last_name":"Last"}}`, action, email, typ), messages.OutcomeCreated, ""}
	}
	op := func(id, action, body string, o messages.Outcome) lifeStep { return lifeStep{id, action, body, o, ""} }
	var lives []userLife
	add := func(n int, prefix string, steps func(id func(string) string, e string) ([]lifeStep, string)) {
		for i := range n {
			e := fmt.Sprintf("%s%d@drift.example.com", prefix, len(lives))
			id := func(s string) string { return fmt.Sprintf("drift-%d-%s", len(lives), s) }
			st, email := steps(id, e)
			if email == "" {
				email = e
			}
			_ = i
			lives = append(lives, userLife{email: email, steps: st})
		}
	}
	add(20, "a", func(id func(string) string, e string) ([]lifeStep, string) {
		return []lifeStep{create(id("c"), "ssoCreate", e, 1)}, ""
	})
	add(8, "d", func(id func(string) string, e string) ([]lifeStep, string) {
		return []lifeStep{create(id("c"), "ssoCreate", e, 1), op(id("x"), "deactivate", fmt.Sprintf(`{"email":%q}`, e), messages.OutcomeDeactivated)}, ""
	})
	add(8, "x", func(id func(string) string, e string) ([]lifeStep, string) {
		return []lifeStep{create(id("c"), "ssoCreate", e, 1), op(id("d"), "delete", fmt.Sprintf(`{"email":%q,"action":"delete"}`, e), messages.OutcomeDeleted)}, ""
	})
	add(5, "i", func(id func(string) string, e string) ([]lifeStep, string) {
		return []lifeStep{create(id("c"), "create", e, 1)}, ""
	})
	add(5, "c", func(id func(string) string, e string) ([]lifeStep, string) {
		return []lifeStep{create(id("c"), "custCreate", e, 2), op(id("u"), "update", fmt.Sprintf(`{"email":%q,"user":{"first_name":"Renamed"}}`, e), messages.OutcomeUpdated)}, ""
	})
	add(5, "r", func(id func(string) string, e string) ([]lifeStep, string) {
		return []lifeStep{create(id("c"), "ssoCreate", e, 1), op(id("d"), "delete", fmt.Sprintf(`{"email":%q,"action":"delete"}`, e), messages.OutcomeDeleted),
			create(id("c2"), "ssoCreate", e, 2)}, ""
	})
	add(5, "f", func(id func(string) string, e string) ([]lifeStep, string) {
		sim.FailEmail(e, 1, testenv.Fault{Status: 404, Code: 4130, Message: "Group does not exist: sales."})
		return []lifeStep{{id("c"), "ssoCreate", fmt.Sprintf(`{"action":"ssoCreate","user_info":{"email":%q,"type":1}}`, e), messages.OutcomeFailed, messages.ReasonNotFound}}, ""
	})
	add(4, "m", func(id func(string) string, e string) ([]lifeStep, string) {
		mixed := strings.ToUpper(e[:1]) + e[1:strings.Index(e, "@")] + "@Drift.Example.COM"
		return []lifeStep{create(id("c"), "ssoCreate", mixed, 1)}, mixed
	})
	return lives
}

// waitForResults waits until every request id has a terminal result, and
// returns them.
func waitForResults(t *testing.T, js jetstream.JetStream, ids []string) map[string]messages.Result {
	t.Helper()
	out := map[string]messages.Result{}
	eventually(t, 90*time.Second, func() (bool, string) {
		evs := resultEvents(t, js)
		for _, id := range ids {
			term := terminalEvents(evs[id])
			if len(term) == 0 {
				return false, id + " has no terminal result yet"
			}
			out[id] = term[0].Data
		}
		return true, ""
	})
	return out
}

// Ensure consumer reconcile, against 60 users the service provisioned and
// drift made by hand in Zoom, reports exactly that drift and the users
// Zoom has that no request ever created (the listing's pages forced
// small, each asked for with page_size=300), calls nothing but GET
// /v2/users while it scans, prints a summary, a table per kind and the
// command that applies the plan; that --apply publishes one corrective
// request per drift (ids reconcile-…) which the running service applies
// in per-user order; and that a second scan then finds no drift.
func TestReconcileRepairsDrift(t *testing.T) {
	ns := startNATS(t)
	sim := startSim(t, testenv.SimConfig{MaxPageSize: 7})
	lives := reconcileLives(sim)
	env := merge(serviceEnv(ns, sim), map[string]string{"ZOOM_RATE_LIMIT": "50"})
	svc := startRun(t, env)
	addr := svc.healthAddr(t)
	eventually(t, 15*time.Second, func() (bool, string) {
		code, _, why := getReady(addr)
		return code == 200, why
	})
	_, js := connectJS(t, ns.URL())
	publishLives(t, js, lives)
	var ids []string
	for _, l := range lives {
		for _, s := range l.steps {
			ids = append(ids, s.id)
		}
	}
	for id, r := range waitForResults(t, js, ids) {
		if want := stepOf(lives, id); r.Outcome != want.outcome {
			t.Fatalf("%s ended %s (%s); want %s", id, r.Outcome, r.Reason, want.outcome)
		}
	}
	ledgerCaughtUp(t, js)

	// Drift by hand, as an admin in Zoom's portal would make it.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(sim.AdminDelete("a0@drift.example.com"))                              // missing
	must(sim.AdminDelete("i36@drift.example.com"))                             // missing: an invitation withdrawn
	must(sim.AdminSetStatus("a1@drift.example.com", "inactive"))               // status
	must(sim.AdminSetStatus("d20@drift.example.com", "active"))                // status: a leaver reactivated
	must(sim.AdminSetStatus("c41@drift.example.com", "inactive"))              // status, and the licence gone (fields)
	_, err := sim.AdminCreate(testenv.SimUser{Email: "x28@drift.example.com"}) // present
	must(err)
	_, err = sim.AdminCreate(testenv.SimUser{Email: "X29@Drift.example.com", FirstName: "Back"}) // present, in another case
	must(err)
	must(sim.AdminUpdate("a2@drift.example.com", func(u *testenv.SimUser) { u.FirstName = "Changed" })) // fields
	must(sim.AdminUpdate("r46@drift.example.com", func(u *testenv.SimUser) { u.LastName = "Changed" })) // fields of a re-created user
	// No drift: an invitation accepted, an address respelt in another case.
	must(sim.AdminSetStatus("i37@drift.example.com", "active"))
	must(sim.AdminUpdate("a3@drift.example.com", func(u *testenv.SimUser) { u.Email = "A3@DRIFT.example.com" }))
	// Unmanaged: users no request ever created, one whose creation failed.
	for _, u := range []testenv.SimUser{
		{Email: "stranger1@drift.example.com"},
		{Email: "stranger2@drift.example.com", Status: "inactive"},
		{Email: "stranger3@drift.example.com", Action: "create"},
		{Email: "f51@drift.example.com"},
	} {
		_, err := sim.AdminCreate(u)
		must(err)
	}
	wantDrift := []string{
		"fields a2@drift.example.com map[first_name:First]→map[first_name:Changed]",
		"fields c41@drift.example.com map[type:2]→map[type:1]",
		"fields r46@drift.example.com map[last_name:Last]→map[last_name:Changed]",
		"missing a0@drift.example.com active→absent",
		"missing i36@drift.example.com pending→absent",
		"present X29@Drift.example.com deleted→active",
		"present x28@drift.example.com deleted→active",
		"status a1@drift.example.com active→inactive",
		"status c41@drift.example.com active→inactive",
		"status d20@drift.example.com inactive→active",
	}
	wantUnmanaged := []string{"f51@drift.example.com active", "stranger1@drift.example.com active", "stranger2@drift.example.com inactive", "stranger3@drift.example.com pending"}

	cli := map[string]string{}
	for k, v := range env {
		if strings.HasPrefix(k, "NATS_") || strings.HasPrefix(k, "ZOOM_") {
			cli[k] = v
		}
	}
	before := len(sim.Requests())
	first := reconcileRun(t, cli)
	if got := driftLines(first); !slices.Equal(got, wantDrift) {
		t.Errorf("drift:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantDrift, "\n"))
	}
	if got := unmanagedLines(first); !slices.Equal(got, wantUnmanaged) {
		t.Errorf("unmanaged: %q; want %q", got, wantUnmanaged)
	}
	// In Zoom: 19 + 8 + 2 + 4 + 5 + 5 + 4 service users and 4 unmanaged;
	// managed: the 55 that are not the failed creations, 9 of them drifted.
	if first.Scanned != 51 || first.Managed != 55 || first.InSync != 46 || first.Published != nil {
		t.Errorf("scanned %d, managed %d, in sync %d, published %v; want 51, 55, 46, nothing", first.Scanned, first.Managed, first.InSync, first.Published)
	}
	listCalls := 0
	for _, r := range sim.Requests()[before:] {
		if !strings.HasPrefix(r.Path, "/v2/") {
			continue // the token endpoint
		}
		if r.Method != http.MethodGet || r.Route != testenv.RouteListUsers {
			t.Errorf("the scan called %s %s; want only GET /v2/users", r.Method, r.Path)
		}
		if !strings.Contains(r.Query, "page_size=300") {
			t.Errorf("the scan asked %q; want page_size=300", r.Query)
		}
		listCalls++
	}
	if listCalls < 9 {
		t.Errorf("%d listing calls; want at least 9 pages of 7 users", listCalls)
	}
	t.Logf("first scan: %d scanned, %d managed, %d in sync, %d drift, %d unmanaged, %d listing calls (pages of 7)",
		first.Scanned, first.Managed, first.InSync, len(first.Drift), len(first.Unmanaged), listCalls)

	// Text: a summary line, a table per kind, the command to apply.
	res := runCLI(t, 2*time.Minute, cli, "", "reconcile", "--nats-url", ns.URL())
	if res.code != 0 {
		t.Fatalf("consumer reconcile = %d: %s", res.code, res.stderr)
	}
	for _, want := range []string{
		"scanned 51 users in Zoom: 55 managed, 46 in sync, 10 drift (missing 2, status 3, present 2, fields 3), 4 unmanaged\n",
		"\nmissing (2): ", "\nstatus (3): ", "\npresent (2): ", "\nfields (3): ", "\nunmanaged (4): ",
		"to publish 10 corrective requests: consumer reconcile --nats-url " + ns.URL() + " --apply\n",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("consumer reconcile printed\n%s\nwant %q in it", res.stdout, want)
		}
	}
	if !regexp.MustCompile(`(?m)^c41@drift\.example\.com +type=2 +type=1 +\S+ +update$`).MatchString(res.stdout) {
		t.Errorf("consumer reconcile printed\n%s\nwant c41's fields row: type=2, type=1, update", res.stdout)
	}

	// --apply: one corrective request per drift, applied by the service.
	applied := reconcileRun(t, cli, "--apply", "--actor", "test", "--reason", "drift made by hand")
	if applied.Published == nil || len(*applied.Published) != len(wantDrift) || applied.Skipped == nil || len(*applied.Skipped) != 0 {
		t.Fatalf("--apply published %v, skipped %v; want %d corrective requests and none skipped", applied.Published, applied.Skipped, len(wantDrift))
	}
	for _, id := range *applied.Published {
		if !strings.HasPrefix(id, "reconcile-") {
			t.Errorf("corrective request id %q; want it to start with reconcile-", id)
		}
	}
	appliedAt := time.Now()
	for id, r := range waitForResults(t, js, *applied.Published) {
		if r.Outcome == messages.OutcomeFailed || r.Outcome == messages.OutcomeHeld {
			t.Errorf("corrective request %s ended %s (%s %s); want it applied", id, r.Outcome, r.Reason, r.ZoomMessage)
		}
	}
	if u, _ := sim.User("c41@drift.example.com"); u.Status != "active" || u.Type != 2 {
		t.Errorf("c41 after the corrections: %s, type %d; want active, type 2 (activated, then the licence)", u.Status, u.Type)
	}
	if u, ok := sim.User("x28@drift.example.com"); ok {
		t.Errorf("x28 after the corrections: %+v; want deleted", u)
	}
	t.Logf("--apply: %d corrective requests published, all applied by the service %v later", len(*applied.Published), time.Since(appliedAt).Round(time.Millisecond))
	ledgerCaughtUp(t, js)
	second := reconcileRun(t, cli)
	t.Logf("second scan: %d scanned, %d managed, %d in sync, %d drift, %d unmanaged", second.Scanned, second.Managed, second.InSync, len(second.Drift), len(second.Unmanaged))
	if len(second.Drift) != 0 || second.InSync != second.Managed {
		t.Errorf("the second scan found %q (in sync %d of %d); want no drift", driftLines(second), second.InSync, second.Managed)
	}
	if got := unmanagedLines(second); !slices.Equal(got, wantUnmanaged) {
		t.Errorf("the second scan's unmanaged: %q; want %q, never acted on", got, wantUnmanaged)
	}
	if evs := auditEvents(t, js, "drift"); len(evs) != 1 || evs[0].Type != "zoom.user.provisioning.drift.applied" || evs[0].Data["actor"] != "test" {
		t.Errorf("audit events on zoom.users.result.drift = %+v; want one drift.applied by test", evs)
	}
}

// stepOf returns the step of request id.
func stepOf(lives []userLife, id string) lifeStep {
	for _, l := range lives {
		for _, s := range l.steps {
			if s.id == id {
				return s
			}
		}
	}
	return lifeStep{}
}

// Ensure a usage mistake is one line and exit 2, and the Zoom credentials
// are required before anything connects.
func TestReconcileUsage(t *testing.T) {
	tp := newTarpit(t)
	for _, args := range [][]string{
		{"reconcile", "extra"},
		{"reconcile", "--apply=maybe"},
		{"reconcile", "--zoom-rate-limit", "-1"},
	} {
		res := runCLI(t, 5*time.Second, map[string]string{"NATS_URL": tp.url(), "ZOOM_ACCOUNT_ID": "a", "ZOOM_CLIENT_ID": "b", "ZOOM_CLIENT_SECRET": "c"}, "", args...)
		if res.code != 2 || strings.Count(res.stderr, "\n") != 1 {
			t.Errorf("consumer %q = %d, stderr %q; want exit 2 and one line", args, res.code, res.stderr)
		}
	}
	res := runCLI(t, 5*time.Second, map[string]string{"NATS_URL": tp.url()}, "", "reconcile")
	if res.code != 2 || !strings.Contains(res.stderr, "ZOOM_ACCOUNT_ID") || strings.Count(res.stderr, "\n") != 1 {
		t.Errorf("consumer reconcile without credentials = %d, %q; want exit 2 naming ZOOM_ACCOUNT_ID", res.code, res.stderr)
	}
	if tp.connected(t) {
		t.Errorf("consumer reconcile connected to NATS before refusing its arguments")
	}
}

// Ensure consumer reconcile and a busy service together never send Zoom
// more than ZOOM_RATE_LIMIT calls in a second: the command's listing
// takes a share of the budget through a lease in the quota bucket, and
// the service slows down for it while it scans.
func TestReconcileSharesTheBudget(t *testing.T) {
	ns := startNATS(t)
	sim := startSim(t, testenv.SimConfig{MaxPageSize: 4})
	for i := range 120 {
		if _, err := sim.AdminCreate(testenv.SimUser{Email: fmt.Sprintf("listed%d@budget.example.com", i)}); err != nil {
			t.Fatal(err)
		}
	}
	const limit = 10
	env := merge(serviceEnv(ns, sim), map[string]string{"ZOOM_RATE_LIMIT": fmt.Sprint(limit)})
	svc := startRun(t, env)
	addr := svc.healthAddr(t)
	eventually(t, 15*time.Second, func() (bool, string) {
		code, _, why := getReady(addr)
		return code == 200, why
	})
	_, js := connectJS(t, ns.URL())
	topo := topology.Default()
	var ids []string
	for i := range 90 {
		id := fmt.Sprintf("budget-%d", i)
		m := nats.NewMsg(topo.RequestSubject("ssoCreate"))
		m.Data = []byte(fmt.Sprintf(`{"action":"ssoCreate","user_info":{"email":"new%d@budget.example.com","type":1}}`, i))
		if _, err := js.PublishMsg(context.Background(), m, jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	// The service is busy with the creations when the scan starts.
	eventually(t, 15*time.Second, func() (bool, string) {
		n := sim.TotalCreations()
		return n >= 5, fmt.Sprintf("%d created", n)
	})
	cli := map[string]string{"NATS_URL": ns.URL(), "ZOOM_RATE_LIMIT": fmt.Sprint(limit), "ZOOM_API_URL": sim.APIURL(), "ZOOM_TOKEN_URL": sim.TokenURL(),
		"ZOOM_ACCOUNT_ID": testenv.DefaultSimAccountID, "ZOOM_CLIENT_ID": testenv.DefaultSimClientID, "ZOOM_CLIENT_SECRET": testenv.DefaultSimClientSecret}
	rep := reconcileRun(t, cli)
	if rep.Scanned < 120 {
		t.Errorf("scanned %d; want the 120 users and the ones created meanwhile", rep.Scanned)
	}
	waitForResults(t, js, ids)

	// Per second of Zoom's clock: the scan's calls and the service's.
	// Calls leave each process evenly spaced, but two processes' calls
	// reach the simulator with their own delays (tens of milliseconds
	// under -race on a busy machine), so one call of a neighbouring second
	// may land in a window: one call more than the budget is allowed for
	// that, and no more. Without the shared budget both would run at
	// ZOOM_RATE_LIMIT, twice that.
	type counts struct{ list, other int }
	perSecond := map[time.Time]counts{}
	var firstList, lastList time.Time
	lists, during := 0, 0
	reqs := sim.Requests()
	for _, r := range reqs {
		if !strings.HasPrefix(r.Path, "/v2/") {
			continue
		}
		sec := r.Time.Truncate(time.Second)
		c := perSecond[sec]
		if r.Route == testenv.RouteListUsers {
			c.list++
			if firstList.IsZero() {
				firstList = r.Time
			}
			lastList = r.Time
			lists++
		} else {
			c.other++
		}
		perSecond[sec] = c
	}
	for _, r := range reqs {
		if strings.HasPrefix(r.Path, "/v2/") && !r.Time.Before(firstList) && !r.Time.After(lastList) {
			during++
		}
	}
	overlap := 0
	for sec, c := range perSecond {
		if n := c.list + c.other; n > limit+1 || (c.list > 0 && (c.list > limit/2+1 || c.other > limit/2+1)) {
			var calls []string
			for _, r := range reqs {
				if strings.HasPrefix(r.Path, "/v2/") && r.Time.Truncate(time.Second).Equal(sec) {
					calls = append(calls, r.Time.Format("05.000")+" "+r.Method+" "+r.Route)
				}
			}
			t.Errorf("in the second from %s, %d listing calls and %d others; want at most ZOOM_RATE_LIMIT=%d in all, half each while both run (one more for the arrival jitter):\n%s",
				sec.Format("15:04:05"), c.list, c.other, limit, strings.Join(calls, "\n"))
		}
		if c.list > 0 && c.other > 0 {
			overlap++
		}
	}
	if span := lastList.Sub(firstList).Seconds(); span > 1 && float64(during-1)/span > limit {
		t.Errorf("%d calls in the %.1f s the scan ran: %.1f/s; want at most ZOOM_RATE_LIMIT=%d", during, span, float64(during-1)/span, limit)
	}
	if lists < 30 {
		t.Errorf("%d listing calls; want the 120 users in pages of 4", lists)
	}
	if overlap < 2 {
		t.Errorf("the scan and the creations shared %d seconds; want the scan to run while the service works", overlap)
	}
}

// driftReport is a drift report event as stored.
type driftReport struct {
	Type string `json:"type"`
	Data struct {
		Actor    string         `json:"actor"`
		Scanned  int            `json:"scanned"`
		Counts   map[string]int `json:"counts"`
		Drift    []driftJSON    `json:"drift"`
		Started  time.Time      `json:"started_at"`
		Finished time.Time      `json:"finished_at"`
	} `json:"data"`
}

// driftReports reads the drift reports stored so far.
func driftReports(t *testing.T, js jetstream.JetStream) []driftReport {
	t.Helper()
	var out []driftReport
	for _, ev := range auditEvents(t, js, "drift") {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		var r driftReport
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		if r.Type == "zoom.user.provisioning.drift.report" {
			out = append(out, r)
		}
	}
	return out
}

// Ensure the periodic reconciliation of `consumer run`: of two replicas,
// one at a time scans, once per RECONCILE_INTERVAL (the scans never
// overlap and start an interval apart); each scan publishes a drift
// report; both replicas export zoomprov_drift_users by kind as the last
// scan found it; nothing is corrected without RECONCILE_APPLY.
func TestReconcilePeriodic(t *testing.T) {
	ns := startNATS(t)
	sim := startSim(t, testenv.SimConfig{})
	const interval = 2 * time.Second
	env := merge(serviceEnv(ns, sim), map[string]string{"RECONCILE_INTERVAL": interval.String()})
	var addrs []string
	for range 2 {
		svc := startRun(t, env)
		addrs = append(addrs, svc.healthAddr(t))
	}
	for _, addr := range addrs {
		eventually(t, 15*time.Second, func() (bool, string) {
			code, _, why := getReady(addr)
			return code == 200, why
		})
	}
	_, js := connectJS(t, ns.URL())
	lives := []userLife{
		{email: "p0@periodic.example.com", steps: []lifeStep{{"periodic-0", "ssoCreate", `{"action":"ssoCreate","user_info":{"email":"p0@periodic.example.com","type":1,"first_name":"P"}}`, messages.OutcomeCreated, ""}}},
		{email: "p1@periodic.example.com", steps: []lifeStep{{"periodic-1", "ssoCreate", `{"action":"ssoCreate","user_info":{"email":"p1@periodic.example.com","type":1,"first_name":"P"}}`, messages.OutcomeCreated, ""}}},
	}
	publishLives(t, js, lives)
	waitForResults(t, js, []string{"periodic-0", "periodic-1"})
	ledgerCaughtUp(t, js)
	if err := sim.AdminSetStatus("p0@periodic.example.com", "inactive"); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.AdminCreate(testenv.SimUser{Email: "stranger@periodic.example.com"}); err != nil {
		t.Fatal(err)
	}
	drifted := time.Now()

	var after []driftReport
	eventually(t, 30*time.Second, func() (bool, string) {
		after = after[:0]
		for _, r := range driftReports(t, js) {
			if r.Data.Started.After(drifted) {
				after = append(after, r)
			}
		}
		return len(after) >= 3, fmt.Sprintf("%d drift reports since the drift; want 3", len(after))
	})
	all := driftReports(t, js)
	for i, r := range all {
		if i > 0 {
			prev := all[i-1].Data
			if r.Data.Started.Before(prev.Finished) || r.Data.Started.Sub(prev.Started) < interval-100*time.Millisecond {
				t.Errorf("scan %d started %v after the previous one's start, before its end (%v) or less than %v after its start",
					i, r.Data.Started.Sub(prev.Started), prev.Finished, interval)
			}
		}
		if !strings.HasPrefix(r.Data.Actor, "zoom-provisioner/") {
			t.Errorf("drift report %d: actor %q; want the replica", i, r.Data.Actor)
		}
	}
	for _, r := range after {
		if r.Data.Scanned != 3 || r.Data.Counts["status"] != 1 || r.Data.Counts["unmanaged"] != 1 || r.Data.Counts["missing"] != 0 ||
			len(r.Data.Drift) != 1 || r.Data.Drift[0].Email != "p0@periodic.example.com" {
			t.Errorf("drift report %+v; want 3 scanned, p0's status, one unmanaged", r.Data)
		}
	}
	for _, addr := range addrs {
		eventually(t, 10*time.Second, func() (bool, string) {
			fams := scrape(t, addr)
			var got []string
			for _, kind := range []string{"missing", "status", "present", "fields", "unmanaged"} {
				v, ok := series(fams, "zoomprov_drift_users", "kind", kind)
				got = append(got, fmt.Sprintf("%s=%v(%t)", kind, v, ok))
			}
			want := "missing=0(true) status=1(true) present=0(true) fields=0(true) unmanaged=1(true)"
			return strings.Join(got, " ") == want, fmt.Sprintf("replica %s: zoomprov_drift_users %s; want %s", addr, strings.Join(got, " "), want)
		})
	}
	if u, _ := sim.User("p0@periodic.example.com"); u.Status != "inactive" {
		t.Errorf("p0 is %s; want inactive: RECONCILE_APPLY is off", u.Status)
	}
}
