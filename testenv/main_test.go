package testenv

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves goroutines behind: the simulator's
// Stall, delays and Close must release every handler.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
