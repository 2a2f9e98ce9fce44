package e2e

import (
	"testing"
	"time"
)

// timing logs one measured step of a cluster drill, beside the e2e: line a
// human reads, in the form make bench collects (bench/applbench/cluster.go):
// "e2e-timing: PERSONALITY<TAB>STEP<TAB>SECONDS".
func timing(t *testing.T, personality, step string, d time.Duration) {
	t.Helper()
	t.Logf("e2e-timing: %s\t%s\t%d", personality, step, int(d.Round(time.Second).Seconds()))
}
