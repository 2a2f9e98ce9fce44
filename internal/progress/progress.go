// Package progress reports a long build stage by stage: "[rootfs] ...",
// "[n1] root fs ...". On a terminal each stage is one line redrawn in place
// (with a bar when the stage knows how far it is); anywhere else, such as a
// CI log or a pipe, every update is its own plain line, so nothing is lost
// and nothing needs a terminal to read.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// Reporter writes the stages of one run. It is safe for concurrent use.
type Reporter struct {
	mu      sync.Mutex
	w       io.Writer
	tty     bool
	width   int
	now     func() time.Time
	timings []Timing
	drawn   bool // a redrawable line is on screen
}

// Timing is how long one finished stage took.
type Timing struct {
	Stage    string
	Duration time.Duration
}

// New reports to w, redrawing lines when w is a terminal.
func New(w io.Writer) *Reporter {
	width, tty := terminalWidth(w)
	return &Reporter{w: w, tty: tty, width: width, now: time.Now}
}

// NewPlain reports to w one plain line per update, terminal or not.
func NewPlain(w io.Writer) *Reporter {
	return &Reporter{w: w, width: 80, now: time.Now}
}

// Terminal reports whether lines are redrawn in place, so that a caller
// can update as often as it likes there and more sparingly in a log.
func (r *Reporter) Terminal() bool { return r.tty }

// Discard is a Reporter that writes nothing.
func Discard() *Reporter { return NewPlain(io.Discard) }

// Stage is one named step of a run.
type Stage struct {
	r     *Reporter
	name  string
	start time.Time
	ended bool
	last  string
}

// Start begins a stage.
func (r *Reporter) Start(name string) *Stage {
	return &Stage{r: r, name: name, start: r.now()}
}

// Printf reports what the stage is doing now.
func (s *Stage) Printf(format string, args ...any) {
	s.Line(fmt.Sprintf(format, args...))
}

// Line reports one status line (one of mmdebstrap's, for instance).
func (s *Stage) Line(msg string) {
	msg = strings.TrimRight(msg, "\r\n")
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.last = msg
	s.r.draw(s, msg)
}

// Step reports progress as done of total, with what is being done.
func (s *Stage) Step(done, total int, msg string) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.last = msg
	if !s.r.tty {
		s.r.draw(s, fmt.Sprintf("(%d/%d) %s", done, total, msg))
		return
	}
	const barWidth = 20
	fill := 0
	if total > 0 {
		fill = min(barWidth, done*barWidth/total)
	}
	bar := "[" + strings.Repeat("#", fill) + strings.Repeat(".", barWidth-fill) + "]"
	s.r.draw(s, fmt.Sprintf("%s %d/%d %s", bar, done, total, msg))
}

// Done ends the stage, reporting its duration (and the error, if any), and
// records the timing. Calling it twice does nothing.
func (s *Stage) Done(err error) time.Duration {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	d := s.r.now().Sub(s.start)
	if s.ended {
		return d
	}
	s.ended = true
	s.r.timings = append(s.r.timings, Timing{Stage: s.name, Duration: d})
	msg := "done in " + round(d).String()
	if err != nil {
		msg = "failed after " + round(d).String()
	}
	if s.r.tty {
		s.r.clear()
	}
	fmt.Fprintf(s.r.w, "[%s] %s\n", s.name, msg)
	return d
}

// Timings returns every finished stage, in the order they ended.
func (r *Reporter) Timings() []Timing {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Timing(nil), r.timings...)
}

// Summary is one line with every stage's duration, for the end of a run.
func (r *Reporter) Summary() string {
	var parts []string
	for _, t := range r.Timings() {
		parts = append(parts, fmt.Sprintf("%s %s", t.Stage, round(t.Duration)))
	}
	return strings.Join(parts, ", ")
}

// draw writes one update; the caller holds r.mu.
func (r *Reporter) draw(s *Stage, msg string) {
	if !r.tty {
		fmt.Fprintf(r.w, "[%s] %s\n", s.name, msg)
		return
	}
	line := fmt.Sprintf("[%s] %s %s", s.name, round(r.now().Sub(s.start)), msg)
	if r.width > 1 && len([]rune(line)) >= r.width {
		line = string([]rune(line)[:r.width-1])
	}
	fmt.Fprintf(r.w, "\r\033[K%s", line)
	r.drawn = true
}

// clear removes the redrawn line; the caller holds r.mu.
func (r *Reporter) clear() {
	if r.drawn {
		fmt.Fprint(r.w, "\r\033[K")
		r.drawn = false
	}
}

func round(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

// terminalWidth reports whether w is a terminal and how wide it is.
func terminalWidth(w io.Writer) (int, bool) {
	f, ok := w.(*os.File)
	if !ok {
		return 0, false
	}
	var ws struct{ Row, Col, X, Y uint16 }
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TIOCGWINSZ, uintptr(unsafe.Pointer(&ws)))
	if errno != 0 {
		return 0, false
	}
	if ws.Col == 0 {
		return 80, true
	}
	return int(ws.Col), true
}
