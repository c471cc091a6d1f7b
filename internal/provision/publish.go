package provision

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/deadletter"
	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/metrics"
	"github.com/zoomprov/consumer/internal/retry"
)

// publishResult publishes a result event and waits for the result stream's
// acknowledgement. The event id doubles as Nats-Msg-Id, so the stream keeps
// only the first terminal event of a request. The trace context of ctx goes
// into the traceparent header and the event's traceparent attribute.
func (s *Service) publishResult(ctx context.Context, r messages.Result) error {
	ev := messages.NewEvent(r, s.now())
	m := nats.NewMsg(s.topo.ResultSubject(r.Outcome))
	ev.TraceParent = injectTrace(ctx, m.Header)
	data, err := ev.Marshal()
	if err != nil {
		return fmt.Errorf("provision: encode result: %w", err)
	}
	m.Data = data
	m.Header.Set("Content-Type", messages.ContentTypeCloudEvents)
	if _, err := s.publish(ctx, m, jetstream.WithMsgID(ev.ID), jetstream.WithExpectStream(s.topo.ResultStream)); err != nil {
		s.metrics.PublishFailed(metrics.PublishResult)
		return fmt.Errorf("provision: publish result: %w", err)
	}
	return nil
}

// publish publishes m and waits until its stream acknowledges it, sending
// it again (same message id: the stream keeps one) after a lost or failed
// acknowledgement until ctx ends. The publish is asynchronous underneath
// (PublishMsgAsync and its PubAckFuture) rather than a request per
// message: the workers' publishes share one reply subscription and their
// writes are batched, which costs the service and the server less per
// message than PublishMsg, with the same guarantee.
func (s *Service) publish(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	for try := 1; ; try++ {
		ack, err := s.publishOnce(ctx, m, opts...)
		if err == nil || ctx.Err() != nil || !transient(err) {
			return ack, err
		}
		if try > 1 {
			s.log.Debug().Err(err).Str("subject", m.Subject).Int("try", try).Msg("publish not acknowledged; sending again")
		}
		retry.Sleep(ctx, publishBackoff.Delay(try), nil)
		if ctx.Err() != nil {
			return nil, err
		}
	}
}

// publishBackoff spaces the sends of an unacknowledged publish.
var publishBackoff = retry.Schedule{Initial: 100 * time.Millisecond, Max: time.Second}

// transient reports whether a publish error may go away by itself: no answer
// in time, no stream leader (no responders), too many publishes pending, a
// connection being re-established. A stream that refuses the message (a
// wrong expected stream, a message too large) refuses it again.
func transient(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code >= 500
	}
	return true
}

func (s *Service) publishOnce(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	// A fresh message each time: the client keeps m with its future.
	c := nats.NewMsg(m.Subject)
	c.Data, c.Header = m.Data, m.Header
	f, err := s.pub.PublishMsgAsync(c, opts...)
	if err != nil {
		return nil, err
	}
	select {
	case ack := <-f.Ok():
		return ack, nil
	case err := <-f.Err():
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// publishCopy stores the parked copy of a request and waits for the
// stream's acknowledgement; it returns the copy's sequence. The copy keeps
// the body and the publisher's headers, and says where the request stood
// (see order.Request).
func (s *Service) publishCopy(ctx context.Context, d *delivery) (uint64, error) {
	m := nats.NewMsg(s.topo.ParkedSubject(d.action))
	m.Data = d.data
	for k, vs := range d.header {
		if !strings.HasPrefix(k, "Nats-") {
			m.Header[k] = vs
		}
	}
	m.Header.Set(messages.HeaderPosition, strconv.FormatUint(d.seq, 10))
	m.Header.Set(messages.HeaderParkedRequestID, d.requestID)
	m.Header.Set(messages.HeaderParkedSubject, d.published)
	m.Header.Set(messages.HeaderParkedStored, d.stored.UTC().Format(time.RFC3339Nano))
	// One id per delivery: a park that was undone may be made again.
	id := d.requestID + ":parked:" + strconv.FormatUint(d.delivered, 10)
	ack, err := s.publish(ctx, m, jetstream.WithMsgID(id), jetstream.WithExpectStream(s.topo.RequestStream))
	if err != nil {
		return 0, fmt.Errorf("provision: park: %w", err)
	}
	return ack.Sequence, nil
}

// deleteMsg removes message seq from the request stream; one already gone
// is no error.
func (s *Service) deleteMsg(ctx context.Context, seq uint64) error {
	stream, err := s.js.Stream(ctx, s.topo.RequestStream)
	if err == nil {
		err = stream.DeleteMsg(ctx, seq)
	}
	if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) && !errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
		return fmt.Errorf("provision: delete request %d: %w", seq, err)
	}
	return nil
}

// publishDeadLetter copies the original body, byte for byte but for its
// passwords (sealed with cfg.Seal, else redacted: deadletter.Header.Seal),
// to the dead-letter stream with the reason in headers, and waits for the
// stream's acknowledgement. A password that cannot be sealed is redacted
// and logged as a warning.
func (s *Service) publishDeadLetter(ctx context.Context, d *delivery, a attempt) error {
	action := d.action
	if action == "" {
		action = "unknown"
	}
	dl := deadletter.Header{
		Reason:           a.reason,
		HTTPStatus:       a.httpStatus,
		ZoomCode:         a.zoomCode,
		ZoomMessage:      a.detail,
		OriginalSubject:  d.published,
		OriginalSequence: d.seq,
		RequestID:        d.requestID,
		Deliveries:       int(d.delivered),
		DeadLetteredAt:   s.now(),
	}
	m := nats.NewMsg(s.topo.DeadLetterSubject(action))
	var err error
	if m.Data, err = dl.Seal(s.cfg.Seal, d.data); err != nil {
		// The passwords are redacted instead: the dead letter is kept,
		// but cannot be replayed. The error never holds a password.
		d.log.Warn().Err(err).Msg("could not seal the password of the dead letter; it is redacted instead")
	}
	for k, v := range dl.Headers() {
		m.Header.Set(k, v)
	}
	// The trace context of the handling span replaces the publisher's, so
	// the dead letter hangs off the span that decided it.
	traced := injectTrace(ctx, m.Header) != ""
	// Keep the publisher's own headers (replay markers, baggage) unless
	// they clash with ours. Nats-* headers (Msg-Id, Expected-*) steer the
	// publish itself and must not be copied.
	for k, vs := range d.header {
		if _, ours := m.Header[k]; ours || strings.HasPrefix(k, "Nats-") || parkHeaders[k] {
			continue
		}
		if traced && (strings.EqualFold(k, HeaderTraceParent) || strings.EqualFold(k, "tracestate")) {
			continue
		}
		m.Header[k] = vs
	}
	if _, err := s.publish(ctx, m, jetstream.WithMsgID(deadletter.MsgID(d.requestID)), jetstream.WithExpectStream(s.topo.DeadLetterStream)); err != nil {
		s.metrics.PublishFailed(metrics.PublishDeadLetter)
		return fmt.Errorf("provision: publish dead letter: %w", err)
	}
	return nil
}

// parkHeaders are the headers a parked copy adds, which its dead letter
// does not keep: a replay is a new request.
var parkHeaders = map[string]bool{messages.HeaderPosition: true, messages.HeaderParkedRequestID: true,
	messages.HeaderParkedSubject: true, messages.HeaderParkedStored: true}

var emailPattern = regexp.MustCompile(`[^\s"'<>(),;:]+@[^\s"'<>(),;:]+`)

// maskEmails masks every e-mail address in s, for log lines that carry
// Zoom's messages ("User already in the account: a@b.c").
func maskEmails(s string) string {
	return emailPattern.ReplaceAllStringFunc(s, messages.MaskEmail)
}

// redactedError logs an error with e-mail addresses masked unless full
// addresses were asked for.
type redactedError struct {
	err  error
	full bool
}

func (r redactedError) Error() string {
	if r.full {
		return r.err.Error()
	}
	return maskEmails(r.err.Error())
}
