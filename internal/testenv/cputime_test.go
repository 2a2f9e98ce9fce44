package testenv

import (
	"testing"
	"time"
)

// TestCPUTime: sleeping costs no CPU time, spinning costs about what it
// took.
func TestCPUTime(t *testing.T) {
	if d := CPUTime(func() { time.Sleep(300 * time.Millisecond) }); d > 100*time.Millisecond {
		t.Errorf("a 300ms sleep used %v of CPU", d)
	}
	d := CPUTime(func() {
		for start := time.Now(); time.Since(start) < 300*time.Millisecond; {
		}
	})
	if d < 50*time.Millisecond {
		t.Errorf("300ms of spinning used %v of CPU", d)
	}
}
