package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
)

// explainRefusal adds to err what the NATS server said when it refused
// the connection's user a permission. The server refuses a request's
// publish without answering it, so the request itself fails only as a
// time-out; the refusal arrives on the connection, where nc.LastError
// keeps it.
func explainRefusal(nc *nats.Conn, err error) error {
	if err == nil || nc == nil {
		return err
	}
	last := nc.LastError()
	if !errors.Is(last, nats.ErrPermissionViolation) {
		return err
	}
	said := strings.TrimPrefix(last.Error(), nats.ErrPermissionViolation.Error()+": ")
	hint := "the users' permissions are in deploy/k8s/nats-accounts.conf"
	if strings.Contains(said, "Subscription to \"_INBOX.") {
		hint = "replies arrive on _INBOX.>, which this user may not subscribe to: set NATS_INBOX_PREFIX (--nats-inbox-prefix) to the user's own, e.g. _INBOX_operator"
	}
	return fmt.Errorf("%w: the NATS server refused this user a permission (%s); %s", err, said, hint)
}
