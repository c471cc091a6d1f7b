package quota

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves goroutines behind: coordinators,
// servers and connections end in t.Cleanup.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
