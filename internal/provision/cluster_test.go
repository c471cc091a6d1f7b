package provision_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/quota"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/testenv"
)

// clusterServer adapts a testenv.Cluster to the harness.
type clusterServer struct{ c *testenv.Cluster }

func (s clusterServer) URL() string    { return s.c.URLs() }
func (s clusterServer) Restart() error { return fmt.Errorf("restart a cluster node by node") }
func (s clusterServer) Shutdown()      { s.c.Shutdown() }

// resultWatch records every result event with the time the result stream
// stored it, read through an ordered consumer (which starts again by
// itself after a leader change). Stored times, not arrival times: an audit
// subscriber's own recovery after a leader change is not the service's.
type resultWatch struct {
	mu       sync.Mutex
	arrivals []time.Time
	events   map[string][]messages.Event
	cc       jetstream.ConsumeContext
}

func watchResults(t testing.TB, js jetstream.JetStream) *resultWatch {
	t.Helper()
	w := &resultWatch{events: map[string][]messages.Event{}}
	oc, err := js.OrderedConsumer(context.Background(), "ZOOM_USERS_RESULTS", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("ordered consumer: %v", err)
	}
	w.cc, err = oc.Consume(func(m jetstream.Msg) {
		ev, err := messages.DecodeEvent(m.Data())
		if err != nil {
			return
		}
		md, err := m.Metadata()
		if err != nil {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		w.arrivals = append(w.arrivals, md.Timestamp)
		w.events[ev.Data.RequestID] = append(w.events[ev.Data.RequestID], ev)
	})
	if err != nil {
		t.Fatalf("consume results: %v", err)
	}
	t.Cleanup(w.cc.Stop)
	return w
}

func (w *resultWatch) terminalCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, evs := range w.events {
		if len(terminal(evs)) > 0 {
			n++
		}
	}
	return n
}

// longestGap is the longest time without a new result from from on, until
// the first result after to, and how many results it looked at.
func (w *resultWatch) longestGap(from, to time.Time) (time.Duration, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	prev := from
	var longest time.Duration
	n := 0
	arrivals := slices.Clone(w.arrivals)
	slices.SortFunc(arrivals, time.Time.Compare)
	for _, a := range arrivals {
		if !a.After(from) {
			continue
		}
		longest = max(longest, a.Sub(prev))
		prev = a
		n++
		if a.After(to) {
			break // the wait for the first result after the window counts
		}
	}
	return longest, n
}

// Ensure leader failover under load loses nothing and stalls briefly: two
// replicas, connected through the seeds in different orders, work through
// 3,200 requests while the node leading the request stream, the meta
// leader, the leader of the result stream and the leader of the quota
// bucket are each SIGKILLed and restarted. Every request ends in exactly
// one terminal result, no user is created twice, a request ends "exists"
// only from a later delivery that met its own creation, results never
// pause for 15 s (or 5 s beyond the cluster's own recovery, when that is
// slower), and Zoom never sees more than ZOOM_RATE_LIMIT (80) calls in a
// second, also while the quota bucket has no leader.
func TestLeaderFailoverUnderLoad(t *testing.T) {
	t.Parallel() // mostly waits on elections; beside the paced test below
	c, err := testenv.StartCluster(3)
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	// Zoom itself limits the account to 80 calls a second: any excess would
	// show as a per-second 429.
	h := newHarnessOn(t, clusterServer{c}, testenv.SimConfig{Latency: 20 * time.Millisecond, RatePerSecond: 80})
	seeds := []string{c.Nodes[0].URL() + "," + c.Nodes[1].URL() + "," + c.Nodes[2].URL(),
		c.Nodes[2].URL() + "," + c.Nodes[1].URL() + "," + c.Nodes[0].URL()}
	next := 0
	h.nextURL = func() string { next++; return seeds[(next-1)%len(seeds)] }

	const n = 3200 // some 40 s at 80 requests a second: work goes on through every kill
	ids, emails := publishBatch(h, "fo", n)
	watch := watchResults(t, h.js)
	for i := range 2 {
		cfg := testConfig(10)
		cfg.AckWait = 30 * time.Second // the default
		cfg.Pacer = quota.NewPacer(80, quota.NewGates(nil))
		cfg.ReplicaID = fmt.Sprintf("replica-%d", i)
		h.start(cfg)
	}

	type kill struct {
		what, node string
		at         time.Time
		// whole is when the cluster was whole again: the node back and
		// every node healthy (its streams and consumers current).
		whole time.Time
	}
	var kills []kill
	eventually(t, 30*time.Second, func() (bool, string) {
		got := watch.terminalCount()
		return got >= 100, fmt.Sprintf("%d results before the first kill", got)
	})
	for _, target := range []struct{ what, stream string }{
		{"leader of ZOOM_USERS", "ZOOM_USERS"},
		{"meta leader", ""},
		{"leader of ZOOM_USERS_RESULTS", "ZOOM_USERS_RESULTS"},
		{"leader of the quota bucket", "KV_zoom_quota"},
	} {
		var leader string
		eventually(t, 20*time.Second, func() (bool, string) {
			if target.stream == "" {
				leader = c.MetaLeader()
			} else {
				leader = c.StreamLeader(target.stream)
			}
			return leader != "", "no " + target.what + " known"
		})
		node := c.Node(leader)
		node.Kill()
		kills = append(kills, kill{what: target.what, node: leader, at: time.Now()})
		fmt.Fprintf(h.log, "{\"time\":%q,\"message\":\"TEST: killed the %s (%s)\"}\n", time.Now().Format(time.RFC3339Nano), target.what, leader)
		// The node stays down a while, as a crashed pod would, then comes
		// back on its store; the next kill comes once the cluster is whole
		// again and has worked a little: one failure at a time.
		pause(3 * time.Second)
		if err := node.Start(); err != nil {
			t.Fatalf("restart %s: %v", leader, err)
		}
		if err := c.WaitHealthy(60 * time.Second); err != nil {
			t.Fatal(err)
		}
		kills[len(kills)-1].whole = time.Now()
		pause(2 * time.Second)
	}
	if got := watch.terminalCount(); got >= n {
		t.Fatalf("all %d requests were done before the last kill ended; the run proves nothing about it (raise n)", n)
	}
	eventually(t, 2*time.Minute, func() (bool, string) {
		got := watch.terminalCount()
		return got == n, fmt.Sprintf("%d of %d requests have a terminal result", got, n)
	})

	// The outcomes as stored, read again from the start once all is done.
	evs := readAllResults(t, h.js)
	watch.mu.Lock()
	missed := 0
	for id, e := range evs {
		if len(watch.events[id]) != len(e) {
			missed++
		}
	}
	watch.mu.Unlock()
	if missed > 0 {
		t.Logf("the live watcher missed events of %d requests", missed)
	}
	outcomes := map[string]int{}
	for _, id := range ids {
		term := terminal(evs[id])
		if len(term) != 1 {
			t.Errorf("%s: %d terminal results; want exactly 1", id, len(term))
			continue
		}
		outcomes[string(term[0].Data.Outcome)]++
		if got := h.sim.Creations(emails[id]); got != 1 {
			t.Errorf("%s: user created %d times; want once", id, got)
		}
	}
	// Every user was created by this run, once (above). A request ends
	// "created", or "exists" when a later delivery met the user its first
	// delivery had created before that delivery's "created" was stored: a
	// leader change hands the request to the other replica while the first
	// still waits for the result stream, and the first stored of the two
	// results (same message id) is the request's one result. The contract
	// promises exactly that (contract.md, Result event); "exists" at
	// attempt 1 would be a user this run did not create.
	for _, id := range ids {
		term := terminal(evs[id])
		if len(term) != 1 || term[0].Data.Outcome != messages.OutcomeExists {
			continue
		}
		var lines []string
		for _, l := range strings.Split(h.log.String(), "\n") {
			if strings.Contains(l, `"`+id+`"`) || strings.Contains(l, id+":") {
				lines = append(lines, l)
			}
		}
		t.Logf("%s ended exists at attempt %d; its log:\n%s\nZoom:\n%v", id, term[0].Data.Attempt, strings.Join(lines, "\n"), h.sim.History(emails[id]))
		if term[0].Data.Attempt < 2 || term[0].Data.ZoomUserID == "" {
			t.Errorf("%s: exists at attempt %d with Zoom id %q; want a later delivery (attempt 2 or more) naming the user its first delivery created",
				id, term[0].Data.Attempt, term[0].Data.ZoomUserID)
		}
	}
	if got := outcomes[string(messages.OutcomeCreated)] + outcomes[string(messages.OutcomeExists)]; got != n {
		t.Errorf("outcomes = %v; want all %d created or exists", outcomes, n)
	}
	var report []string
	for i, k := range kills {
		end := time.Now()
		if i+1 < len(kills) {
			end = kills[i+1].at
		}
		gap, stored := watch.longestGap(k.at, end)
		recovery := k.whole.Sub(k.at)
		report = append(report, fmt.Sprintf("%s (%s): longest pause in results %v (%d results stored until the next kill; the cluster whole again after %v)",
			k.what, k.node, gap.Round(10*time.Millisecond), stored, recovery.Round(10*time.Millisecond)))
		// An election takes 4 to 9 s (docs/operations.md), more on a
		// loaded 2-core machine: the code before this bound was raised
		// paused 7.4 to 7.9 s here, and 11.1 s once under .ci/run. A
		// service that stalls after a failover stays far beyond it. When
		// the cluster itself takes longer to be whole again (under
		// .ci/run's parallel packages results once paused 21 and 25 s,
		// with nothing else to show why), the service has 5 s from then.
		if limit := max(15*time.Second, recovery+5*time.Second); gap > limit {
			t.Errorf("after killing the %s (%s) results paused for %v; want under %v (the cluster was whole again after %v)",
				k.what, k.node, gap, limit, recovery.Round(10*time.Millisecond))
		}
	}
	st := h.sim.Stats()
	t.Logf("failover: %d requests, outcomes %v; %s; Zoom's busiest second: %d calls (budget 80), %d per-second 429s",
		n, outcomes, strings.Join(report, "; "), st.MaxPerSecond, st.RateLimited[testenv.RateLimitQPS])
	if st.MaxPerSecond > 80 || st.RateLimited[testenv.RateLimitQPS] > 0 {
		t.Errorf("Zoom saw %d calls in one second (%d answered 429); want at most ZOOM_RATE_LIMIT=80; %s",
			st.MaxPerSecond, st.RateLimited[testenv.RateLimitQPS], busyWindows(h.sim.Requests(), 80))
	}
}

// busyWindows describes each of Zoom's one-second windows that had more
// than limit calls: the calls per replica (told apart by bearer token) and
// the closest two arrivals of each, so that a failure shows whether one
// replica took too large a share or evenly paced calls arrived bunched.
func busyWindows(log []testenv.RecordedRequest, limit int) string {
	type replica struct {
		n          int
		last       time.Time
		closest    time.Duration
		first, end time.Time
	}
	windows := map[time.Time]map[string]*replica{}
	counts := map[time.Time]int{}
	log = slices.Clone(log) // recorded as answered: in arrival order here
	slices.SortFunc(log, func(a, b testenv.RecordedRequest) int { return a.Time.Compare(b.Time) })
	for _, r := range log {
		if r.Route == "" || !strings.HasPrefix(r.Authorization, "Bearer ") {
			continue
		}
		w := r.Time.Truncate(time.Second)
		counts[w]++
		if windows[w] == nil {
			windows[w] = map[string]*replica{}
		}
		rp := windows[w][r.Authorization]
		if rp == nil {
			rp = &replica{first: r.Time, closest: time.Hour}
			windows[w][r.Authorization] = rp
		} else if d := r.Time.Sub(rp.last); d < rp.closest {
			rp.closest = d
		}
		rp.n++
		rp.last, rp.end = r.Time, r.Time
	}
	var out []string
	for w, c := range counts {
		if c <= limit {
			continue
		}
		var per []string
		for tok, rp := range windows[w] {
			per = append(per, fmt.Sprintf("token …%s: %d calls from +%v to +%v, closest %v",
				tok[max(0, len(tok)-4):], rp.n, rp.first.Sub(w).Round(time.Millisecond), rp.end.Sub(w).Round(time.Millisecond), rp.closest.Round(100*time.Microsecond)))
		}
		out = append(out, fmt.Sprintf("window %s: %d calls (%s)", w.Format("15:04:05"), c, strings.Join(per, "; ")))
	}
	if len(out) == 0 {
		return "no window in the request log had more than the limit"
	}
	return strings.Join(out, " | ")
}

// readAllResults reads every stored result event, by request id.
func readAllResults(t *testing.T, js jetstream.JetStream) map[string][]messages.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := js.Stream(ctx, "ZOOM_USERS_RESULTS")
	if err != nil {
		t.Fatalf("result stream: %v", err)
	}
	want := s.CachedInfo().State.Msgs
	oc, err := js.OrderedConsumer(ctx, "ZOOM_USERS_RESULTS", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("ordered consumer: %v", err)
	}
	out := map[string][]messages.Event{}
	for got := uint64(0); got < want; {
		m, err := oc.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("read result %d of %d: %v", got+1, want, err)
			}
			continue // a cluster settling after the restarts
		}
		got++
		ev, err := messages.DecodeEvent(m.Data())
		if err != nil {
			t.Fatalf("result is not an event: %v", err)
		}
		out[ev.Data.RequestID] = append(out[ev.Data.RequestID], ev)
	}
	return out
}

// pause waits d: the time a killed node stays down, not a wait for a
// condition.
func pause(d time.Duration) { time.Sleep(d) }

// Ensure a closed quota gate and the replicas' leases survive the loss of
// the quota bucket's leader: while the node that led the bucket is down,
// and again once it is back, both replicas renew their leases, the gate is
// still closed until the same reset in the bucket and in both replicas,
// and Zoom sees no further create call.
func TestQuotaGateSurvivesLeaderKill(t *testing.T) {
	t.Parallel() // mostly waits on an election
	c, err := testenv.StartCluster(3)
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	h := newHarnessOn(t, clusterServer{c}, testenv.SimConfig{DailyCreateLimit: 5})
	ids := make([]string, 0, 20)
	for i := range 20 {
		id := fmt.Sprintf("gk-%02d", i)
		h.publish(id, "create", userBody("create", id+"@example.com", 1))
		ids = append(ids, id)
	}
	var runs []*serviceRun
	for i := range 2 {
		cfg := testConfig(10)
		cfg.Pacer = quota.NewPacer(80, quota.NewGates(nil))
		cfg.ReplicaID = fmt.Sprintf("replica-%d", i)
		runs = append(runs, h.start(cfg))
	}
	ctx := context.Background()
	var closed quota.Gate
	eventually(t, 30*time.Second, func() (bool, string) {
		st, err := quota.Read(ctx, h.js, topology.Default(), allActions, time.Now())
		if err != nil || len(st.Gates) != 1 || !st.Gates[0].Closed(time.Now()) {
			return false, fmt.Sprintf("quota bucket gates %+v (%v); want create closed", st.Gates, err)
		}
		closed = st.Gates[0]
		return true, ""
	})
	creates := func() int { return h.sim.Stats().Requests[testenv.RouteCreateUser][201] }
	before := creates()
	calls := len(h.sim.Requests())

	kv, err := h.js.KeyValue(ctx, topology.Default().QuotaBucket)
	if err != nil {
		t.Fatal(err)
	}
	revs := map[string]uint64{}
	for _, r := range []string{"replica-0", "replica-1"} {
		e, err := kv.Get(ctx, "replica."+r)
		if err != nil {
			t.Fatalf("lease of %s: %v", r, err)
		}
		revs[r] = e.Revision()
	}
	leader := c.StreamLeader("KV_" + topology.Default().QuotaBucket)
	if leader == "" {
		t.Fatal("the quota bucket has no leader")
	}
	check := func(when string) {
		t.Helper()
		// Both replicas renew their leases through the bucket's leader:
		// they have been at work since the kill.
		renewed := map[string]uint64{}
		eventually(t, 30*time.Second, func() (bool, string) {
			for r, rev := range revs {
				e, err := kv.Get(ctx, "replica."+r)
				if err != nil || e.Revision() <= rev {
					return false, fmt.Sprintf("%s: %s has not renewed its lease since the last check (%v)", when, r, err)
				}
				renewed[r] = e.Revision()
			}
			return true, ""
		})
		maps.Copy(revs, renewed)
		// The status also reads the consumers, whose leaders an election
		// may hold up for a while.
		var st quota.Status
		eventually(t, 30*time.Second, func() (bool, string) {
			var err error
			st, err = quota.Read(ctx, h.js, topology.Default(), allActions, time.Now())
			return err == nil, fmt.Sprintf("%s: read the quota state: %v", when, err)
		})
		if len(st.Gates) != 1 || !st.Gates[0].Until.Equal(closed.Until) || !st.Gates[0].Closed(time.Now()) {
			t.Errorf("%s: quota bucket gates = %+v; want create closed until %v", when, st.Gates, closed.Until)
		}
		for i, r := range runs {
			if g := r.svc.Status().Gates; len(g) != 1 || g[0].Scope != "create" || !g[0].Until.Equal(closed.Until) {
				t.Errorf("%s: replica-%d gates = %+v; want create closed until %v", when, i, g, closed.Until)
			}
		}
		if got := creates(); got != before || got != 5 {
			t.Errorf("%s: users created = %d (%d before the kill); want the 5 of the daily cap, none since", when, got, before)
		}
		for _, r := range h.sim.Requests()[calls:] {
			if r.Route == testenv.RouteCreateUser {
				t.Errorf("%s: a create call reached Zoom after the kill, at %v, answered %d", when, r.Time.Format(time.RFC3339Nano), r.Status)
			}
		}
	}
	node := c.Node(leader)
	node.Kill()
	check("with the leader's node down") // the other two carry the bucket
	if err := node.Start(); err != nil {
		t.Fatalf("restart %s: %v", leader, err)
	}
	if err := c.WaitHealthy(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	check("after the node's restart")
	t.Logf("gate closed until %v by %s; the quota leader (%s) killed and restarted; %d users created", closed.Until.Format(time.RFC3339), closed.ClosedBy, leader, creates())
}

// Ensure the per-user order reads single messages of the request stream
// from its leader, since any replica may answer a direct get (a follower
// catching up, or a mirror) with a request just stored missing: then a
// user's later request would overtake it. Only batched reads forward,
// which the index trusts up to the last message they hold, go to any
// replica. The test inspects every direct get on the stream while two
// replicas handle whole lives on a three-node cluster: each one is a
// batch. Before, the index read single messages through Stream.GetMsg,
// which nats.go turns into a direct get when the stream allows them.
func TestOrderReadsFromTheLeader(t *testing.T) {
	t.Parallel() // mostly waits on the cluster
	c, err := testenv.StartCluster(3)
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	h := newHarnessOn(t, clusterServer{c}, testenv.SimConfig{Latency: 5 * time.Millisecond})
	ctx := context.Background()
	s, err := h.js.Stream(ctx, "ZOOM_USERS")
	if err != nil {
		t.Fatal(err)
	}
	if !s.CachedInfo().Config.AllowDirect {
		t.Fatal("the request stream does not allow direct gets; the test proves nothing")
	}
	var single, batched atomic.Int64
	for _, subj := range []string{"$JS.API.DIRECT.GET.ZOOM_USERS", "$JS.API.DIRECT.GET.ZOOM_USERS.>"} {
		sub, err := h.nc.Subscribe(subj, func(m *nats.Msg) {
			var q struct {
				Batch int `json:"batch"`
			}
			if json.Unmarshal(m.Data, &q) == nil && q.Batch > 0 {
				batched.Add(1)
			} else {
				single.Add(1)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
	}
	if err := h.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	const users = 40
	var ids []string
	for i := range users {
		email := fmt.Sprintf("life-%02d@example.com", i)
		for _, r := range []struct{ op, body string }{
			{"ssoCreate", userBody("ssoCreate", email, 1)},
			{"update", fmt.Sprintf(`{"email":%q,"user":{"first_name":"Renamed"}}`, email)},
			{"deactivate", fmt.Sprintf(`{"email":%q}`, email)},
		} {
			id := fmt.Sprintf("lead-%02d-%s", i, r.op)
			h.publish(id, r.op, r.body)
			ids = append(ids, id)
		}
	}
	var runs []*serviceRun
	for i := range 2 {
		cfg := testConfig(10)
		cfg.ReplicaID = fmt.Sprintf("lead-%d", i)
		runs = append(runs, h.start(cfg))
	}
	h.waitTerminal(60*time.Second, ids...)
	for i := range users {
		email := fmt.Sprintf("life-%02d@example.com", i)
		var got []string
		for _, c := range h.sim.History(email) {
			got = append(got, c.Method)
		}
		if strings.Join(got, ",") != "POST,PATCH,PUT" {
			t.Errorf("Zoom performed for %s: %v; want POST, PATCH, PUT", email, got)
		}
	}
	var reads uint64
	for _, r := range runs {
		reads += r.svc.Status().OrderReads
	}
	if reads == 0 {
		t.Fatal("order reads = 0; the test proves nothing")
	}
	if n := single.Load(); n != 0 {
		t.Errorf("single direct gets on the request stream = %d (order reads %d); want 0", n, reads)
	}
	t.Logf("%d order reads, %d of them batched direct gets, %d single direct gets", reads, batched.Load(), single.Load())
}

// count is how many events of outcome the watch has seen.
func (w *resultWatch) count(outcome messages.Outcome) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, evs := range w.events {
		for _, e := range evs {
			if e.Data.Outcome == outcome {
				n++
			}
		}
	}
	return n
}
