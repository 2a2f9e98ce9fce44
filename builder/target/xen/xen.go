// Package xen is the Xen target: per node, one sparse image file per disk
// of the plan and an xl domain config that boots it with pvgrub2 from the
// dom0 (grub-xen-host), reading /boot/grub/grub.cfg from the root disk.
//
// PVH is the default because Debian trixie's kernel is zstd-compressed and
// pvgrub2's PV loader reads only gzip and xz (FACTS.md); a PV plan is
// refused, with the reason, unless the rootfs kernel is one it can load.
package xen

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/builder/kernel"
	"github.com/applbuild/applbuild/builder/target"
	"github.com/applbuild/applbuild/overlays"
	p "github.com/applbuild/applbuild/personalities"
	"github.com/applbuild/applbuild/rootfs"
)

// Name is the target's name on the command line and in output paths.
const Name = "xen"

// MinMemory is the least a node may have. pvgrub2 holds the kernel and
// the initrd (about 12 and 40 MB for trixie's generic kernel) in guest
// memory, and the kernel then unpacks the initrd beside them: 96 MiB was
// measured to fail in pvgrub2 and 512 MiB to boot; 256 MiB (the seed's
// size) leaves that working set twice over.
const MinMemory = 256 * p.MiB

// KernelPackage is the kernel the rootfs must have: the generic one, as
// the cloud kernel is lz4-compressed and has fewer Xen drivers built in.
const KernelPackage = "linux-image-amd64"

// Boot loaders on the dom0, from Debian's grub-xen-host.
const (
	PVHLoader = "/usr/lib/grub-xen/grub-i386-xen_pvh.bin"
	PVLoader  = "/usr/lib/grub-xen/grub-x86_64-xen.bin"
)

// Boot types (plan.Xen.Type).
const (
	TypePVH = "pvh"
	TypePV  = "pv"
)

// Xen is the target.
type Xen struct{ opts target.Options }

// New makes the Xen target.
func New(opts target.Options) target.Target { return &Xen{opts: opts} }

// Name implements target.Target.
func (x *Xen) Name() string { return Name }

// Packages implements target.Target: only what the guest kernel needs, as
// the boot loader lives on the dom0.
func (x *Xen) Packages(*builder.Plan) []string { return []string{KernelPackage} }

// Initramfs settings: a Xen guest's initrd holds only the drivers its root
// needs (Xen's block frontend, and virtio's for the test drives under
// QEMU) and ext4, not every storage driver of MODULES=most. pvgrub2 reads
// the initrd through Xen's console-speed block protocol, so its size is
// boot time: trixie's is 39 MB as "most", and loading it with the kernel
// took ~750 s under a nested Xen (FACTS). MODULES=dep would look at the
// build host's hardware instead of the guest's, so the list is explicit.
// udev in the initramfs loads what the machine has; the kernel asks for
// ext4 when it mounts the root.
var initramfsModules = []string{"xen-blkfront", "virtio_pci", "virtio_blk", "ext4", "crc32c_generic"}

// Paths of the initramfs settings in the rootfs (owned by no package).
const (
	InitramfsConf = "/etc/initramfs-tools/conf.d/applbuild-xen.conf"
	InitramfsHook = "/etc/initramfs-tools/hooks/applbuild-xen"
)

// RootfsFiles implements target.Seeder: the initramfs settings above,
// there before the kernel's postinst makes the initrd, and kept for every
// initrd the image makes later (a kernel update on the node).
func (x *Xen) RootfsFiles(*builder.Plan) []rootfs.File {
	return []rootfs.File{
		{Path: InitramfsConf, Content: "# applbuild's xen target: only the modules " + InitramfsHook + " adds.\nMODULES=list\n"},
		{Path: InitramfsHook, Executable: true, Content: `#!/bin/sh
# applbuild's xen target: the drivers a Xen guest's root needs (and
# virtio's, for a test drive under QEMU); udev loads the ones present.
PREREQ=""
prereqs() { echo "$PREREQ"; }
case "$1" in prereqs) prereqs; exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
manual_add_modules ` + strings.Join(initramfsModules, " ") + "\n"},
	}
}

// Tools implements target.Tooled: the file systems are made by mke2fs;
// LVM2, swap and the configs are written in Go.
func (x *Xen) Tools(*builder.Plan) []string { return []string{"mke2fs"} }

// Layout is where the Xen target puts a node's disks: each its own image
// file, a whole virtual disk without a partition table, under the names
// and devices the seed's xen-tools gave them (disk.img as xvda2, swap.img
// as xvda1, the PVs sdb1.img, sdb2.img as xvdb1, xvdb2).
func Layout(n *builder.Node) target.Layout {
	var l target.Layout
	pv := 0
	for _, d := range n.Disks {
		var file, dev string
		switch d.Role {
		case builder.RoleRoot:
			file, dev = "disk.img", "xvda2"
		case builder.RoleSwap:
			file, dev = "swap.img", "xvda1"
		default:
			pv++
			file, dev = fmt.Sprintf("sdb%d.img", pv), fmt.Sprintf("xvdb%d", pv)
		}
		l.Images = append(l.Images, target.Image{File: file, Size: int64(d.Size), Piece: d.Name, Device: dev})
	}
	return l
}

var vdevRE = regexp.MustCompile(`^xvd[a-z]{1,2}[0-9]{0,2}$`)

// ifnameRE is a Linux interface name: at most 15 bytes, no blank, slash,
// quote or comma (which would end the vif spec or xl's string).
var ifnameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)

// xlPathRE is what an image path may hold inside the disk spec's
// single-quoted xl string: no quote, backslash, comma or control char.
var xlPathRE = regexp.MustCompile(`^/[A-Za-z0-9_./+@:-]*$`)

// oneLine reports whether s can stand in a comment line of the xl config.
func oneLine(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// Verify implements target.Target.
func (x *Xen) Verify(pl *builder.Plan) error {
	var errs []error
	bad := func(node, format string, args ...any) {
		errs = append(errs, &target.PlanError{Target: Name, Node: node, Msg: fmt.Sprintf(format, args...)})
	}
	if pl.Xen.Type != TypePVH && pl.Xen.Type != TypePV {
		bad("", "xen.type %q: want pvh or pv", pl.Xen.Type)
	}
	// The xl config is run by root on the dom0: nothing from the plan may
	// end its strings or add a line (a bootloader= or a second vif).
	if pl.Network.Bridge == "" {
		bad("", "network.bridge is empty: the vif needs a dom0 bridge")
	} else if !ifnameRE.MatchString(pl.Network.Bridge) {
		bad("", "network.bridge %q is not a Linux interface name (at most 15 of A-Z a-z 0-9 _ . -)", pl.Network.Bridge)
	}
	if x.opts.XenDir != "" && !xlPathRE.MatchString(x.opts.XenDir) {
		bad("", "--xen-dir %q: want an absolute path of A-Z a-z 0-9 _ . / + @ : - (it stands in xl's quoted disk spec)", x.opts.XenDir)
	}
	if !oneLine(pl.Personality) {
		bad("", "personality name %q holds a control character", pl.Personality)
	}
	for i := range pl.Nodes {
		n := &pl.Nodes[i]
		if n.Memory < MinMemory {
			bad(n.Name, "memory %s is below the %s pvgrub2 needs to load the kernel and initrd (96M was measured to fail): raise cluster.memory",
				n.Memory, p.Size(MinMemory))
		}
		if n.VCPUs < 1 {
			bad(n.Name, "vcpus %d: want at least 1", n.VCPUs)
		}
		if n.MAC == "" {
			bad(n.Name, "no MAC address")
		}
		for _, v := range []string{n.Name, n.FQDN, n.Address, n.MAC} {
			if !oneLine(v) || strings.ContainsAny(v, `"',\ `) {
				bad(n.Name, "%q cannot stand in the xl config (quote, comma, blank or control character)", v)
			}
		}
		for _, v := range n.VLANs {
			if !oneLine(v.Name + v.Interface) {
				bad(n.Name, "VLAN %q holds a control character", v.Name)
			}
		}
		roots, names := 0, map[string]bool{}
		for _, d := range n.Disks {
			if d.Role == builder.RoleRoot {
				roots++
			}
			if names[d.Name] {
				bad(n.Name, "disk name %q used twice", d.Name)
			}
			names[d.Name] = true
		}
		for _, im := range Layout(n).Images {
			if !vdevRE.MatchString(im.Device) {
				bad(n.Name, "disk %s: device %q is not a Xen virtual disk name (xvda2, xvdb1, ...): at most 99 PVs", im.File, im.Device)
			}
		}
		if roots != 1 {
			bad(n.Name, "%d root disks, want 1", roots)
		}
		if n.VG != nil {
			for _, lv := range n.VG.LVs {
				if lv.Purpose == builder.LVBrick && len(lv.Name) > 16 {
					bad(n.Name, "brick LV %q: its name is its ext4 label, at most 16 bytes: shorten the volume name", lv.Name)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// CheckTree implements target.Target: grub.cfg boots /vmlinuz and
// /initrd.img, and a PV guest needs a kernel pvgrub2 can decompress.
func (x *Xen) CheckTree(pl *builder.Plan, tree string) error {
	root, err := os.OpenRoot(tree)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, name := range []string{"vmlinuz", "initrd.img"} {
		if _, err := root.Stat(name); err != nil {
			return &target.PlanError{Target: Name, Msg: fmt.Sprintf(
				"the rootfs has no /%s (%v): it must hold a kernel (%s) with its initrd (initramfs-tools)", name, unwrapPath(err), KernelPackage)}
		}
	}
	if pl.Xen.Type != TypePV {
		return nil
	}
	real := "/vmlinuz"
	if l, err := root.Readlink("vmlinuz"); err == nil {
		real = path.Clean(path.Join("/", l))
	}
	f, err := root.Open("vmlinuz")
	if err != nil {
		return err
	}
	defer f.Close()
	c, err := kernel.Detect(f)
	if err != nil {
		return fmt.Errorf("%s: %w", real, err)
	}
	if !c.PVGrubLoads() {
		return &target.PlanError{Target: Name, Msg: fmt.Sprintf(
			"pvgrub2 can load only gzip- or xz-compressed kernels; %s is %s: use xen.type pvh", real, c)}
	}
	return nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Files implements target.Target.
func (x *Xen) Files(pl *builder.Plan, n *builder.Node) ([]overlays.File, error) {
	return []overlays.File{
		{Path: "/boot/grub", Mode: fs.ModeDir | 0o755},
		{Path: "/boot/grub/grub.cfg", Mode: 0o644, Data: GrubConfig(pl, n)},
	}, nil
}

// Write implements target.Target: the node's disk images and its xl config.
func (x *Xen) Write(ctx context.Context, in target.Input) error {
	total := target.LayoutSteps(in.Node, Layout(in.Node)) + 1
	disks := in
	disks.Step = func(done, _ int, what string) { in.Step(done, total, what) }
	if err := target.WriteLayout(ctx, disks, Layout(in.Node), nil); err != nil {
		return err
	}
	in.Step(total, total, "xl config "+in.Node.Name+".cfg")
	dir := in.Final
	if x.opts.XenDir != "" {
		dir = filepath.Join(x.opts.XenDir, in.Node.Name)
	}
	cfg := Config(in.Plan, in.Node, dir)
	return os.WriteFile(filepath.Join(in.Dir, in.Node.Name+".cfg"), cfg, 0o644)
}
