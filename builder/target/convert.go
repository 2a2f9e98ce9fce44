package target

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/applbuild/applbuild/builder/disk"
	"github.com/applbuild/applbuild/internal/run"
)

// Formats are the virtual-disk formats a raw image converts to, for the
// hypervisors that want their own: qcow2 (KVM, libvirt), vmdk (VMware),
// vdi (VirtualBox). The raw image stays the source.
var Formats = []string{"qcow2", "vmdk", "vdi"}

// Convert writes raw (a disk image) as format beside it, with qemu-img.
// qemu-img stamps random identifiers into VMDK (the descriptor's CID) and
// VDI (the image and snapshot UUIDs) headers; they are replaced by ones
// derived from seed, so a rebuild gives the same bytes, as for the raw
// image. It returns the file written.
func Convert(ctx context.Context, raw, format, seed string) (string, error) {
	if !slices.Contains(Formats, format) {
		return "", fmt.Errorf("format %q: want %s", format, strings.Join(Formats, ", "))
	}
	out := strings.TrimSuffix(raw, filepath.Ext(raw)) + "." + format
	if _, err := run.Output(ctx, "qemu-img", "convert", "-q", "-f", "raw", "-O", format, raw, out); err != nil {
		return "", fmt.Errorf("convert %s to %s: %w", filepath.Base(raw), format, err)
	}
	var err error
	switch format {
	case "qcow2":
	case "vmdk":
		err = fixVMDK(out, seed)
	case "vdi":
		err = fixVDI(out, seed)
	default:
		err = fmt.Errorf("format %q: want %s", format, strings.Join(Formats, ", "))
	}
	if err != nil {
		os.Remove(out)
		return "", err
	}
	return out, nil
}

// qemu-img prints the CID with %x: one to eight hex digits.
var vmdkCID = regexp.MustCompile(`(?m)^CID=[0-9a-f]{1,8}$`)

// VMDK sparse header fields (VMware's SparseExtentHeader): the embedded
// descriptor's offset and size, both in 512-byte sectors.
const (
	vmdkDescOffsetOff = 28
	vmdkDescSizeOff   = 36
)

// fixVMDK replaces the CID line of a monolithicSparse image's embedded
// descriptor with one derived from seed, always eight digits. The random
// CID is as short as its value, so the text after it shifts; the
// descriptor is NUL-padded to its fixed size and stays inside it.
func fixVMDK(path, seed string) error {
	return patchHead(path, 64<<10, func(head []byte) error {
		if !bytes.Equal(head[:4], []byte("KDMV")) {
			return fmt.Errorf("%s: not a sparse VMDK", path)
		}
		off := int(binary.LittleEndian.Uint64(head[vmdkDescOffsetOff:])) * 512
		size := int(binary.LittleEndian.Uint64(head[vmdkDescSizeOff:])) * 512
		if off < 512 || size == 0 || off+size > len(head) {
			return fmt.Errorf("%s: descriptor at %d, %d bytes: outside the first %d bytes", path, off, size, len(head))
		}
		desc := head[off : off+size]
		text := desc
		if i := bytes.IndexByte(desc, 0); i >= 0 {
			text = desc[:i]
		}
		loc := vmdkCID.FindIndex(text)
		if loc == nil {
			return fmt.Errorf("%s: no CID in the VMDK descriptor", path)
		}
		cid := strings.ReplaceAll(uuidOf(seed, "vmdk-cid"), "-", "")[:8]
		out := slices.Concat(text[:loc[0]], []byte("CID="+cid), text[loc[1]:])
		if len(out) >= size {
			return fmt.Errorf("%s: the descriptor outgrows its %d bytes", path, size)
		}
		clear(desc)
		copy(desc, out)
		return nil
	})
}

// VDI header offsets (VirtualBox's VDIHEADER1, as QEMU writes it).
const (
	vdiSignatureOff = 0x40
	vdiUUIDImage    = 0x188
	vdiUUIDLastSnap = 0x198
)

func fixVDI(path, seed string) error {
	return patchHead(path, 512, func(head []byte) error {
		if !bytes.Equal(head[vdiSignatureOff:vdiSignatureOff+4], []byte{0x7f, 0x10, 0xda, 0xbe}) {
			return fmt.Errorf("%s: not a VDI image", path)
		}
		for _, f := range []struct {
			off     int
			purpose string
		}{{vdiUUIDImage, "vdi-image"}, {vdiUUIDLastSnap, "vdi-last-snap"}} {
			b, err := hex.DecodeString(strings.ReplaceAll(uuidOf(seed, f.purpose), "-", ""))
			if err != nil {
				return err
			}
			copy(head[f.off:f.off+16], b)
		}
		return nil
	})
}

func patchHead(path string, n int, patch func([]byte) error) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, n)
	k, err := f.ReadAt(head, 0)
	if k < 512 {
		return fmt.Errorf("%s: %d bytes: %v", path, k, err)
	}
	head = head[:k]
	if err := patch(head); err != nil {
		return err
	}
	if _, err := f.WriteAt(head, 0); err != nil {
		return err
	}
	return f.Sync()
}

func uuidOf(seed, purpose string) string { return disk.UUIDFromSeed(seed, purpose) }
