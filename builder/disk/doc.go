// Package disk writes the block-level pieces of an appliance image: ext4
// filesystems, LVM2 physical volumes with their volume group, and swap
// areas, each into a plain (sparse) file. Nothing here uses a loop device
// or a mount, so a build runs unprivileged in a container and cannot touch
// the host's block devices or its LVM state.
//
// # Why mke2fs for ext4
//
// ext4 images come from e2fsprogs' `mke2fs -d DIR`, not from a Go writer.
// go-diskfs' ext4 support cannot carry a real root tree: it loses hard
// links, device nodes and extended attributes (file capabilities, SELinux
// labels), all of which a Debian root needs. mke2fs copies all of them, and
// with a fixed UUID, a hash_seed equal to it, E2FSPROGS_FAKE_TIME and a
// private mke2fs.conf (so the host's defaults do not leak in) the image is
// bit-for-bit reproducible for the same source tree. The feature set is
// pinned; it leaves out metadata_csum_seed and orphan_file, which GRUB 2.06
// (pvgrub2) cannot read.
//
// mke2fs copies each file's atime and ctime from the source tree and
// leaves the root directory at wall-clock time; atime moves whenever the
// tree is read and ctime is when it was unpacked. MakeExt4 therefore pins
// atime and ctime to each file's mtime, and the root's times to
// Ext4Options.Time, by rewriting the inode tables (and their checksums)
// directly: one read and one write per inode table, where a debugfs pass
// of two commands per file cost about 3 s per 2 GiB root. Two unpackings
// of the same tarball give the same image (the tests build from two copies
// and compare sha256; e2fsck checks the checksums).
//
// # Why LVM2 in Go
//
// The lvm2 tools only write to block devices: they would need loop devices,
// device-mapper and the host's /etc/lvm, /run/lvm and udev, which a
// container does not have and a developer's machine should not have
// touched. The on-disk format is small and stable: a label in sector 1
// ("LABELONE", "LVM2 001") carrying the PV header, a metadata area at 4 KiB
// whose header points at the VG's text metadata, and the data area at
// 1 MiB. WritePVs writes exactly that, with LVM2's own CRC (the reflected
// CRC-32 polynomial, no final inversion, initial value 0xf597a6cf), and the
// tests prove it against pvck, vgck, pvs, vgs and lvs of lvm2 itself.
//
// # Determinism
//
// Every identifier (filesystem UUIDs, PV, VG and LV ids) is derived from a
// seed with sha256 (UUIDFromSeed, LVMID), and every timestamp is an input,
// so the same Plan gives the same bytes.
//
// # Sparse files
//
// Images are sparse: CopySparse moves data between files region by region
// with SEEK_DATA/SEEK_HOLE and skips zero blocks, so a 2 GiB PV holding a
// few hundred MiB of data costs a few hundred MiB on disk and in I/O.
package disk
