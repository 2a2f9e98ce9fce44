package target

import (
	"context"
	"fmt"
	"os"

	"github.com/applbuild/applbuild/builder/disk"
	"github.com/diskfs/go-diskfs/partition/gpt"
)

// SectorSize is the logical sector size of every partitioned image.
const SectorSize = 512

// writeGPTImage makes im.File: a sparse file of im.Size with a protective
// MBR, the primary and backup GPT (go-diskfs, whose tables sgdisk -v finds
// clean), and each partition's piece copied in without filling its holes.
// The MBR's first 446 bytes (boot code) are left zero for the target.
func writeGPTImage(ctx context.Context, path string, im Image, pieces map[string]string) (err error) {
	if im.Size%SectorSize != 0 {
		return fmt.Errorf("%s: size %d is not a multiple of %d", im.File, im.Size, SectorSize)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	if err := f.Truncate(im.Size); err != nil {
		return err
	}
	tbl := &gpt.Table{LogicalSectorSize: SectorSize, PhysicalSectorSize: SectorSize, GUID: im.Table.GUID, ProtectiveMBR: true}
	for _, pt := range im.Table.Partitions {
		if pt.Start%SectorSize != 0 || pt.Size%SectorSize != 0 || pt.Size <= 0 {
			return fmt.Errorf("%s: partition %d (%s) is not whole sectors", im.File, pt.Number, pt.Name)
		}
		if pt.Number != len(tbl.Partitions)+1 {
			return fmt.Errorf("%s: partition %d out of order", im.File, pt.Number)
		}
		src, err := os.Open(pieces[pt.Piece])
		if err != nil {
			return fmt.Errorf("%s: partition %d (%s): %w", im.File, pt.Number, pt.Name, err)
		}
		fi, err := src.Stat()
		if err == nil && fi.Size() > pt.Size {
			err = fmt.Errorf("%s is %d bytes, the partition %d", pt.Piece, fi.Size(), pt.Size)
		}
		if err == nil {
			_, err = disk.CopySparse(ctx, f, pt.Start, src, 0, fi.Size())
		}
		src.Close()
		if err != nil {
			return fmt.Errorf("%s: partition %d (%s): %w", im.File, pt.Number, pt.Name, err)
		}
		tbl.Partitions = append(tbl.Partitions, &gpt.Partition{
			Index: pt.Number, Start: uint64(pt.Start / SectorSize), End: uint64((pt.Start+pt.Size)/SectorSize - 1),
			Size: uint64(pt.Size), Type: gpt.Type(pt.Type), Name: pt.Name, GUID: pt.GUID, Attributes: pt.Attributes,
		})
	}
	if err := tbl.Write(f, im.Size); err != nil {
		return fmt.Errorf("%s: partition table: %w", im.File, err)
	}
	return f.Sync()
}
