package provision

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/order"
)

// message is what settling needs of a request message. jetstream.Msg has
// it; a request swept off a subject no consumer covers has its own.
type message interface {
	Ack() error
	DoubleAck(ctx context.Context) error
	Nak() error
	NakWithDelay(delay time.Duration) error
	TermWithReason(reason string) error
}

// delivery is one delivery of one request, with everything learnt about it
// while handling it.
type delivery struct {
	msg    message
	data   []byte
	header nats.Header
	// subject is the subject the message was delivered from, and
	// published the one its publisher used: they differ for a parked
	// copy.
	subject, published string
	// seq is the request's position in the stream (see order.Request),
	// msgSeq the sequence of the message delivered.
	seq, msgSeq uint64
	delivered   uint64
	requestID   string
	action      string // from the subject
	// op is the lifecycle operation, "" for a creation.
	op     messages.Operation
	create messages.Request
	update messages.UpdateRequest
	del    messages.DeleteRequest
	// key is the user the request is about, for per-user order ("" when it
	// names no one).
	key string
	// reconnects is the connection's reconnection count when the delivery
	// arrived.
	reconnects uint64
	// stored is when the stream stored the request (the original, for a
	// parked copy).
	stored   time.Time
	email    string
	replayOf string
	start    time.Time
	// span is the span around handling the delivery, and log the logger of
	// its lines, both set by startSpan.
	span trace.Span
	log  zerolog.Logger
	// stray marks a request swept off a subject that names no action;
	// badCopy a message on the parked subject the service did not write.
	stray, badCopy bool
	turn           *order.Turn
}

// copied reports whether the delivery is of a parked copy.
func (d *delivery) copied() bool { return d.msgSeq != d.seq }

// orderRequest is the delivery's request as the order index sees it.
func (d *delivery) orderRequest() order.Request {
	return order.Request{Pos: d.seq, Seq: d.msgSeq, Key: d.key, Action: d.action}
}

// newDelivery reads the message's metadata and request id. A message
// without JetStream metadata cannot be acked or counted; it is dropped with
// a log line (it can only come from a misconfigured subscription).
func (s *Service) newDelivery(msg jetstream.Msg) (*delivery, bool) {
	md, err := msg.Metadata()
	if err != nil {
		s.log.Error().Err(err).Str("subject", msg.Subject()).Msg("message without jetstream metadata; ignored")
		return nil, false
	}
	d := &delivery{
		msg:        msg,
		seq:        md.Sequence.Stream,
		msgSeq:     md.Sequence.Stream,
		delivered:  md.NumDelivered,
		subject:    msg.Subject(),
		published:  msg.Subject(),
		data:       msg.Data(),
		header:     msg.Headers(),
		start:      s.now(),
		reconnects: s.reconnects(),
		stored:     md.Timestamp,
	}
	d.replayOf = d.header.Get(messages.HeaderOriginalRequestID)
	if action, ok := s.topo.ParkedAction(d.subject); ok {
		d.action = action
		pos, err := strconv.ParseUint(d.header.Get(messages.HeaderPosition), 10, 64)
		d.requestID = d.header.Get(messages.HeaderParkedRequestID)
		d.published = d.header.Get(messages.HeaderParkedSubject)
		if err != nil || pos == 0 || pos >= d.msgSeq || d.requestID == "" || d.published == "" {
			// Not a copy the service stored: someone published on its
			// parked subject.
			d.badCopy, d.published = true, d.subject
			d.requestID = s.topo.RequestID(d.header.Get(jetstream.MsgIDHeader), s.stream().incarnation, d.msgSeq)
			s.logFor(d)
			return d, true
		}
		d.seq = pos
		if t, err := time.Parse(time.RFC3339Nano, d.header.Get(messages.HeaderParkedStored)); err == nil {
			d.stored = t
		}
		s.logFor(d)
		return d, true
	}
	d.requestID = s.topo.RequestID(d.header.Get(jetstream.MsgIDHeader), s.stream().incarnation, d.seq)
	d.action, _ = s.topo.ActionOf(d.subject)
	s.logFor(d)
	return d, true
}

// applied is the request as decoded, without any password, for its
// terminal result (messages.Result.Request).
func (d *delivery) applied() json.RawMessage {
	var v any
	switch d.op {
	case "":
		r := d.create.ForZoom()
		r.UserInfo.Password = ""
		v = r
	case messages.OpUpdate:
		v = struct {
			Email string          `json:"email"`
			User  json.RawMessage `json:"user"`
		}{d.email, d.update.User}
	case messages.OpDelete:
		v = d.del
	default:
		v = messages.StatusRequest{Email: d.email}
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return data
}
