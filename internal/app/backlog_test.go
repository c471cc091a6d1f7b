package app

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/metrics"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/testenv"
)

// backlogEnv is an embedded JetStream server with the request stream and
// the consumers of create, ssoCreate and update, plus the consumer of
// parked copies (its subject added to the stream, as the parked-copies
// change of the topology does).
func backlogEnv(t *testing.T) (jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	ns, err := testenv.StartNATS(testenv.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	topo := topology.Default()
	if _, err := topology.Reconcile(ctx, js, topo, topology.Options{Actions: []string{"create", "ssoCreate", "update"}, AckWait: time.Minute, MaxAckPending: 1000}); err != nil {
		t.Fatalf("provision: %v", err)
	}
	cfg := topo.RequestStreamConfig()
	if !slices.Contains(cfg.Subjects, "zoom.users.parked.>") {
		cfg.Subjects = append(cfg.Subjects, "zoom.users.parked.>")
	}
	s, err := js.UpdateStream(ctx, cfg)
	if err != nil {
		t.Fatalf("add the parked subject: %v", err)
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, topo.RequestStream, jetstream.ConsumerConfig{
		Durable: topo.ConsumerName(metrics.ConsumerParked), FilterSubject: "zoom.users.parked.>",
		AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: -1, MaxDeliver: -1,
	}); err != nil {
		t.Fatalf("parked consumer: %v", err)
	}
	return js, s
}

// publishAt publishes one message and returns the time the stream
// stored it.
func publishAt(t *testing.T, js jetstream.JetStream, s jetstream.Stream, subject string) time.Time {
	t.Helper()
	ack, err := js.Publish(context.Background(), subject, []byte(`{}`))
	if err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
	m, err := s.GetMsg(context.Background(), ack.Sequence)
	if err != nil {
		t.Fatalf("get %d: %v", ack.Sequence, err)
	}
	return m.Time
}

// Ensure the backlog reader reports, per consumer, pending plus ack
// pending and the stored time of the oldest request not settled (also
// behind other subjects' messages, after an ack, on the parked consumer's
// wildcard filter), nothing waiting as zero, and leaves out consumers that
// do not exist.
func TestBacklogReader(t *testing.T) {
	js, s := backlogEnv(t)
	ctx := context.Background()
	topo := topology.Default()

	publishAt(t, js, s, "zoom.users.create.ssoCreate")
	first := publishAt(t, js, s, "zoom.users.create.create")
	publishAt(t, js, s, "zoom.users.create.ssoCreate")
	second := publishAt(t, js, s, "zoom.users.create.create")
	publishAt(t, js, s, "zoom.users.create.create")
	parked := publishAt(t, js, s, "zoom.users.parked.update")

	// One create request delivered and not settled: still the oldest.
	c, err := js.Consumer(ctx, topo.RequestStream, topo.ConsumerName("create"))
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var inHand jetstream.Msg
	for m := range batch.Messages() {
		inHand = m
	}
	if inHand == nil {
		t.Fatal("fetched no create request")
	}

	read := backlogReader(js, topo, backlogConsumers([]string{"create", "ssoCreate", "update", "activate"}))
	byAction := func() map[string]metrics.Backlog {
		t.Helper()
		got, err := read(ctx)
		if err != nil {
			t.Fatalf("read backlog: %v", err)
		}
		out := map[string]metrics.Backlog{}
		for _, b := range got {
			out[b.Action] = b
		}
		return out
	}
	got := byAction()
	for _, want := range []metrics.Backlog{
		{Action: "create", Requests: 3, Oldest: first},
		{Action: "ssoCreate", Requests: 2},
		{Action: "update", Requests: 0},
		{Action: metrics.ConsumerParked, Requests: 1, Oldest: parked},
	} {
		b, ok := got[want.Action]
		if want.Action == "ssoCreate" {
			want.Oldest = b.Oldest // checked below: the first ssoCreate
		}
		if !ok || b.Requests != want.Requests || !b.Oldest.Equal(want.Oldest) {
			t.Errorf("backlog of %s = %+v (present %v); want %+v", want.Action, b, ok, want)
		}
	}
	if b := got["ssoCreate"]; b.Oldest.IsZero() || !b.Oldest.Before(first) {
		t.Errorf("oldest ssoCreate = %v; want the first message, stored before %v", b.Oldest, first)
	}
	if _, ok := got["activate"]; ok {
		t.Errorf("backlog reports activate, whose consumer does not exist; want it left out")
	}

	if err := inHand.DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}
	if b := byAction()["create"]; b.Requests != 2 || !b.Oldest.Equal(second) {
		t.Errorf("backlog of create after the oldest was acked = %+v; want 2 requests, the oldest stored %v", b, second)
	}
}

// Ensure the app's wiring reports the backlog and the oldest age in
// /metrics, read from JetStream at scrape time.
func TestBacklogMetrics(t *testing.T) {
	js, s := backlogEnv(t)
	stored := publishAt(t, js, s, "zoom.users.update")
	m := metrics.New()
	cfg := Config{Actions: []string{"create", "update"}, RequestStream: "ZOOM_USERS", RequestPrefix: "zoom.users.create",
		ResultStream: "ZOOM_USERS_RESULTS", ResultPrefix: "zoom.users.result", DeadLetterStream: "ZOOM_USERS_DLQ",
		DeadLetterPrefix: "zoom.users.dlq", ConsumerPrefix: "zoom-provisioner"}
	observeBacklog(m, js, cfg)
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, series := range f.GetMetric() {
			for _, l := range series.GetLabel() {
				if l.GetName() == "action" {
					got[f.GetName()+"/"+l.GetValue()] = series.GetGauge().GetValue()
				}
			}
		}
	}
	age := time.Since(stored).Seconds()
	for key, want := range map[string]float64{
		"zoomprov_backlog_requests/update":           1,
		"zoomprov_backlog_requests/create":           0,
		"zoomprov_backlog_requests/parked":           0,
		"zoomprov_backlog_oldest_age_seconds/create": 0,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v); want %v", key, v, ok, want)
		}
	}
	if v := got["zoomprov_backlog_oldest_age_seconds/update"]; v <= 0 || v > age+1 {
		t.Errorf("zoomprov_backlog_oldest_age_seconds{action=update} = %v; want the update's age, about %.3f", v, age)
	}
}
