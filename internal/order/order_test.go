package order_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/order"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/testenv"
)

// setup starts a server with the request stream and stores bodies, one per
// sequence from 1.
func setup(t *testing.T, bodies ...[2]string) jetstream.Stream {
	t.Helper()
	js := testenv.StartJetStream(t)
	topo := topology.Default()
	s, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: topo.RequestStream, Subjects: topo.RequestSubjects(), Retention: jetstream.WorkQueuePolicy})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bodies {
		if _, err := js.Publish(context.Background(), topo.RequestSubject(b[0]), []byte(b[1])); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func create(email string) [2]string {
	return [2]string{"ssoCreate", fmt.Sprintf(`{"action":"ssoCreate","user_info":{"email":%q,"type":1}}`, email)}
}

func update(email string) [2]string {
	return [2]string{"update", fmt.Sprintf(`{"email":%q,"user":{"type":2}}`, email)}
}

// Ensure the index finds the oldest earlier request about a user still in
// the stream, whatever the letter case of the address, ignores other
// users, and sees a request gone once the stream no longer holds it.
func TestBlocker(t *testing.T) {
	ctx := context.Background()
	s := setup(t, create("Ann@example.com"), create("bob@example.com"), update("ann@EXAMPLE.com"), update("ann@example.com"))
	x := order.New(s, topology.Default(), 1)
	key := order.Key([]byte(`{"email":"ANN@example.com"}`))

	b, blocked, err := x.Blocker(ctx, 4, key)
	if err != nil || !blocked || b.Seq != 1 || b.Action != "ssoCreate" || b.Local {
		t.Fatalf("Blocker(4) = %+v, %v, %v; want request 1 (ssoCreate), not local", b, blocked, err)
	}
	if _, blocked, _ := x.Blocker(ctx, 2, order.Key([]byte(`{"email":"bob@example.com"}`))); blocked {
		t.Errorf("Blocker(2, bob) blocked; want nothing earlier about bob")
	}
	if !x.HasLater(1, key) || x.HasLater(4, key) {
		t.Errorf("HasLater(1), HasLater(4) = %v, %v; want true, false", x.HasLater(1, key), x.HasLater(4, key))
	}

	// Request 1 handled here: a local blocker, which ends with End.
	x.Begin(1, key, "ssoCreate")
	if b, _, _ := x.Blocker(ctx, 4, key); !b.Local || b.Seq != 1 {
		t.Errorf("Blocker while 1 runs here = %+v; want it local", b)
	}
	changed := x.Changed()
	if err := s.DeleteMsg(ctx, 1); err != nil {
		t.Fatal(err)
	}
	x.End(1, false) // an unconfirmed ack: the stream tells
	select {
	case <-changed:
	default:
		t.Error("End did not wake the waiters")
	}
	if b, blocked, err := x.Blocker(ctx, 4, key); err != nil || !blocked || b.Seq != 3 {
		t.Errorf("Blocker(4) after 1 left = %+v, %v, %v; want request 3", b, blocked, err)
	}
	if ok, err := x.Stored(ctx, 3); err != nil || !ok {
		t.Errorf("Stored(3) = %v, %v; want true", ok, err)
	}
	if err := s.DeleteMsg(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if ok, err := x.Stored(ctx, 3); err != nil || ok {
		t.Errorf("Stored(3) after its deletion = %v, %v; want false", ok, err)
	}
	if _, blocked, err := x.Blocker(ctx, 4, key); err != nil || blocked {
		t.Errorf("Blocker(4) with 1 and 3 gone = %v, %v; want none", blocked, err)
	}
	if x.Reads() == 0 {
		t.Error("Reads() = 0; want the reads counted")
	}
}

// Ensure Prune forgets what is below the stream's first sequence and at
// or below an action's acknowledgement floor, and keeps what runs here.
func TestPrune(t *testing.T) {
	ctx := context.Background()
	s := setup(t, create("a@example.com"), update("a@example.com"), create("c@example.com"))
	x := order.New(s, topology.Default(), 1)
	if _, _, err := x.Blocker(ctx, 4, "nobody"); err != nil { // reads 1 to 3
		t.Fatal(err)
	}
	x.Begin(3, order.Key([]byte(`{"email":"c@example.com"}`)), "ssoCreate")
	if left := x.Prune(2, map[string]uint64{"ssoCreate": 3}); left != 2 {
		t.Errorf("Prune left %d entries; want 2 (the update, and 3, which runs here)", left)
	}
	if left := x.Prune(2, map[string]uint64{"update": 2}); left != 1 {
		t.Errorf("Prune after the update's floor left %d; want 1", left)
	}
}

// Ensure a request pruned by its action's floor before the scan reached it
// (delivered out of stream order, across consumers) costs no read later:
// the scan passes it, then forgets it. Before, every such request was read
// again, and at thousands a second the index held 15 s of requests.
func TestPruneAheadOfScan(t *testing.T) {
	ctx := context.Background()
	s := setup(t, create("a@example.com"), update("b@example.com"), create("c@example.com"))
	x := order.New(s, topology.Default(), 1)
	b := order.Key([]byte(`{"email":"b@example.com"}`))
	x.Begin(2, b, "update") // the update's consumer was quicker than ssoCreate's
	if err := s.DeleteMsg(ctx, 2); err != nil {
		t.Fatal(err)
	}
	x.End(2, false)
	x.Prune(1, map[string]uint64{"update": 2})
	if x.HasLater(1, b) {
		t.Error("the pruned update still counts as a later request about b")
	}
	x.Begin(1, order.Key([]byte(`{"email":"a@example.com"}`)), "ssoCreate")
	x.Begin(3, order.Key([]byte(`{"email":"c@example.com"}`)), "ssoCreate")
	if _, blocked, err := x.Blocker(ctx, 3, order.Key([]byte(`{"email":"c@example.com"}`))); err != nil || blocked {
		t.Fatalf("Blocker(3) = %v, %v; want nothing earlier about c", blocked, err)
	}
	if n := x.Reads(); n != 0 {
		t.Errorf("Reads() = %d; want 0: every request up to 3 was delivered here or pruned", n)
	}
	x.End(1, false)
	x.End(3, false)
	if left := x.Prune(4, nil); left != 0 {
		t.Errorf("Prune below the first sequence left %d entries; want 0", left)
	}
}
