package rootfs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/applbuild/applbuild/internal/testenv"
)

// TestBuildTrixie builds a small real rootfs from deb.debian.org, reuses
// it, rebuilds it to check reproducibility, and extracts it.
func TestBuildTrixie(t *testing.T) {
	testenv.Slow(t)
	testenv.Root(t)
	testenv.Tools(t, "mmdebstrap", "unshare", "tar")
	c := &Cache{Dir: t.TempDir()}
	req := Request{
		Suite:    "trixie",
		Mirror:   "http://deb.debian.org/debian",
		Arch:     "amd64",
		Variant:  "minbase",
		Packages: []string{"iputils-arping", "libcap2-bin", "openssh-server"},
		// Written before the packages: sshd's postinst runs with it there.
		Files: []File{{Path: "/etc/ssh/sshd_config.d/applbuild.conf", Content: "# a 'quoted' %s $line\nPermitRootLogin prohibit-password\n"},
			{Path: "/etc/applbuild/hook", Content: "#!/bin/sh\n", Executable: true}},
	}
	var lines []string
	start := time.Now()
	e, err := c.Get(t.Context(), req, func(l string) { lines = append(lines, l) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first build: %v, %d MB, %d packages", time.Since(start).Round(time.Millisecond), e.Size>>20, len(e.Packages))
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "I: ") }) {
		t.Errorf("no mmdebstrap status line reached progress: %q", lines)
	}
	names := map[string]Package{}
	for _, p := range e.Packages {
		names[p.Name] = p
	}
	for _, want := range []string{"apt", "dpkg", "base-files", "login", "iputils-arping", "libcap2-bin"} {
		if _, ok := names[want]; !ok {
			t.Errorf("packages.tsv lacks %s", want)
		}
	}
	if p := names["dpkg"]; p.Arch != "amd64" || p.Version == "" {
		t.Errorf("dpkg entry = %+v", p)
	}
	debs, _ := os.ReadDir(filepath.Join(c.Dir, debsDirName))
	if len(debs) < len(e.Packages)/2 {
		t.Errorf("shared .deb cache holds %d files for %d packages", len(debs), len(e.Packages))
	}

	start = time.Now()
	again, err := c.Get(t.Context(), req, func(l string) { t.Errorf("second Get built: %s", l) })
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second || again.Key != e.Key || !again.Created.Equal(e.Created) {
		t.Errorf("second Get took %v and returned %s/%v, want the cached %s/%v", d, again.Key, again.Created, e.Key, e.Created)
	}
	if err := c.Verify(e.Key); err != nil {
		t.Error(err)
	}

	dir := filepath.Join(t.TempDir(), "root")
	start = time.Now()
	if err := Extract(t.Context(), e.Tarball, dir); err != nil {
		t.Fatal(err)
	}
	t.Logf("extract: %v", time.Since(start).Round(time.Millisecond))
	exists := func(rel string) bool { _, err := os.Lstat(filepath.Join(dir, rel)); return err == nil }
	if !exists("usr/bin/dpkg") {
		t.Error("no /usr/bin/dpkg")
	}
	for _, f := range req.Files {
		p := filepath.Join(dir, f.Path)
		b, err := os.ReadFile(p)
		if err != nil || string(b) != f.Content {
			t.Errorf("%s: %q, %v; want %q", f.Path, b, err, f.Content)
		} else if fi, _ := os.Stat(p); fi.Mode().Perm() != map[bool]os.FileMode{false: 0o644, true: 0o755}[f.Executable] {
			t.Errorf("%s: mode %v (executable %v)", f.Path, fi.Mode(), f.Executable)
		}
	}
	for _, gone := range []string{"etc/hostname", "usr/sbin/policy-rc.d", "var/lib/dbus/machine-id"} {
		if exists(gone) {
			t.Errorf("/%s is in the image", gone)
		}
	}
	// Without systemd there is no /etc/machine-id; with it, mmdebstrap empties it.
	if b, err := os.ReadFile(filepath.Join(dir, "etc/machine-id")); (err != nil && !os.IsNotExist(err)) || len(b) != 0 {
		t.Errorf("/etc/machine-id = %q, %v; want empty or missing", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "etc/resolv.conf")); err != nil || string(b) != resolvConf {
		t.Errorf("/etc/resolv.conf = %q, %v; want ours", b, err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "etc/ssh/ssh_host_*")); !exists("usr/sbin/sshd") || len(m) != 0 {
		t.Errorf("sshd installed: %v; host keys shared by every node: %v", exists("usr/sbin/sshd"), m)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "var/cache/apt/archives/*.deb")); len(m) != 0 {
		t.Errorf("image keeps %d .debs", len(m))
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "var/lib/apt/lists/*_Packages*")); len(m) != 0 {
		t.Errorf("image keeps apt lists %v", m)
	}
	buf := make([]byte, 64)
	n, err := syscall.Getxattr(filepath.Join(dir, "usr/bin/arping"), "security.capability", buf)
	// vfs_cap_data: magic/revision, then permitted bits; CAP_NET_RAW is 13.
	if err != nil || n < 8 || buf[4+1]&(1<<(13-8)) == 0 {
		t.Errorf("arping security.capability = %x, %v; want cap_net_raw", buf[:max(n, 0)], err)
	}

	// Same request, same mirror state, same bytes.
	start = time.Now()
	re, err := c.Refresh(t.Context(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rebuild with cached .debs: %v", time.Since(start).Round(time.Millisecond))
	if re.SHA256 != e.SHA256 {
		same := bytes.Equal(encodePackages(e.Packages), encodePackages(re.Packages))
		t.Errorf("rebuild is not bit-identical: %s vs %s (package lists equal: %v)", e.SHA256, re.SHA256, same)
	}
}

// TestBuildCancelledLeavesNothing cancels a real build in the middle of
// the install and checks that no process, mount or file of it survives.
func TestBuildCancelledLeavesNothing(t *testing.T) {
	testenv.Slow(t)
	testenv.Root(t)
	testenv.Tools(t, "mmdebstrap", "unshare")
	c := &Cache{Dir: t.TempDir()}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req := Request{Suite: "trixie", Arch: "amd64", Packages: []string{"systemd-sysv"}}
	_, err := c.Get(ctx, req, func(l string) {
		if strings.HasPrefix(l, "I: installing") {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Get = %v, want context.Canceled", err)
	}
	if l := leftovers(t, c.Dir); len(l) != 0 {
		t.Errorf("cancelled build left %v", l)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(mounts, []byte(c.Dir)) {
		t.Errorf("a mount under %s survived the build", c.Dir)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/root")
	for _, p := range procs {
		if r, err := os.Readlink(p); err == nil && strings.HasPrefix(r, c.Dir) {
			t.Errorf("process %s survived the build in %s", filepath.Dir(p), r)
		}
	}
}
