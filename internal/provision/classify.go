package provision

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/metrics"
	"github.com/zoomprov/consumer/internal/quota"
	"github.com/zoomprov/consumer/internal/retry"
	"github.com/zoomprov/consumer/internal/zoom"
)

// minGateClose is how long a daily-quota gate closes when Zoom's reset is
// not later than now by this replica's clock.
const minGateClose = time.Minute

// failure classifies a failed attempt. A rate limit also steers every
// replica: a daily limit closes the shared quota gate, a per-second one
// slows this replica down.
func (s *Service) failure(ctx context.Context, d *delivery, err error) attempt {
	a := attempt{err: err}
	var gateErr *quota.GateClosedError
	if errors.As(err, &gateErr) {
		gt := gateErr.Gate
		return attempt{kind: retry.RateLimited, retryAt: gt.Until, err: err,
			detail: "quota gate closed until " + gt.Until.UTC().Format(time.RFC3339) + ": " + gt.Reason}
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
				// A reset Zoom puts in the past by this replica's clock
				// (a clock ahead of Zoom's) would reopen the gate at once
				// and spend a call every few milliseconds to learn it
				// again.
				if !a.retryAt.After(now) {
					a.retryAt = now.Add(minGateClose)
				}
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
	var paceErr *paceError
	var gateErr *quota.GateClosedError
	switch {
	case errors.Is(err, errSuperseded):
		return retry.Superseded, ""
	case errors.Is(err, errUnchecked), errors.Is(err, errOwnedSlow):
		return retry.Blocked, ""
	case errors.As(err, &gateErr):
		return retry.RateLimited, ""
	case errors.As(err, &paceErr):
		// The delivery's time ran out waiting for its pace or for this
		// replica's calls to resume: nothing failed.
		return retry.Unpaced, ""
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
