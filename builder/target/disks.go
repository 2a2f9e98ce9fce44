package target

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/builder/disk"
)

// DiskSteps is how many Step calls WriteDisks makes for node: one per disk
// file and one per brick filesystem.
func DiskSteps(node *builder.Node) int {
	n := len(node.Disks)
	if node.VG != nil {
		for _, lv := range node.VG.LVs {
			if lv.Purpose == builder.LVBrick {
				n++
			}
		}
	}
	return n
}

// WriteDisks writes every disk of in.Node as its own sparse image file in
// in.Dir, named as the plan names it: the root ext4 made from in.Tree, the
// swap area, and the LVM2 PVs with an empty ext4 in every brick LV (DRBD
// LVs stay empty: drbdadm create-md runs on the first boot). Targets that
// need one partitioned disk (raw, usb) place these images as partitions.
// It reports DiskSteps(in.Node) steps.
func WriteDisks(ctx context.Context, in Input) error {
	n := in.Node
	total := DiskSteps(n)
	step := 0
	next := func(what string) {
		step++
		in.Step(step, total, what)
	}
	byFile := map[string]builder.Disk{}
	for _, d := range n.Disks {
		byFile[d.File] = d
		if err := ctx.Err(); err != nil {
			return err
		}
		path := filepath.Join(in.Dir, d.File)
		switch d.Role {
		case builder.RoleRoot:
			next(fmt.Sprintf("root fs %s (%s)", d.File, d.Size))
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
			next(fmt.Sprintf("swap %s (%s)", d.File, d.Size))
			if err := disk.MakeSwap(path, int64(d.Size), d.UUID, d.Label); err != nil {
				return fmt.Errorf("%s: %w", n.Name, err)
			}
		case builder.RolePV:
			// Written with the VG below, all PVs at once.
		default:
			return fmt.Errorf("%s: disk %s: unknown role %q", n.Name, d.File, d.Role)
		}
	}
	if n.VG == nil {
		return nil
	}
	vg := disk.VG{Name: n.VG.Name, Seed: in.Plan.Seed + "/" + n.Name, Time: in.Time, Host: n.Name}
	for _, file := range n.VG.PVs {
		d, ok := byFile[file]
		if !ok || d.Role != builder.RolePV {
			return fmt.Errorf("%s: VG %s: PV %s is not a pv disk of the node", n.Name, n.VG.Name, file)
		}
		vg.PVs = append(vg.PVs, disk.PV{Path: filepath.Join(in.Dir, file), Size: int64(d.Size), Device: "/dev/" + d.Device})
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
