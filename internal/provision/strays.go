package provision

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/leader"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/retry"
)

// strayInterval is how often the request stream is checked for requests on
// subjects that no consumer covers.
const strayInterval = 30 * time.Second

// sweepStrays dead-letters requests published on a request subject that
// names no known action (zoom.users.create.SSOCreate, .foo, .a.b). The
// stream accepts them (its subjects are <prefix>.>), but no per-action
// consumer's filter matches them, and a work-queue stream cannot have a
// catch-all consumer beside per-action ones, so without this they would sit
// in the stream forever. It runs at start-up and every strayInterval until
// ctx ends. Several replicas may sweep at once: the dead letter and the
// result are de-duplicated by their message ids.
func (s *Service) sweepStrays(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := s.sweepOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn().Err(err).Msg("sweep requests on unknown subjects")
		} else if n > 0 {
			s.log.Warn().Int("count", n).Msg("dead-lettered requests published on subjects that name no action")
		}
		t.Reset(strayInterval)
	}
}

// sweepOnce dead-letters every stray request now and returns how many.
func (s *Service) sweepOnce(ctx context.Context) (int, error) {
	stream, err := s.js.Stream(ctx, s.topo.RequestStream)
	if err != nil {
		return 0, err
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(s.topo.RequestPrefix+".>"))
	if err != nil {
		return 0, err
	}
	known := make(map[string]bool, len(messages.Actions))
	for _, a := range messages.Actions {
		known[s.topo.RequestSubject(string(a))] = true
	}
	n := 0
	for subject := range info.State.Subjects {
		if known[subject] {
			continue
		}
		for ctx.Err() == nil {
			// From the leader: the stream allows direct gets, which a
			// replica still storing the request might answer.
			lm, err := leader.Get(ctx, s.js.Conn(), s.topo.RequestStream, leader.Query{LastBySubject: subject})
			if errors.Is(err, leader.ErrNotFound) {
				break
			}
			if err != nil {
				return n, err
			}
			m := &jetstream.RawStreamMsg{Subject: lm.Subject, Sequence: lm.Seq, Header: lm.Header, Data: lm.Data, Time: lm.Time}
			if err := s.deadLetterStray(ctx, stream, m); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// strayMsg is a request read off the stream by the sweeper: terminating it
// deletes it, and handing it back leaves it for the next sweep.
type strayMsg struct {
	ctx    context.Context
	stream jetstream.Stream
	seq    uint64
}

func (m strayMsg) Ack() error { return m.delete() }

func (m strayMsg) DoubleAck(context.Context) error { return m.delete() }

func (m strayMsg) TermWithReason(string) error { return m.delete() }

func (m strayMsg) Nak() error { return nil }

func (m strayMsg) NakWithDelay(time.Duration) error { return nil }

func (m strayMsg) delete() error {
	err := m.stream.DeleteMsg(m.ctx, m.seq)
	if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) && !errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
		return fmt.Errorf("delete stray request %d: %w", m.seq, err)
	}
	return nil
}

func (s *Service) deadLetterStray(ctx context.Context, stream jetstream.Stream, m *jetstream.RawStreamMsg) error {
	d := &delivery{
		msg:       strayMsg{ctx: ctx, stream: stream, seq: m.Sequence},
		seq:       m.Sequence,
		delivered: 1,
		subject:   m.Subject,
		data:      m.Data,
		header:    m.Header,
		action:    strings.TrimPrefix(m.Subject, s.topo.RequestPrefix+"."),
		start:     s.now(),
		stray:     true,
	}
	d.msgSeq, d.stored = m.Sequence, m.Time
	d.published = m.Subject
	d.requestID = s.topo.RequestID(m.Header.Get(jetstream.MsgIDHeader), s.stream().incarnation, m.Sequence)
	d.email = messages.BestEffortEmail(m.Data)
	ctx, span := s.startSpan(ctx, d)
	defer span.End()
	detail := fmt.Sprintf("subject %q names no action; publish on %s.<create|autoCreate|custCreate|ssoCreate>", m.Subject, s.topo.RequestPrefix)
	a := attempt{kind: retry.Invalid, reason: messages.ReasonInvalidRequest, detail: detail, err: errors.New("provision: " + detail), try: 1}
	s.settle(ctx, d, a, s.decide(a))
	if _, err := leader.Get(ctx, s.js.Conn(), s.topo.RequestStream, leader.Query{Seq: m.Sequence}); err == nil {
		return fmt.Errorf("stray request %d could not be dead-lettered", m.Sequence)
	}
	return nil
}
