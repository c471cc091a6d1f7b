package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/provision"
	"github.com/zoomprov/consumer/testenv"
)

// Names of the benchmark's streams. They differ from the contract's so
// that -nats-url can point at a server that also carries real traffic: only
// BENCH_* streams and bench_* buckets are ever deleted.
const (
	ceilStream        = "BENCH_CEIL"
	ceilPrefix        = "bench.ceil"
	ceilConsumer      = "bench-ceil"
	ceilResultStream  = "BENCH_CEIL_RESULTS"
	ceilResultPrefix  = "bench.ceilres"
	naiveConsumerName = "bench-naive"
	ackWait           = 30 * time.Second // ACK_WAIT's default
	maxAckPending     = 1000             // MAX_ACK_PENDING's default
)

// benchTopology is the contract's topology under BENCH_/bench names.
func benchTopology() provision.Topology {
	t := provision.DefaultTopology()
	t.RequestStream = "BENCH_ZOOM_USERS"
	t.RequestPrefix = "bench.zoom.users.create"
	t.ResultStream = "BENCH_ZOOM_USERS_RESULTS"
	t.ResultPrefix = "bench.zoom.users.result"
	t.DeadLetterStream = "BENCH_ZOOM_USERS_DLQ"
	t.DeadLetterPrefix = "bench.zoom.users.dlq"
	t.ConsumerPrefix = "bench-provisioner"
	t.AttemptsBucket = "bench_zoom_attempts"
	t.QuotaBucket = "bench_zoom_quota"
	return t
}

// env is the world around one child: the JetStream server, the Zoom
// simulator, and the connection through which requests are published and
// results read.
type env struct {
	ns  *testenv.NATS // nil with an external server
	url string
	nc  *nats.Conn
	js  jetstream.JetStream
	sim *testenv.Simulator
}

func startEnv(ctx context.Context, sc scenario, natsURL string) (*env, error) {
	e := &env{url: natsURL}
	if natsURL == "" {
		ns, err := testenv.StartNATS(testenv.NATSOptions{MaxStore: 4 << 30})
		if err != nil {
			return nil, err
		}
		e.ns, e.url = ns, ns.URL()
	}
	nc, err := nats.Connect(e.url, nats.Name("bench-env"))
	if err != nil {
		e.close()
		return nil, fmt.Errorf("connect to %s: %w", e.url, err)
	}
	e.nc = nc
	if e.js, err = jetstream.New(nc); err != nil {
		e.close()
		return nil, err
	}
	if err := e.reset(ctx); err != nil {
		e.close()
		return nil, err
	}
	// Keep the simulator's request log tiny: it would otherwise hold every
	// body, which is the parent's memory, not the child's, but noise.
	e.sim = testenv.NewSimulator(testenv.SimConfig{Latency: sc.Latency, RatePerSecond: sc.Rate, MaxRecordedRequests: 1})
	return e, nil
}

// reset deletes every BENCH_* stream and bench_* bucket, for an external
// server that ran the benchmark before.
func (e *env) reset(ctx context.Context) error {
	t := benchTopology()
	for _, s := range []string{ceilStream, ceilResultStream, t.RequestStream, t.ResultStream, t.DeadLetterStream, "KV_" + t.AttemptsBucket, "KV_" + t.QuotaBucket} {
		if err := e.js.DeleteStream(ctx, s); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("delete stream %s: %w", s, err)
		}
	}
	return nil
}

func (e *env) close() {
	if e.sim != nil {
		e.sim.Close()
	}
	if e.nc != nil {
		if e.ns == nil {
			_ = e.reset(context.Background())
		}
		e.nc.Close()
	}
	if e.ns != nil {
		e.ns.Shutdown()
	}
}

// setup creates what kind needs.
func (e *env) setup(ctx context.Context, kind string) error {
	t := benchTopology()
	switch kind {
	case "consume":
		sc := t.StreamConfigs()[0] // the request stream's settings
		sc.Name, sc.Description, sc.Subjects = ceilStream, "bench: consume ceiling", []string{ceilPrefix + ".>"}
		if _, err := e.js.CreateStream(ctx, sc); err != nil {
			return err
		}
		_, err := e.js.CreateConsumer(ctx, ceilStream, jetstream.ConsumerConfig{
			Durable: ceilConsumer, AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait, MaxAckPending: maxAckPending, MaxDeliver: -1,
		})
		return err
	case "publish-sync", "publish-sync-conc", "publish-async":
		sc := t.StreamConfigs()[1] // the result stream's settings
		sc.Name, sc.Description, sc.Subjects = ceilResultStream, "bench: publish ceiling", []string{ceilResultPrefix + ".>"}
		_, err := e.js.CreateStream(ctx, sc)
		return err
	case "naive":
		for _, sc := range t.StreamConfigs() {
			if _, err := e.js.CreateStream(ctx, sc); err != nil {
				return err
			}
		}
		_, err := e.js.CreateConsumer(ctx, t.RequestStream, jetstream.ConsumerConfig{
			Durable: naiveConsumerName, FilterSubject: t.RequestPrefix + ".>", AckPolicy: jetstream.AckExplicitPolicy,
			AckWait: ackWait, MaxAckPending: maxAckPending, MaxDeliver: -1,
		})
		return err
	case "service":
		return provision.Provision(ctx, e.js, t, messages.Actions, ackWait, maxAckPending)
	}
	return nil
}

// requestBody is request i of a run: the four actions in turn, each body
// shaped like a real HRIS request.
func requestBody(prefix string, i int) (action string, body []byte) {
	action = string(messages.Actions[i%len(messages.Actions)])
	email := prefix + strconv.Itoa(i) + "@bench.example.com"
	pw := ""
	if action == string(messages.ActionAutoCreate) {
		pw = `,"password":"Bench-Passw0rd-` + strconv.Itoa(i) + `"`
	}
	body = []byte(`{"action":"` + action + `","user_info":{"email":"` + email + `","type":1,"first_name":"Bench","last_name":"User ` +
		strconv.Itoa(i) + `","display_name":"Bench User ` + strconv.Itoa(i) + `"` + pw + `}}`)
	return action, body
}

// queue publishes n requests (asynchronously, every ack awaited) before
// the child starts, so the consumer finds a backlog of n.
func (e *env) queue(ctx context.Context, subjectPrefix string, n int) error {
	for i := range n {
		action, body := requestBody("b", i)
		m := nats.NewMsg(subjectPrefix + "." + action)
		m.Data = body
		if _, err := e.js.PublishMsgAsync(m, jetstream.WithMsgID("b-"+strconv.Itoa(i))); err != nil {
			return fmt.Errorf("queue request %d: %w", i, err)
		}
	}
	select {
	case <-e.js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		return errors.New("queueing did not complete within 2 minutes")
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// watcher reads the result stream as results arrive: it counts requests
// with a terminal result and lets latency probes wait for theirs.
type watcher struct {
	cc jetstream.ConsumeContext

	mu       sync.Mutex
	gap      time.Duration // longest wait between two terminal results
	gapID    string        // the request whose result ended it
	terminal map[string]bool
	outcomes map[string]int
	last     time.Time
	want     int
	done     chan struct{}
	waiters  map[string]chan time.Time
}

func (e *env) watch(ctx context.Context, stream string, want int) (*watcher, error) {
	w := &watcher{terminal: map[string]bool{}, outcomes: map[string]int{}, want: want, done: make(chan struct{}), waiters: map[string]chan time.Time{}}
	cons, err := e.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	w.cc, err = cons.Consume(w.onResult)
	if err != nil {
		return nil, err
	}
	return w, nil
}

func (w *watcher) onResult(m jetstream.Msg) {
	now := time.Now()
	outcome := m.Subject()[strings.LastIndexByte(m.Subject(), '.')+1:]
	id, terminal := strings.CutSuffix(m.Headers().Get(jetstream.MsgIDHeader), ":result")
	w.mu.Lock()
	defer w.mu.Unlock()
	w.outcomes[outcome]++
	if !terminal || w.terminal[id] {
		return
	}
	w.terminal[id] = true
	if !w.last.IsZero() && now.Sub(w.last) > w.gap {
		w.gap, w.gapID = now.Sub(w.last), id
	}
	w.last = now
	if ch, ok := w.waiters[id]; ok {
		ch <- now
		delete(w.waiters, id)
	}
	if len(w.terminal) == w.want {
		close(w.done)
	}
}

func (w *watcher) stop() { w.cc.Stop() }

// wait returns a channel that receives when id's terminal result arrives.
func (w *watcher) wait(id string) <-chan time.Time {
	ch := make(chan time.Time, 1)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.waiters[id] = ch
	return ch
}

func (w *watcher) snapshot() (terminal int, outcomes map[string]int, last time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]int, len(w.outcomes))
	for k, v := range w.outcomes {
		out[k] = v
	}
	return len(w.terminal), out, w.last
}

// probe measures request-to-result latency one request at a time: publish
// one request, wait for its result, and so on.
func (e *env) probe(ctx context.Context, w *watcher, subjectPrefix string, n int) ([]time.Duration, error) {
	lat := make([]time.Duration, 0, n)
	for i := range n {
		action, body := requestBody("p", i)
		id := "p-" + strconv.Itoa(i)
		m := nats.NewMsg(subjectPrefix + "." + action)
		m.Data = body
		got := w.wait(id)
		start := time.Now()
		if _, err := e.js.PublishMsg(ctx, m, jetstream.WithMsgID(id)); err != nil {
			return lat, fmt.Errorf("probe %d: %w", i, err)
		}
		select {
		case at := <-got:
			lat = append(lat, at.Sub(start))
		case <-time.After(time.Minute):
			return lat, fmt.Errorf("probe %d: no result within a minute", i)
		case <-ctx.Done():
			return lat, ctx.Err()
		}
	}
	return lat, nil
}
