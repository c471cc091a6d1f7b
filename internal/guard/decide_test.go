package guard

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/audit"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/testenv"
)

// auditOf returns the audit events of kind on the result stream.
func auditOf(t *testing.T, js jetstream.JetStream, topo topology.Topology, kind string) []audit.CloudEvent {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, topo.ResultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.CloudEvent
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil || m.Subject != topo.ResultPrefix+"."+kind {
			continue
		}
		var ev audit.CloudEvent
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatalf("audit event %d: %v", seq, err)
		}
		out = append(out, ev)
	}
	return out
}

// Ensure Release and Reject decide on a tripped guard, record one audit
// event each with the actor, reason and facts, refuse an open guard
// (ErrOpen) and a decision without actor or reason, changing nothing.
func TestReleaseReject(t *testing.T) {
	js := testenv.StartJetStream(t)
	ctx := context.Background()
	topo := topology.Default()
	if _, err := topology.Reconcile(ctx, js, topo, topology.Options{Actions: topology.Actions(), AckWait: time.Minute, MaxAckPending: 100}); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, topo.QuotaBucket)
	if err != nil {
		t.Fatal(err)
	}
	st := Store{KV: kv}
	trip := func() {
		t.Helper()
		for i := range 3 {
			if _, _, _, _, err := st.Take(ctx, 2, time.Hour, time.Now(), "r", "i", uint64(i+1)); err != nil {
				t.Fatal(err)
			}
		}
		if s, err := Load(ctx, js, topo); err != nil || !s.Tripped {
			t.Fatalf("Load = %+v, %v; want tripped", s, err)
		}
	}
	trip()
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ actor, reason string }{{"", "why"}, {"op", " "}} {
		if _, err := Release(ctx, js, topo, tc.actor, tc.reason, now); !errors.Is(err, audit.ErrNoActor) && !errors.Is(err, audit.ErrNoReason) {
			t.Errorf("Release(actor %q, reason %q) = %v; want ErrNoActor or ErrNoReason", tc.actor, tc.reason, err)
		}
	}
	if s, _ := Load(ctx, js, topo); !s.Tripped {
		t.Fatal("a refused Release opened the guard")
	}
	res, err := Release(ctx, js, topo, "alice", "HR confirmed", now)
	if err != nil || res.Verb != "released" || !res.Before.Tripped {
		t.Fatalf("Release = %+v, %v; want released from a tripped guard", res, err)
	}
	if s, _ := Load(ctx, js, topo); s.Tripped || s.Decision == nil || s.Decision.Actor != "alice" {
		t.Errorf("after Release the guard is %+v; want open, decided by alice", s)
	}
	if _, err := Release(ctx, js, topo, "alice", "again", now); !errors.Is(err, ErrOpen) {
		t.Errorf("Release of an open guard = %v; want ErrOpen", err)
	}
	trip()
	if res, err := Reject(ctx, js, topo, "bob", "feed broken", now); err != nil || res.Verb != "rejected" {
		t.Fatalf("Reject = %+v, %v; want rejected", res, err)
	}
	evs := auditOf(t, js, topo, "guard")
	if len(evs) != 2 {
		t.Fatalf("%d guard audit events; want 2 (release, reject): %+v", len(evs), evs)
	}
	for i, want := range []struct{ typ, actor, reason string }{
		{audit.Type("guard", "released"), "alice", "HR confirmed"},
		{audit.Type("guard", "rejected"), "bob", "feed broken"},
	} {
		ev := evs[i]
		if ev.Type != want.typ || ev.Data["actor"] != want.actor || ev.Data["reason"] != want.reason || ev.Data["limit"] != float64(2) {
			t.Errorf("audit event %d = %+v; want %s by %s (%s), limit 2", i, ev, want.typ, want.actor, want.reason)
		}
	}
}
