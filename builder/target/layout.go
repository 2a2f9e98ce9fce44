package target

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/builder/disk"
)

// A Layout is where a target puts a node's storage: the files it writes
// and which piece of the plan lands where. The plan's pieces are its
// disks by name (root, swap, pv1, ...); a target may add its own pieces
// (the raw target's EFI System Partition and BIOS boot partition). A
// layout is a pure function of the plan, so it is golden-tested; one
// writer, WriteLayout, writes whatever it says.
type Layout struct {
	Images []Image `json:"images"`
}

// Image is one file of the node's output directory.
type Image struct {
	File string `json:"file"`
	Size int64  `json:"size"`
	// A bare image holds one piece from its first byte (Xen: a whole
	// virtual disk without a partition table), named Device to the guest.
	Piece  string `json:"piece,omitempty"`
	Device string `json:"device,omitempty"`
	// A partitioned image holds a GPT and its partitions' pieces.
	Table *GPT `json:"gpt,omitempty"`
}

// GPT is a GUID partition table.
type GPT struct {
	GUID       string      `json:"guid"`
	Partitions []Partition `json:"partitions"`
}

// Partition is one GPT entry, with the piece it holds.
type Partition struct {
	Number int    `json:"number"` // 1-based, its index in the table
	Name   string `json:"name"`   // the GPT partition name
	Type   string `json:"type"`   // type GUID
	GUID   string `json:"guid"`
	Start  int64  `json:"start"` // bytes, 1 MiB aligned
	Size   int64  `json:"size"`
	Piece  string `json:"piece"`
	// Attributes are the GPT entry's attribute bits.
	Attributes uint64 `json:"attributes,omitempty"`
	// Device is what the guest will likely call it: LVM2 records it as a
	// hint in the metadata (only a hint: PVs are found by their label).
	Device string `json:"device,omitempty"`
}

// PieceFunc writes a target's own piece into the empty file at path, for
// partition part: one that is not a disk of the plan, or a disk of the
// plan the target writes its own way.
type PieceFunc func(ctx context.Context, path string, part Partition) error

// Pieces are the target's own pieces by name.
type Pieces map[string]PieceFunc

// LayoutSteps is how many Step calls WriteLayout makes: one per plan
// disk, one per brick filesystem, one per partitioned image.
func LayoutSteps(node *builder.Node, l Layout) int {
	n := len(node.Disks)
	if node.VG != nil {
		for _, lv := range node.VG.LVs {
			if lv.Purpose == builder.LVBrick {
				n++
			}
		}
	}
	for _, im := range l.Images {
		if im.Table != nil {
			n++
		}
	}
	return n
}

// WriteLayout writes in.Node's storage as l says into in.Dir. A bare
// image's piece is written straight into its file; a partitioned image's
// pieces are written as files of their own beside it (so every writer
// makes a plain file: mke2fs, mkfs.vfat, the LVM2 and swap writers) and
// then copied into their partitions without filling holes. Plan pieces
// are the root ext4 made from in.Tree, the swap area, and the LVM2 PVs
// with an empty ext4 in every brick LV (DRBD LVs stay empty: drbdadm
// create-md runs on the first boot); own are the target's pieces.
func WriteLayout(ctx context.Context, in Input, l Layout, own Pieces) error {
	n := in.Node
	total := LayoutSteps(n, l)
	step := 0
	next := func(what string) {
		step++
		in.Step(step, total, what)
	}
	// Where each piece is written, and its device hint.
	type place struct {
		path, device string
		size         int64
		part         *Partition
	}
	places := map[string]place{}
	var staged []string
	defer func() {
		for _, p := range staged {
			os.Remove(p)
		}
	}()
	for _, im := range l.Images {
		if im.Table == nil {
			places[im.Piece] = place{path: filepath.Join(in.Dir, im.File), device: "/dev/" + im.Device, size: im.Size}
			continue
		}
		for i := range im.Table.Partitions {
			pt := &im.Table.Partitions[i]
			path := filepath.Join(in.Dir, ".piece-"+pt.Piece+".img")
			staged = append(staged, path)
			places[pt.Piece] = place{path: path, device: pt.Device, size: pt.Size, part: pt}
		}
	}
	for _, d := range n.Disks {
		if _, ok := places[d.Name]; !ok {
			return fmt.Errorf("%s: the layout has no place for disk %s", n.Name, d.Name)
		}
	}
	for name, pl := range places {
		if pl.part == nil || own[name] != nil {
			continue
		}
		if d := diskNamed(n, name); d == nil {
			return fmt.Errorf("%s: the layout places %q, which is neither a disk of the node nor a piece of the target", n.Name, name)
		} else if int64(d.Size) > pl.size {
			return fmt.Errorf("%s: disk %s (%s) does not fit its partition (%d bytes)", n.Name, d.Name, d.Size, pl.size)
		}
	}

	for _, d := range n.Disks {
		if err := ctx.Err(); err != nil {
			return err
		}
		if own[d.Name] != nil {
			continue // the target writes it (the usb target's squashfs root)
		}
		path := places[d.Name].path
		switch d.Role {
		case builder.RoleRoot:
			next(fmt.Sprintf("root fs %s (%s)", filepath.Base(path), d.Size))
			if d.FS != "ext4" {
				return fmt.Errorf("%s: root filesystem %q: only ext4 is written", n.Name, d.FS)
			}
			err := disk.MakeExt4(ctx, disk.Ext4Options{
				Path: path, Size: int64(d.Size), SourceDir: in.Tree, UUID: d.UUID, Label: d.Label, Time: in.Time,
				Name: "root filesystem", SizeHint: "raise disks.root",
			})
			if err != nil {
				return fmt.Errorf("%s: %w", n.Name, err)
			}
		case builder.RoleSwap:
			next(fmt.Sprintf("swap %s (%s)", filepath.Base(path), d.Size))
			if err := disk.MakeSwap(path, int64(d.Size), d.UUID, d.Label); err != nil {
				return fmt.Errorf("%s: %w", n.Name, err)
			}
		case builder.RolePV:
			// Written with the VG below, all PVs at once.
		default:
			return fmt.Errorf("%s: disk %s: unknown role %q", n.Name, d.Name, d.Role)
		}
	}
	if n.VG != nil {
		vg := disk.VG{Name: n.VG.Name, Seed: in.Plan.Seed + "/" + n.Name, Time: in.Time, Host: n.Name}
		for _, name := range n.VG.PVs {
			d := diskNamed(n, name)
			if d == nil || d.Role != builder.RolePV {
				return fmt.Errorf("%s: VG %s: PV %s is not a pv disk of the node", n.Name, n.VG.Name, name)
			}
			vg.PVs = append(vg.PVs, disk.PV{Path: places[name].path, Size: int64(d.Size), Device: places[name].device})
		}
		for _, lv := range n.VG.LVs {
			vg.LVs = append(vg.LVs, disk.LV{Name: lv.Name, Size: int64(lv.Size)})
		}
		layout, err := disk.PlanVG(vg)
		if err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
		for _, pv := range vg.PVs {
			next(fmt.Sprintf("LVM2 PV %s", filepath.Base(pv.Path)))
		}
		if err := disk.WritePVs(ctx, layout); err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
		for _, lv := range n.VG.LVs {
			if lv.Purpose != builder.LVBrick {
				continue
			}
			next(fmt.Sprintf("brick %s/%s (%s)", n.VG.Name, lv.Name, lv.Size))
			if err := writeBrick(ctx, in, layout, lv); err != nil {
				return fmt.Errorf("%s: %w", n.Name, err)
			}
		}
	}
	for name, f := range own {
		pl, ok := places[name]
		if !ok || pl.part == nil {
			return fmt.Errorf("%s: the layout has no partition for the target's %s", n.Name, name)
		}
		if err := f(ctx, pl.path, *pl.part); err != nil {
			return fmt.Errorf("%s: %s: %w", n.Name, name, err)
		}
	}
	for _, im := range l.Images {
		if im.Table == nil {
			continue
		}
		next(fmt.Sprintf("disk %s (%d partitions)", im.File, len(im.Table.Partitions)))
		pieces := map[string]string{}
		for _, pt := range im.Table.Partitions {
			pieces[pt.Piece] = places[pt.Piece].path
		}
		if err := writeGPTImage(ctx, filepath.Join(in.Dir, im.File), im, pieces); err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
	}
	return nil
}

func diskNamed(n *builder.Node, name string) *builder.Disk {
	for i := range n.Disks {
		if n.Disks[i].Name == name {
			return &n.Disks[i]
		}
	}
	return nil
}

// writeBrick makes an empty ext4 the size of the LV's extents and copies it
// into them; the temporary image lives beside the PVs, on their filesystem.
func writeBrick(ctx context.Context, in Input, layout *disk.Layout, lv builder.LV) error {
	ll, ok := layout.LV(lv.Name)
	if !ok {
		return fmt.Errorf("VG %s: no LV %s in the layout", layout.VG.Name, lv.Name)
	}
	if lv.FS != "ext4" {
		return fmt.Errorf("brick %s: filesystem %q: only ext4 is written", lv.Name, lv.FS)
	}
	tmp := filepath.Join(in.Dir, ".lv-"+lv.Name+".img")
	defer os.Remove(tmp)
	err := disk.MakeExt4(ctx, disk.Ext4Options{
		Path: tmp, Size: ll.Size, UUID: lv.UUID, Label: lv.Name, Time: in.Time,
		Name: "brick filesystem " + lv.Name,
	})
	if err != nil {
		return err
	}
	if err := disk.WriteLV(ctx, layout, lv.Name, tmp); err != nil {
		return err
	}
	return os.Remove(tmp)
}

// Align is where partitions start and how they are sized: whole MiB.
const Align = 1 << 20

// NewGPT starts a partition table whose first partition starts at 1 MiB.
func NewGPT(guid string) *GPT { return &GPT{GUID: guid} }

// End is where the next partition would start.
func (t *GPT) End() int64 {
	if len(t.Partitions) == 0 {
		return Align
	}
	last := t.Partitions[len(t.Partitions)-1]
	return last.Start + last.Size
}

// Add appends a partition holding piece, of size rounded up to whole MiB,
// right after the last one; it is /dev/sdaN to the guest.
func (t *GPT) Add(name, typ, guid, piece string, size int64) {
	num := len(t.Partitions) + 1
	t.Partitions = append(t.Partitions, Partition{
		Number: num, Name: name, Type: typ, GUID: guid, Start: t.End(),
		Size: (size + Align - 1) / Align * Align, Piece: piece, Device: fmt.Sprintf("/dev/sda%d", num),
	})
}
