package xen

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/builder/target"
	"github.com/applbuild/applbuild/builder/target/targettest"
	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
	p "github.com/applbuild/applbuild/personalities"
	"github.com/applbuild/applbuild/rootfs"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func plan(t *testing.T, name string, set ...string) *builder.Plan {
	t.Helper()
	return targettest.Plan(t, name, set...)
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	targettest.Golden(t, name, got, *update)
}

// xlcheck builds testdata/xlcheck.c, Xen's own config parser (libxlutil)
// around a main, once per test binary.
func xlcheck(t *testing.T) string {
	t.Helper()
	testenv.Tools(t, "gcc")
	if _, err := os.Stat("/usr/include/libxlutil.h"); err != nil {
		if testenv.Strict() {
			t.Fatal("required by APPLBUILD_REQUIRE=1: libxlutil.h (apt-get install libxen-dev)")
		}
		t.Skip("no libxlutil.h: apt-get install libxen-dev")
	}
	bin := filepath.Join(t.TempDir(), "xlcheck")
	if _, err := run.Output(context.Background(), "gcc", "-Wall", "-Werror", "-o", bin, "testdata/xlcheck.c", "-lxlutil", "-lxenlight"); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestConfig: the xl configs of web-cluster, PVH and PV, as golden files,
// each read back by Xen's own parser.
func TestConfig(t *testing.T) {
	bin := xlcheck(t)
	for _, tt := range []struct {
		typ, loader string
	}{{TypePVH, PVHLoader}, {TypePV, PVLoader}} {
		t.Run(tt.typ, func(t *testing.T) {
			pl := plan(t, "web-cluster", "xen.type="+tt.typ)
			n := &pl.Nodes[0]
			cfg := Config(pl, n, "/srv/xen/n1")
			golden(t, "web-cluster-n1-"+tt.typ+".cfg", cfg)
			file := filepath.Join(t.TempDir(), "n1.cfg")
			if err := os.WriteFile(file, cfg, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := run.Output(context.Background(), bin, file)
			if err != nil {
				t.Fatalf("libxlutil refuses the config: %v", err)
			}
			want := []string{
				"name=n1", "type=" + tt.typ, "kernel=" + tt.loader, "memory=3072", "vcpus=1",
				"disk vdev=xvda2 format=raw rw=1 target=/srv/xen/n1/disk.img",
				"disk vdev=xvda1 format=raw rw=1 target=/srv/xen/n1/swap.img",
				"disk vdev=xvdb1 format=raw rw=1 target=/srv/xen/n1/sdb1.img",
				"disk vdev=xvdb2 format=raw rw=1 target=/srv/xen/n1/sdb2.img",
				"vif mac=" + n.MAC + ", bridge=xenbr0",
			}
			for _, w := range want {
				if !strings.Contains(string(out), w+"\n") {
					t.Errorf("xl reads no %q from the config; it reads:\n%s", w, out)
				}
			}
		})
	}
}

// TestGrubConfig: grub.cfg as a golden file, checked by GRUB's own parser.
func TestGrubConfig(t *testing.T) {
	testenv.Tools(t, "grub-script-check")
	pl := plan(t, "web-cluster")
	// Past the loader (which refuses it): grub.cfg must quote whatever
	// reaches it.
	pl.Branding.Product = "it's $HOME"
	cfg := GrubConfig(pl, &pl.Nodes[0])
	golden(t, "web-cluster-n1-grub.cfg", cfg)
	if !strings.Contains(string(cfg), "root=UUID="+pl.Nodes[0].Disks[0].UUID+" ") {
		t.Errorf("grub.cfg does not boot the root disk's UUID:\n%s", cfg)
	}
	if _, err := (&run.Cmd{Args: []string{"grub-script-check"}, Stdin: strings.NewReader(string(cfg))}).Output(context.Background()); err != nil {
		t.Errorf("grub-script-check: %v", err)
	}
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name  string
		set   []string
		edit  func(*builder.Plan)
		wants []string // substrings of the error; none: no error
	}{
		{name: "web-cluster as shipped"},
		{name: "pv is a valid type", set: []string{"xen.type=pv"}},
		{name: "memory below pvgrub2's need", set: []string{"cluster.memory=128M"},
			wants: []string{"node n1: memory 128M is below the 256M", "raise cluster.memory", "node n3:"}},
		{name: "no bridge", edit: func(pl *builder.Plan) { pl.Network.Bridge = "" }, wants: []string{"network.bridge is empty"}},
		{name: "bridge adds a line", edit: func(pl *builder.Plan) { pl.Network.Bridge = "xenbr0']\nbootloader = '/tmp/evil" },
			wants: []string{`network.bridge "xenbr0']\nbootloader = '/tmp/evil" is not a Linux interface name`}},
		{name: "bridge adds a vif key", edit: func(pl *builder.Plan) { pl.Network.Bridge = "br0,script=/tmp/evil" },
			wants: []string{"is not a Linux interface name"}},
		{name: "VLAN name adds a line", edit: func(pl *builder.Plan) { pl.Nodes[0].VLANs[0].Name = "x\nbootloader='/tmp/evil'" },
			wants: []string{"node n1: VLAN", "control character"}},
		{name: "node address with a quote", edit: func(pl *builder.Plan) { pl.Nodes[2].MAC = "00:16:3e:00:00:01', bridge=evil" },
			wants: []string{"node n3:", "cannot stand in the xl config"}},
		{name: "a hundred PVs", edit: func(pl *builder.Plan) {
			for i := 3; i <= 100; i++ {
				pl.Nodes[1].Disks = append(pl.Nodes[1].Disks, builder.Disk{Name: fmt.Sprintf("pv%d", i), Role: builder.RolePV, Size: builder.Size(p.MiB)})
			}
		}, wants: []string{"node n2: disk sdb100.img: device \"xvdb100\" is not a Xen virtual disk name"}},
		{name: "disk name twice", edit: func(pl *builder.Plan) { pl.Nodes[0].Disks[3].Name = "pv1" }, wants: []string{"node n1: disk name \"pv1\" used twice"}},
		{name: "long brick label", edit: func(pl *builder.Plan) { pl.Nodes[0].VG.LVs[0].Name = "a-very-long-volume-name" },
			wants: []string{"its ext4 label, at most 16 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pl := plan(t, "web-cluster", tt.set...)
			if tt.edit != nil {
				tt.edit(pl)
			}
			err := New(target.Options{}).Verify(pl)
			if len(tt.wants) == 0 {
				if err != nil {
					t.Fatalf("Verify = %v", err)
				}
				return
			}
			var pe *target.PlanError
			if !errors.As(err, &pe) {
				t.Fatalf("Verify = %v, want a PlanError", err)
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Verify = %v\nwant it to say %q", err, w)
				}
			}
		})
	}
}

func kernelImage(magic ...byte) []byte {
	img := make([]byte, 4096)
	img[0x1f1] = 1
	copy(img[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(img[0x206:], 0x20f)
	binary.LittleEndian.PutUint32(img[0x248:], 0x10)
	binary.LittleEndian.PutUint32(img[0x24c:], 256)
	copy(img[2*512+0x10:], magic)
	return img
}

func TestCheckTree(t *testing.T) {
	tests := []struct {
		name    string
		typ     string
		kernel  []byte // nil: no /vmlinuz
		wantErr string
	}{
		{"pvh boots zstd", TypePVH, kernelImage(0x28, 0xb5, 0x2f, 0xfd), ""},
		{"pv boots xz", TypePV, kernelImage(0xfd, '7', 'z', 'X', 'Z', 0), ""},
		{"pv boots gzip", TypePV, kernelImage(0x1f, 0x8b), ""},
		{"pv refuses zstd", TypePV, kernelImage(0x28, 0xb5, 0x2f, 0xfd),
			"pvgrub2 can load only gzip- or xz-compressed kernels; /boot/vmlinuz-6.12.48+deb13-amd64 is zstd: use xen.type pvh"},
		{"pv refuses lz4", TypePV, kernelImage(0x02, 0x21, 0x4c, 0x18), "is lz4: use xen.type pvh"},
		{"no kernel", TypePVH, nil, "the rootfs has no /vmlinuz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := t.TempDir()
			os.MkdirAll(filepath.Join(tree, "boot"), 0o755)
			os.WriteFile(filepath.Join(tree, "boot/initrd.img-6.12.48+deb13-amd64"), []byte("initrd"), 0o644)
			os.Symlink("boot/initrd.img-6.12.48+deb13-amd64", filepath.Join(tree, "initrd.img"))
			if tt.kernel != nil {
				os.WriteFile(filepath.Join(tree, "boot/vmlinuz-6.12.48+deb13-amd64"), tt.kernel, 0o644)
				os.Symlink("boot/vmlinuz-6.12.48+deb13-amd64", filepath.Join(tree, "vmlinuz"))
			}
			pl := plan(t, "web-cluster", "xen.type="+tt.typ)
			err := New(target.Options{}).CheckTree(pl, tree)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckTree = %v", err)
				}
				return
			}
			var pe *target.PlanError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CheckTree = %v\nwant a PlanError saying %q", err, tt.wantErr)
			}
		})
	}
}

// TestCheckTreeStaysInside: an absolute /vmlinuz symlink names the image's
// kernel, not the build host's.
func TestCheckTreeStaysInside(t *testing.T) {
	tree := t.TempDir()
	os.Symlink("/etc/passwd", filepath.Join(tree, "vmlinuz"))
	os.Symlink("/etc/passwd", filepath.Join(tree, "initrd.img"))
	err := New(target.Options{}).CheckTree(plan(t, "web-cluster", "xen.type=pv"), tree)
	// os.Root refuses to leave the tree: the error is that escape, not
	// "not a kernel" from reading the host's /etc/passwd.
	var pe *target.PlanError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "has no /vmlinuz (path escapes from parent)") {
		t.Fatalf("CheckTree = %v, want os.Root's refusal to follow /vmlinuz out of the tree", err)
	}
}

// TestXenDirQuoted: a --xen-dir that would end xl's quoted disk spec is
// refused before any work.
func TestXenDirQuoted(t *testing.T) {
	err := New(target.Options{XenDir: "/srv/xen', 'format=raw, vdev=xvdz, target=/dev/sda"}).Verify(plan(t, "web-cluster"))
	if err == nil || !strings.Contains(err.Error(), "--xen-dir") {
		t.Fatalf("Verify = %v, want --xen-dir refused", err)
	}
	if err := New(target.Options{XenDir: "/srv/xen"}).Verify(plan(t, "web-cluster")); err != nil {
		t.Fatalf("Verify(/srv/xen) = %v", err)
	}
}

// TestRootfsFiles: the initramfs settings are a valid request, the hook is
// shell that sh parses, and it adds Xen's block driver; nothing the kernel
// package owns is overwritten.
func TestRootfsFiles(t *testing.T) {
	x := New(target.Options{})
	files := x.(target.Seeder).RootfsFiles(nil)
	if _, err := (rootfs.Request{Suite: "trixie", Files: files}).Normalize(); err != nil {
		t.Fatal(err)
	}
	byPath := map[string]rootfs.File{}
	for _, f := range files {
		byPath[f.Path] = f
	}
	if c := byPath[InitramfsConf]; !strings.Contains(c.Content, "\nMODULES=list\n") || c.Executable {
		t.Errorf("%s: %+v", InitramfsConf, c)
	}
	h := byPath[InitramfsHook]
	if !h.Executable || !strings.HasPrefix(h.Content, "#!/bin/sh\n") || !strings.Contains(h.Content, "manual_add_modules xen-blkfront ") {
		t.Errorf("%s: %+v", InitramfsHook, h)
	}
	cmd := exec.Command("sh", "-n")
	cmd.Stdin = strings.NewReader(h.Content)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sh -n %s: %v\n%s", InitramfsHook, err, out)
	}
	// prereqs is how mkinitramfs orders hooks: it must print and exit.
	out, err := exec.Command("sh", "-c", h.Content, "hook", "prereqs").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("%s prereqs: %q, %v", InitramfsHook, out, err)
	}
}
