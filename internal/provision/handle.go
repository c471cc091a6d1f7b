package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/metrics"
	"github.com/zoomprov/consumer/internal/retry"
	"github.com/zoomprov/consumer/internal/zoom"
)

// delivery is one delivery of one request, with everything learnt about it
// while handling it.
type delivery struct {
	msg       jetstream.Msg
	data      []byte
	header    nats.Header
	seq       uint64
	delivered uint64
	requestID string
	subject   string
	action    string // from the subject
	req       messages.Request
	email     string
	replayOf  string
	start     time.Time
	// failed is how many earlier deliveries failed transiently; it is read
	// from the attempts bucket only when this delivery's tries ran out.
	failed int
	// span is the span around handling the delivery, set by startSpan.
	span trace.Span
}

// attempt is the result of one attempt (or of validation).
type attempt struct {
	kind       retry.Kind
	outcome    messages.Outcome // created or exists when kind is Succeeded
	user       zoom.Response
	err        error
	reason     messages.Reason
	httpStatus int
	zoomCode   int
	zoomMsg    string
	trackingID string
	retryAt    time.Time
}

// handle takes one message from receipt to its single settlement (ack,
// nak, or term after a dead letter). It never panics out: a panic while
// handling hands the message back for later.
func (s *Service) handle(ctx context.Context, msg jetstream.Msg) {
	since := s.track.release(msg)
	if since.IsZero() {
		since = time.Now()
	}
	s.track.add(msg, since)
	defer s.track.remove(msg)
	defer func() {
		if r := recover(); r != nil {
			s.log.Error().Interface("panic", r).Str("subject", msg.Subject()).Msg("panic while handling a request; handing it back")
			_ = msg.NakWithDelay(s.cfg.Policy.Redelivery.Delay(1))
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.MessageTimeout)
	defer cancel()

	d, ok := s.newDelivery(msg)
	if !ok {
		return
	}
	ctx, span := s.startSpan(ctx, d)
	defer span.End()
	log := dlog{s: s, d: d}

	a := s.validate(d)
	if a.kind == retry.Invalid {
		s.settle(ctx, log, d, a, retry.Decision{Verdict: retry.DeadLetter})
		return
	}
	if wait := s.hold.remaining(s.now()); wait > 0 {
		// Another request just found an account problem: do not spend a
		// Zoom call to find it again.
		s.settle(ctx, log, d, attempt{kind: retry.AccountProblem}, retry.Decision{Verdict: retry.Hold, Delay: wait})
		return
	}

	failedKnown := false
	for try := 1; ; try++ {
		a = s.try(ctx, d)
		out := retry.Outcome{Kind: a.kind, Try: try, RetryAt: a.retryAt, Holds: s.hold.holds()}
		if a.kind == retry.Transient && try >= s.cfg.Policy.TriesPerDelivery && !failedKnown {
			d.failed = s.failedDeliveries(ctx, d)
			failedKnown = true
		}
		out.FailedDeliveries = d.failed
		dec := s.cfg.Policy.Decide(out, s.now())
		if dec.Verdict != retry.RetryNow {
			s.settle(ctx, log, d, a, dec)
			return
		}
		log.Debug().Err(a.err).Int("retry_attempt", try).Dur("retry_delay", dec.Delay).Msg("transient failure; retrying")
		select {
		case <-ctx.Done():
			s.settle(ctx, log, d, attempt{kind: retry.Interrupted, err: ctx.Err()}, retry.Decision{Verdict: retry.NakAfter})
			return
		case <-time.After(dec.Delay):
		}
	}
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
		msg:       msg,
		seq:       md.Sequence.Stream,
		delivered: md.NumDelivered,
		subject:   msg.Subject(),
		data:      msg.Data(),
		header:    msg.Headers(),
		start:     s.now(),
	}
	h := d.header
	d.requestID = h.Get(jetstream.MsgIDHeader)
	if d.requestID == "" {
		d.requestID = s.topo.RequestStream + "-" + strconv.FormatUint(d.seq, 10)
	}
	d.replayOf = h.Get(messages.HeaderOriginalRequestID)
	d.action, _ = messages.ActionFromSubject(d.subject, s.topo.RequestPrefix)
	return d, true
}

// validate decodes the body and checks it against the subject.
func (s *Service) validate(d *delivery) attempt {
	req, err := messages.Decode(d.data)
	if err != nil {
		d.email = bestEffortEmail(d.data)
		return attempt{kind: retry.Invalid, err: err, reason: messages.ReasonInvalidRequest, zoomMsg: err.Error()}
	}
	d.req = req
	d.email = req.UserInfo.Email
	if d.action == "" {
		return attempt{kind: retry.Invalid, reason: messages.ReasonInvalidRequest,
			err:     errors.New("provision: subject does not name an action"),
			zoomMsg: fmt.Sprintf("subject %q is not %s.<action>", d.subject, s.topo.RequestPrefix)}
	}
	if string(req.Action) != d.action {
		msg := fmt.Sprintf("action %q in the body does not match the subject's action %q", req.Action, d.action)
		return attempt{kind: retry.Invalid, reason: messages.ReasonInvalidRequest, err: errors.New("provision: " + msg), zoomMsg: msg}
	}
	return attempt{}
}

// bestEffortEmail pulls the e-mail out of an invalid request for the
// failed event, so audit subscribers can tell whose request failed.
func bestEffortEmail(data []byte) string {
	var raw struct {
		UserInfo json.RawMessage `json:"user_info"`
	}
	if json.Unmarshal(data, &raw) != nil || len(raw.UserInfo) == 0 {
		return ""
	}
	var ui struct {
		Email string `json:"email"`
	}
	if json.Unmarshal(raw.UserInfo, &ui) != nil {
		var inner string
		if json.Unmarshal(raw.UserInfo, &inner) != nil || json.Unmarshal([]byte(inner), &ui) != nil {
			return ""
		}
	}
	if len(ui.Email) > 320 {
		return ""
	}
	return ui.Email
}

// try makes one attempt: create the user and, if Zoom says it exists, look
// up its id.
func (s *Service) try(ctx context.Context, d *delivery) attempt {
	if gt, closed := s.gates.closed(d.action, s.now()); closed {
		// Another replica (or an earlier request) found the quota spent:
		// do not spend a call to be told again.
		return attempt{kind: retry.RateLimited, retryAt: gt.Until,
			zoomMsg: "quota gate closed until " + gt.Until.UTC().Format(time.RFC3339) + ": " + gt.Reason}
	}
	info, err := json.Marshal(d.req.ForZoom().UserInfo)
	if err != nil {
		return attempt{kind: retry.Invalid, err: err, reason: messages.ReasonInvalidRequest, zoomMsg: "user_info cannot be encoded"}
	}
	zctx, span := s.zoomSpan(ctx, metrics.EndpointCreateUser)
	resp, err := s.zoom.CreateUser(withGate(zctx, d.action), zoom.CreateUserRequest{Action: string(d.req.Action), UserInfo: info})
	endZoomSpan(span, statusOf(resp, err), trackingOf(resp, err), err)
	if err == nil {
		return attempt{kind: retry.Succeeded, outcome: messages.OutcomeCreated, user: resp, httpStatus: resp.StatusCode, trackingID: resp.TrackingID}
	}
	var apiErr *zoom.APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusConflict {
		// The user exists: either created by someone else, or by an
		// earlier attempt of ours whose answer was lost. Either way the
		// request is done; report the existing user's id.
		gctx, span := s.zoomSpan(ctx, metrics.EndpointGetUser)
		got, gerr := s.zoom.GetUser(gctx, d.req.UserInfo.Email)
		endZoomSpan(span, statusOf(got, gerr), trackingOf(got, gerr), gerr)
		switch {
		case gerr == nil:
			return attempt{kind: retry.Succeeded, outcome: messages.OutcomeExists, user: got,
				httpStatus: apiErr.StatusCode, zoomCode: apiErr.Code, zoomMsg: apiErr.Message, trackingID: apiErr.TrackingID}
		case errors.Is(gerr, zoom.ErrUserNotFound):
			// A pending invitation may have no readable user yet (Zoom
			// forum 98314). The request is still done.
			return attempt{kind: retry.Succeeded, outcome: messages.OutcomeExists,
				httpStatus: apiErr.StatusCode, zoomCode: apiErr.Code, zoomMsg: apiErr.Message, trackingID: apiErr.TrackingID}
		default:
			err = gerr
		}
	}
	return s.failure(ctx, d, err)
}

// failure classifies a failed attempt. A rate limit also steers every
// replica: a daily limit closes the shared quota gate, a per-second one
// slows this replica down.
func (s *Service) failure(ctx context.Context, d *delivery, err error) attempt {
	a := attempt{err: err}
	var gateErr *GateClosedError
	if errors.As(err, &gateErr) {
		a.kind, a.retryAt = retry.RateLimited, gateErr.Gate.Until
		a.zoomMsg = "quota gate closed until " + gateErr.Gate.Until.UTC().Format(time.RFC3339) + ": " + gateErr.Gate.Reason
		return a
	}
	var apiErr *zoom.APIError
	if errors.As(err, &apiErr) {
		a.httpStatus, a.zoomCode, a.zoomMsg, a.trackingID = apiErr.StatusCode, apiErr.Code, apiErr.Message, apiErr.TrackingID
		if apiErr.StatusCode == http.StatusTooManyRequests {
			now := s.now()
			a.retryAt = apiErr.ResetAt(now)
			s.metrics.RateLimited(limitLabel(apiErr.Limit()))
			if apiErr.Limit() == zoom.LimitDaily {
				s.closeGate(ctx, Gate{Scope: gateScope(d.action), Until: a.retryAt, Reason: apiErr.Message, ClosedAt: now, ClosedBy: s.replicaID})
			} else {
				s.pacer.slowDown(time.Now())
			}
		}
	}
	var tokErr *zoom.TokenError
	if errors.As(err, &tokErr) {
		a.httpStatus, a.zoomMsg = tokErr.StatusCode, tokErr.Error()
		switch {
		case tokErr.StatusCode == http.StatusTooManyRequests:
			s.metrics.RateLimited(metrics.LimitToken)
		case tokErr.CredentialsRejected():
			s.creds.set(CredentialsRejected, tokErr.Error())
		}
	}
	a.kind, a.reason = classify(ctx, err)
	return a
}

// limitLabel is the metrics label of a 429's limit type.
func limitLabel(l zoom.LimitType) string {
	switch l {
	case zoom.LimitPerSecond:
		return metrics.LimitPerSecond
	case zoom.LimitDaily:
		return metrics.LimitDaily
	}
	return metrics.LimitUnknown
}

// statusOf is the HTTP status of a Zoom call's answer, zero without one.
func statusOf(resp zoom.Response, err error) int {
	var apiErr *zoom.APIError
	var tokErr *zoom.TokenError
	switch {
	case err == nil:
		return resp.StatusCode
	case errors.As(err, &apiErr):
		return apiErr.StatusCode
	case errors.As(err, &tokErr):
		return tokErr.StatusCode
	}
	return 0
}

// trackingOf is Zoom's tracking id of a call's answer, if any.
func trackingOf(resp zoom.Response, err error) string {
	var apiErr *zoom.APIError
	if err != nil && errors.As(err, &apiErr) {
		return apiErr.TrackingID
	}
	return resp.TrackingID
}

// Zoom codes that mean the account or the app is misconfigured, not the
// request: no privilege (200), invalid token (124, after a fresh token),
// token without the needed scope (4700, 4711).
var accountCodes = map[int]bool{124: true, 200: true, 4700: true, 4711: true}

// classify maps an error from an attempt to its kind and, for the permanent
// ones, the dead-letter reason. A cancelled ctx means shutdown cut the
// attempt short, whatever error it produced.
func classify(ctx context.Context, err error) (retry.Kind, messages.Reason) {
	if err == nil {
		return retry.Succeeded, ""
	}
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return retry.Interrupted, ""
	}
	var tokErr *zoom.TokenError
	if errors.As(err, &tokErr) {
		switch {
		case tokErr.StatusCode == http.StatusTooManyRequests:
			// The token endpoint's own rate limit: wait, never count it
			// as a failed attempt.
			return retry.RateLimited, ""
		case tokErr.CredentialsRejected():
			return retry.AccountProblem, ""
		}
		return retry.Transient, ""
	}
	var apiErr *zoom.APIError
	if !errors.As(err, &apiErr) {
		// Time-outs, refused or reset connections, unreadable answers.
		return retry.Transient, ""
	}
	switch st := apiErr.StatusCode; {
	case st == http.StatusTooManyRequests:
		return retry.RateLimited, ""
	case st == http.StatusUnauthorized, st == http.StatusForbidden:
		// 401 after the client already fetched a fresh token once.
		return retry.AccountProblem, ""
	case st == http.StatusRequestTimeout, st >= 500:
		return retry.Transient, ""
	case accountCodes[apiErr.Code]:
		return retry.AccountProblem, ""
	case st == http.StatusNotFound:
		return retry.NotFound, messages.ReasonNotFound
	default:
		return retry.Rejected, messages.ReasonZoomRejected
	}
}

// failedDeliveries reads how many earlier deliveries failed transiently.
// If the count cannot be read, zero is assumed: it errs towards another
// attempt, never towards a premature dead letter.
func (s *Service) failedDeliveries(ctx context.Context, d *delivery) int {
	e, err := s.attempts.Get(ctx, attemptsKey(d.seq))
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(string(e.Value()))
	return n
}

// recordFailure adds one transient failure to the request's count.
func (s *Service) recordFailure(ctx context.Context, d *delivery, n int) error {
	_, err := s.attempts.Put(ctx, attemptsKey(d.seq), []byte(strconv.Itoa(n)))
	return err
}

func (s *Service) forgetFailures(ctx context.Context, d *delivery) {
	if err := s.attempts.Delete(ctx, attemptsKey(d.seq)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		s.log.Debug().Err(err).Uint64("stream_seq", d.seq).Msg("forget failure count")
	}
}

func attemptsKey(seq uint64) string { return "seq-" + strconv.FormatUint(seq, 10) }

// logEvent starts the outcome line of a delivery with the fields every
// outcome line carries. It is called exactly once per outcome, so it also
// records the outcome in the metrics and on the span (see observe).
func (s *Service) logEvent(ev *zerolog.Event, d *delivery, a attempt, outcome string) *zerolog.Event {
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
