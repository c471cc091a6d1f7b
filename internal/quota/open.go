package quota

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/audit"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/topology"
)

// ErrScope is returned by Open for a scope that is neither
// messages.ActionCreate's nor ScopeAll.
var ErrScope = errors.New("quota: want the scope create or all")

// Open opens scope's gate before its reset, for every replica (OpenGate),
// resumes the consumers the gate paused (the replicas resume them too
// when they see the gate gone, but none may be running), and records an
// audit event (Kind "quota", Verb "opened", Subject scope) with actor,
// reason and the gate it opened. It is the one implementation behind
// `consumer quota open` and the console.
//
// It fails, changing nothing, with ErrScope, audit.ErrNoActor or
// audit.ErrNoReason, and with an error matching ErrGateOpen when the gate
// is not closed; once the gate is open, with an error saying so when only
// the audit event could not be recorded. A missing bucket is an error
// matching jetstream.ErrBucketNotFound.
func Open(ctx context.Context, js jetstream.JetStream, t topology.Topology, scope, actor, reason string, now time.Time) (Gate, audit.CloudEvent, error) {
	switch {
	case scope != string(messages.ActionCreate) && scope != ScopeAll:
		return Gate{}, audit.CloudEvent{}, fmt.Errorf("%w, got %q", ErrScope, scope)
	case strings.TrimSpace(actor) == "":
		return Gate{}, audit.CloudEvent{}, audit.ErrNoActor
	case strings.TrimSpace(reason) == "":
		return Gate{}, audit.CloudEvent{}, audit.ErrNoReason
	}
	kv, err := js.KeyValue(ctx, t.QuotaBucket)
	if err != nil {
		return Gate{}, audit.CloudEvent{}, fmt.Errorf("quota: bucket %s: %w", t.QuotaBucket, err)
	}
	gt, err := OpenGate(ctx, kv, scope, now)
	if err != nil {
		return gt, audit.CloudEvent{}, err
	}
	for _, a := range topology.Consumers(topology.Actions()) {
		if gt.Covers(a) {
			_, _ = js.ResumeConsumer(ctx, t.RequestStream, t.ConsumerName(a))
		}
	}
	ev, err := audit.Publish(context.WithoutCancel(ctx), js, t, audit.Event{Kind: "quota", Verb: "opened", Subject: scope, Actor: actor, Reason: reason,
		Data: map[string]any{"scope": scope, "until": gt.Until.UTC().Format(time.RFC3339), "closed_by": gt.ClosedBy, "gate_reason": gt.Reason}}, now)
	if err != nil {
		return gt, ev, fmt.Errorf("quota: the %s gate is open, but recording it failed: %w", scope, err)
	}
	return gt, ev, nil
}
