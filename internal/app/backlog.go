package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/metrics"
	"github.com/zoomprov/consumer/internal/topology"
)

// backlogConsumers are the consumers whose backlog the metrics report:
// those of the actions this instance serves, and the consumer of parked
// copies, which every instance shares.
func backlogConsumers(actions []string) []string { return topology.Consumers(actions) }

// backlogReader reads, for each of consumers (actions, or "parked"), the
// backlog the metrics report. Per consumer it makes two JetStream API
// requests: the consumer's info (pending, ack pending, ack floor), and,
// when something waits, one message read: the first message of the
// consumer's filter subject after its ack floor, the oldest request the
// consumer has not settled, whose stored time gives the age. Both are
// exact and cost the same whatever the backlog's length. A consumer that
// does not exist (not provisioned, or not yet in this version of the
// topology) is left out without an error. The metrics call the reader
// from one scrape at a time.
func backlogReader(js jetstream.JetStream, topo topology.Topology, consumers []string) metrics.BacklogReader {
	var stream jetstream.Stream // looked up once, then only its name is used
	return func(ctx context.Context) ([]metrics.Backlog, error) {
		if stream == nil {
			s, err := js.Stream(ctx, topo.RequestStream)
			if err != nil {
				return nil, fmt.Errorf("backlog: stream %s: %w", topo.RequestStream, err)
			}
			stream = s
		}
		var out []metrics.Backlog
		var errs []error
		for _, action := range consumers {
			b, err := readBacklog(ctx, js, stream, topo, action)
			switch {
			case errors.Is(err, jetstream.ErrConsumerNotFound):
			case err != nil:
				errs = append(errs, err)
			default:
				out = append(out, b)
			}
			if ctx.Err() != nil {
				break
			}
		}
		return out, errors.Join(errs...)
	}
}

// readBacklog reads one consumer's backlog.
func readBacklog(ctx context.Context, js jetstream.JetStream, stream jetstream.Stream, topo topology.Topology, action string) (metrics.Backlog, error) {
	b := metrics.Backlog{Action: action}
	// Consumer reads the consumer's info to bind it: that one request is
	// the current info.
	c, err := js.Consumer(ctx, topo.RequestStream, topo.ConsumerName(action))
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return b, err
	}
	if err != nil {
		return b, fmt.Errorf("backlog: consumer %s: %w", topo.ConsumerName(action), err)
	}
	info := c.CachedInfo()
	b.Requests = info.NumPending + uint64(max(info.NumAckPending, 0))
	if b.Requests == 0 {
		return b, nil
	}
	filters := info.Config.FilterSubjects
	if info.Config.FilterSubject != "" {
		filters = []string{info.Config.FilterSubject}
	}
	if len(filters) == 0 {
		filters = []string{">"}
	}
	for _, f := range filters {
		m, err := stream.GetMsg(ctx, info.AckFloor.Stream+1, jetstream.WithGetMsgSubject(f))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // settled since the info was read
		}
		if err != nil {
			return b, fmt.Errorf("backlog: oldest request of %s: %w", topo.ConsumerName(action), err)
		}
		if b.Oldest.IsZero() || m.Time.Before(b.Oldest) {
			b.Oldest = m.Time
		}
	}
	return b, nil
}

// observeBacklog makes the metrics read the backlog of the consumers of
// cfg at scrape time.
func observeBacklog(m *metrics.Metrics, js jetstream.JetStream, cfg Config) {
	m.ObserveBacklog(backlogReader(js, cfg.Topology(), backlogConsumers(cfg.Actions)), metrics.BacklogCacheFor, metrics.BacklogTimeout)
}
