package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/audit"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/testenv"
)

// auditEvents returns the audit events of kind on the result stream.
func auditEvents(t *testing.T, js jetstream.JetStream, kind string) []audit.CloudEvent {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, "ZOOM_USERS_RESULTS")
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
		if err != nil || m.Subject != "zoom.users.result."+kind {
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

// Ensure consumer guard status, release and reject work as documented
// against a running service: the JSON status of a tripped guard, one
// audit event per trip and decision with its facts, exit 1 when the guard
// is open, exit 2 without a reason.
func TestGuardCommands(t *testing.T) {
	ns := startNATS(t)
	sim := startSim(t, testenv.SimConfig{})
	_, js := connectJS(t, ns.URL())
	env := merge(serviceEnv(ns, sim), map[string]string{"GUARD_LIMIT": "2", "GUARD_WINDOW": "30m"})
	svc := startRun(t, env)
	defer func() {
		if t.Failed() {
			for _, l := range strings.Split(svc.stderr.String(), "\n") {
				if strings.Contains(l, `"request_id":"g-`) {
					t.Log(l)
				}
			}
		}
	}()
	cli := map[string]string{"NATS_URL": ns.URL()}
	publishOp := func(id, op, email string) {
		res := runCLI(t, 10*time.Second, cli, "", "publish", "--op", op, "--email", email, "--msg-id", id)
		if res.code != 0 {
			t.Fatalf("publish %s: %d %s", id, res.code, res.stderr)
		}
	}
	for i := range 5 {
		email := fmt.Sprintf("leaver-%d@example.com", i)
		sim.AddUser(email, 1)
		publishOp(fmt.Sprintf("g-%d", i), "deactivate", email)
	}
	var st GuardStatus
	eventually(t, 20*time.Second, func() (bool, string) {
		res := runCLI(t, 10*time.Second, cli, "", "guard", "status", "--json")
		if res.code != 0 || json.Unmarshal([]byte(res.stdout), &st) != nil {
			return false, fmt.Sprintf("guard status: %d %s %s", res.code, res.stdout, res.stderr)
		}
		return st.State == "tripped" && st.Held == 3, fmt.Sprintf("status %+v; want tripped, 3 held", st)
	})
	if st.Limit != 2 || st.Window != "30m0s" || st.Used != 2 || st.TrippedAt == nil {
		t.Errorf("status %+v; want limit 2, window 30m0s, used 2, tripped_at set", st)
	}
	text := runCLI(t, 10*time.Second, cli, "", "guard", "status")
	if text.code != 0 || !strings.Contains(text.stdout, "tripped") || !strings.Contains(text.stdout, "consumer guard release") {
		t.Errorf("guard status text = %d %q; want a table saying tripped and how to decide", text.code, text.stdout)
	}
	if res := runCLI(t, 10*time.Second, cli, "", "guard", "release"); res.code != 2 || !strings.Contains(res.stderr, "--reason") {
		t.Errorf("guard release without a reason = %d %q; want exit 2 naming --reason", res.code, res.stderr)
	}
	if res := runCLI(t, 10*time.Second, cli, "", "guard", "release", "--reason", "HR confirmed the leavers"); res.code != 0 {
		t.Fatalf("guard release = %d %s %s", res.code, res.stdout, res.stderr)
	}
	eventually(t, 20*time.Second, func() (bool, string) {
		done := 0
		for id, evs := range resultEvents(t, js) {
			if strings.HasPrefix(id, "g-") && len(terminalEvents(evs)) == 1 && terminalEvents(evs)[0].Data.Outcome == messages.OutcomeDeactivated {
				done++
			}
		}
		return done == 5, fmt.Sprintf("%d of 5 deactivated", done)
	})
	if res := runCLI(t, 10*time.Second, cli, "", "guard", "reject", "--reason", "nothing held"); res.code != 1 || !strings.Contains(res.stderr, "open") {
		t.Errorf("guard reject of an open guard = %d %q; want exit 1 saying it is open", res.code, res.stderr)
	}
	evs := auditEvents(t, js, "guard")
	if len(evs) != 2 {
		t.Fatalf("guard audit events = %d; want a trip and a release", len(evs))
	}
	trip, release := evs[0], evs[1]
	if trip.Type != "zoom.user.provisioning.guard.tripped" || trip.Data["limit"] != float64(2) || trip.Data["window"] != "30m0s" || trip.Data["used"] != float64(2) {
		t.Errorf("trip event %+v; want type guard.tripped with limit 2, window 30m0s, used 2", trip)
	}
	if release.Type != "zoom.user.provisioning.guard.released" || release.Data["actor"] != audit.DefaultActor() || release.Data["reason"] != "HR confirmed the leavers" ||
		release.Data["requests"] != float64(3) || release.Data["up_to_sequence"] == nil {
		t.Errorf("release event %+v; want type guard.released by the OS user with the reason, 3 requests, up_to_sequence", release)
	}

	// Trip it again, and reject.
	for i := 5; i < 9; i++ {
		email := fmt.Sprintf("leaver-%d@example.com", i)
		sim.AddUser(email, 1)
		publishOp(fmt.Sprintf("g-%d", i), "delete", email)
	}
	eventually(t, 20*time.Second, func() (bool, string) {
		res := runCLI(t, 10*time.Second, cli, "", "guard", "status", "--json")
		_ = json.Unmarshal([]byte(res.stdout), &st)
		return st.State == "tripped" && st.Held == 2, fmt.Sprintf("status %+v; want tripped, 2 held", st)
	})
	if res := runCLI(t, 10*time.Second, cli, "", "guard", "reject", "--reason", "the feed was wrong", "--actor", "alice"); res.code != 0 {
		t.Fatalf("guard reject = %d %s %s", res.code, res.stdout, res.stderr)
	}
	eventually(t, 20*time.Second, func() (bool, string) {
		rejected := 0
		for id, evs := range resultEvents(t, js) {
			term := terminalEvents(evs)
			if strings.HasPrefix(id, "g-") && len(term) == 1 && term[0].Data.Reason == messages.ReasonGuardRejected {
				rejected++
			}
		}
		return rejected == 2, fmt.Sprintf("%d of 2 rejected", rejected)
	})
	if evs := auditEvents(t, js, "guard"); len(evs) != 4 || evs[3].Type != "zoom.user.provisioning.guard.rejected" || evs[3].Data["actor"] != "alice" {
		t.Errorf("guard audit events %+v; want trip, release, trip, reject by alice", evs)
	}
}
