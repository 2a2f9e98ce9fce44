// Package flash writes an appliance image (.img, or .img.xz) to a USB or
// CF stick, or to a file, the way a user can trust: only the mapped blocks
// when the image has a bmap, then every written range read back from the
// device (not the page cache) and checked.
//
// Before a byte is written, Inspect and Device.Refusals decide whether the
// target may be written at all. Always refused: a device that is mounted,
// holds a mounted partition, is part of a device-mapper or md device, or
// is active swap; the disk the running system lives on (the devices of /
// and /boot, followed through dm and md to their disks); a device smaller
// than the image. Refused unless Force: a partition rather than a whole
// disk, a non-removable device, one larger than MaxSize. The device is
// then opened O_EXCL, so the kernel itself refuses it if something
// claims it in between.
package flash
