package compress

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/applbuild/applbuild/builder/disk"
)

// Extent is the byte range [Off, Off+Len) of a file.
type Extent struct {
	Off, Len int64
}

// End is the offset just past the extent.
func (e Extent) End() int64 { return e.Off + e.Len }

// DataExtents lists the data regions of f's first size bytes, in order,
// found with SEEK_DATA/SEEK_HOLE. On a filesystem without them the whole
// file is one data region: correct, only not sparse.
func DataExtents(f *os.File, size int64) ([]Extent, error) {
	var out []Extent
	for pos := int64(0); pos < size; {
		start, end, err := disk.NextData(f, pos, size)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name(), err)
		}
		if start >= size {
			break
		}
		out = append(out, Extent{start, end - start})
		pos = end
	}
	return out, nil
}

// sparseReader reads a sparse file front to back, reading its data
// extents and producing its holes as zeros.
type sparseReader struct {
	f       *os.File
	size    int64
	extents []Extent // data regions still ahead
	pos     int64
}

// NewSparseReader reads f's whole content as of now, holes as zeros,
// without reading the holes from the filesystem.
func NewSparseReader(f *os.File) (io.Reader, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	ext, err := DataExtents(f, fi.Size())
	if err != nil {
		return nil, err
	}
	return &sparseReader{f: f, size: fi.Size(), extents: ext}, nil
}

func (r *sparseReader) Read(p []byte) (int, error) {
	if r.pos >= r.size {
		return 0, io.EOF
	}
	for len(r.extents) > 0 && r.extents[0].End() <= r.pos {
		r.extents = r.extents[1:]
	}
	p = p[:min(int64(len(p)), r.size-r.pos)]
	if len(r.extents) == 0 || r.pos < r.extents[0].Off {
		// In a hole: zeros up to the next extent.
		next := r.size
		if len(r.extents) > 0 {
			next = r.extents[0].Off
		}
		n := min(int64(len(p)), next-r.pos)
		clear(p[:n])
		r.pos += n
		return int(n), nil
	}
	n := min(int64(len(p)), r.extents[0].End()-r.pos)
	got, err := r.f.ReadAt(p[:n], r.pos)
	r.pos += int64(got)
	if errors.Is(err, io.EOF) {
		// The file shrank under us: the image is not what it was.
		return got, io.ErrUnexpectedEOF
	}
	return got, err
}
