package overlays

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
	"github.com/applbuild/applbuild/personalities"
)

// sysCtx bounds every external program a system test runs.
func sysCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// sysEveryNode calls f for every node of every embedded personality.
func sysEveryNode(t *testing.T, f func(t *testing.T, pl *builder.Plan, node string, files map[string]File)) {
	t.Helper()
	infos, err := personalities.Library{}.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range infos {
		pl := planFor(t, info.Name)
		for _, n := range pl.Nodes {
			t.Run(info.Name+"/"+n.Name, func(t *testing.T) { f(t, pl, n.Name, renderNode(t, pl, n.Name)) })
		}
	}
}

// sysOutput runs a program that may fail and returns its stdout, its
// stderr and whether it exited non-zero; a program that cannot run at all
// fails the test.
func sysOutput(t *testing.T, c *run.Cmd) (stdout, stderr string, failed bool) {
	t.Helper()
	out, err := c.Output(sysCtx(t))
	var ee *run.ExitError
	switch {
	case err == nil:
		return string(out), "", false
	case errors.As(err, &ee):
		return string(out), ee.Stderr, true
	}
	t.Fatal(err)
	return "", "", true
}

// sysCombined runs args with stderr merged into stdout, for programs that
// report on stderr even when they succeed (ifup --no-act prints its plan
// there).
func sysCombined(t *testing.T, args ...string) (out string, failed bool) {
	t.Helper()
	out, stderr, failed := sysOutput(t, &run.Cmd{Args: append([]string{"sh", "-c", `exec "$@" 2>&1`, "sh"}, args...)})
	return out + stderr, failed
}

func TestSystemNetworkFiles(t *testing.T) {
	web := renderNode(t, planFor(t, "web-cluster"), "n2")
	mysql := renderNode(t, planFor(t, "mysql-ha"), "n1")
	tests := []struct {
		name  string
		files map[string]File
		path  string
		want  []string
		not   []string
	}{
		{"hostname", web, "/etc/hostname", []string{"n2\n"}, nil},
		{"hosts node", web, "/etc/hosts", []string{"192.168.224.161  n1.example.org          n1\n"}, nil},
		{"hosts vlan", web, "/etc/hosts", []string{"10.224.10.161    n1-cluster.example.org  n1-cluster\n", "10.224.40.163    n3-admin.example.org    n3-admin\n"}, nil},
		{"hosts floating", web, "/etc/hosts", []string{"192.168.224.173  rsyncd.example.org      rsyncd\n"}, nil},
		{"interfaces", web, "/etc/network/interfaces", []string{"net.ifnames=0", "address 192.168.224.162\n", "iface eth0.30 inet static\n    address 10.224.30.162\n"}, nil},
		{"modules", web, "/etc/modules", []string{"\nfuse\n8021q\n"}, []string{"drbd\n"}},
		{"modules drbd", mysql, "/etc/modules", []string{"\nfuse\n8021q\ndrbd\n"}, nil},
		{"resolv", web, "/etc/resolv.conf", []string{"search example.org\nnameserver 192.168.224.1\n"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(mustFile(t, tt.files, tt.path).Data)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("%s lacks %q:\n%s", tt.path, w, got)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(got, w) {
					t.Errorf("%s has %q:\n%s", tt.path, w, got)
				}
			}
		})
	}
}

// TestSystemInterfacesIfup has ifupdown itself read every node's
// interfaces file and print the commands it would run: the addresses,
// netmasks and VLANs must be what the plan says.
func TestSystemInterfacesIfup(t *testing.T) {
	testenv.Tools(t, "ifup")
	sysEveryNode(t, func(t *testing.T, pl *builder.Plan, node string, files map[string]File) {
		n := pl.Node(node)
		p := writeFile(t, mustFile(t, files, "/etc/network/interfaces"))
		out, failed := sysCombined(t, "ifup", "--no-act", "-i", p, "--state-dir", t.TempDir(), "-a")
		if failed {
			t.Fatalf("ifup --no-act: %s", out)
		}
		want := []string{fmt.Sprintf("ip addr add %s/%s ", n.Address, pl.Network.Netmask)}
		if pl.Network.Gateway != "" {
			want = append(want, "ip route add default via "+pl.Network.Gateway+" ")
		}
		for i, v := range n.VLANs {
			want = append(want,
				fmt.Sprintf("ip link add link eth0 name %s type vlan id %d", v.Interface, v.ID),
				fmt.Sprintf("ip addr add %s/%s ", v.Address, pl.Network.VLANs[i].Netmask))
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("ifup would not run %q:\n%s", w, out)
			}
		}
	})
	t.Run("broken", func(t *testing.T) {
		files := renderNode(t, planFor(t, "web-cluster"), "n1")
		f := mustFile(t, files, "/etc/network/interfaces")
		f.Data = []byte(strings.Replace(string(f.Data), "inet static", "inet statik", 1))
		out, failed := sysCombined(t, "ifup", "--no-act", "-i", writeFile(t, f), "--state-dir", t.TempDir(), "-a")
		if !failed || !strings.Contains(out, "unknown or no method") {
			t.Fatalf("ifup accepted a broken file (failed=%v): %s", failed, out)
		}
	})
}

// TestSystemInterfacesNetns raises n1's interfaces for real with ifup, in a
// network namespace of its own whose veth end is named eth0.
func TestSystemInterfacesNetns(t *testing.T) {
	testenv.Root(t)
	testenv.Tools(t, "ifup", "ifdown", "ip")
	pl := planFor(t, "web-cluster")
	n := pl.Node("n1")
	p := writeFile(t, mustFile(t, renderNode(t, pl, "n1"), "/etc/network/interfaces"))
	ctx := sysCtx(t)

	ns := fmt.Sprintf("applbuild-sys-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	if err := run.Run(ctx, "ip", "netns", "add", ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Deleting the namespace takes its links and addresses with it.
		if err := run.Run(context.Background(), "ip", "netns", "del", ns); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if err := run.Run(ctx, "ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0"); err != nil {
		t.Fatal(err)
	}
	if err := run.Run(ctx, "ip", "-n", ns, "link", "set", "peer0", "up"); err != nil {
		t.Fatal(err)
	}
	vlans := true
	if err := run.Run(ctx, "ip", "-n", ns, "link", "add", "link", "eth0", "name", "probe.99", "type", "vlan", "id", "99"); err != nil {
		if !strings.Contains(err.Error(), "Unknown device type") {
			t.Fatal(err)
		}
		// CONFIG_VLAN_8021Q is off on some CI kernels; the VLANs are then
		// checked by TestSystemInterfacesIfup only.
		t.Logf("this kernel has no 802.1q VLANs: checking eth0 only")
		vlans = false
	} else if err := run.Run(ctx, "ip", "-n", ns, "link", "del", "probe.99"); err != nil {
		t.Fatal(err)
	}

	// --no-scripts: the host's if-up.d hooks have no business here.
	state := t.TempDir()
	out, failed := sysCombined(t, "ip", "netns", "exec", ns, "ifup", "--no-scripts", "-i", p, "--state-dir", state, "-a")
	if failed {
		t.Fatalf("ifup -a: %s", out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		// ifup exits 0 even when a VLAN cannot be made: read what it says.
		if line != "" && (vlans || !strings.Contains(line, "Unknown device type") && !strings.Contains(line, "ignoring unknown interface eth0.")) {
			t.Errorf("ifup: %s", line)
		}
	}
	addr, err := run.Output(ctx, "ip", "-n", ns, "-d", "-o", "addr", "show")
	if err != nil {
		t.Fatal(err)
	}
	link, err := run.Output(ctx, "ip", "-n", ns, "-d", "-o", "link", "show")
	if err != nil {
		t.Fatal(err)
	}
	route, err := run.Output(ctx, "ip", "-n", ns, "route", "show", "default")
	if err != nil {
		t.Fatal(err)
	}
	mustMatch := func(what string, out []byte, re string) {
		t.Helper()
		if !regexp.MustCompile(re).Match(out) {
			t.Errorf("%s: no match for %s in:\n%s", what, re, out)
		}
	}
	mustMatch("addr", addr, fmt.Sprintf(`eth0\s+inet %s/%d `, regexp.QuoteMeta(n.Address), pl.Network.Prefix))
	mustMatch("route", route, fmt.Sprintf(`default via %s dev eth0`, regexp.QuoteMeta(pl.Network.Gateway)))
	if vlans {
		for _, v := range n.VLANs {
			mustMatch("link", link, fmt.Sprintf(`%s@eth0: .*vlan protocol 802.1Q id %d `, regexp.QuoteMeta(v.Interface), v.ID))
			mustMatch("addr", addr, fmt.Sprintf(`%s\s+inet %s/%d `, regexp.QuoteMeta(v.Interface), regexp.QuoteMeta(v.Address), v.Prefix))
		}
	}
	if out, failed := sysCombined(t, "ip", "netns", "exec", ns, "ifdown", "--no-scripts", "-i", p, "--state-dir", state, "-a"); failed {
		t.Errorf("ifdown -a: %s", out)
	}
}

// findmntHostOnly are findmnt --verify findings about the machine running
// the test, not the file: the image's devices and mount points are not here.
var findmntHostOnly = []string{
	"unreachable on boot required target",
	"unreachable target", // a noauto mount whose directory the image has, not the host
	"unreachable on boot required source",
	"unreachable source",
	"cannot detect on-disk filesystem type",
	"non-canonical target",
	// a UUID the host happens to know (an image of this plan lying on the
	// host, found through blkid) resolves to a file
	"non-bind mount source",
}

// findmntProblems runs findmnt --verify on an fstab and returns what is
// wrong with the file itself: parse errors, unknown types, duplicate or
// misordered targets, bad options.
func findmntProblems(t *testing.T, fstab string) []string {
	t.Helper()
	out, stderr, _ := sysOutput(t, &run.Cmd{Args: []string{"findmnt", "--verify", "--verbose", "--tab-file", fstab}})
	var bad []string
	target := ""
	for _, line := range strings.Split(out, "\n") {
		trim := strings.TrimSpace(line)
		switch {
		case line != "" && !strings.HasPrefix(line, " "):
			target = line
		case strings.HasPrefix(trim, "[E]"), strings.HasPrefix(trim, "[W]"):
			msg := strings.TrimSpace(trim[3:])
			host := false
			for _, h := range findmntHostOnly {
				host = host || strings.HasPrefix(msg, h)
			}
			if !host {
				bad = append(bad, target+": "+msg)
			}
		}
	}
	for _, line := range strings.Split(stderr, "\n") {
		if strings.Contains(line, "parse error at line") {
			bad = append(bad, strings.TrimSpace(line))
		}
	}
	return bad
}

func TestSystemFstab(t *testing.T) {
	testenv.Tools(t, "findmnt")
	sysEveryNode(t, func(t *testing.T, pl *builder.Plan, node string, files map[string]File) {
		f := mustFile(t, files, "/etc/fstab")
		if bad := findmntProblems(t, writeFile(t, f)); len(bad) > 0 {
			t.Errorf("findmnt --verify:\n%s\n%s", strings.Join(bad, "\n"), f.Data)
		}
		var lines []string
		for _, l := range strings.Split(string(f.Data), "\n") {
			if l != "" && !strings.HasPrefix(l, "#") {
				lines = append(lines, l)
			}
		}
		mounts := pl.Node(node).Mounts
		if len(lines) != len(mounts) {
			t.Fatalf("%d lines for %d mounts", len(lines), len(mounts))
		}
		for i, m := range mounts {
			if got := strings.Fields(lines[i]); got[0] != m.Source || got[1] != m.Target {
				t.Errorf("line %d is %v, want %s on %s", i+1, got, m.Source, m.Target)
			}
		}
	})
	good := mustFile(t, renderNode(t, planFor(t, "web-cluster"), "n1"), "/etc/fstab")
	for _, tt := range []struct{ name, line, want string }{
		{"unknown type", "/dev/vdz1 /srv ext44 defaults 0 2", "ext44 seems unsupported"},
		{"syntax", "/dev/vdz1", "parse error"},
		{"bad field", "/dev/vdz1 /srv ext4 defaults 0 x", "parse error"},
		{"twice", "/dev/vdz1 / ext4 defaults 0 1", "target specified more than once"},
	} {
		t.Run("broken/"+tt.name, func(t *testing.T) {
			f := good
			f.Data = []byte(string(good.Data) + tt.line + "\n")
			bad := findmntProblems(t, writeFile(t, f))
			if !strings.Contains(strings.Join(bad, "\n"), tt.want) {
				t.Errorf("findmnt found %q, want %q", bad, tt.want)
			}
		})
	}
}

func TestSystemBranding(t *testing.T) {
	pl := planFor(t, "web-cluster")
	files := renderNode(t, pl, "n1")
	motd := string(mustFile(t, files, "/etc/motd").Data)
	for _, w := range []string{"applbuild web-cluster", "n1.example.org", "https://192.168.224.161:9090/", "rsyncd.example.org 192.168.224.173:873", "apache2:8080"} {
		if !strings.Contains(motd, w) {
			t.Errorf("motd lacks %q:\n%s", w, motd)
		}
	}
	pl.Branding.Product = `Back\slash`
	pl.Branding.Motd = "Welcome."
	files = renderNode(t, pl, "n1")
	if got := string(mustFile(t, files, "/etc/motd").Data); got != "Welcome.\n" {
		t.Errorf("motd override: %q", got)
	}
	if got := string(mustFile(t, files, "/etc/issue").Data); !strings.HasPrefix(got, `Back\\slash: n1.example.org (\l)`) {
		t.Errorf("issue does not escape the product: %q", got)
	}
}

func TestSystemDsh(t *testing.T) {
	testenv.Tools(t, "dsh")
	pl := planFor(t, "web-cluster")
	files := renderNode(t, pl, "n3")
	// dsh reads ~/.dsh after /etc/dsh: a HOME of our own is its config dir.
	home := t.TempDir()
	for src, dst := range map[string]string{
		"/etc/dsh/dsh.conf":      ".dsh/dsh.conf",
		"/etc/dsh/group/cluster": ".dsh/group/cluster",
		"/etc/dsh/machines.list": ".dsh/machines.list",
	} {
		p := filepath.Join(home, dst)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, mustFile(t, files, src).Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// echo stands in for ssh: dsh prints what it would run on each node,
	// with remoteshellopt from the file.
	for _, sel := range [][]string{{"-g", "cluster"}, {"-a"}} {
		args := append([]string{"dsh", "-r", "echo"}, sel...)
		out, err := (&run.Cmd{Args: append(args, "--", "uptime"), Env: []string{"HOME=" + home}}).Output(sysCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range pl.Nodes {
			if w := fmt.Sprintf("%s: -oBatchMode=yes %s uptime\n", n.Name, n.Name); !strings.Contains(string(out), w) {
				t.Errorf("dsh %v: no %q in:\n%s", sel, w, out)
			}
		}
	}
	if _, ok := renderNode(t, planFor(t, "scm"), "scm1")["/etc/dsh/dsh.conf"]; ok {
		t.Error("scm does not install dsh but got its config")
	}
}
