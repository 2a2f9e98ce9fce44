package overlays

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
)

const testDRKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKsdQ6hfIeRpuJPjdw5V0LFp9XHm8fGzOk1ROo1o8ByS root@dr"

func TestRsyncFiles(t *testing.T) {
	pl := planFor(t, "web-cluster")
	files := renderNode(t, pl, "n2")
	conf := mustFile(t, files, "/usr/global/etc/rsyncd.conf")
	for _, want := range []string{"[www]", "path = /var/www", "hosts allow = dr.example.org", "hosts deny = *", "read only = yes", "use chroot = yes", "max connections = 10", "timeout = 600"} {
		if !bytes.Contains(conf.Data, []byte(want)) {
			t.Errorf("rsyncd.conf lacks %q", want)
		}
	}
	def := string(mustFile(t, files, "/etc/default/rsync").Data)
	if ip := pl.Rsync.Address; ip == "" || !strings.Contains(def, "RSYNC_OPTS='--address="+ip+"'") {
		t.Errorf("/etc/default/rsync does not bind the floating IP %q:\n%s", ip, def)
	}
	home := mustFile(t, files, "/usr/global/home/rsync")
	ssh := mustFile(t, files, "/usr/global/home/rsync/.ssh")
	if !home.IsDir() || !ssh.IsDir() || ssh.Mode.Perm() != 0o700 || ssh.Owner != "rsync:rsync" {
		t.Errorf("home %v %s, .ssh %v %s", home.Mode, home.Owner, ssh.Mode, ssh.Owner)
	}
	if _, ok := files["/usr/global/home/rsync/.ssh/authorized_keys"]; ok {
		t.Errorf("authorized_keys without a DR key")
	}
	for _, p := range []string{"applbuild-dr-pull", "applbuild-dr-pull.service", "applbuild-dr-pull.timer", "README"} {
		mustFile(t, files, drClientDir+"/"+p)
	}
	// Nothing may enable rsync at boot: Pacemaker owns it.
	for p := range files {
		if strings.Contains(p, ".wants/rsync") {
			t.Errorf("%s enables rsync at boot", p)
		}
	}

	pl = planFor(t, "web-cluster", "rsync.dr_key="+testDRKey)
	files = renderNode(t, pl, "n1")
	ak := mustFile(t, files, "/usr/global/home/rsync/.ssh/authorized_keys")
	want := `restrict,command="rsync --server --daemon --config=/usr/global/etc/rsyncd.conf --dparam='use chroot=no' --dparam='lock file=/run/lock/rsyncd-ssh' ." ` + testDRKey + "\n"
	if string(ak.Data) != want || ak.Mode.Perm() != 0o600 || ak.Owner != "rsync:rsync" {
		t.Errorf("authorized_keys %v %s:\n%s", ak.Mode, ak.Owner, ak.Data)
	}
}

func TestRsyncUnitsVerify(t *testing.T) {
	testenv.Tools(t, "systemd-analyze", "rsync")
	pl := planFor(t, "web-cluster")
	files := renderNode(t, pl, "n1")

	// Debian's own rsync.service with our drop-in beside it (verify reads
	// drop-ins next to a unit given by path).
	dir := t.TempDir()
	base, err := os.ReadFile("/lib/systemd/system/rsync.service")
	if err != nil {
		t.Fatalf("Debian's rsync.service: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "rsync.service"), base, 0o644)
	os.MkdirAll(filepath.Join(dir, "rsync.service.d"), 0o755)
	os.WriteFile(filepath.Join(dir, "rsync.service.d", "applbuild.conf"), mustFile(t, files, rsyncDropIn).Data, 0o644)
	verifyQuiet(t, filepath.Join(dir, "rsync.service"))

	// The DR units, with the pull script where the unit expects it moved
	// into the temp dir (the only change).
	script := filepath.Join(dir, "applbuild-dr-pull")
	os.WriteFile(script, mustFile(t, files, drClientDir+"/applbuild-dr-pull").Data, 0o755)
	svc := strings.ReplaceAll(string(mustFile(t, files, drClientDir+"/applbuild-dr-pull.service").Data), "/usr/local/sbin/applbuild-dr-pull", script)
	os.WriteFile(filepath.Join(dir, "applbuild-dr-pull.service"), []byte(svc), 0o644)
	os.WriteFile(filepath.Join(dir, "applbuild-dr-pull.timer"), mustFile(t, files, drClientDir+"/applbuild-dr-pull.timer").Data, 0o644)
	verifyQuiet(t, filepath.Join(dir, "applbuild-dr-pull.service"), filepath.Join(dir, "applbuild-dr-pull.timer"))
	if err := run.Run(context.Background(), "systemd-analyze", "calendar", pl.Rsync.Schedule); err != nil {
		t.Errorf("OnCalendar=%s: %v", pl.Rsync.Schedule, err)
	}

	lintBash(t, "applbuild-dr-pull", mustFile(t, files, drClientDir+"/applbuild-dr-pull").Data)
}

// TestRsyncSysusers creates the account for real with systemd-sysusers in
// an empty root.
func TestRsyncSysusers(t *testing.T) {
	testenv.Tools(t, "systemd-sysusers")
	files := renderNode(t, planFor(t, "web-cluster"), "n1")
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	conf := filepath.Join(root, "applbuild-rsync.conf")
	os.WriteFile(conf, mustFile(t, files, rsyncSysusers).Data, 0o644)
	cmd := exec.Command("systemd-sysusers", "--root="+root, conf)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, errb.String())
	}
	passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if !regexp.MustCompile(`(?m)^rsync:x:\d+:\d+:applbuild DR rsync pull:/usr/global/home/rsync:/bin/sh$`).Match(passwd) {
		t.Errorf("passwd:\n%s", passwd)
	}
	shadow, _ := os.ReadFile(filepath.Join(root, "etc/shadow"))
	if !regexp.MustCompile(`(?m)^rsync:!`).Match(shadow) {
		t.Errorf("rsync account not locked:\n%s", shadow)
	}
	if s := errb.String(); strings.Contains(s, "rror") || strings.Contains(s, "gnor") {
		t.Errorf("systemd-sysusers complains: %s", s)
	}
}

// rsyncEnv is a generated rsyncd.conf adapted only in paths, hosts allow
// and where it listens, and the DR pull pointed at it.
type rsyncEnv struct {
	dir, src, dest, state, conf, script string
	port                                int
}

func newRsyncEnv(t *testing.T, files map[string]File) *rsyncEnv {
	t.Helper()
	// Not t.TempDir: the daemon-over-ssh test reads it as nobody.
	dir, err := os.MkdirTemp("", "applbuild-rsync-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &rsyncEnv{dir: dir, src: filepath.Join(dir, "src"), dest: filepath.Join(dir, "dr"), state: filepath.Join(dir, "state"),
		conf: filepath.Join(dir, "rsyncd.conf"), script: filepath.Join(dir, "applbuild-dr-pull"), port: loopbackPort(t)}
	os.MkdirAll(filepath.Join(e.src, "site"), 0o755)
	os.WriteFile(filepath.Join(e.src, "index.html"), []byte("<h1>hello</h1>\n"), 0o644)
	os.WriteFile(filepath.Join(e.src, "site", "old.html"), []byte("old\n"), 0o644)

	conf := string(mustFile(t, files, "/usr/global/etc/rsyncd.conf").Data)
	for _, r := range []struct{ old, new string }{
		{"path = /var/www", "path = " + e.src},
		{"hosts allow = dr.example.org", "hosts allow = 127.0.0.1"},
		{"log file = /var/log/rsyncd", "log file = " + filepath.Join(dir, "rsyncd.log")},
		{"pid file = /run/rsyncd.pid", "pid file = " + filepath.Join(dir, "rsyncd.pid")},
		{"lock file = /run/lock/rsyncd", "lock file = " + filepath.Join(dir, "rsyncd.lock")},
	} {
		if !strings.Contains(conf, r.old) {
			t.Fatalf("rsyncd.conf has no %q", r.old)
		}
		conf = strings.Replace(conf, r.old, r.new, 1)
	}
	os.WriteFile(e.conf, []byte(conf), 0o644)
	os.WriteFile(e.script, mustFile(t, files, drClientDir+"/applbuild-dr-pull").Data, 0o755)
	return e
}

// startDaemon runs rsync --daemon --no-detach on 127.0.0.1 and returns
// its stop function (also registered as cleanup).
func (e *rsyncEnv) startDaemon(t *testing.T) (stop func()) {
	t.Helper()
	cmd := exec.Command("rsync", "--daemon", "--no-detach", "--config="+e.conf, "--address=127.0.0.1", fmt.Sprintf("--port=%d", e.port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	t.Cleanup(stop)
	for i := 0; ; i++ {
		if err := exec.Command("rsync", fmt.Sprintf("rsync://127.0.0.1:%d/", e.port)).Run(); err == nil {
			return stop
		}
		if i == 50 {
			t.Fatalf("rsync daemon did not come up: %s", errb.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (e *rsyncEnv) pull(t *testing.T, extra ...string) (stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", e.script)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	cmd.Env = append(os.Environ(), "APPLBUILD_DR_HOST=127.0.0.1", fmt.Sprintf("APPLBUILD_DR_PORT=%d", e.port),
		"APPLBUILD_DR_STATE="+e.state, "APPLBUILD_DR_PREFIX="+e.dest, "APPLBUILD_DR_TRIES=2", "APPLBUILD_DR_DELAY=0")
	cmd.Env = append(cmd.Env, extra...)
	err = cmd.Run()
	return errb.String(), err
}

func (e *rsyncEnv) status(t *testing.T) string {
	b, err := os.ReadFile(filepath.Join(e.state, "status"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRsyncDRPull runs the generated rsyncd.conf under a real rsync daemon
// and the generated DR pull against it: files arrive, --delete deletes, a
// stopped daemon fails the pull with a status line saying so.
func TestRsyncDRPull(t *testing.T) {
	testenv.Tools(t, "rsync", "bash")
	testenv.Root(t) // use chroot = yes
	e := newRsyncEnv(t, renderNode(t, planFor(t, "web-cluster"), "n1"))
	stop := e.startDaemon(t)
	www := filepath.Join(e.dest, "var/www")

	if stderr, err := e.pull(t); err != nil {
		t.Fatalf("pull: %v\n%s", err, stderr)
	}
	if b, err := os.ReadFile(filepath.Join(www, "index.html")); err != nil || string(b) != "<h1>hello</h1>\n" {
		t.Fatalf("index.html did not arrive: %q %v", b, err)
	}
	if st := e.status(t); !regexp.MustCompile(`^www ok last_success=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ last_failure=never\n$`).MatchString(st) {
		t.Errorf("status after success: %q", st)
	}

	os.Remove(filepath.Join(e.src, "site", "old.html"))
	if stderr, err := e.pull(t); err != nil {
		t.Fatalf("second pull: %v\n%s", err, stderr)
	}
	if _, err := os.Stat(filepath.Join(www, "site", "old.html")); err == nil {
		t.Errorf("--delete did not delete site/old.html")
	}

	stop()
	stderr, err := e.pull(t)
	if err == nil {
		t.Fatalf("pull from a stopped daemon succeeded:\n%s", stderr)
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("exit: %v", err)
	}
	if !strings.Contains(stderr, "www: attempt 1/2 failed (rsync exit 10), retrying") || !strings.Contains(stderr, "www: FAILED after 2 attempt(s), rsync exit 10") {
		t.Errorf("stderr:\n%s", stderr)
	}
	if st := e.status(t); !regexp.MustCompile(`^www failed\(rsync-exit-10\) last_success=\d{4}-\S+Z last_failure=\d{4}-\S+Z\n$`).MatchString(st) {
		t.Errorf("status after failure: %q", st)
	}
	if _, err := os.Stat(filepath.Join(www, "index.html")); err != nil {
		t.Errorf("a failed pull lost the last good copy: %v", err)
	}
}

// TestRsyncDaemonOverSSH runs the authorized_keys forced command the way
// sshd would (the account's shell -c COMMAND, as an unprivileged user, with
// SSH_CONNECTION set) behind the DR pull's APPLBUILD_DR_RSH: the account's
// daemon reads the same rsyncd.conf without root.
func TestRsyncDaemonOverSSH(t *testing.T) {
	testenv.Tools(t, "rsync", "bash", "setpriv")
	testenv.Root(t)
	pl := planFor(t, "web-cluster", "rsync.dr_key="+testDRKey)
	files := renderNode(t, pl, "n1")
	e := newRsyncEnv(t, files)
	ak := string(mustFile(t, files, "/usr/global/home/rsync/.ssh/authorized_keys").Data)
	m := regexp.MustCompile(`^restrict,command="([^"]+)" `).FindStringSubmatch(ak)
	if m == nil {
		t.Fatalf("authorized_keys: %s", ak)
	}
	// /run/lock is world-writable (1777); so is its stand-in.
	lockDir := filepath.Join(e.dir, "lock")
	os.Mkdir(lockDir, 0o755)
	os.Chmod(lockDir, 0o1777)
	forced := strings.NewReplacer(pl.Rsync.Config, e.conf, rsyncSSHLock, filepath.Join(lockDir, "rsyncd-ssh")).Replace(m[1])
	fakeSSH := filepath.Join(e.dir, "fake-ssh")
	os.WriteFile(fakeSSH, []byte(fmt.Sprintf(`#!/bin/sh
# Called as: fake-ssh [-l user] host rsync --server --daemon .; sshd would run the forced command instead.
export SSH_CONNECTION="127.0.0.1 40000 127.0.0.1 22"
exec setpriv --reuid=nobody --regid=nogroup --clear-groups /bin/sh -c %q
`, forced)), 0o755)
	stderr, err := e.pull(t, "APPLBUILD_DR_RSH="+fakeSSH, "APPLBUILD_DR_PORT=")
	if err != nil {
		t.Fatalf("pull over the forced command: %v\n%s", err, stderr)
	}
	if _, err := os.Stat(filepath.Join(e.dest, "var/www/site/old.html")); err != nil {
		t.Errorf("nothing pulled over ssh: %v\n%s", err, stderr)
	}
	// A module the DR host is not allowed to read stays closed over ssh too.
	os.WriteFile(fakeSSH, []byte(strings.Replace(mustRead(t, fakeSSH), "127.0.0.1 40000", "10.9.9.9 40000", 1)), 0o755)
	if stderr, err := e.pull(t, "APPLBUILD_DR_RSH="+fakeSSH, "APPLBUILD_DR_PORT=", "APPLBUILD_DR_TRIES=1"); err == nil || !strings.Contains(stderr, "rsync exit 5") {
		t.Errorf("a client outside hosts allow: %v\n%s", err, stderr)
	}
}

func mustRead(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
