package ledger

import (
	"context"
	"testing"
	"time"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/testenv"
)

// Ensure a result pulled before a Forget and applied after it (a replica
// that was slow) does not bring the person back, while a later one starts
// a new entry.
func TestForgottenMarkerKeepsOldResultsOut(t *testing.T) {
	js := testenv.StartJetStream(t)
	ctx := context.Background()
	topo := topology.Default()
	if _, err := topology.Reconcile(ctx, js, topo, topology.Options{Actions: topology.Actions(), AckWait: 30 * time.Second, MaxAckPending: 1000}); err != nil {
		t.Fatal(err)
	}
	l, err := Open(ctx, js, topo)
	if err != nil {
		t.Fatal(err)
	}
	key := Key("alice@example.com")
	old, _ := FromResult(messages.Result{RequestID: "old", Action: "ssoCreate", Email: "alice@example.com", Outcome: messages.OutcomeCreated, StreamSequence: 1}, time.Now())
	if _, err := l.apply(ctx, key, []result{{key: key, seq: 1, rec: old}}); err != nil {
		t.Fatal(err)
	}
	// Three results stored meanwhile: the marker covers them.
	for range 3 {
		if _, err := js.Publish(ctx, topo.ResultSubject(messages.OutcomeDeferred), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	through, err := l.erase(ctx, js, topo, key, time.Now())
	if err != nil || through != 3 {
		t.Fatalf("erase = %d, %v; want through 3", through, err)
	}
	if _, err := l.apply(ctx, key, []result{{key: key, seq: 2, rec: old}}); err != nil {
		t.Fatal(err)
	}
	if rec, _ := l.Get(ctx, "alice@example.com"); rec.Known() {
		t.Errorf("a result from before the erasure was applied: %+v", rec)
	}
	later, _ := FromResult(messages.Result{RequestID: "new", Action: "update", Email: "alice@example.com", Outcome: messages.OutcomeUpdated, StreamSequence: 9}, time.Now())
	if _, err := l.apply(ctx, key, []result{{key: key, seq: 4, rec: later}}); err != nil {
		t.Fatal(err)
	}
	if rec, _ := l.Get(ctx, "alice@example.com"); len(rec.Requests) != 1 || rec.Requests[0].RequestID != "new" || rec.Forgotten == nil {
		t.Errorf("after a later result: %+v; want only it, the marker kept", rec)
	}
}
