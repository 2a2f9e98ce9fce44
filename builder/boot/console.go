package boot

import (
	"bytes"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"
)

// console follows the serial log QEMU writes to a file. A file rather
// than a pipe: QEMU never blocks on a slow reader, and the whole log is
// still there for the error message when a boot goes wrong.
type console struct {
	path string
	out  io.Writer // cleaned lines as they come; nil discards

	mu    sync.Mutex
	lines []line // cleaned, the newest maxLines
	total int    // lines seen, including those dropped from lines
	cond  *sync.Cond

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// line is one console line and when the harness read it.
type line struct {
	Text string
	At   time.Time
}

// maxLines bounds what a console keeps for matching and error tails.
const maxLines = 20000

// pollEvery is how often the log file is read; a boot takes minutes.
const pollEvery = 100 * time.Millisecond

// partialLineAfter is how long an unterminated console line must stay
// unchanged before it counts as a line (a login prompt never ends).
const partialLineAfter = 2 * time.Second

func newConsole(path string, out io.Writer) *console {
	c := &console{path: path, out: out, stop: make(chan struct{}), done: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	return c
}

// follow reads the log until close is called, then reads what is left.
func (c *console) follow() {
	defer close(c.done)
	var (
		f        *os.File
		pending  []byte
		buf      = make([]byte, 64<<10)
		lastData time.Time
	)
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	drain := func() {
		if f == nil {
			var err error
			if f, err = os.Open(c.path); err != nil {
				return
			}
		}
		for {
			n, _ := f.Read(buf)
			if n == 0 {
				return
			}
			lastData = time.Now()
			pending = append(pending, buf[:n]...)
			for {
				i := bytes.IndexByte(pending, '\n')
				if i < 0 {
					break
				}
				c.add(string(pending[:i]))
				pending = pending[i+1:]
			}
		}
	}
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			drain()
			if len(pending) > 0 {
				c.add(string(pending))
			}
			c.mu.Lock()
			c.cond.Broadcast()
			c.mu.Unlock()
			return
		case <-t.C:
			drain()
			// A prompt ("scm1 login: ") ends without a newline and waits:
			// a partial line that has not grown for a while is a line.
			if len(pending) > 0 && time.Since(lastData) >= partialLineAfter {
				c.add(string(pending))
				pending = nil
			}
		}
	}
}

// add cleans one raw line and keeps it, unless it is only a progress
// spinner systemd redraws in place (kept out: hundreds of them).
func (c *console) add(raw string) {
	text := cleanLine(raw)
	if isSpinner(text) {
		return
	}
	c.mu.Lock()
	c.lines = append(c.lines, line{Text: text, At: time.Now()})
	if len(c.lines) > maxLines {
		c.lines = append(c.lines[:0], c.lines[len(c.lines)-maxLines:]...)
	}
	c.total++
	c.cond.Broadcast()
	c.mu.Unlock()
	if c.out != nil {
		io.WriteString(c.out, text+"\n")
	}
}

// close stops following after a last read; it waits for that read.
func (c *console) close() {
	c.stopOnce.Do(func() { close(c.stop) })
	<-c.done
}

// find returns the first kept line at or after index from (counted over
// all lines ever seen) that matches re, and the index after it.
func (c *console) find(re *regexp.Regexp, from int) (line, int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	first := c.total - len(c.lines)
	for i := max(from, first); i < c.total; i++ {
		if l := c.lines[i-first]; re.MatchString(l.Text) {
			return l, i + 1, true
		}
	}
	return line{}, c.total, false
}

// tail returns the last n lines.
func (c *console) tail(n int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, l := range c.lines[max(0, len(c.lines)-n):] {
		out = append(out, l.Text)
	}
	return out
}

var (
	// ansi matches the terminal controls systemd and agetty write: CSI
	// sequences (colours, erase line, cursor moves), OSC strings, and
	// two-byte escapes such as reverse index (ESC M).
	ansi = regexp.MustCompile("\x1b\\[[0-?]*[ -/]*[@-~]|\x1b\\][^\x07\x1b]*(?:\x07|\x1b\\\\)|\x1b[@-Z\\\\-_]|\x1b[()][0-9A-Za-z]")
	// spinner is systemd's "A start job is running" progress line.
	spinner = regexp.MustCompile(`^\[[ *]{6}\] (?:\(\d+ of \d+\) )?(?:A (?:start|stop) job is running|Job .* running) `)
)

// cleanLine removes terminal controls and what a carriage return
// overwrote, so the line reads as the screen showed it.
func cleanLine(s string) string {
	s = ansi.ReplaceAllString(s, "")
	s = strings.TrimRight(s, "\r")
	if i := strings.LastIndexByte(s, '\r'); i >= 0 {
		s = s[i+1:]
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' && r != '\t' || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

func isSpinner(s string) bool { return spinner.MatchString(s) }
