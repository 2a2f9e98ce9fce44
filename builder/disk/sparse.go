package disk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// lseek(2) whence values for sparse files (Linux).
const (
	seekData = 3
	seekHole = 4
)

// copyChunk is how much CopySparse reads at once; zeroBlock is the unit
// below which it does not bother to leave a hole.
const (
	copyChunk = 1 << 20
	zeroBlock = 4096
)

// CopySparse copies length bytes of src starting at srcOff into dst at
// dstOff, reading only src's data regions (SEEK_DATA/SEEK_HOLE) and writing
// only the blocks that are not all zeros. The skipped ranges of dst must
// already read as zeros, as they do in a freshly truncated file: that is
// what keeps a disk image sparse. If dst is shorter than dstOff+length it is
// extended. It returns the number of bytes actually written.
func CopySparse(ctx context.Context, dst *os.File, dstOff int64, src *os.File, srcOff, length int64) (int64, error) {
	if srcOff < 0 || dstOff < 0 || length < 0 {
		return 0, fmt.Errorf("copy %s to %s: negative offset or length", src.Name(), dst.Name())
	}
	end := srcOff + length
	buf := make([]byte, copyChunk)
	var written int64
	pos := srcOff
	for pos < end {
		if err := ctx.Err(); err != nil {
			return written, err
		}
		dataStart, dataEnd, err := NextData(src, pos, end)
		if err != nil {
			return written, fmt.Errorf("copy %s: %w", src.Name(), err)
		}
		if dataStart >= end {
			break
		}
		for off := dataStart; off < dataEnd; {
			n := int64(len(buf))
			if off+n > dataEnd {
				n = dataEnd - off
			}
			chunk := buf[:n]
			if _, err := src.ReadAt(chunk, off); err != nil && !errors.Is(err, io.EOF) {
				return written, fmt.Errorf("read %s at %d: %w", src.Name(), off, err)
			}
			w, err := writeNonZero(dst, chunk, dstOff+(off-srcOff))
			written += w
			if err != nil {
				return written, err
			}
			off += n
		}
		pos = dataEnd
	}
	fi, err := dst.Stat()
	if err != nil {
		return written, err
	}
	if fi.Size() < dstOff+length {
		if err := dst.Truncate(dstOff + length); err != nil {
			return written, fmt.Errorf("extend %s: %w", dst.Name(), err)
		}
	}
	return written, nil
}

// NextData finds the first data region of f at or after pos, clipped to
// end. Filesystems without SEEK_DATA support report the whole rest as data.
func NextData(f *os.File, pos, end int64) (start, stop int64, err error) {
	start, err = f.Seek(pos, seekData)
	if err != nil {
		if errors.Is(err, syscall.ENXIO) { // no data after pos
			return end, end, nil
		}
		if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.EOPNOTSUPP) {
			return pos, end, nil
		}
		return 0, 0, fmt.Errorf("seek data at %d: %w", pos, err)
	}
	if start >= end {
		return end, end, nil
	}
	stop, err = f.Seek(start, seekHole)
	if err != nil {
		return 0, 0, fmt.Errorf("seek hole at %d: %w", start, err)
	}
	return start, min(stop, end), nil
}

// writeNonZero writes p at off in f, leaving out each zeroBlock-aligned
// (relative to p) block that is all zeros.
func writeNonZero(f *os.File, p []byte, off int64) (int64, error) {
	var written int64
	runStart := -1
	flush := func(i int) error {
		if runStart < 0 {
			return nil
		}
		at := off + int64(runStart)
		n, err := f.WriteAt(p[runStart:i], at)
		written += int64(n)
		runStart = -1
		if err != nil {
			return fmt.Errorf("write %s at %d: %w", f.Name(), at, err)
		}
		return nil
	}
	var zero [zeroBlock]byte
	for i := 0; i < len(p); i += zeroBlock {
		j := min(i+zeroBlock, len(p))
		if bytes.Equal(p[i:j], zero[:j-i]) {
			if err := flush(i); err != nil {
				return written, err
			}
			continue
		}
		if runStart < 0 {
			runStart = i
		}
	}
	return written, flush(len(p))
}
