package provision

import (
	"context"
	"sync"
	"time"
)

// pause stops new work while the account has a problem (credentials
// rejected, missing scope, no privilege): every request would fail the same
// way, so dead-lettering them would empty the queue for nothing. The pause
// grows while the problem lasts; the first request after it ends is the
// probe that lifts it. It is this replica's alone: each replica finds the
// problem with its own first request. It is safe for concurrent use.
type pause struct {
	now func() time.Time

	mu     sync.Mutex
	until  time.Time
	reason string
	// count is how many pauses happened in a row; reset by a success.
	count int
	// creds is true when the pause began because the token endpoint
	// refused the credentials: a later successful token check may then
	// lift it early.
	creds bool
	// changed is closed and replaced at each change.
	changed chan struct{}
}

// newPause returns a pause on the clock now (nil: time.Now).
func newPause(now func() time.Time) *pause {
	if now == nil {
		now = time.Now
	}
	return &pause{now: now, changed: make(chan struct{})}
}

// State returns the pause's end and reason, and whether it is in force.
func (p *pause) State() (until time.Time, reason string, paused bool) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.Before(p.until) {
		return p.until, p.reason, true
	}
	return time.Time{}, "", false
}

// Remaining is how long the pause still lasts (zero if not paused).
func (p *pause) Remaining() time.Duration {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	return max(p.until.Sub(now), 0)
}

// Count is how many pauses happened in a row.
func (p *pause) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count
}

// Start begins (or keeps) a pause for d. It reports whether a new pause began,
// so the caller logs the problem once per pause rather than once per
// request. creds says the problem is credentials the token endpoint
// refused.
func (p *pause) Start(d time.Duration, reason string, creds bool) (until time.Time, started bool) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.Before(p.until) {
		return p.until, false
	}
	p.until = now.Add(d)
	p.reason = reason
	p.creds = creds
	p.count++
	p.notifyLocked()
	return p.until, true
}

// Lift ends a pause on refused credentials at once, after a token check
// found them accepted again, so work resumes without waiting out a pause
// that may have grown to minutes. Pauses for other problems (scope, role)
// stay: a token proves nothing about them. The count is kept, so if the
// next request fails the same way the pause still grows. It reports whether
// a pause was lifted.
func (p *pause) Lift() bool {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !now.Before(p.until) || !p.creds {
		return false
	}
	p.until = now
	p.reason = ""
	p.notifyLocked()
	return true
}

// Clear lifts the pause after a success. It reports whether there had been
// an account problem to recover from.
func (p *pause) Clear() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.count == 0 && p.until.IsZero() && p.reason == "" && !p.creds {
		// Nothing to clear: every success calls Clear, and a notification
		// would wake the credentials watcher for nothing each time.
		return false
	}
	had := p.count > 0
	p.count = 0
	p.until = time.Time{}
	p.reason = ""
	p.creds = false
	p.notifyLocked()
	return had
}

// Changed returns a channel closed when a pause next begins or is lifted.
func (p *pause) Changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.changed
}

func (p *pause) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Wait blocks while the pause is in force, until it ends, is cleared, or
// ctx is done.
func (p *pause) Wait(ctx context.Context) {
	for ctx.Err() == nil {
		changed := p.Changed()
		d := p.Remaining()
		if d <= 0 {
			return
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}
