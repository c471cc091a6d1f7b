package reconcile

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/ledger"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/topology"
)

// IDPrefix starts the Nats-Msg-Id (so the request id) of every corrective
// request.
const IDPrefix = "reconcile-"

// Correction is one corrective request: what repairs one drift, published
// into the request stream like any request.
type Correction struct {
	// ID is the request's Nats-Msg-Id:
	// reconcile-<run>-<kind>-<first 16 hex digits of the user's ledger key>.
	ID string
	// Subject is the request subject; Action its last token.
	Subject, Action string
	Email           string
	Kind            Kind
	Body            json.RawMessage
}

// Skipped is a drift no correction repairs, with why. Its JSON is part of
// `consumer reconcile --apply --json`.
type Skipped struct {
	Email  string `json:"email"`
	Kind   Kind   `json:"kind"`
	Reason string `json:"reason"`
}

// NewRunID returns the id of one run of corrections: the time to the
// second and a random suffix, so that the corrections of two runs never
// share a Nats-Msg-Id (JetStream would drop the second as a duplicate for
// a day) while each run's are fixed before publishing (one published
// again after a lost acknowledgement is dropped as one).
func NewRunID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// Plan returns the corrections of drift, in its order (a user's status
// correction before their fields', so that an activation comes before the
// licence it needs), and the drift it cannot repair with why: the drift's
// NoFix, or a recorded body that the consumer's rules no longer accept.
func Plan(topo topology.Topology, runID string, drift []Drift) ([]Correction, []Skipped) {
	var cs []Correction
	var skipped []Skipped
	for _, d := range drift {
		if d.Fix == nil {
			skipped = append(skipped, Skipped{Email: d.Email, Kind: d.Kind, Reason: d.NoFix})
			continue
		}
		if err := check(d.Fix); err != nil {
			skipped = append(skipped, Skipped{Email: d.Email, Kind: d.Kind, Reason: "the corrective request would be invalid: " + err.Error()})
			continue
		}
		cs = append(cs, Correction{
			ID:      IDPrefix + runID + "-" + string(d.Kind) + "-" + ledger.Key(d.Email)[:16],
			Subject: topo.RequestSubject(d.Fix.Action), Action: d.Fix.Action,
			Email: d.Email, Kind: d.Kind, Body: d.Fix.Body,
		})
	}
	return cs, skipped
}

// check validates a fix's body with the consumer's own rules.
func check(f *Fix) error {
	if op := messages.Operation(f.Action); op.Valid() {
		return messages.CheckOperation(op, f.Body)
	}
	if !messages.Action(f.Action).Valid() {
		return fmt.Errorf("unknown action %q", f.Action)
	}
	req, err := messages.Decode(f.Body)
	if err != nil {
		return err
	}
	if string(req.Action) != f.Action {
		return fmt.Errorf("the body's action %q is not %q", req.Action, f.Action)
	}
	return nil
}

// Publish publishes cs in order into the request stream, each with its
// Nats-Msg-Id, and waits for the stream's acknowledgement of each before
// the next (per-user order follows the stream's). It returns the ids
// stored (a duplicate of one stored earlier counts: it is there); on an
// error, those stored before it.
func Publish(ctx context.Context, js jetstream.JetStream, topo topology.Topology, cs []Correction) ([]string, error) {
	ids := make([]string, 0, len(cs))
	for _, c := range cs {
		m := nats.NewMsg(c.Subject)
		m.Data = c.Body
		if _, err := js.PublishMsg(ctx, m, jetstream.WithMsgID(c.ID), jetstream.WithExpectStream(topo.RequestStream)); err != nil {
			return ids, fmt.Errorf("reconcile: publish %s: %w", c.ID, err)
		}
		ids = append(ids, c.ID)
	}
	return ids, nil
}

// IsCorrection reports whether a request id is a corrective request's.
func IsCorrection(requestID string) bool { return strings.HasPrefix(requestID, IDPrefix) }

// NewReplicaID returns a name for one participant in the quota bucket's
// leases: prefix (may be empty), the host name and a random suffix, in
// the characters a key may hold.
func NewReplicaID(prefix string) string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '-'
	}, host)
	if host == "" {
		host = "host"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return prefix + host + "-" + hex.EncodeToString(b[:])
}
