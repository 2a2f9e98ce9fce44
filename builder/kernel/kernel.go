// Package kernel reads what a boot loader needs to know about a Linux
// kernel image without running it: how its payload is compressed.
//
// It exists for one decision. pvgrub2 (GRUB 2.06's Xen PV loader) can
// decompress only gzip and xz payloads, and Debian trixie's generic kernel
// is zstd-compressed (the cloud kernel lz4), so a PV guest with the stock
// kernel dies in the boot loader with "not xen image". The builder reads the
// compression from the bzImage header and refuses a PV config it cannot
// boot, saying why, instead of writing images that fail on the dom0.
package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Compression is how a kernel's payload is packed.
type Compression string

// The payload formats the x86 kernel build can produce
// (arch/x86/boot/compressed/Makefile), plus an uncompressed ELF vmlinux.
const (
	Gzip  Compression = "gzip"
	XZ    Compression = "xz"
	Zstd  Compression = "zstd"
	LZ4   Compression = "lz4"
	Bzip2 Compression = "bzip2"
	LZMA  Compression = "lzma"
	LZO   Compression = "lzo"
	ELF   Compression = "none (ELF vmlinux)"
)

// PVGrubLoads reports whether pvgrub2 can load a kernel packed this way:
// GRUB's Xen loader decompresses gzip and xz only (FACTS.md, measured).
func (c Compression) PVGrubLoads() bool { return c == Gzip || c == XZ || c == ELF }

// ErrNotKernel matches a file that is not an x86 bzImage or ELF kernel.
var ErrNotKernel = errors.New("not a Linux x86 kernel image")

// Offsets in the boot protocol header (Documentation/arch/x86/boot.rst).
const (
	offSetupSects    = 0x1f1
	offHeaderMagic   = 0x202 // "HdrS"
	offVersion       = 0x206
	offPayloadOffset = 0x248 // from the start of the protected-mode code
	offPayloadLength = 0x24c
	headerEnd        = 0x250
	minVersion       = 0x208 // payload_offset/length appeared in 2.08
)

// magics are the first bytes of each payload format. lzma has no magic
// proper: its header starts with the properties byte 0x5d and a
// dictionary size the kernel build always writes as 0x00 0x00 ...
var magics = []struct {
	c     Compression
	magic []byte
}{
	{Gzip, []byte{0x1f, 0x8b}},
	{XZ, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},
	{Zstd, []byte{0x28, 0xb5, 0x2f, 0xfd}},
	{LZ4, []byte{0x02, 0x21, 0x4c, 0x18}}, // lz4 legacy frame, as the kernel writes it
	{Bzip2, []byte{'B', 'Z', 'h'}},
	{LZO, []byte{0x89, 'L', 'Z', 'O'}},
	{LZMA, []byte{0x5d, 0x00, 0x00}},
}

// Detect reads the compression of the kernel image in r.
func Detect(r io.ReaderAt) (Compression, error) {
	hdr := make([]byte, headerEnd)
	n, err := r.ReadAt(hdr, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	if bytes.HasPrefix(hdr[:n], []byte("\x7fELF")) {
		return ELF, nil
	}
	if n < headerEnd {
		return "", fmt.Errorf("%w: %d bytes, shorter than a boot header", ErrNotKernel, n)
	}
	if string(hdr[offHeaderMagic:offHeaderMagic+4]) != "HdrS" {
		return "", fmt.Errorf("%w: no HdrS boot header", ErrNotKernel)
	}
	le := binary.LittleEndian
	if v := le.Uint16(hdr[offVersion:]); v < minVersion {
		return "", fmt.Errorf("%w: boot protocol %d.%02d is older than 2.08 and does not say where its payload is", ErrNotKernel, v>>8, v&0xff)
	}
	setup := int64(hdr[offSetupSects])
	if setup == 0 {
		setup = 4 // the boot protocol's historical default
	}
	payload := (setup+1)*512 + int64(le.Uint32(hdr[offPayloadOffset:]))
	length := le.Uint32(hdr[offPayloadLength:])
	if length < 8 {
		return "", fmt.Errorf("%w: payload of %d bytes", ErrNotKernel, length)
	}
	magic := make([]byte, 8)
	if _, err := r.ReadAt(magic, payload); err != nil {
		return "", fmt.Errorf("%w: payload at %d: %w", ErrNotKernel, payload, err)
	}
	for _, m := range magics {
		if bytes.HasPrefix(magic, m.magic) {
			return m.c, nil
		}
	}
	return "", fmt.Errorf("%w: unknown payload magic % x", ErrNotKernel, magic)
}

// DetectFile reads the compression of the kernel at path.
func DetectFile(path string) (Compression, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	c, err := Detect(f)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
