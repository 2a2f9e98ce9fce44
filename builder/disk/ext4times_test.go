package disk

import (
	"encoding/binary"
	"testing"
)

// TestCrc32cRaw checks the kernel-style crc32c (no inversions) against
// the standard check value. The inode checksums themselves are proven by
// e2fsck -fn on every image the ext4 tests make.
func TestCrc32cRaw(t *testing.T) {
	// crc32c("123456789") is 0xe3069283 with the usual inversions.
	if got := ^crc32cRaw(^uint32(0), []byte("123456789")); got != 0xe3069283 {
		t.Fatalf("crc32c = %#x", got)
	}
}

func TestPinInode(t *testing.T) {
	le := binary.LittleEndian
	in := make([]byte, 256)
	le.PutUint16(in[inoExtraIsize:], 32)
	le.PutUint32(in[inoMTime:], 1000)
	le.PutUint32(in[inoMTimeExtra:], 5<<2)
	le.PutUint32(in[inoATime:], 2000)
	le.PutUint32(in[inoCTime:], 3000)
	le.PutUint32(in[inoATimeExtra:], 7<<2)
	pinInode(in, false, 42)
	if le.Uint32(in[inoATime:]) != 1000 || le.Uint32(in[inoCTime:]) != 1000 ||
		le.Uint32(in[inoATimeExtra:]) != 5<<2 || le.Uint32(in[inoCTimeExtra:]) != 5<<2 {
		t.Errorf("file inode not pinned to its mtime: % x", in[:0x20])
	}
	pinInode(in, true, 42)
	for _, off := range []int{inoATime, inoCTime, inoMTime} {
		if le.Uint32(in[off:]) != 42 {
			t.Errorf("root time at %#x = %d", off, le.Uint32(in[off:]))
		}
	}
	for _, off := range []int{inoATimeExtra, inoCTimeExtra, inoMTimeExtra} {
		if le.Uint32(in[off:]) != 0 {
			t.Errorf("root extra at %#x = %d", off, le.Uint32(in[off:]))
		}
	}
	// a 128-byte inode has no extra fields to touch
	small := make([]byte, 128)
	le.PutUint32(small[inoMTime:], 9)
	pinInode(small, false, 42)
	if le.Uint32(small[inoCTime:]) != 9 {
		t.Error("128-byte inode not pinned")
	}
}
