package dlq

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/audit"
	"github.com/zoomprov/consumer/internal/topology"
)

// NoReason is the reason recorded for a replay or purge whose operator
// gave none: a reason is optional for them (required for the guard, the
// quota gates and erasure), and every audit event carries one.
const NoReason = "none given"

// maxAuditRefs bounds the dead letters one audit event names: a replay
// of tens of thousands stays far below NATS's message size limit, and
// the counts still say how many there were.
const maxAuditRefs = 1000

// ref names one dead letter in an audit event.
type ref struct {
	Seq       uint64 `json:"seq"`
	RequestID string `json:"request_id"`
}

// checkActor refuses a change without an actor before anything changes.
func checkActor(actor string) error {
	if strings.TrimSpace(actor) == "" {
		return audit.ErrNoActor
	}
	return nil
}

// record publishes the audit event of a replay or purge that changed
// something (Kind "dlq", Verb "replayed" or "purged"): who, why, the
// summary's counts, the dead letters it republished or deleted (at most
// maxAuditRefs), and whether it finished (runErr nil) or why not. Its
// subject is the request id when the run was about one dead letter, else
// the dead-letter stream. It returns runErr when the run failed, else the
// recording's failure, if any.
func record(ctx context.Context, js jetstream.JetStream, topo topology.Topology, verb, actor, reason string, sum Summary, refs []ref, runErr error, now time.Time) error {
	if len(refs) == 0 && sum.Failed == 0 {
		return runErr // nothing changed
	}
	if strings.TrimSpace(reason) == "" {
		reason = NoReason
	}
	subject := topo.DeadLetterStream
	if sum.Total == 1 && len(refs) == 1 {
		subject = refs[0].RequestID
	}
	data := map[string]any{
		"total": sum.Total, "deleted": sum.Deleted, "gone": sum.Gone, "failed": sum.Failed,
		"complete": runErr == nil,
	}
	if verb == "replayed" {
		refused := 0
		forced := 0
		for _, s := range sum.Superseded {
			if s.Forced {
				forced++
			} else {
				refused++
			}
		}
		data["replayed"], data["duplicates"] = sum.Replayed, sum.Duplicates
		data["skipped"], data["refused"] = len(sum.Skipped), len(sum.Refused)+refused
		data["forced"] = forced
	}
	if len(refs) > maxAuditRefs {
		data["dead_letters_truncated"] = true
		refs = refs[:maxAuditRefs]
	}
	data["dead_letters"] = refs
	if runErr != nil {
		data["error"] = runErr.Error()
	}
	_, err := audit.Publish(context.WithoutCancel(ctx), js, topo, audit.Event{
		Kind: "dlq", Verb: verb, Subject: subject, Actor: actor, Reason: reason, Data: data,
	}, now)
	if runErr != nil {
		return runErr
	}
	if err != nil {
		return fmt.Errorf("dlq: %s %d, but recording it failed: %w", verb, len(refs), err)
	}
	return nil
}
