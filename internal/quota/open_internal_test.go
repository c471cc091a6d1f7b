package quota

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/zoomprov/consumer/internal/audit"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/testenv"
)

// Ensure Open opens a closed gate for every replica and records one audit
// event with actor, reason and the gate; and that it changes nothing for
// an unknown scope, a missing actor or reason, or an open gate.
func TestOpen(t *testing.T) {
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
	now := time.Now()
	closed := Gate{Scope: "create", Until: now.Add(time.Hour), ClosedBy: "replica-1", Reason: "daily limit"}
	data, _ := json.Marshal(closed)
	if _, err := kv.Put(ctx, GateKey("create"), data); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		scope, actor, reason string
		want                 error
	}{
		{"update", "op", "why", ErrScope},
		{"create", "", "why", audit.ErrNoActor},
		{"create", "op", "", audit.ErrNoReason},
		{"all", "op", "why", ErrGateOpen},
	} {
		if _, _, err := Open(ctx, js, topo, tc.scope, tc.actor, tc.reason, now); !errors.Is(err, tc.want) {
			t.Errorf("Open(%q, actor %q, reason %q) = %v; want %v", tc.scope, tc.actor, tc.reason, err, tc.want)
		}
	}
	if _, err := kv.Get(ctx, GateKey("create")); err != nil {
		t.Fatalf("the create gate after refused opens: %v; want it still closed", err)
	}
	gt, ev, err := Open(ctx, js, topo, "create", "alice", "Zoom raised the limit", now)
	if err != nil || gt.ClosedBy != "replica-1" {
		t.Fatalf("Open(create) = %+v, %v; want the gate closed by replica-1", gt, err)
	}
	if ev.Type != audit.Type("quota", "opened") || ev.Subject != "create" || ev.Data["actor"] != "alice" || ev.Data["reason"] != "Zoom raised the limit" {
		t.Errorf("audit event %+v; want quota.opened of create by alice with the reason", ev)
	}
	st, err := Read(ctx, js, topo, nil, now)
	if err != nil || len(st.Gates) != 0 {
		t.Errorf("gates after Open = %+v, %v; want none", st.Gates, err)
	}
	if _, _, err := Open(ctx, js, topo, "create", "alice", "again", now); !errors.Is(err, ErrGateOpen) {
		t.Errorf("Open of an open gate = %v; want ErrGateOpen", err)
	}
}
