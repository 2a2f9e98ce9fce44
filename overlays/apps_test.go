package overlays

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
)

// TestAppsFiles pins which application files each personality gets and
// the values that matter in them; the real programs check them below.
func TestAppsFiles(t *testing.T) {
	for _, tc := range []struct {
		personality string
		want        map[string][]string // path -> substrings
		absent      []string
	}{
		{"web-cluster", map[string][]string{
			"/etc/apache2/ports.conf":                       {"\nListen 8080\n", "GlusterFS volume \"apache2\""},
			"/etc/apache2/sites-available/000-default.conf": {"<VirtualHost *:8080>", "DocumentRoot /var/www/html", "${APACHE_LOG_DIR}/error.log", "${APACHE_LOG_DIR}/access.log combined"},
			"/var/www/html/index.html":                      {"<h1>applbuild web-cluster</h1>", `GlusterFS volume "www"`},
			"/var/www/html/healthz":                         {"ok\n"},
			"/etc/mysql/mariadb.conf.d/60-applbuild.cnf":    {"bind-address            = 0.0.0.0\n", "port                    = 3306\n", "max_connections         = 100\n", "innodb_buffer_pool_size = 64M\n", "datadir                 = /var/lib/mysql\n", `GlusterFS volume "mysql"`, `GlusterFS volume "dbdata"`, "Only one node at a time runs mariadbd"},
			"/etc/pound/pound.cfg":                          {"\tAddress 192.168.224.", "\tPort    80\n", "Address 192.168.224.161\n\t\t\tPort    8080\n", "Address 192.168.224.163\n\t\t\tPort    8080\n", `User  "_pound"`},
		}, []string{"/usr/lib/applbuild/firstboot.d/60-scm", "/etc/apache2/conf-available/applbuild-svn.conf", "/etc/apache2/mods-enabled/dav_svn.load"}},
		{"scm", map[string][]string{
			"/etc/apache2/ports.conf":                        {"\nListen 80\n"},
			"/etc/apache2/conf-available/applbuild-svn.conf": {"SVNParentPath /srv/svn\n"},
			"/etc/systemd/system/svnserve.service":           {"-r /srv/svn --listen-host 0.0.0.0 --listen-port 3690\n", "User=svn\n"},
			"/etc/systemd/system/cvspserver.socket":          {"ListenStream=2401\n", "Accept=yes\n"},
			"/etc/systemd/system/cvspserver@.service":        {"--allow-root=/srv/cvs pserver\n", "StandardInput=socket\n"},
			"/usr/lib/sysusers.d/applbuild-scm.conf":         {"u svn - ", "u cvs - "},
			"/usr/lib/applbuild/firstboot.d/60-scm":          {"repos=('main')\n", "svn_root=$prefix'/srv/svn'\n", "cvs_root=$prefix'/srv/cvs'\n"},
		}, []string{"/etc/pound/pound.cfg", "/etc/mysql/mariadb.conf.d/60-applbuild.cnf"}},
		{"mysql-ha", map[string][]string{
			"/etc/mysql/mariadb.conf.d/60-applbuild.cnf": {"max_connections         = 150\n", "innodb_buffer_pool_size = 128M\n", `DRBD resource "mysql"`},
		}, []string{"/etc/apache2/ports.conf", "/etc/pound/pound.cfg"}},
		{"pound-lb", map[string][]string{
			"/etc/pound/pound.cfg": {"Address 192.168.224.21\n\t\t\tPort    80\n", "Address 192.168.224.22\n\t\t\tPort    80\n"},
		}, []string{"/etc/apache2/ports.conf", "/etc/mysql/mariadb.conf.d/60-applbuild.cnf"}},
	} {
		t.Run(tc.personality, func(t *testing.T) {
			pl := planFor(t, tc.personality)
			for _, n := range pl.Nodes {
				files := renderNode(t, pl, n.Name)
				for p, subs := range tc.want {
					f := mustFile(t, files, p)
					for _, s := range subs {
						if !strings.Contains(string(f.Data), s) {
							t.Errorf("%s %s: no %q in:\n%s", n.Name, p, s, f.Data)
						}
					}
				}
				for _, p := range tc.absent {
					if _, ok := files[p]; ok {
						t.Errorf("%s: %s rendered, want none", n.Name, p)
					}
				}
				for p, f := range files {
					if f.Generator == "apache" || f.Generator == "scm" || f.Generator == "pound" {
						if f.IsLink() && strings.HasPrefix(f.Link, "/") {
							t.Errorf("%s -> %s: links stay relative, so a copied /etc/apache2 volume still resolves", p, f.Link)
						}
					}
				}
			}
		})
	}
}

// TestAppsSameOnEveryNode: /etc/apache2, /var/www, /etc/mysql and
// /etc/pound are GlusterFS volumes in web-cluster, seeded by whichever
// node comes first, so their files must not depend on the node.
func TestAppsSameOnEveryNode(t *testing.T) {
	pl := planFor(t, "web-cluster")
	first := renderNode(t, pl, pl.Nodes[0].Name)
	for _, n := range pl.Nodes[1:] {
		other := renderNode(t, pl, n.Name)
		for p, f := range first {
			switch f.Generator {
			case "apache", "mariadb", "pound":
				if g := other[p]; string(g.Data) != string(f.Data) || g.Link != f.Link {
					t.Errorf("%s differs between %s and %s", p, pl.Nodes[0].Name, n.Name)
				}
			}
		}
	}
}

// apacheDrop are the host's module links that trixie's web-cluster image
// does not have: the test host has libapache2-mod-svn installed, and the
// scm test must see that its own links enable dav_svn.
var apacheDrop = []string{"mods-enabled/dav*", "mods-enabled/authz_svn.load"}

// TestApacheConfigtest runs apache2ctl -t on the host's /etc/apache2 with
// the generated files laid over it, and checks the virtual host's port.
func TestApacheConfigtest(t *testing.T) {
	testenv.Tools(t, "apache2ctl")
	ctx := context.Background()
	for _, tc := range []struct {
		personality string
		vhost       string
	}{
		{"web-cluster", "*:8080 "},
		{"scm", "*:80 "},
	} {
		t.Run(tc.personality, func(t *testing.T) {
			pl := planFor(t, tc.personality)
			files := appRender(t, pl)
			conf := appOverlayOnto(t, files, "/etc/apache2", apacheDrop...)
			env := []string{"APACHE_CONFDIR=" + conf}
			if _, err := (&run.Cmd{Args: []string{"apache2ctl", "-t"}, Env: env}).Output(ctx); err != nil {
				t.Fatal(err)
			}
			out, err := (&run.Cmd{Args: []string{"apache2ctl", "-t", "-D", "DUMP_VHOSTS"}, Env: env}).Output(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(out), tc.vhost) {
				t.Errorf("DUMP_VHOSTS has no %q:\n%s", tc.vhost, out)
			}

			broken := appOverlayOnto(t, files, "/etc/apache2", apacheDrop...)
			site := filepath.Join(broken, "sites-available", "000-default.conf")
			b, err := os.ReadFile(site)
			if err != nil {
				t.Fatal(err)
			}
			b = []byte(appReplace(t, string(b), "DocumentRoot", "DocumentRooot"))
			if err := os.WriteFile(site, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := (&run.Cmd{Args: []string{"apache2ctl", "-t"}, Env: []string{"APACHE_CONFDIR=" + broken}}).Output(ctx); err == nil {
				t.Error("apache2ctl -t accepts a misspelt directive: the check checks nothing")
			}
		})
	}
}

// appRender renders a plan's first node, as the image gets it.
func appRender(t testing.TB, pl *builder.Plan) []File {
	t.Helper()
	files, err := Render(pl, &pl.Nodes[0], testRing(t))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestApacheServes starts apache2 with the generated config on a loopback
// port and fetches the page and the health check.
func TestApacheServes(t *testing.T) {
	testenv.Tools(t, "apache2")
	testenv.Root(t) // apache2 switches to www-data
	port := appFreePort(t)
	pl := appWithService(planFor(t, "web-cluster"), "apache2", port)
	files := appRender(t, pl)
	conf := appOverlayOnto(t, files, "/etc/apache2", apacheDrop...)

	www := filepath.Join(appOpenDir(t), "www")
	var pages []File
	for _, f := range files {
		if rel, ok := strings.CutPrefix(f.Path, "/var/www/"); ok {
			f.Path = "/" + rel
			pages = append(pages, f)
		}
	}
	if err := WriteTree(www, pages); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(www, 0o755); err != nil {
		t.Fatal(err)
	}
	appEdit(t, filepath.Join(conf, "ports.conf"), func(s string) string {
		return appReplace(t, s, "\nListen "+appItoa(port)+"\n", "\nListen 127.0.0.1:"+appItoa(port)+"\n")
	})
	appEdit(t, filepath.Join(conf, "sites-available", "000-default.conf"), func(s string) string {
		return appReplace(t, s, "DocumentRoot /var/www/html", "DocumentRoot "+www+"/html")
	})
	// What Debian's apache2.conf grants /var/www, for the temp copy.
	grant := "<Directory " + www + "/>\n\tRequire all granted\n</Directory>\n"
	if err := os.WriteFile(filepath.Join(conf, "conf-enabled", "zz-test-www.conf"), []byte(grant), 0o644); err != nil {
		t.Fatal(err)
	}
	appStartApache(t, conf)
	appWaitPort(t, port)

	base := "http://127.0.0.1:" + appItoa(port)
	if code, body := appGet(t, base+"/"); code != 200 || !strings.Contains(body, pl.Branding.Product) {
		t.Errorf("GET /: %d, want 200 with %q:\n%s", code, pl.Branding.Product, body)
	}
	if code, body := appGet(t, base+HealthPath); code != 200 || body != "ok\n" {
		t.Errorf("GET %s: %d %q, want 200 \"ok\\n\"", HealthPath, code, body)
	}
}

// appStartApache runs apache2 in the foreground on the config tree conf, with
// its pid, lock and log files in a temp dir instead of the host's.
func appStartApache(t testing.TB, conf string) {
	t.Helper()
	state := t.TempDir()
	for _, d := range []string{"run", "lock", "log"} {
		if err := os.Mkdir(filepath.Join(state, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{
		"APACHE_CONFDIR=" + conf,
		"APACHE_RUN_USER=www-data", "APACHE_RUN_GROUP=www-data",
		"APACHE_PID_FILE=" + filepath.Join(state, "run", "apache2.pid"),
		"APACHE_RUN_DIR=" + filepath.Join(state, "run"),
		"APACHE_LOCK_DIR=" + filepath.Join(state, "lock"),
		"APACHE_LOG_DIR=" + filepath.Join(state, "log"),
		"LANG=C",
	}
	bin, err := run.Look("apache2")
	if err != nil {
		t.Fatal(err)
	}
	appDaemon(t, env, bin, "-d", conf, "-DFOREGROUND")
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(state, "log", "error.log"))
			t.Logf("apache error.log:\n%s", b)
		}
	})
}

// appEdit rewrites the file at p through fn. It refuses a symlink: in a
// copy of a host config tree, one may lead back to the host's own file.
func appEdit(t testing.TB, p string, fn func(string) string) {
	t.Helper()
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("%s: not a regular file (%v)", p, err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(fn(string(b))), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appItoa(n int) string { return strconv.Itoa(n) }
