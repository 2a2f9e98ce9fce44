package disk

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
)

// ext4 on-disk offsets used by pinInodeTimes (see the kernel's
// fs/ext4/ext4.h: struct ext4_super_block, ext4_group_desc, ext4_inode).
const (
	sbOffset        = 1024
	sbMagic         = 0x38
	sbInodesCount   = 0x00
	sbFirstDataBlk  = 0x14
	sbLogBlockSize  = 0x18
	sbInodesPerGrp  = 0x28
	sbFirstIno      = 0x54
	sbInodeSize     = 0x58
	sbFeatureIncomp = 0x60
	sbFeatureRO     = 0x64
	sbUUID          = 0x68
	sbDescSize      = 0xFE
	sbChecksumSeed  = 0x270

	incompat64bit    = 0x80
	incompatCsumSeed = 0x2000
	roGdtCsum        = 0x10
	roMetadataCsum   = 0x400

	bgInodeTableLo = 0x08
	bgFlags        = 0x12
	bgItableUnused = 0x1C
	bgInodeTableHi = 0x28
	bgItableUnHi   = 0x32
	bgInodeUninit  = 0x1

	inoATime      = 0x08
	inoCTime      = 0x0C
	inoMTime      = 0x10
	inoLinks      = 0x1A
	inoGeneration = 0x64
	inoCsumLo     = 0x7C
	inoExtraIsize = 0x80
	inoCsumHi     = 0x82
	inoCTimeExtra = 0x84
	inoMTimeExtra = 0x88
	inoATimeExtra = 0x8C
	goodOldInode  = 128
	rootIno       = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crc32cRaw is the kernel's crc32c(seed, data): no inversion before or
// after, which hash/crc32 applies on both sides.
func crc32cRaw(seed uint32, p []byte) uint32 { return ^crc32.Update(^seed, castagnoli, p) }

// pinInodeTimes sets, in the ext4 image at path, every in-use inode's
// atime and ctime to its mtime, and all three times of the root directory
// to now, then rewrites the inode checksums. It replaces a debugfs pass of
// two commands per file: it reads and writes only the inode tables.
//
// Why at all: mke2fs -d copies atime and ctime from the source tree, but
// atime moves when the tree is read (mke2fs itself reads it, and relatime
// lets the kernel note that) and ctime is whenever the tree was unpacked;
// and the root directory keeps the wall-clock time at which mke2fs linked
// the tree into it, E2FSPROGS_FAKE_TIME notwithstanding. Neither is
// content, and both would make two builds of one tree differ.
func pinInodeTimes(path string, now int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, sbOffset); err != nil {
		return fmt.Errorf("pin times: superblock: %w", err)
	}
	le := binary.LittleEndian
	if le.Uint16(sb[sbMagic:]) != 0xEF53 {
		return fmt.Errorf("pin times: %s is not ext4", path)
	}
	bs := int64(1024) << le.Uint32(sb[sbLogBlockSize:])
	ipg := int64(le.Uint32(sb[sbInodesPerGrp:]))
	isize := int64(le.Uint16(sb[sbInodeSize:]))
	firstIno := int64(le.Uint32(sb[sbFirstIno:]))
	incompat, ro := le.Uint32(sb[sbFeatureIncomp:]), le.Uint32(sb[sbFeatureRO:])
	descSize := int64(32)
	if incompat&incompat64bit != 0 {
		descSize = int64(le.Uint16(sb[sbDescSize:]))
	}
	groups := (int64(le.Uint32(sb[sbInodesCount:])) + ipg - 1) / ipg
	csum := ro&roMetadataCsum != 0
	uninitValid := ro&(roMetadataCsum|roGdtCsum) != 0
	var seed uint32
	if incompat&incompatCsumSeed != 0 {
		seed = le.Uint32(sb[sbChecksumSeed:])
	} else {
		seed = crc32cRaw(^uint32(0), sb[sbUUID:sbUUID+16])
	}

	gdt := make([]byte, groups*descSize)
	gdtAt := (int64(le.Uint32(sb[sbFirstDataBlk:])) + 1) * bs
	if _, err := f.ReadAt(gdt, gdtAt); err != nil {
		return fmt.Errorf("pin times: group descriptors: %w", err)
	}
	for g := int64(0); g < groups; g++ {
		d := gdt[g*descSize : (g+1)*descSize]
		used := ipg
		if uninitValid {
			if le.Uint16(d[bgFlags:])&bgInodeUninit != 0 {
				continue
			}
			unused := int64(le.Uint16(d[bgItableUnused:]))
			if descSize >= 64 {
				unused |= int64(le.Uint16(d[bgItableUnHi:])) << 16
			}
			used -= unused
		}
		if used <= 0 {
			continue
		}
		table := int64(le.Uint32(d[bgInodeTableLo:]))
		if descSize >= 64 {
			table |= int64(le.Uint32(d[bgInodeTableHi:])) << 32
		}
		buf := make([]byte, used*isize)
		if _, err := f.ReadAt(buf, table*bs); err != nil {
			return fmt.Errorf("pin times: inode table of group %d: %w", g, err)
		}
		changed := false
		for i := int64(0); i < used; i++ {
			ino := g*ipg + i + 1
			if ino != rootIno && ino < firstIno {
				continue // reserved inodes: journal, resize; mke2fs's own times
			}
			in := buf[i*isize : (i+1)*isize]
			if le.Uint16(in[inoLinks:]) == 0 {
				continue
			}
			pinInode(in, ino == rootIno, now)
			if csum {
				setInodeChecksum(in, seed, uint32(ino))
			}
			changed = true
		}
		if changed {
			if _, err := f.WriteAt(buf, table*bs); err != nil {
				return fmt.Errorf("pin times: inode table of group %d: %w", g, err)
			}
		}
	}
	return f.Sync()
}

// extraHas reports whether the inode's extra space holds the 4-byte field
// at off (i_extra_isize counts from byte 128).
func extraHas(in []byte, off int) bool {
	if len(in) <= goodOldInode {
		return false
	}
	return goodOldInode+int(binary.LittleEndian.Uint16(in[inoExtraIsize:])) >= off+4
}

func pinInode(in []byte, root bool, now int64) {
	le := binary.LittleEndian
	if root {
		for _, off := range []int{inoATime, inoCTime, inoMTime} {
			le.PutUint32(in[off:], uint32(now))
		}
		// the high bits of the extra fields are the epoch (seconds >> 32)
		for _, off := range []int{inoCTimeExtra, inoMTimeExtra, inoATimeExtra} {
			if extraHas(in, off) {
				le.PutUint32(in[off:], uint32(now>>32)&3)
			}
		}
		return
	}
	m := le.Uint32(in[inoMTime:])
	le.PutUint32(in[inoATime:], m)
	le.PutUint32(in[inoCTime:], m)
	if extraHas(in, inoMTimeExtra) {
		mx := le.Uint32(in[inoMTimeExtra:])
		for _, off := range []int{inoCTimeExtra, inoATimeExtra} {
			if extraHas(in, off) {
				le.PutUint32(in[off:], mx)
			}
		}
	}
}

// setInodeChecksum writes the metadata_csum of an inode: crc32c over the
// inode number, its generation and the inode with the checksum fields
// zeroed, seeded with the filesystem's checksum seed.
func setInodeChecksum(in []byte, seed, ino uint32) {
	le := binary.LittleEndian
	// i_checksum_hi (2 bytes at 0x82) exists when i_extra_isize covers it
	hi := len(in) > goodOldInode && goodOldInode+int(le.Uint16(in[inoExtraIsize:])) >= inoCsumHi+2
	le.PutUint16(in[inoCsumLo:], 0)
	if hi {
		le.PutUint16(in[inoCsumHi:], 0)
	}
	var b [4]byte
	le.PutUint32(b[:], ino)
	c := crc32cRaw(seed, b[:])
	le.PutUint32(b[:], le.Uint32(in[inoGeneration:]))
	c = crc32cRaw(c, b[:])
	c = crc32cRaw(c, in)
	le.PutUint16(in[inoCsumLo:], uint16(c))
	if hi {
		le.PutUint16(in[inoCsumHi:], uint16(c>>16))
	}
}
