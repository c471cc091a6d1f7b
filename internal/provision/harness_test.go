package provision_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/provision"
	"github.com/zoomprov/consumer/internal/quota"
	"github.com/zoomprov/consumer/internal/retry"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/internal/zoom"
	"github.com/zoomprov/consumer/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// harness is one embedded JetStream server, one Zoom simulator and a
// provisioning service between them.
type harness struct {
	t   testing.TB
	ns  natsServer
	sim *testenv.Simulator
	nc  *nats.Conn
	js  jetstream.JetStream
	log *syncBuffer

	// wrapZoom, if set, wraps the Zoom client of services started next
	// (to inject a fault the simulator cannot produce, such as a panic).
	wrapZoom func(*zoom.Client) provision.Zoom
	// watchCredentials gives the services started the Zoom client as
	// their Credentials, so they check the credentials as in production.
	watchCredentials bool
	// afterPace, if set, runs in services started next after each wait
	// for pacing (to act just before a call leaves).
	afterPace func(context.Context, zoom.Call) error
	// nextURL, if set, gives the NATS URL list each service connects to
	// (seeds in another order for each, as two pods of one Deployment
	// would have them after DNS).
	nextURL func() string

	// storeDir is the server's store ("" for a cluster); passwords are
	// those of every request published, never to be found in the
	// dead-letter stream.
	storeDir  string
	passwords []string

	mu    sync.Mutex
	runs  []*serviceRun
	evs   map[string][]messages.Event // result events read so far
	evSeq uint64                      // last result sequence read
}

// natsServer is the embedded server, or a nats-server process when
// NATS_SERVER_BIN names one (e.g. Debian's 2.9 package, to check the
// service on a server without the consumer pause API).
type natsServer interface {
	URL() string
	Restart() error
	Shutdown()
}

// serviceRun is one running service with its own NATS connection, so a
// test can "crash" it by closing that connection.
type serviceRun struct {
	svc    *provision.Service
	nc     *nats.Conn
	closed chan struct{}
	zc     *zoom.Client
	cancel context.CancelFunc
	done   chan error
}

func newHarness(t testing.TB, simCfg testenv.SimConfig) *harness {
	t.Helper()
	var ns natsServer
	var err error
	dir := t.TempDir()
	if bin := os.Getenv("NATS_SERVER_BIN"); bin != "" {
		ns, err = testenv.StartNATSProcess(bin, dir)
	} else {
		ns, err = testenv.StartNATS(testenv.NATSOptions{StoreDir: dir})
	}
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	h := newHarnessOn(t, ns, simCfg)
	h.storeDir = dir
	return h
}

// newHarnessOn is newHarness on a server (or cluster) of the caller's.
func newHarnessOn(t testing.TB, ns natsServer, simCfg testenv.SimConfig) *harness {
	t.Helper()
	sim := testenv.NewSimulator(simCfg)
	nc, err := nats.Connect(ns.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	h := &harness{t: t, ns: ns, sim: sim, nc: nc, js: js, log: &syncBuffer{}}
	t.Cleanup(func() {
		h.stopAll()
		h.checkNoPasswordAtRest()
		nc.Close()
		sim.Close()
		ns.Shutdown()
		if t.Failed() && os.Getenv("SHOW_LOGS") != "" {
			t.Logf("service log:\n%s", h.log.String())
		}
	})
	// Provision up front so tests can publish before the service starts.
	if err := provisionTopology(js); err != nil {
		t.Fatalf("provision: %v", err)
	}
	return h
}

// allActions are the actions of the contract, as the service names them.
var allActions = func() []string {
	var out []string
	for _, a := range messages.Actions {
		out = append(out, string(a))
	}
	return out
}()

// provisionTopology creates the contract's streams, buckets and consumers
// as the service would (ack wait 2 s).
func provisionTopology(js jetstream.JetStream) error {
	_, err := topology.Reconcile(context.Background(), js, topology.Default(),
		topology.Options{Actions: allActions, AckWait: 2 * time.Second, MaxAckPending: 1000})
	return err
}

// testConfig is a service configuration with delays cut to milliseconds.
func testConfig(maxAttempts int) provision.Config {
	p := retry.DefaultPolicy(maxAttempts)
	p.InProcess = retry.Schedule{Initial: time.Millisecond, Max: 5 * time.Millisecond}
	p.Redelivery = retry.Schedule{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond}
	p.Pause = retry.Schedule{Initial: 100 * time.Millisecond, Max: 300 * time.Millisecond}
	p.RateLimitFallback = 50 * time.Millisecond
	return provision.Config{
		MaxAttempts:     maxAttempts,
		Policy:          p,
		AckWait:         2 * time.Second,
		ShutdownTimeout: 2 * time.Second,
		Provision:       true,
	}
}

// start runs a service with cfg until stop or the end of the test, with
// the simulator's default credentials and the harness's debug log.
func (h *harness) start(cfg provision.Config) *serviceRun {
	h.t.Helper()
	cfg.Logger = zerolog.New(h.log).Level(zerolog.DebugLevel).With().Timestamp().Str("test_replica", cfg.ReplicaID).Logger()
	return h.startWith(cfg, zoom.Config{
		AccountID: testenv.DefaultSimAccountID, ClientID: testenv.DefaultSimClientID, ClientSecret: testenv.DefaultSimClientSecret,
		BaseURL: h.sim.APIURL(), TokenURL: h.sim.TokenURL(), Timeout: 2 * time.Second,
	})
}

// startWith runs a service with its own Zoom client configuration
// (paced by cfg.Pacer) and cfg.Logger as given.
func (h *harness) startWith(cfg provision.Config, zcfg zoom.Config) *serviceRun {
	h.t.Helper()
	closed := make(chan struct{})
	url := h.ns.URL()
	if h.nextURL != nil {
		url = h.nextURL()
	}
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.DontRandomize(),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	if err != nil {
		h.t.Fatalf("connect: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		h.t.Fatalf("jetstream: %v", err)
	}
	if cfg.Pacer == nil {
		cfg.Pacer = quota.NewPacer(0, quota.NewGates(nil))
	}
	zcfg.Limiter = cfg.Pacer
	zc, err := zoom.New(zcfg)
	if err != nil {
		h.t.Fatalf("zoom client: %v", err)
	}
	if h.watchCredentials {
		cfg.Credentials = zc
	}
	var z provision.Zoom = zc
	if h.wrapZoom != nil {
		z = h.wrapZoom(zc)
	}
	svc, err := provision.New(js, z, cfg)
	if err != nil {
		h.t.Fatalf("provision.New: %v", err)
	}
	if h.afterPace != nil {
		provision.SetAfterPace(svc, h.afterPace)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &serviceRun{svc: svc, nc: nc, closed: closed, zc: zc, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- svc.Run(ctx) }()
	h.mu.Lock()
	h.runs = append(h.runs, r)
	h.mu.Unlock()
	eventually(h.t, 10*time.Second, func() (bool, string) {
		select {
		case err := <-r.done:
			r.done <- err
			return true, ""
		default:
		}
		return svc.Status().Bound, "service not bound"
	})
	return r
}

// stop shuts a service down gracefully and returns Run's error.
func (r *serviceRun) stop(t testing.TB) error {
	t.Helper()
	r.cancel()
	var err error
	select {
	case err = <-r.done:
		r.done <- err
	case <-time.After(30 * time.Second):
		t.Fatalf("service did not stop within 30s")
	}
	if err := r.nc.Drain(); err != nil {
		r.nc.Close()
	}
	select {
	case <-r.closed:
	case <-time.After(30 * time.Second):
		t.Fatalf("nats connection did not close within 30s")
	}
	r.zc.CloseIdleConnections()
	return err
}

// crash kills a service abruptly: its connection is closed without
// flushing, so nothing in flight is acked or handed back.
func (r *serviceRun) crash(t testing.TB) {
	t.Helper()
	r.nc.Close()
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("crashed service did not return within 30s")
	}
	r.done <- nil
	r.zc.CloseIdleConnections()
}

func (h *harness) stopAll() {
	h.mu.Lock()
	runs := h.runs
	h.runs = nil
	h.mu.Unlock()
	for _, r := range runs {
		if !r.nc.IsClosed() {
			r.stop(h.t)
		}
	}
}

// publish publishes a request with a Nats-Msg-Id.
func (h *harness) publish(id, action, body string) {
	h.t.Helper()
	m := nats.NewMsg(topology.Default().RequestSubject(action))
	m.Data = []byte(body)
	h.mu.Lock()
	for _, pw := range passwordPattern.FindAllStringSubmatch(body, -1) {
		h.passwords = append(h.passwords, pw[1])
	}
	h.mu.Unlock()
	if id != "" {
		m.Header.Set(jetstream.MsgIDHeader, id)
	}
	if _, err := h.js.PublishMsg(context.Background(), m); err != nil {
		h.t.Fatalf("publish %s: %v", id, err)
	}
}

// passwordPattern finds a password in a body, also inside a string.
var passwordPattern = regexp.MustCompile(`\\?"password\\?"\s*:\s*\\?"([^"\\]+)`)

// checkNoPasswordAtRest searches the dead-letter stream, its messages as
// the server returns them and its files, for the password of any request
// the test published: dead letters keep them only sealed or redacted.
func (h *harness) checkNoPasswordAtRest() {
	h.mu.Lock()
	passwords := h.passwords
	h.mu.Unlock()
	if len(passwords) == 0 {
		return
	}
	stored, err := testenv.StreamBytes(context.Background(), h.js, "ZOOM_USERS_DLQ")
	if err != nil {
		h.t.Error(err)
	}
	if h.storeDir != "" {
		files, err := testenv.StreamFiles(h.storeDir, "ZOOM_USERS_DLQ")
		if err != nil {
			h.t.Error(err)
		}
		stored = append(stored, files...)
	}
	for _, pw := range passwords {
		if len(pw) >= 4 && bytes.Contains(stored, []byte(pw)) {
			h.t.Errorf("the dead-letter stream holds the password %q in plain text", pw)
		}
	}
}

func userBody(action, email string, typ int) string {
	return fmt.Sprintf(`{"action":%q,"user_info":{"email":%q,"type":%d,"first_name":"Test"}}`, action, email, typ)
}

// storedMsgs returns every message stored in a stream.
func (h *harness) storedMsgs(stream string) []*jetstream.RawStreamMsg {
	h.t.Helper()
	s, err := h.js.Stream(context.Background(), stream)
	if err != nil {
		h.t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		h.t.Fatalf("stream info %s: %v", stream, err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			h.t.Fatalf("get %s/%d: %v", stream, seq, err)
		}
		out = append(out, m)
	}
	return out
}

// stream returns a stream's handle.
func (h *harness) stream(name string) jetstream.Stream {
	h.t.Helper()
	s, err := h.js.Stream(context.Background(), name)
	if err != nil {
		h.t.Fatalf("stream %s: %v", name, err)
	}
	return s
}

func (h *harness) streamMsgCount(stream string) uint64 {
	h.t.Helper()
	s, err := h.js.Stream(context.Background(), stream)
	if err != nil {
		h.t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		h.t.Fatalf("stream info %s: %v", stream, err)
	}
	return info.State.Msgs
}

// events returns the result events, by request id, in stream order. It
// reads only what arrived since the last call, so polling stays cheap.
func (h *harness) events() map[string][]messages.Event {
	h.t.Helper()
	ctx := context.Background()
	s, err := h.js.Stream(ctx, "ZOOM_USERS_RESULTS")
	if err != nil {
		h.t.Fatalf("result stream: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		h.t.Fatalf("result stream info: %v", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.evs == nil {
		h.evs = map[string][]messages.Event{}
	}
	for seq := h.evSeq + 1; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			h.t.Fatalf("get result %d: %v", seq, err)
		}
		h.evSeq = seq
		if !isOutcomeSubject(m.Subject) {
			continue // an operator's or the guard's audit event
		}
		ev, err := messages.DecodeEvent(m.Data)
		if err != nil {
			h.t.Fatalf("result %d is not a valid event: %v", m.Sequence, err)
		}
		if want := "zoom.users.result." + string(ev.Data.Outcome); m.Subject != want {
			h.t.Errorf("event %s on subject %s; want %s", ev.ID, m.Subject, want)
		}
		if ct := m.Header.Get("Content-Type"); ct != messages.ContentTypeCloudEvents {
			h.t.Errorf("event %s Content-Type = %q; want %q", ev.ID, ct, messages.ContentTypeCloudEvents)
		}
		h.evs[ev.Data.RequestID] = append(h.evs[ev.Data.RequestID], ev)
	}
	out := make(map[string][]messages.Event, len(h.evs))
	for k, v := range h.evs {
		out[k] = v
	}
	return out
}

// isOutcomeSubject reports whether subject carries a request's result
// (zoom.users.result.<outcome>), not an audit event.
func isOutcomeSubject(subject string) bool {
	for _, o := range messages.Outcomes {
		if subject == "zoom.users.result."+string(o) {
			return true
		}
	}
	return false
}

// terminal returns each request's terminal events.
func terminal(evs []messages.Event) []messages.Event {
	var out []messages.Event
	for _, e := range evs {
		if e.Data.Outcome.Terminal() {
			out = append(out, e)
		}
	}
	return out
}

// waitTerminal waits until every id has a terminal result event.
func (h *harness) waitTerminal(timeout time.Duration, ids ...string) map[string][]messages.Event {
	h.t.Helper()
	var evs map[string][]messages.Event
	eventually(h.t, timeout, func() (bool, string) {
		evs = h.events()
		var missing []string
		for _, id := range ids {
			if len(terminal(evs[id])) == 0 {
				missing = append(missing, id)
			}
		}
		sort.Strings(missing)
		if len(missing) > 5 {
			missing = append(missing[:5], fmt.Sprintf("and %d more", len(missing)-5))
		}
		return len(missing) == 0, "no terminal result for " + strings.Join(missing, ", ")
	})
	return evs
}

// consumerInfo returns the durable consumer of action.
func (h *harness) consumerInfo(action string) *jetstream.ConsumerInfo {
	h.t.Helper()
	c, err := h.js.Consumer(context.Background(), "ZOOM_USERS", "zoom-provisioner-"+action)
	if err != nil {
		h.t.Fatalf("consumer %s: %v", action, err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		h.t.Fatalf("consumer info %s: %v", action, err)
	}
	return info
}

// eventually polls cond until it holds or the deadline passes.
var eventually = testenv.Eventually

// syncBuffer collects output written from many goroutines.
type syncBuffer = testenv.SyncBuffer

var _ io.Writer = (*syncBuffer)(nil)
