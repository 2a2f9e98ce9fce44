package pipeline

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/builder/disk"
	"github.com/applbuild/applbuild/builder/target"
	"github.com/applbuild/applbuild/builder/target/xen"
	"github.com/applbuild/applbuild/internal/keys"
	"github.com/applbuild/applbuild/internal/outdir"
	"github.com/applbuild/applbuild/internal/progress"
	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
	"github.com/applbuild/applbuild/overlays"
	"github.com/applbuild/applbuild/personalities"
	"github.com/applbuild/applbuild/rootfs"
)

func tinyPlan(t *testing.T, set ...string) (*personalities.Spec, *builder.Plan) {
	t.Helper()
	s, err := personalities.Load("testdata/tiny.yaml", personalities.Options{Set: set})
	if err != nil {
		t.Fatal(err)
	}
	pl, err := builder.New(s)
	if err != nil {
		t.Fatal(err)
	}
	return s, pl
}

// fakeKernel is a bzImage header whose payload starts with magic.
func fakeKernel(magic []byte) []byte {
	img := make([]byte, 8192)
	img[0x1f1] = 3
	copy(img[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(img[0x206:], 0x20f)
	binary.LittleEndian.PutUint32(img[0x248:], 0x100)
	binary.LittleEndian.PutUint32(img[0x24c:], 1024)
	copy(img[4*512+0x100:], magic)
	return img
}

var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// fakeTree is a few files that look like a Debian root to the pipeline:
// passwd, group, a kernel and an initrd behind Debian's symlinks.
func fakeTree(t *testing.T, kernelMagic []byte) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tree")
	files := map[string]string{
		"etc/passwd":                "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		"etc/group":                 "root:x:0:\nnogroup:x:65534:\n",
		"etc/shadow":                "root:*:20000:0:99999:7:::\n",
		"etc/gshadow":               "root:*::\n",
		"etc/hostname":              "build-host\n",
		"usr/bin/true":              strings.Repeat("\x7fELF binary ", 1000),
		"boot/vmlinuz-6.12-test":    string(fakeKernel(kernelMagic)),
		"boot/initrd.img-6.12-test": strings.Repeat("initrd ", 5000),
		"usr/lib/sysusers.d/a.conf": "g adm 4 -\n",
		"usr/share/doc/x/changelog": "x\n",
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, to := range map[string]string{"vmlinuz": "boot/vmlinuz-6.12-test", "initrd.img": "boot/initrd.img-6.12-test", "bin": "usr/bin"} {
		if err := os.Symlink(to, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// fakeOverlay exercises what the real overlay does to a tree: a user
// declared in sysusers.d that owns a directory and a file, a symlink, a
// file replacing one of the rootfs's, a mode that the umask would trim.
func fakeOverlay(pl *builder.Plan, n *builder.Node) ([]overlays.File, error) {
	return []overlays.File{
		{Path: "/etc/hostname", Mode: 0o644, Data: []byte(n.Name + "\n"), Generator: "test"},
		{Path: "/usr/lib/sysusers.d/applbuild-test.conf", Mode: 0o644, Data: []byte("u svc - \"test service\" /var/lib/svc\n"), Generator: "test"},
		{Path: "/var/lib/svc", Mode: fs.ModeDir | 0o750, Owner: "svc:svc", Generator: "test"},
		{Path: "/var/lib/svc/state", Mode: 0o600, Owner: "svc", Data: []byte("node " + n.Name + "\n"), Generator: "test"},
		{Path: "/etc/motd", Mode: fs.ModeSymlink | 0o777, Link: "/usr/share/doc/x/changelog", Generator: "test"},
		{Path: "/usr/local/bin/hook", Mode: 0o755, Data: []byte("#!/bin/sh\n"), Generator: "test"},
	}, nil
}

func fakeOptions(t *testing.T, tree, out string) Options {
	s, pl := tinyPlan(t)
	// A fake tree fits a root below the spec's minimum: the test is about
	// the bytes, not the sizes.
	pl.Nodes[0].Disks[0].Size = 64 * personalities.MiB
	ring, err := keys.New([]byte("applbuild pipeline test secret, 32+ bytes"))
	if err != nil {
		t.Fatal(err)
	}
	return Options{
		Ring: ring,
		Spec: s, Plan: pl, Target: xen.New(target.Options{XenDir: "/srv/xen"}),
		Out: out, Render: fakeOverlay, Tree: tree, Version: "test",
	}
}

func readManifest(t *testing.T, dir string) *Manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

// entries lists dir, without the marker that makes it applbuild's.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		if de.Name() != outdir.Marker {
			names = append(names, de.Name())
		}
	}
	return names
}

// onlyOutput fails unless out holds out/tiny/xen and nothing else: no
// temporary output, no work tree, no lock.
func onlyOutput(t *testing.T, out string) {
	t.Helper()
	if names := entries(t, filepath.Join(out, "tiny")); len(names) != 1 || names[0] != "xen" {
		t.Errorf("out/tiny holds %v, want only xen", names)
	}
}

// TestBuildReproducible builds the images of a tiny fake tree twice, into
// two output directories, and wants the same bytes: no clock, no random
// value, no path of the build machine leaks into an artifact.
func TestBuildReproducible(t *testing.T) {
	testenv.Tools(t, "mke2fs", "debugfs", "e2fsck", "cp", "systemd-sysusers")
	tree := fakeTree(t, zstdMagic)
	var ms []*Manifest
	for _, out := range []string{t.TempDir(), t.TempDir()} {
		res, err := Build(context.Background(), fakeOptions(t, tree, out))
		if err != nil {
			t.Fatal(err)
		}
		onlyOutput(t, out)
		ms = append(ms, readManifest(t, res.Dir))
		if ms[len(ms)-1].Files == nil {
			t.Fatal("empty manifest")
		}
		img := filepath.Join(res.Dir, "n1", "disk.img")
		if _, err := run.Output(context.Background(), "e2fsck", "-fn", img); err != nil {
			t.Errorf("e2fsck: %v", err)
		}
		checkImage(t, img)
	}
	a, b := ms[0], ms[1]
	if len(a.Files) != len(b.Files) {
		t.Fatalf("file lists differ: %v vs %v", a.Files, b.Files)
	}
	want := []string{"n1/disk.img", "n1/n1.cfg", "n1/sdb1.img", "n1/swap.img"}
	for i, f := range a.Files {
		if i >= len(want) || f.Path != want[i] {
			t.Errorf("manifest file %d is %s, want %v", i, f.Path, want)
		}
		if f != b.Files[i] {
			t.Errorf("%s differs between two builds: %+v vs %+v", f.Path, f, b.Files[i])
		}
		if f.Allocated > f.Size || (strings.HasSuffix(f.Path, ".img") && f.Allocated >= f.Size) {
			t.Errorf("%s: %d of %d bytes hold data: not sparse", f.Path, f.Allocated, f.Size)
		}
	}
	if fp := fakeOptions(t, "", "").Ring.Fingerprint(); a.Inputs.SecretFingerprint != fp {
		t.Errorf("manifest names secret %q, want the fingerprint %s", a.Inputs.SecretFingerprint, fp)
	}
	if a.Inputs.PlanSHA256 == "" || a.Inputs.SpecSHA256 == "" || a.Inputs != b.Inputs {
		t.Errorf("inputs: %+v vs %+v", a.Inputs, b.Inputs)
	}
}

// checkImage reads the root image back with debugfs: the overlay is in it,
// owners resolved from the sysusers.d file the overlay added, and the
// shared tree's own files are untouched.
func checkImage(t *testing.T, img string) {
	t.Helper()
	cat := func(p string) string {
		out, err := run.Output(context.Background(), "debugfs", "-R", "cat "+p, img)
		if err != nil {
			t.Fatalf("debugfs cat %s: %v", p, err)
		}
		return string(out)
	}
	if got := cat("/etc/hostname"); got != "n1\n" {
		t.Errorf("/etc/hostname = %q", got)
	}
	if got := cat("/boot/grub/grub.cfg"); !strings.Contains(got, "linux /vmlinuz root=UUID=") {
		t.Errorf("grub.cfg = %q", got)
	}
	// debugfs cat prints nothing for a missing file too: stat it.
	if st, err := run.Output(context.Background(), "debugfs", "-R", "stat /etc/machine-id", img); err != nil ||
		!strings.Contains(string(st), "Type: regular") || !regexp.MustCompile(`\bSize: 0\b`).Match(st) {
		t.Errorf("/etc/machine-id is not an empty regular file: %v\n%s", err, st)
	}
	if !strings.Contains(cat("/etc/passwd"), "\nsvc:x:") {
		t.Errorf("sysusers did not create svc")
	}
	stat, err := run.Output(context.Background(), "debugfs", "-R", "stat /var/lib/svc/state", img)
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 && strings.Contains(string(stat), "User:     0") {
		t.Errorf("/var/lib/svc/state still owned by root:\n%s", stat)
	}
	if !strings.Contains(string(stat), "Mode:  0600") {
		t.Errorf("/var/lib/svc/state mode:\n%s", stat)
	}
}

// TestBuildFailureKeepsPrevious: a build that fails half-way (a root disk
// too small for the tree) says what to change, and leaves the previous
// output as it was with nothing else behind.
func TestBuildFailureKeepsPrevious(t *testing.T) {
	testenv.Tools(t, "mke2fs", "debugfs", "cp", "systemd-sysusers")
	tree := fakeTree(t, zstdMagic)
	big := make([]byte, 12<<20)
	for i := range big {
		big[i] = byte(i*7 + 1)
	}
	if err := os.WriteFile(filepath.Join(tree, "usr/bin/big"), big, 0o755); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	res, err := Build(context.Background(), fakeOptions(t, tree, out))
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(res.Dir, ManifestName))

	o := fakeOptions(t, tree, out)
	o.Plan.Nodes[0].Disks[0].Size = 10 * personalities.MiB
	_, err = Build(context.Background(), o)
	if !errors.Is(err, disk.ErrNoSpace) {
		t.Fatalf("Build with a 10M root = %v, want a no-space error", err)
	}
	msg := err.Error()
	for _, want := range []string{"root filesystem needs at least", "disk is 10", "raise disks.root"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	after, _ := os.ReadFile(filepath.Join(res.Dir, ManifestName))
	if string(before) != string(after) || len(after) == 0 {
		t.Error("the previous output changed")
	}
	onlyOutput(t, out)
}

// cancelling wraps a target and cancels the build when it starts writing.
type cancelling struct {
	target.Target
	cancel context.CancelFunc
}

func (c cancelling) Write(ctx context.Context, in target.Input) error {
	c.cancel()
	return c.Target.Write(ctx, in)
}

// TestBuildCancelled is Ctrl-C in the middle of a node: nothing left.
func TestBuildCancelled(t *testing.T) {
	testenv.Tools(t, "mke2fs", "cp", "systemd-sysusers")
	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := fakeOptions(t, fakeTree(t, zstdMagic), out)
	o.Target = cancelling{o.Target, cancel}
	if _, err := Build(ctx, o); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Build = %v, want context.Canceled", err)
	}
	if des := entries(t, filepath.Join(out, "tiny")); len(des) != 0 {
		t.Errorf("a cancelled first build left %v", des)
	}
}

// TestBuildVerifiesFirst: a plan the target refuses fails before any
// directory is made; a PV plan with a zstd kernel fails before any node.
func TestBuildVerifiesFirst(t *testing.T) {
	testenv.Tools(t, "cp", "systemd-sysusers", "mke2fs")
	out := t.TempDir()
	o := fakeOptions(t, fakeTree(t, zstdMagic), out)
	o.Plan.Nodes[0].Memory = 96 * personalities.MiB
	_, err := Build(context.Background(), o)
	var pe *target.PlanError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "raise cluster.memory") {
		t.Fatalf("Build with 96M = %v, want a PlanError about memory", err)
	}
	if des, _ := os.ReadDir(out); len(des) != 0 {
		t.Errorf("a refused plan left %v", des)
	}

	o = fakeOptions(t, fakeTree(t, zstdMagic), out)
	o.Plan.Xen.Type = xen.TypePV
	_, err = Build(context.Background(), o)
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "pvgrub2 can load only gzip- or xz-compressed kernels; /boot/vmlinuz-6.12-test is zstd: use xen.type pvh") {
		t.Fatalf("PV build with a zstd kernel = %v", err)
	}
	if des := entries(t, filepath.Join(out, "tiny")); len(des) != 0 {
		t.Errorf("a refused PV build left %v", des)
	}
}

// TestBuildMissingToolFirst: a program the build needs is missing (mke2fs
// here): the build stops in verify, before the rootfs or any directory,
// and names the package to install.
func TestBuildMissingToolFirst(t *testing.T) {
	testenv.Tools(t, "cp", "systemd-sysusers")
	bin := t.TempDir()
	for _, p := range []string{"cp", "systemd-sysusers", "tar"} {
		if path, err := run.Look(p); err == nil {
			if err := os.Symlink(path, filepath.Join(bin, p)); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Setenv("PATH", bin)
	out := t.TempDir()
	o := fakeOptions(t, fakeTree(t, zstdMagic), out)
	var log strings.Builder
	o.Progress = progress.NewPlain(&log)
	_, err := Build(context.Background(), o)
	if !errors.Is(err, run.ErrMissing) || !strings.Contains(err.Error(), "mke2fs: not found in PATH (install it: apt-get install e2fsprogs)") {
		t.Fatalf("Build without mke2fs = %v, want the missing program and its package", err)
	}
	if !strings.Contains(log.String(), "[verify] failed") || strings.Contains(log.String(), "[extract]") {
		t.Errorf("the missing program was found late:\n%s", log.String())
	}
	if des, _ := os.ReadDir(out); len(des) != 0 {
		t.Errorf("a build without mke2fs left %v", des)
	}
}

// mark makes dir look like applbuild made it.
func mark(t *testing.T, dir string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, outdir.Marker), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// failingCache fails the test if the build reaches the rootfs.
type failingCache struct{ t *testing.T }

func (c failingCache) Get(context.Context, rootfs.Request, func(string)) (*rootfs.Entry, error) {
	c.t.Error("the build reached the rootfs")
	return nil, errors.New("no rootfs in this test")
}

// TestBuildRefusesForeignOut: an --out, --out/<personality> or output dir
// that applbuild did not make is refused before any work (the rootfs can
// take minutes), and left exactly as it was.
func TestBuildRefusesForeignOut(t *testing.T) {
	for _, c := range []struct {
		name, file, reason string
		ours               []string // the directories above the refused one
	}{
		{"out holds a project", "go.mod", "holds 1 entries and is not an applbuild output", nil},
		{"personality dir is someone's", "tiny/notes.txt", "holds 1 entries", []string{"."}},
		{"target dir is a file", "tiny/xen", "is a file", []string{".", "tiny"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := t.TempDir()
			p := filepath.Join(out, c.file)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("mine\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, dir := range c.ours {
				mark(t, filepath.Join(out, dir))
			}
			o := fakeOptions(t, "", out)
			o.Tree, o.Cache = "", failingCache{t}
			_, err := Build(context.Background(), o)
			if !errors.Is(err, outdir.ErrRefused) || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("Build = %v, want refused: %s", err, c.reason)
			}
			if b, err := os.ReadFile(p); err != nil || string(b) != "mine\n" {
				t.Errorf("%s changed: %q %v", c.file, b, err)
			}
		})
	}
}

// TestBuildPrivateAndCleansStale: the artifacts hold the nodes' private
// keys, so they are the user's alone (or a chosen group's); and what a
// SIGKILLed build left beside the output is removed by the next one.
func TestBuildPrivateAndCleansStale(t *testing.T) {
	testenv.Tools(t, "mke2fs", "cp", "systemd-sysusers")
	g, err := user.LookupGroupId(strconv.Itoa(os.Getgid()))
	if err != nil {
		t.Skipf("no name for gid %d: %v", os.Getgid(), err)
	}
	grp, err := outdir.GroupAccess(g.Name)
	if err != nil {
		t.Fatal(err)
	}
	tree := fakeTree(t, zstdMagic)
	for _, c := range []struct {
		access    outdir.Access
		dir, file fs.FileMode
	}{{outdir.Access{}, 0o700, 0o600}, {grp, 0o750, 0o640}} {
		out := t.TempDir()
		// A build killed by SIGKILL: its work tree and temp output stay.
		for _, stale := range []string{".xen.work-1234/rootfs/etc", ".xen.tmp-5678/n1"} {
			if err := os.MkdirAll(filepath.Join(out, "tiny", stale), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		mark(t, out)
		mark(t, filepath.Join(out, "tiny"))
		o := fakeOptions(t, tree, out)
		o.Access = c.access
		res, err := Build(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		onlyOutput(t, out)
		n := 0
		err = filepath.WalkDir(res.Dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			want := c.file
			if d.IsDir() {
				want = c.dir
			}
			if fi.Mode().Perm() != want {
				t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
			}
			if gid := int(fi.Sys().(*syscall.Stat_t).Gid); c.access.Group != "" && gid != c.access.GID {
				t.Errorf("%s: gid %d, want %d", p, gid, c.access.GID)
			}
			n++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n < 6 { // xen, marker, manifest, n1, its images and cfg
			t.Errorf("walked only %d entries of %s", n, res.Dir)
		}
	}
}

// TestNodeFilesDirConflict: the overlay and the target may share a
// directory only with the same mode and owner; otherwise the build stops
// naming both, instead of the last one silently winning.
func TestNodeFilesDirConflict(t *testing.T) {
	_, pl := tinyPlan(t)
	x := xen.New(target.Options{})
	for _, c := range []struct {
		dir  overlays.File
		want string
	}{
		{overlays.File{Path: "/boot/grub", Mode: fs.ModeDir | 0o755, Generator: "test"}, ""},
		{overlays.File{Path: "/boot/grub", Mode: fs.ModeDir | 0o700, Generator: "test"}, "directory /boot/grub claimed by test as -rwx------ root:root and by target xen as -rwxr-xr-x root:root"},
		{overlays.File{Path: "/boot/grub", Mode: fs.ModeDir | 0o755, Owner: "svc:svc", Generator: "test"}, "claimed by test as -rwxr-xr-x svc:svc"},
	} {
		render := func(*builder.Plan, *builder.Node) ([]overlays.File, error) { return []overlays.File{c.dir}, nil }
		_, err := nodeFiles(pl, &pl.Nodes[0], x, render)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%v: nodeFiles = %v, want %q", c.dir.Mode, err, c.want)
		}
	}
}
