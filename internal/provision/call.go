package provision

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/metrics"
	"github.com/zoomprov/consumer/internal/retry"
	"github.com/zoomprov/consumer/internal/zoom"
)

// ownedSlack is how long the check that a request is still owned may take
// and the call still keep its place in the pacing: a slower one would
// bunch paced calls together (a check held up by a NATS election releases
// them all at once), so the call waits for a new place and checks again,
// up to ownedTries times.
const (
	ownedSlack = 10 * time.Millisecond
	ownedTries = 3
)

// pace waits for this replica's next place in the pacing (which also
// refuses a call whose quota gate is closed), then checks that the
// delivery still owns its request.
func (s *Service) pace(ctx context.Context, d *delivery, op string) error {
	for try := 1; ; try++ {
		if err := s.pacer.Wait(ctx, zoom.Call{Op: op, Action: d.action}); err != nil {
			return &paceError{err: err}
		}
		start := time.Now()
		if s.afterPace != nil {
			if err := s.afterPace(ctx, zoom.Call{Op: op, Action: d.action}); err != nil {
				return err
			}
		}
		if err := s.stillOwned(ctx, d); err != nil {
			return err
		}
		switch {
		case s.pacer.Budget() == 0 || time.Since(start) <= ownedSlack:
			return nil
		case try == ownedTries:
			return errOwnedSlow
		}
	}
}

// paceError is a wait for pacing, a pause of this replica's calls or a
// closed gate that ended the attempt: no call was made.
type paceError struct{ err error }

func (e *paceError) Error() string { return "provision: wait for pacing: " + e.err.Error() }
func (e *paceError) Unwrap() error { return e.err }

// call makes one attempt at the request: pace (within ctx), call Zoom
// (within callCtx), classify.
func (s *Service) call(ctx, callCtx context.Context, d *delivery) attempt {
	if d.op != "" {
		return s.callOperation(ctx, callCtx, d)
	}
	r := d.create.ForZoom()
	var err error
	// A password its publisher sealed for the service is opened here, for
	// this call only.
	if r.UserInfo.Password, err = s.cfg.PasswordKeys.Open(r.UserInfo.Password); err != nil {
		return attempt{kind: retry.Invalid, err: err, reason: messages.ReasonInvalidRequest, detail: err.Error()}
	}
	info, err := json.Marshal(r.UserInfo)
	if err != nil {
		return attempt{kind: retry.Invalid, err: err, reason: messages.ReasonInvalidRequest, detail: "user_info cannot be encoded"}
	}
	if err := s.pace(ctx, d, "create user"); err != nil {
		return s.failure(ctx, d, err)
	}
	zctx, span := s.zoomSpan(callCtx, metrics.EndpointCreateUser)
	resp, err := s.zoom.CreateUser(zctx, zoom.CreateUserRequest{Action: string(d.create.Action), UserInfo: info})
	endZoomSpan(span, statusOf(resp, err), trackingOf(resp, err), err)
	if err == nil {
		return attempt{kind: retry.Succeeded, outcome: messages.OutcomeCreated, user: resp, httpStatus: resp.StatusCode, trackingID: resp.TrackingID}
	}
	var apiErr *zoom.APIError
	if !errors.Is(err, zoom.ErrUserExists) || !errors.As(err, &apiErr) {
		return s.failure(callCtx, d, err)
	}
	// The user exists: either created by someone else, or by an earlier
	// attempt of ours whose answer was lost. Either way the request is
	// done; report the existing user's id.
	exists := attempt{kind: retry.Succeeded, outcome: messages.OutcomeExists,
		httpStatus: apiErr.StatusCode, zoomCode: apiErr.Code, detail: apiErr.Message, trackingID: apiErr.TrackingID}
	if err := s.pacer.Wait(ctx, zoom.Call{Op: "get user"}); err != nil {
		return s.failure(ctx, d, &paceError{err: err})
	}
	gctx, span := s.zoomSpan(callCtx, metrics.EndpointGetUser)
	got, gerr := s.zoom.GetUser(gctx, d.create.UserInfo.Email)
	endZoomSpan(span, statusOf(got, gerr), trackingOf(got, gerr), gerr)
	switch {
	case gerr == nil:
		exists.user = got
		return exists
	case errors.Is(gerr, zoom.ErrUserNotFound):
		// A pending invitation may have no readable user yet (Zoom forum
		// 98314). The request is still done.
		return exists
	}
	return s.failure(callCtx, d, gerr)
}

// operationCalls are the Zoom call and endpoint of each lifecycle
// operation.
var operationCalls = map[messages.Operation]struct{ op, endpoint string }{
	messages.OpUpdate:     {"update user", metrics.EndpointUpdateUser},
	messages.OpDelete:     {"delete user", metrics.EndpointDeleteUser},
	messages.OpActivate:   {"set user status", metrics.EndpointUserStatus},
	messages.OpDeactivate: {"set user status", metrics.EndpointUserStatus},
}

// callOperation makes one attempt at a lifecycle operation. A delete of a
// user Zoom does not have is done: the user is absent, as asked (a
// redelivered delete meets exactly that).
func (s *Service) callOperation(ctx, callCtx context.Context, d *delivery) attempt {
	oc := operationCalls[d.op]
	approved := false
	if s.guarded(d) {
		var a attempt
		var ok bool
		if a, approved, ok = s.guardCheck(d); !ok {
			return a
		}
	}
	if err := s.pace(ctx, d, oc.op); err != nil {
		return s.failure(ctx, d, err)
	}
	if s.guarded(d) && !approved {
		start := time.Now()
		if a, ok := s.guardTake(ctx, d); !ok {
			return a
		}
		// A take held up by the bucket (an election) would release the
		// calls paced meanwhile all at once: wait for a new place.
		if time.Since(start) > ownedSlack {
			if err := s.pace(ctx, d, oc.op); err != nil {
				return s.failure(ctx, d, err)
			}
		}
	}
	var resp zoom.Response
	var err error
	zctx, span := s.zoomSpan(callCtx, oc.endpoint)
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
	a := s.failure(callCtx, d, err)
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
