package dlq_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/deadletter"
	"github.com/zoomprov/consumer/internal/dlq"
	"github.com/zoomprov/consumer/internal/ledger"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/testenv"
)

// storeDeadLetter stores the dead letter of request id, which arrived at
// sequence origSeq of the request stream, as the service would.
func storeDeadLetter(t *testing.T, js jetstream.JetStream, topo topology.Topology, id, action, body string, origSeq uint64) {
	t.Helper()
	h := deadletter.Header{
		Reason: messages.ReasonNotFound, HTTPStatus: 404, ZoomCode: 1001, ZoomMessage: "User does not exist",
		OriginalSubject: topo.RequestSubject(action), OriginalSequence: origSeq,
		RequestID: id, Deliveries: 1, DeadLetteredAt: time.Now(),
	}
	m := nats.NewMsg(topo.DeadLetterSubject(action))
	m.Data = []byte(body)
	for k, v := range h.Headers() {
		m.Header.Set(k, v)
	}
	if _, err := js.PublishMsg(context.Background(), m, jetstream.WithMsgID(deadletter.MsgID(id))); err != nil {
		t.Fatalf("store dead letter %s: %v", id, err)
	}
}

// storeResult stores a terminal result, as the service would.
func storeResult(t *testing.T, js jetstream.JetStream, topo topology.Topology, r messages.Result) {
	t.Helper()
	data, err := messages.NewEvent(r, time.Now()).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(topo.ResultSubject(r.Outcome))
	m.Data = data
	if _, err := js.PublishMsg(context.Background(), m); err != nil {
		t.Fatalf("store result %s: %v", r.RequestID, err)
	}
}

// requestOrder returns the request ids the request stream holds, in
// order.
func requestOrder(t *testing.T, js jetstream.JetStream, topo topology.Topology) []string {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, topo.RequestStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m.Header.Get(messages.HeaderOriginalRequestID))
	}
	return out
}

// Ensure a replay refuses a dead letter whose user has a newer request
// that succeeded (the dry run lists it, the dead letter stays), ignores
// the dead letter's own earlier replay, replays the others with one
// user's dead letters in their original order, and replays the refused
// one with Force.
func TestReplayRefusesSuperseded(t *testing.T) {
	js := testenv.StartJetStream(t)
	ctx := context.Background()
	topo := topology.Default()
	if err := topologyReconcile(js, topo); err != nil {
		t.Fatal(err)
	}
	// Dead letters, as stored: alice's creation (deleted since), bob's
	// creation (whose earlier replay succeeded, then was interrupted),
	// carol's update and then her creation (stored out of order).
	storeDeadLetter(t, js, topo, "al-1", "ssoCreate", `{"action":"ssoCreate","user_info":{"email":"alice@example.com","type":1}}`, 5)
	storeDeadLetter(t, js, topo, "bo-1", "ssoCreate", `{"action":"ssoCreate","user_info":{"email":"bob@example.com","type":1}}`, 6)
	storeDeadLetter(t, js, topo, "ca-2", "update", `{"email":"carol@example.com","user":{"first_name":"C"}}`, 8)
	storeDeadLetter(t, js, topo, "ca-1", "ssoCreate", `{"action":"ssoCreate","user_info":{"email":"Carol@example.com","type":1}}`, 7)
	for _, r := range []messages.Result{
		{RequestID: "al-1", Action: "ssoCreate", Email: "alice@example.com", Outcome: messages.OutcomeFailed, Reason: messages.ReasonNotFound, StreamSequence: 5},
		{RequestID: "al-del", Action: "delete", Email: "ALICE@example.com", Outcome: messages.OutcomeDeleted, ZoomCode: 1001, StreamSequence: 9},
		{RequestID: "al-upd", Action: "update", Email: "alice@example.com", Outcome: messages.OutcomeFailed, Reason: messages.ReasonNotFound, StreamSequence: 10},
		{RequestID: "bo-1", Action: "ssoCreate", Email: "bob@example.com", Outcome: messages.OutcomeFailed, Reason: messages.ReasonNotFound, StreamSequence: 6},
		{RequestID: dlq.ReplayID("bo-1", 2), Action: "ssoCreate", Email: "bob@example.com", Outcome: messages.OutcomeCreated, StreamSequence: 11, ReplayOf: "bo-1"},
		{RequestID: "ca-0", Action: "ssoCreate", Email: "carol@example.com", Outcome: messages.OutcomeCreated, StreamSequence: 3},
	} {
		storeResult(t, js, topo, r)
	}
	if _, err := ledger.Reindex(ctx, js, topo, nil); err != nil {
		t.Fatalf("Reindex: %v", err)
	}
	entries, err := dlq.List(ctx, js, topo, dlq.Filter{})
	if err != nil || len(entries) != 4 {
		t.Fatalf("List = %d entries, %v; want 4", len(entries), err)
	}

	var order []string
	for _, e := range dlq.ReplayOrder(entries) {
		order = append(order, e.DeadLetter.RequestID)
	}
	if want := "al-1 bo-1 ca-1 ca-2"; strings.Join(order, " ") != want {
		t.Errorf("ReplayOrder = %v; want %s (carol's creation before her update)", order, want)
	}

	plan, err := dlq.Replay(ctx, js, topo, entries, dlq.Options{Actor: "tester", DryRun: true})
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if plan.Replayed != 3 || len(plan.Superseded) != 1 || plan.Superseded[0].RequestID != "al-1" || plan.Superseded[0].Newer.RequestID != "al-del" ||
		plan.Superseded[0].Forced || !strings.Contains(plan.Superseded[0].Error(), "al-del") {
		t.Fatalf("dry run = %+v; want 3 to replay and al-1 refused for al-del", plan)
	}

	sum, err := dlq.Replay(ctx, js, topo, entries, dlq.Options{Actor: "tester"})
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	if sum.Replayed != 3 || sum.Deleted != 3 || len(sum.Superseded) != 1 {
		t.Errorf("Replay = %+v; want 3 replayed, al-1 refused", sum)
	}
	if got := strings.Join(requestOrder(t, js, topo), " "); got != "bo-1 ca-1 ca-2" {
		t.Errorf("request stream holds %q; want bo-1 ca-1 ca-2", got)
	}
	left, err := dlq.List(ctx, js, topo, dlq.Filter{})
	if err != nil || len(left) != 1 || left[0].DeadLetter.RequestID != "al-1" {
		t.Fatalf("dead letters after the replay = %+v, %v; want al-1 alone", left, err)
	}

	sum, err = dlq.Replay(ctx, js, topo, left, dlq.Options{Actor: "tester", Force: true})
	if err != nil || sum.Replayed != 1 || len(sum.Superseded) != 1 || !sum.Superseded[0].Forced {
		t.Errorf("Replay with Force = %+v, %v; want al-1 replayed, reported as forced", sum, err)
	}
}

// Ensure a replay without the ledger's bucket fails, unless forced.
func TestReplayWithoutLedger(t *testing.T) {
	js := testenv.StartJetStream(t)
	ctx := context.Background()
	topo := topology.Default()
	if err := topologyReconcile(js, topo); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteKeyValue(ctx, topo.LedgerBucket); err != nil {
		t.Fatal(err)
	}
	storeDeadLetter(t, js, topo, "al-1", "ssoCreate", `{"action":"ssoCreate","user_info":{"email":"alice@example.com","type":1}}`, 5)
	entries, err := dlq.List(ctx, js, topo, dlq.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dlq.Replay(ctx, js, topo, entries, dlq.Options{Actor: "tester"}); !errors.Is(err, dlq.ErrLedgerUnavailable) || !errors.Is(err, ledger.ErrNoLedger) {
		t.Errorf("Replay without the ledger = %v; want ErrLedgerUnavailable", err)
	}
	if sum, err := dlq.Replay(ctx, js, topo, entries, dlq.Options{Actor: "tester", Force: true}); err != nil || sum.Replayed != 1 {
		t.Errorf("Replay with Force without the ledger = %+v, %v; want it replayed", sum, err)
	}
}
