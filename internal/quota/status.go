package quota

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/topology"
)

// Status is the shared quota state `consumer quota` prints.
type Status struct {
	// Gates are the gates in the quota bucket (open ones included, with
	// their last reset time).
	Gates []Gate `json:"gates"`
	// Replicas are the live replicas and their share of the account's
	// per-second budget.
	Replicas []ReplicaShare `json:"replicas"`
	// Backlog is, per action, how many requests wait in the stream and how
	// many are delivered but not yet settled (e.g. deferred).
	Backlog []Backlog `json:"backlog"`
}

// Backlog is one action's queue.
type Backlog struct {
	Action     string `json:"action"`
	Pending    uint64 `json:"pending"`
	AckPending int    `json:"ack_pending"`
	Paused     bool   `json:"paused"`
}

// Read reads the shared quota state: gates, live replicas (leases renewed
// within the lease lifetime before now) and the backlog of actions.
func Read(ctx context.Context, js jetstream.JetStream, t topology.Topology, actions []string, now time.Time) (Status, error) {
	var st Status
	kv, err := js.KeyValue(ctx, t.QuotaBucket)
	if err != nil {
		return st, err
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return st, err
	}
	var leases []lease
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				continue
			}
			return st, err
		}
		switch {
		case strings.HasPrefix(k, "gate."):
			var gt Gate
			if json.Unmarshal(e.Value(), &gt) == nil {
				st.Gates = append(st.Gates, gt)
			}
		case strings.HasPrefix(k, replicaKeyPrefix):
			var l lease
			if json.Unmarshal(e.Value(), &l) == nil && now.Sub(e.Created()) < leaseTTL {
				leases = append(leases, l)
			}
		}
	}
	st.Replicas = shares(leases)
	for _, a := range actions {
		c, err := js.Consumer(ctx, t.RequestStream, t.ConsumerName(a))
		if err != nil {
			return st, err
		}
		info, err := c.Info(ctx)
		if err != nil {
			return st, err
		}
		st.Backlog = append(st.Backlog, Backlog{Action: a, Pending: info.NumPending, AckPending: info.NumAckPending, Paused: info.Paused})
	}
	return st, nil
}
