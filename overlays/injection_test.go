package overlays

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
)

// The spec loader validates values by type; these tests set hostile values
// in the Plan directly, past that validation, to prove that the templates
// alone never let a value become code or a new line of config.

// TestInjectionRefused: a newline or quote that would add a directive in
// a line-oriented config fails the render, naming the language.
func TestInjectionRefused(t *testing.T) {
	for _, c := range []struct {
		personality, what string
		set               func(pl *builder.Plan)
	}{
		{"web-cluster", "network.interface", func(pl *builder.Plan) { pl.Network.Interface = "eth0\nup reboot" }},
		{"web-cluster", "VLAN purpose", func(pl *builder.Plan) { pl.Network.VLANs[0].Purpose = "storage\nup reboot" }},
		{"web-cluster", "service process", func(pl *builder.Plan) {
			for i := range pl.Services {
				pl.Services[i].Pidfile, pl.Services[i].Process = "", "sshd\"\n    exec \"/bin/sh"
			}
		}},
		{"web-cluster", "rsync comment", func(pl *builder.Plan) {
			pl.Rsync.Modules[0].Comment = "x\n[rootfs]\npath = /\nuid = root\nread only = no"
		}},
		{"web-cluster", "rsync.dr_key", func(pl *builder.Plan) { pl.Rsync.DRKey = "ssh-ed25519 AAAA a\nssh-ed25519 BBBB evil" }},
		{"web-cluster", "admin.password_hash", func(pl *builder.Plan) { pl.Admin.PasswordHash = "$6$salt$x\nroot:$6$evil" }},
		{"web-cluster", "admin.keys", func(pl *builder.Plan) { pl.Admin.Keys = []string{"ssh-ed25519 AAAA a\nssh-ed25519 BBBB evil"} }},
		{"web-cluster", "branding.product", func(pl *builder.Plan) { pl.Branding.Product = "Shop\nskip-grant-tables" }},
		{"nfs-ha", "nfs options", func(pl *builder.Plan) { pl.NFS[0].Options = "rw)\n/ *(rw,no_root_squash" }},
		{"nfs-ha", "nfs path", func(pl *builder.Plan) { pl.NFS[0].Path = "/srv/nfs /" }},
		{"mysql-ha", "mariadb.datadir", func(pl *builder.Plan) { pl.MariaDB.Datadir = "/var/lib/mysql\nskip-grant-tables" }},
		{"mysql-ha", "drbd mount", func(pl *builder.Plan) { pl.DRBD[0].Mount = "/var/lib/mysql\ntouch /tmp/pwned" }},
	} {
		t.Run(c.personality+"/"+c.what, func(t *testing.T) {
			pl := planFor(t, c.personality)
			c.set(pl)
			_, err := Render(pl, &pl.Nodes[0], testRing(t))
			var qe *quoteError
			if !errors.As(err, &qe) && (err == nil || !strings.Contains(err.Error(), c.what)) {
				t.Fatalf("Render = %v, want a quoting error or one naming %s", err, c.what)
			}
		})
	}
}

// scriptPart runs the lines of script from the first starting with from
// to the first after it equal to to (or that line alone when to is ""),
// then print, in bash, and returns what it wrote.
func scriptPart(t *testing.T, script, from, to, print string) string {
	t.Helper()
	lines := strings.Split(script, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, from) {
			continue
		}
		for j := i; j < len(lines); j++ {
			if lines[j] == to || to == "" {
				return bashOut(t, strings.Join(lines[i:j+1], "\n")+"\n"+print)
			}
		}
	}
	t.Fatalf("no %q in script:\n%s", from, script)
	return ""
}

func bashOut(t *testing.T, script string) string {
	t.Helper()
	out, err := run.Output(context.Background(), "bash", "-c", script)
	if err != nil {
		t.Fatalf("bash on %q: %v", script, err)
	}
	return string(out)
}

// TestInjectionInert: values that reach the root shell scripts come out
// as the literal values bash reads back, and nothing runs.
func TestInjectionInert(t *testing.T) {
	testenv.Tools(t, "bash")
	pwned := filepath.Join(t.TempDir(), "pwned")
	subst := "$(touch${IFS}" + pwned + ")" // no blank: it passes fstab too
	allow := "10.0.0.*' ; touch " + pwned + " ; '"
	drHost := "dr.example.org$(touch " + pwned + ")"
	product := "Shop'\"$(touch " + pwned + ")`touch " + pwned + "`"

	web := planFor(t, "web-cluster")
	web.Gluster.Volumes[0].Brick += subst
	web.Gluster.Volumes[0].Mount += subst
	web.Gluster.Allow = allow
	web.Rsync.DRHost = drHost
	files := renderNode(t, web, "n1")
	gl := string(mustFile(t, files, "/usr/lib/applbuild/gluster-setup").Data)
	v := web.Gluster.Volumes[0]
	if got := scriptPart(t, gl, "volumes=(", ")", `printf %s "${volumes[0]}"`); got != v.Name+"|"+v.Brick+"|"+v.Mount+"|"+strings.Join(v.Nodes, " ") {
		t.Errorf("gluster volumes[0] reads back as %q", got)
	}
	// g is gluster's wrapper: here it prints its arguments.
	setAllow := strings.TrimLeft(lineWith(t, gl, "auth.allow"), "\t")
	if got := bashOut(t, "name=www\ng() { printf '%s|' \"$@\"; }\n"+setAllow); !strings.HasPrefix(got, "volume|set|www|auth.allow|"+allow+"|cluster.quorum-type|") {
		t.Errorf("auth.allow gets %q", got)
	}
	dr := string(mustFile(t, files, "/usr/share/applbuild/dr-client/applbuild-dr-pull").Data)
	if got := scriptPart(t, dr, "host=", "", `printf %s "$host"`); got != drHost {
		t.Errorf("DR host reads back as %q", got)
	}

	scm := planFor(t, "scm")
	scm.Branding.Product = product
	hook := string(mustFile(t, renderNode(t, scm, "scm1"), "/usr/lib/applbuild/firstboot.d/60-scm").Data)
	realm := strings.TrimLeft(lineWith(t, hook, "printf 'realm"), "\t")
	if got := bashOut(t, "repo=main\n"+strings.Replace(realm, `>>"$dir.new/conf/svnserve.conf"`, "", 1)); got != "realm = "+product+" main\n" {
		t.Errorf("realm line prints %q", got)
	}

	for name, s := range map[string]string{"gluster-setup": gl, "dr-pull": dr, "60-scm": hook} {
		if _, err := run.Output(context.Background(), "bash", "-n", "-c", s); err != nil {
			t.Errorf("%s: bash -n: %v", name, err)
		}
	}
	if _, err := os.Stat(pwned); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a spec value ran a command")
	}
}

func lineWith(t *testing.T, s, sub string) string {
	t.Helper()
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	t.Fatalf("no line with %q", sub)
	return ""
}
