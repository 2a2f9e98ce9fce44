package overlays

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
)

// sysScripts are the shell scripts the system generators write.
func sysScripts(files map[string]File) []File {
	var out []File
	for _, f := range files {
		if (f.Generator == "firstboot" || f.Generator == "accounts") && f.Mode.Perm()&0o111 != 0 && !f.IsDir() && !f.IsLink() {
			out = append(out, f)
		}
	}
	return out
}

// TestSystemScripts runs bash -n and shellcheck over the runner and every
// hook the system generators write, including a spec hook of each kind.
func TestSystemScripts(t *testing.T) {
	testenv.Tools(t, "bash", "shellcheck")
	pl := planFor(t, "web-cluster")
	pl.Firstboot = []builder.Hook{
		{Name: "hello", On: "first", Run: "echo \"hello from $APPLBUILD_NODE\""},
		{Name: "everywhere", On: "all", Run: "touch /var/tmp/everywhere"},
	}
	pl.Admin.PasswordHash = "$y$j9T$abc$def"
	scripts := sysScripts(renderNode(t, pl, "n1"))
	if len(scripts) != 4 {
		t.Fatalf("want runner, 10-accounts and two spec hooks, got %d scripts", len(scripts))
	}
	for _, f := range scripts {
		t.Run(filepath.Base(f.Path), func(t *testing.T) {
			p := writeFile(t, f)
			if _, stderr, failed := sysOutput(t, &run.Cmd{Args: []string{"bash", "-n", p}}); failed {
				t.Errorf("bash -n: %s", stderr)
			}
			if out, failed := sysCombined(t, "shellcheck", "-s", "bash", p); failed {
				t.Errorf("shellcheck:\n%s", out)
			}
		})
	}
}

func TestSystemSysusers(t *testing.T) {
	testenv.Tools(t, "systemd-sysusers")
	pl := planFor(t, "web-cluster")
	files := renderNode(t, pl, "n1")
	// An image's passwd before sysusers: Debian's base-passwd.
	root := t.TempDir()
	for _, dst := range []string{"etc", "usr/lib/sysusers.d"} {
		if err := os.MkdirAll(filepath.Join(root, dst), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var shadow, gshadow strings.Builder
	for src, dst := range map[string]string{"passwd.master": "etc/passwd", "group.master": "etc/group"} {
		b, err := os.ReadFile(filepath.Join("/usr/share/base-passwd", src))
		if err != nil {
			testenv.Tools(t, "update-passwd") // names base-passwd when strict
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			name := strings.SplitN(l, ":", 2)[0]
			if dst == "etc/passwd" {
				fmt.Fprintf(&shadow, "%s:*:19000:0:99999:7:::\n", name)
			} else {
				fmt.Fprintf(&gshadow, "%s:*::\n", name)
			}
		}
	}
	for p, s := range map[string]string{"etc/shadow": shadow.String(), "etc/gshadow": gshadow.String()} {
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(root, "usr/lib/sysusers.d/applbuild.conf")
	if err := os.WriteFile(conf, mustFile(t, files, "/usr/lib/sysusers.d/applbuild.conf").Data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, failed := sysOutput(t, &run.Cmd{Args: []string{"systemd-sysusers", "--root=" + root, conf}}); failed {
		t.Fatalf("systemd-sysusers: %s", stderr)
	}
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tt := range []struct{ file, want string }{
		{"etc/passwd", "\nadmin:x:1000:1000:applbuild web-cluster administrator:/home/admin:/bin/bash\n"},
		{"etc/group", "\nadmin:x:1000:\n"},
		{"etc/group", "\nsudo:*:27:admin\n"},
		{"etc/shadow", "\nadmin:!*:"}, // locked until 10-accounts sets the hash
	} {
		if !strings.Contains(read(tt.file), tt.want) {
			t.Errorf("%s lacks %q:\n%s", tt.file, tt.want, read(tt.file))
		}
	}
}

func TestSystemAccounts(t *testing.T) {
	withKeys := planFor(t, "web-cluster")
	withKeys.Admin.Keys = []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBjCOGWjCLwFJUfWMGmHMNaZ5M9rRc0Wj6Gr+qHO6uhF admin@laptop"}
	withKeys.Admin.PasswordHash = "$y$j9T$abc$def"
	files := renderNode(t, withKeys, "n1")
	keys := mustFile(t, files, "/home/admin/.ssh/authorized_keys")
	if keys.Owner != "admin:admin" || keys.Mode != 0o600 || string(keys.Data) != withKeys.Admin.Keys[0]+"\n" {
		t.Errorf("authorized_keys: %s %v %q", keys.Owner, keys.Mode, keys.Data)
	}
	if d := mustFile(t, files, "/home/admin/.ssh"); d.Owner != "admin:admin" || d.Mode.Perm() != 0o700 || !d.IsDir() {
		t.Errorf("/home/admin/.ssh: %s %v", d.Owner, d.Mode)
	}
	if h := mustFile(t, files, "/etc/applbuild/admin.passwd-hash"); h.Mode != 0o600 || string(h.Data) != "$y$j9T$abc$def\n" {
		t.Errorf("password hash file: %v %q", h.Mode, h.Data)
	}
	if _, ok := files["/etc/sudoers.d/applbuild"]; ok {
		t.Error("sudoers NOPASSWD although the admin has a password")
	}
	none := renderNode(t, planFor(t, "web-cluster"), "n1")
	for _, p := range []string{"/home/admin/.ssh/authorized_keys", "/etc/applbuild/admin.passwd-hash"} {
		if _, ok := none[p]; ok {
			t.Errorf("%s written without keys or password", p)
		}
	}
	mustFile(t, none, "/etc/sudoers.d/applbuild")
}

func TestSystemSudoers(t *testing.T) {
	testenv.Tools(t, "visudo")
	f := mustFile(t, renderNode(t, planFor(t, "web-cluster"), "n1"), "/etc/sudoers.d/applbuild")
	if f.Mode != 0o440 {
		t.Errorf("mode %v", f.Mode)
	}
	if _, stderr, failed := sysOutput(t, &run.Cmd{Args: []string{"visudo", "-c", "-f", writeFile(t, f)}}); failed {
		t.Fatalf("visudo: %s", stderr)
	}
	f.Data = []byte(strings.Replace(string(f.Data), "NOPASSWD: ALL", "NOPASSWD ALL", 1))
	if _, _, failed := sysOutput(t, &run.Cmd{Args: []string{"visudo", "-c", "-f", writeFile(t, f)}}); !failed {
		t.Error("visudo accepted a broken copy")
	}
}

// sysVerifyRoot is a root for systemd-analyze verify: the host's own units
// (sysinit.target and friends) under the node's generated tree.
func sysVerifyRoot(t *testing.T, files map[string]File) string {
	t.Helper()
	root := writeNodeTree(t, files)
	if err := os.MkdirAll(filepath.Join(root, "usr/lib/systemd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := run.Run(sysCtx(t), "cp", "-a", "/usr/lib/systemd/system", filepath.Join(root, "usr/lib/systemd/")); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestSystemFirstbootUnit(t *testing.T) {
	testenv.Tools(t, "systemd-analyze")
	files := renderNode(t, planFor(t, "web-cluster"), "n1")
	root := sysVerifyRoot(t, files)
	verifyQuiet(t, "--root="+root, "/etc/systemd/system/"+firstbootUnit)
	link := mustFile(t, files, "/etc/systemd/system/multi-user.target.wants/"+firstbootUnit)
	if !link.IsLink() || link.Link != "/etc/systemd/system/"+firstbootUnit {
		t.Errorf("wants link: %+v", link)
	}
	t.Run("broken", func(t *testing.T) {
		p := filepath.Join(root, "etc/systemd/system", firstbootUnit)
		b, _ := os.ReadFile(p)
		if err := os.WriteFile(p, []byte(strings.Replace(string(b), "RemainAfterExit=yes", "RemainAfterExit=yes\nTimeoutStartSecs=1", 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		out, _ := sysCombined(t, "systemd-analyze", "verify", "--man=no", "--root="+root, "/etc/systemd/system/"+firstbootUnit)
		if !strings.Contains(out, "Unknown key") {
			t.Errorf("verify did not flag a bad key: %q", out)
		}
	})
}

// Minimal stand-ins for cockpit-ws's units, which the host does not have:
// the drop-in is what is under test.
const (
	cockpitSocket  = "[Unit]\nDescription=Cockpit Web Service Socket\n\n[Socket]\nListenStream=9090\n\n[Install]\nWantedBy=sockets.target\n"
	cockpitService = "[Unit]\nDescription=Cockpit Web Service\nRequires=cockpit.socket\n\n[Service]\nExecStart=/bin/true\n"
)

func TestSystemCockpit(t *testing.T) {
	testenv.Tools(t, "systemd-analyze")
	files := renderNode(t, planFor(t, "web-cluster"), "n2")
	conf := string(mustFile(t, files, "/etc/cockpit/cockpit.conf").Data)
	for _, w := range []string{"[WebService]\n", "LoginTitle = applbuild web-cluster\n", " https://n1.example.org:9090 ", " https://192.168.224.163:9090 "} {
		if !strings.Contains(conf, w) {
			t.Errorf("cockpit.conf lacks %q:\n%s", w, conf)
		}
	}
	if _, ok := files["/etc/systemd/system/cockpit.socket.d/listen.conf"]; ok {
		t.Error("socket drop-in for the default port")
	}

	files = renderNode(t, planFor(t, "web-cluster", "cockpit.port=9443"), "n2")
	if !strings.Contains(string(mustFile(t, files, "/etc/cockpit/cockpit.conf").Data), " https://n2.example.org:9443 ") {
		t.Error("origins do not follow the port")
	}
	root := sysVerifyRoot(t, files)
	for name, s := range map[string]string{"cockpit.socket": cockpitSocket, "cockpit.service": cockpitService} {
		if err := os.WriteFile(filepath.Join(root, "usr/lib/systemd/system", name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	verifyQuiet(t, "--root="+root, "cockpit.socket")
	// systemd's debug log dumps the unit as loaded: one listener, 9443.
	out, _, _ := sysOutput(t, &run.Cmd{Args: []string{"sh", "-c", `exec "$@" 2>&1`, "sh",
		"systemd-analyze", "verify", "--man=no", "--root=" + root, "cockpit.socket"}, Env: []string{"SYSTEMD_LOG_LEVEL=debug"}})
	var listen []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "ListenStream:") {
			listen = append(listen, strings.TrimSpace(l))
		}
	}
	if strings.Join(listen, "|") != "ListenStream: [::]:9443" {
		t.Errorf("cockpit.socket listens on %q, want only 9443", listen)
	}
}

// monitCheck runs monit -t on a control file like Debian's monitrc (its
// own "set daemon 120" first) whose include is the generated file; -v
// prints the settings monit resolved.
func monitCheck(t *testing.T, conf []byte) (string, bool) {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "applbuild")
	if err := os.WriteFile(p, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	rc := filepath.Join(dir, "monitrc")
	ctl := fmt.Sprintf("set daemon 120\nset log %[1]s/monit.log\nset idfile %[1]s/id\nset statefile %[1]s/state\ninclude %[2]s\n", dir, p)
	// monit refuses a control file readable by others.
	if err := os.WriteFile(rc, []byte(ctl), 0o600); err != nil {
		t.Fatal(err)
	}
	return sysCombined(t, "monit", "-v", "-t", "-c", rc)
}

// monitBlocks are the checks in monit -v's listing whose first line starts
// with kind ("Process Name", "Program Name").
func monitBlocks(out, kind string) []string {
	var bs []string
	for _, b := range strings.Split(out, "\n\n") {
		if strings.HasPrefix(strings.TrimLeft(b, "\n"), kind) {
			bs = append(bs, b+"\n")
		}
	}
	return bs
}

func TestSystemMonit(t *testing.T) {
	testenv.Tools(t, "monit")
	sysEveryNode(t, func(t *testing.T, pl *builder.Plan, node string, files map[string]File) {
		f := mustFile(t, files, "/etc/monit/conf.d/applbuild")
		if out, failed := monitCheck(t, f.Data); failed {
			t.Fatalf("monit -t: %s\n%s", out, f.Data)
		}
		out, _ := monitCheck(t, f.Data)
		for _, w := range []string{
			fmt.Sprintf("Poll time          = %d seconds", pl.Monit.Interval),
			fmt.Sprintf("httpd portnumber   = %d\n", pl.Monit.Port),
			"httpd bind address = localhost\n",
		} {
			if !strings.Contains(out, w) {
				t.Errorf("monit -v -t lacks %q", w)
			}
		}
		// monit resolves what it does to a missing process: start it.
		// Its default, restart, stops the unit first, and a stop cancels
		// the start job systemd still holds queued at boot.
		procs := monitBlocks(out, "Process Name")
		if len(procs) == 0 {
			t.Errorf("monit -v -t lists no process:\n%s", out)
		}
		for _, b := range procs {
			if !strings.Contains(b, "Existence            = if does not exist then start\n") {
				t.Errorf("monit does not start a missing process:\n%s", b)
			}
		}
		conf := string(f.Data)
		for _, sv := range pl.Services {
			has := strings.Contains(conf, fmt.Sprintf("check process %s ", sv.Name)) || strings.Contains(conf, fmt.Sprintf("check program %s ", sv.Name))
			if has != (sv.Kind == "local") {
				t.Errorf("service %s (%s): monit check %v", sv.Name, sv.Kind, has)
			}
		}
		if vg := pl.Node(node).VG; vg != nil {
			for _, lv := range vg.LVs {
				if lv.Purpose == builder.LVBrick && !strings.Contains(conf, "with path "+lv.Mount+"\n") {
					t.Errorf("no filesystem check for brick %s", lv.Mount)
				}
			}
		}
	})
	t.Run("program and pidfile", func(t *testing.T) {
		pl := planFor(t, "scm")
		for i := range pl.Services {
			switch pl.Services[i].Name {
			case "cron":
				pl.Services[i].Process = ""
			case "ssh":
				pl.Services[i].Process, pl.Services[i].Pidfile = "", "/run/sshd.pid"
			}
		}
		conf := mustFile(t, renderNode(t, pl, "scm1"), "/etc/monit/conf.d/applbuild").Data
		for _, w := range []string{`check program cron with path "/usr/bin/systemctl is-active --quiet cron"`, "check process ssh with pidfile /run/sshd.pid"} {
			if !strings.Contains(string(conf), w) {
				t.Errorf("no %q", w)
			}
		}
		out, failed := monitCheck(t, conf)
		if failed {
			t.Fatalf("monit -t: %s\n%s", out, conf)
		}
		progs := monitBlocks(out, "Program Name")
		if len(progs) != 1 {
			t.Errorf("monit -v -t lists %d programs, want cron:\n%s", len(progs), out)
		}
		for _, b := range progs {
			if !regexp.MustCompile(`Status += if exit value != 0 for 2 cycles then start\n`).MatchString(b) {
				t.Errorf("monit does not start a unit that is not active:\n%s", b)
			}
		}
	})
	t.Run("broken", func(t *testing.T) {
		conf := mustFile(t, renderNode(t, planFor(t, "web-cluster"), "n1"), "/etc/monit/conf.d/applbuild").Data
		bad := strings.Replace(string(conf), "space usage > 90%", "space usage > 90 parsecs", 1)
		if out, failed := monitCheck(t, []byte(bad)); !failed || !strings.Contains(out, "syntax error") {
			t.Errorf("monit accepted a broken copy: %s", out)
		}
	})
}

// firstbootRoot is a root-like dir for the runner: node.env from the
// generator and the given hooks.
func firstbootRoot(t *testing.T, files map[string]File, hooks map[string]string) string {
	t.Helper()
	root := t.TempDir()
	env := filepath.Join(root, "etc/applbuild/node.env")
	dir := filepath.Join(root, firstbootDir)
	for _, d := range []string{filepath.Dir(env), dir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(env, mustFile(t, files, "/etc/applbuild/node.env").Data, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, body := range hooks {
		mode := os.FileMode(0o755)
		if strings.HasSuffix(name, ".off") {
			mode = 0o644
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestSystemFirstbootRunner runs the generated runner for real, with its
// paths moved below a temp dir (APPLBUILD_FIRSTBOOT_ROOT, tests only).
func TestSystemFirstbootRunner(t *testing.T) {
	testenv.Tools(t, "bash")
	files := renderNode(t, planFor(t, "web-cluster"), "n2")
	runner := writeFile(t, mustFile(t, files, firstbootRunner))
	// Each hook appends its name and what it saw to $R/trace.
	hook := func(rc int) string {
		return fmt.Sprintf("#!/bin/bash\necho \"${0##*/} $APPLBUILD_NODE $APPLBUILD_INDEX [$APPLBUILD_NODES] $APPLBUILD_DOMAIN\" >>\"$R/trace\"\nexit %d\n", rc)
	}
	for _, tt := range []struct {
		name   string
		hooks  map[string]string
		ok     bool
		trace  []string
		inLogs []string
		status string // the firstboot= line of the status file
	}{
		{
			name:   "all succeed",
			hooks:  map[string]string{"10-a": hook(0), "20-b": hook(0), "15-off.off": hook(9)},
			ok:     true,
			trace:  []string{"10-a n2 2 [n1 n2 n3] example.org", "20-b n2 2 [n1 n2 n3] example.org"},
			inLogs: []string{"10-a: start", "10-a: end, exit 0", "15-off.off: skipped", "all hooks done"},
			status: "firstboot=done",
		},
		{
			name:   "one fails",
			hooks:  map[string]string{"10-a": hook(0), "50-bad": hook(3), "90-never": hook(0)},
			ok:     false,
			trace:  []string{"10-a n2 2 [n1 n2 n3] example.org", "50-bad n2 2 [n1 n2 n3] example.org"},
			inLogs: []string{"50-bad: end, exit 3", "50-bad failed: stopping here"},
			status: "firstboot=failed: 50-bad exited 3",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := firstbootRoot(t, files, tt.hooks)
			env := []string{"APPLBUILD_FIRSTBOOT_ROOT=" + root, "R=" + root}
			out, stderr, failed := sysOutput(t, &run.Cmd{Args: []string{"bash", runner}, Env: env})
			if failed == tt.ok {
				t.Fatalf("runner failed=%v, want %v:\n%s%s", failed, !tt.ok, out, stderr)
			}
			trace, _ := os.ReadFile(filepath.Join(root, "trace"))
			if got := strings.TrimSpace(string(trace)); got != strings.Join(tt.trace, "\n") {
				t.Errorf("hooks ran:\n%s\nwant:\n%s", got, strings.Join(tt.trace, "\n"))
			}
			for _, w := range tt.inLogs {
				if !strings.Contains(out, w) {
					t.Errorf("log lacks %q:\n%s", w, out)
				}
			}
			if st, _ := os.ReadFile(filepath.Join(root, "var/lib/applbuild/status")); strings.TrimSpace(string(st)) != tt.status {
				t.Errorf("status file %q, want %q", st, tt.status)
			}
			marker := filepath.Join(root, "var/lib/applbuild/firstboot.done")
			if _, err := os.Stat(marker); (err == nil) != tt.ok {
				t.Fatalf("done marker exists=%v after failed=%v", err == nil, failed)
			}
			if !tt.ok {
				return
			}
			// Once done, a second start runs nothing.
			again, err := (&run.Cmd{Args: []string{"bash", runner}, Env: env}).Output(sysCtx(t))
			if err != nil || !strings.Contains(string(again), "already done") {
				t.Errorf("second run: %v %s", err, again)
			}
			if trace2, _ := os.ReadFile(filepath.Join(root, "trace")); string(trace2) != string(trace) {
				t.Error("hooks ran again after the done marker")
			}
		})
	}
}

// TestSystemSpecHooks runs a spec hook marked "on: first" on node 1 and 2.
func TestSystemSpecHooks(t *testing.T) {
	testenv.Tools(t, "bash")
	pl := planFor(t, "web-cluster")
	pl.Firstboot = []builder.Hook{{Name: "seed", On: "first", Run: "echo seeded on $APPLBUILD_NODE\nfalse\necho not reached"}}
	f := mustFile(t, renderNode(t, pl, "n1"), firstbootDir+"/90-seed")
	if f.Mode != 0o755 {
		t.Errorf("mode %v", f.Mode)
	}
	p := writeFile(t, f)
	out, _, failed := sysOutput(t, &run.Cmd{Args: []string{"bash", p}, Env: []string{"APPLBUILD_INDEX=1", "APPLBUILD_NODE=n1"}})
	if !failed || !strings.Contains(out, "seeded on n1") || strings.Contains(out, "not reached") {
		t.Errorf("node 1: failed=%v (want the hook's own failure, set -e): %s", failed, out)
	}
	out, _, failed = sysOutput(t, &run.Cmd{Args: []string{"bash", p}, Env: []string{"APPLBUILD_INDEX=2", "APPLBUILD_NODE=n2"}})
	if failed || strings.Contains(out, "seeded") {
		t.Errorf("node 2 ran a first-node hook: %s", out)
	}
}
