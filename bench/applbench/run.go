package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/applbuild/applbuild/internal/mountinfo"
)

// sample is one measured command.
type sample struct {
	Name    string
	Wall    time.Duration
	MaxRSS  int64 // bytes: the largest single process of the tree (wait4's ru_maxrss)
	Written int64 // bytes: ru_oublock × 512, the whole waited-for tree
	Lines   []line
	Stages  []stage // from applbuild's "stages:" summary line
	Log     string
}

// line is one line of a command's output, with when it arrived.
type line struct {
	At   time.Duration
	Text string
}

type stage struct {
	Name string
	D    time.Duration
}

// stageD is the duration of the named stage, or 0.
func (s *sample) stageD(name string) time.Duration {
	for _, st := range s.Stages {
		if st.Name == name {
			return st.D
		}
	}
	return 0
}

// runner runs the measured commands, one at a time, each in its own process
// group so that an interrupt reaches every process it started.
type runner struct {
	ctx  context.Context
	logs string // one log file per command
	n    int
	tmp  string // scratch for /usr/bin/time's output
}

// cmdSpec is a command to measure.
type cmdSpec struct {
	Args []string
	Env  []string // added to the environment
	Dir  string
}

// measure runs c under GNU time (for peak RSS and file-system outputs,
// which include every child the command waited for) and times its wall
// clock here. Every output line is logged with its arrival time.
func (r *runner) measure(name string, c cmdSpec) (*sample, error) {
	r.n++
	logPath := filepath.Join(r.logs, fmt.Sprintf("%02d-%s.log", r.n, slug(name)))
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	fmt.Fprintf(lf, "# %s\n# %s\n", name, strings.Join(c.Args, " "))
	timeOut := filepath.Join(r.tmp, "time.out")
	os.Remove(timeOut)
	args := append([]string{"/usr/bin/time", "-f", "%M %O", "-o", timeOut}, c.Args...)

	// Nothing the previous command left dirty in the page cache is
	// written back on this one's time.
	if out, err := exec.CommandContext(r.ctx, "sync").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("sync: %w: %s", err, out)
	}
	fmt.Fprintf(os.Stderr, "bench: %s ...\n", name)
	start := time.Now()
	w := &lineLog{start: start, out: lf}
	err = r.run(cmdSpec{Args: args, Env: c.Env, Dir: c.Dir}, w)
	wall := time.Since(start)
	w.flush()
	s := &sample{Name: name, Wall: wall, Lines: w.lines, Log: logPath}
	if err != nil {
		return s, fmt.Errorf("%s: %w (log %s):\n%s", name, err, logPath, tail(w.lines, 15))
	}
	tb, err := os.ReadFile(timeOut)
	if err != nil {
		return s, fmt.Errorf("%s: GNU time's output: %w", name, err)
	}
	tl := strings.Fields(lastLine(string(tb)))
	if len(tl) != 2 {
		return s, fmt.Errorf("%s: GNU time wrote %q", name, tb)
	}
	kb, err1 := strconv.ParseInt(tl[0], 10, 64)
	blocks, err2 := strconv.ParseInt(tl[1], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return s, fmt.Errorf("%s: GNU time: %w", name, err)
	}
	s.MaxRSS, s.Written = kb*1024, blocks*512
	s.Stages = parseStages(w.lines)
	fmt.Fprintf(lf, "# wall %s, max RSS %d KiB, written %d bytes\n", wall, kb, s.Written)
	fmt.Fprintf(os.Stderr, "bench: %s: %.1f s, max RSS %s, written %s\n", name, wall.Seconds(), size(s.MaxRSS), size(s.Written))
	return s, nil
}

// output runs an unmeasured helper command and returns its stdout.
func (r *runner) output(args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(r.ctx, args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// run starts c in a new process group and waits. When the context ends it
// sends SIGINT to the group (applbuild cancels and cleans up on it) and
// SIGKILL a minute later if anything is still there.
func (r *runner) run(c cmdSpec, w io.Writer) error {
	cmd := exec.Command(c.Args[0], c.Args[1:]...)
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A grandchild that keeps the pipe open must not hang Wait.
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		return err
	}
	pgid := cmd.Process.Pid
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-done:
			return
		case <-r.ctx.Done():
		}
		_ = syscall.Kill(-pgid, syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(time.Minute):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
	}()
	err := cmd.Wait()
	close(done)
	wg.Wait()
	if r.ctx.Err() != nil {
		return r.ctx.Err()
	}
	return err
}

// lineLog splits output into lines, stamps each with its arrival time and
// writes it to the log.
type lineLog struct {
	start time.Time
	out   io.Writer
	buf   []byte
	lines []line
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.add(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

func (l *lineLog) add(s string) {
	s = strings.TrimRight(s, "\r")
	at := time.Since(l.start)
	l.lines = append(l.lines, line{At: at, Text: s})
	fmt.Fprintf(l.out, "%9.3f %s\n", at.Seconds(), s)
}

func (l *lineLog) flush() {
	if len(l.buf) > 0 {
		l.add(string(l.buf))
		l.buf = nil
	}
}

// parseStages reads applbuild's last "stages: verify 12ms, rootfs 2m50s, ..."
func parseStages(lines []line) []stage {
	var out []stage
	for _, l := range lines {
		rest, ok := strings.CutPrefix(l.Text, "stages: ")
		if !ok {
			continue
		}
		out = nil
		for _, part := range strings.Split(rest, ", ") {
			i := strings.LastIndexByte(part, ' ')
			if i < 0 {
				continue
			}
			d, err := time.ParseDuration(part[i+1:])
			if err != nil {
				continue
			}
			out = append(out, stage{Name: part[:i], D: d})
		}
	}
	return out
}

// nodeSteps splits node stage n of a build log into its steps, timed by the
// arrival of each progress line: "tree" (hard-link copy, overlay,
// sysusers, owners, times) up to the first disk step, then one entry per
// step kind ("root fs", "swap", "LVM2 PV", "brick", "xl config"), summed.
func nodeSteps(lines []line, node string) map[string]time.Duration {
	prefix := "[" + node + "] "
	type mark struct {
		at   time.Duration
		kind string
	}
	var marks []mark
	for _, l := range lines {
		rest, ok := strings.CutPrefix(l.Text, prefix)
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(rest, "tree:"):
			marks = append(marks, mark{l.At, "tree"})
		case strings.HasPrefix(rest, "done in"), strings.HasPrefix(rest, "failed after"):
			marks = append(marks, mark{l.At, ""})
		case strings.HasPrefix(rest, "("):
			if _, what, ok := strings.Cut(rest, ") "); ok {
				marks = append(marks, mark{l.At, stepKind(what)})
			}
		}
	}
	out := map[string]time.Duration{}
	for i := 0; i+1 < len(marks); i++ {
		if marks[i].kind != "" {
			out[marks[i].kind] += marks[i+1].at - marks[i].at
		}
	}
	return out
}

// stepKinds are the node steps in build order, as reported.
var stepKinds = []string{"tree", "root fs", "swap", "LVM2 PV", "brick", "xl config"}

func stepKind(what string) string {
	for _, k := range stepKinds {
		if strings.HasPrefix(what, k) {
			return k
		}
	}
	return what
}

func tail(lines []line, n int) string {
	var b strings.Builder
	for _, l := range lines[max(0, len(lines)-n):] {
		b.WriteString("  " + l.Text + "\n")
	}
	return b.String()
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func slug(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), "-")
}

// cleanup leaves nothing of the run behind: loop devices backed by files
// under work (xen-create-image loop-mounts its image), mounts under it,
// then the directory itself.
func cleanup(work string) error {
	var errs []error
	if out, err := exec.Command("losetup", "--list", "--noheadings", "--raw", "--output", "NAME,BACK-FILE").Output(); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 2 && within(f[1], work) {
				if out, err := exec.Command("losetup", "-d", f[0]).CombinedOutput(); err != nil {
					errs = append(errs, fmt.Errorf("losetup -d %s: %w: %s", f[0], err, out))
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		var mnts []string
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) > 4 && within(mountinfo.Unescape(f[4]), work) {
				mnts = append(mnts, mountinfo.Unescape(f[4]))
			}
		}
		// Deepest first.
		slices.SortFunc(mnts, func(a, b string) int { return len(b) - len(a) })
		for _, m := range mnts {
			if out, err := exec.Command("umount", "-l", m).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("umount %s: %w: %s", m, err, out))
			}
		}
	}
	if err := os.RemoveAll(work); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// linkDebs hard-links every .deb of from into to that to does not have.
func linkDebs(from, to string) (int, error) {
	if err := os.MkdirAll(to, 0o755); err != nil {
		return 0, err
	}
	des, err := os.ReadDir(from)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, de := range des {
		if !de.Type().IsRegular() || !strings.HasSuffix(de.Name(), ".deb") {
			continue
		}
		dst := filepath.Join(to, de.Name())
		if _, err := os.Lstat(dst); err == nil {
			continue
		}
		if err := os.Link(filepath.Join(from, de.Name()), dst); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func countDebs(dir string) int {
	m, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
	return len(m)
}
