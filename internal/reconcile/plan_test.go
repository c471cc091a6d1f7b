package reconcile_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/zoomprov/consumer/internal/reconcile"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/internal/zoom"
)

// Ensure a plan has one corrective request per repairable drift, in the
// drift's order, on the action's subject, with an id starting with
// reconcile- that differs for two kinds of one user; and that a drift
// without a fix, or whose recorded body the consumer would refuse, is
// skipped with why.
func TestPlan(t *testing.T) {
	topo := topology.Default()
	drift := reconcile.Compare(zoom.User{ID: "z", Email: "alice@example.com", Type: 1, Status: "inactive", FirstName: "Alice", LastName: "Liddell"},
		life(t, "alice@example.com", sso))
	drift = append(drift, *reconcile.Missing(life(t, "alice@example.com", auto)))
	drift = append(drift, reconcile.Drift{Email: "bad@example.com", Kind: reconcile.KindMissing, Expected: "active", Actual: "absent",
		Fix: &reconcile.Fix{Action: "ssoCreate", Body: json.RawMessage(`{"action":"ssoCreate","user_info":{"email":"bad@example.com","type":7}}`)}})
	cs, skipped := reconcile.Plan(topo, "run1", drift)
	if len(cs) != 2 || cs[0].Action != "activate" || cs[1].Action != "update" ||
		cs[0].Subject != "zoom.users.activate" || cs[1].Subject != "zoom.users.update" {
		t.Fatalf("Plan = %+v; want activate, then update", cs)
	}
	for _, c := range cs {
		if !strings.HasPrefix(c.ID, "reconcile-run1-"+string(c.Kind)+"-") || !reconcile.IsCorrection(c.ID) {
			t.Errorf("correction id %q; want reconcile-run1-%s-…", c.ID, c.Kind)
		}
	}
	if cs[0].ID == cs[1].ID {
		t.Errorf("two corrections of one user share the id %q", cs[0].ID)
	}
	if len(skipped) != 2 || !strings.Contains(skipped[0].Reason, "autoCreate") || !strings.Contains(skipped[1].Reason, "invalid") {
		t.Errorf("skipped = %+v; want the autoCreate and the invalid body, with why", skipped)
	}
	if a, b := reconcile.NewRunID(t0), reconcile.NewRunID(t0); a == b || !strings.HasPrefix(a, "20261201T090000Z-") {
		t.Errorf("NewRunID = %q, %q; want the time and a random suffix", a, b)
	}
}
