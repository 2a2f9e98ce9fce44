package flash

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/applbuild/applbuild/internal/progress"
)

// TestMeterCadence: in a log (no terminal) a line every 5 s, with the
// bytes, the rate and the time left.
func TestMeterCadence(t *testing.T) {
	var b bytes.Buffer
	m := newMeter(progress.NewPlain(&b), "write /dev/sdz", 100*miB)
	now := m.start
	m.now = func() time.Time { return now }
	for range 20 { // 1 MiB a second for 20 s
		now = now.Add(time.Second)
		m.add(miB)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines in 20 s, want one per 5 s:\n%s", len(lines), b.String())
	}
	want := "[write /dev/sdz] 20.0 MiB of 100.0 MiB (20%), 1.0 MiB/s, 1:20 left"
	if lines[3] != want {
		t.Errorf("last line %q, want %q", lines[3], want)
	}
}

func TestMeterWithoutReporter(t *testing.T) {
	m := newMeter(nil, "x", 10)
	m.add(5)
	m.finish()
	if m.done != 5 {
		t.Errorf("done = %d", m.done)
	}
}
