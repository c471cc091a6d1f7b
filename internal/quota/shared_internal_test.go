package quota

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/zoomprov/consumer/internal/zoom"
	"github.com/zoomprov/consumer/testenv"
)

// leaseBucket starts an embedded JetStream server and returns a quota
// bucket on it.
func leaseBucket(t *testing.T) (jetstream.KeyValue, *nats.Conn) {
	t.Helper()
	js := testenv.StartJetStream(t)
	kv, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: "quota_test", History: 1})
	if err != nil {
		t.Fatal(err)
	}
	return kv, js.Conn()
}

// putLease writes the lease of a replica the test plays.
func putLease(t *testing.T, kv jetstream.KeyValue, l lease) {
	t.Helper()
	data, _ := json.Marshal(l)
	if _, err := kv.Put(context.Background(), replicaKeyPrefix+l.ID, data); err != nil {
		t.Fatal(err)
	}
}

// runCoordinator runs a coordinator for replica id with an 80/s budget
// until the test ends.
func runCoordinator(t *testing.T, kv jetstream.KeyValue, nc *nats.Conn, id string) *Pacer {
	t.Helper()
	p := NewPacer(80, NewGates(nil))
	c := NewCoordinator(kv, p, CoordinatorConfig{ReplicaID: id, Conn: nc, Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel).With().Timestamp().Logger()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return p
}

// renewA writes the lease of replica a, played by the test, counting sees.
func renewA(t *testing.T, kv jetstream.KeyValue, sees ...string) {
	t.Helper()
	putLease(t, kv, lease{ID: "a", Budget: 80, Sees: sees})
}

// staysPaused checks that b makes no call for d while a, renewing far
// more often than a real replica, keeps the whole budget.
func staysPaused(t *testing.T, kv jetstream.KeyValue, b *Pacer, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		renewA(t, kv, "a")
		if _, _, pace := b.Current(); pace != 0 {
			t.Fatalf("b paces at %v/s while a, at the whole budget, does not count it; want 0", pace)
		}
		time.Sleep(100 * time.Millisecond) // a renews far more often than real replicas
	}
}

// joinsAtHalf has a count b from now on, and checks that b then calls at
// its half of the budget, no sooner than a join window later.
func joinsAtHalf(t *testing.T, kv jetstream.KeyValue, b *Pacer) {
	t.Helper()
	acked := time.Now()
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		renewA(t, kv, "a", "b")
		_, _, pace := b.Current()
		return pace > 0, "b still paused after a counted it"
	})
	if waited := time.Since(acked); waited < joinWindow {
		t.Errorf("b started %v after a counted it; want at least %v", waited, joinWindow)
	}
	if share, replicas, _ := b.Current(); share != 40 || replicas != 2 {
		t.Errorf("b's share = %v of %d replicas; want 40 of 2", share, replicas)
	}
}

// Ensure a replica that joins uses its share only once the replica already
// there counts it, however long that one takes to notice (a watch fallen
// behind after an election): until then both would pace at their own
// idea of the share, and Zoom would see more than the account's budget
// in one second (a cluster chaos run: 16 calls answered 429).
func TestJoinWaitsForAcknowledgement(t *testing.T) {
	kv, nc := leaseBucket(t)
	// Replica a uses the whole budget and has not seen b yet.
	renewA(t, kv, "a")
	b := runCoordinator(t, kv, nc, "b")

	// a keeps renewing without counting b: b must stay paused, however
	// long (three renewals are well past any timed join).
	staysPaused(t, kv, b, 3*leaseRefresh)

	// a counts b now: b starts at its half, no sooner than a window later.
	joinsAtHalf(t, kv, b)
}

// Ensure the lease a replica writes lists the replicas its share counts,
// itself included, once it has seen them.
func TestLeaseListsWhatItSees(t *testing.T) {
	kv, nc := leaseBucket(t)
	putLease(t, kv, lease{ID: "a", Budget: 80, Sees: []string{"a"}})
	b := runCoordinator(t, kv, nc, "b")
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		putLease(t, kv, lease{ID: "a", Budget: 80, Sees: []string{"a"}})
		e, err := kv.Get(context.Background(), replicaKeyPrefix+"b")
		if err != nil {
			return false, err.Error()
		}
		var l lease
		if err := json.Unmarshal(e.Value(), &l); err != nil {
			return false, err.Error()
		}
		return len(l.Sees) == 2 && l.Sees[0] == "a" && l.Sees[1] == "b", "b's lease lists " + string(e.Value())
	})
	if share, replicas, _ := b.Current(); share != 40 || replicas != 2 {
		t.Errorf("b's share = %v of %d replicas; want 40 of 2", share, replicas)
	}
}

// Ensure the leader read sees what the bucket holds: a value with its
// time, and a key never written, deleted or purged as not found.
func TestReadLeader(t *testing.T) {
	kv, nc := leaseBucket(t)
	c := NewCoordinator(kv, NewPacer(80, NewGates(nil)), CoordinatorConfig{ReplicaID: "x", Conn: nc, Log: zerolog.Nop()})
	ctx := context.Background()
	before := time.Now().Add(-time.Second)
	putLease(t, kv, lease{ID: "a", Budget: 80})
	e, err := c.readLeader(ctx, replicaKeyPrefix+"a")
	if err != nil {
		t.Fatalf("readLeader(a) = %v", err)
	}
	if string(e.value) != `{"id":"a","budget":80}` || e.created.Before(before) || e.created.After(time.Now().Add(time.Second)) {
		t.Errorf("readLeader(a) = %s at %v; want the lease just written", e.value, e.created)
	}
	for _, tc := range []struct {
		name string
		prep func(key string) error
	}{
		{"never written", func(string) error { return nil }},
		{"deleted", func(key string) error { return kv.Delete(ctx, key) }},
		{"purged", func(key string) error { return kv.Purge(ctx, key) }},
	} {
		key := replicaKeyPrefix + tc.name[:1]
		if tc.name != "never written" {
			putLease(t, kv, lease{ID: tc.name[:1], Budget: 80})
		}
		if err := tc.prep(key); err != nil {
			t.Fatal(err)
		}
		if _, err := c.readLeader(ctx, key); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Errorf("%s: readLeader = %v; want ErrKeyNotFound", tc.name, err)
		}
	}
}

// Ensure the lease of a replica that died (never renewed again) holds a
// newcomer back only until it is stale, and then the newcomer takes the
// whole budget.
func TestJoinAfterDeadReplica(t *testing.T) {
	kv, nc := leaseBucket(t)
	putLease(t, kv, lease{ID: "a", Budget: 80, Sees: []string{"a"}})
	start := time.Now()
	b := runCoordinator(t, kv, nc, "b")
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		_, _, pace := b.Current()
		return pace > 0, "b still paused"
	})
	waited := time.Since(start)
	t.Logf("b started calling %v after it started, beside a dead replica's fresh lease", waited.Round(10*time.Millisecond))
	if waited < leaseTTL {
		t.Errorf("b started %v after it came; want at least the lease lifetime %v", waited, leaseTTL)
	}
	if share, replicas, _ := b.Current(); share != 80 || replicas != 1 {
		t.Errorf("b's share = %v of %d replicas; want 80 of 1", share, replicas)
	}
}

// Ensure a replica whose lease lapsed (its connection stalled longer than
// the lease's bound, or its loop was held up) calls Zoom again only once
// the others count it again: meanwhile they may have counted it gone and
// taken its share. Before, it resumed at its old share as soon as it
// renewed (a leader failover test: 84 calls in one of Zoom's seconds,
// budget 80, while the other replica still used the whole budget).
func TestRejoinAfterLapse(t *testing.T) {
	kv, nc := leaseBucket(t)
	proxy := testenv.StartProxy(t, nc.ConnectedAddr())
	bnc, err := nats.Connect(proxy.URL(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bnc.Close)
	bjs, err := jetstream.New(bnc)
	if err != nil {
		t.Fatal(err)
	}
	bkv, err := bjs.KeyValue(context.Background(), kv.Bucket())
	if err != nil {
		t.Fatal(err)
	}
	b := runCoordinator(t, bkv, bnc, "b")
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		renewA(t, kv, "a", "b")
		_, _, p := b.Current()
		return p > 0, "b has not joined"
	})

	// b's connection stalls: its lease's bound runs out and it stops
	// calling. a counts b gone and takes the whole budget.
	proxy.Stall()
	testenv.Eventually(t, 2*orphanAfter, func() (bool, string) {
		renewA(t, kv, "a")
		_, _, p := b.Current()
		return p == 0, "b still calls with its connection stalled"
	})
	lapsed, err := kv.Get(context.Background(), replicaKeyPrefix+"b")
	if err != nil {
		t.Fatal(err)
	}
	proxy.Resume()
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		renewA(t, kv, "a")
		e, err := kv.Get(context.Background(), replicaKeyPrefix+"b")
		return err == nil && e.Revision() > lapsed.Revision(), "b has not renewed since its connection came back"
	})

	// b has renewed, but a does not count it: b must stay paused. Then a
	// counts b again: b takes its half, no sooner than a window later.
	staysPaused(t, kv, b, 2*leaseRefresh)
	joinsAtHalf(t, kv, b)
}

// Ensure a gate is never shortened in the bucket: of replicas closing one
// gate at once with different resets, the latest stays. Before, each wrote
// with a plain Put, and the last writer won even with an earlier reset.
func TestWriteGateNeverShortens(t *testing.T) {
	kv, _ := leaseBucket(t)
	ctx := context.Background()
	base := time.Now().Truncate(time.Second)
	if err := WriteGate(ctx, kv, Gate{Scope: "create", Until: base.Add(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 20)
	for i := range 20 {
		go func() {
			done <- WriteGate(ctx, kv, Gate{Scope: "create", Until: base.Add(time.Duration(i) * time.Minute)})
		}()
	}
	for range 20 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	e, err := kv.Get(ctx, GateKey("create"))
	if err != nil {
		t.Fatal(err)
	}
	var gt Gate
	if err := json.Unmarshal(e.Value(), &gt); err != nil || !gt.Until.Equal(base.Add(2*time.Hour)) {
		t.Errorf("gate in the bucket until %v (%v); want the latest reset %v", gt.Until, err, base.Add(2*time.Hour))
	}
	if err := WriteGate(ctx, kv, Gate{Scope: "create", Until: base.Add(3 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	e, _ = kv.Get(ctx, GateKey("create"))
	if json.Unmarshal(e.Value(), &gt); !gt.Until.Equal(base.Add(3 * time.Hour)) {
		t.Errorf("gate until %v after a later reset; want %v", gt.Until, base.Add(3*time.Hour))
	}
}

// Ensure the purge of a lease read as stale spares a renewal made since:
// the purge is a compare-and-set on the revision read. Before, a replica
// back from a pause could lose the lease it had just written.
func TestPurgeSparesARenewedLease(t *testing.T) {
	kv, nc := leaseBucket(t)
	c := NewCoordinator(kv, NewPacer(0, NewGates(nil)), CoordinatorConfig{ReplicaID: "a", Conn: nc})
	ctx := context.Background()
	putLease(t, kv, lease{ID: "x", Budget: 80})
	stale, err := kv.Get(ctx, replicaKeyPrefix+"x")
	if err != nil {
		t.Fatal(err)
	}
	putLease(t, kv, lease{ID: "x", Budget: 80}) // x renews
	if c.purgeLease(ctx, "x", stale.Revision()) {
		t.Error("purgeLease of the stale revision = true; want the renewal kept")
	}
	if _, err := kv.Get(ctx, replicaKeyPrefix+"x"); err != nil {
		t.Errorf("x's renewed lease: %v; want it kept", err)
	}
	cur, _ := kv.Get(ctx, replicaKeyPrefix+"x")
	if !c.purgeLease(ctx, "x", cur.Revision()) {
		t.Error("purgeLease of the current revision = false; want the lease gone")
	}
}

// Ensure a gate in the bucket that closes for longer than any Zoom limit
// is capped, and that a gate removed before its reset is reported, so the
// service resumes the consumers it paused.
func TestGatesFromTheBucket(t *testing.T) {
	kv, nc := leaseBucket(t)
	gates := NewGates(nil)
	opened := make(chan string, 1)
	c := NewCoordinator(kv, NewPacer(0, gates), CoordinatorConfig{ReplicaID: "a", Conn: nc,
		Opened: func(_ context.Context, scope string) { opened <- scope }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	far := time.Now().Add(30 * 24 * time.Hour)
	data, _ := json.Marshal(Gate{Scope: "create", Until: far, Reason: "by hand"})
	if _, err := kv.Put(context.Background(), GateKey("create"), data); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, func() (bool, string) {
		gt, closed := gates.Closed("create")
		return closed && gt.Until.Before(time.Now().Add(MaxGateClose+time.Minute)),
			fmt.Sprintf("gate %+v (closed %v); want it capped at %v", gt, closed, MaxGateClose)
	})
	if _, err := OpenGate(context.Background(), kv, "create", time.Now()); err != nil {
		t.Fatal(err)
	}
	select {
	case scope := <-opened:
		if scope != "create" {
			t.Errorf("opened %q; want create", scope)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the opened gate was not reported")
	}
	if _, closed := gates.Closed("create"); closed {
		t.Error("gate still closed after it was opened")
	}
	if _, err := OpenGate(context.Background(), kv, "create", time.Now()); !errors.Is(err, ErrGateOpen) {
		t.Errorf("OpenGate of an open gate = %v; want ErrGateOpen", err)
	}
}

// Ensure a replica that stops cleanly makes no call once it stops, and
// gives its share back (deletes its lease) only a join window after its
// last call: the others take the share at once, and one second of Zoom's
// must not get both this replica's last calls and their larger pace (a
// reconciliation leaving beside a busy replica: 11 calls in a second at a
// budget of 10).
func TestCleanStopWaitsOutTheLastCall(t *testing.T) {
	kv, nc := leaseBucket(t)
	p := NewPacer(80, NewGates(nil))
	c := NewCoordinator(kv, p, CoordinatorConfig{ReplicaID: "b", Conn: nc, Log: zerolog.New(zerolog.NewTestWriter(t))})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()

	calls := make(chan time.Time, 1000)
	callCtx, stopCalls := context.WithCancel(context.Background())
	defer stopCalls()
	callsDone := make(chan struct{})
	go func() {
		defer close(callsDone)
		for p.Wait(callCtx, zoom.Call{Op: "update user", Action: "update"}) == nil {
			calls <- time.Now()
		}
	}()
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		return len(calls) >= 10, fmt.Sprintf("%d calls; want 10 before the stop", len(calls))
	})
	w, err := kv.Watch(context.Background(), replicaKeyPrefix+"b", jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	stopped := time.Now()
	stop()
	var deleted time.Time
	for deleted.IsZero() {
		select {
		case e := <-w.Updates():
			if e != nil && e.Operation() != jetstream.KeyValuePut {
				deleted = time.Now()
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the lease was not deleted within 10 s of the stop")
		}
	}
	<-done
	stopCalls()
	<-callsDone
	close(calls)
	var last time.Time
	for at := range calls {
		last = at
	}
	if last.After(stopped.Add(50 * time.Millisecond)) {
		t.Errorf("a call %v after the stop; want none", last.Sub(stopped))
	}
	if gap := deleted.Sub(last); gap < time.Second {
		t.Errorf("lease deleted %v after the last call; want at least a second", gap)
	}
}
