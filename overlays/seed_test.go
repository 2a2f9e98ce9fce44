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

// TestRootfsFilesNFS: only a plan with an NFS server gets the dpkg
// exclusion, and rootfs accepts it as a request file.
func TestRootfsFilesNFS(t *testing.T) {
	for name, want := range map[string]bool{"nfs-ha": true, "mysql-ha": false, "web-cluster": false, "scm": false} {
		files := RootfsFiles(planFor(t, name))
		if got := len(files) == 1 && files[0].Path == nfsDpkgExclude; got != want || len(files) > 1 {
			t.Errorf("%s: RootfsFiles = %+v, want the exclusion: %v", name, files, want)
		}
		if _, err := (rootfs.Request{Suite: "trixie", Files: files}).Normalize(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestNFSDpkgExclude: dpkg itself, reading the file's lines as it reads a
// dpkg.cfg.d file (each line an option without its "--"), leaves the init
// script out of a package that ships it as a conffile, and installs the
// rest of the package.
func TestNFSDpkgExclude(t *testing.T) {
	testenv.Tools(t, "dpkg", "dpkg-deb")
	testenv.Root(t)
	ctx := context.Background()
	dir := t.TempDir()
	pkg := filepath.Join(dir, "pkg")
	for p, data := range map[string]string{
		"DEBIAN/control":    "Package: applbuild-test-nfs\nVersion: 1\nArchitecture: all\nMaintainer: applbuild <test@invalid>\nDescription: test\n",
		"DEBIAN/conffiles":  NFSInitScript + "\n",
		NFSInitScript:       "#!/bin/sh\nexit 0\n",
		"usr/sbin/rpc.nfsd": "#!/bin/sh\nexit 0\n",
	} {
		p = filepath.Join(pkg, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(pkg, "DEBIAN/control"), 0o644); err != nil {
		t.Fatal(err)
	}
	deb := filepath.Join(dir, "t.deb")
	if _, err := run.Output(ctx, "dpkg-deb", "--root-owner-group", "-b", pkg, deb); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--root=" + root, "--log=/dev/null", "--force-script-chrootless", "--force-not-root"}
	for _, line := range strings.Split(RootfsFiles(planFor(t, "nfs-ha"))[0].Content, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			args = append(args, "--"+line)
		}
	}
	if _, err := run.Output(ctx, append(append([]string{"dpkg"}, args...), "-i", deb)...); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, NFSInitScript)); !os.IsNotExist(err) {
		t.Errorf("dpkg installed %s: %v", NFSInitScript, err)
	}
	if _, err := os.Stat(filepath.Join(root, "usr/sbin/rpc.nfsd")); err != nil {
		t.Errorf("dpkg left out the rest of the package: %v", err)
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
