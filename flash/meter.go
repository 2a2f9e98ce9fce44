package flash

import (
	"fmt"
	"time"

	"github.com/applbuild/applbuild/builder/compress"
	"github.com/applbuild/applbuild/internal/progress"
)

// Progress updates: redrawn a few times a second on a terminal, a plain
// line every few seconds in a log.
const (
	terminalEvery = 250 * time.Millisecond
	logEvery      = 5 * time.Second
)

// meter reports bytes done of a total, with the rate and what is left.
type meter struct {
	stage       *progress.Stage
	every       time.Duration
	now         func() time.Time
	start, last time.Time
	done, total int64
}

func newMeter(rep *progress.Reporter, name string, total int64) *meter {
	m := &meter{total: total, now: time.Now}
	if rep == nil {
		return m
	}
	m.stage = rep.Start(name)
	m.every = logEvery
	if rep.Terminal() {
		m.every = terminalEvery
	}
	m.start = m.now()
	m.last = m.start
	return m
}

func (m *meter) add(n int64) {
	m.done += n
	if m.stage == nil {
		return
	}
	if now := m.now(); now.Sub(m.last) >= m.every {
		m.last = now
		m.stage.Line(m.line(now))
	}
}

// line is "1.2 GiB of 2.0 GiB (60%), 41.3 MiB/s, 0:20 left".
func (m *meter) line(now time.Time) string {
	el := now.Sub(m.start).Seconds()
	pct := 100
	if m.total > 0 {
		pct = int(100 * m.done / m.total)
	}
	s := fmt.Sprintf("%s of %s (%d%%)", compress.HumanSize(m.done), compress.HumanSize(m.total), pct)
	if el <= 0 || m.done == 0 {
		return s
	}
	rate := float64(m.done) / el
	left := time.Duration(float64(m.total-m.done) / rate * float64(time.Second)).Round(time.Second)
	return fmt.Sprintf("%s, %s/s, %d:%02d left", s, compress.HumanSize(int64(rate)), int(left.Minutes()), int(left.Seconds())%60)
}

func (m *meter) finish() {
	if m.stage != nil {
		m.stage.Line(m.line(m.now()))
		m.stage.Done(nil)
	}
}

func (m *meter) fail(err error) error {
	if m.stage != nil {
		m.stage.Done(err)
	}
	return err
}
