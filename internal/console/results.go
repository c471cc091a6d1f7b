package console

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/topology"
)

// Results per minute, for the overview's chart, are read from the result
// stream, which every replica shares: each replica draws the same chart.
// A replica keeps the counts of the last hour in memory and, at most once
// every ratesMaxAge, reads only the results stored since its last read,
// through an ephemeral consumer that delivers headers only (the subject
// says the outcome, the stream the time), which the server removes once
// idle for ratesConsumerIdle (so the service needs no right to delete
// consumers of the result stream).
// The first read covers the hour; a read stops after ratesMaxRead results
// (the chart then says it is partial).
const (
	chartSpan    = time.Hour
	ratesMaxAge  = 5 * time.Second
	ratesMaxRead = 200000
	ratesBatch   = 1000
	// ratesTimeout bounds one read of the stream.
	ratesTimeout = 10 * time.Second
	// ratesConsumerIdle is when the server removes a read's consumer.
	ratesConsumerIdle = 10 * time.Second
)

// rates is the per-minute count of results by outcome.
type rates struct {
	mu      sync.Mutex
	fetched time.Time
	// next is the stream sequence to read from next (0: not read yet).
	next uint64
	// partialUntil: a read stopped early, and the chart misses results
	// until then.
	partialUntil time.Time
	// counts are by Unix minute, then outcome.
	counts map[int64]map[messages.Outcome]int
}

func newRates() *rates { return &rates{counts: map[int64]map[messages.Outcome]int{}} }

// minuteCounts is one minute of the chart.
type minuteCounts struct {
	Start  time.Time
	Counts map[messages.Outcome]int
	Total  int
}

// chart is the last hour of results, one entry per minute, oldest first.
type chart struct {
	Minutes []minuteCounts
	// Totals are the hour's counts by outcome; Outcomes those with any,
	// in the order of messages.Outcomes.
	Totals   map[messages.Outcome]int
	Outcomes []messages.Outcome
	Total    int
	Max      int
	Partial  bool
	Updated  time.Time
}

// get returns the chart at now, reading the stream first when the counts
// are older than ratesMaxAge. Concurrent callers wait for one read.
func (r *rates) get(ctx context.Context, js jetstream.JetStream, t topology.Topology, now time.Time) (chart, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var err error
	if now.Sub(r.fetched) >= ratesMaxAge {
		err = r.read(ctx, js, t, now)
		if err == nil {
			r.fetched = now
		}
	}
	return r.chart(now), err
}

// read adds the results stored since the last read (on the first, those
// of the last hour) and drops the minutes that left the chart; callers
// hold mu.
func (r *rates) read(ctx context.Context, js jetstream.JetStream, t topology.Topology, now time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, ratesTimeout)
	defer cancel()
	cut := now.Add(-chartSpan).Truncate(time.Minute)
	for m := range r.counts {
		if time.Unix(m*60, 0).Before(cut) {
			delete(r.counts, m)
		}
	}
	s, err := js.Stream(ctx, t.ResultStream)
	if err != nil {
		return fmt.Errorf("console: result stream %s: %w", t.ResultStream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("console: result stream %s: %w", t.ResultStream, err)
	}
	last := info.State.LastSeq
	if last == 0 || r.next > last {
		r.next = last + 1
		return nil
	}
	cfg := jetstream.ConsumerConfig{
		AckPolicy: jetstream.AckNonePolicy, HeadersOnly: true, MemoryStorage: true,
		InactiveThreshold: ratesConsumerIdle, FilterSubject: t.ResultPrefix + ".>",
	}
	if r.next == 0 || r.next < info.State.FirstSeq {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &cut
	} else {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.next
	}
	c, err := s.CreateConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("console: read %s: %w", t.ResultStream, err)
	}
	pending := min(c.CachedInfo().NumPending, ratesMaxRead)
	read := uint64(0)
	for read < pending {
		batch, err := c.Fetch(int(min(pending-read, ratesBatch)), jetstream.FetchContext(ctx))
		if err != nil {
			return fmt.Errorf("console: read %s: %w", t.ResultStream, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				continue
			}
			r.next = max(r.next, md.Sequence.Stream+1)
			o := messages.Outcome(strings.TrimPrefix(m.Subject(), t.ResultPrefix+"."))
			if !slices.Contains(messages.Outcomes, o) || md.Timestamp.Before(cut) {
				continue // an audit event, or too old
			}
			minute := md.Timestamp.Unix() / 60
			if r.counts[minute] == nil {
				r.counts[minute] = map[messages.Outcome]int{}
			}
			r.counts[minute][o]++
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return fmt.Errorf("console: read %s: %w", t.ResultStream, err)
		}
		if n == 0 {
			break // nothing more came within the time allowed
		}
		read += uint64(n)
	}
	if read < c.CachedInfo().NumPending {
		r.partialUntil = now.Add(chartSpan)
	}
	if r.next <= last {
		// Skip what was not read: the next read starts after it.
		r.next = last + 1
	}
	return nil
}

// chart is the counts as the last 60 minutes, the current one last;
// callers hold mu.
func (r *rates) chart(now time.Time) chart {
	ch := chart{Totals: map[messages.Outcome]int{}, Partial: now.Before(r.partialUntil), Updated: r.fetched}
	end := now.Truncate(time.Minute)
	for i := int(chartSpan/time.Minute) - 1; i >= 0; i-- {
		start := end.Add(-time.Duration(i) * time.Minute)
		mc := minuteCounts{Start: start, Counts: map[messages.Outcome]int{}}
		for o, n := range r.counts[start.Unix()/60] {
			mc.Counts[o] = n
			mc.Total += n
			ch.Totals[o] += n
		}
		ch.Total += mc.Total
		ch.Max = max(ch.Max, mc.Total)
		ch.Minutes = append(ch.Minutes, mc)
	}
	for _, o := range messages.Outcomes {
		if ch.Totals[o] > 0 {
			ch.Outcomes = append(ch.Outcomes, o)
		}
	}
	return ch
}
