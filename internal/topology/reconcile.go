package topology

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// AutoReplicas is the Options.Replicas value that asks for as many replicas
// as the JetStream cluster has peers, at most MaxAutoReplicas: one on a
// single server.
const AutoReplicas = 0

// MaxAutoReplicas caps AutoReplicas: three survive the loss of one server
// and keep a quorum, which is what the NATS documentation advises.
const MaxAutoReplicas = 3

// Options configure Reconcile.
type Options struct {
	// Replicas is the replica count of every stream and bucket Reconcile
	// creates or raises: AutoReplicas or an explicit number. Existing ones
	// are never lowered.
	Replicas int
	// Actions are the actions whose durable consumers are reconciled.
	Actions []string
	// AckWait and MaxAckPending go into every durable consumer.
	AckWait       time.Duration
	MaxAckPending int
}

// Change is one difference Reconcile found between a resource and the
// contract: either changed to the contract's value, or kept as it was
// (Kept) because the contract does not own it or cannot lower it.
type Change struct {
	// Resource is e.g. "stream ZOOM_USERS" or "consumer zoom-provisioner-create".
	Resource string
	// Field is the setting, e.g. "replicas" or "max_age"; "created" for a
	// resource Reconcile created.
	Field    string
	From, To string
	// Kept is true when the existing value stays.
	Kept bool
	// Why says why, for the log line.
	Why string
}

// String renders the change for a log line.
func (c Change) String() string {
	switch {
	case c.Field == "created":
		return fmt.Sprintf("%s created (%s)", c.Resource, c.To)
	case c.Kept:
		return fmt.Sprintf("%s: %s kept at %s (%s)", c.Resource, c.Field, c.From, c.Why)
	default:
		return fmt.Sprintf("%s: %s changed from %s to %s", c.Resource, c.Field, c.From, c.To)
	}
}

// ErrPlacement is matched by the error Reconcile returns when the cluster
// cannot place as many replicas as Options.Replicas explicitly asks for.
var ErrPlacement = errors.New("topology: the JetStream cluster cannot place the replicas asked for")

// ErrIncompatible is matched by the error Reconcile returns when an
// existing resource has a setting that cannot be changed and that the
// service cannot work with (a request stream without WorkQueue retention).
var ErrIncompatible = errors.New("topology: existing resource is incompatible")

// Reconcile creates the streams, buckets and durable consumers of t, or
// brings existing ones in line with the contract. It reads each existing
// resource, sets only the fields the contract owns, keeps the rest (an
// operator's placement, MaxBytes, sources, metadata, the dead-letter
// stream's max age), raises the replica count to Options.Replicas but
// never lowers it, and updates only when something differs. Several
// replicas may reconcile at once: they compute the same result.
//
// It returns every change made or difference kept, for the caller to log.
func Reconcile(ctx context.Context, js jetstream.JetStream, t Topology, opts Options) ([]Change, error) {
	r := &reconciler{js: js, explicit: opts.Replicas, auto: MaxAutoReplicas}
	if js.Conn().ConnectedClusterName() == "" {
		// A single server cannot hold more than one replica.
		r.auto = 1
	}
	var steps []func(context.Context) error
	for _, s := range []struct {
		cfg  jetstream.StreamConfig
		kind streamKind
	}{
		{t.RequestStreamConfig(), requestStream},
		{t.ResultStreamConfig(), resultStream},
		{t.DeadLetterStreamConfig(), deadLetterStream},
	} {
		steps = append(steps, func(ctx context.Context) error { return r.stream(ctx, s.cfg, s.kind) })
	}
	for _, kv := range t.BucketConfigs() {
		steps = append(steps, func(ctx context.Context) error { return r.bucket(ctx, kv) })
	}
	for _, a := range Consumers(opts.Actions) {
		cc := t.ConsumerConfig(a, opts.AckWait, opts.MaxAckPending)
		steps = append(steps, func(ctx context.Context) error { return r.consumer(ctx, t.RequestStream, cc) })
	}
	steps = append(steps, func(ctx context.Context) error { return r.consumer(ctx, t.ResultStream, t.LedgerConsumerConfig()) })
	for _, step := range steps {
		if err := r.retry(ctx, step); err != nil {
			return r.changes, err
		}
	}
	return r.changes, nil
}

// Reconcile retries a step whose API call got no answer or a "JetStream
// temporarily unavailable" (a cluster electing its meta leader, as right
// after it starts) for up to reconcileBudget, each try bounded by
// apiTimeout. Every step is safe to repeat: it reads before it writes.
const (
	reconcileBudget = time.Minute
	apiTimeout      = 5 * time.Second
)

// Retry runs one JetStream API step (binding a stream, bucket or consumer)
// as Reconcile runs its own: again through an election, for up to
// reconcileBudget, each try bounded by apiTimeout; an error that does not
// go away by itself (not found, say) returns at once.
func Retry(ctx context.Context, step func(context.Context) error) error {
	return (&reconciler{}).retry(ctx, step)
}

func (r *reconciler) retry(ctx context.Context, step func(context.Context) error) error {
	deadline := time.Now().Add(reconcileBudget)
	for try := 1; ; try++ {
		mark := len(r.changes)
		tctx, cancel := context.WithTimeout(ctx, apiTimeout)
		err := step(tctx)
		cancel()
		if err == nil || ctx.Err() != nil || !transient(err) || time.Now().After(deadline) {
			return err
		}
		r.changes = r.changes[:mark]
		t := time.NewTimer(min(time.Duration(try)*250*time.Millisecond, 2*time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// transient reports whether err may go away by itself: no answer in time,
// no responders, or the cluster temporarily unavailable (10008).
func transient(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == 10008 || apiErr.Code == 503 && !placementError(err)) {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// Check verifies that everything the service needs exists, for when an
// operator provisions (PROVISION_STREAMS=false).
func Check(ctx context.Context, js jetstream.JetStream, t Topology, actions []string) error {
	for _, sc := range t.StreamConfigs() {
		if _, err := js.Stream(ctx, sc.Name); err != nil {
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				return fmt.Errorf("topology: stream %s does not exist (create it from deploy/ or enable provisioning)", sc.Name)
			}
			return fmt.Errorf("topology: stream %s: %w", sc.Name, err)
		}
	}
	for _, kv := range t.BucketConfigs() {
		if _, err := js.KeyValue(ctx, kv.Bucket); err != nil {
			return fmt.Errorf("topology: key-value bucket %s: %w", kv.Bucket, err)
		}
	}
	for _, a := range Consumers(actions) {
		if _, err := js.Consumer(ctx, t.RequestStream, t.ConsumerName(a)); err != nil {
			return fmt.Errorf("topology: consumer %s: %w", t.ConsumerName(a), err)
		}
	}
	if _, err := js.Consumer(ctx, t.ResultStream, t.ConsumerName(LedgerConsumer)); err != nil {
		return fmt.Errorf("topology: consumer %s of stream %s: %w", t.ConsumerName(LedgerConsumer), t.ResultStream, err)
	}
	return nil
}

type reconciler struct {
	js jetstream.JetStream
	// explicit is Options.Replicas when not AutoReplicas.
	explicit int
	// auto is the replica count auto resolves to: MaxAutoReplicas on a
	// cluster until the cluster fails to place that many.
	auto    int
	changes []Change
}

func (r *reconciler) note(c Change) { r.changes = append(r.changes, c) }

// placementError reports whether err is the server refusing a replica
// count: not clustered (10074), no suitable peers (10005), insufficient
// resources (10023) or storage (10047) on the peers.
func placementError(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case 10074, 10005, 10023, 10047:
		return true
	}
	return false
}

// place applies a create or update with the replica count the options ask
// for, never fewer than existing (zero: the resource is new). With auto it
// steps down while the cluster cannot place that many and remembers the
// count for the resources that follow; an explicit count that cannot be
// placed is an ErrPlacement.
func (r *reconciler) place(resource string, existing int, apply func(replicas int) error) (int, error) {
	want := r.auto
	if r.explicit > 0 {
		want = r.explicit
	}
	floor := max(existing, 1)
	if want <= existing {
		return existing, apply(existing)
	}
	for n := want; n >= floor; n-- {
		err := apply(n)
		if err == nil {
			if n < want {
				r.note(Change{Resource: resource, Field: "replicas", From: strconv.Itoa(want), To: strconv.Itoa(n),
					Why: "STREAM_REPLICAS=auto: the cluster could not place " + strconv.Itoa(want)})
				r.auto = n
			}
			return n, nil
		}
		if !placementError(err) {
			return 0, err
		}
		if r.explicit > 0 {
			return 0, fmt.Errorf("%w: %d replicas of %s: %v", ErrPlacement, n, resource, err)
		}
		if n == floor {
			return 0, err
		}
	}
	return 0, nil // unreachable: the loop returns at floor
}

type streamKind int

const (
	requestStream streamKind = iota
	resultStream
	deadLetterStream
)

func (r *reconciler) stream(ctx context.Context, want jetstream.StreamConfig, kind streamKind) error {
	resource := "stream " + want.Name
	s, err := r.js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return r.create(resource, func(n int) error {
			c := want
			c.Replicas = n
			_, err := r.js.CreateStream(ctx, c)
			return err
		}, jetstream.ErrStreamNameAlreadyInUse, func() error { return r.stream(ctx, want, kind) })
	}
	if err != nil {
		return fmt.Errorf("topology: %s: %w", resource, err)
	}
	cur := s.CachedInfo().Config
	merged, err := r.mergeStream(resource, cur, want, kind)
	if err != nil {
		return err
	}
	return r.update(ctx, resource, cur, merged)
}

// update writes merged over cur, the stream's configuration, with the
// replica count place settles on, and only when something differs.
func (r *reconciler) update(ctx context.Context, resource string, cur, merged jetstream.StreamConfig) error {
	if _, err := r.place(resource, cur.Replicas, func(n int) error {
		m := merged
		m.Replicas = n
		if reflect.DeepEqual(m, cur) {
			return nil
		}
		if _, err := r.js.UpdateStream(ctx, m); err != nil {
			return err
		}
		if n != cur.Replicas {
			r.note(Change{Resource: resource, Field: "replicas", From: strconv.Itoa(cur.Replicas), To: strconv.Itoa(n)})
		}
		return nil
	}); err != nil {
		return fmt.Errorf("topology: update %s: %w", resource, err)
	}
	return nil
}

// create places a new resource with make; when another replica created it
// meanwhile (raced), it reconciles that one instead.
func (r *reconciler) create(resource string, make func(replicas int) error, raced error, again func() error) error {
	n, err := r.place(resource, 0, make)
	if errors.Is(err, raced) {
		return again()
	}
	if err != nil {
		return fmt.Errorf("topology: create %s: %w", resource, err)
	}
	r.note(Change{Resource: resource, Field: "created", To: replicasText(n)})
	return nil
}

func replicasText(n int) string {
	if n == 1 {
		return "1 replica"
	}
	return strconv.Itoa(n) + " replicas"
}

// mergeStream returns cur with the fields the contract owns set from want.
// It records each change, and each notable difference it leaves alone.
func (r *reconciler) mergeStream(resource string, cur, want jetstream.StreamConfig, kind streamKind) (jetstream.StreamConfig, error) {
	m := cur
	if cur.Retention != want.Retention {
		return m, fmt.Errorf("%w: %s has %s retention; the service needs %s, and retention cannot be changed (move the stream aside or use another name)",
			ErrIncompatible, resource, cur.Retention, want.Retention)
	}
	changed := func(field string, from, to any) {
		r.note(Change{Resource: resource, Field: field, From: fmt.Sprint(from), To: fmt.Sprint(to)})
	}
	kept := func(field string, from any, why string) {
		r.note(Change{Resource: resource, Field: field, From: fmt.Sprint(from), Kept: true, Why: why})
	}
	if missing := missingSubjects(cur.Subjects, want.Subjects); len(missing) > 0 {
		m.Subjects = append(slices.Clone(cur.Subjects), missing...)
		changed("subjects", cur.Subjects, m.Subjects)
	}
	if extra := missingSubjects(want.Subjects, cur.Subjects); len(extra) > 0 {
		kept("extra subjects", extra, "not the contract's; kept")
	}
	if cur.Storage != want.Storage {
		kept("storage", cur.Storage, "storage cannot be changed after creation")
	}
	if cur.Duplicates != want.Duplicates {
		m.Duplicates = want.Duplicates
		changed("duplicate_window", cur.Duplicates, want.Duplicates)
	}
	if m.Description == "" {
		m.Description = want.Description
	}
	switch kind {
	case requestStream:
		if cur.MaxMsgSize != want.MaxMsgSize {
			m.MaxMsgSize = want.MaxMsgSize
			changed("max_msg_size", cur.MaxMsgSize, want.MaxMsgSize)
		}
		if cur.Discard != want.Discard {
			m.Discard = want.Discard
			changed("discard", cur.Discard, want.Discard)
		}
		if cur.MaxAge > 0 {
			kept("max_age", cur.MaxAge, "set by the operator: requests older than that are dropped unhandled")
		}
		if !cur.AllowDirect {
			m.AllowDirect = true
			changed("allow_direct", false, true)
		}
	case resultStream:
		if cur.MaxAge != want.MaxAge {
			m.MaxAge = want.MaxAge
			changed("max_age", cur.MaxAge, want.MaxAge)
		}
	case deadLetterStream:
		if cur.MaxAge != want.MaxAge {
			kept("max_age", cur.MaxAge, "set by the operator")
		}
	}
	if cur.MaxBytes > 0 {
		kept("max_bytes", cur.MaxBytes, "set by the operator")
	}
	if cur.MaxMsgs > 0 {
		kept("max_msgs", cur.MaxMsgs, "set by the operator")
	}
	if cur.Placement != nil {
		kept("placement", placementText(cur.Placement), "set by the operator")
	}
	if cur.Mirror != nil || len(cur.Sources) > 0 {
		kept("sources", len(cur.Sources), "set by the operator")
	}
	return m, nil
}

// missingSubjects returns the subjects of want that subjects lacks.
func missingSubjects(subjects, want []string) []string {
	var out []string
	for _, w := range want {
		if !slices.Contains(subjects, w) {
			out = append(out, w)
		}
	}
	return out
}

func placementText(p *jetstream.Placement) string {
	parts := []string{}
	if p.Cluster != "" {
		parts = append(parts, "cluster "+p.Cluster)
	}
	if len(p.Tags) > 0 {
		parts = append(parts, "tags "+strings.Join(p.Tags, ","))
	}
	return strings.Join(parts, ", ")
}

// bucket creates a key-value bucket, or reconciles the stream behind an
// existing one directly: UpdateKeyValue would rebuild the whole stream
// configuration from the bucket's and drop what an operator added.
func (r *reconciler) bucket(ctx context.Context, want jetstream.KeyValueConfig) error {
	resource := "bucket " + want.Bucket
	s, err := r.js.Stream(ctx, kvStream(want.Bucket))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return r.create(resource, func(n int) error {
			c := want
			c.Replicas = n
			_, err := r.js.CreateKeyValue(ctx, c)
			return err
		}, jetstream.ErrBucketExists, func() error { return r.bucket(ctx, want) })
	}
	if err != nil {
		return fmt.Errorf("topology: %s: %w", resource, err)
	}
	cur := s.CachedInfo().Config
	m := cur
	if int64(want.History) != cur.MaxMsgsPerSubject {
		m.MaxMsgsPerSubject = int64(want.History)
		r.note(Change{Resource: resource, Field: "history", From: fmt.Sprint(cur.MaxMsgsPerSubject), To: fmt.Sprint(want.History)})
	}
	if want.TTL != cur.MaxAge {
		m.MaxAge = want.TTL
		r.note(Change{Resource: resource, Field: "ttl", From: cur.MaxAge.String(), To: want.TTL.String()})
	}
	if m.Description == "" {
		m.Description = want.Description
	}
	return r.update(ctx, resource, cur, m)
}

// consumer creates a durable consumer or sets the fields the contract owns
// on an existing one. A new one takes its stream's replica count (zero); an
// existing one with fewer peers than its stream is raised to the stream's.
func (r *reconciler) consumer(ctx context.Context, stream string, want jetstream.ConsumerConfig) error {
	resource := "consumer " + want.Durable
	c, err := r.js.Consumer(ctx, stream, want.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		_, err := r.js.CreateConsumer(ctx, stream, want)
		if errors.Is(err, jetstream.ErrConsumerExists) {
			return r.consumer(ctx, stream, want)
		}
		if err != nil {
			return fmt.Errorf("topology: create %s: %w", resource, err)
		}
		r.note(Change{Resource: resource, Field: "created", To: "replicas as its stream"})
		return nil
	}
	if err != nil {
		return fmt.Errorf("topology: %s: %w", resource, err)
	}
	cur := c.CachedInfo().Config
	if cur.AckPolicy != want.AckPolicy {
		return fmt.Errorf("%w: %s has ack policy %s; the service needs %s", ErrIncompatible, resource, cur.AckPolicy, want.AckPolicy)
	}
	m := cur
	set := func(field string, from, to any, apply func()) {
		if !reflect.DeepEqual(from, to) {
			apply()
			r.note(Change{Resource: resource, Field: field, From: fmt.Sprint(from), To: fmt.Sprint(to)})
		}
	}
	if len(cur.FilterSubjects) > 0 || cur.FilterSubject != want.FilterSubject {
		set("filter_subject", cur.FilterSubject+strings.Join(cur.FilterSubjects, ","), want.FilterSubject, func() {
			m.FilterSubject, m.FilterSubjects = want.FilterSubject, nil
		})
	}
	set("ack_wait", cur.AckWait, want.AckWait, func() { m.AckWait = want.AckWait })
	set("max_deliver", cur.MaxDeliver, want.MaxDeliver, func() { m.MaxDeliver = want.MaxDeliver })
	set("max_ack_pending", cur.MaxAckPending, want.MaxAckPending, func() { m.MaxAckPending = want.MaxAckPending })
	if m.Description == "" {
		m.Description = want.Description
	}
	// A consumer made with zero replicas took its stream's count at the
	// time, and the server does not scale it when the stream is scaled
	// later: raise it to the stream's, never lower it.
	if si, err := r.js.Stream(ctx, stream); err == nil {
		want := si.CachedInfo().Config.Replicas
		if have := consumerPeers(c.CachedInfo()); have < want {
			set("replicas", have, want, func() { m.Replicas = want })
		}
	}
	if reflect.DeepEqual(m, cur) {
		return nil
	}
	if _, err := r.js.UpdateConsumer(ctx, stream, m); err != nil {
		return fmt.Errorf("topology: update %s: %w", resource, err)
	}
	return nil
}

// consumerPeers is how many servers hold a consumer: its configured count,
// else what the cluster reports, else one.
func consumerPeers(info *jetstream.ConsumerInfo) int {
	if info.Config.Replicas > 0 {
		return info.Config.Replicas
	}
	if info.Cluster != nil && info.Cluster.Leader != "" {
		return 1 + len(info.Cluster.Replicas)
	}
	return 1
}
