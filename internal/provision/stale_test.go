package provision_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zoomprov/consumer/internal/zoom"
	"github.com/zoomprov/consumer/testenv"
)

// Ensure a delivery that the server has meanwhile handed to another
// replica, which finished the request, makes no Zoom call: otherwise it
// would overtake the user's later requests (the chaos test saw an update
// applied again after the deactivation that followed it, once a restarted
// server redelivered a request a replica still held). The other replica's
// work is played by deleting the request from the stream while the call
// waits for its pacing; a creation is checked only when it may be stale,
// here because it waited for a whole ack wait.
func TestStaleDeliveryMakesNoCall(t *testing.T) {
	tests := []struct {
		name, action, body string
		op                 string // the zoom.Call.Op to intercept
		late               bool   // the call is due after the ack wait
		gone               bool   // the request left the stream meanwhile
		want               string // the Zoom route called, "" for none
	}{
		{name: "update, request gone", action: "update", body: `{"email":"u@example.com","user":{"first_name":"Late"}}`, op: "update user", gone: true},
		{name: "deactivate, request gone", action: "deactivate", body: `{"email":"u@example.com"}`, op: "set user status", gone: true},
		{name: "delete, request gone", action: "delete", body: `{"email":"u@example.com"}`, op: "delete user", gone: true},
		{name: "update, request still there", action: "update", body: `{"email":"u@example.com","user":{"first_name":"Late"}}`, op: "update user", want: testenv.RoutePatchUser},
		{name: "late creation, request gone", action: "ssoCreate", body: userBody("ssoCreate", "n@example.com", 1), op: "create user", late: true, gone: true},
		{name: "late creation, request still there", action: "ssoCreate", body: userBody("ssoCreate", "n@example.com", 1), op: "create user", late: true, want: testenv.RouteCreateUser},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, testenv.SimConfig{})
			h.sim.AddUser("u@example.com", 1)
			var skew atomic.Int64 // how far the service's clock runs ahead
			cfg := testConfig(3)
			cfg.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
			var intercepted atomic.Bool
			h.afterPace = func(ctx context.Context, c zoom.Call) error {
				if c.Op != tc.op || intercepted.Swap(true) {
					return nil
				}
				if tc.late {
					skew.Store(int64(cfg.AckWait))
				}
				if tc.gone {
					for _, m := range h.storedMsgs("ZOOM_USERS") {
						if err := h.stream("ZOOM_USERS").DeleteMsg(ctx, m.Sequence); err != nil {
							return err
						}
					}
				}
				return nil
			}
			id := fmt.Sprintf("stale-%d", i)
			h.publish(id, tc.action, tc.body)
			h.start(cfg)
			if tc.want != "" {
				if term := terminal(h.waitTerminal(15*time.Second, id)[id]); len(term) != 1 {
					t.Fatalf("terminal results = %d; want 1", len(term))
				}
				if n := routeCount(h.sim, tc.want); n != 1 {
					t.Errorf("%s requests = %d; want 1", tc.want, n)
				}
				return
			}
			eventually(t, 15*time.Second, func() (bool, string) {
				return strings.Contains(h.log.String(), `"outcome":"superseded"`), "no superseded outcome logged"
			})
			for _, route := range []string{testenv.RoutePatchUser, testenv.RouteUserStatus, testenv.RouteDeleteUser, testenv.RouteCreateUser} {
				if n := routeCount(h.sim, route); n != 0 {
					t.Errorf("%s requests = %d; want 0", route, n)
				}
			}
			if evs := h.events()[id]; len(evs) != 0 {
				t.Errorf("results = %d; want none (the other delivery recorded it)", len(evs))
			}
			if n := len(h.storedMsgs("ZOOM_USERS_DLQ")); n != 0 {
				t.Errorf("dead letters = %d; want 0", n)
			}
		})
	}
}

// routeCount is how many requests the simulator answered on route.
func routeCount(sim *testenv.Simulator, route string) int {
	n := 0
	for _, r := range sim.Requests() {
		if r.Route == route {
			n++
		}
	}
	return n
}
