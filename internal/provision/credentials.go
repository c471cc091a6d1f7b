package provision

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/zoomprov/consumer/internal/retry"
	"github.com/zoomprov/consumer/internal/zoom"
)

// The states of Status.ZoomCredentials.
const (
	// CredentialsUnverified: not checked yet, or every check so far failed
	// without an answer about the credentials (Zoom unreachable).
	CredentialsUnverified = "unverified"
	// CredentialsAccepted: the token endpoint issued a token.
	CredentialsAccepted = "accepted"
	// CredentialsRejected: the token endpoint refused the credentials.
	CredentialsRejected = "rejected"
	// CredentialsUnchecked: Config.Credentials is nil and no Zoom call has
	// told yet.
	CredentialsUnchecked = "unchecked"
)

// credentials is what the service knows about its Zoom credentials.
type credentials struct {
	mu     sync.Mutex
	state  string
	detail string
}

func (c *credentials) get() (state, detail string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state, c.detail
}

func (c *credentials) set(state, detail string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state, c.detail = state, detail
}

// credentialsCheckTimeout bounds one token check.
const credentialsCheckTimeout = 15 * time.Second

// watchCredentials checks the credentials at start-up, then again whenever
// the service is paused or the last check did not find them accepted, until
// ctx ends. The checks start a second apart, so a fixed secret shows at
// once, and slow down to CredentialsCheck, so a long outage costs few token
// requests. Readiness reads the result, so probes never cost a token
// request: a cached token answers most checks without a call, and checks
// stop while all is well.
func (s *Service) watchCredentials(ctx context.Context, tc Credentials) {
	sched := retry.Schedule{Initial: min(time.Second, s.cfg.CredentialsCheck), Max: s.cfg.CredentialsCheck, Jitter: 0.1}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	n := 0 // checks in a row that did not settle the question
	for {
		// Subscribe before checking, so a pause that begins during the
		// check is not missed.
		changed := s.pause.Changed()
		s.checkCredentials(ctx, tc)
		if state, _ := s.creds.get(); state != CredentialsAccepted || s.pause.Remaining() > 0 {
			n++
			timer.Reset(sched.Delay(n))
		} else {
			n = 0
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-timer.C:
		}
	}
}

// checkCredentials asks for a token once and records the answer. Accepted
// credentials lift a pause that refused credentials began.
func (s *Service) checkCredentials(ctx context.Context, tc Credentials) {
	cctx, cancel := context.WithTimeout(ctx, credentialsCheckTimeout)
	defer cancel()
	err := tc.TokenValid(cctx)
	if ctx.Err() != nil {
		return
	}
	if err == nil {
		s.credentialsAccepted()
		return
	}
	var tokErr *zoom.TokenError
	if errors.As(err, &tokErr) && tokErr.CredentialsRejected() {
		s.creds.set(CredentialsRejected, tokErr.Error())
		return
	}
	// No answer about the credentials themselves (network, 5xx, the token
	// endpoint's own 429): keep what was known.
	if state, _ := s.creds.get(); state == CredentialsUnverified {
		s.creds.set(CredentialsUnverified, maskEmails(err.Error()))
	}
}

// credentialsAccepted records that Zoom took the credentials (a token
// check or a successful call) and lifts a pause on refused credentials.
func (s *Service) credentialsAccepted() {
	s.creds.set(CredentialsAccepted, "")
	if s.pause.Lift() {
		s.log.Info().Msg("zoom accepts the credentials again; pause lifted")
	}
}
