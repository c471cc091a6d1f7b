// Package topology names and defines everything the provisioning consumer
// keeps in JetStream: the request, result and dead-letter streams, one
// durable consumer per action, the attempts, quota and ledger buckets, and
// the ledger's consumer of the results. Reconcile
// creates them or brings existing ones in line with the contract, on one
// server or a cluster, without ever lowering their redundancy or
// overwriting what an operator set.
package topology

import (
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/messages"
)

// Topology names every stream, subject, consumer and bucket the service
// uses. The defaults are the external contract; see Default.
type Topology struct {
	// RequestStream holds the requests (WorkQueue retention).
	RequestStream string
	// RequestPrefix is the creation subject prefix: requests arrive on
	// RequestPrefix + "." + action.
	RequestPrefix string
	// OperationPrefix is the prefix of the lifecycle subjects: operation
	// requests arrive on OperationPrefix + "." + operation (update,
	// deactivate, activate, delete).
	OperationPrefix string
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
	// AttemptsBucket counts transient failures per request, so quota
	// deferrals never count toward MaxAttempts.
	AttemptsBucket string
	// QuotaBucket holds the quota gates ("gate.<scope>") and replica leases
	// ("replica.<id>") every replica shares.
	QuotaBucket string
	// LedgerBucket holds the per-user ledger, a projection of the result
	// stream (internal/ledger): one entry per user, keyed by a hash of the
	// user's key, never by the address.
	LedgerBucket string
	// The de-duplication windows of the three streams.
	RequestDuplicates, ResultDuplicates, DeadLetterDuplicates time.Duration
	// ResultMaxAge is how long results are kept; zero keeps them forever.
	ResultMaxAge time.Duration
	// DeadLetterMaxAge is how long dead letters are kept when the service
	// creates the stream; zero keeps them forever. An existing stream keeps
	// its own.
	DeadLetterMaxAge time.Duration
}

// Default returns the contract's names and limits.
func Default() Topology {
	return Topology{
		RequestStream:        "ZOOM_USERS",
		RequestPrefix:        "zoom.users.create",
		OperationPrefix:      "zoom.users",
		ResultStream:         "ZOOM_USERS_RESULTS",
		ResultPrefix:         "zoom.users.result",
		DeadLetterStream:     "ZOOM_USERS_DLQ",
		DeadLetterPrefix:     "zoom.users.dlq",
		ConsumerPrefix:       "zoom-provisioner",
		AttemptsBucket:       "zoom_attempts",
		QuotaBucket:          "zoom_quota",
		LedgerBucket:         "zoom_ledger",
		RequestDuplicates:    24 * time.Hour,
		ResultDuplicates:     24 * time.Hour,
		DeadLetterDuplicates: 24 * time.Hour,
		ResultMaxAge:         30 * 24 * time.Hour,
	}
}

// MaxRequestBytes is the request stream's message size limit (body and
// headers): four times the largest valid body (messages.MaxBodyBytes), so
// an oversized-but-storable request still gets a clear dead letter, and
// every stored request fits in its dead letter under NATS's 1 MiB.
const MaxRequestBytes = 256 << 10

// RequestSubject is the subject requests of action (a creation action or
// a lifecycle operation) are published on.
func (t Topology) RequestSubject(action string) string {
	if messages.Operation(action).Valid() {
		return t.OperationPrefix + "." + action
	}
	return t.RequestPrefix + "." + action
}

// ActionOf returns the action a request subject names: a lifecycle
// operation's subject, or RequestPrefix followed by exactly one token. That
// token is not checked against the known actions: the caller reports an
// unknown one.
func (t Topology) ActionOf(subject string) (string, bool) {
	for _, op := range messages.Operations {
		if subject == t.OperationPrefix+"."+string(op) {
			return string(op), true
		}
	}
	return messages.ActionFromSubject(subject, t.RequestPrefix)
}

// RequestSubjects are the request stream's subjects: every creation
// subject, the four lifecycle subjects, and the parked copies' subjects.
func (t Topology) RequestSubjects() []string {
	out := []string{t.RequestPrefix + ".>"}
	for _, op := range messages.Operations {
		out = append(out, t.OperationPrefix+"."+string(op))
	}
	return append(out, t.ParkedFilter())
}

// ParkedConsumer is the consumer of parked copies (see ParkedSubject).
const ParkedConsumer = "parked"

// ParkedSubject is where the service stores the parked copy of a request
// of action: a request that waits long for an earlier one about its user
// waits there, off its action consumer's ack-pending slots. Publishers
// never publish on it.
func (t Topology) ParkedSubject(action string) string {
	return t.OperationPrefix + ".parked." + action
}

// ParkedFilter matches every parked subject.
func (t Topology) ParkedFilter() string { return t.OperationPrefix + ".parked.>" }

// ParkedAction returns the action of a parked subject.
func (t Topology) ParkedAction(subject string) (string, bool) {
	a, ok := messages.ActionFromSubject(subject, t.OperationPrefix+".parked")
	if !ok || (!messages.Action(a).Valid() && !messages.Operation(a).Valid()) {
		return "", false
	}
	return a, true
}

// Actions are every action and operation, the default of Config.Actions.
func Actions() []string {
	var out []string
	for _, a := range messages.Actions {
		out = append(out, string(a))
	}
	for _, o := range messages.Operations {
		out = append(out, string(o))
	}
	return out
}

// ResultSubject is the subject results with outcome are published on.
func (t Topology) ResultSubject(o messages.Outcome) string { return t.ResultPrefix + "." + string(o) }

// DeadLetterSubject is the subject dead letters of action go to.
func (t Topology) DeadLetterSubject(action string) string { return t.DeadLetterPrefix + "." + action }

// ConsumerName is the durable consumer carrying requests of action.
func (t Topology) ConsumerName(action string) string { return t.ConsumerPrefix + "-" + action }

// RequestID is a request's id: its Nats-Msg-Id, or, when the publisher
// sent none, the stream, its incarnation and the request's position. The
// incarnation (Incarnation) keeps the ids of a recreated stream, whose
// sequences start again at 1, from repeating earlier ones.
func (t Topology) RequestID(msgID, incarnation string, pos uint64) string {
	if msgID != "" {
		return msgID
	}
	return t.RequestStream + "-" + incarnation + "-" + strconv.FormatUint(pos, 10)
}

// Incarnation names one incarnation of a stream: its creation time, in
// base-36 nanoseconds.
func Incarnation(created time.Time) string {
	return strconv.FormatInt(created.UnixNano(), 36)
}

// RequestStreamConfig is the request stream's definition.
func (t Topology) RequestStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        t.RequestStream,
		Description: "Zoom user provisioning requests (work queue)",
		Subjects:    t.RequestSubjects(),
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Duplicates:  t.RequestDuplicates,
		// Refuse oversized requests at publish time: the publisher learns
		// at once.
		MaxMsgSize: MaxRequestBytes,
		Discard:    jetstream.DiscardNew,
		// The per-user order reads the stream forward in batches, which
		// only direct gets offer (package order, readBatch).
		AllowDirect: true,
	}
}

// ResultStreamConfig is the result stream's definition.
func (t Topology) ResultStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        t.ResultStream,
		Description: "Zoom user provisioning results (CloudEvents)",
		Subjects:    []string{t.ResultPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      t.ResultMaxAge,
		Duplicates:  t.ResultDuplicates,
	}
}

// DeadLetterStreamConfig is the dead-letter stream's definition.
func (t Topology) DeadLetterStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        t.DeadLetterStream,
		Description: "Zoom user provisioning dead letters",
		Subjects:    []string{t.DeadLetterPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      t.DeadLetterMaxAge,
		Duplicates:  t.DeadLetterDuplicates,
	}
}

// StreamConfigs returns the three stream definitions: requests, results,
// dead letters. deploy/nats holds the same definitions as JSON.
func (t Topology) StreamConfigs() []jetstream.StreamConfig {
	return []jetstream.StreamConfig{t.RequestStreamConfig(), t.ResultStreamConfig(), t.DeadLetterStreamConfig()}
}

// ConsumerConfig returns the durable pull consumer for action. Replicas is
// left at zero, so the consumer has as many replicas as its stream.
func (t Topology) ConsumerConfig(action string, ackWait time.Duration, maxAckPending int) jetstream.ConsumerConfig {
	if action == ParkedConsumer {
		return t.parkedConsumerConfig(ackWait)
	}
	return jetstream.ConsumerConfig{
		Durable:       t.ConsumerName(action),
		Description:   "Zoom provisioner: " + action + " requests",
		FilterSubject: t.RequestSubject(action),
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

// parkedConsumerConfig is the consumer of parked copies. It has no
// ack-pending limit: a parked request waits there, handed back until its
// turn, and must never keep another from its turn.
func (t Topology) parkedConsumerConfig(ackWait time.Duration) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       t.ConsumerName(ParkedConsumer),
		Description:   "Zoom provisioner: parked requests",
		FilterSubject: t.ParkedFilter(),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1,
		MaxAckPending: -1,
	}
}

// Consumers are the durable consumers a service serving actions binds:
// one per action, and the parked copies' consumer.
func Consumers(actions []string) []string {
	return append(slices.Clone(actions), ParkedConsumer)
}

// LedgerConsumer is the name, after ConsumerPrefix, of the durable
// consumer of the result stream that feeds the ledger.
const LedgerConsumer = "ledger"

// The ledger consumer's ack wait and ack-pending limit. They are fixed,
// not ACK_WAIT and MAX_ACK_PENDING: applying one result to the ledger takes
// milliseconds, and the replicas share the consumer.
const (
	LedgerAckWait       = 30 * time.Second
	LedgerMaxAckPending = 1000
)

// LedgerConsumerConfig returns the durable pull consumer of the result
// stream that feeds the ledger: every event on the result subjects, from
// the first stored, each acknowledged once applied. Every replica pulls
// from it; replicas is left at zero, as many as the result stream.
func (t Topology) LedgerConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       t.ConsumerName(LedgerConsumer),
		Description:   "Zoom provisioner: the per-user ledger, from the results",
		FilterSubject: t.ResultPrefix + ".>",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       LedgerAckWait,
		MaxDeliver:    -1,
		MaxAckPending: LedgerMaxAckPending,
	}
}

// AttemptsConfig returns the bucket of failure counts. Entries expire after
// a week, far longer than any retry chain.
func (t Topology) AttemptsConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      t.AttemptsBucket,
		Description: "Zoom provisioner: transient failures per request",
		History:     1,
		TTL:         7 * 24 * time.Hour,
		Storage:     jetstream.FileStorage,
	}
}

// QuotaConfig returns the bucket of quota gates and replica leases. Entries
// do not expire by age (a gate may last until the next 00:00 UTC); the live
// replicas purge dead replicas' leases.
func (t Topology) QuotaConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      t.QuotaBucket,
		Description: "Zoom provisioner: quota gates and replica leases",
		History:     1,
		Storage:     jetstream.FileStorage,
	}
}

// LedgerConfig returns the bucket of the per-user ledger. One revision per
// key, written with compare-and-set; a user with no activity for
// ResultMaxAge (the results' retention) expires, so the ledger never holds
// what the result stream no longer has. Zero keeps entries forever, as it
// keeps results.
func (t Topology) LedgerConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      t.LedgerBucket,
		Description: "Zoom provisioner: per-user ledger of the results",
		History:     1,
		TTL:         t.ResultMaxAge,
		Storage:     jetstream.FileStorage,
	}
}

// BucketConfigs returns the three bucket definitions: attempts, quota,
// ledger.
func (t Topology) BucketConfigs() []jetstream.KeyValueConfig {
	return []jetstream.KeyValueConfig{t.AttemptsConfig(), t.QuotaConfig(), t.LedgerConfig()}
}

// kvStream is the name of the stream behind a key-value bucket.
func kvStream(bucket string) string { return "KV_" + bucket }
