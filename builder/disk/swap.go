package disk

import (
	"encoding/binary"
	"fmt"
	"os"
)

// Linux swap area, version 1 (include/linux/swap.h, union swap_header),
// for 4 KiB pages: the header fills the first page, the rest is swap.
const (
	swapPage        = 4096
	swapMinPages    = 10 // mkswap's minimum
	swapInfoOffset  = 1024
	swapMagic       = "SWAPSPACE2"
	swapLabelMax    = 16
	swapMagicOffset = swapPage - len(swapMagic)
)

// MakeSwap creates path as a sparse swap area of size bytes (rounded down
// to whole 4 KiB pages) with the given UUID and label, as mkswap would.
func MakeSwap(path string, size int64, uuid string, label string) error {
	id, err := parseUUID(uuid)
	if err != nil {
		return fmt.Errorf("swap %s: %w", path, err)
	}
	if len(label) > swapLabelMax {
		return fmt.Errorf("swap %s: label %q is longer than %d bytes", path, label, swapLabelMax)
	}
	pages := size / swapPage
	if pages < swapMinPages {
		return fmt.Errorf("swap %s: %s is below the minimum of %d pages", path, FormatSize(size, false), swapMinPages)
	}
	if pages-1 > 1<<32-1 {
		return fmt.Errorf("swap %s: %s is too large for a swap header", path, FormatSize(size, false))
	}
	hdr := make([]byte, swapPage)
	le := binary.LittleEndian
	le.PutUint32(hdr[swapInfoOffset:], 1)                 // version
	le.PutUint32(hdr[swapInfoOffset+4:], uint32(pages-1)) // last_page
	le.PutUint32(hdr[swapInfoOffset+8:], 0)               // nr_badpages
	copy(hdr[swapInfoOffset+12:swapInfoOffset+28], id[:]) // sws_uuid
	copy(hdr[swapInfoOffset+28:swapInfoOffset+44], label) // sws_volume
	copy(hdr[swapMagicOffset:], swapMagic)

	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("swap: %w", err)
	}
	if err := f.Truncate(pages * swapPage); err != nil {
		f.Close()
		return fmt.Errorf("swap %s: %w", path, err)
	}
	if _, err := f.WriteAt(hdr, 0); err != nil {
		f.Close()
		return fmt.Errorf("swap %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("swap %s: %w", path, err)
	}
	return nil
}
