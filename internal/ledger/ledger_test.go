package ledger_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/zoomprov/consumer/internal/audit"
	"github.com/zoomprov/consumer/internal/ledger"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// world is an embedded JetStream server with the service's topology.
type world struct {
	t    *testing.T
	ns   *testenv.NATS
	js   jetstream.JetStream
	topo topology.Topology
	// published are the terminal results published, for the expected
	// ledger.
	mu        sync.Mutex
	published []published
	seq       uint64
}

type published struct {
	res messages.Result
	at  time.Time
}

func newWorld(t *testing.T, reconcile bool) *world {
	t.Helper()
	ns, err := testenv.StartNATS(testenv.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(ns.Shutdown)
	w := &world{t: t, ns: ns, js: connect(t, ns.URL()), topo: topology.Default()}
	if reconcile {
		w.reconcile()
	}
	return w
}

func connect(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func (w *world) reconcile() {
	w.t.Helper()
	if _, err := topology.Reconcile(context.Background(), w.js, w.topo, topology.Options{
		Actions: topology.Actions(), AckWait: 30 * time.Second, MaxAckPending: 1000,
	}); err != nil {
		w.t.Fatalf("reconcile: %v", err)
	}
}

// result publishes the result of request id about email, as the service
// would, its request at the next stream sequence. msgID overrides the
// event's Nats-Msg-Id (to store one result twice).
func (w *world) result(id, action, email string, o messages.Outcome, body, msgID string) messages.Result {
	w.t.Helper()
	w.mu.Lock()
	w.seq++
	r := messages.Result{RequestID: id, Action: action, Email: email, Outcome: o, StreamSequence: w.seq, Attempt: 1}
	w.mu.Unlock()
	switch o {
	case messages.OutcomeFailed:
		r.Reason = messages.ReasonNotFound
	case messages.OutcomeCreated, messages.OutcomeExists:
		r.ZoomUserID = "zid-" + id
	}
	if body != "" {
		r.Request = json.RawMessage(body)
	}
	w.publish(r, msgID)
	return r
}

func (w *world) publish(r messages.Result, msgID string) {
	w.t.Helper()
	at := time.Now().UTC()
	ev := messages.NewEvent(r, at)
	data, err := ev.Marshal()
	if err != nil {
		w.t.Fatal(err)
	}
	m := nats.NewMsg(w.topo.ResultSubject(r.Outcome))
	m.Data = data
	if msgID == "" {
		msgID = ev.ID
	}
	if _, err := w.js.PublishMsg(context.Background(), m, jetstream.WithMsgID(msgID)); err != nil {
		w.t.Fatalf("publish result %s: %v", r.RequestID, err)
	}
	if r.Outcome.Terminal() {
		parsed, _ := time.Parse(time.RFC3339Nano, ev.Time)
		w.mu.Lock()
		w.published = append(w.published, published{r, parsed})
		w.mu.Unlock()
	}
}

// expected is the ledger the results published make, by key.
func (w *world) expected() map[string]ledger.Record {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]ledger.Record{}
	for _, p := range w.published {
		rec, ok := ledger.FromResult(p.res, p.at)
		if !ok {
			continue
		}
		k := ledger.Key(p.res.Email)
		out[k] = ledger.Merge(out[k], rec)
	}
	return out
}

// caughtUp waits until the ledger's consumer has every result acked.
func (w *world) caughtUp() {
	w.t.Helper()
	testenv.Eventually(w.t, 30*time.Second, func() (bool, string) {
		c, err := w.js.Consumer(context.Background(), w.topo.ResultStream, w.topo.ConsumerName(topology.LedgerConsumer))
		if err != nil {
			return false, err.Error()
		}
		info, err := c.Info(context.Background())
		if err != nil {
			return false, err.Error()
		}
		return info.NumPending == 0 && info.NumAckPending == 0, fmt.Sprintf("ledger consumer: %d pending, %d not acked", info.NumPending, info.NumAckPending)
	})
}

// startProjector runs a projector on its own connection until the test
// ends; the returned function stops it and fails the test if Run does not
// return in time.
func (w *world) startProjector(cfg ledger.ProjectorConfig) (stop func()) {
	w.t.Helper()
	cfg.Topology = w.topo
	p := ledger.NewProjector(connect(w.t, w.ns.URL()), cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					w.t.Errorf("projector Run = %v; want nil after cancellation", err)
				}
			case <-time.After(15 * time.Second):
				w.t.Errorf("projector did not stop within 15s")
			}
		})
	}
	w.t.Cleanup(stop)
	return stop
}

func (w *world) ledger() *ledger.Ledger {
	w.t.Helper()
	l, err := ledger.Open(context.Background(), w.js, w.topo)
	if err != nil {
		w.t.Fatalf("open ledger: %v", err)
	}
	return l
}

// check compares every user's entry with what the results make.
func (w *world) check(emails []string) {
	w.t.Helper()
	want := w.expected()
	l := w.ledger()
	for _, e := range emails {
		got, err := l.Get(context.Background(), e)
		if err != nil {
			w.t.Fatalf("Get(%s): %v", e, err)
		}
		wantRec := want[ledger.Key(e)]
		if g, x := facts(got), facts(wantRec.Prune(time.Now(), w.topo.ResultMaxAge)); g != x {
			w.t.Errorf("ledger of %s =\n%s\nwant\n%s", e, g, x)
		}
	}
}

// facts is a record's JSON without the time it was written.
func facts(r ledger.Record) string {
	r.Updated, r.Version = time.Time{}, 0
	if r.Requests == nil {
		r.Requests = []ledger.Request{}
	}
	b, _ := json.Marshal(r)
	return string(b)
}

// userLife publishes one user's life: creation, updates, deactivation,
// activation, a failure, a deletion.
func (w *world) userLife(id, email string) {
	w.result(id+"-c", "ssoCreate", email, messages.OutcomeCreated, `{"action":"ssoCreate","user_info":{"email":"`+email+`","type":1,"first_name":"F`+id+`"}}`, "")
	w.result(id+"-u", "update", email, messages.OutcomeUpdated, `{"email":"`+email+`","user":{"last_name":"L`+id+`"}}`, "")
	w.result(id+"-x", "deactivate", email, messages.OutcomeDeactivated, `{"email":"`+email+`"}`, "")
	w.result(id+"-a", "activate", email, messages.OutcomeActivated, `{"email":"`+email+`"}`, "")
	w.result(id+"-f", "update", email, messages.OutcomeFailed, `{"email":"`+email+`","user":{"dept":"X"}}`, "")
	w.result(id+"-d", "delete", email, messages.OutcomeDeleted, `{"email":"`+email+`","action":"delete"}`, "")
}

// Ensure two replicas projecting one result stream at once, each result
// of five users interleaved with the others', some stored twice, end with
// exactly the ledger the results make: compare-and-set loses nothing, a
// result applied twice counts once, deferrals and audit events are
// ignored. The projectors start before the bucket exists and bind once it
// does.
func TestTwoReplicasWriteConcurrently(t *testing.T) {
	w := newWorld(t, false)
	cfg := ledger.ProjectorConfig{Batch: 4, Writers: 2, Retry: 20 * time.Millisecond}
	w.startProjector(cfg)
	w.startProjector(cfg)
	w.reconcile()

	emails := []string{"a@example.com", "B@example.com", "c@example.com", "d@example.com", "e@example.com"}
	for round := range 40 {
		for i, e := range emails {
			id := fmt.Sprintf("r%d-u%d", round, i)
			o := []messages.Outcome{messages.OutcomeUpdated, messages.OutcomeFailed, messages.OutcomeDeactivated, messages.OutcomeActivated}[(round+i)%4]
			r := w.result(id, string(map[messages.Outcome]messages.Operation{
				messages.OutcomeUpdated: messages.OpUpdate, messages.OutcomeFailed: messages.OpUpdate,
				messages.OutcomeDeactivated: messages.OpDeactivate, messages.OutcomeActivated: messages.OpActivate,
			}[o]), e, o, fmt.Sprintf(`{"email":%q,"user":{"job_title":"T%d"}}`, e, round), "")
			if round%7 == 0 {
				w.publish(r, "again-"+id) // the same result stored twice
			}
			if round%5 == 0 {
				d := r
				d.Outcome, d.RetryAt = messages.OutcomeDeferred, time.Now().UTC().Format(time.RFC3339)
				w.publish(d, "")
			}
		}
	}
	if _, err := audit.Publish(context.Background(), w.js, w.topo, audit.Event{Kind: "quota", Verb: "opened", Subject: "create", Actor: "ops", Reason: "test"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	w.caughtUp()
	w.check(emails)
	l := w.ledger()
	rec, err := l.Get(context.Background(), "b@EXAMPLE.com")
	if err != nil || len(rec.Requests) != 40 {
		t.Errorf("Get(b@EXAMPLE.com) = %d requests, %v; want 40 (any case of the address)", len(rec.Requests), err)
	}
	kv, err := w.js.KeyValue(context.Background(), w.topo.LedgerBucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(context.Background())
	if err != nil || len(keys) != len(emails) {
		t.Errorf("bucket keys = %v, %v; want one per user (%d)", keys, err, len(emails))
	}
	for _, k := range keys {
		if strings.Contains(k, "@") || strings.Contains(k, "example") {
			t.Errorf("key %q holds the address", k)
		}
	}
}

// Ensure Reindex rebuilds the ledger after its bucket was deleted, while a
// replica keeps projecting new results.
func TestReindexAfterBucketDeleted(t *testing.T) {
	w := newWorld(t, true)
	stop := w.startProjector(ledger.ProjectorConfig{Retry: 20 * time.Millisecond})
	var emails []string
	for i := range 20 {
		e := fmt.Sprintf("user%d@example.com", i)
		emails = append(emails, e)
		w.userLife(fmt.Sprint(i), e)
	}
	w.caughtUp()
	w.check(emails)

	ctx := context.Background()
	if err := w.js.DeleteKeyValue(ctx, w.topo.LedgerBucket); err != nil {
		t.Fatalf("delete bucket: %v", err)
	}
	if _, err := ledger.Reindex(ctx, w.js, w.topo, nil); !errors.Is(err, ledger.ErrNoLedger) {
		t.Fatalf("Reindex without the bucket = %v; want ErrNoLedger", err)
	}
	w.reconcile() // a replica starting, or topology.Reconcile, makes it again
	l := w.ledger()
	if rec, _ := l.Get(ctx, emails[0]); rec.Known() {
		t.Fatalf("the new bucket already knows %s", emails[0])
	}

	// New results arrive while the ledger is rebuilt.
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 20; i < 30; i++ {
			w.userLife(fmt.Sprint(i), fmt.Sprintf("user%d@example.com", i))
		}
	})
	var progress []uint64
	rep, err := ledger.Reindex(ctx, w.js, w.topo, func(read, total uint64) { progress = append(progress, read) })
	wg.Wait()
	if err != nil {
		t.Fatalf("Reindex: %v", err)
	}
	if rep.Users < 20 || rep.Applied < 120 || len(progress) == 0 {
		t.Errorf("Reindex report %+v, progress %v; want at least 20 users and 120 results", rep, progress)
	}
	for i := 20; i < 30; i++ {
		emails = append(emails, fmt.Sprintf("user%d@example.com", i))
	}
	w.caughtUp()
	w.check(emails)

	// Reindexing a complete ledger changes nothing.
	before := map[string]string{}
	for _, e := range emails {
		r, _ := l.Get(ctx, e)
		before[e] = facts(r)
	}
	stop()
	if _, err := ledger.Reindex(ctx, w.js, w.topo, nil); err != nil {
		t.Fatalf("second Reindex: %v", err)
	}
	for _, e := range emails {
		if r, _ := l.Get(ctx, e); facts(r) != before[e] {
			t.Errorf("second Reindex changed %s:\n%s\nwas\n%s", e, facts(r), before[e])
		}
	}
}

// Ensure Forget erases the person's entry, results and dead letters, and
// nothing of anyone else's; records an audit event without the address;
// and that a later request starts a new entry, which a reindex keeps
// without bringing back what was erased.
func TestForget(t *testing.T) {
	w := newWorld(t, true)
	w.startProjector(ledger.ProjectorConfig{Retry: 20 * time.Millisecond})
	ctx := context.Background()
	w.userLife("al", "alice@example.com")
	w.userLife("bo", "bob@example.com")
	d := w.result("al-late", "update", "Alice@Example.com", messages.OutcomeFailed, "", "")
	d.Outcome, d.RequestID = messages.OutcomeDeferred, "al-deferred"
	w.publish(d, "")
	for i, body := range []string{
		`{"action":"ssoCreate","user_info":{"email":"ALICE@example.com","type":1}}`,
		`{"email":"bob@example.com"}`,
		`{"action":"custCreate","user_info":"{\"email\":\"alice@example.com\",\"type\":2}"}`,
	} {
		m := nats.NewMsg(w.topo.DeadLetterSubject("ssoCreate"))
		m.Data = []byte(body)
		if _, err := w.js.PublishMsg(ctx, m, jetstream.WithMsgID(fmt.Sprint("dl-", i))); err != nil {
			t.Fatal(err)
		}
	}
	// Drift reports: one names alice among others, one only bob.
	for i, entries := range [][]map[string]any{
		{{"email": "bob@example.com", "kind": "status"}, {"email": "ALICE@example.com", "kind": "fields"}},
		{{"email": "bob@example.com", "kind": "missing"}},
	} {
		if _, err := audit.Publish(ctx, w.js, w.topo, audit.Event{Kind: "drift", Verb: "report", Subject: fmt.Sprint("r", i), Actor: "zoom-provisioner/r",
			Reason: "periodic reconciliation", Data: map[string]any{"drift": entries, "unmanaged": []any{}}}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	w.caughtUp()
	l := w.ledger()
	if rec, _ := l.Get(ctx, "alice@example.com"); len(rec.Requests) != 7 {
		t.Fatalf("alice has %d requests before forget; want 7", len(rec.Requests))
	}

	if _, err := ledger.Forget(ctx, w.js, w.topo, "alice@example.com", "", "gdpr", time.Now()); !errors.Is(err, audit.ErrNoActor) {
		t.Errorf("Forget without an actor = %v; want ErrNoActor", err)
	}
	rep, err := ledger.Forget(ctx, w.js, w.topo, "Alice@example.COM", "helpdesk", "erasure request HR-7", time.Now())
	if err != nil {
		t.Fatalf("Forget: %v", err)
	}
	if rep.Results != 9 || rep.DeadLetters != 2 || rep.Key != ledger.Key("alice@example.com") {
		t.Errorf("Forget report %+v; want 9 results (7 terminal, 1 deferred, 1 drift report) and 2 dead letters erased", rep)
	}
	rec, err := l.Get(ctx, "alice@example.com")
	if err != nil || rec.Known() || rec.Forgotten == nil || rec.Email != "" || rec.Creation != nil {
		t.Errorf("alice's entry after Forget = %+v, %v; want only the marker", rec, err)
	}
	if rec, _ := l.Get(ctx, "bob@example.com"); len(rec.Requests) != 6 {
		t.Errorf("bob has %d requests after alice was forgotten; want 6", len(rec.Requests))
	}

	// Nothing of alice is left in the result and dead-letter streams, but
	// the audit event, which names her by key.
	var auditEvents []audit.CloudEvent
	for _, stream := range []string{w.topo.ResultStream, w.topo.DeadLetterStream} {
		s, err := w.js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		info, _ := s.Info(ctx)
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
			m, err := s.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(strings.ToLower(string(m.Data)), "alice") {
				t.Errorf("%s/%d still holds alice: %s", stream, seq, m.Data)
			}
			if m.Subject == w.topo.ResultPrefix+".user" || m.Subject == w.topo.ResultPrefix+".drift" {
				var ev audit.CloudEvent
				_ = json.Unmarshal(m.Data, &ev)
				auditEvents = append(auditEvents, ev)
			}
		}
	}
	drift := 0
	for _, ev := range auditEvents {
		if ev.Type == audit.Type("drift", "report") {
			drift++
		}
	}
	auditEvents = slices.DeleteFunc(auditEvents, func(ev audit.CloudEvent) bool { return ev.Type == audit.Type("drift", "report") })
	if drift != 1 {
		t.Errorf("%d drift reports left; want bob's alone", drift)
	}
	if len(auditEvents) != 1 || auditEvents[0].Type != audit.Type("user", "forgotten") || auditEvents[0].Subject != rep.Key ||
		auditEvents[0].Data["actor"] != "helpdesk" || auditEvents[0].Data["reason"] != "erasure request HR-7" || auditEvents[0].Data["complete"] != true {
		t.Errorf("audit events %+v; want one user.forgotten with the key, actor and reason", auditEvents)
	}

	// A new request about her starts a new entry, and a reindex keeps it
	// and brings nothing back.
	w.result("al-new", "ssoCreate", "alice@example.com", messages.OutcomeCreated, "", "")
	w.caughtUp()
	if rec, _ := l.Get(ctx, "alice@example.com"); len(rec.Requests) != 1 || rec.Requests[0].RequestID != "al-new" || rec.View("").State != ledger.StateActive {
		t.Errorf("alice after a new creation = %+v; want only al-new, active", rec)
	}
	if _, err := ledger.Reindex(ctx, w.js, w.topo, nil); err != nil {
		t.Fatalf("Reindex: %v", err)
	}
	if rec, _ := l.Get(ctx, "alice@example.com"); len(rec.Requests) != 1 || rec.Forgotten == nil {
		t.Errorf("alice after reindex = %+v; want only al-new and the marker", rec)
	}
	if rec, _ := l.Get(ctx, "bob@example.com"); len(rec.Requests) != 6 {
		t.Errorf("bob after reindex has %d requests; want 6", len(rec.Requests))
	}
}
