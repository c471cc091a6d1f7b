package quota

import (
	"context"
	"sync"
	"time"
)

// Hold stops new work while the account has a problem (credentials
// rejected, missing scope, no privilege): every request would fail the same
// way, so dead-lettering them would empty the queue for nothing. The hold
// grows while the problem lasts; the first request after it ends is the
// probe that lifts it. It is this replica's alone: each replica finds the
// problem with its own first request. It is safe for concurrent use.
type Hold struct {
	now func() time.Time

	mu     sync.Mutex
	until  time.Time
	reason string
	// count is how many holds happened in a row; reset by a success.
	count int
	// creds is true when the hold began because the token endpoint
	// refused the credentials: a later successful token check may then
	// lift it early.
	creds   bool
	changed broadcast
}

// NewHold returns a Hold on the clock now (nil: time.Now).
func NewHold(now func() time.Time) *Hold {
	if now == nil {
		now = time.Now
	}
	return &Hold{now: now}
}

// State returns the hold's end and reason, and whether it is in force.
func (h *Hold) State() (until time.Time, reason string, held bool) {
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if now.Before(h.until) {
		return h.until, h.reason, true
	}
	return time.Time{}, "", false
}

// Remaining is how long the hold still lasts (zero if not held).
func (h *Hold) Remaining() time.Duration {
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	return max(h.until.Sub(now), 0)
}

// Count is how many holds happened in a row.
func (h *Hold) Count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count
}

// Start begins (or keeps) a hold for d. It reports whether a new hold began,
// so the caller logs the problem once per hold rather than once per
// request. creds says the problem is credentials the token endpoint
// refused.
func (h *Hold) Start(d time.Duration, reason string, creds bool) (until time.Time, started bool) {
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if now.Before(h.until) {
		return h.until, false
	}
	h.until = now.Add(d)
	h.reason = reason
	h.creds = creds
	h.count++
	h.changed.notify()
	return h.until, true
}

// Lift ends a hold on refused credentials at once, after a token check
// found them accepted again, so work resumes without waiting out a hold
// that may have grown to minutes. Holds for other problems (scope, role)
// stay: a token proves nothing about them. The count is kept, so if the
// next request fails the same way the hold still grows. It reports whether
// a hold was lifted.
func (h *Hold) Lift() bool {
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if !now.Before(h.until) || !h.creds {
		return false
	}
	h.until = now
	h.reason = ""
	h.changed.notify()
	return true
}

// Clear lifts the hold after a success. It reports whether there had been
// an account problem to recover from.
func (h *Hold) Clear() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.count == 0 && h.until.IsZero() && h.reason == "" && !h.creds {
		// Nothing to clear: every success calls Clear, and a notification
		// would wake the credentials watcher for nothing each time.
		return false
	}
	had := h.count > 0
	h.count = 0
	h.until = time.Time{}
	h.reason = ""
	h.creds = false
	h.changed.notify()
	return had
}

// Changed returns a channel closed when a hold next begins or is lifted.
func (h *Hold) Changed() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changed.wait()
}

// Wait blocks while the hold is in force, until it ends, is cleared, or
// ctx is done.
func (h *Hold) Wait(ctx context.Context) {
	for ctx.Err() == nil {
		changed := h.Changed()
		d := h.Remaining()
		if d <= 0 {
			return
		}
		sleepUntil(ctx, d, changed)
	}
}
