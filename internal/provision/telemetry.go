package provision

import (
	"context"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/metrics"
)

// tracerName is the instrumentation scope of the service's spans.
const tracerName = "github.com/zoomprov/consumer/internal/provision"

// HeaderTraceParent is the W3C Trace Context header read from requests and
// written on result events and dead letters.
const HeaderTraceParent = "traceparent"

// propagator carries W3C Trace Context. It is used directly rather than
// through otel's global propagator, which does nothing unless a program
// sets one: the trace context is part of this service's contract.
var propagator = propagation.TraceContext{}

// headerCarrier adapts a NATS header to the propagator. NATS headers are
// case-sensitive, unlike HTTP's, so a publisher's "Traceparent" is found
// as well as "traceparent"; the service itself writes the lowercase names
// the W3C specification uses.
type headerCarrier nats.Header

func (c headerCarrier) Get(key string) string {
	if v := nats.Header(c).Get(key); v != "" {
		return v
	}
	for k, vs := range c {
		if len(vs) > 0 && strings.EqualFold(k, key) {
			return vs[0]
		}
	}
	return ""
}

func (c headerCarrier) Set(key, value string) {
	for k := range c {
		if strings.EqualFold(k, key) {
			delete(c, k)
		}
	}
	c[key] = []string{value}
}

func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

var _ propagation.TextMapCarrier = headerCarrier(nil)

// startSpan starts the span around handling one delivery, as a child of the
// trace context in the request's headers, or of a new trace when there is
// none (new only with a recording TracerProvider; the default no-op one
// just carries a caller's context through).
func (s *Service) startSpan(ctx context.Context, d *delivery) (context.Context, trace.Span) {
	ctx = propagator.Extract(ctx, headerCarrier(d.header))
	ctx, span := s.tracer.Start(ctx, "provision "+knownAction(d.action), trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", d.subject),
			attribute.String("messaging.message.id", d.requestID),
			attribute.String("zoomprov.action", d.action),
			attribute.Int64("zoomprov.stream_seq", int64(d.seq)),
			attribute.Int64("zoomprov.num_delivered", int64(d.delivered)),
		))
	d.span = span
	s.logFor(d)
	return ctx, span
}

// logFor sets the delivery's logger, which writes every line about it
// with the fields that tie it to the request, its delivery and its trace
// (request_id, action, stream_seq, num_delivered, trace_id, span_id, and
// the subject of a request on a stray subject). Call it after startSpan.
func (s *Service) logFor(d *delivery) {
	c := s.log.With().Str("request_id", d.requestID).Str("action", d.action).
		Uint64("stream_seq", d.seq).Uint64("num_delivered", d.delivered)
	if d.span != nil {
		if sc := d.span.SpanContext(); sc.IsValid() {
			c = c.Str("trace_id", sc.TraceID().String()).Str("span_id", sc.SpanID().String())
		}
	}
	if d.stray {
		c = c.Str("subject", d.subject)
	}
	d.log = c.Logger()
}

// injectTrace writes the trace context of ctx (the handling span) into h,
// replacing any the publisher sent, and returns the traceparent value ("" if
// ctx holds none).
func injectTrace(ctx context.Context, h nats.Header) string {
	propagator.Inject(ctx, headerCarrier(h))
	return headerCarrier(h).Get(HeaderTraceParent)
}

// observe records an outcome everywhere but the log line: the request
// counter, the deliveries histogram, and the span's attributes and status.
// It is called by recordOutcome, which runs exactly once per outcome.
func (s *Service) observe(d *delivery, a attempt, outcome string) {
	s.metrics.Request(knownAction(d.action), outcome)
	s.metrics.Handled(knownAction(d.action), outcome, d.stored, s.now())
	if messages.Outcome(outcome).Terminal() {
		s.metrics.Delivered(outcome, d.delivered)
	}
	if d.span == nil {
		return
	}
	// One SetAttributes call: the SDK regrows the span's attribute slice
	// on every call.
	attrs := make([]attribute.KeyValue, 1, 5)
	attrs[0] = attribute.String("zoomprov.outcome", outcome)
	if a.httpStatus != 0 {
		attrs = append(attrs, attribute.Int("http.response.status_code", a.httpStatus))
	}
	if a.zoomCode != 0 {
		attrs = append(attrs, attribute.Int("zoom.code", a.zoomCode))
	}
	if a.trackingID != "" {
		attrs = append(attrs, attribute.String("zoom.tracking_id", a.trackingID))
	}
	if a.reason != "" {
		attrs = append(attrs, attribute.String("zoomprov.reason", string(a.reason)))
	}
	d.span.SetAttributes(attrs...)
	switch outcome {
	case string(messages.OutcomeFailed), metrics.OutcomeUnsettled, metrics.OutcomePaused:
		// The error text may hold a Zoom message with an address in it.
		desc := string(a.reason)
		if a.err != nil {
			desc = maskEmails(a.err.Error())
		}
		d.span.SetStatus(codes.Error, desc)
	}
}

// knownAction bounds span names and metric labels to the actions and
// operations: a stray subject's last token could be anything.
func knownAction(action string) string {
	if messages.Action(action).Valid() || messages.Operation(action).Valid() {
		return action
	}
	return metrics.Other
}

// zoomSpan starts a client span around one Zoom call made while handling
// d; end it with endZoomSpan.
func (s *Service) zoomSpan(ctx context.Context, endpoint string) (context.Context, trace.Span) {
	return s.tracer.Start(ctx, "zoom "+endpoint, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("zoom.endpoint", endpoint)))
}

// endZoomSpan records a Zoom call's answer on its span and ends it.
func endZoomSpan(span trace.Span, status int, trackingID string, err error) {
	switch {
	case status != 0 && trackingID != "":
		span.SetAttributes(attribute.Int("http.response.status_code", status), attribute.String("zoom.tracking_id", trackingID))
	case status != 0:
		span.SetAttributes(attribute.Int("http.response.status_code", status))
	case trackingID != "":
		span.SetAttributes(attribute.String("zoom.tracking_id", trackingID))
	}
	if err != nil {
		span.SetStatus(codes.Error, maskEmails(err.Error()))
	}
	span.End()
}

// recordOutcome records one delivery's outcome everywhere: it counts it in
// the metrics, marks the span (see observe), and starts the outcome's log
// line with the fields every outcome line carries, for the caller to
// finish. It is called exactly once per outcome.
func (s *Service) recordOutcome(ev *zerolog.Event, d *delivery, a attempt, outcome string) *zerolog.Event {
	s.observe(d, a, outcome)
	email := d.email
	if !s.cfg.LogEmails {
		email = messages.MaskEmail(email)
	}
	ev = ev.Str("outcome", outcome).Str("email", email).
		Dur("latency", s.now().Sub(d.start))
	if a.httpStatus != 0 {
		ev = ev.Int("http_status", a.httpStatus)
	}
	if a.zoomCode != 0 {
		ev = ev.Int("zoom_code", a.zoomCode)
	}
	if a.trackingID != "" {
		ev = ev.Str("tracking_id", a.trackingID)
	}
	if a.err != nil {
		ev = ev.AnErr("error", redactedError{a.err, s.cfg.LogEmails})
	}
	return ev
}
