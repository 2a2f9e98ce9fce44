package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/applbuild/applbuild/internal/outdir"
	"github.com/applbuild/applbuild/internal/testenv"
	"github.com/applbuild/applbuild/rootfs"
)

// TestE2EChaos starts `applbuild build` of a small two-node spec and stops
// it with SIGINT, SIGTERM or SIGKILL at a random moment of a chosen stage:
// the bootstrap (on a cold cache), the extract, each node, the manifest.
// After every kill it wants no process, mount, loop device or network
// namespace of the build left, every rootfs cache entry complete or
// absent, the previous output untouched, and the next build to succeed,
// leave nothing behind and write the same manifest as an uninterrupted
// build.
//
// APPLBUILD_CHAOS_RUNS sets the number of kills: make e2e runs 4 (one
// bootstrap kill), make chaos 25 (five per stage, every signal in every
// stage). The cache is the test's own (cold for the bootstrap kills); the
// .debs of APPLBUILD_CACHE_DIR (or the user's cache) are linked into it so
// that only the package lists come from the mirror.
func TestE2EChaos(t *testing.T) {
	testenv.Slow(t)
	testenv.Root(t)
	testenv.Tools(t, "mmdebstrap", "mke2fs", "tar", "cp", "unshare", "losetup")
	runs := 4
	if s := os.Getenv("APPLBUILD_CHAOS_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("APPLBUILD_CHAOS_RUNS=%q: want a positive number", s)
		}
		runs = n
	}
	c := newChaos(t)

	// Which stage each run stops, and with what: every signal meets every
	// stage once there are 15 runs. The bootstrap runs come first, while
	// the cache is cold.
	stages := append(append([]string{"rootfs", "extract"}, c.nodes...), "manifest")
	signals := []syscall.Signal{syscall.SIGKILL, syscall.SIGINT, syscall.SIGTERM}
	type plan struct {
		stage string
		sig   syscall.Signal
	}
	var plans []plan
	for i := range runs {
		plans = append(plans, plan{stages[i%len(stages)], signals[i%len(signals)]})
	}
	slices.SortStableFunc(plans, func(a, b plan) int {
		return boolInt(b.stage == "rootfs") - boolInt(a.stage == "rootfs")
	})
	if runs == 4 { // make e2e: the bootstrap, a node and the manifest
		plans = []plan{{"rootfs", syscall.SIGKILL}, {"extract", syscall.SIGTERM}, {c.nodes[0], syscall.SIGKILL}, {"manifest", syscall.SIGINT}}
	}

	var results []string
	report := func(r string) {
		results = append(results, r)
		t.Logf("chaos: %s", r)
	}
	defer func() {
		t.Logf("chaos: %d runs:\n%s", len(results), strings.Join(results, "\n"))
	}()
	var stale []string // leftovers of killed builds the next build kept
	defer func() {
		if len(stale) > 0 {
			t.Errorf("what killed builds left outlived the next build:\n%s", strings.Join(stale, "\n"))
		}
	}()
	var ref []byte    // manifest.json of the uninterrupted build
	var prev fileSums // the previous output, file by file
	for i, p := range plans {
		if p.stage != "rootfs" && ref == nil {
			// The first build after the bootstrap kills: the reference.
			start := time.Now()
			ref = c.build("reference")
			prev = sumTree(t, c.final)
			c.noLeftovers("reference")
			t.Logf("chaos: reference build (cold cache) in %s", time.Since(start).Round(time.Second))
		}
		k := c.killRetry(p.stage, p.sig, prev == nil)
		name := fmt.Sprintf("run %2d: %-7s in %-8s (aimed at %s) after %5.1fs: %s", i+1, signalName(p.sig), k.stage, p.stage, k.after.Seconds(), k.status)
		c.checkKill(name, k, p.sig)
		if prev != nil {
			if got := sumTree(t, c.final); !got.equal(prev) {
				t.Fatalf("%s: the previous output changed:\n%s", name, got.diff(prev))
			}
		} else if _, err := os.Lstat(c.final); err == nil {
			// A bootstrap kill can come only after the entry is cached,
			// and then the build may have got no further than that.
			t.Fatalf("%s: an interrupted build left %s", name, c.final)
		}
		if ref != nil || i == len(plans)-1 {
			m := c.build(fmt.Sprintf("run %d: the next build", i+1))
			if ref == nil {
				ref, prev = m, sumTree(t, c.final)
			} else if !bytes.Equal(m, ref) {
				t.Fatalf("%s: the next build's manifest differs from the uninterrupted build's", name)
			}
			// What a SIGKILL left must be gone after the next build. This
			// is collected and failed at the end rather than at once, so
			// one missing cleanup does not hide what the other runs find.
			if l := c.leftovers(); len(l) > 0 {
				stale = append(stale, fmt.Sprintf("%s: after the next build: %s", name, strings.Join(l, ", ")))
				c.clearLeftovers()
				report(name + ": ok, but the next build left " + strings.Join(l, ", "))
				continue
			}
		}
		report(name + ": ok")
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func signalName(s syscall.Signal) string {
	return map[syscall.Signal]string{syscall.SIGKILL: "SIGKILL", syscall.SIGINT: "SIGINT", syscall.SIGTERM: "SIGTERM"}[s]
}

type chaos struct {
	t            *testing.T
	work         string // everything of the test's is below it
	bin, secret  string
	spec         string
	out, cache   string
	final        string // out/<personality>/xen
	nodes        []string
	durations    map[string]time.Duration // stage lengths of the last full build
	mounts, loop []string
	netns        []string
}

const chaosNodes = 2

func newChaos(t *testing.T) *chaos {
	work := t.TempDir()
	c := &chaos{t: t, bin: filepath.Join(work, "applbuild"), secret: filepath.Join(work, "secret"),
		out: filepath.Join(work, "out"), cache: filepath.Join(work, "cache"),
		spec:      filepath.Join("..", "builder", "pipeline", "testdata", "tiny.yaml"),
		durations: map[string]time.Duration{"rootfs": 40 * time.Second, "extract": 10 * time.Second, "manifest": 3 * time.Second}}
	c.final = filepath.Join(c.out, "tiny", "xen")
	for i := 1; i <= chaosNodes; i++ {
		c.nodes = append(c.nodes, fmt.Sprintf("n%d", i))
		c.durations[c.nodes[i-1]] = 10 * time.Second
	}
	gobuild := exec.Command("go", "build", "-o", c.bin, "./cmd/applbuild")
	gobuild.Dir = ".."
	if out, err := gobuild.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if err := os.WriteFile(c.secret, bytes.Repeat([]byte("applbuild chaos secret "), 2), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(c.cache, 0o755); err != nil {
		t.Fatal(err)
	}
	shared := os.Getenv("APPLBUILD_CACHE_DIR")
	if shared == "" {
		shared = rootfs.DefaultDir()
	}
	if _, err := os.Stat(filepath.Join(shared, "debs")); err == nil {
		// Hard links where the file system allows; a copy is not worth it.
		if out, err := exec.Command("cp", "-al", filepath.Join(shared, "debs"), c.cache+"/").CombinedOutput(); err != nil {
			t.Logf("chaos: not sharing the .debs of %s: %v %s", shared, err, out)
		}
	}
	c.work = work
	c.mounts, c.loop, c.netns = hostState(t, work)
	return c
}

// coldCache removes every complete entry, so the next build bootstraps.
func (c *chaos) coldCache() {
	des, _ := os.ReadDir(c.cache)
	for _, de := range des {
		if len(de.Name()) == 64 && de.IsDir() {
			if err := os.RemoveAll(filepath.Join(c.cache, de.Name())); err != nil {
				c.t.Fatal(err)
			}
		}
	}
}

func (c *chaos) command() *exec.Cmd {
	cmd := exec.Command(c.bin, "build", c.spec, "--target", "xen", "--set", "cluster.nodes="+strconv.Itoa(chaosNodes),
		"--out", c.out, "--cache-dir", c.cache, "--secret", c.secret)
	// Its own session, as a build started from a shell is: every process
	// it starts is found by the session id afterwards.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return cmd
}

var stagesLine = regexp.MustCompile(`^stages: (.*)$`)

// build runs one uninterrupted build and returns its manifest.json.
func (c *chaos) build(what string) []byte {
	c.t.Helper()
	var log bytes.Buffer
	cmd := c.command()
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		c.t.Fatalf("%s: %v\n%s", what, err, lastLines(log.String(), 40))
	}
	for _, l := range strings.Split(log.String(), "\n") {
		if m := stagesLine.FindStringSubmatch(l); m != nil {
			for _, part := range strings.Split(m[1], ", ") {
				name, d, _ := strings.Cut(part, " ")
				if dur, err := time.ParseDuration(d); err == nil && name != "rootfs" {
					c.durations[name] = dur
				}
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(c.final, "manifest.json"))
	if err != nil {
		c.t.Fatalf("%s: %v", what, err)
	}
	return b
}

type killed struct {
	stage  string        // the stage running when the signal was sent
	after  time.Duration // since that stage began
	status string        // how the build ended
	code   int           // exit code, -1 when killed by a signal
	pid    int
	procs  []proc // the build's processes when the signal was sent
	log    string
}

// killRetry is kill, again while the build finished the stage before the
// signal's moment came: a stage's length is only known from the last
// build, and the bootstrap's not at all before the first one (it is 20 s
// with every .deb at hand, minutes without). Each miss teaches the stage's
// real length, so the next try falls inside it. A missed build is a whole
// one: without a previous output (fresh says so) it is removed, for the
// runs after it want none; with one it wrote the same files again.
func (c *chaos) killRetry(stage string, sig syscall.Signal, fresh bool) killed {
	c.t.Helper()
	for try := 1; ; try++ {
		if stage == "rootfs" {
			c.coldCache()
		}
		k, missed := c.kill(stage, sig)
		if !missed {
			return k
		}
		if try == 3 {
			c.t.Fatalf("three builds finished stage %s before a %s at a random moment of it\n%s", stage, signalName(sig), lastLines(k.log, 30))
		}
		c.t.Logf("chaos: the build finished stage %s (%s) before the %s; again", stage, c.durations[stage], signalName(sig))
		if fresh {
			if err := os.RemoveAll(c.out); err != nil {
				c.t.Fatal(err)
			}
		}
	}
}

var doneLine = regexp.MustCompile(`^\[([^\]]+)\] done in (\S+)$`)

// kill starts a build and sends sig at a random moment of stage. It says
// missed when the build went past the stage before that moment and then
// finished; the stage's length is then learnt from its log.
func (c *chaos) kill(stage string, sig syscall.Signal) (k killed, missed bool) {
	c.t.Helper()
	cmd := c.command()
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { err := cmd.Wait(); pw.Close(); waited <- err }()
	var log strings.Builder
	started := make(chan string, 16)
	go func() {
		// A stage starts when the one before it is done ("[x] done in").
		order := append(append([]string{"verify", "rootfs", "extract"}, c.nodes...), "manifest")
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			l := sc.Text()
			log.WriteString(l + "\n")
			for i, s := range order[:len(order)-1] {
				if strings.HasPrefix(l, "["+s+"] done in") {
					started <- order[i+1]
				}
			}
		}
		close(started)
	}()
	k = killed{pid: cmd.Process.Pid}
	var at time.Time
	current := "verify"
	var timer <-chan time.Time
	var exited error
	done := false
	for !done {
		select {
		case s, ok := <-started:
			if !ok {
				started = nil
				continue
			}
			current = s
			if s == stage && timer == nil {
				at = time.Now()
				d := c.durations[stage]
				timer = time.After(time.Duration(rand.Int64N(int64(d)*7/10 + 1)))
			}
		case <-timer:
			k.stage, k.after = current, time.Since(at)
			k.procs = descendants(k.pid)
			target := k.pid
			if sig == syscall.SIGINT {
				target = -k.pid // a terminal's Ctrl-C goes to the process group
			}
			if err := syscall.Kill(target, sig); err != nil {
				c.t.Fatalf("kill: %v", err)
			}
			exited = <-waited
			done = true
		case exited = <-waited:
			if exited == nil && timer != nil && current != stage {
				for range started {
				}
				k.log = log.String()
				for _, l := range strings.Split(k.log, "\n") {
					if m := doneLine.FindStringSubmatch(l); m != nil && m[1] == stage {
						if d, err := time.ParseDuration(m[2]); err == nil {
							c.durations[stage] = d
						}
					}
				}
				return k, true
			}
			if exited != nil || current != stage {
				c.t.Fatalf("the build ended before stage %s: %v\n%s", stage, exited, lastLines(log.String(), 30))
			}
			// The stage was shorter than the last build's: a kill that
			// came too late is still a run, and says so.
			k.stage, k.after = "(done)", time.Since(at)
			done = true
		case <-time.After(30 * time.Minute):
			c.t.Fatalf("no stage %s within 30 minutes\n%s", stage, lastLines(log.String(), 30))
		}
	}
	for range started {
	}
	k.log = log.String()
	k.code = -1
	k.status = "killed"
	if exited == nil {
		k.code, k.status = 0, "exit 0 (it had finished)"
	} else if ee, ok := exited.(*exec.ExitError); ok && ee.ExitCode() >= 0 {
		k.code, k.status = ee.ExitCode(), "exit "+strconv.Itoa(ee.ExitCode())
	}
	return k, false
}

// checkKill is what must hold right after an interrupted build.
func (c *chaos) checkKill(name string, k killed, sig syscall.Signal) {
	c.t.Helper()
	if sig != syscall.SIGKILL {
		// A clean stop: the shell's code for the signal, and said why.
		if want := 128 + int(sig); k.code != want && k.code != 0 {
			c.t.Errorf("%s: want exit %d\n%s", name, want, lastLines(k.log, 20))
		}
		if k.code != 0 && !strings.Contains(k.log, "interrupted by "+signalName(sig)) {
			c.t.Errorf("%s: the build did not say it was interrupted\n%s", name, lastLines(k.log, 20))
		}
	}
	if left := c.survivors(k, 10*time.Second); len(left) > 0 {
		for _, p := range left {
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
		}
		c.t.Errorf("%s: processes of the build still run:\n%s", name, procList(left))
	}
	mounts, loop, netns := hostState(c.t, c.work)
	if d := added(c.mounts, mounts); len(d) > 0 {
		c.t.Errorf("%s: mounts left:\n%s", name, strings.Join(d, "\n"))
	}
	if d := added(c.loop, loop); len(d) > 0 {
		c.t.Errorf("%s: loop devices left:\n%s", name, strings.Join(d, "\n"))
	}
	if d := added(c.netns, netns); len(d) > 0 {
		c.t.Errorf("%s: network namespaces left: %s", name, strings.Join(d, " "))
	}
	c.cacheComplete(name)
	if sig != syscall.SIGKILL && k.code != 0 {
		// A build that stopped cleanly removed its own temporary files.
		c.noLeftovers(name)
	}
	if c.t.Failed() {
		c.t.FailNow()
	}
}

// cacheComplete: every entry in the cache is whole (a build killed while
// writing one must never leave it where Get would use it).
func (c *chaos) cacheComplete(name string) {
	c.t.Helper()
	cache := &rootfs.Cache{Dir: c.cache}
	des, _ := os.ReadDir(c.cache)
	for _, de := range des {
		if len(de.Name()) == 64 && de.IsDir() {
			if err := cache.Verify(de.Name()); err != nil {
				c.t.Errorf("%s: a half-written cache entry: %v", name, err)
			}
		}
	}
}

// noLeftovers: nothing of a build but its result beside the output, and
// nothing but entries, locks and .debs in the cache.
func (c *chaos) noLeftovers(name string) {
	c.t.Helper()
	for _, l := range c.leftovers() {
		c.t.Errorf("%s: %s", name, l)
	}
}

// leftovers lists what noLeftovers wants gone.
func (c *chaos) leftovers() []string {
	var out []string
	des, _ := os.ReadDir(filepath.Dir(c.final))
	for _, de := range des {
		if de.Name() != filepath.Base(c.final) && de.Name() != outdir.Marker {
			out = append(out, "left beside the output: "+de.Name())
		}
	}
	des, _ = os.ReadDir(c.cache)
	for _, de := range des {
		n := de.Name()
		if !(n == "debs" || len(n) == 64 || strings.HasSuffix(n, ".lock")) {
			out = append(out, "left in the rootfs cache: "+n)
		}
	}
	return out
}

// clearLeftovers removes what a killed build left and the build after it
// did not, so that the next run is judged on its own.
func (c *chaos) clearLeftovers() {
	for _, dir := range []string{filepath.Dir(c.final), c.cache} {
		des, _ := os.ReadDir(dir)
		for _, de := range des {
			n := de.Name()
			if n != outdir.Marker && (strings.HasPrefix(n, ".") || strings.HasPrefix(n, "tmp-")) {
				if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
					c.t.Fatal(err)
				}
			}
		}
	}
}

type proc struct {
	pid, ppid, sid int
	start          string // start time, so a reused pid is not mistaken
	cmd            string
}

func readProcs() []proc {
	des, _ := os.ReadDir("/proc")
	var out []proc
	for _, de := range des {
		pid, err := strconv.Atoi(de.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", de.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:]) // state ppid pgrp session ... starttime is field 22
		if len(f) < 20 || f[0] == "Z" {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		sid, _ := strconv.Atoi(f[3])
		cmd := s[strings.IndexByte(s, '(')+1 : i]
		if cl, err := os.ReadFile(filepath.Join("/proc", de.Name(), "cmdline")); err == nil && len(cl) > 0 {
			cmd = strings.TrimSpace(strings.ReplaceAll(string(cl), "\x00", " "))
		}
		out = append(out, proc{pid: pid, ppid: ppid, sid: sid, start: f[19], cmd: cmd})
	}
	return out
}

// descendants are root and every process below it.
func descendants(root int) []proc {
	all := readProcs()
	in := map[int]bool{root: true}
	for changed := true; changed; {
		changed = false
		for _, p := range all {
			if in[p.ppid] && !in[p.pid] {
				in[p.pid], changed = true, true
			}
		}
	}
	var out []proc
	for _, p := range all {
		if in[p.pid] {
			out = append(out, p)
		}
	}
	return out
}

// survivors waits up to wait for the build's processes to end: those seen
// when it was signalled, and any other of its session.
func (c *chaos) survivors(k killed, wait time.Duration) []proc {
	deadline := time.Now().Add(wait)
	for {
		var left []proc
		seen := map[string]bool{}
		for _, p := range k.procs {
			seen[strconv.Itoa(p.pid)+"/"+p.start] = true
		}
		for _, p := range readProcs() {
			if seen[strconv.Itoa(p.pid)+"/"+p.start] || p.sid == k.pid {
				left = append(left, p)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func procList(ps []proc) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "  %d (parent %d, session %d): %s\n", p.pid, p.ppid, p.sid, p.cmd)
	}
	return b.String()
}

// hostState is what a build must not change on the host: the mounts of
// this mount namespace and the loop devices on files below work (other
// work on the machine mounts and unmounts as it likes), and the named
// network namespaces.
func hostState(t *testing.T, work string) (mounts, loop, netns []string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && strings.HasPrefix(f[4], work+"/") {
			mounts = append(mounts, f[4]) // the mount point
		}
	}
	out, err := exec.Command("losetup", "-a").Output()
	if err != nil {
		t.Fatalf("losetup -a: %v", err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.Contains(l, work+"/") {
			loop = append(loop, l)
		}
	}
	des, _ := os.ReadDir("/run/netns")
	for _, de := range des {
		netns = append(netns, de.Name())
	}
	return mounts, loop, netns
}

// added is what after has that before had not (as a multiset).
func added(before, after []string) []string {
	count := map[string]int{}
	for _, s := range before {
		count[s]++
	}
	var out []string
	for _, s := range after {
		if s == "" {
			continue
		}
		if count[s] > 0 {
			count[s]--
			continue
		}
		out = append(out, s)
	}
	return out
}

// fileSums is every regular file of a tree by its path, with its sha256.
type fileSums map[string]string

func sumTree(t *testing.T, dir string) fileSums {
	t.Helper()
	sums := fileSums{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		sums[rel] = hex.EncodeToString(h.Sum(nil))
		return nil
	})
	if err != nil {
		t.Fatalf("hash %s: %v", dir, err)
	}
	return sums
}

func (s fileSums) equal(o fileSums) bool { return s.diff(o) == "" }

func (s fileSums) diff(o fileSums) string {
	var b strings.Builder
	for p, h := range o {
		if s[p] != h {
			fmt.Fprintf(&b, "  %s: %q, was %q\n", p, s[p], h)
		}
	}
	for p := range s {
		if _, ok := o[p]; !ok {
			fmt.Fprintf(&b, "  %s: new\n", p)
		}
	}
	return b.String()
}
