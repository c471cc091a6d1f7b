package provision_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/retry"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/testenv"
)

// Ensure a request stream deleted and created again, whose sequences start
// again at 1, gives requests without a Nats-Msg-Id ids of their own: each
// of the 40 requests has its result, and Zoom was asked once for each.
// Before, the second 20 got the ids of the first (ZOOM_USERS-<sequence>):
// the result stream dropped their results as duplicates, and they ended
// with none. Also, with the service running through the recreation, the
// per-user order of the new stream holds: its index starts afresh instead
// of taking the new sequences for the old, gone ones.
func TestRecreatedRequestStream(t *testing.T) {
	for _, running := range []bool{false, true} {
		t.Run(fmt.Sprintf("running=%v", running), func(t *testing.T) {
			h := newHarness(t, testenv.SimConfig{})
			r := h.start(testConfig(3))
			for i := range 20 {
				h.publish("", "ssoCreate", userBody("ssoCreate", fmt.Sprintf("first-%02d@example.com", i), 1))
			}
			waitResults(t, h, 20)
			if !running {
				if err := r.stop(t); err != nil {
					t.Fatal(err)
				}
			}
			ctx := context.Background()
			if err := h.js.DeleteStream(ctx, "ZOOM_USERS"); err != nil {
				t.Fatal(err)
			}
			if err := provisionTopology(h.js); err != nil {
				t.Fatal(err)
			}
			if !running {
				h.start(testConfig(3))
			}
			// A user's life in the new stream, at sequences the old one had
			// used: created, then renamed, then deactivated.
			h.sim.SetLatency(20 * time.Millisecond)
			for i := range 17 {
				h.publish("", "ssoCreate", userBody("ssoCreate", fmt.Sprintf("second-%02d@example.com", i), 1))
			}
			h.publish("", "ssoCreate", userBody("ssoCreate", "life@example.com", 1))
			h.publish("", "update", `{"email":"life@example.com","user":{"first_name":"Renamed"}}`)
			h.publish("", "deactivate", `{"email":"life@example.com"}`)
			evs := waitResults(t, h, 40)
			ids := map[string]bool{}
			for id, es := range evs {
				if len(terminal(es)) != 1 {
					t.Errorf("%s: %d terminal results; want 1", id, len(terminal(es)))
				}
				ids[id] = true
			}
			if len(ids) != 40 {
				t.Errorf("distinct request ids = %d; want 40", len(ids))
			}
			for i := range 20 {
				for _, email := range []string{fmt.Sprintf("first-%02d@example.com", i), fmt.Sprintf("second-%02d@example.com", min(i, 16))} {
					if n := len(h.sim.History(email)); n != 1 {
						t.Errorf("Zoom calls for %s = %d; want 1", email, n)
					}
				}
			}
			var got []string
			for _, c := range h.sim.History("life@example.com") {
				got = append(got, c.Method)
			}
			if strings.Join(got, ",") != "POST,PATCH,PUT" {
				t.Errorf("Zoom performed for life@example.com: %v; want POST, PATCH, PUT", got)
			}
		})
	}
}

// waitResults waits until n requests have a terminal result, and returns
// the events by request id.
func waitResults(t *testing.T, h *harness, n int) map[string][]messages.Event {
	t.Helper()
	var evs map[string][]messages.Event
	eventually(t, 30*time.Second, func() (bool, string) {
		evs = h.events()
		done := 0
		for _, es := range evs {
			if len(terminal(es)) > 0 {
				done++
			}
		}
		return done >= n, fmt.Sprintf("%d of %d requests have a result", done, n)
	})
	for id := range evs {
		if !strings.HasPrefix(id, topology.Default().RequestStream+"-") {
			t.Errorf("request id %q; want the stream's fallback id", id)
		}
	}
	return evs
}

// Ensure a dispatcher whose consumer an operator deleted while it was not
// fetching (the account paused here) binds again. Its next pull request
// finds nobody to answer it ("no responders", not "consumer deleted"),
// the same answer as while a consumer has no leader, so the dispatcher
// must look whether the consumer is gone. Before, it asked again forever:
// the update below never ran.
func TestConsumerDeletedBetweenFetches(t *testing.T) {
	h := newHarness(t, testenv.SimConfig{})
	h.sim.AddUser("kept@example.com", 1)
	h.sim.RejectCredentials(true)
	h.watchCredentials = true
	cfg := testConfig(3)
	// A pause on refused credentials that only a token check ends.
	cfg.Policy.Pause = retry.Schedule{Initial: time.Hour, Max: time.Hour}
	cfg.CredentialsCheck = 200 * time.Millisecond
	r := h.start(cfg)
	h.publish("trigger", "ssoCreate", userBody("ssoCreate", "trigger@example.com", 1))
	eventually(t, 10*time.Second, func() (bool, string) { return r.svc.Status().Paused, "service not paused" })
	// The update dispatcher's last long poll ends within idleWait; after
	// it the dispatcher waits for the pause to end, asking nothing.
	eventually(t, 15*time.Second, func() (bool, string) {
		n := h.consumerInfo("update").NumWaiting
		return n == 0, fmt.Sprintf("%d pull requests waiting on the update consumer", n)
	})
	filter := h.consumerInfo("update").Config.FilterSubject
	if err := h.js.DeleteConsumer(context.Background(), "ZOOM_USERS", "zoom-provisioner-update"); err != nil {
		t.Fatal(err)
	}
	h.publish("after-delete", "update", `{"email":"kept@example.com","user":{"first_name":"Kept"}}`)
	h.sim.RejectCredentials(false)
	// The trigger itself waits out its hand-back's delay (the hour).
	evs := h.waitTerminal(30*time.Second, "after-delete")
	if term := terminal(evs["after-delete"]); len(term) != 1 || term[0].Data.Outcome != messages.OutcomeUpdated {
		t.Errorf("after-delete terminal = %v; want one updated", term)
	}
	if got := h.consumerInfo("update").Config.FilterSubject; got != filter {
		t.Errorf("recreated update consumer filters %q; want %q", got, filter)
	}
}

// Ensure a dispatcher whose consumer was deleted with its stream and
// created again while it waited out a pause follows the new stream: its
// next fetch succeeds on the new consumer, with no error to tell it, and
// only the delivery numbers going back show the recreation. The new
// requests (no Nats-Msg-Id, at sequences the old stream had used) get
// ids of their own. Before, they took the old stream's ids and their
// results were dropped as duplicates.
func TestConsumerRecreatedBetweenFetches(t *testing.T) {
	h := newHarness(t, testenv.SimConfig{})
	h.watchCredentials = true
	cfg := testConfig(3)
	cfg.Policy.Pause = retry.Schedule{Initial: time.Hour, Max: time.Hour}
	cfg.CredentialsCheck = 200 * time.Millisecond
	r := h.start(cfg)
	for i := range 3 {
		h.publish("", "ssoCreate", userBody("ssoCreate", fmt.Sprintf("old-%d@example.com", i), 1))
	}
	waitResults(t, h, 3)
	h.sim.RejectCredentials(true)
	h.sim.ExpireTokens()
	h.publish("", "ssoCreate", userBody("ssoCreate", "trigger@example.com", 1))
	eventually(t, 10*time.Second, func() (bool, string) { return r.svc.Status().Paused, "service not paused" })
	eventually(t, 15*time.Second, func() (bool, string) {
		n := h.consumerInfo("ssoCreate").NumWaiting
		return n == 0, fmt.Sprintf("%d pull requests waiting on the ssoCreate consumer", n)
	})
	ctx := context.Background()
	if err := h.js.DeleteStream(ctx, "ZOOM_USERS"); err != nil {
		t.Fatal(err)
	}
	if err := provisionTopology(h.js); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		h.publish("", "ssoCreate", userBody("ssoCreate", fmt.Sprintf("new-%d@example.com", i), 1))
	}
	h.sim.RejectCredentials(false)
	evs := waitResults(t, h, 6)
	for i := range 3 {
		for _, email := range []string{fmt.Sprintf("old-%d@example.com", i), fmt.Sprintf("new-%d@example.com", i)} {
			if n := len(h.sim.History(email)); n != 1 {
				t.Errorf("Zoom calls for %s = %d; want 1", email, n)
			}
		}
	}
	if len(evs) != 6 {
		t.Errorf("request ids with events = %d; want 6", len(evs))
	}
	for id, es := range evs {
		if len(terminal(es)) != 1 {
			t.Errorf("%s: %d terminal results; want 1", id, len(terminal(es)))
		}
	}
}
