package progress

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// clock advances one second per reading, so durations are predictable.
func clock() func() time.Time {
	t := time.Unix(0, 0)
	return func() time.Time { t = t.Add(time.Second); return t }
}

func TestPlain(t *testing.T) {
	var b bytes.Buffer
	r := NewPlain(&b)
	r.now = clock()
	s := r.Start("rootfs")
	s.Line("I: downloading packages...\n")
	s.Step(1, 3, "root fs")
	s.Done(nil)
	n := r.Start("n1")
	n.Done(errors.New("boom"))
	want := "[rootfs] I: downloading packages...\n" +
		"[rootfs] (1/3) root fs\n" +
		"[rootfs] done in 1s\n" +
		"[n1] failed after 1s\n"
	if b.String() != want {
		t.Errorf("plain output:\n%s\nwant:\n%s", b.String(), want)
	}
	if got := r.Summary(); got != "rootfs 1s, n1 1s" {
		t.Errorf("Summary = %q", got)
	}
}

func TestTerminalRedraws(t *testing.T) {
	var b bytes.Buffer
	r := NewPlain(&b)
	r.tty, r.width = true, 40
	r.now = clock()
	s := r.Start("n1")
	s.Step(2, 4, "swap "+strings.Repeat("x", 50))
	s.Done(nil)
	out := b.String()
	if !strings.HasPrefix(out, "\r\033[K[n1] 1s [##########..........] 2/4 swap") {
		t.Errorf("terminal line not redrawn with a bar: %q", out)
	}
	first := strings.Split(strings.TrimPrefix(out, "\r\033[K"), "\r")[0]
	if len(first) >= 40 {
		t.Errorf("line of %d columns not cut to the terminal's 40: %q", len(first), first)
	}
	if !strings.HasSuffix(out, "\r\033[K[n1] done in 2s\n") {
		t.Errorf("stage end does not replace the redrawn line: %q", out)
	}
}

func TestNotATerminal(t *testing.T) {
	if _, tty := terminalWidth(&bytes.Buffer{}); tty {
		t.Error("a buffer is not a terminal")
	}
	if New(&bytes.Buffer{}).Terminal() {
		t.Error("Terminal() of a buffer's reporter")
	}
}
