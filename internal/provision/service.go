// Package provision is the JetStream loop of the Zoom provisioning
// consumer: it pulls requests from one durable consumer per action, calls
// Zoom with bounded concurrency, and turns every request into exactly one
// outcome (a result event, a dead letter, or a redelivery later). It is the
// only package that knows NATS, Zoom, the wire messages and the retry
// policy together.
package provision

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/metrics"
	"github.com/zoomprov/consumer/internal/retry"
	"github.com/zoomprov/consumer/internal/zoom"
)

// Zoom is what the service needs from the Zoom client.
type Zoom interface {
	CreateUser(ctx context.Context, req zoom.CreateUserRequest) (zoom.Response, error)
	GetUser(ctx context.Context, idOrEmail string) (zoom.Response, error)
}

var _ Zoom = (*zoom.Client)(nil)

// Config configures a Service. Zero values mean the documented defaults.
type Config struct {
	// Topology names the streams and consumers; zero means DefaultTopology.
	Topology Topology
	// Actions are the actions this instance serves; nil means all four.
	Actions []messages.Action
	// MaxInFlight is how many requests are handled at once; zero means 64.
	MaxInFlight int
	// MaxAttempts is how many deliveries may fail transiently before a
	// request is dead-lettered; zero means 10.
	MaxAttempts int
	// AckWait is the consumers' ack wait; zero means 30s. Long calls send
	// progress heartbeats every third of it.
	AckWait time.Duration
	// MaxAckPending is each consumer's limit of unacknowledged messages;
	// zero means 1000.
	MaxAckPending int
	// MessageTimeout bounds the handling of one delivery, all attempts
	// included; zero means 2 minutes.
	MessageTimeout time.Duration
	// ShutdownTimeout bounds how long in-flight requests may finish after
	// shutdown begins before they are cut off and handed back; zero means
	// 20s.
	ShutdownTimeout time.Duration
	// PullBatch is how many messages each action's iterator buffers; zero
	// means 1, so no message waits unheartbeated in a client buffer while
	// Zoom is slow.
	PullBatch int
	// Provision creates or updates streams and consumers on Run.
	Provision bool
	// Pacer paces Zoom calls at this replica's share of the account's
	// budget and enforces the quota gates; pass the same Pacer to the Zoom
	// client as its Limiter. Nil means NewPacer(0): no pacing, gates only
	// where the service itself checks them.
	Pacer *Pacer
	// NoPause keeps the service from pausing consumers when a quota gate
	// closes; the gate alone then holds the work, as on servers older than
	// 2.11 (detected by itself).
	NoPause bool
	// ReplicaID names this replica in the quota bucket; empty means the
	// host name plus a random suffix.
	ReplicaID string
	// Policy is the retry policy; zero means retry.DefaultPolicy.
	Policy retry.Policy
	// Logger receives one line per outcome; zero value logs nothing.
	Logger zerolog.Logger
	// LogEmails logs full e-mail addresses instead of masked ones.
	LogEmails bool
	// Metrics receives the service's counters and gauges; nil records
	// none.
	Metrics *metrics.Metrics
	// TracerProvider makes the span around each request; nil means otel's
	// global provider, which by default records nothing and only carries a
	// request's trace context through to its result and dead letter. Pass
	// an SDK provider to start traces for requests without one.
	TracerProvider trace.TracerProvider
	// Credentials, if not nil, is asked whether Zoom accepts the app's
	// credentials (pass the *zoom.Client): at start-up, then while the
	// service is held or they are not known to be accepted, every
	// CredentialsCheck. Status reports the answer for readiness probes.
	// Nil checks nothing: Status says CredentialsUnchecked until a Zoom
	// call tells.
	Credentials interface {
		TokenValid(ctx context.Context) error
	}
	// CredentialsCheck is the longest interval between two checks of
	// Credentials (each a token request, unless one is cached): they start
	// a second apart and slow down to this; zero means 30s.
	CredentialsCheck time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Topology.RequestStream == "" {
		c.Topology = DefaultTopology()
	}
	if len(c.Actions) == 0 {
		c.Actions = messages.Actions
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 64
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 10
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = 1000
	}
	if c.MessageTimeout <= 0 {
		c.MessageTimeout = 2 * time.Minute
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 20 * time.Second
	}
	if c.PullBatch <= 0 {
		c.PullBatch = 1
	}
	if c.Policy.MaxAttempts == 0 {
		c.Policy = retry.DefaultPolicy(c.MaxAttempts)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.TracerProvider == nil {
		c.TracerProvider = otel.GetTracerProvider()
	}
	if c.CredentialsCheck <= 0 {
		c.CredentialsCheck = 30 * time.Second
	}
}

// Service runs the provisioning loop. Create it with New and start it with
// Run; Status may be called from any goroutine.
type Service struct {
	cfg Config
	js  jetstream.JetStream
	// pub publishes results and dead letters asynchronously on js's
	// connection (see publish).
	pub   jetstream.JetStream
	zoom  Zoom
	log   zerolog.Logger
	now   func() time.Time
	rand  func() float64
	topo  Topology
	hold  hold
	track inflight
	pacer *Pacer
	gates *gates
	creds credentials

	metrics *metrics.Metrics
	tracer  trace.Tracer

	replicaID string
	attempts  jetstream.KeyValue
	quotaKV   jetstream.KeyValue

	mu    sync.Mutex
	bound bool
}

// New returns a Service that consumes through js and calls z.
func New(js jetstream.JetStream, z Zoom, cfg Config) (*Service, error) {
	cfg.setDefaults()
	for _, a := range cfg.Actions {
		if !a.Valid() {
			return nil, fmt.Errorf("provision: unknown action %q", a)
		}
	}
	s := &Service{
		cfg:  cfg,
		js:   js,
		zoom: z,
		log:  cfg.Logger,
		now:  cfg.Now,
		rand: cfg.Policy.Rand,
		topo: cfg.Topology,

		metrics: cfg.Metrics,
		tracer:  cfg.TracerProvider.Tracer(tracerName),
	}
	// A context of its own for asynchronous publishing, so that every
	// publish has an acknowledgement time-out: js is the caller's, and
	// without one a lost acknowledgement would leave its future pending
	// for good.
	pub, err := jetstream.New(js.Conn(),
		jetstream.WithPublishAsyncTimeout(publishTimeout),
		jetstream.WithPublishAsyncMaxPending(max(4*cfg.MaxInFlight, 256)))
	if err != nil {
		return nil, fmt.Errorf("provision: publisher: %w", err)
	}
	s.pub = pub
	s.creds.state = CredentialsUnchecked
	if cfg.Credentials != nil {
		s.creds.state = CredentialsUnverified
	}
	if s.rand == nil {
		s.rand = rand.Float64
	}
	s.replicaID = cfg.ReplicaID
	if s.replicaID == "" {
		host, _ := os.Hostname()
		s.replicaID = fmt.Sprintf("%s-%06x", sanitizeKey(host), rand.IntN(1<<24))
	}
	s.pacer = cfg.Pacer
	if s.pacer == nil {
		s.pacer = NewPacer(0)
	}
	s.pacer.now = cfg.Now
	s.gates = &s.pacer.gates
	return s, nil
}

// Status is the service's health for readiness probes.
type Status struct {
	// Bound is true once every consumer is bound and consuming.
	Bound bool `json:"bound"`
	// Held is true while an account-level problem stops new work.
	Held bool `json:"held"`
	// HeldUntil and HeldReason describe the hold.
	HeldUntil  time.Time `json:"held_until,omitzero"`
	HeldReason string    `json:"held_reason,omitempty"`
	// InFlight is the number of requests being handled.
	InFlight int `json:"in_flight"`
	// Replicas is how many live replicas share the account's budget, and
	// RateShare and Pace this replica's share and current pace (lower
	// than the share for a while after a per-second 429), per second.
	Replicas  int     `json:"replicas"`
	RateShare float64 `json:"rate_share"`
	Pace      float64 `json:"pace"`
	// Gates are the quota gates closed now.
	Gates []Gate `json:"gates,omitempty"`
	// ZoomCredentials is CredentialsAccepted, CredentialsRejected,
	// CredentialsUnverified or CredentialsUnchecked, and
	// ZoomCredentialsError the last check's error when not accepted.
	ZoomCredentials      string `json:"zoom_credentials"`
	ZoomCredentialsError string `json:"zoom_credentials_error,omitempty"`
}

// Status reports the service's state.
func (s *Service) Status() Status {
	s.mu.Lock()
	bound := s.bound
	s.mu.Unlock()
	now := s.now()
	until, reason, held := s.hold.state(now)
	st := Status{Bound: bound, Held: held, HeldUntil: until, HeldReason: reason, InFlight: s.track.count()}
	st.RateShare, st.Replicas, st.Pace = s.pacer.current()
	for _, gt := range s.gates.all() {
		if now.Before(gt.Until) {
			st.Gates = append(st.Gates, gt)
		}
	}
	st.ZoomCredentials, st.ZoomCredentialsError = s.creds.get()
	return st
}

// metricsState is the snapshot each metrics scrape reads.
func (s *Service) metricsState() metrics.ServiceState {
	st := s.Status()
	ms := metrics.ServiceState{
		Bound: st.Bound, Held: st.Held, CredentialsAccepted: st.ZoomCredentials == CredentialsAccepted,
		InFlight: st.InFlight, Replicas: st.Replicas, RateShare: st.RateShare, Pace: st.Pace,
		GateResets: make(map[string]time.Duration, len(st.Gates)),
	}
	now := s.now()
	for _, gt := range st.Gates {
		ms.GateResets[gt.Scope] = gt.Until.Sub(now)
	}
	return ms
}

// ErrConnectionClosed is returned by Run when the NATS connection closed
// for good while the service was running.
var ErrConnectionClosed = errors.New("provision: nats connection closed")

// Run provisions (if configured), binds the consumers and handles requests
// until ctx is cancelled. Then it stops fetching, hands back messages that
// were fetched but not started, lets in-flight requests finish for up to
// ShutdownTimeout, cuts off and hands back the rest, and returns. Run does
// not close the NATS connection: the caller drains it afterwards so that
// the last acks are flushed. A ctx cancelled while starting makes Run
// return nil.
func (s *Service) Run(ctx context.Context) error {
	s.metrics.ObserveService(s.metricsState)
	// A shutdown requested while starting (SIGTERM during a rollout) is a
	// clean stop, not a failure to start.
	startFailed := func(err error) error {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if s.cfg.Provision {
		if err := Provision(ctx, s.js, s.topo, s.cfg.Actions, s.cfg.AckWait, s.cfg.MaxAckPending); err != nil {
			return startFailed(err)
		}
	} else if err := Check(ctx, s.js, s.topo, s.cfg.Actions); err != nil {
		return startFailed(err)
	}
	kv, err := s.js.KeyValue(ctx, s.topo.AttemptsBucket)
	if err != nil {
		return startFailed(fmt.Errorf("provision: key-value bucket %s: %w", s.topo.AttemptsBucket, err))
	}
	s.attempts = kv
	if s.quotaKV, err = s.js.KeyValue(ctx, s.topo.QuotaBucket); err != nil {
		return startFailed(fmt.Errorf("provision: key-value bucket %s: %w", s.topo.QuotaBucket, err))
	}

	feeds := make([]*feed, len(s.cfg.Actions))
	for i, a := range s.cfg.Actions {
		it, err := s.messages(ctx, a)
		if err != nil {
			for _, f := range feeds[:i] {
				f.drain()
			}
			return startFailed(err)
		}
		feeds[i] = &feed{it: it}
	}

	// Handling runs on a context that outlives ctx, so that shutdown lets
	// in-flight Zoom calls finish; it is cancelled only when the shutdown
	// bound is exceeded.
	procCtx, cancelProc := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelProc()

	work := make(chan jetstream.Msg)
	var workers sync.WaitGroup
	for range s.cfg.MaxInFlight {
		workers.Go(func() {
			for msg := range work {
				s.handle(procCtx, msg)
			}
		})
	}
	hbCtx, stopHB := context.WithCancel(context.Background())
	var hb sync.WaitGroup
	hb.Go(func() { s.track.heartbeat(hbCtx, s.cfg.AckWait/3) })
	hb.Go(func() { s.sweepStrays(ctx) })
	hb.Go(func() { s.watchGates(ctx) })
	if s.cfg.Credentials != nil {
		hb.Go(func() { s.watchCredentials(ctx, s.cfg.Credentials) })
	}
	if s.pacer.budget > 0 {
		hb.Go(func() { s.coordinate(ctx) })
	}

	fatal := make(chan error, len(feeds))
	var dispatchers sync.WaitGroup
	for i, a := range s.cfg.Actions {
		dispatchers.Go(func() {
			if err := s.dispatch(ctx, a, feeds[i], work); err != nil {
				fatal <- err
			}
		})
	}
	s.mu.Lock()
	s.bound = true
	s.mu.Unlock()
	s.log.Info().Int("max_in_flight", s.cfg.MaxInFlight).Int("actions", len(s.cfg.Actions)).
		Str("stream", s.topo.RequestStream).Msg("consuming")

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-fatal:
	}
	s.mu.Lock()
	s.bound = false
	s.mu.Unlock()

	// Stop fetching. Draining lets each dispatcher see what was already
	// buffered so it can hand it back at once instead of after AckWait.
	for _, f := range feeds {
		f.drain()
	}
	dispatchers.Wait()
	close(work)

	done := make(chan struct{})
	go func() { workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.cfg.ShutdownTimeout):
		s.log.Warn().Int("in_flight", s.track.count()).Dur("shutdown_timeout", s.cfg.ShutdownTimeout).
			Msg("shutdown bound reached; handing back unfinished requests")
		cancelProc()
		<-done
	}
	stopHB()
	hb.Wait()
	s.log.Info().Msg("stopped consuming")
	return runErr
}

// nextWait is how long a dispatcher waits for the next message right after
// one arrived, before it asks again without a time limit. This works
// around a race in nats.go v1.55's Messages(): Next skips sending the next
// pull request while the pull goroutine has not yet marked the previous
// one as sent, and with one message per pull the answer can arrive (and be
// handed on) before it has; the following Next then waits with no pull
// request outstanding until the missing-heartbeat check fires, 30 s later
// (measured: about once per 100,000 messages under load, holding that
// action's requests, or a lone request arriving meanwhile, for 30 s). A
// Next that returns, even on a time-out, checks again and sends the pull
// request, so the race costs at most nextWait. Only the call right after a
// message is limited: a limited call re-arms the heartbeat check each
// time, so the unlimited one that follows a time-out is what keeps that
// check (and its recovery from a lost pull request) working.
const nextWait = 50 * time.Millisecond

func (s *Service) messages(ctx context.Context, a messages.Action) (jetstream.MessagesContext, error) {
	cons, err := s.js.Consumer(ctx, s.topo.RequestStream, s.topo.ConsumerName(a))
	if err != nil {
		return nil, fmt.Errorf("provision: bind consumer %s: %w", s.topo.ConsumerName(a), err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(s.cfg.PullBatch))
	if err != nil {
		return nil, fmt.Errorf("provision: consume %s: %w", s.topo.ConsumerName(a), err)
	}
	return it, nil
}

// feed is one action's message iterator, replaceable after the server
// drops it, and drained exactly once on shutdown.
type feed struct {
	mu      sync.Mutex
	it      jetstream.MessagesContext
	drained bool
}

func (f *feed) current() jetstream.MessagesContext {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.it
}

// replace installs a new iterator; after drain it stops it instead.
func (f *feed) replace(it jetstream.MessagesContext) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.drained {
		it.Stop()
		return false
	}
	f.it = it
	return true
}

func (f *feed) drain() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.drained {
		f.drained = true
		f.it.Drain()
	}
}

// dispatch feeds one action's messages to the workers until the feed is
// drained. While the account is held it fetches nothing new. Messages that
// arrive after shutdown began are handed back at once.
func (s *Service) dispatch(ctx context.Context, a messages.Action, f *feed, work chan<- jetstream.Msg) error {
	stop := context.AfterFunc(ctx, f.drain)
	defer stop()
	brief := false // the last Next returned a message: see nextWait
	for {
		if ctx.Err() == nil {
			s.hold.wait(ctx, s.now)
			s.gates.wait(ctx, string(a), s.now)
		}
		var msg jetstream.Msg
		var err error
		if brief {
			msg, err = f.current().Next(jetstream.NextMaxWait(nextWait))
		} else {
			msg, err = f.current().Next()
		}
		brief = err == nil
		if err != nil {
			if errors.Is(err, nats.ErrTimeout) {
				continue
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				if ctx.Err() != nil {
					return nil
				}
				if errors.Is(err, jetstream.ErrConnectionClosed) {
					return ErrConnectionClosed
				}
				// The consumer was deleted or the iterator died: bind again.
				s.log.Warn().Err(err).Str("consumer", s.topo.ConsumerName(a)).Msg("consumer iterator closed; binding again")
				it, err := s.rebind(ctx, a)
				if err != nil {
					return err
				}
				if it == nil || !f.replace(it) {
					return nil
				}
				continue
			}
			if ctx.Err() == nil && !errors.Is(err, jetstream.ErrNoHeartbeat) {
				s.log.Warn().Err(err).Str("consumer", s.topo.ConsumerName(a)).Msg("fetch error")
			}
			continue
		}
		if ctx.Err() != nil {
			s.handBack(msg)
			continue
		}
		// While every worker is busy (Zoom slow or stalled) the message
		// waits here; the heartbeat goroutine keeps it from being
		// redelivered behind our back.
		s.track.hold(msg, time.Now())
		select {
		case work <- msg:
		case <-ctx.Done():
			s.track.release(msg)
			s.handBack(msg)
		}
	}
}

// rebind recreates the iterator after the server dropped it (e.g. the
// consumer was deleted by an operator), provisioning the consumer again if
// allowed, with backoff until ctx ends.
func (s *Service) rebind(ctx context.Context, a messages.Action) (jetstream.MessagesContext, error) {
	sched := retry.Schedule{Initial: 250 * time.Millisecond, Max: 10 * time.Second, Jitter: 0.2}
	for n := 1; ; n++ {
		if s.cfg.Provision {
			cc := s.topo.ConsumerConfig(a, s.cfg.AckWait, s.cfg.MaxAckPending)
			if _, err := s.js.CreateOrUpdateConsumer(ctx, s.topo.RequestStream, cc); err != nil && ctx.Err() == nil {
				s.log.Warn().Err(err).Str("consumer", cc.Durable).Msg("recreate consumer")
			}
		}
		it, err := s.messages(ctx, a)
		if err == nil {
			return it, nil
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		s.log.Warn().Err(err).Msg("bind consumer")
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(sched.Delay(n)):
		}
	}
}

// handBack returns a message that was fetched but not started, so another
// replica can take it at once.
func (s *Service) handBack(msg jetstream.Msg) {
	if err := msg.Nak(); err != nil {
		s.log.Debug().Err(err).Msg("hand back message")
	}
}

// sanitizeKey keeps only the characters a key-value key may hold.
func sanitizeKey(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '-'
	}, s)
	if s == "" {
		return "replica"
	}
	return s
}
