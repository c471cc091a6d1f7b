package provision

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/messages"
)

// Topology names every stream, subject and consumer the service uses. The
// defaults are the external contract; see DefaultTopology.
type Topology struct {
	// RequestStream holds the requests (WorkQueue retention).
	RequestStream string
	// RequestPrefix is the request subject prefix; requests arrive on
	// RequestPrefix + "." + action.
	RequestPrefix string
	// ResultStream and ResultPrefix: results go to ResultPrefix + "." +
	// outcome.
	ResultStream, ResultPrefix string
	// DeadLetterStream and DeadLetterPrefix: dead letters go to
	// DeadLetterPrefix + "." + action.
	DeadLetterStream, DeadLetterPrefix string
	// ConsumerPrefix names the durable consumers, one per action:
	// ConsumerPrefix + "-" + action. One consumer per action keeps a
	// quota-blocked action from using up another action's ack-pending
	// slots.
	ConsumerPrefix string
	// AttemptsBucket is the key-value bucket counting transient failures
	// per request, so quota deferrals never count toward MaxAttempts.
	AttemptsBucket string
	// QuotaBucket is the key-value bucket every replica shares for quota
	// gates ("gate.<scope>") and replica leases ("replica.<id>").
	QuotaBucket string
	// RequestDuplicates and ResultDuplicates are the de-duplication windows.
	RequestDuplicates, ResultDuplicates, DeadLetterDuplicates time.Duration
	// ResultMaxAge is how long results are kept; zero keeps them forever.
	ResultMaxAge time.Duration
	// DeadLetterMaxAge is how long dead letters are kept; zero keeps them
	// forever.
	DeadLetterMaxAge time.Duration
	// Replicas of each stream; zero means 1.
	Replicas int
}

// DefaultTopology returns the contract's names and limits.
func DefaultTopology() Topology {
	return Topology{
		RequestStream:        "ZOOM_USERS",
		RequestPrefix:        "zoom.users.create",
		ResultStream:         "ZOOM_USERS_RESULTS",
		ResultPrefix:         "zoom.users.result",
		DeadLetterStream:     "ZOOM_USERS_DLQ",
		DeadLetterPrefix:     "zoom.users.dlq",
		ConsumerPrefix:       "zoom-provisioner",
		AttemptsBucket:       "zoom_attempts",
		QuotaBucket:          "zoom_quota",
		RequestDuplicates:    24 * time.Hour,
		ResultDuplicates:     24 * time.Hour,
		DeadLetterDuplicates: 24 * time.Hour,
		ResultMaxAge:         30 * 24 * time.Hour,
	}
}

// MaxRequestBytes is the request stream's message size limit (body and
// headers): four times the largest valid body (messages.MaxBodyBytes), so
// an oversized-but-storable request still gets a clear dead letter.
const MaxRequestBytes = 256 << 10

// RequestSubject is the subject requests of action are published on.
func (t Topology) RequestSubject(action string) string { return t.RequestPrefix + "." + action }

// ResultSubject is the subject results with outcome are published on.
func (t Topology) ResultSubject(o messages.Outcome) string { return t.ResultPrefix + "." + string(o) }

// DeadLetterSubject is the subject dead letters of action go to.
func (t Topology) DeadLetterSubject(action string) string { return t.DeadLetterPrefix + "." + action }

// ConsumerName is the durable consumer carrying requests of action.
func (t Topology) ConsumerName(action messages.Action) string {
	return t.ConsumerPrefix + "-" + string(action)
}

func (t Topology) replicas() int {
	if t.Replicas <= 0 {
		return 1
	}
	return t.Replicas
}

// StreamConfigs returns the three stream definitions: requests, results,
// dead letters. deploy/ holds the same definitions as JSON for the nats CLI.
func (t Topology) StreamConfigs() []jetstream.StreamConfig {
	return []jetstream.StreamConfig{
		{
			Name:        t.RequestStream,
			Description: "Zoom user provisioning requests (work queue)",
			Subjects:    []string{t.RequestPrefix + ".>"},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Duplicates:  t.RequestDuplicates,
			// Refuse oversized requests at publish time: the publisher
			// learns at once, and every accepted request still fits in
			// its dead letter (body plus headers) under NATS's 1 MiB.
			MaxMsgSize: MaxRequestBytes,
			Replicas:   t.replicas(),
			Discard:    jetstream.DiscardNew,
		},
		{
			Name:        t.ResultStream,
			Description: "Zoom user provisioning results (CloudEvents)",
			Subjects:    []string{t.ResultPrefix + ".>"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			MaxAge:      t.ResultMaxAge,
			Duplicates:  t.ResultDuplicates,
			Replicas:    t.replicas(),
		},
		{
			Name:        t.DeadLetterStream,
			Description: "Zoom user provisioning dead letters",
			Subjects:    []string{t.DeadLetterPrefix + ".>"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			MaxAge:      t.DeadLetterMaxAge,
			Duplicates:  t.DeadLetterDuplicates,
			Replicas:    t.replicas(),
		},
	}
}

// ConsumerConfig returns the durable pull consumer for action.
func (t Topology) ConsumerConfig(action messages.Action, ackWait time.Duration, maxAckPending int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       t.ConsumerName(action),
		Description:   "Zoom provisioner: " + string(action) + " requests",
		FilterSubject: t.RequestSubject(string(action)),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		// No server-side limit: naks for quota deferrals count as
		// deliveries, and they must never exhaust a request. The service
		// counts transient failures itself (AttemptsBucket).
		MaxDeliver:    -1,
		MaxAckPending: maxAckPending,
	}
}

// AttemptsConfig returns the key-value bucket for failure counts. Entries
// expire after a week, far longer than any retry chain.
func (t Topology) AttemptsConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      t.AttemptsBucket,
		Description: "Zoom provisioner: transient failures per request",
		History:     1,
		TTL:         7 * 24 * time.Hour,
		Storage:     jetstream.FileStorage,
		Replicas:    t.replicas(),
	}
}

// QuotaConfig returns the key-value bucket for quota gates and replica
// leases. Entries do not expire by age (a gate may last until the next
// 00:00 UTC); dead replicas' leases are purged by the live ones.
func (t Topology) QuotaConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      t.QuotaBucket,
		Description: "Zoom provisioner: quota gates and replica leases",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    t.replicas(),
	}
}

// Provision creates or updates the streams, the key-value bucket and the
// durable consumers of actions.
func Provision(ctx context.Context, js jetstream.JetStream, t Topology, actions []messages.Action, ackWait time.Duration, maxAckPending int) error {
	for _, sc := range t.StreamConfigs() {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("provision: stream %s: %w", sc.Name, err)
		}
	}
	for _, kv := range []jetstream.KeyValueConfig{t.AttemptsConfig(), t.QuotaConfig()} {
		if _, err := js.CreateOrUpdateKeyValue(ctx, kv); err != nil {
			return fmt.Errorf("provision: key-value bucket %s: %w", kv.Bucket, err)
		}
	}
	for _, a := range actions {
		cc := t.ConsumerConfig(a, ackWait, maxAckPending)
		if _, err := js.CreateOrUpdateConsumer(ctx, t.RequestStream, cc); err != nil {
			return fmt.Errorf("provision: consumer %s: %w", cc.Durable, err)
		}
	}
	return nil
}

// Check verifies that everything the service needs exists, for when
// provisioning is left to an operator (PROVISION_STREAMS=false).
func Check(ctx context.Context, js jetstream.JetStream, t Topology, actions []messages.Action) error {
	for _, sc := range t.StreamConfigs() {
		if _, err := js.Stream(ctx, sc.Name); err != nil {
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				return fmt.Errorf("provision: stream %s does not exist (create it from deploy/ or enable provisioning)", sc.Name)
			}
			return fmt.Errorf("provision: stream %s: %w", sc.Name, err)
		}
	}
	for _, b := range []string{t.AttemptsBucket, t.QuotaBucket} {
		if _, err := js.KeyValue(ctx, b); err != nil {
			return fmt.Errorf("provision: key-value bucket %s: %w", b, err)
		}
	}
	for _, a := range actions {
		if _, err := js.Consumer(ctx, t.RequestStream, t.ConsumerName(a)); err != nil {
			return fmt.Errorf("provision: consumer %s: %w", t.ConsumerName(a), err)
		}
	}
	return nil
}
