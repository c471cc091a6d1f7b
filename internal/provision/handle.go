package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/metrics"
	"github.com/zoomprov/consumer/internal/quota"
	"github.com/zoomprov/consumer/internal/retry"
	"github.com/zoomprov/consumer/internal/zoom"
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
	msg       message
	data      []byte
	header    nats.Header
	seq       uint64
	delivered uint64
	requestID string
	subject   string
	action    string // from the subject
	// op is the lifecycle operation, "" for a creation.
	op     messages.Operation
	req    messages.Request
	update messages.UpdateRequest
	del    messages.DeleteRequest
	// key is the user the request is about, for per-user order ("" when it
	// names no one).
	key string
	// gone is set once the server confirmed the request left the stream.
	gone bool
	// reconnects is the connection's reconnection count when the delivery
	// arrived.
	reconnects uint64
	email      string
	replayOf   string
	start      time.Time
	// failed is how many earlier deliveries failed transiently; it is
	// counted only when this delivery's tries ran out.
	failed int
	// span is the span around handling the delivery, set by startSpan.
	span trace.Span
	// stray marks a request swept off a subject that names no action.
	stray bool
}

// attempt is what happened to a delivery: an attempt's answer, or what
// kept it from being made.
type attempt struct {
	kind       retry.Kind
	outcome    messages.Outcome // created or exists when kind is Succeeded
	user       zoom.Response
	err        error
	reason     messages.Reason
	httpStatus int
	zoomCode   int
	// detail is Zoom's message, or the service's own explanation (a
	// validation failure, a closed gate) for the result and dead letter.
	detail     string
	trackingID string
	retryAt    time.Time
}

// handle takes one message from receipt to its single settlement. It never
// panics out: a panic is logged with its stack and decided like any other
// outcome (the message is handed back for later).
func (s *Service) handle(ctx context.Context, msg jetstream.Msg) {
	since := s.track.release(msg)
	if since.IsZero() {
		since = time.Now()
	}
	s.track.add(msg, since)
	defer s.track.remove(msg)
	d, ok := s.newDelivery(msg)
	if !ok {
		return
	}
	ctx, span := s.startSpan(ctx, d)
	defer span.End()
	defer func() { s.order.End(d.seq, d.gone) }()
	defer func() {
		if r := recover(); r != nil {
			dlog{s: s, d: d}.Error().Interface("panic", r).Str("stack", string(debug.Stack())).
				Msg("panic while handling a request")
			a := attempt{kind: retry.Panicked, err: fmt.Errorf("provision: panic: %v", r)}
			s.settle(ctx, d, a, s.decide(d, retry.Outcome{Kind: retry.Panicked, Try: 1}))
		}
	}()
	mctx, cancel := context.WithTimeout(ctx, s.cfg.MessageTimeout)
	defer cancel()
	a, dec := s.process(mctx, d)
	s.settle(ctx, d, a, dec)
}

// decide asks the policy what to do: the one place an outcome is chosen.
func (s *Service) decide(d *delivery, o retry.Outcome) retry.Decision {
	if o.Holds == 0 {
		o.Holds = s.hold.Count()
	}
	return s.cfg.Policy.Decide(o, s.now())
}

// process finds out what happens to a delivery: it validates the request,
// respects a hold in force, and makes attempts until one is decisive.
func (s *Service) process(ctx context.Context, d *delivery) (attempt, retry.Decision) {
	a := s.validate(d)
	if n := s.order.Begin(d.seq, d.key, d.action); n > int(s.pruneAt.Load()) {
		select {
		case s.pruneSoon <- struct{}{}:
		default:
		}
	}
	if a.kind == retry.Invalid {
		// No Zoom call, so no earlier request to wait for.
		return a, s.decide(d, retry.Outcome{Kind: retry.Invalid, Try: 1})
	}
	if until, reason, held := s.hold.State(); held {
		// Another request just found an account problem: do not spend a
		// Zoom call to find it again.
		a := attempt{kind: retry.Held, retryAt: until, err: errors.New("provision: held: " + reason)}
		return a, s.decide(d, retry.Outcome{Kind: retry.Held, Try: 1, RetryAt: until})
	}
	if a, blocked := s.waitTurn(ctx, d); blocked {
		return a, s.decide(d, retry.Outcome{Kind: retry.Blocked, Try: 1, RetryAt: a.retryAt, Waits: min(int(d.delivered)-1, 10)})
	}
	ctx = zoom.WithPrecondition(ctx, func(ctx context.Context) error { return s.stillHeld(ctx, d) })
	for try := 1; ; try++ {
		a := s.try(ctx, d)
		out := retry.Outcome{Kind: a.kind, Try: try, RetryAt: a.retryAt, Expired: ctx.Err() != nil}
		if a.kind == retry.Transient && (try >= s.cfg.Policy.TriesPerDelivery || out.Expired) {
			d.failed = s.countFailure(ctx, d)
			out.FailedDeliveries = d.failed
		}
		dec := s.decide(d, out)
		if dec.Verdict != retry.RetryNow {
			return a, dec
		}
		dlog{s: s, d: d}.Debug().Err(a.err).Int("retry_attempt", try).Dur("retry_delay", dec.Delay).Msg("transient failure; retrying")
		sleep(ctx, dec.Delay)
		if errors.Is(ctx.Err(), context.Canceled) {
			a = attempt{kind: retry.Interrupted, err: ctx.Err()}
			return a, s.decide(d, retry.Outcome{Kind: retry.Interrupted, Try: try})
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
	d.reconnects = s.reconnects()
	d.requestID = s.topo.RequestID(d.header.Get(jetstream.MsgIDHeader), d.seq)
	d.replayOf = d.header.Get(messages.HeaderOriginalRequestID)
	d.action, _ = s.topo.ActionOf(d.subject)
	return d, true
}

// handBack returns a message that was fetched but not started, so another
// replica can take it at once.
func (s *Service) handBack(msg jetstream.Msg) {
	d, ok := s.newDelivery(msg)
	if !ok {
		return
	}
	a := attempt{kind: retry.Interrupted, err: errors.New("provision: shutting down")}
	s.settle(context.Background(), d, a, s.decide(d, retry.Outcome{Kind: retry.Interrupted, Try: 1}))
}

// validate decodes the body and checks it against the subject.
func (s *Service) validate(d *delivery) attempt {
	invalid := func(err error, detail string) attempt {
		return attempt{kind: retry.Invalid, err: err, reason: messages.ReasonInvalidRequest, detail: detail}
	}
	if op := messages.Operation(d.action); op.Valid() {
		d.op = op
		var err error
		switch op {
		case messages.OpUpdate:
			d.update, err = messages.DecodeUpdate(d.data)
			d.email = d.update.Email
		case messages.OpDelete:
			d.del, err = messages.DecodeDelete(d.data)
			d.email = d.del.Email
		default:
			var r messages.StatusRequest
			r, err = messages.DecodeStatus(d.data)
			d.email = r.Email
		}
		if d.email == "" {
			d.email = messages.BestEffortEmail(d.data)
		}
		d.key = userKey(d.email)
		if err != nil {
			return invalid(err, err.Error())
		}
		return attempt{}
	}
	req, err := messages.Decode(d.data)
	if err != nil {
		d.email = messages.BestEffortEmail(d.data)
		d.key = userKey(d.email)
		return invalid(err, err.Error())
	}
	d.req = req
	d.email = req.UserInfo.Email
	d.key = userKey(d.email)
	if d.action == "" {
		detail := fmt.Sprintf("subject %q is not %s.<action>", d.subject, s.topo.RequestPrefix)
		return invalid(errors.New("provision: subject does not name an action"), detail)
	}
	if string(req.Action) != d.action {
		detail := fmt.Sprintf("action %q in the body does not match the subject's action %q", req.Action, d.action)
		return invalid(errors.New("provision: "+detail), detail)
	}
	return attempt{}
}

// userKey is the per-user ordering key of an e-mail ("" for none).
func userKey(email string) string {
	if email == "" {
		return ""
	}
	return messages.UserKey(email)
}

// waitTurn keeps the per-user order: a request may reach Zoom only when no
// earlier request about its user is still in the stream. While the earlier
// one is handled here it waits for it; otherwise it is handed back, to be
// tried again after the earlier one's quota reset if a gate holds it, else
// soon. It reports whether the request must wait.
func (s *Service) waitTurn(ctx context.Context, d *delivery) (attempt, bool) {
	for {
		changed := s.order.Changed()
		b, blocked, err := s.order.Blocker(ctx, d.seq, d.key)
		if err != nil {
			// The order cannot be checked now (the stream has no leader):
			// try again soon rather than risk breaking it.
			return attempt{kind: retry.Blocked, err: err, detail: "per-user order could not be checked: the request stream did not answer"}, true
		}
		if !blocked {
			return attempt{}, false
		}
		a := attempt{kind: retry.Blocked,
			err:    fmt.Errorf("provision: waiting for request %d (%s) about the same user", b.Seq, b.Action),
			detail: fmt.Sprintf("waiting for the earlier request at stream sequence %d (%s) about the same user", b.Seq, b.Action)}
		if !b.Local {
			if gt, closed := s.gates.Closed(b.Action); closed {
				a.retryAt = gt.Until
			}
			return a, true
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return a, true
		}
	}
}

// Errors of stillHeld.
var (
	errSuperseded = errors.New("provision: the request left the stream while this delivery waited: another delivery finished it")
	errUnchecked  = errors.New("provision: whether the request is still in the stream could not be checked")
)

// stillHeld is the last check before a Zoom call, after its pacing: that
// this delivery is still the request's only one. The server hands a
// request to another replica when it thinks this one lost it: its ack wait
// passed (a heartbeat lost in a reconnection), or a restarted server or a
// new consumer leader lost track of the delivery. The other may then
// finish it and later requests about the user follow; a call made now
// would overtake them. A delivery that may be stale, and every lifecycle
// operation, reads the stream: a request no longer there is done.
func (s *Service) stillHeld(ctx context.Context, d *delivery) error {
	stale := d.op != "" || s.order.HasLater(d.seq, d.key) ||
		s.reconnects() != d.reconnects || s.now().Sub(d.start) >= s.cfg.AckWait
	if !stale {
		return nil
	}
	stored, err := s.order.Stored(ctx, d.seq)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %w", errUnchecked, err)
	case !stored:
		return errSuperseded
	}
	return nil
}

// reconnects is how often the connection to NATS was re-established.
func (s *Service) reconnects() uint64 { return s.js.Conn().Stats().Reconnects }

// gateAttempt is a request held by a closed quota gate.
func gateAttempt(gt quota.Gate, err error) attempt {
	return attempt{kind: retry.RateLimited, retryAt: gt.Until, err: err,
		detail: "quota gate closed until " + gt.Until.UTC().Format(time.RFC3339) + ": " + gt.Reason}
}

// try makes one attempt: create the user and, if Zoom says it exists, look
// up its id.
func (s *Service) try(ctx context.Context, d *delivery) attempt {
	if gt, closed := s.gates.Closed(d.action); closed {
		// Another replica (or an earlier request) found the quota spent:
		// do not spend a call to be told again.
		return gateAttempt(gt, &quota.GateClosedError{Gate: gt})
	}
	if d.op != "" {
		return s.tryOperation(ctx, d)
	}
	info, err := json.Marshal(d.req.ForZoom().UserInfo)
	if err != nil {
		return attempt{kind: retry.Invalid, err: err, reason: messages.ReasonInvalidRequest, detail: "user_info cannot be encoded"}
	}
	zctx, span := s.zoomSpan(ctx, metrics.EndpointCreateUser)
	resp, err := s.zoom.CreateUser(zctx, zoom.CreateUserRequest{Action: string(d.req.Action), UserInfo: info})
	endZoomSpan(span, statusOf(resp, err), trackingOf(resp, err), err)
	if err == nil {
		return attempt{kind: retry.Succeeded, outcome: messages.OutcomeCreated, user: resp, httpStatus: resp.StatusCode, trackingID: resp.TrackingID}
	}
	var apiErr *zoom.APIError
	if errors.Is(err, zoom.ErrUserExists) && errors.As(err, &apiErr) {
		// The user exists: either created by someone else, or by an
		// earlier attempt of ours whose answer was lost. Either way the
		// request is done; report the existing user's id.
		exists := attempt{kind: retry.Succeeded, outcome: messages.OutcomeExists,
			httpStatus: apiErr.StatusCode, zoomCode: apiErr.Code, detail: apiErr.Message, trackingID: apiErr.TrackingID}
		gctx, span := s.zoomSpan(ctx, metrics.EndpointGetUser)
		got, gerr := s.zoom.GetUser(gctx, d.req.UserInfo.Email)
		endZoomSpan(span, statusOf(got, gerr), trackingOf(got, gerr), gerr)
		switch {
		case gerr == nil:
			exists.user = got
			return exists
		case errors.Is(gerr, zoom.ErrUserNotFound):
			// A pending invitation may have no readable user yet (Zoom
			// forum 98314). The request is still done.
			return exists
		default:
			err = gerr
		}
	}
	return s.failure(ctx, d, err)
}

// tryOperation makes one attempt at a lifecycle operation. A delete of a
// user Zoom does not have is done: the user is absent, as asked (a
// redelivered delete meets exactly that).
func (s *Service) tryOperation(ctx context.Context, d *delivery) attempt {
	var resp zoom.Response
	var err error
	endpoint := map[messages.Operation]string{
		messages.OpUpdate: metrics.EndpointUpdateUser, messages.OpDelete: metrics.EndpointDeleteUser,
		messages.OpActivate: metrics.EndpointUserStatus, messages.OpDeactivate: metrics.EndpointUserStatus,
	}[d.op]
	zctx, span := s.zoomSpan(ctx, endpoint)
	switch d.op {
	case messages.OpUpdate:
		resp, err = s.zoom.UpdateUser(zctx, d.email, d.update.User)
	case messages.OpDelete:
		resp, err = s.zoom.DeleteUser(zctx, d.email, zoom.DeleteOptions{
			Action: d.del.Action, TransferEmail: d.del.TransferEmail,
			TransferMeeting: d.del.TransferMeeting, TransferWebinar: d.del.TransferWebinar, TransferRecording: d.del.TransferRecording,
			TransferWhiteboard: d.del.TransferWhiteboard, TransferClipfiles: d.del.TransferClipfiles, TransferNotes: d.del.TransferNotes,
			TransferDocs: d.del.TransferDocs,
		})
	default:
		resp, err = s.zoom.SetUserStatus(zctx, d.email, string(d.op))
	}
	endZoomSpan(span, statusOf(resp, err), trackingOf(resp, err), err)
	done := attempt{kind: retry.Succeeded, outcome: messages.SuccessOf(d.op), user: resp, httpStatus: resp.StatusCode, trackingID: resp.TrackingID}
	var apiErr *zoom.APIError
	if d.op == messages.OpDelete && errors.Is(err, zoom.ErrUserNotFound) && errors.As(err, &apiErr) {
		done.httpStatus, done.zoomCode, done.detail, done.trackingID = apiErr.StatusCode, apiErr.Code, apiErr.Message, apiErr.TrackingID
		return done
	}
	if err == nil {
		return done
	}
	a := s.failure(ctx, d, err)
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusBadRequest {
		a.detail += deleteAdvice(d, apiErr.Code)
	}
	return a
}

// deleteAdvice says what to do about a disassociation Zoom refuses.
func deleteAdvice(d *delivery, code int) string {
	if d.op != messages.OpDelete {
		return ""
	}
	switch code {
	case 1107:
		return " (the user is on a managed domain and cannot be disassociated: send the request again with \"action\":\"delete\" to delete the user)"
	case 1117:
		return " (an admin cannot be disassociated: change the user's role in Zoom first, or delete the user)"
	}
	return ""
}

// failure classifies a failed attempt. A rate limit also steers every
// replica: a daily limit closes the shared quota gate, a per-second one
// slows this replica down.
func (s *Service) failure(ctx context.Context, d *delivery, err error) attempt {
	a := attempt{err: err}
	var gateErr *quota.GateClosedError
	if errors.As(err, &gateErr) {
		return gateAttempt(gateErr.Gate, err)
	}
	var apiErr *zoom.APIError
	if errors.As(err, &apiErr) {
		a.httpStatus, a.zoomCode, a.detail, a.trackingID = apiErr.StatusCode, apiErr.Code, apiErr.Message, apiErr.TrackingID
		if errors.Is(err, zoom.ErrRateLimited) {
			now := s.now()
			a.retryAt = apiErr.ResetAt(now)
			s.metrics.RateLimited(limitLabel(apiErr.Limit()))
			switch apiErr.Limit() {
			case zoom.LimitDaily:
				s.closeGate(ctx, quota.Gate{Scope: quota.ScopeOf(d.action), Until: a.retryAt, Reason: apiErr.Message, ClosedAt: now, ClosedBy: s.cfg.ReplicaID})
			case zoom.LimitConcurrent:
				// Another call for this user is under way (a redelivery
				// racing the first): nothing to do with the budget.
			default:
				s.pacer.SlowDown(time.Now())
			}
		}
	}
	var tokErr *zoom.TokenError
	if errors.As(err, &tokErr) {
		a.httpStatus, a.detail = tokErr.StatusCode, tokErr.Error()
		switch {
		case tokErr.StatusCode == http.StatusTooManyRequests:
			s.metrics.RateLimited(metrics.LimitToken)
		case tokErr.CredentialsRejected():
			s.creds.set(CredentialsRejected, tokErr.Error())
		}
	}
	a.kind, a.reason = classify(ctx, err, d.op != "")
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

// classify maps an error from an attempt (of a lifecycle operation, or of
// a creation) to its kind and, for the permanent ones, the dead-letter
// reason. A cancelled ctx means shutdown
// cut the attempt short, whatever error it produced; a ctx past its
// deadline means the delivery's time ran out, a transient failure like a
// time-out.
func classify(ctx context.Context, err error, lifecycle bool) (retry.Kind, messages.Reason) {
	if err == nil {
		return retry.Succeeded, ""
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return retry.Interrupted, ""
	}
	switch {
	case errors.Is(err, errSuperseded):
		return retry.Superseded, ""
	case errors.Is(err, errUnchecked), errors.Is(err, zoom.ErrPreconditionSlow):
		return retry.Blocked, ""
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
	case lifecycle && apiErr.Code == 200:
		// Code 200 on a status change or delete is about the user
		// ("Zoom Room and admin users cannot change status"), not the
		// app's privilege.
		return retry.Rejected, messages.ReasonZoomRejected
	case accountCodes[apiErr.Code]:
		return retry.AccountProblem, ""
	case st == http.StatusNotFound:
		return retry.NotFound, messages.ReasonNotFound
	default:
		// 400 of any code, and a 409 other than 1005 (user exists): a
		// conflict this service cannot resolve by retrying.
		return retry.Rejected, messages.ReasonZoomRejected
	}
}
