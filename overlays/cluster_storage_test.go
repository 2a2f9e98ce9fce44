package overlays

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
)

// drbdadm84 is the 8.4 front end drbd-utils 9 hands over to when the
// kernel's DRBD is 8.4 (trixie's stock kernel); drbdadm itself parses the
// DRBD 9 dialect.
const drbdadm84 = "/usr/lib/drbd/drbdadm-84"

// TestDRBDConfig has drbdadm read each node's resource files as that node
// would: in a UTS namespace named like the node and a network namespace
// that owns its address, since drbdadm checks both against the "on"
// sections.
func TestDRBDConfig(t *testing.T) {
	testenv.Root(t)
	testenv.Tools(t, "drbdadm", "ip", "unshare")
	if _, err := os.Stat(drbdadm84); err != nil {
		t.Fatalf("drbd-utils without the 8.4 front end: %v", err)
	}
	for _, name := range personalitiesWith(t, "DRBD", hasDRBD) {
		pl := planFor(t, name)
		if len(pl.DRBD) == 0 {
			t.Fatalf("%s has no DRBD resource", name)
		}
		for _, n := range pl.Nodes {
			t.Run(name+"/"+n.Name, func(t *testing.T) {
				files := renderNode(t, pl, n.Name)
				ns := netnsWith(t, n.Address+"/"+fmt.Sprint(pl.Network.Prefix))
				var res []File
				for _, r := range pl.DRBD {
					f := mustFile(t, files, "/etc/drbd.d/"+r.Name+".res")
					if f.Mode != 0o644 {
						t.Errorf("%s: mode %v", f.Path, f.Mode)
					}
					res = append(res, f)
				}
				// drbdadm-84 only: the fencing policy sits in the disk
				// section in 8.4 (the kernel's) and in net in 9, so
				// drbdadm 9 refuses these files.
				out, err := drbdDump(t, ns, n.Name, res, drbdadm84, "dump", "all")
				if err != nil {
					t.Fatalf("drbdadm-84 rejects the generated resources: %v", err)
				}
				for _, r := range pl.DRBD {
					if want := "# resource " + r.Name + " on " + n.Name + ": not ignored"; !strings.Contains(out, want) {
						t.Errorf("drbdadm-84 dump lacks %q:\n%s", want, out)
					}
				}
				if pl.Fencing != nil {
					for _, want := range []string{"fencing          resource-and-stonith;",
						`fence-peer       "/usr/lib/applbuild/fence-peer --timeout`,
						"after-resync-target /usr/lib/drbd/crm-unfence-peer.sh;"} {
						if !strings.Contains(out, want) {
							t.Errorf("drbdadm-84 dump lacks %q:\n%s", want, out)
						}
					}
				}
				// What the node would run to bring the resource up: the
				// meta-data is flexible external on the meta LV.
				out, err = drbdDump(t, ns, n.Name, res, drbdadm84, "-d", "up", "all")
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range pl.DRBD {
					p := r.Peers[n.Index-1]
					if want := fmt.Sprintf("attach %d %s %s flexible", r.Minor, p.Disk, p.Meta); !strings.Contains(out, want) {
						t.Errorf("drbdadm-84 up lacks %q:\n%s", want, out)
					}
					if pl.Fencing != nil && !strings.Contains(out, "--fencing=resource-and-stonith") {
						t.Errorf("drbdadm-84 up does not attach with --fencing=resource-and-stonith:\n%s", out)
					}
				}
				// The check is real: a broken copy fails.
				for what, edit := range map[string][2]string{
					"syntax":       {"protocol C;", "protocol C"},
					"bad protocol": {"protocol C;", "protocol Z;"},
					"no address":   {"address " + n.Address, "address 192.0.2.1"},
					"bad fencing":  {"fencing resource-and-stonith;", "fence resource-and-stonith;"},
				} {
					broken := res[0]
					broken.Data = []byte(strings.Replace(string(broken.Data), edit[0], edit[1], 1))
					if _, err := drbdDump(t, ns, n.Name, []File{broken}, drbdadm84, "dump", "all"); err == nil {
						t.Errorf("drbdadm-84 accepts a resource with a %s error", what)
					}
				}
			})
		}
	}
}

// drbdDump runs a drbdadm command on a drbd.conf that includes Debian's
// global_common.conf (when the host has one) and res, as host on ns.
func drbdDump(t *testing.T, ns, host string, res []File, prog string, args ...string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	conf := ""
	if b, err := os.ReadFile("/etc/drbd.d/global_common.conf"); err == nil {
		if err := os.WriteFile(filepath.Join(dir, "global_common.conf"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		conf += fmt.Sprintf("include %q;\n", filepath.Join(dir, "global_common.conf"))
	}
	if err := os.Mkdir(filepath.Join(dir, "drbd.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range res {
		if err := os.WriteFile(filepath.Join(dir, "drbd.d", path.Base(f.Path)), f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf += fmt.Sprintf("include %q;\n", filepath.Join(dir, "drbd.d", "*.res"))
	if err := os.WriteFile(filepath.Join(dir, "drbd.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := append([]string{"ip", "netns", "exec", ns, "unshare", "--uts",
		"sh", "-c", `hostname "$1" && shift && exec "$@"`, "sh", host,
		prog, "-c", filepath.Join(dir, "drbd.conf")}, args...)
	out, err := run.Output(ctxFor(t), cmd...)
	return string(out), err
}

// TestNFSExports has exportfs read the generated exports in a private
// mount namespace: the file bind-mounted over /etc/exports, /var/lib/nfs
// on a temp dir, the export paths on a tmpfs, and /proc/fs/nfsd hidden so
// nothing reaches a kernel NFS server even on a host that runs one.
func TestNFSExports(t *testing.T) {
	testenv.Root(t)
	testenv.Tools(t, "exportfs", "unshare", "mount")
	pl := planFor(t, "nfs-ha")
	if len(pl.NFS) == 0 {
		t.Fatal("nfs-ha has no exports")
	}
	f := mustFile(t, renderNode(t, pl, "n1"), exportsPath)
	out, err := exportfsCheck(t, pl.NFS[0].Path, f.Data)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range pl.NFS {
		if !strings.Contains(out, e.Path+"\n\t\t"+e.Clients+"(") {
			t.Errorf("exportfs -v does not list %s to %s:\n%s", e.Path, e.Clients, out)
		}
	}
	for what, broken := range map[string]string{
		"unknown option": strings.Replace(string(f.Data), "(rw,", "(rw,bogus,", 1),
		"bad prefix":     strings.Replace(string(f.Data), "/24(", "/33(", 1),
		"stray space":    strings.Replace(string(f.Data), "/24(", "/24 (", 1),
	} {
		if _, err := exportfsCheck(t, pl.NFS[0].Path, []byte(broken)); err == nil {
			t.Errorf("exportfs accepts exports with a %s", what)
		}
	}
}

// exportfsCheck runs exportfs -ra and -v on exports; any message on
// stderr is a failure (exportfs exits 0 on some it only warns about).
func exportfsCheck(t *testing.T, exportPath string, exports []byte) (string, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "exports"), exports, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	top := "/" + strings.Split(strings.TrimPrefix(exportPath, "/"), "/")[0]
	for _, p := range []string{"/etc/exports", "/var/lib/nfs", "/proc/fs/nfsd", top} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("need %s on the host to mount over: %v", p, err)
		}
	}
	script := `set -e
mount --bind "$1/exports" /etc/exports
mount --bind "$1/lib" /var/lib/nfs
mount -t tmpfs applbuild-test /proc/fs/nfsd
mount -t tmpfs applbuild-test "$2"
mkdir -p "$3"
err=$(exportfs -ra 2>&1) || { echo "$err" >&2; exit 1; }
[ -z "$err" ] || { echo "$err" >&2; exit 1; }
exportfs -v
`
	out, err := run.Output(ctxFor(t), "unshare", "--mount", "--propagation", "private",
		"sh", "-c", script, "sh", dir, top, exportPath)
	return string(out), err
}

// TestPacemakerDropIn has systemd load the drop-in beside a copy of the
// host's pacemaker.service; systemd-analyze exits 0 on unknown keys, so
// any message fails.
func TestPacemakerDropIn(t *testing.T) {
	testenv.Tools(t, "systemd-analyze")
	unit, err := os.ReadFile("/lib/systemd/system/pacemaker.service")
	if err != nil {
		t.Fatalf("need pacemaker.service (package pacemaker): %v", err)
	}
	files := renderNode(t, planFor(t, "web-cluster"), "n1")
	f := mustFile(t, files, pacemakerDropIn)
	// The unit the drop-in orders Pacemaker after is the image's own: it
	// goes beside pacemaker.service, which systemd-analyze searches, so
	// the check does not depend on what the host has installed.
	setup := mustFile(t, files, "/etc/systemd/system/"+glusterSetupUnit)
	check := func(dropIn []byte) (string, error) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, glusterSetupUnit), setup.Data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "pacemaker.service.d"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "pacemaker.service"), unit, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "pacemaker.service.d", "applbuild.conf"), dropIn, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := combined(ctxFor(t), "systemd-analyze", "verify", "--man=no", filepath.Join(dir, "pacemaker.service"))
		if err == nil && strings.TrimSpace(out) != "" {
			err = fmt.Errorf("systemd-analyze verify: %s", out)
		}
		return out, err
	}
	if out, err := check(f.Data); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if _, err := check([]byte(strings.Replace(string(f.Data), "Wants=", "Wantz=", 1))); err == nil {
		t.Error("systemd-analyze accepts a drop-in with an unknown key")
	}
	for _, want := range []string{"After=remote-fs.target applbuild-gluster.service", "Wants=remote-fs.target applbuild-gluster.service"} {
		if !strings.Contains(string(f.Data), want+"\n") {
			t.Errorf("drop-in lacks %s", want)
		}
	}
}

// TestClusterHook checks the DRBD first-boot hook with the shell that runs
// it (sh -n parses without running), and what it does on each node.
func TestClusterHook(t *testing.T) {
	testenv.Tools(t, "sh")
	for _, tc := range []struct {
		personality, node string
		want, not         []string
	}{
		{"mysql-ha", "n1", []string{"create-md 'mysql'", "primary 'mysql'", "mkfs -t 'ext4' -q '/dev/drbd0'", "cp -a '/var/lib/mysql'/."}, nil},
		{"mysql-ha", "n2", []string{"create-md 'mysql'"}, []string{"mkfs", "primary"}},
		{"nfs-ha", "n1", []string{`mkdir -p "$tmp"/'export'`, `mkdir -p "$tmp"/'nfsinfo'`}, nil},
	} {
		t.Run(tc.personality+"/"+tc.node, func(t *testing.T) {
			files := renderNode(t, planFor(t, tc.personality), tc.node)
			f := mustFile(t, files, clusterHookPath)
			if f.Mode != 0o755 {
				t.Errorf("mode %v, want 0755", f.Mode)
			}
			if _, err := run.Output(ctxFor(t), "sh", "-n", writeFile(t, f)); err != nil {
				t.Fatalf("sh -n: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(f.Data), w) {
					t.Errorf("hook lacks %q", w)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(string(f.Data), w) {
					t.Errorf("hook on %s has %q", tc.node, w)
				}
			}
		})
	}
	for _, name := range personalitiesWith(t, "no DRBD", func(pl *builder.Plan) bool { return !hasDRBD(pl) }) {
		pl := planFor(t, name)
		if _, ok := renderNode(t, pl, pl.Nodes[0].Name)[clusterHookPath]; ok {
			t.Errorf("%s has no DRBD but got %s", name, clusterHookPath)
		}
	}
}
