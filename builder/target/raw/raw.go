// Package raw is the raw-disk target: per node one GPT disk image that a
// physical machine (or any hypervisor) boots by BIOS or UEFI, Secure Boot
// included. The disk holds, in this order:
//
//	1 bios   BIOS boot partition: GRUB's core.img (boot.img in the MBR)
//	2 esp    EFI System Partition (FAT32): Debian's signed shim and GRUB
//	3 swap   the plan's swap, when it has one
//	4 root   the root ext4
//	5...     the plan's LVM2 PVs (gluster bricks, DRBD backing)
//
// Both boot paths end in the root filesystem's /boot/grub/grub.cfg, which
// boots Debian's /vmlinuz symlink, so a kernel upgrade on the appliance
// needs no boot loader change. Nothing is mounted and no loop device is
// used: the ESP is a FAT file made by mkfs.vfat and filled by mtools, GRUB's
// BIOS images are placed by the builder itself, every piece is copied into
// its partition without filling holes.
package raw

import (
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/builder/target"
	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/overlays"
)

// Name is the target's name on the command line and in output paths.
const Name = "raw"

// Partition type GUIDs (UEFI spec; the Discoverable Partitions
// Specification for the x86-64 root).
const (
	TypeBIOSBoot = "21686148-6449-6E6F-744E-656564454649"
	TypeESP      = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	TypeSwap     = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"
	TypeRoot     = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
	TypeLVM      = "E6D6D379-F507-44C2-A23C-238F2A3DF928"
)

// Sizes of the boot partitions. core.img with the modules below is about
// 150 KiB; 1 MiB is what every installer gives it. The ESP holds shim,
// MokManager and GRUB (about 4 MiB); 64 MiB is the least FAT32 that
// mkfs.vfat makes with 512-byte clusters, and FAT32 is what UEFI requires.
const (
	BIOSSize = 1 << 20
	ESPSize  = 64 << 20
)

// Pieces of the target (besides the plan's disks).
const (
	PieceBIOS = "bios"
	PieceESP  = "esp"
)

// Packages are what the rootfs must hold: the generic kernel (signed by
// Debian, for Secure Boot), GRUB for BIOS, Debian's signed GRUB and shim
// for UEFI. Only their files are used: no grub-install runs.
var Packages = []string{"linux-image-amd64", "grub-pc-bin", "grub-efi-amd64-bin", "grub-efi-amd64-signed", "shim-signed"}

// Files of the rootfs the boot loaders are taken from.
const (
	grubPCDir  = "usr/lib/grub/i386-pc"
	grubEFI    = "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"
	shimEFI    = "usr/lib/shim/shimx64.efi.signed"
	mokManager = "usr/lib/shim/mmx64.efi.signed"
)

// biosModules go into core.img: it finds the root filesystem by UUID and
// runs GRUB's normal mode on its /boot/grub/grub.cfg, with no module
// directory on the disk to load more from.
var biosModules = []string{
	"biosdisk", "part_gpt", "ext2", "search", "search_fs_uuid", "normal", "configfile",
	"linux", "boot", "echo", "test", "serial", "terminal", "minicmd",
}

// Raw is the target.
type Raw struct{ opts target.Options }

// New makes the raw target.
func New(opts target.Options) target.Target { return &Raw{opts: opts} }

// Name implements target.Target.
func (r *Raw) Name() string { return Name }

// Packages implements target.Target.
func (r *Raw) Packages(*builder.Plan) []string { return Packages }

// Tools implements target.Tooled.
func (r *Raw) Tools(*builder.Plan) []string {
	tools := []string{"mke2fs", "mkfs.vfat", "mmd", "mcopy"}
	if len(r.opts.Formats) > 0 {
		tools = append(tools, "qemu-img")
	}
	return tools
}

// Verify implements target.Target.
func (r *Raw) Verify(pl *builder.Plan) error {
	for _, f := range r.opts.Formats {
		if !slices.Contains(target.Formats, f) {
			return &target.PlanError{Target: Name, Msg: fmt.Sprintf("--format %q: want %s", f, strings.Join(target.Formats, ", "))}
		}
	}
	for _, n := range pl.Nodes {
		roots := 0
		for _, d := range n.Disks {
			if d.Role == builder.RoleRoot {
				roots++
			}
			if d.Size%target.Align != 0 {
				return &target.PlanError{Target: Name, Node: n.Name, Msg: fmt.Sprintf("disk %s: size %s is not whole MiB", d.Name, d.Size)}
			}
		}
		if roots != 1 {
			return &target.PlanError{Target: Name, Node: n.Name, Msg: fmt.Sprintf("%d root disks, want 1", roots)}
		}
		if len(n.Disks) > 120 {
			return &target.PlanError{Target: Name, Node: n.Name, Msg: "more than 120 disks do not fit a GPT of 128 entries"}
		}
	}
	return nil
}

// CheckTree implements target.Target: the kernel and every boot loader
// file the disk needs.
func (r *Raw) CheckTree(pl *builder.Plan, tree string) error { return CheckBootLoaders(Name, tree) }

// CheckBootLoaders reports a PlanError for targetName when tree lacks the
// kernel or a boot loader file the BIOS and UEFI pieces take from it.
func CheckBootLoaders(targetName, tree string) error {
	for _, f := range []string{"vmlinuz", "initrd.img", grubPCDir + "/boot.img", grubPCDir + "/kernel.img", grubEFI, shimEFI, mokManager} {
		if _, err := os.Stat(filepath.Join(tree, f)); err != nil {
			return &target.PlanError{Target: targetName, Msg: fmt.Sprintf(
				"the rootfs has no /%s: it must hold %s", f, strings.Join(Packages, ", "))}
		}
	}
	for _, m := range biosModules {
		if _, err := os.Stat(filepath.Join(tree, grubPCDir, m+".mod")); err != nil {
			return &target.PlanError{Target: targetName, Msg: fmt.Sprintf("the rootfs's GRUB (grub-pc-bin) has no module %s", m)}
		}
	}
	return nil
}

// Files implements target.Target: the root filesystem's grub.cfg, read by
// both GRUBs.
func (r *Raw) Files(pl *builder.Plan, n *builder.Node) ([]overlays.File, error) {
	return []overlays.File{
		{Path: "/boot/grub", Mode: fs.ModeDir | 0o755},
		{Path: "/boot/grub/grub.cfg", Mode: 0o644, Data: GrubConfig(pl, n)},
	}, nil
}

// ImageFile is the node's disk image in its directory.
func ImageFile(n *builder.Node) string { return n.Name + ".img" }

// Layout is where the node's pieces go: one GPT disk, partitions 1 MiB
// aligned, with 1 MiB at the end for the backup table.
func Layout(pl *builder.Plan, n *builder.Node) target.Layout {
	tbl := target.NewGPT(pl.UUID(n.Name + "/gpt"))
	add := func(name, typ, piece string, size int64) {
		tbl.Add(name, typ, pl.UUID(n.Name+"/part/"+piece), piece, size)
	}
	add("bios", TypeBIOSBoot, PieceBIOS, BIOSSize)
	add("esp", TypeESP, PieceESP, ESPSize)
	for _, role := range []string{builder.RoleSwap, builder.RoleRoot, builder.RolePV} {
		for _, d := range n.Disks {
			if d.Role != role {
				continue
			}
			typ := map[string]string{builder.RoleSwap: TypeSwap, builder.RoleRoot: TypeRoot, builder.RolePV: TypeLVM}[role]
			add(d.Name, typ, d.Name, int64(d.Size))
		}
	}
	return target.Layout{Images: []target.Image{{File: ImageFile(n), Size: tbl.End() + target.Align, Table: tbl}}}
}

// GrubConfig is the root filesystem's /boot/grub/grub.cfg: it boots
// Debian's /vmlinuz symlink from the root filesystem.
func GrubConfig(pl *builder.Plan, n *builder.Node) []byte {
	var root builder.Disk
	for _, d := range n.Disks {
		if d.Role == builder.RoleRoot {
			root = d
		}
	}
	return GrubMenu(pl, n, root.UUID, "/vmlinuz", "root=UUID="+root.UUID+" ro", "/initrd.img")
}

// GrubMenu is a grub.cfg with one entry: on the local console and on the
// first serial port (a headless appliance is reached by its serial
// console), it finds the filesystem fsUUID and boots kernel with args
// (the consoles and eth0 naming added) and initrd from it.
func GrubMenu(pl *builder.Plan, n *builder.Node, fsUUID, kernel, args, initrd string) []byte {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("# Read by GRUB (BIOS: core.img; UEFI: Debian's signed grubx64.efi); written by applbuild.")
	w("serial --unit=0 --speed=115200")
	w("terminal_input console serial")
	w("terminal_output console serial")
	w("set timeout=3")
	w("set default=0")
	w("")
	// Single quotes: GRUB expands nothing in them; a quote cannot be
	// escaped inside, so it goes.
	title := strings.ReplaceAll(fmt.Sprintf("%s %s (Debian %s)", pl.Branding.Product, n.Name, pl.Suite), "'", "")
	w("menuentry '%s' {", title)
	w("\tsearch --no-floppy --fs-uuid --set=root %s", fsUUID)
	w("\tlinux %s %s console=tty0 console=ttyS0,115200n8 net.ifnames=0", kernel, args)
	w("\tinitrd %s", initrd)
	w("}")
	return []byte(b.String())
}

// stub is the config core.img and the ESP's grub.cfg start with: find
// the root filesystem, then read its grub.cfg.
func stub(rootUUID string) string {
	return fmt.Sprintf("search --no-floppy --fs-uuid --set=root %s\nset prefix=($root)/boot/grub\n", rootUUID)
}

// Write implements target.Target.
func (r *Raw) Write(ctx context.Context, in target.Input) error {
	l := Layout(in.Plan, in.Node)
	var rootUUID string
	for _, d := range in.Node.Disks {
		if d.Role == builder.RoleRoot {
			rootUUID = d.UUID
		}
	}
	if err := target.WriteLayout(ctx, in, l, BootPieces(in, rootUUID)); err != nil {
		return err
	}
	img := filepath.Join(in.Dir, l.Images[0].File)
	if err := InstallMBR(in, l); err != nil {
		return err
	}
	for _, f := range r.opts.Formats {
		in.Step(target.LayoutSteps(in.Node, l), target.LayoutSteps(in.Node, l), "convert to "+f)
		if _, err := target.Convert(ctx, img, f, in.Plan.Seed+"/"+in.Node.Name); err != nil {
			return err
		}
	}
	return nil
}

// BootPieces write the BIOS boot partition (core.img) and the ESP of a
// disk whose /boot/grub/grub.cfg is on the ext4 with UUID bootUUID, from
// the boot loaders in in.Tree. The usb target shares them.
func BootPieces(in target.Input, bootUUID string) target.Pieces {
	return target.Pieces{
		PieceBIOS: func(ctx context.Context, path string, part target.Partition) error {
			core, err := coreImage(ctx, in.Tree, filepath.Dir(path), bootUUID, part)
			if err != nil {
				return err
			}
			return os.WriteFile(path, core, 0o644)
		},
		PieceESP: func(ctx context.Context, path string, part target.Partition) error {
			return makeESP(ctx, in, path, part, bootUUID)
		},
	}
}

// InstallMBR writes GRUB's boot.img into the first image of l, pointing
// at the core.img in its BIOS boot partition (partition 1).
func InstallMBR(in target.Input, l target.Layout) error {
	im := l.Images[0]
	bios := im.Table.Partitions[0]
	if bios.Piece != PieceBIOS {
		return fmt.Errorf("%s: partition 1 is %s, not the BIOS boot partition", im.File, bios.Piece)
	}
	return writeMBR(filepath.Join(in.Dir, im.File), filepath.Join(in.Tree, grubPCDir, "boot.img"), bios.Start/target.SectorSize)
}

// coreImage makes GRUB's BIOS core.img with the rootfs's own grub-mkimage
// and modules (run through the rootfs's dynamic loader, so the boot
// loader is the appliance's Debian's, not the build host's), and points
// its first sector's block list at the rest of it, in the partition.
func coreImage(ctx context.Context, tree, tmp, rootUUID string, part target.Partition) ([]byte, error) {
	cfg := filepath.Join(tmp, ".core.cfg")
	out := filepath.Join(tmp, ".core.img")
	defer os.Remove(cfg)
	defer os.Remove(out)
	if err := os.WriteFile(cfg, []byte(stub(rootUUID)), 0o644); err != nil {
		return nil, err
	}
	argv := append(treeCommand(tree, "usr/bin/grub-mkimage"),
		"-O", "i386-pc", "-d", filepath.Join(tree, grubPCDir), "-c", cfg, "-p", "/boot/grub", "-o", out)
	if _, err := run.Output(ctx, append(argv, biosModules...)...); err != nil {
		return nil, fmt.Errorf("grub-mkimage (i386-pc): %w", err)
	}
	core, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	if int64(len(core)) > part.Size {
		return nil, fmt.Errorf("core.img is %d bytes, the BIOS boot partition %d", len(core), part.Size)
	}
	if len(core) < 2*target.SectorSize {
		return nil, fmt.Errorf("core.img is only %d bytes", len(core))
	}
	// diskboot.img's block list (the last 12 bytes of core.img's first
	// sector): where the rest of core.img starts. grub-mkimage wrote its
	// length; grub-bios-setup would write this start.
	binary.LittleEndian.PutUint64(core[target.SectorSize-12:], uint64(part.Start/target.SectorSize)+1)
	return core, nil
}

// treeCommand runs a program of the rootfs on the host without chroot:
// the rootfs's dynamic loader with its libraries.
func treeCommand(tree, prog string) []string {
	return []string{
		filepath.Join(tree, "lib64/ld-linux-x86-64.so.2"),
		"--library-path", filepath.Join(tree, "lib/x86_64-linux-gnu") + ":" + filepath.Join(tree, "usr/lib/x86_64-linux-gnu"),
		filepath.Join(tree, prog),
	}
}

// writeMBR puts GRUB's boot.img into the disk's first sector, in the
// boot-code area before the protective MBR's disk signature and partition
// entries, pointing it at core.img (as grub-bios-setup does).
func writeMBR(disk, bootImg string, coreLBA int64) error {
	boot, err := os.ReadFile(bootImg)
	if err != nil {
		return err
	}
	if len(boot) != target.SectorSize {
		return fmt.Errorf("%s is %d bytes, want %d", bootImg, len(boot), target.SectorSize)
	}
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	mbr := make([]byte, target.SectorSize)
	if _, err := f.ReadAt(mbr, 0); err != nil {
		return err
	}
	copy(mbr[:440], boot[:440])
	binary.LittleEndian.PutUint64(mbr[0x5c:], uint64(coreLBA)) // GRUB_BOOT_MACHINE_KERNEL_SECTOR
	mbr[0x64] = 0xff                                           // boot drive: the one the BIOS booted
	mbr[0x66], mbr[0x67] = 0x90, 0x90                          // no drive check (buggy BIOSes)
	if _, err := f.WriteAt(mbr, 0); err != nil {
		return err
	}
	return f.Sync()
}

// makeESP makes the FAT32 EFI System Partition: shim as the removable
// media path's BOOTX64.EFI (what firmware boots without a boot entry, so
// the disk boots in any machine), GRUB and MokManager beside it, and a
// grub.cfg where Debian's signed GRUB looks for it (its prefix is
// /EFI/debian) that hands over to the root filesystem's.
func makeESP(ctx context.Context, in target.Input, path string, part target.Partition, rootUUID string) error {
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		return err
	}
	if err := os.Truncate(path, part.Size); err != nil {
		return err
	}
	serial := strings.ReplaceAll(part.GUID, "-", "")[:8]
	env := []string{fmt.Sprintf("SOURCE_DATE_EPOCH=%d", in.Time)}
	if err := run.Run(ctx, "mkfs.vfat", "-F", "32", "-S", "512", "-n", "ESP", "--invariant", "-i", serial, path); err != nil {
		return fmt.Errorf("mkfs.vfat: %w", err)
	}
	cfg := filepath.Join(filepath.Dir(path), ".esp-grub.cfg")
	defer os.Remove(cfg)
	if err := os.WriteFile(cfg, []byte(stub(rootUUID)+"configfile $prefix/grub.cfg\n"), 0o644); err != nil {
		return err
	}
	if err := os.Chtimes(cfg, time.Unix(in.Time, 0), time.Unix(in.Time, 0)); err != nil {
		return err
	}
	mtools := func(args ...string) error {
		_, err := (&run.Cmd{Args: args, Env: env}).Output(ctx)
		return err
	}
	if err := mtools("mmd", "-i", path, "::/EFI", "::/EFI/BOOT", "::/EFI/debian"); err != nil {
		return err
	}
	for _, c := range [][2]string{
		{filepath.Join(in.Tree, shimEFI), "::/EFI/BOOT/BOOTX64.EFI"},
		{filepath.Join(in.Tree, grubEFI), "::/EFI/BOOT/grubx64.efi"},
		{filepath.Join(in.Tree, mokManager), "::/EFI/BOOT/mmx64.efi"},
		{cfg, "::/EFI/BOOT/grub.cfg"},
		{cfg, "::/EFI/debian/grub.cfg"},
	} {
		if err := mtools("mcopy", "-m", "-i", path, c[0], c[1]); err != nil {
			return err
		}
	}
	return nil
}
