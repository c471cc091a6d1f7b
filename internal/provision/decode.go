package provision

import (
	"errors"
	"fmt"

	"github.com/zoomprov/consumer/internal/messages"
	"github.com/zoomprov/consumer/internal/retry"
)

// decode decodes the body and checks it against the subject, filling in
// the delivery's request, user and key. It returns the invalid attempt, or
// nil when the request is valid. An invalid request still names its user
// when it can, so that the user's later requests wait for its dead letter.
func (s *Service) decode(d *delivery) *attempt {
	invalid := func(err error, detail string) *attempt {
		return &attempt{kind: retry.Invalid, err: err, reason: messages.ReasonInvalidRequest, detail: detail, try: 1}
	}
	defer func() {
		if d.email == "" {
			d.email = messages.BestEffortEmail(d.data)
		}
		d.key = messages.UserKey(d.email)
	}()
	if d.badCopy {
		detail := fmt.Sprintf("subject %q is the service's own parked subject; publish on %s", d.subject, s.topo.RequestSubject(d.action))
		return invalid(errors.New("provision: "+detail), detail)
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
		if err != nil {
			return invalid(err, err.Error())
		}
		return nil
	}
	req, err := messages.Decode(d.data)
	if err != nil {
		return invalid(err, err.Error())
	}
	d.create = req
	d.email = req.UserInfo.Email
	if d.action == "" {
		detail := fmt.Sprintf("subject %q is not %s.<action>", d.published, s.topo.RequestPrefix)
		return invalid(errors.New("provision: subject does not name an action"), detail)
	}
	if string(req.Action) != d.action {
		detail := fmt.Sprintf("action %q in the body does not match the subject's action %q", req.Action, d.action)
		return invalid(errors.New("provision: "+detail), detail)
	}
	return nil
}
