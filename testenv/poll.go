package testenv

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// Eventually polls cond until it holds, failing tb with cond's last
// explanation when timeout passes first. Tests use it instead of sleeping
// for a condition.
func Eventually(tb testing.TB, timeout time.Duration, cond func() (ok bool, why string)) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("condition not met within %v: %s", timeout, why)
		}
		time.Sleep(wait) // polling interval, not a wait for the condition
		if wait < 50*time.Millisecond {
			wait *= 2
		}
	}
}

// SyncBuffer collects output written from many goroutines, e.g. a
// service's log.
type SyncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
