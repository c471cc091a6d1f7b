package provision

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/zoomprov/consumer/internal/quota"
	"github.com/zoomprov/consumer/internal/topology"
)

// closeGate closes a quota gate for every replica and, where the server
// supports it (2.11+), pauses the durable consumers it holds until the
// reset, so the backlog stays in the stream instead of holding ack-pending
// slots.
func (s *Service) closeGate(ctx context.Context, gt quota.Gate) {
	if !s.coord.CloseGate(ctx, gt) {
		return
	}
	s.log.Warn().Str("scope", gt.Scope).Time("until", gt.Until).Str("reason", maskEmails(gt.Reason)).
		Uint64("backlog", s.backlog(ctx, gt.Scope)).Msg("daily quota exhausted; quota gate closed until the reset")
	if !s.canPause() {
		// Before 2.11 the gate alone gives the same observable behaviour:
		// nothing of that scope is fetched or sent to Zoom.
		return
	}
	for _, a := range topology.Consumers(s.cfg.Actions) {
		if !gt.Covers(a) {
			continue
		}
		// The server pauses by its own clock: convert the reset into "that
		// long from now".
		until := time.Now().Add(gt.Until.Sub(s.now()))
		if _, err := s.js.PauseConsumer(ctx, s.topo.RequestStream, s.topo.ConsumerName(a), until); err != nil {
			s.log.Debug().Err(err).Str("consumer", s.topo.ConsumerName(a)).Msg("pause consumer not available; relying on the quota gate")
		}
	}
}

// reopen resumes the consumers a gate of scope paused, once an operator
// opened it before its reset; the server resumes them by itself only at
// the pause's deadline. A consumer another closed gate still covers stays
// paused.
func (s *Service) reopen(ctx context.Context, scope string) {
	if !s.canPause() {
		return
	}
	gt := quota.Gate{Scope: scope}
	for _, a := range topology.Consumers(s.cfg.Actions) {
		if !gt.Covers(a) {
			continue
		}
		if _, closed := s.gates.Closed(a); closed {
			continue
		}
		if _, err := s.js.ResumeConsumer(ctx, s.topo.RequestStream, s.topo.ConsumerName(a)); err != nil {
			s.log.Warn().Err(err).Str("consumer", s.topo.ConsumerName(a)).Msg("could not resume the consumer; it resumes at its pause's deadline")
			continue
		}
		s.log.Info().Str("consumer", s.topo.ConsumerName(a)).Str("scope", scope).Msg("consumer resumed: its quota gate was opened")
	}
}

// backlog is how many requests of a gate's scope wait: in the stream or
// delivered and not yet settled (deferred). It is for log lines; an error
// reads as zero.
func (s *Service) backlog(ctx context.Context, scope string) uint64 {
	var n uint64
	gt := quota.Gate{Scope: scope}
	for _, a := range topology.Consumers(s.cfg.Actions) {
		if !gt.Covers(a) {
			continue
		}
		c, err := s.js.Consumer(ctx, s.topo.RequestStream, s.topo.ConsumerName(a))
		if err != nil {
			continue
		}
		info, err := c.Info(ctx)
		if err != nil {
			continue
		}
		n += info.NumPending + uint64(info.NumAckPending)
	}
	return n
}

// canPause reports whether consumers may be paused: configured so, and
// the server is 2.11 or newer.
func (s *Service) canPause() bool {
	return !s.cfg.NoPause && serverAtLeast(s.js.Conn().ConnectedServerVersion(), 2, 11, 0)
}

// serverAtLeast compares a "major.minor.patch[-pre]" server version with
// major.minor.patch; an unreadable version counts as old.
func serverAtLeast(version string, major, minor, patch int) bool {
	parts := strings.SplitN(strings.TrimPrefix(version, "v"), ".", 3)
	if len(parts) < 2 {
		return false
	}
	num := func(s string) (int, bool) {
		n, err := strconv.Atoi(strings.SplitN(s, "-", 2)[0])
		return n, err == nil
	}
	ma, ok1 := num(parts[0])
	mi, ok2 := num(parts[1])
	pa := 0
	ok3 := true
	if len(parts) == 3 {
		pa, ok3 = num(parts[2])
	}
	if !ok1 || !ok2 || !ok3 {
		return false
	}
	if ma != major {
		return ma > major
	}
	if mi != minor {
		return mi > minor
	}
	return pa >= patch
}
