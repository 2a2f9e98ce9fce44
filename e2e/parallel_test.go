package e2e

import (
	"testing"

	"github.com/applbuild/applbuild/internal/testenv"
)

// oneGuest marks a test that boots one guest at a time and times no
// failover: it may run beside another such test (t.Parallel), after
// every test that may not.
func oneGuest(t *testing.T) {
	t.Helper()
	testenv.Slow(t)
	testenv.Root(t)
	t.Parallel()
}
