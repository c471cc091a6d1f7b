// Package provision is the JetStream loop of the Zoom provisioning
// consumer: it fetches requests from one durable consumer per action, as
// many as it has free workers, calls Zoom, and turns every request into
// exactly one outcome (a result event, a dead letter, or a redelivery
// later).
//
// One request goes: fetch.go (dispatch) → handle.go (the path: decode.go,
// turn.go, call.go, classify.go) → retry.Policy.Decide (what to do about
// it) → settle.go (do it: the only file that acks, naks or terminates).
package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/zoomprov/consumer/internal/metrics"
	"github.com/zoomprov/consumer/internal/order"
	"github.com/zoomprov/consumer/internal/password"
	"github.com/zoomprov/consumer/internal/quota"
	"github.com/zoomprov/consumer/internal/retry"
	"github.com/zoomprov/consumer/internal/seal"
	"github.com/zoomprov/consumer/internal/topology"
	"github.com/zoomprov/consumer/internal/zoom"
)

// Zoom is what the service needs from the Zoom client.
type Zoom interface {
	CreateUser(ctx context.Context, req zoom.CreateUserRequest) (zoom.Response, error)
	GetUser(ctx context.Context, idOrEmail string) (zoom.Response, error)
	UpdateUser(ctx context.Context, idOrEmail string, user json.RawMessage) (zoom.Response, error)
	SetUserStatus(ctx context.Context, idOrEmail string, action string) (zoom.Response, error)
	DeleteUser(ctx context.Context, idOrEmail string, opts zoom.DeleteOptions) (zoom.Response, error)
}

var _ Zoom = (*zoom.Client)(nil)

// Credentials tells whether Zoom accepts the app's credentials, fetching a
// token only when none is cached. *zoom.Client has it.
type Credentials interface {
	TokenValid(ctx context.Context) error
}

var _ Credentials = (*zoom.Client)(nil)

// Config configures a Service. Zero values mean the documented defaults.
type Config struct {
	// Topology names the streams and consumers; zero means
	// topology.Default().
	Topology topology.Topology
	// Actions are the creation actions and lifecycle operations this
	// instance serves; nil means all (topology.Actions).
	Actions []string
	// MaxInFlight is how many requests are handled at once; zero means 64.
	MaxInFlight int
	// MaxAttempts is how many deliveries may fail transiently before a
	// request is dead-lettered; zero means 10.
	MaxAttempts int
	// AckWait is the consumers' ack wait; zero means 30s. Requests in hand
	// get progress heartbeats every third of it.
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
	// FetchBatch is the most messages one fetch asks for; zero means
	// MaxInFlight. A fetch never asks for more than there are free
	// workers, so no message waits in a client buffer unseen.
	FetchBatch int
	// Provision creates or reconciles streams, buckets and consumers on
	// Run; otherwise Run only checks that they exist.
	Provision bool
	// Replicas is the replica count of the streams and buckets Run creates
	// or raises: topology.AutoReplicas (zero) or an explicit number.
	Replicas int
	// Pacer paces Zoom calls at this replica's share of the account's
	// budget and enforces the quota gates: the service waits on it before
	// each call; pass the same Pacer to the Zoom client as its Limiter for
	// the calls the client makes again by itself. The service reads it and
	// its gates, never reconfigures it. Nil means quota.NewPacer(0, …): no
	// pacing.
	Pacer *quota.Pacer
	// NoPause keeps the service from pausing consumers when a quota gate
	// closes; the gate alone then holds the work, as on servers older than
	// 2.11 (detected by itself).
	NoPause bool
	// ReplicaID names this replica in the quota bucket; empty means the
	// host name plus a random suffix.
	ReplicaID string
	// GuardLimit is how many destructive calls (deactivate, delete) may
	// reach Zoom within GuardWindow, for the whole account; beyond, they
	// wait for an operator (package guard). Zero turns the guard off.
	GuardLimit int
	// GuardWindow is the guard's sliding window; zero means an hour.
	GuardWindow time.Duration
	// PasswordKeys open the passwords publishers sealed for the service
	// (sealedbox:v1:…), just before the call; nil opens none (a sealed
	// one is then refused as invalid).
	PasswordKeys *password.Keyring
	// Seal seals the passwords in dead letters' bodies; nil redacts them.
	Seal *seal.Keyring
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
	// request's trace context through to its result and dead letter.
	TracerProvider trace.TracerProvider
	// Credentials, if not nil, is asked whether Zoom accepts the app's
	// credentials: at start-up, then while the service is held or they are
	// not known to be accepted, every CredentialsCheck. Status reports the
	// answer for readiness probes. Nil checks nothing: Status says
	// CredentialsUnchecked until a Zoom call tells.
	Credentials Credentials
	// CredentialsCheck is the longest interval between two checks of
	// Credentials: they start a second apart and slow down to this; zero
	// means 30s. While the service is paused they are checked too.
	CredentialsCheck time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// The defaults of Config, which the service's settings show too.
const (
	DefaultMaxInFlight     = 64
	DefaultMaxAttempts     = 10
	DefaultMaxAckPending   = 1000
	DefaultAckWait         = 30 * time.Second
	DefaultShutdownTimeout = 20 * time.Second
)

func (c *Config) setDefaults() {
	if c.Topology.RequestStream == "" {
		c.Topology = topology.Default()
	}
	if len(c.Actions) == 0 {
		c.Actions = topology.Actions()
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.AckWait <= 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = DefaultMaxAckPending
	}
	if c.MessageTimeout <= 0 {
		c.MessageTimeout = 2 * time.Minute
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.FetchBatch <= 0 || c.FetchBatch > c.MaxInFlight {
		c.FetchBatch = c.MaxInFlight
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
	if c.GuardWindow <= 0 {
		c.GuardWindow = time.Hour
	}
	if c.CredentialsCheck <= 0 {
		c.CredentialsCheck = 30 * time.Second
	}
	if c.ReplicaID == "" {
		host, _ := os.Hostname()
		c.ReplicaID = fmt.Sprintf("%s-%06x", sanitizeKey(host), rand.IntN(1<<24))
	}
	if c.Pacer == nil {
		c.Pacer = quota.NewPacer(0, quota.NewGates(c.Now))
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
	topo  topology.Topology
	pause *pause
	guard *guardView
	track inflight
	pacer *quota.Pacer
	gates *quota.Gates
	creds credentials
	free  *slots

	metrics *metrics.Metrics
	tracer  trace.Tracer

	// afterPace, if set (by tests), runs after each wait for pacing,
	// before the check that the delivery still owns its request.
	afterPace func(context.Context, zoom.Call) error

	// Set by Run before any request is handled.
	failures jetstream.KeyValue
	quotaKV  jetstream.KeyValue
	coord    *quota.Coordinator
	// current is the request stream's incarnation and its order index,
	// replaced when the stream is recreated.
	current atomic.Pointer[streamState]
	// delivered is each consumer's last delivery sequence seen, by name:
	// one that goes back was created again (see toWorker).
	deliveredMu sync.Mutex
	delivered   map[string]uint64
	// pruneSoon asks pruneOrder for a prune before its next tick, once the
	// index holds more than pruneAt requests.
	pruneSoon chan struct{}
	pruneAt   atomic.Int64

	mu        sync.Mutex
	bound     bool
	boundOnce sync.Once
	boundCh   chan struct{}
}

// New returns a Service that consumes through js and calls z.
func New(js jetstream.JetStream, z Zoom, cfg Config) (*Service, error) {
	cfg.setDefaults()
	s := &Service{
		cfg:   cfg,
		js:    js,
		zoom:  z,
		log:   cfg.Logger,
		now:   cfg.Now,
		topo:  cfg.Topology,
		pause: newPause(cfg.Now),
		guard: newGuardView(),
		pacer: cfg.Pacer,
		gates: cfg.Pacer.Gates(),
		free:  newSlots(cfg.MaxInFlight),

		boundCh:   make(chan struct{}),
		pruneSoon: make(chan struct{}, 1),

		metrics: cfg.Metrics,
		tracer:  cfg.TracerProvider.Tracer(tracerName),
	}
	// A context of its own for asynchronous publishing, so that every
	// publish has an acknowledgement time-out: js is the caller's, and
	// without one a lost acknowledgement would leave its future pending
	// for good.
	pub, err := jetstream.New(js.Conn(),
		jetstream.WithPublishAsyncTimeout(publishAckTimeout),
		jetstream.WithPublishAsyncMaxPending(max(4*cfg.MaxInFlight, 256)))
	if err != nil {
		return nil, fmt.Errorf("provision: publisher: %w", err)
	}
	s.pub = pub
	s.creds.state = CredentialsUnchecked
	if cfg.Credentials != nil {
		s.creds.state = CredentialsUnverified
	}
	return s, nil
}

// Status is the service's health for readiness probes.
type Status struct {
	// Bound is true once every consumer is bound and consuming.
	Bound bool `json:"bound"`
	// Paused is true while an account-level problem stops new work.
	Paused bool `json:"paused"`
	// PausedUntil and PauseReason describe the pause.
	PausedUntil time.Time `json:"paused_until,omitzero"`
	PauseReason string    `json:"pause_reason,omitempty"`
	// InFlight is the number of requests being handled.
	InFlight int `json:"in_flight"`
	// Replicas is how many live replicas share the account's budget, and
	// RateShare and Pace this replica's share and current pace (lower
	// than the share for a while after a per-second 429), per second.
	Replicas  int     `json:"replicas"`
	RateShare float64 `json:"rate_share"`
	Pace      float64 `json:"pace"`
	// Gates are the quota gates closed now.
	Gates []quota.Gate `json:"gates,omitempty"`
	// ZoomCredentials is CredentialsAccepted, CredentialsRejected,
	// CredentialsUnverified or CredentialsUnchecked, and
	// ZoomCredentialsError the last check's error when not accepted.
	ZoomCredentials      string `json:"zoom_credentials"`
	ZoomCredentialsError string `json:"zoom_credentials_error,omitempty"`
	// OrderReads is how often this replica read the request stream to
	// keep the per-user order: its cost.
	OrderReads uint64 `json:"order_reads"`
	// GuardTripped says the guard against mass deprovisioning holds the
	// destructive requests (a tripped guard is not a fault: the service
	// stays ready); GuardUsed is how many destructive calls its window
	// holds, of GuardLimit (0: the guard is off).
	GuardTripped bool `json:"guard_tripped"`
	GuardUsed    int  `json:"guard_used"`
	GuardLimit   int  `json:"guard_limit"`
}

// Status reports the service's state.
func (s *Service) Status() Status {
	s.mu.Lock()
	bound := s.bound
	s.mu.Unlock()
	until, reason, paused := s.pause.State()
	st := Status{Bound: bound, Paused: paused, PausedUntil: until, PauseReason: reason, InFlight: s.track.count()}
	st.RateShare, st.Replicas, st.Pace = s.pacer.Current()
	now := s.now()
	for _, gt := range s.gates.All() {
		if gt.Closed(now) {
			st.Gates = append(st.Gates, gt)
		}
	}
	st.ZoomCredentials, st.ZoomCredentialsError = s.creds.get()
	if s.cfg.GuardLimit > 0 {
		g := s.guard.get()
		st.GuardTripped, st.GuardUsed, st.GuardLimit = g.Tripped, g.Used(now), s.cfg.GuardLimit
	}
	if cur := s.current.Load(); cur != nil {
		st.OrderReads = cur.reads()
	}
	return st
}

// metricsState is the snapshot each metrics scrape reads.
func (s *Service) metricsState() metrics.ServiceState {
	st := s.Status()
	ms := metrics.ServiceState{
		Bound: st.Bound, Paused: st.Paused, CredentialsAccepted: st.ZoomCredentials == CredentialsAccepted,
		InFlight: st.InFlight, Replicas: st.Replicas, RateShare: st.RateShare, Pace: st.Pace,
		GuardLimit: st.GuardLimit, GuardUsed: st.GuardUsed, GuardTripped: st.GuardTripped, OrderReads: st.OrderReads,
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
	if err := s.prepare(ctx); err != nil {
		return startFailed(err)
	}
	names := topology.Consumers(s.cfg.Actions)
	consumers := make([]jetstream.Consumer, len(names))
	for i, a := range names {
		if err := topology.Retry(ctx, func(ctx context.Context) (err error) {
			consumers[i], err = s.js.Consumer(ctx, s.topo.RequestStream, s.topo.ConsumerName(a))
			return err
		}); err != nil {
			return startFailed(fmt.Errorf("provision: bind consumer %s: %w", s.topo.ConsumerName(a), err))
		}
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
				s.free.release(1)
			}
		})
	}
	// runCtx ends on shutdown or when a dispatcher fails for good.
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	hbCtx, stopHB := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	bg.Go(func() { s.track.heartbeat(hbCtx, s.cfg.AckWait/3) })
	bg.Go(func() { s.sweepStrays(runCtx) })
	bg.Go(func() { s.coord.Run(runCtx) })
	bg.Go(func() { s.pruneOrder(runCtx) })
	if s.cfg.GuardLimit > 0 {
		bg.Go(func() { s.followGuard(runCtx) })
	}
	if s.cfg.Credentials != nil {
		bg.Go(func() { s.watchCredentials(runCtx, s.cfg.Credentials) })
	}

	fatal := make(chan error, len(consumers))
	var dispatchers sync.WaitGroup
	for i, a := range names {
		dispatchers.Go(func() {
			if err := s.dispatch(runCtx, a, consumers[i], work); err != nil {
				fatal <- err
			}
		})
	}
	s.setBound(true)
	s.log.Info().Int("max_in_flight", s.cfg.MaxInFlight).Int("actions", len(s.cfg.Actions)).
		Str("stream", s.topo.RequestStream).Msg("consuming")

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-fatal:
	}
	stopRun()
	s.setBound(false)

	// Stop fetching; each dispatcher hands back what it fetched but had not
	// started.
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
	bg.Wait()
	s.log.Info().Msg("stopped consuming")
	return runErr
}

func (s *Service) setBound(b bool) {
	s.mu.Lock()
	s.bound = b
	s.mu.Unlock()
	if b {
		s.boundOnce.Do(func() { close(s.boundCh) })
	}
}

// Bound is closed once Run has bound every consumer and consumes.
func (s *Service) Bound() <-chan struct{} { return s.boundCh }

// prepare provisions or checks the topology and opens the buckets.
func (s *Service) prepare(ctx context.Context) error {
	if s.cfg.Provision {
		changes, err := topology.Reconcile(ctx, s.js, s.topo, topology.Options{
			Replicas: s.cfg.Replicas, Actions: s.cfg.Actions, AckWait: s.cfg.AckWait, MaxAckPending: s.cfg.MaxAckPending,
		})
		for _, ch := range changes {
			ev := s.log.Info()
			if ch.Kept {
				ev = s.log.Warn()
			}
			ev.Str("resource", ch.Resource).Str("field", ch.Field).Msg(ch.String())
		}
		if err != nil {
			return err
		}
	} else if err := topology.Retry(ctx, func(ctx context.Context) error {
		return topology.Check(ctx, s.js, s.topo, s.cfg.Actions)
	}); err != nil {
		return err
	}
	// Each bind waits out an election, as provisioning does: a replica
	// started while a node is down must not exit.
	var info *jetstream.StreamInfo
	for _, step := range []struct {
		what string
		do   func(ctx context.Context) error
	}{
		{"key-value bucket " + s.topo.AttemptsBucket, func(ctx context.Context) (err error) {
			s.failures, err = s.js.KeyValue(ctx, s.topo.AttemptsBucket)
			return err
		}},
		{"key-value bucket " + s.topo.QuotaBucket, func(ctx context.Context) (err error) {
			s.quotaKV, err = s.js.KeyValue(ctx, s.topo.QuotaBucket)
			return err
		}},
		{"stream " + s.topo.RequestStream, func(ctx context.Context) (err error) {
			var requests jetstream.Stream
			if requests, err = s.js.Stream(ctx, s.topo.RequestStream); err == nil {
				info, err = requests.Info(ctx)
			}
			return err
		}},
	} {
		if err := topology.Retry(ctx, step.do); err != nil {
			return fmt.Errorf("provision: %s: %w", step.what, err)
		}
	}
	s.coord = quota.NewCoordinator(s.quotaKV, s.pacer, quota.CoordinatorConfig{
		ReplicaID: s.cfg.ReplicaID, Conn: s.js.Conn(), Log: s.log, Backlog: s.backlog, Opened: s.reopen,
	})
	s.follow(info)
	return nil
}

// streamState is one incarnation of the request stream: its name in
// request ids and failure counts, and its order index.
type streamState struct {
	created     time.Time
	incarnation string
	index       *order.Index
	// before is the reads of the indexes of earlier incarnations.
	before uint64
}

func (st *streamState) reads() uint64 { return st.before + st.index.Reads() }

// stream is the request stream's current incarnation.
func (s *Service) stream() *streamState { return s.current.Load() }

// index is the current order index.
func (s *Service) index() *order.Index { return s.current.Load().index }

// follow starts a new incarnation when the request stream info describes
// was created since the last one (an operator deleted and recreated it):
// its sequences start again at 1, so its request ids, failure counts and
// order index must not be the old ones'.
func (s *Service) follow(info *jetstream.StreamInfo) {
	cur := s.current.Load()
	if cur != nil && cur.created.Equal(info.Created) {
		return
	}
	next := &streamState{
		created:     info.Created,
		incarnation: topology.Incarnation(info.Created),
		index:       order.New(s.js.Conn(), s.topo, info.State.FirstSeq),
	}
	if cur != nil {
		next.before = cur.reads()
	}
	if !s.current.CompareAndSwap(cur, next) {
		return // another goroutine followed it first
	}
	if cur != nil {
		s.log.Warn().Str("stream", s.topo.RequestStream).Time("created", info.Created).
			Msg("the request stream was recreated; request ids and the per-user order start afresh")
	}
}

// The order index forgets requests known to be finished every
// pruneInterval, and sooner, at most every pruneMinInterval, once it holds
// more than twice what it kept at the last prune (at least pruneMinAt):
// at thousands of requests a second, 15 s of them would otherwise be held
// in memory.
const (
	pruneInterval    = 15 * time.Second
	pruneMinInterval = time.Second
	pruneMinAt       = 4096
)

// pruneOrder keeps the order index small: it drops the requests below the
// stream's first sequence and, per action, at or below the consumer's
// acknowledgement floor, until ctx ends.
func (s *Service) pruneOrder(ctx context.Context) {
	s.pruneAt.Store(pruneMinAt)
	t := time.NewTicker(pruneInterval)
	defer t.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.pruneSoon:
			if retry.Sleep(ctx, pruneMinInterval-time.Since(last), nil); ctx.Err() != nil {
				return
			}
		}
		last = time.Now()
		stream, err := s.js.Stream(ctx, s.topo.RequestStream)
		if err != nil {
			continue
		}
		s.follow(stream.CachedInfo())
		floors := map[string]uint64{}
		for _, a := range topology.Consumers(s.cfg.Actions) {
			if c, err := s.js.Consumer(ctx, s.topo.RequestStream, s.topo.ConsumerName(a)); err == nil {
				if info, err := c.Info(ctx); err == nil {
					floors[a] = info.AckFloor.Stream
				}
			}
		}
		cur := s.stream()
		left := cur.index.Prune(stream.CachedInfo().State.FirstSeq, floors)
		s.pruneAt.Store(int64(max(pruneMinAt, 2*left)))
		s.log.Debug().Int("entries", left).Uint64("reads", cur.reads()).Msg("order index pruned")
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
