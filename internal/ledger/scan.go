package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/topology"
)

// scanTimeout bounds the wait for the next message of a scan: the stream
// holds it, so only a lost server makes it long.
const scanTimeout = 30 * time.Second

// lastResult returns the result stream's last sequence (0 when empty).
func lastResult(ctx context.Context, js jetstream.JetStream, topo topology.Topology) (uint64, error) {
	s, err := js.Stream(ctx, topo.ResultStream)
	if err != nil {
		return 0, fmt.Errorf("ledger: stream %s: %w", topo.ResultStream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("ledger: stream %s: %w", topo.ResultStream, err)
	}
	if info.State.Msgs == 0 {
		return 0, nil
	}
	return info.State.LastSeq, nil
}

// scanResults calls fn with every message of the result stream up to and
// including sequence through, in order, through an ordered consumer of
// its own (which needs no durable consumer and acknowledges nothing).
func scanResults(ctx context.Context, js jetstream.JetStream, topo topology.Topology, through uint64, fn func(m jetstream.Msg, md *jetstream.MsgMetadata) error) error {
	if through == 0 {
		return nil
	}
	oc, err := js.OrderedConsumer(ctx, topo.ResultStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{topo.ResultPrefix + ".>"},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("ledger: read %s: %w", topo.ResultStream, err)
	}
	it, err := oc.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		return fmt.Errorf("ledger: read %s: %w", topo.ResultStream, err)
	}
	defer it.Stop()
	for {
		nctx, cancel := context.WithTimeout(ctx, scanTimeout)
		m, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("ledger: read %s: no message for %v before sequence %d", topo.ResultStream, scanTimeout, through)
			}
			return fmt.Errorf("ledger: read %s: %w", topo.ResultStream, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("ledger: read %s: %w", topo.ResultStream, err)
		}
		if md.Sequence.Stream > through {
			return nil
		}
		if err := fn(m, md); err != nil {
			return err
		}
		if md.Sequence.Stream == through || md.NumPending == 0 {
			return nil
		}
	}
}
