package order_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/order"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/testenv"
)

var topo = topology.Default()

// setup starts a server with the request stream and stores bodies, one per
// sequence from 1.
func setup(t *testing.T, bodies ...[2]string) (jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	js := testenv.StartJetStream(t)
	s, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: topo.RequestStream, Subjects: topo.RequestSubjects(), Retention: jetstream.WorkQueuePolicy})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bodies {
		store(t, js, b)
	}
	return js, s
}

func store(t *testing.T, js jetstream.JetStream, b [2]string) uint64 {
	t.Helper()
	ack, err := js.Publish(context.Background(), topo.RequestSubject(b[0]), []byte(b[1]))
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// park stores a parked copy of the request at pos, as the service does.
func park(t *testing.T, js jetstream.JetStream, pos uint64, b [2]string) uint64 {
	t.Helper()
	m := nats.NewMsg(topo.ParkedSubject(b[0]))
	m.Data = []byte(b[1])
	m.Header.Set(messages.HeaderPosition, strconv.FormatUint(pos, 10))
	m.Header.Set(messages.HeaderParkedRequestID, fmt.Sprintf("req-%d", pos))
	m.Header.Set(messages.HeaderParkedSubject, topo.RequestSubject(b[0]))
	ack, err := js.PublishMsg(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func create(email string) [2]string {
	return [2]string{"ssoCreate", fmt.Sprintf(`{"action":"ssoCreate","user_info":{"email":%q,"type":1}}`, email)}
}

func update(email string) [2]string {
	return [2]string{"update", fmt.Sprintf(`{"email":%q,"user":{"type":2}}`, email)}
}

func key(email string) string { return messages.UserKey(email) }

func req(seq uint64, b [2]string, email string) order.Request {
	return order.Request{Pos: seq, Seq: seq, Key: key(email), Action: b[0]}
}

// wait is Wait for a request entered just for the check and left at once.
func wait(t *testing.T, x *order.Index, r order.Request, whole bool) (order.Blocker, bool) {
	t.Helper()
	turn, _ := x.Enter(r)
	defer turn.Leave(false)
	b, blocked, err := turn.Wait(context.Background(), whole)
	if err != nil {
		t.Fatalf("Wait(%+v) = %v", r, err)
	}
	return b, blocked
}

// Ensure the index finds the oldest earlier request about a user still in
// the stream, whatever the letter case of the address, ignores other
// users, and sees a request gone once the stream no longer holds it.
func TestWait(t *testing.T) {
	ctx := context.Background()
	js, s := setup(t, create("Ann@example.com"), create("bob@example.com"), update("ann@EXAMPLE.com"), update("ann@example.com"))
	x := order.New(js.Conn(), topo, 1)

	if b, blocked := wait(t, x, req(4, update(""), "ANN@example.com"), false); !blocked || b.Pos != 1 || b.Action != "ssoCreate" || b.Local {
		t.Fatalf("Wait(4) = %+v, %v; want request 1 (ssoCreate), not local", b, blocked)
	}
	if _, blocked := wait(t, x, req(2, create(""), "bob@example.com"), false); blocked {
		t.Errorf("Wait(2, bob) blocked; want nothing earlier about bob")
	}

	// Request 1 handled here: a local blocker, waited for until it ends.
	one, _ := x.Enter(req(1, create(""), "ann@example.com"))
	if !one.HasLater() {
		t.Error("HasLater(1) = false; want true (3 and 4 are about ann)")
	}
	four, _ := x.Enter(req(4, update(""), "ann@example.com"))
	if four.HasLater() {
		t.Error("HasLater(4) = true; want false")
	}
	got := make(chan order.Blocker, 1)
	go func() {
		b, _, _ := four.Wait(ctx, false)
		got <- b
	}()
	select {
	case b := <-got:
		t.Fatalf("Wait(4) returned %+v while 1 runs here; want it to wait", b)
	case <-time.After(50 * time.Millisecond):
	}
	if err := s.DeleteMsg(ctx, 1); err != nil {
		t.Fatal(err)
	}
	one.Leave(false) // an unconfirmed ack: the stream tells
	select {
	case b := <-got:
		if b.Pos != 3 {
			t.Errorf("Wait(4) after 1 left = %+v; want request 3", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait(4) did not return after 1 left")
	}
	four.Leave(false)
	if ok, err := x.Stored(ctx, 3); err != nil || !ok {
		t.Errorf("Stored(3) = %v, %v; want true", ok, err)
	}
	if err := s.DeleteMsg(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if _, blocked := wait(t, x, req(4, update(""), "ann@example.com"), false); blocked {
		t.Errorf("Wait(4) with 1 and 3 gone blocked; want none")
	}
	if x.Reads() == 0 {
		t.Error("Reads() = 0; want the reads counted")
	}
}

// Ensure a parked copy keeps its request's place: a later request about
// the user waits for it, an earlier one does not, and a copy waits for
// its own original until that is gone.
func TestParkedCopyKeepsItsPlace(t *testing.T) {
	ctx := context.Background()
	js, s := setup(t, create("ann@example.com"), update("ann@example.com"))
	x := order.New(js.Conn(), topo, 1)
	copySeq := park(t, js, 2, update("ann@example.com")) // 3
	later := store(t, js, [2]string{"deactivate", `{"email":"ann@example.com"}`})

	cp := order.Request{Pos: 2, Seq: copySeq, Key: key("ann@example.com"), Action: "update"}
	if b, blocked := wait(t, x, cp, false); !blocked || b.Self || b.Pos != 1 {
		t.Errorf("Wait(copy) = %+v, %v; want 1 first", b, blocked)
	}
	if err := s.DeleteMsg(ctx, 1); err != nil { // the creation finishes
		t.Fatal(err)
	}
	if b, blocked := wait(t, x, cp, false); !blocked || !b.Self || b.Seq != 2 {
		t.Errorf("Wait(copy) with its original stored = %+v, %v; want its original (Self)", b, blocked)
	}
	if b, blocked := wait(t, x, req(2, update(""), "ann@example.com"), true); !blocked || !b.Self || b.Seq != copySeq {
		t.Errorf("Wait(original 2, whole) = %+v, %v; want its copy (Self)", b, blocked)
	}
	if err := s.DeleteMsg(ctx, 2); err != nil { // the park completes
		t.Fatal(err)
	}
	if _, blocked := wait(t, x, cp, false); blocked {
		t.Errorf("Wait(copy) once its original and the creation left = blocked; want its turn")
	}
	b, blocked := wait(t, x, req(later, [2]string{"deactivate", ""}, "ann@example.com"), false)
	if !blocked || b.Pos != 2 || b.Seq != copySeq || !b.Parked {
		t.Errorf("Wait(%d) = %+v, %v; want the parked copy of 2", later, b, blocked)
	}
}

// Ensure a later request stored before a copy, which reads the stream only
// up to its own position, is what LaterOriginal reports, and that an
// original finds a copy of itself stored after it when it reads the whole
// stream.
func TestLaterOriginal(t *testing.T) {
	js, _ := setup(t, create("ann@example.com"), update("ann@example.com"), update("bob@example.com"))
	x := order.New(js.Conn(), topo, 1)
	r2 := req(2, update(""), "ann@example.com")
	copyAnn := park(t, js, 2, update("ann@example.com"))
	if later, err := x.LaterOriginal(context.Background(), r2, copyAnn); err != nil || later {
		t.Errorf("LaterOriginal(2, %d) = %v, %v; want false (only bob's in between)", copyAnn, later, err)
	}
	if b, blocked := wait(t, x, r2, true); !blocked || b.Pos != 1 {
		t.Errorf("Wait(2, whole) = %+v, %v; want 1 first", b, blocked)
	}
	store(t, js, update("ANN@example.com"))
	copy2 := park(t, js, 2, update("ann@example.com"))
	if later, err := x.LaterOriginal(context.Background(), r2, copy2); err != nil || !later {
		t.Errorf("LaterOriginal(2, %d) = %v, %v; want true (ann's update stored before the copy)", copy2, later, err)
	}
}

// Ensure Prune forgets what is below the stream's first sequence and at
// or below its consumer's acknowledgement floor, and keeps what runs here.
func TestPrune(t *testing.T) {
	js, _ := setup(t, create("a@example.com"), update("a@example.com"), create("c@example.com"))
	x := order.New(js.Conn(), topo, 1)
	wait(t, x, req(4, create(""), "nobody@example.com"), false) // reads 1 to 3
	c, _ := x.Enter(req(3, create(""), "c@example.com"))
	defer c.Leave(false)
	if left := x.Prune(2, map[string]uint64{"ssoCreate": 3}); left != 3 {
		t.Errorf("Prune left %d entries; want 3 (the update, 3, which runs here, and 4)", left)
	}
	// 4, never stored and past the scan, stays as a marker the scan
	// passes without a read.
	if left := x.Prune(2, map[string]uint64{"update": 2, "ssoCreate": 4}); left != 2 {
		t.Errorf("Prune after the update's floor left %d; want 2 (3, and the marker of 4)", left)
	}
}

// Ensure a request pruned by its action's floor before the scan reached it
// (delivered out of stream order, across consumers) costs no read later:
// the scan passes it, then forgets it.
func TestPruneAheadOfScan(t *testing.T) {
	ctx := context.Background()
	js, s := setup(t, create("a@example.com"), update("b@example.com"), create("c@example.com"))
	x := order.New(js.Conn(), topo, 1)
	two, _ := x.Enter(req(2, update(""), "b@example.com")) // the update's consumer was quicker than ssoCreate's
	if err := s.DeleteMsg(ctx, 2); err != nil {
		t.Fatal(err)
	}
	two.Leave(false)
	x.Prune(1, map[string]uint64{"update": 2})
	one, _ := x.Enter(req(1, create(""), "a@example.com"))
	if one.HasLater() {
		t.Error("a later request about a counts")
	}
	three, _ := x.Enter(req(3, create(""), "c@example.com"))
	if _, blocked, err := three.Wait(ctx, false); err != nil || blocked {
		t.Fatalf("Wait(3) = %v, %v; want nothing earlier about c", blocked, err)
	}
	if n := x.Reads(); n != 0 {
		t.Errorf("Reads() = %d; want 0: every request up to 3 was delivered here or pruned", n)
	}
	one.Leave(false)
	three.Leave(false)
	if left := x.Prune(4, nil); left != 0 {
		t.Errorf("Prune below the first sequence left %d entries; want 0", left)
	}
}

// Ensure each of two copies of one request (two deliveries of the original
// parked it at once) finds the other as its own other form, so that the
// service can keep the earlier one.
func TestTwoCopiesFindEachOther(t *testing.T) {
	ctx := context.Background()
	js, s := setup(t, update("ann@example.com"))
	x := order.New(js.Conn(), topo, 1)
	first := park(t, js, 1, update("ann@example.com"))
	second := park(t, js, 1, update("ann@example.com"))
	if err := s.DeleteMsg(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ me, other uint64 }{{second, first}, {first, second}} {
		r := order.Request{Pos: 1, Seq: c.me, Key: key("ann@example.com"), Action: "update"}
		if b, blocked := wait(t, x, r, false); !blocked || !b.Self || !b.Parked || b.Seq != c.other {
			t.Errorf("Wait(copy %d) = %+v, %v; want the other copy %d (Self, Parked)", c.me, b, blocked, c.other)
		}
	}
}

// Ensure a redelivery in a long backlog reads only the parked copies
// beyond its own position, not the backlog: it used to read the stream to
// its end one message at a time, holding every other request behind that
// scan (the bench's scale scenario stalled 55.6 s with 150,000 queued).
func TestRedeliveryReadsOnlyParkedBeyond(t *testing.T) {
	ctx := context.Background()
	const backlog = 300
	js, s := setup(t, create("ann@example.com"), update("ann@example.com"))
	for i := range backlog {
		store(t, js, create(fmt.Sprintf("u%d@example.com", i)))
	}
	copySeq := park(t, js, 1, create("ann@example.com"))
	if err := s.DeleteMsg(ctx, 1); err != nil {
		t.Fatal(err)
	}
	x := order.New(js.Conn(), topo, 1)
	b, blocked := wait(t, x, req(2, update(""), "ann@example.com"), true)
	if !blocked || b.Pos != 1 || b.Seq != copySeq || !b.Parked {
		t.Fatalf("Wait(2, whole) = %+v, %v; want the parked copy of 1 at %d", b, blocked, copySeq)
	}
	if n := x.Reads(); n > 5 {
		t.Errorf("Reads() = %d with %d requests queued after it; want at most 5", n, backlog)
	}
	t.Logf("%d reads with %d queued after the request", x.Reads(), backlog)
}

// setupDirect is setup with direct gets allowed, as the service's stream.
func setupDirect(t *testing.T, bodies ...[2]string) (jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	js := testenv.StartJetStream(t)
	s, err := js.CreateStream(context.Background(), topo.RequestStreamConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bodies {
		store(t, js, b)
	}
	return js, s
}

// Ensure the index reads the stream forward in batches when the stream
// allows direct gets: a request behind 600 others about other users costs
// a few reads, not 600, and still finds the earlier request about its
// user.
func TestScanReadsInBatches(t *testing.T) {
	const others = 600
	js, _ := setupDirect(t, create("ann@example.com"))
	for i := range others {
		store(t, js, create(fmt.Sprintf("u%d@example.com", i)))
	}
	last := store(t, js, update("ann@example.com"))
	x := order.New(js.Conn(), topo, 1)
	if b, blocked := wait(t, x, req(last, update(""), "ann@example.com"), false); !blocked || b.Pos != 1 {
		t.Fatalf("Wait(%d) = %+v, %v; want request 1 first", last, b, blocked)
	}
	// Three batches of at most 256, and the check of request 1.
	if n := x.Reads(); n > 4 {
		t.Errorf("Reads() = %d for %d requests before it; want at most 4", n, others+1)
	}
	t.Logf("%d reads for %d requests before it", x.Reads(), others+1)
}

// Ensure a batched read answered by a replica that lags (it lacks the
// requests stored last) never makes a request look absent: the index
// trusts a batch only up to the last message it holds, and asks the
// leader about the rest. The lagging replica is played by the test: the
// stream allows no direct gets, so only the test answers them, from a
// snapshot of the first five requests.
func TestLaggingReplicaHidesNothing(t *testing.T) {
	ctx := context.Background()
	var bodies [][2]string
	for i := range 5 {
		bodies = append(bodies, create(fmt.Sprintf("u%d@example.com", i)))
	}
	js, s := setup(t, bodies...)
	nc := js.Conn()
	var snapshot []*jetstream.RawStreamMsg
	for seq := uint64(1); seq <= 5; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		snapshot = append(snapshot, m)
	}
	var batches atomic.Int64
	sub, err := nc.Subscribe("$JS.API.DIRECT.GET."+topo.RequestStream, func(m *nats.Msg) {
		batches.Add(1)
		var q struct {
			Seq   uint64 `json:"seq"`
			Batch int    `json:"batch"`
		}
		_ = json.Unmarshal(m.Data, &q)
		sent := 0
		for _, sm := range snapshot {
			if sm.Sequence < q.Seq || sent == q.Batch {
				continue
			}
			r := nats.NewMsg(m.Reply)
			r.Data = sm.Data
			r.Header.Set("Nats-Subject", sm.Subject)
			r.Header.Set("Nats-Sequence", strconv.FormatUint(sm.Sequence, 10))
			r.Header.Set("Nats-Num-Pending", "0")
			_ = nc.PublishMsg(r)
			sent++
		}
		end := nats.NewMsg(m.Reply)
		end.Header.Set("Status", "204")
		if sent == 0 {
			end.Header.Set("Status", "404")
		}
		_ = nc.PublishMsg(end)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// Stored after the snapshot: the replica has not applied them.
	store(t, js, create("ann@example.com"))
	seven := store(t, js, update("ann@example.com"))
	x := order.New(nc, topo, 1)
	if b, blocked := wait(t, x, req(seven, update(""), "ann@example.com"), false); !blocked || b.Pos != 6 {
		t.Fatalf("Wait(%d) = %+v, %v; want request 6, which the lagging replica lacks", seven, b, blocked)
	}
	if batches.Load() == 0 {
		t.Fatal("no batched read reached the lagging replica; the test proves nothing")
	}
}

// Ensure a redelivery waiting for an earlier request handled here reads
// nothing while other requests end here: it used to read the stream again
// at each one (here 21 reads for 20 other ends, now 1;
// TestLifecycleInOrder's 200 users: 70 stream reads per request, 68,500
// of them such reads, now 8).
func TestWaitReadsNothingWhileOthersEnd(t *testing.T) {
	ctx := context.Background()
	const others = 20
	js, s := setup(t, create("ann@example.com"), update("ann@example.com"))
	var seqs []uint64
	for i := range others {
		seqs = append(seqs, store(t, js, create(fmt.Sprintf("u%d@example.com", i))))
	}
	x := order.New(js.Conn(), topo, 1)
	one, _ := x.Enter(req(1, create(""), "ann@example.com"))
	two, _ := x.Enter(req(2, update(""), "ann@example.com"))
	defer two.Leave(false)
	type res struct {
		blocked bool
		err     error
	}
	got := make(chan res, 1)
	go func() {
		_, blocked, err := two.Wait(ctx, true) // a redelivery
		got <- res{blocked, err}
	}()
	// Its wait has begun once it has read the parked subjects (none).
	deadline := time.Now().Add(10 * time.Second)
	for x.Reads() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Wait(2) never read the stream")
		}
		time.Sleep(time.Millisecond) // polling for the goroutine's first read
	}
	before := x.Reads()
	for i, seq := range seqs {
		turn, _ := x.Enter(req(seq, create(""), fmt.Sprintf("u%d@example.com", i)))
		n := x.Reads()
		turn.Leave(false)
		// Give the waiter its chance to read at each end, one at a time
		// as in service: the bound is the test's, the reads are none.
		for end := time.Now().Add(20 * time.Millisecond); x.Reads() == n && time.Now().Before(end); {
			time.Sleep(time.Millisecond) // polling for a read that should not come
		}
	}
	if err := s.DeleteMsg(ctx, 1); err != nil {
		t.Fatal(err)
	}
	one.Leave(true)
	select {
	case r := <-got:
		if r.err != nil || r.blocked {
			t.Fatalf("Wait(2) = %v, %v; want its turn once 1 ended", r.blocked, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait(2) did not return after 1 ended")
	}
	t.Logf("reads during the wait: %d", x.Reads()-before)
	if n := x.Reads() - before; n > 2 {
		t.Errorf("Wait(2) read the stream %d times while %d other requests ended and 1 ended; want at most 2", n, others)
	}
}
