package zoom_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves goroutines behind: every simulator,
// test server and client connection pool is closed in t.Cleanup. It is the
// only TestMain of this test binary (package zoom's tests have none).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
