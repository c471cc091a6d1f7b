package ledger

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/topology"
)

// result is one terminal result about a user, as the ledger applies it.
type result struct {
	key string
	// seq is the result's sequence in the result stream.
	seq uint64
	rec Record
}

// decodeResult reads a message of the result stream: a request's terminal
// result about a user, or ok false for anything else (deferred results,
// the operators' audit events on <prefix>.quota, .guard, .user, …,
// messages that are not result events).
func decodeResult(topo topology.Topology, subject string, data []byte, seq uint64, stored time.Time) (result, bool) {
	outcome, ok := strings.CutPrefix(subject, topo.ResultPrefix+".")
	if !ok || !messages.Outcome(outcome).Terminal() {
		return result{}, false
	}
	ev, err := messages.DecodeEvent(data)
	if err != nil || string(ev.Data.Outcome) != outcome || ev.Type != messages.EventTypePrefix+outcome {
		return result{}, false
	}
	at, err := time.Parse(time.RFC3339Nano, ev.Time)
	if err != nil {
		at = stored
	}
	rec, ok := FromResult(ev.Data, at)
	if !ok {
		return result{}, false
	}
	return result{key: Key(ev.Data.Email), seq: seq, rec: rec}, true
}

// apply folds results, all about the user under key, into the entry, but
// those an operator erased since (Forgotten).
func (l *Ledger) apply(ctx context.Context, key string, results []result) (bool, error) {
	return l.update(ctx, key, func(cur Record) Record {
		for _, r := range results {
			if cur.Forgotten != nil && r.seq <= cur.Forgotten.Through {
				continue
			}
			cur = Merge(cur, r.rec)
		}
		return cur
	})
}

// ProjectorConfig configures a Projector. Zero values mean the documented
// defaults.
type ProjectorConfig struct {
	// Topology names the result stream, the ledger's consumer and bucket.
	Topology topology.Topology
	// Logger gets a line when the projector cannot bind or write; zero is
	// a disabled logger.
	Logger zerolog.Logger
	// Batch is how many results one replica holds at once; 256 if zero.
	Batch int
	// Writers is how many users' entries one replica writes at once; 8 if
	// zero.
	Writers int
	// Retry is the wait before binding again after the consumer or the
	// bucket could not be bound, and the delay of a result handed back
	// after a failed write; 2 s if zero.
	Retry time.Duration
	// StopTimeout bounds the shutdown: the writes under way finish (each
	// within its own time-out), the results not yet written are handed
	// back; 10 s if zero.
	StopTimeout time.Duration
}

// Projector keeps the ledger up to date with the result stream: it pulls
// the results from the ledger's durable consumer, shared by every replica,
// applies each terminal result to its user's entry, and acknowledges it
// once written. Other messages are acknowledged and ignored.
type Projector struct {
	js  jetstream.JetStream
	cfg ProjectorConfig
	log zerolog.Logger
}

// NewProjector returns a projector of cfg.Topology's results on js.
func NewProjector(js jetstream.JetStream, cfg ProjectorConfig) *Projector {
	if cfg.Batch <= 0 {
		cfg.Batch = 256
	}
	if cfg.Writers <= 0 {
		cfg.Writers = 8
	}
	if cfg.Retry <= 0 {
		cfg.Retry = 2 * time.Second
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	return &Projector{js: js, cfg: cfg, log: cfg.Logger.With().Str("component", "ledger").Logger()}
}

// writeTimeout bounds the writes of one user's entry.
const writeTimeout = 10 * time.Second

// Run projects until ctx is done, then stops within StopTimeout and
// returns nil. It binds the consumer and the bucket again (every Retry)
// while they cannot be bound, and after the consumer was deleted: the
// ledger is a read model, and its absence never stops the service.
func (p *Projector) Run(ctx context.Context) error {
	warned := false
	for ctx.Err() == nil {
		err := p.runOnce(ctx)
		if ctx.Err() != nil {
			break
		}
		if err != nil && !warned {
			p.log.Warn().Err(err).Msg("ledger projector stopped; binding again")
			warned = true
		}
		t := time.NewTimer(p.cfg.Retry)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	return nil
}

// runOnce binds and projects until ctx is done or the consumption ends.
func (p *Projector) runOnce(ctx context.Context) error {
	topo := p.cfg.Topology
	var cons jetstream.Consumer
	var l *Ledger
	if err := topology.Retry(ctx, func(ctx context.Context) (err error) {
		if l, err = Open(ctx, p.js, topo); err != nil {
			return err
		}
		cons, err = p.js.Consumer(ctx, topo.ResultStream, topo.ConsumerName(topology.LedgerConsumer))
		return err
	}); err != nil {
		return err
	}

	in := make(chan jetstream.Msg, p.cfg.Batch)
	stopping := make(chan struct{})
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case in <- m:
		case <-stopping:
			// Left unacknowledged: redelivered after the ack wait.
		}
	}, jetstream.PullMaxMessages(p.cfg.Batch), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		p.log.Debug().Err(err).Msg("ledger consumer")
	}))
	if err != nil {
		return err
	}
	p.log.Debug().Msg("ledger projector consuming")

	var runErr error
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-cc.Closed():
			runErr, done = errors.New("ledger: the consumption of the results ended"), true
		case m := <-in:
			batch := []jetstream.Msg{m}
		more:
			for len(batch) < p.cfg.Batch {
				select {
				case m := <-in:
					batch = append(batch, m)
				default:
					break more
				}
			}
			p.process(ctx, l, batch)
		}
	}
	close(stopping)
	cc.Stop()
	select {
	case <-cc.Closed():
	case <-time.After(p.cfg.StopTimeout):
		p.log.Warn().Dur("stop_timeout", p.cfg.StopTimeout).Msg("ledger consumer did not stop in time")
	}
	// Hand back what was pulled but not applied, for the other replicas.
	for {
		select {
		case m := <-in:
			settle(m, errStopping, 0)
		default:
			return runErr
		}
	}
}

// process applies a batch: the results about one user in one write, the
// users in parallel, each result acknowledged once its user's entry holds
// it (or handed back with a delay if the write failed).
func (p *Projector) process(ctx context.Context, l *Ledger, batch []jetstream.Msg) {
	type group struct {
		results []result
		msgs    []jetstream.Msg
	}
	groups := map[string]*group{}
	var order []string
	for _, m := range batch {
		md, err := m.Metadata()
		if err != nil {
			settle(m, nil, 0) // not a result the ledger can use
			continue
		}
		r, ok := decodeResult(p.cfg.Topology, m.Subject(), m.Data(), md.Sequence.Stream, md.Timestamp)
		if !ok {
			settle(m, nil, 0) // not a terminal result: nothing to record
			continue
		}
		g := groups[r.key]
		if g == nil {
			g = &group{}
			groups[r.key] = g
			order = append(order, r.key)
		}
		g.results = append(g.results, r)
		g.msgs = append(g.msgs, m)
	}
	// Writes run on a context shutdown does not cut, each bounded: a
	// result whose entry is written is acknowledged, not applied twice.
	wctx := context.WithoutCancel(ctx)
	sem := make(chan struct{}, p.cfg.Writers)
	var wg sync.WaitGroup
	for _, key := range order {
		g := groups[key]
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			tctx, cancel := context.WithTimeout(wctx, writeTimeout)
			_, err := l.apply(tctx, key, g.results)
			cancel()
			for _, m := range g.msgs {
				settle(m, err, p.cfg.Retry)
			}
			if err != nil {
				p.log.Warn().Err(err).Str("key", key).Int("results", len(g.msgs)).Msg("ledger write failed; results handed back")
			}
		})
	}
	wg.Wait()
}

// errStopping hands back a result pulled but not applied at shutdown.
var errStopping = errors.New("ledger: projector stopping")

// settle is the one place the projector settles a result of its own
// consumer (requests are settled in provision/settle.go): acknowledged
// when its user's entry holds it or it is nothing for the ledger (err
// nil), handed back after delay when it could not be written, at once
// when delay is 0.
func settle(m jetstream.Msg, err error, delay time.Duration) {
	switch {
	case err == nil:
		_ = m.Ack()
	case delay > 0:
		_ = m.NakWithDelay(delay)
	default:
		_ = m.Nak()
	}
}
