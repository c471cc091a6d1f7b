package provision_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/quota"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/testenv"
)

// Ensure requests that wait for an earlier request about their user do not
// stall anyone else, whatever MAX_ACK_PENDING is: with 50 ack-pending
// slots per consumer, 100 invitations held by the daily quota and 100
// updates of those users waiting behind them, updates of other users and
// other creations still go through at once. Before parking, the waiting
// updates held every slot of the update consumer until the reset, and
// none of the other users' updates was delivered. After the reset, each
// waiting user's invitation and update reach Zoom in that order.
func TestParkedRequestsDoNotStallOthers(t *testing.T) {
	const window = 30 * time.Second
	base := time.Now()
	offset := base.Truncate(window).Add(window).Sub(base)
	clock := func() time.Time { return time.Now().Add(offset) }
	resetAt := base.Add(window)
	h := newHarness(t, testenv.SimConfig{DailyCreateLimit: 1, DailyWindow: window, Now: clock})
	const held, others = 100, 30
	for i := range others {
		h.sim.AddUser(fmt.Sprintf("existing-%02d@example.com", i), 1)
	}
	cfg := testConfig(3)
	cfg.Now = clock
	cfg.MaxAckPending = 50
	cfg.Pacer = quota.NewPacer(0, quota.NewGates(clock))
	h.start(cfg)
	if got := h.consumerInfo("update").Config.MaxAckPending; got != 50 {
		t.Fatalf("update consumer MaxAckPending = %d; want 50", got)
	}
	// The day's one invitation, then the ones the quota holds.
	h.publish("first", "create", `{"action":"create","user_info":{"email":"first@example.com","type":1}}`)
	h.waitTerminal(10*time.Second, "first")
	for i := range held {
		h.publish(fmt.Sprintf("invite-%03d", i), "create", fmt.Sprintf(`{"action":"create","user_info":{"email":"held-%03d@example.com","type":1}}`, i))
	}
	eventually(t, 10*time.Second, func() (bool, string) {
		_, closed := cfg.Pacer.Gates().Closed("create")
		return closed, "the create gate did not close"
	})
	for i := range held {
		h.publish(fmt.Sprintf("licence-%03d", i), "update", fmt.Sprintf(`{"email":"held-%03d@example.com","user":{"type":2}}`, i))
	}
	var ids []string
	for i := range others {
		ids = append(ids, fmt.Sprintf("other-update-%02d", i), fmt.Sprintf("other-create-%02d", i))
		h.publish(ids[len(ids)-2], "update", fmt.Sprintf(`{"email":"existing-%02d@example.com","user":{"job_title":"Moved"}}`, i))
		h.publish(ids[len(ids)-1], "ssoCreate", userBody("ssoCreate", fmt.Sprintf("new-%02d@example.com", i), 1))
	}
	start := time.Now()
	evs := h.waitTerminal(15*time.Second, ids...)
	took := time.Since(start)
	if time.Now().After(resetAt) {
		t.Fatalf("the other users' requests finished only after the reset; want them done while the gate is closed")
	}
	for _, id := range ids {
		if term := terminal(evs[id]); len(term) != 1 || term[0].Data.Outcome == messages.OutcomeFailed {
			t.Errorf("%s: %+v; want done", id, term)
		}
	}
	for i := range held {
		if term := terminal(evs[fmt.Sprintf("licence-%03d", i)]); len(term) != 0 {
			t.Fatalf("licence-%03d ended before its user's invitation: %+v", i, term)
		}
	}
	if info := h.consumerInfo("update"); info.NumAckPending >= 50 {
		t.Errorf("update consumer ack-pending = %d; want the waiting updates parked off it", info.NumAckPending)
	}
	parked := h.consumerInfo("parked")
	if n := parked.NumAckPending + int(parked.NumPending); n != held {
		t.Errorf("parked copies = %d; want %d", n, held)
	}
	t.Logf("%d other users' requests done in %v while %d updates waited parked", len(ids), took.Round(time.Millisecond), held)

	// After the reset every held user gets the invitation, then the
	// licence, and each of the requests its one result. The new day's
	// quota is larger.
	h.sim.SetDailyCreateLimit(1000)
	var waiting []string
	for i := range held {
		waiting = append(waiting, fmt.Sprintf("invite-%03d", i), fmt.Sprintf("licence-%03d", i))
	}
	evs = h.waitTerminal(window+60*time.Second, waiting...)
	for i := range held {
		email := fmt.Sprintf("held-%03d@example.com", i)
		var got []string
		for _, c := range h.sim.History(email) {
			got = append(got, c.Method)
		}
		if strings.Join(got, ",") != "POST,PATCH" {
			t.Errorf("Zoom performed for %s: %v; want POST then PATCH", email, got)
		}
		if term := terminal(evs[fmt.Sprintf("licence-%03d", i)]); len(term) != 1 || term[0].Data.Outcome != messages.OutcomeUpdated ||
			term[0].Data.StreamSequence == 0 || term[0].Data.RequestID != fmt.Sprintf("licence-%03d", i) {
			t.Errorf("licence-%03d: %+v; want one updated result with the original request id", i, term)
		}
	}
	if n := h.streamMsgCount("ZOOM_USERS"); n != 0 {
		t.Errorf("requests left in the stream = %d; want 0 (the originals and the copies gone)", n)
	}
}

// Ensure two parked copies of one request (two deliveries of the original
// parked it at the same time) end in one Zoom call and one result: the
// earlier copy carries the request, the later one is dropped. Before, each
// copy waited for the other for ever.
func TestTwoParkedCopies(t *testing.T) {
	h := newHarness(t, testenv.SimConfig{})
	h.sim.AddUser("twice@example.com", 1)
	h.publish("twice", "update", `{"email":"twice@example.com","user":{"job_title":"Once"}}`)
	orig := h.storedMsgs("ZOOM_USERS")[0]
	for range 2 {
		m := nats.NewMsg(topology.Default().ParkedSubject("update"))
		m.Data = orig.Data
		m.Header.Set(messages.HeaderPosition, strconv.FormatUint(orig.Sequence, 10))
		m.Header.Set(messages.HeaderParkedRequestID, "twice")
		m.Header.Set(messages.HeaderParkedSubject, orig.Subject)
		if _, err := h.js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.stream("ZOOM_USERS").DeleteMsg(context.Background(), orig.Sequence); err != nil {
		t.Fatal(err)
	}
	h.start(testConfig(3))
	evs := h.waitTerminal(15*time.Second, "twice")
	if term := terminal(evs["twice"]); len(term) != 1 || term[0].Data.Outcome != messages.OutcomeUpdated {
		t.Errorf("results = %+v; want one updated", term)
	}
	eventually(t, 10*time.Second, func() (bool, string) {
		n := h.streamMsgCount("ZOOM_USERS")
		return n == 0, fmt.Sprintf("%d messages left in the request stream", n)
	})
	if n := len(h.sim.History("twice@example.com")); n != 1 {
		t.Errorf("Zoom calls = %d; want 1", n)
	}
}
