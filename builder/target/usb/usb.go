// Package usb is the USB/CF stick target: per node one GPT disk image that
// boots by BIOS and UEFI (Secure Boot too) like the raw target, with a root
// that is never written, for sticks that wear out and appliances whose
// power gets pulled:
//
//	1 bios   BIOS boot partition (core.img)
//	2 esp    EFI System Partition: Debian's signed shim and GRUB
//	3 live   ext4, mounted read-only: /live/vmlinuz, /live/initrd.img and
//	         /live/filesystem.squashfs, the whole root tree (mksquashfs)
//	4...     the plan's LVM2 PVs, when it has any
//	last     data: ext4 labelled "persistence", where every write goes
//
// Debian's live-boot (in the initramfs) mounts the squashfs under an
// overlay whose upper layer is on the data partition ("/ union" in its
// persistence.conf): the appliance changes its files as usual, the root
// image stays as built, and a power cut at any moment leaves a bootable
// stick whose data filesystem recovers by its journal. On the first boot
// the data partition and its filesystem grow to the end of the stick.
// The journal lives in memory (Storage=volatile), /tmp is a tmpfs and the
// data filesystem is mounted noatime: nothing writes the flash for logs.
//
// The image is the smallest stick size that holds it, or --size; the
// outputs are <node>.img.xz (parallel xz), <node>.img.bmap (bmaptool's
// format 2.0) and SHA256SUMS, ready for applbuild flash or bmaptool copy.
package usb

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/builder/compress"
	"github.com/applbuild/applbuild/builder/disk"
	"github.com/applbuild/applbuild/builder/target"
	"github.com/applbuild/applbuild/builder/target/raw"
	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/overlays"
	p "github.com/applbuild/applbuild/personalities"
)

// Name is the target's name on the command line and in output paths.
const Name = "usb"

// Pieces of the target besides the raw target's boot pieces.
const (
	PieceLive = "live"
	PieceRoot = "root" // the plan's root disk: the live partition
	PieceData = "data"
)

// DataLabel is the data filesystem's label: live-boot looks for it.
const DataLabel = "persistence"

// TypeData is the data partition's type GUID: its own, so that nothing
// (systemd's gpt-auto generator, a repart definition) takes it for a
// partition it knows.
const TypeData = "9e1d3a40-5c6b-4f27-8a0e-7d2c4b6f1a35"

// TypeLive is the live partition's: a plain Linux filesystem.
const TypeLive = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"

const align = target.Align

// MinData is the data partition of an image that fills its stick to the
// last MiB anyway: the first boot grows it to the end of a larger one.
const MinData = 256 << 20

// Sticks are the sizes flash media are sold as (decimal gigabytes); a
// stick labelled N GB holds at least 95% of N×10⁹ bytes.
var Sticks = []int64{1, 2, 4, 8, 16, 32, 64, 128, 256}

// StickBytes is what a stick sold as gb GB surely holds, in whole MiB.
func StickBytes(gb int64) int64 { return gb * 1e9 * 95 / 100 / align * align }

// Packages: the raw target's kernel and boot loaders, live-boot for the
// squashfs root under its overlay, fdisk (sfdisk) to grow the data
// partition.
var Packages = append(append([]string{}, raw.Packages...), "live-boot", "fdisk")

// USB is the target.
type USB struct{ opts target.Options }

// New makes the usb target.
func New(opts target.Options) target.Target { return &USB{opts: opts} }

// Name implements target.Target.
func (u *USB) Name() string { return Name }

// Packages implements target.Target.
func (u *USB) Packages(*builder.Plan) []string { return Packages }

// Tools implements target.Tooled.
func (u *USB) Tools(*builder.Plan) []string {
	return []string{"mke2fs", "mkfs.vfat", "mmd", "mcopy", "mksquashfs", "xz"}
}

// Adjust implements target.Adjuster: on a stick the root is the squashfs
// (live-boot mounts it, not fstab) and there is no swap (it would wear the
// flash out).
func (u *USB) Adjust(pl *builder.Plan) {
	for i := range pl.Nodes {
		n := &pl.Nodes[i]
		var disks []builder.Disk
		for _, d := range n.Disks {
			switch d.Role {
			case builder.RoleSwap:
				continue
			case builder.RoleRoot:
				d.FS = "squashfs"
			}
			disks = append(disks, d)
		}
		n.Disks = disks
		var mounts []builder.Mount
		for _, m := range n.Mounts {
			if m.Target == "/" || m.Type == "swap" {
				continue
			}
			mounts = append(mounts, m)
		}
		n.Mounts = mounts
	}
}

// Verify implements target.Target.
func (u *USB) Verify(pl *builder.Plan) error {
	if u.opts.Size < 0 || u.opts.Size%align != 0 {
		return &target.PlanError{Target: Name, Msg: fmt.Sprintf("--size %d: want whole MiB", u.opts.Size)}
	}
	for _, n := range pl.Nodes {
		for _, d := range n.Disks {
			if d.Size%align != 0 {
				return &target.PlanError{Target: Name, Node: n.Name, Msg: fmt.Sprintf("disk %s: size %s is not whole MiB", d.Name, d.Size)}
			}
		}
	}
	return nil
}

// CheckTree implements target.Target.
func (u *USB) CheckTree(pl *builder.Plan, tree string) error {
	if err := raw.CheckBootLoaders(Name, tree); err != nil {
		return err
	}
	for _, f := range []string{"usr/share/initramfs-tools/scripts/live", "usr/sbin/sfdisk", "usr/sbin/resize2fs"} {
		if _, err := os.Stat(filepath.Join(tree, f)); err != nil {
			return &target.PlanError{Target: Name, Msg: fmt.Sprintf("the rootfs has no /%s: it must hold %s", f, strings.Join(Packages, ", "))}
		}
	}
	return nil
}

// growScript grows the data partition to the end of its disk and its
// filesystem to the partition, on every boot (a no-op once grown): the
// backup GPT moves to the disk's end, the partition ends there, the
// kernel learns the new size of the mounted partition (partx, BLKPG), and
// resize2fs grows the mounted ext4.
const growScript = `#!/bin/bash
# /usr/lib/applbuild/grow-data: generated by applbuild (usb target).
set -euo pipefail
dev=$(readlink -f /dev/disk/by-label/` + DataLabel + `)
name=${dev##*/}
disk=/dev/$(lsblk -no PKNAME "$dev")
part=$(cat "/sys/class/block/$name/partition")
sfdisk --relocate gpt-bak-std "$disk"
if echo ', +' | sfdisk --no-reread --no-tell-kernel -N "$part" "$disk"; then
	partx -u -n "$part" "$disk"
fi
resize2fs "$dev"
echo "applbuild: data partition $dev: $(lsblk -bno SIZE "$dev") bytes"
`

const growUnit = `# Generated by applbuild (usb target).
[Unit]
Description=applbuild: grow the data partition to the end of the stick
DefaultDependencies=no
After=local-fs.target
Before=applbuild-firstboot.service

[Service]
Type=oneshot
ExecStart=/usr/lib/applbuild/grow-data

[Install]
WantedBy=multi-user.target
`

// Files implements target.Target: the data partition's growth, and a
// journal that does not write the flash.
func (u *USB) Files(pl *builder.Plan, n *builder.Node) ([]overlays.File, error) {
	return []overlays.File{
		{Path: "/usr/lib/applbuild/grow-data", Mode: 0o755, Data: []byte(growScript)},
		{Path: "/etc/systemd/system/applbuild-grow-data.service", Mode: 0o644, Data: []byte(growUnit)},
		{Path: "/etc/systemd/system/multi-user.target.wants/applbuild-grow-data.service", Mode: fs.ModeSymlink | 0o777,
			Link: "/etc/systemd/system/applbuild-grow-data.service"},
		{Path: "/etc/systemd/journald.conf.d", Mode: fs.ModeDir | 0o755},
		{Path: "/etc/systemd/journald.conf.d/applbuild-flash.conf", Mode: 0o644, Data: []byte(
			"# Generated by applbuild (usb target): the journal stays in memory, so logging\n# never wears the flash; it is gone after a reboot.\n[Journal]\nStorage=volatile\nRuntimeMaxUse=32M\n")},
	}, nil
}

// Layout is where the node's pieces go, for a live partition of liveSize
// bytes on a disk of size bytes (0: the smallest stick that holds it).
func Layout(pl *builder.Plan, n *builder.Node, liveSize, size int64) (target.Layout, error) {
	rl := raw.Layout(pl, n)
	tbl := target.NewGPT(rl.Images[0].Table.GUID)
	add := func(name, typ, piece string, size int64) {
		tbl.Add(name, typ, pl.UUID(n.Name+"/part/"+piece), piece, size)
	}
	for _, pt := range rl.Images[0].Table.Partitions[:2] { // bios, esp
		add(pt.Name, pt.Type, pt.Piece, pt.Size)
	}
	// The plan's root disk is the live partition: its ext4 holds the root
	// tree as a squashfs.
	add(PieceLive, TypeLive, PieceRoot, liveSize)
	for _, d := range n.Disks {
		if d.Role == builder.RolePV {
			add(d.Name, raw.TypeLVM, d.Name, int64(d.Size))
		}
	}
	at := tbl.End()
	need := at + MinData + align
	if size == 0 {
		for _, gb := range Sticks {
			if StickBytes(gb) >= need {
				size = StickBytes(gb)
				break
			}
		}
		if size == 0 {
			return target.Layout{}, fmt.Errorf("%s needs %s: more than the largest stick (%d GB)", n.Name, p.Size(need), Sticks[len(Sticks)-1])
		}
	} else if size < need {
		return target.Layout{}, &target.PlanError{Target: Name, Node: n.Name, Msg: fmt.Sprintf(
			"the image needs %s and does not fit --size %s: %s short (the root squashfs is %s)",
			p.Size(need), p.Size(size), p.Size((need-size+align-1)/align*align), p.Size(liveSize))}
	}
	add(DataLabel, TypeData, PieceData, size-at-align)
	return target.Layout{Images: []target.Image{{File: n.Name + ".img", Size: size, Table: tbl}}}, nil
}

// GrubConfig is the live partition's /boot/grub/grub.cfg: the kernel and
// initramfs of the live directory, live-boot with persistence.
func GrubConfig(pl *builder.Plan, n *builder.Node, liveUUID string) []byte {
	// ip=frommedia: without it live-boot replaces the image's
	// /etc/network/interfaces (static address, VLANs) with DHCP on eth*.
	return raw.GrubMenu(pl, n, liveUUID, "/live/vmlinuz",
		"boot=live persistence persistence-label="+DataLabel+" ip=frommedia noeject", "/live/initrd.img")
}

// Write implements target.Target.
func (u *USB) Write(ctx context.Context, in target.Input) error {
	n := in.Node
	stage := filepath.Join(in.Dir, ".live")
	dataDir := filepath.Join(in.Dir, ".data")
	defer os.RemoveAll(stage)
	defer os.RemoveAll(dataDir)
	for _, d := range []string{filepath.Join(stage, "live"), filepath.Join(stage, "boot", "grub"), dataDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	in.Step(0, 3, "root squashfs")
	sq := filepath.Join(stage, "live", "filesystem.squashfs")
	epoch := fmt.Sprint(in.Time)
	if _, err := run.Output(ctx, "mksquashfs", in.Tree, sq, "-noappend", "-no-progress", "-quiet",
		"-comp", "zstd", "-mkfs-time", epoch, "-all-time", epoch); err != nil {
		return fmt.Errorf("%s: mksquashfs: %w", n.Name, err)
	}
	// Through os.Root: Debian's /vmlinuz is a symlink, and one that was
	// absolute must resolve inside the tree, never to the build host's.
	tree, err := os.OpenRoot(in.Tree)
	if err != nil {
		return err
	}
	defer tree.Close()
	for _, f := range []string{"vmlinuz", "initrd.img"} {
		b, err := tree.ReadFile(f)
		if err != nil {
			return fmt.Errorf("%s: /%s: %w", n.Name, f, err)
		}
		if err := os.WriteFile(filepath.Join(stage, "live", f), b, 0o644); err != nil {
			return err
		}
	}
	liveUUID := in.Plan.UUID(n.Name + "/live")
	if err := os.WriteFile(filepath.Join(stage, "boot", "grub", "grub.cfg"), GrubConfig(in.Plan, n, liveUUID), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dataDir, "persistence.conf"), []byte("/ union\n"), 0o644); err != nil {
		return err
	}
	var used int64
	filepath.WalkDir(stage, func(_ string, d fs.DirEntry, _ error) error {
		if fi, err := d.Info(); err == nil && !d.IsDir() {
			used += fi.Size()
		}
		return nil
	})
	// ext4's own overhead (inode tables, journal) and a little room.
	liveSize := (used + used/20 + 48<<20 + align - 1) / align * align
	l, err := Layout(in.Plan, n, liveSize, u.opts.Size)
	if err != nil {
		return err
	}
	pieces := raw.BootPieces(in, liveUUID)
	pieces[PieceRoot] = func(ctx context.Context, path string, part target.Partition) error {
		return disk.MakeExt4(ctx, disk.Ext4Options{Path: path, Size: part.Size, SourceDir: stage, UUID: liveUUID, Label: "live",
			Time: in.Time, Name: "live filesystem"})
	}
	pieces[PieceData] = func(ctx context.Context, path string, part target.Partition) error {
		return disk.MakeExt4(ctx, disk.Ext4Options{Path: path, Size: MinData, SourceDir: dataDir,
			UUID: in.Plan.UUID(n.Name + "/data"), Label: DataLabel, Time: in.Time, Name: "data filesystem"})
	}
	in.Step(1, 3, fmt.Sprintf("disk %s (%s)", l.Images[0].File, p.Size(l.Images[0].Size)))
	quiet := in
	quiet.Step = func(int, int, string) {}
	if err := target.WriteLayout(ctx, quiet, l, pieces); err != nil {
		return err
	}
	if err := raw.InstallMBR(in, l); err != nil {
		return err
	}
	in.Step(2, 3, "xz, bmap, SHA256SUMS")
	img := filepath.Join(in.Dir, l.Images[0].File)
	if err := compress.Outputs(ctx, img); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	in.Step(3, 3, "done")
	return nil
}
