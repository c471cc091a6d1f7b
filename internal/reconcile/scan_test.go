package reconcile_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/zoomprov/consumer/internal/ledger"
	"github.com/zoomprov/consumer/internal/reconcile"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/internal/zoom"
	"github.com/zoomprov/consumer/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// world is an embedded JetStream server with the service's buckets, a
// Zoom simulator, and a Zoom client of it.
type world struct {
	t    *testing.T
	js   jetstream.JetStream
	nc   *nats.Conn
	topo topology.Topology
	sim  *testenv.Simulator
	zc   *zoom.Client
	kv   jetstream.KeyValue
	l    *ledger.Ledger
}

func newWorld(t *testing.T, sc testenv.SimConfig) *world {
	t.Helper()
	ns, err := testenv.StartNATS(testenv.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, js: js, nc: nc, topo: topology.Default()}
	ctx := context.Background()
	if _, err := topology.Reconcile(ctx, js, w.topo, topology.Options{Actions: topology.Actions(), AckWait: 30 * time.Second, MaxAckPending: 1000}); err != nil {
		t.Fatalf("topology: %v", err)
	}
	if w.kv, err = js.KeyValue(ctx, w.topo.LedgerBucket); err != nil {
		t.Fatal(err)
	}
	if w.l, err = ledger.Open(ctx, js, w.topo); err != nil {
		t.Fatal(err)
	}
	w.sim = testenv.NewSimulator(sc)
	t.Cleanup(w.sim.Close)
	w.zc, err = zoom.New(zoom.Config{AccountID: testenv.DefaultSimAccountID, ClientID: testenv.DefaultSimClientID,
		ClientSecret: testenv.DefaultSimClientSecret, BaseURL: w.sim.APIURL(), TokenURL: w.sim.TokenURL(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.zc.CloseIdleConnections)
	return w
}

// put stores rec as email's ledger entry.
func (w *world) put(email string, rec ledger.Record) {
	w.t.Helper()
	data, err := json.Marshal(rec)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.kv.Put(context.Background(), ledger.Key(email), data); err != nil {
		w.t.Fatal(err)
	}
}

// add creates u in Zoom by hand.
func (w *world) add(u testenv.SimUser) {
	w.t.Helper()
	if _, err := w.sim.AdminCreate(u); err != nil {
		w.t.Fatalf("AdminCreate(%s): %v", u.Email, err)
	}
}

// scan runs a scan with cfg's other fields.
func (w *world) scan(cfg reconcile.Config) (reconcile.Report, error) {
	cfg.Zoom, cfg.Ledger = w.zc, w.l
	return reconcile.Scan(context.Background(), cfg)
}

// lines describes a report's drift and unmanaged users, sorted.
func lines(rep reconcile.Report) []string {
	var out []string
	for _, d := range rep.Drift {
		out = append(out, fmt.Sprintf("%s %s %v→%v", d.Kind, d.Email, roundTrip(d.Expected), roundTrip(d.Actual)))
	}
	for _, u := range rep.Unmanaged {
		out = append(out, fmt.Sprintf("unmanaged %s %s", u.Email, u.Status))
	}
	sort.Strings(out)
	return out
}

// userOf describes step's user as the ledger would have them.
func named(email string, steps ...step) []step {
	out := make([]step, len(steps))
	for i, s := range steps {
		s.body = strings.ReplaceAll(s.body, "alice@example.com", email)
		s.body = strings.ReplaceAll(s.body, "Alice@Example.com", email)
		out[i] = s
	}
	return out
}

// Ensure a scan lists every page of the three statuses (the page size
// forced small, the size asked for 300), compares each user with the
// ledger whatever the case of their address, finds every kind of drift
// and the unmanaged users exactly, calls nothing but GET /users, starts
// a listing again when its page token expired without counting anyone
// twice, and retries a per-second 429 and a 502.
func TestScan(t *testing.T) {
	w := newWorld(t, testenv.SimConfig{MaxPageSize: 3})
	type user struct {
		email string
		steps []step
		zoom  *testenv.SimUser // nil: not in Zoom
	}
	sim := func(email, status string, typ int, first, last string) *testenv.SimUser {
		return &testenv.SimUser{Email: email, Status: status, Type: typ, FirstName: first, LastName: last}
	}
	var users []user
	for i := range 8 { // in sync, active
		e := fmt.Sprintf("sync%d@example.com", i)
		users = append(users, user{e, named(e, sso), sim(e, "active", 2, "Alice", "Liddell")})
	}
	users = append(users,
		user{"Case@Example.com", named("case@example.com", sso), sim("CASE@example.COM", "active", 2, "Alice", "Liddell")},
		user{"pending@example.com", named("pending@example.com", invite), sim("pending@example.com", "pending", 1, "Alice", "")},
		user{"accepted@example.com", named("accepted@example.com", invite), sim("accepted@example.com", "active", 1, "Alice", "")},
		user{"gone@example.com", named("gone@example.com", sso), nil},
		user{"invite-gone@example.com", named("invite-gone@example.com", invite), nil},
		user{"left@example.com", named("left@example.com", sso, leaves), sim("left@example.com", "active", 1, "Alice", "Liddell")},
		user{"off@example.com", named("off@example.com", sso), sim("off@example.com", "inactive", 1, "Alice", "Liddell")},
		user{"back@example.com", named("back@example.com", sso, deleted), sim("back@example.com", "active", 1, "Alice", "")},
		user{"renamed@example.com", named("renamed@example.com", sso), sim("renamed@example.com", "active", 2, "Alyce", "Liddell")},
		user{"recreated@example.com", named("recreated@example.com", sso, deleted, sso2), sim("recreated@example.com", "active", 1, "Al", "")},
		user{"deleted@example.com", named("deleted@example.com", sso, deleted), nil},
		user{"never@example.com", named("never@example.com", failed), nil},
		user{"never-but-there@example.com", named("never-but-there@example.com", failed), sim("never-but-there@example.com", "active", 1, "", "")},
		user{"stranger@example.com", nil, sim("stranger@example.com", "inactive", 1, "S", "")},
		user{"guest@example.com", nil, sim("guest@example.com", "pending", 1, "", "")},
	)
	for _, u := range users {
		if len(u.steps) > 0 {
			w.put(u.email, life(t, u.email, u.steps...))
		}
		if u.zoom != nil {
			w.add(*u.zoom)
		}
	}
	want := []string{
		"fields off@example.com map[type:2]→map[type:1]",
		"fields renamed@example.com map[first_name:Alice]→map[first_name:Alyce]",
		"missing gone@example.com active→absent",
		"missing invite-gone@example.com pending→absent",
		"present back@example.com deleted→active",
		"status left@example.com inactive→active",
		"status off@example.com active→inactive",
		"unmanaged guest@example.com pending",
		"unmanaged never-but-there@example.com active",
		"unmanaged stranger@example.com inactive",
	}

	before := len(w.sim.Requests())
	var pages int
	rep, err := w.scan(reconcile.Config{Progress: func(p reconcile.Progress) {
		pages++
		switch pages {
		case 2: // Zoom forgets the tokens it issued: the listing starts again
			w.sim.ExpirePageTokens()
		case 4:
			w.sim.FailNext(1, testenv.Fault{Status: http.StatusBadGateway, HTML: true})
			w.sim.FailNext(1, testenv.Fault{Status: http.StatusTooManyRequests, Code: 429,
				Message: "You have reached the maximum per-second rate limit for this API.", Headers: map[string]string{"Retry-After": "1"}})
		}
	}})
	if err != nil {
		t.Fatalf("Scan = %v", err)
	}
	if got := lines(rep); !slices.Equal(got, want) {
		t.Errorf("Scan found\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// 19 users in Zoom; 19 the ledger expects something of (not never@
	// nor never-but-there@), 13 of them in sync.
	if rep.Scanned != 19 || rep.Managed != 19 || rep.InSync != 13 || rep.Restarts != 1 {
		t.Errorf("scanned %d, managed %d, in sync %d, restarts %d; want 19, 19, 13, 1", rep.Scanned, rep.Managed, rep.InSync, rep.Restarts)
	}
	wantCounts := map[reconcile.Kind]int{"missing": 2, "status": 2, "present": 1, "fields": 2, "unmanaged": 3}
	for k, n := range wantCounts {
		if rep.Counts[k] != n {
			t.Errorf("Counts[%s] = %d; want %d", k, rep.Counts[k], n)
		}
	}
	var calls []string
	statuses := map[string]bool{}
	for _, r := range w.sim.Requests()[before:] {
		if r.Route == testenv.RouteToken {
			continue
		}
		calls = append(calls, r.Method+" "+r.Route)
		if r.Route != testenv.RouteListUsers || r.Method != http.MethodGet {
			t.Errorf("the scan called %s %s; want only GET /v2/users", r.Method, r.Path)
		}
		if !strings.Contains(r.Query, "page_size=300") {
			t.Errorf("the scan asked %q; want page_size=300", r.Query)
		}
		for _, st := range reconcile.Statuses {
			if strings.Contains(r.Query, "status="+st) {
				statuses[st] = true
			}
		}
	}
	// 15 active, 2 inactive, 2 pending users: 5 + 1 + 1 pages; before
	// the restart, 2 active pages and the third refused (its token
	// expired); after it, one page refused with a 502 and one with a 429.
	if len(calls) != 12 || rep.Calls != len(calls) || len(statuses) != 3 {
		t.Errorf("the scan made %d calls (%d counted) over %v; want 12 over the three statuses", len(calls), rep.Calls, statuses)
	}

	// Entries kept: the first ones, the counts whole.
	rep, err = w.scan(reconcile.Config{KeepDrift: 2, KeepUnmanaged: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Drift) != 2 || len(rep.Unmanaged) != 1 || rep.Counts["fields"] != 2 || rep.Counts["unmanaged"] != 3 {
		t.Errorf("kept %d drift, %d unmanaged, counts %v; want 2, 1 and the whole counts", len(rep.Drift), len(rep.Unmanaged), rep.Counts)
	}
}

// Ensure a drift whose ledger entry changed during the scan is not
// reported (the service acted on the user meanwhile), and a scan stops
// with the context.
func TestScanSkipsWhatChanged(t *testing.T) {
	w := newWorld(t, testenv.SimConfig{})
	rec := life(t, "moving@example.com", named("moving@example.com", sso)...)
	rec.Updated = time.Now().Add(time.Hour) // written after the scan began
	w.put("moving@example.com", rec)
	w.add(testenv.SimUser{Email: "moving@example.com", Status: "inactive"})
	rep, err := w.scan(reconcile.Config{})
	if err != nil || len(rep.Drift) != 0 || rep.Changed != 1 || rep.InSync != 1 {
		t.Errorf("Scan = %d drift, %d changed, %d in sync, %v; want none, 1, 1", len(rep.Drift), rep.Changed, rep.InSync, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := reconcile.Scan(ctx, reconcile.Config{Zoom: w.zc, Ledger: w.l}); err == nil {
		t.Errorf("Scan with a cancelled context = nil; want an error")
	}
}
