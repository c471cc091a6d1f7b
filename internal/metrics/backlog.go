package metrics

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ConsumerParked is the value of the "action" label for the consumer of
// parked copies (topology.ParkedConsumer): requests that wait for an
// earlier request about the same user, off their action consumer.
const ConsumerParked = "parked"

// Backlog is one durable consumer's queue as JetStream reports it.
type Backlog struct {
	// Action is the action or lifecycle operation the consumer carries,
	// or ConsumerParked.
	Action string
	// Requests is the consumer's pending plus ack-pending messages: what
	// waits in the stream and what is delivered but not yet settled
	// (deferred ones included), as KEDA counts a consumer's lag.
	Requests uint64
	// Oldest is when the stream stored the oldest request the consumer
	// has not settled; zero when there is none.
	Oldest time.Time
}

// BacklogReader reads the backlog of every consumer. It may return what
// it could read together with an error about the rest.
type BacklogReader func(ctx context.Context) ([]Backlog, error)

// Backlog reading defaults: a scrape reuses a reading for up to
// BacklogCacheFor, and gives up on a reading after BacklogTimeout.
const (
	BacklogCacheFor = 5 * time.Second
	BacklogTimeout  = 3 * time.Second
)

// ObserveBacklog makes scrapes report the backlog of each consumer and the
// age of its oldest request, read with read. A reading is reused for
// cacheFor (several Prometheus servers, or a dashboard's own scrapes, cost
// no more than one reading per cacheFor) and bounded by timeout; the ages
// are computed at each scrape from the stored times, so they stay exact
// while a reading is reused. A failed or timed-out reading reports the
// consumers it did read and counts an error. A later call replaces read.
func (m *Metrics) ObserveBacklog(read BacklogReader, cacheFor, timeout time.Duration) {
	if m == nil {
		return
	}
	m.backlog.mu.Lock()
	defer m.backlog.mu.Unlock()
	m.backlog.read, m.backlog.cacheFor, m.backlog.timeout = read, cacheFor, timeout
	m.backlog.readAt = time.Time{}
}

// backlogCollector reports the backlog gauges from a cached reading.
type backlogCollector struct {
	now func() time.Time

	mu       sync.Mutex // held during a reading: concurrent scrapes share it
	read     BacklogReader
	cacheFor time.Duration
	timeout  time.Duration
	readAt   time.Time
	last     []Backlog

	requests, oldestAge *prometheus.Desc
	errors              prometheus.Counter
}

// consumerLabels is the fixed list of the "action" label of the backlog
// gauges: every action and operation, the parked consumer, other.
var consumerLabels = func() []string {
	return append(slices.Clone(actionLabels), ConsumerParked, Other)
}()

func newBacklogCollector() *backlogCollector {
	return &backlogCollector{
		now: time.Now,
		requests: prometheus.NewDesc(Namespace+"_backlog_requests",
			"Requests waiting for each durable consumer of the request stream: pending (not yet delivered) plus ack pending (delivered, not settled, deferred ones included), by action (each creation action and lifecycle operation, and parked: copies waiting for an earlier request about the same user). Read from JetStream at scrape time, at most every 5 s; the same value on every replica.",
			[]string{"action"}, nil),
		oldestAge: prometheus.NewDesc(Namespace+"_backlog_oldest_age_seconds",
			"Seconds since the request stream stored the oldest request the consumer of the action has not settled (the first message after the consumer's ack floor on its filter subject); 0 when none waits.",
			[]string{"action"}, nil),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "backlog_read_errors_total",
			Help: "Readings of the consumers' backlog from JetStream that failed or timed out, in part or whole; the consumers not read have no backlog series in that scrape.",
		}),
	}
}

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.requests
	ch <- c.oldestAge
	c.errors.Describe(ch)
}

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	// One series per label value: consumers that fall into "other"
	// together add up, and their oldest request is the oldest of all.
	byLabel := map[string]*Backlog{}
	var order []string
	for _, b := range c.reading() {
		action := b.Action
		if !slices.Contains(consumerLabels, action) {
			action = Other
		}
		agg, ok := byLabel[action]
		if !ok {
			agg = &Backlog{Action: action}
			byLabel[action] = agg
			order = append(order, action)
		}
		agg.Requests += b.Requests
		if !b.Oldest.IsZero() && (agg.Oldest.IsZero() || b.Oldest.Before(agg.Oldest)) {
			agg.Oldest = b.Oldest
		}
	}
	now := c.now()
	for _, action := range order {
		b := byLabel[action]
		age := 0.0
		if !b.Oldest.IsZero() {
			age = max(now.Sub(b.Oldest).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(c.requests, prometheus.GaugeValue, float64(b.Requests), action)
		ch <- prometheus.MustNewConstMetric(c.oldestAge, prometheus.GaugeValue, age, action)
	}
	c.errors.Collect(ch)
}

// reading returns the cached reading, reading again when it is older than
// cacheFor. Nothing is reported before ObserveBacklog.
func (c *backlogCollector) reading() []Backlog {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.read == nil {
		return nil
	}
	now := c.now()
	if !c.readAt.IsZero() && now.Sub(c.readAt) < c.cacheFor {
		return c.last
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	got, err := c.read(ctx)
	if err != nil {
		c.errors.Inc()
	}
	c.last, c.readAt = got, now
	return got
}
