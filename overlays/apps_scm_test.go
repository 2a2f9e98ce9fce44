package overlays

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
)

const scmHook = "/usr/lib/applbuild/firstboot.d/60-scm"

var scmUnits = []string{
	"/etc/systemd/system/svnserve.service",
	"/etc/systemd/system/cvspserver.socket",
	"/etc/systemd/system/cvspserver@.service",
}

// TestSCMUnitsVerify runs systemd-analyze verify on the units, failing on
// any output: it exits 0 on unknown keys.
func TestSCMUnitsVerify(t *testing.T) {
	testenv.Tools(t, "systemd-analyze", "svnserve", "cvs")
	files := appByPath(appGen(t, scm, planFor(t, "scm")))
	for _, tc := range []struct {
		name   string
		mangle func(string) string
	}{
		{"generated", func(s string) string { return s }},
		{"broken", func(s string) string { return appReplace(t, s, "Restart=on-failure", "Restrat=on-failure") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var paths []string
			for _, u := range scmUnits {
				data := string(mustFile(t, files, u).Data)
				if strings.HasSuffix(u, "/svnserve.service") {
					data = tc.mangle(data)
				}
				p := filepath.Join(dir, filepath.Base(u))
				if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
				paths = append(paths, p)
			}
			said := analyzeVerify(t, paths...)
			if tc.name == "generated" && said != "" {
				t.Errorf("systemd-analyze verify:\n%s", said)
			}
			if tc.name == "broken" && said == "" {
				t.Error("systemd-analyze verify is silent on a misspelt key: the check checks nothing")
			}
		})
	}
}

// TestSCMHookLint checks the first-boot hook with bash -n and shellcheck.
func TestSCMHookLint(t *testing.T) {
	testenv.Tools(t, "bash", "shellcheck")
	f := mustFile(t, appByPath(appGen(t, scm, planFor(t, "scm"))), scmHook)
	if f.Mode.Perm() != 0o755 {
		t.Errorf("%s mode %v, want 0755", scmHook, f.Mode)
	}
	p := writeFile(t, f)
	ctx := context.Background()
	if _, err := run.Output(ctx, "bash", "-n", p); err != nil {
		t.Fatal(err)
	}
	if out, err := run.Output(ctx, "shellcheck", "-s", "bash", p); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TestSCMServes runs the hook in a temp root, then the real servers on
// loopback with the generated settings: svnserve (import, list, anonymous
// commit refused), Apache's dav_svn (list, commit refused) and the CVS
// pserver behind a socket-activation listener (import, checkout).
func TestSCMServes(t *testing.T) {
	testenv.Tools(t, "bash", "systemd-sysusers", "svnadmin", "svnserve", "svn", "cvs", "apache2", "systemd-socket-activate")
	testenv.Root(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	svnPort, webPort, cvsPort := appFreePort(t), appFreePort(t), appFreePort(t)
	pl := appWithService(appWithService(planFor(t, "scm"), "svnserve", svnPort), "apache2", webPort)
	files := appRender(t, pl)
	root := appOpenDir(t)
	if err := WriteTree(root, files); err != nil {
		t.Fatal(err)
	}
	svnRoot, cvsRoot := root+pl.SCM.SVNRoot, root+pl.SCM.CVSRoot
	hookEnv := []string{
		"APPLBUILD_SCM_PREFIX=" + root,
		// The test host has no svn or cvs account; the pserver maps logins
		// to nobody below, who must own the CVS repository.
		"APPLBUILD_SCM_SVN_OWNER=root:root",
		"APPLBUILD_SCM_CVS_OWNER=nobody:nogroup",
	}
	for i := range 2 { // the second run must leave everything alone
		if _, err := (&run.Cmd{Args: []string{"bash", root + scmHook}, Env: hookEnv}).Output(ctx); err != nil {
			t.Fatalf("hook run %d: %v", i+1, err)
		}
		if i == 0 {
			for _, marker := range []string{svnRoot + "/main/keep", cvsRoot + "/keep"} {
				if err := os.WriteFile(marker, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, marker := range []string{svnRoot + "/main/keep", cvsRoot + "/keep"} {
		if _, err := os.Stat(marker); err != nil {
			t.Errorf("a second run of the hook lost %s: %v", marker, err)
		}
	}
	passwd, err := os.ReadFile(filepath.Join(root, "etc", "passwd"))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"\nsvn:", "\ncvs:"} {
		if !strings.Contains("\n"+string(passwd), u) {
			t.Errorf("systemd-sysusers made no %s account:\n%s", u[1:], passwd)
		}
	}

	t.Run("svnserve", func(t *testing.T) {
		args := appExecStart(t, mustFile(t, appByPath(files), "/etc/systemd/system/svnserve.service").Data)
		line := strings.Join(args, " ")
		line = appReplace(t, line, " -r "+pl.SCM.SVNRoot+" ", " -r "+svnRoot+" ")
		line = appReplace(t, line, " --listen-host 0.0.0.0 ", " --listen-host 127.0.0.1 ")
		appDaemon(t, nil, strings.Fields(line)...)
		appWaitPort(t, svnPort)

		f, err := os.OpenFile(svnRoot+"/main/conf/passwd", os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(f, "tester = secret")
		f.Close()
		url := fmt.Sprintf("svn://127.0.0.1:%d/main", svnPort)
		svnImport(ctx, t, url+"/trunk", "--username", "tester", "--password", "secret")
		svnList(ctx, t, url+"/trunk")
		if _, err := svn(ctx, t, "mkdir", "-m", "anon", url+"/anon"); err == nil {
			t.Error("svnserve let an anonymous user commit")
		}
	})

	t.Run("dav_svn", func(t *testing.T) {
		conf := appOverlayOnto(t, files, "/etc/apache2", apacheDrop...)
		appEdit(t, filepath.Join(conf, "ports.conf"), func(s string) string {
			return appReplace(t, s, fmt.Sprintf("\nListen %d\n", webPort), fmt.Sprintf("\nListen 127.0.0.1:%d\n", webPort))
		})
		appEdit(t, filepath.Join(conf, "conf-available", "applbuild-svn.conf"), func(s string) string {
			return appReplace(t, s, "SVNParentPath "+pl.SCM.SVNRoot+"\n", "SVNParentPath "+svnRoot+"\n")
		})
		appStartApache(t, conf)
		appWaitPort(t, webPort)
		url := fmt.Sprintf("http://127.0.0.1:%d/svn/main", webPort)
		svnList(ctx, t, url+"/trunk")
		if _, err := svn(ctx, t, "mkdir", "-m", "web", url+"/web"); err == nil {
			t.Error("dav_svn let a commit through; it is meant to be read-only")
		}
	})

	t.Run("cvs pserver", func(t *testing.T) {
		args := appExecStart(t, mustFile(t, appByPath(files), "/etc/systemd/system/cvspserver@.service").Data)
		line := appReplace(t, strings.Join(args, " "), "--allow-root="+pl.SCM.CVSRoot+" ", "--allow-root="+cvsRoot+" ")
		appDaemon(t, nil, append([]string{"systemd-socket-activate", "--inetd", "--accept", "-l", fmt.Sprintf("127.0.0.1:%d", cvsPort)}, strings.Fields(line)...)...)
		appWaitPort(t, cvsPort)

		// Any password for anon, who works as nobody (SystemAuth=no: only
		// CVSROOT/passwd logins).
		if err := os.WriteFile(cvsRoot+"/CVSROOT/passwd", []byte("anon::nobody\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{cvsRoot + "/CVSROOT/config", cvsRoot + "/CVSROOT/config,v"} {
			if b, err := os.ReadFile(p); err != nil || !strings.Contains(string(b), "\nSystemAuth=no\n") {
				t.Errorf("%s: no SystemAuth=no (%v)", p, err)
			}
		}
		cvsroot := fmt.Sprintf(":pserver:anon@127.0.0.1:%d%s", cvsPort, cvsRoot)
		work := t.TempDir()
		passfile := filepath.Join(work, "cvspass")
		// What `cvs login` writes for an empty password; login itself
		// wants a terminal.
		if err := os.WriteFile(passfile, []byte("/1 "+cvsroot+" A\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		env := []string{"CVS_PASSFILE=" + passfile, "HOME=" + work}
		src := filepath.Join(work, "src")
		if err := os.MkdirAll(src, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, "README"), []byte("hello\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := (&run.Cmd{Args: []string{"cvs", "-d", cvsroot, "import", "-m", "init", "proj", "vendor", "start"}, Env: env, Dir: src}).Output(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := (&run.Cmd{Args: []string{"cvs", "-d", cvsroot, "checkout", "proj"}, Env: env, Dir: work}).Output(ctx); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(work, "proj", "README")); err != nil || string(b) != "hello\n" {
			t.Errorf("checked out README = %q, %v", b, err)
		}
	})
}

// svn runs the svn client without touching the user's ~/.subversion.
func svn(ctx context.Context, t testing.TB, args ...string) ([]byte, error) {
	t.Helper()
	base := []string{"svn", "--non-interactive", "--no-auth-cache", "--config-dir", t.TempDir()}
	return run.Output(ctx, append(base, args...)...)
}

func svnImport(ctx context.Context, t testing.TB, url string, auth ...string) {
	t.Helper()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "README"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := svn(ctx, t, append([]string{"import", "-m", "init", src, url}, auth...)...); err != nil {
		t.Fatal(err)
	}
}

func svnList(ctx context.Context, t testing.TB, url string) {
	t.Helper()
	out, err := svn(ctx, t, "ls", url)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(out)) != "README" {
		t.Errorf("svn ls %s = %q, want README", url, out)
	}
}
