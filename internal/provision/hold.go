package provision

import (
	"context"
	"sync"
	"time"
)

// hold stops new work while the account has a problem (credentials
// rejected, missing scope, no privilege): every request would fail the same
// way, so dead-lettering them would empty the queue for nothing. The hold
// grows while the problem lasts; the first request after it ends is the
// probe that lifts it.
type hold struct {
	mu     sync.Mutex
	until  time.Time
	reason string
	// count is how many holds happened in a row; reset by a success.
	count int
	// creds is true when the hold began because the token endpoint
	// refused the credentials: a later successful token check may then
	// lift it early (see lift).
	creds bool
	// changed is closed and replaced whenever a hold begins or is lifted
	// early.
	changed chan struct{}
}

// state returns the hold's end and reason, and whether it is in force.
func (h *hold) state(now time.Time) (time.Time, string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if now.Before(h.until) {
		return h.until, h.reason, true
	}
	return time.Time{}, "", false
}

// remaining is how long the hold still lasts (zero if not held).
func (h *hold) remaining(now time.Time) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if d := h.until.Sub(now); d > 0 {
		return d
	}
	return 0
}

// holds is how many holds happened in a row.
func (h *hold) holds() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count
}

// start begins (or keeps) a hold for d. It reports whether a new hold began,
// so the caller logs the problem once per hold rather than once per request.
// creds says the problem is credentials the token endpoint refused.
func (h *hold) start(now time.Time, d time.Duration, reason string, creds bool) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if now.Before(h.until) {
		return h.until, false
	}
	h.until = now.Add(d)
	h.reason = reason
	h.creds = creds
	h.count++
	h.notifyLocked()
	return h.until, true
}

// lift ends a hold on refused credentials at once, after a token check
// found them accepted again, so work resumes without waiting out a hold
// that may have grown to minutes. Holds for other problems (scope, role)
// stay: a token proves nothing about them. The count is kept, so if the
// next request fails the same way the hold still grows. It reports whether
// a hold was lifted.
func (h *hold) lift(now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !now.Before(h.until) || !h.creds {
		return false
	}
	h.until = now
	h.reason = ""
	h.notifyLocked()
	return true
}

// subscribe returns a channel closed when a hold next begins or is lifted.
func (h *hold) subscribe() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.changed == nil {
		h.changed = make(chan struct{})
	}
	return h.changed
}

func (h *hold) notifyLocked() {
	if h.changed != nil {
		close(h.changed)
		h.changed = nil
	}
}

// clear lifts the hold after a success. It reports whether there had been
// an account problem to recover from.
func (h *hold) clear() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.count == 0 && h.until.IsZero() && h.reason == "" && !h.creds {
		// Nothing to clear. Every successful request calls clear, and a
		// notification would wake the credentials watcher for nothing
		// each time.
		return false
	}
	had := h.count > 0
	h.count = 0
	h.until = time.Time{}
	h.reason = ""
	h.creds = false
	h.notifyLocked()
	return had
}

// wait blocks while the hold is in force, until it ends, is cleared, or
// ctx is done.
func (h *hold) wait(ctx context.Context, now func() time.Time) {
	for {
		h.mu.Lock()
		d := h.until.Sub(now())
		if d <= 0 {
			h.mu.Unlock()
			return
		}
		if h.changed == nil {
			h.changed = make(chan struct{})
		}
		changed := h.changed
		h.mu.Unlock()
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-changed:
			t.Stop()
		case <-t.C:
		}
	}
}
