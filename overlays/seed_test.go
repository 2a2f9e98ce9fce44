package overlays

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
	"github.com/applbuild/applbuild/rootfs"
)

// TestRootfsFilesNFS: only a plan with an NFS server gets the override,
// and rootfs accepts it as a request file.
func TestRootfsFilesNFS(t *testing.T) {
	for name, want := range map[string]bool{"nfs-ha": true, "mysql-ha": false, "web-cluster": false, "scm": false} {
		files := RootfsFiles(planFor(t, name))
		if got := len(files) == 1 && files[0].Path == rootfs.StatOverrideFile; got != want || len(files) > 1 {
			t.Errorf("%s: RootfsFiles = %+v, want the override: %v", name, files, want)
		}
		if _, err := (rootfs.Request{Suite: "trixie", Files: files}).Normalize(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestNFSStatOverride: dpkg itself, with the seeded override database,
// installs a package that ships the init script executable as a conffile
// (and whose postinst reads it, as nfs-kernel-server's update-rc.d does)
// with the script 0644, and keeps it so through an upgrade.
func TestNFSStatOverride(t *testing.T) {
	testenv.Tools(t, "dpkg", "dpkg-deb")
	testenv.Root(t)
	ctx := context.Background()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	write := func(p, data string, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	deb := func(version string) string {
		pkg := filepath.Join(dir, "pkg"+version)
		write(filepath.Join(pkg, "DEBIAN/control"), "Package: applbuild-test-nfs\nVersion: "+version+"\nArchitecture: all\nMaintainer: applbuild <test@invalid>\nDescription: test\n", 0o644)
		write(filepath.Join(pkg, "DEBIAN/conffiles"), NFSInitScript+"\n", 0o644)
		write(filepath.Join(pkg, "DEBIAN/postinst"), "#!/bin/sh\nset -e\nhead -1 \"$DPKG_ROOT"+NFSInitScript+"\" >/dev/null\n", 0o755)
		write(filepath.Join(pkg, NFSInitScript), "#!/bin/sh\n# version "+version+"\nexit 0\n", 0o755)
		write(filepath.Join(pkg, "usr/sbin/rpc.nfsd"), "#!/bin/sh\nexit 0\n", 0o755)
		out := filepath.Join(dir, "t"+version+".deb")
		if _, err := run.Output(ctx, "dpkg-deb", "--root-owner-group", "-b", pkg, out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "var/lib/dpkg/status"), "", 0o644)
	f := RootfsFiles(planFor(t, "nfs-ha"))[0]
	write(filepath.Join(root, f.Path), f.Content, 0o644)
	for _, v := range []string{"1", "2"} {
		if _, err := run.Output(ctx, "dpkg", "--root="+root, "--log=/dev/null", "--force-script-chrootless", "--force-confnew", "-i", deb(v)); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(filepath.Join(root, NFSInitScript))
		if err != nil {
			t.Fatalf("version %s: %v", v, err)
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("version %s: %s is %v, want -rw-r--r--", v, NFSInitScript, fi.Mode().Perm())
		}
		if fi, err := os.Stat(filepath.Join(root, "usr/sbin/rpc.nfsd")); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("version %s: the override reached another file: %v %v", v, fi, err)
		}
	}
}

// TestNFSOnly: every NFS server unit waits for the file nfsserver writes
// before it starts them, the file the installed agent really writes, and
// nfs-server keeps no condition on Pacemaker's systemd class, which never
// runs it.
func TestNFSOnly(t *testing.T) {
	const agent = "/usr/lib/ocf/resource.d/heartbeat/nfsserver"
	testenv.Files(t, agent)
	src, err := os.ReadFile(agent)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), "SYSTEMD_ENVIRONMENT_FILE_NFS_SERVER_SCOPE="+nfsScopeFile+"\n") {
		t.Errorf("%s does not write %s", agent, nfsScopeFile)
	}
	files := renderNode(t, planFor(t, "nfs-ha"), "n1")
	for _, u := range nfsUnits {
		f := mustFile(t, files, "/etc/systemd/system/"+u+".service.d/50-applbuild-nfsserver.conf")
		if !strings.Contains(string(f.Data), "\nConditionPathExists="+nfsScopeFile+"\n") {
			t.Errorf("%s starts at boot:\n%s", u, f.Data)
		}
	}
	for p := range files {
		if strings.HasPrefix(p, "/etc/systemd/system/nfs-server.service.d/") && strings.Contains(p, "pacemaker") {
			t.Errorf("nfs-server waits for Pacemaker's systemd class: %s", p)
		}
	}
	if _, ok := files["/etc/systemd/system/nfs-server.service.d/50-applbuild-nfsserver.conf"]; !ok {
		t.Error("no nfs-server drop-in")
	}
}
