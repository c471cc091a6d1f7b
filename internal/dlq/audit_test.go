package dlq_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/zoomprov/consumer/internal/audit"
	"github.com/zoomprov/consumer/internal/dlq"
	"github.com/zoomprov/consumer/testenv"
)

// auditEvents returns the dlq audit events on the result stream.
func (e *env) auditEvents() []audit.CloudEvent {
	e.t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, e.topo.ResultStream)
	if err != nil {
		e.t.Fatal(err)
	}
	st := e.streamState(e.topo.ResultStream)
	var out []audit.CloudEvent
	for seq := st.FirstSeq; st.Msgs > 0 && seq <= st.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil || m.Subject != e.topo.ResultPrefix+".dlq" {
			continue
		}
		var ev audit.CloudEvent
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			e.t.Fatalf("audit event %d: %v", seq, err)
		}
		out = append(out, ev)
	}
	return out
}

// Ensure a replay and a purge that change something are each audited
// once (kind dlq, verbs replayed and purged) with the actor, the reason
// (NoReason when none is given), the counts and the dead letters; that
// one that changes nothing records nothing; and that neither runs without
// an actor.
func TestReplayPurgeAudited(t *testing.T) {
	e := newEnv(t)
	for i, email := range []string{"au1@example.com", "au2@example.com"} {
		e.sim.FailEmail(email, 1, testenv.Fault{Status: 404, Code: 4130, Message: "Group does not exist: sales."})
		e.publish(fmt.Sprintf("au-%d", i+1), "ssoCreate", userBody("ssoCreate", email))
	}
	e.publish("au-invalid", "custCreate", `{"action":"custCreate","user_info":{"email":"not-an-email","type":1}}`)
	e.waitDeadLetters(3)
	byID := map[string]dlq.Entry{}
	for _, en := range e.list(dlq.Filter{}) {
		byID[en.RequestID(e.topo)] = en
	}
	ctx := context.Background()

	if _, err := dlq.Replay(ctx, e.js, e.topo, []dlq.Entry{byID["au-1"]}, dlq.Options{}); !errors.Is(err, audit.ErrNoActor) {
		t.Errorf("Replay without an actor = %v; want ErrNoActor", err)
	}
	if _, err := dlq.Purge(ctx, e.js, e.topo, []dlq.Entry{byID["au-1"]}, dlq.PurgeOptions{Reason: "x"}); !errors.Is(err, audit.ErrNoActor) {
		t.Errorf("Purge without an actor = %v; want ErrNoActor", err)
	}
	if sum, err := dlq.Replay(ctx, e.js, e.topo, []dlq.Entry{byID["au-invalid"]}, dlq.Options{Actor: "alice"}); err != nil || len(sum.Skipped) != 1 {
		t.Errorf("Replay(invalid) = %+v, %v; want it skipped", sum, err)
	}
	if got := e.streamState(e.topo.DeadLetterStream).Msgs; got != 3 {
		t.Fatalf("%d dead letters after refused and skipped runs; want 3", got)
	}
	if evs := e.auditEvents(); len(evs) != 0 {
		t.Fatalf("audit events after runs that changed nothing: %+v; want none", evs)
	}

	if sum, err := dlq.Replay(ctx, e.js, e.topo, []dlq.Entry{byID["au-1"]}, dlq.Options{Actor: "alice"}); err != nil || sum.Replayed != 1 {
		t.Fatalf("Replay(au-1) = %+v, %v; want replayed", sum, err)
	}
	if sum, err := dlq.Purge(ctx, e.js, e.topo, []dlq.Entry{byID["au-2"], byID["au-invalid"]}, dlq.PurgeOptions{Actor: "bob", Reason: "ticket 7"}); err != nil || sum.Deleted != 2 {
		t.Fatalf("Purge = %+v, %v; want 2 deleted", sum, err)
	}
	evs := e.auditEvents()
	if len(evs) != 2 {
		t.Fatalf("%d dlq audit events; want 2: %+v", len(evs), evs)
	}
	rep, pur := evs[0], evs[1]
	// As decoded, then encoded again: keys in alphabetical order.
	refs := func(ev audit.CloudEvent) string { b, _ := json.Marshal(ev.Data["dead_letters"]); return string(b) }
	wantRep := fmt.Sprintf(`[{"request_id":"au-1","seq":%d}]`, byID["au-1"].Seq)
	if rep.Type != audit.Type("dlq", "replayed") || rep.Subject != "au-1" || rep.Data["actor"] != "alice" || rep.Data["reason"] != dlq.NoReason ||
		rep.Data["replayed"] != float64(1) || rep.Data["complete"] != true || refs(rep) != wantRep {
		t.Errorf("replay event = %+v (dead letters %s); want dlq.replayed of au-1 by alice, reason %q, replayed 1, %s", rep, refs(rep), dlq.NoReason, wantRep)
	}
	wantPur := fmt.Sprintf(`[{"request_id":"au-2","seq":%d},{"request_id":"au-invalid","seq":%d}]`, byID["au-2"].Seq, byID["au-invalid"].Seq)
	if pur.Type != audit.Type("dlq", "purged") || pur.Subject != e.topo.DeadLetterStream || pur.Data["actor"] != "bob" || pur.Data["reason"] != "ticket 7" ||
		pur.Data["deleted"] != float64(2) || refs(pur) != wantPur {
		t.Errorf("purge event = %+v (dead letters %s); want dlq.purged by bob, reason ticket 7, deleted 2, %s", pur, refs(pur), wantPur)
	}
}
