package provision

import (
	"context"
	"errors"
	"fmt"

	"github.com/zoomprov/consumer/internal/guard"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/retry"
)

// parkAfter is the delivery from which a request still waiting for an
// earlier one about its user is parked whatever it waits for: a wait that
// long is no longer a Zoom call's.
const parkAfter = 5

// waitTurn keeps the per-user order: a request may reach Zoom only when no
// earlier request about its user is still in the stream. While the earlier
// one is handled here it waits for it. Otherwise the request is parked
// when the earlier one waits for something long (a closed quota gate, or
// it is parked itself), or handed back to try again soon. It reports
// whether it is the request's turn.
func (s *Service) waitTurn(ctx context.Context, d *delivery) (attempt, bool) {
	for {
		b, blocked, err := d.turn.Wait(ctx, d.delivered > 1)
		if err != nil {
			// The order cannot be checked now (the stream has no leader):
			// try again soon rather than risk breaking it.
			return attempt{kind: retry.Blocked, err: err, detail: "per-user order could not be checked: the request stream did not answer"}, false
		}
		if !blocked {
			return attempt{}, true
		}
		if b.Self && d.copied() && b.Parked {
			// Two copies of one request: two deliveries of the original
			// parked it at once. The earlier copy carries it.
			if b.Seq < d.msgSeq {
				return attempt{kind: retry.Copied, err: fmt.Errorf("provision: request parked as %d already", b.Seq)}, false
			}
			if err := s.deleteMsg(ctx, b.Seq); err != nil {
				return attempt{kind: retry.Blocked, err: err, detail: "a second parked copy of the request could not be removed"}, false
			}
			continue
		}
		if b.Self && !d.copied() {
			// A parked copy of this request exists: a park was cut short
			// (or this delivery is a stale one). Whoever finds it settles
			// which carries on, by the rule the park itself applies.
			later, err := s.index().LaterOriginal(ctx, d.orderRequest(), b.Seq)
			switch {
			case err != nil:
				return attempt{kind: retry.Blocked, err: err, detail: "per-user order could not be checked: the request stream did not answer"}, false
			case !later:
				return attempt{kind: retry.Copied, err: fmt.Errorf("provision: request parked as %d", b.Seq)}, false
			}
			if err := s.deleteMsg(ctx, b.Seq); err != nil {
				return attempt{kind: retry.Blocked, err: err, detail: "a parked copy of the request could not be removed"}, false
			}
			continue
		}
		a := attempt{kind: retry.Blocked, waits: min(int(d.delivered)-1, 10),
			err:    fmt.Errorf("provision: waiting for request %d (%s) about the same user", b.Pos, b.Action),
			detail: fmt.Sprintf("waiting for the earlier request at stream sequence %d (%s) about the same user", b.Pos, b.Action)}
		if b.Self {
			a.err = errors.New("provision: the parked request's original is still in the stream")
			a.detail = "waiting for the original of this parked request to leave the stream"
		}
		if gt, closed := s.gates.Closed(b.Action); closed {
			a.retryAt = gt.Until
		}
		if s.cfg.GuardLimit > 0 && guard.Destructive(messages.Operation(b.Action)) {
			if v, _ := s.guard.get().Check(s.stream().incarnation, b.Pos); v == guard.Held {
				// Held until an operator decides: looked at again now and
				// then, so that a decision lets the user's chain go on.
				a.retryAt = s.now().Add(s.cfg.Policy.Held)
			}
		}
		if !d.copied() && !b.Local && (b.Parked || !a.retryAt.IsZero() || d.delivered >= parkAfter) {
			a.kind = retry.BlockedLong
		}
		return a, false
	}
}

// Errors of stillOwned.
var (
	errSuperseded = errors.New("provision: the request left the stream while this delivery waited: another delivery finished it")
	errUnchecked  = errors.New("provision: whether the request is still in the stream could not be checked")
	errOwnedSlow  = errors.New("provision: the check that the request is still in the stream kept taking longer than the pacing allows")
)

// stillOwned is the last check before a Zoom call, after its pacing: that
// this delivery is still the request's only one. The server hands a
// request to another replica when it thinks this one lost it: its ack wait
// passed (a heartbeat lost in a reconnection), or a restarted server or a
// new consumer leader lost track of the delivery. The other may then
// finish it and later requests about the user follow; a call made now
// would overtake them. A delivery that may be stale reads the stream: a
// request no longer there is done. Every lifecycle operation (a consumer
// leader elected after a node died may redeliver a request early), every
// redelivery, every delivery of a user with later requests known, every
// one that outlived a reconnection or an ack wait may be stale.
func (s *Service) stillOwned(ctx context.Context, d *delivery) error {
	stale := d.op != "" || d.delivered > 1 || d.turn.HasLater() ||
		s.reconnects() != d.reconnects || s.now().Sub(d.start) >= s.cfg.AckWait
	if !stale {
		return nil
	}
	stored, err := s.index().Stored(ctx, d.msgSeq)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %w", errUnchecked, err)
	case !stored:
		return errSuperseded
	}
	return nil
}
