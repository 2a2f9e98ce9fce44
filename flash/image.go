package flash

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/applbuild/applbuild/builder/compress"
	"github.com/applbuild/applbuild/internal/run"
)

// xzMagic starts every .xz stream.
var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0}

// Image is a raw or xz-compressed disk image.
type Image struct {
	Path       string
	Compressed bool
	Size       int64 // of the raw image
}

// OpenImage looks at path: xz or raw (by content, not by name), and how
// large the raw image is.
func OpenImage(ctx context.Context, path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("image %s is not a regular file", path)
	}
	head := make([]byte, len(xzMagic))
	n, _ := io.ReadFull(f, head)
	img := &Image{Path: path, Size: fi.Size()}
	if n == len(xzMagic) && bytes.Equal(head, xzMagic) {
		img.Compressed = true
		if img.Size, err = xzSize(ctx, path); err != nil {
			return nil, err
		}
	}
	return img, nil
}

// xzSize is the uncompressed size xz's index records, from
// `xz --robot --list`: "totals streams blocks compressed uncompressed ...".
func xzSize(ctx context.Context, path string) (int64, error) {
	out, err := run.Output(ctx, "xz", "--robot", "--list", path)
	if err != nil {
		return 0, fmt.Errorf("image %s: %w", path, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) > 4 && f[0] == "totals" {
			return strconv.ParseInt(f[4], 10, 64)
		}
	}
	return 0, fmt.Errorf("image %s: xz --list gave no size", path)
}

// source hands out the image's bytes extent by extent, in increasing order.
type source interface {
	section(e compress.Extent) (io.Reader, error)
	Close() error
}

// open starts reading the image's raw bytes.
func (img *Image) open(ctx context.Context) (source, error) {
	f, err := os.Open(img.Path)
	if err != nil {
		return nil, err
	}
	if !img.Compressed {
		return rawSource{f}, nil
	}
	f.Close()
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		cmd := &run.Cmd{Args: []string{"xz", "--decompress", "--stdout", img.Path}, Stdout: pw}
		_, err := cmd.Output(ctx)
		pw.CloseWithError(err) // nil: EOF
	}()
	return &streamSource{r: pr, cancel: cancel, done: done}, nil
}

type rawSource struct{ f *os.File }

func (s rawSource) section(e compress.Extent) (io.Reader, error) {
	return io.NewSectionReader(s.f, e.Off, e.Len), nil
}

func (s rawSource) Close() error { return s.f.Close() }

// streamSource reads a decompressed stream front to back, skipping what
// lies between extents.
type streamSource struct {
	r      *io.PipeReader
	pos    int64
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *streamSource) section(e compress.Extent) (io.Reader, error) {
	if e.Off < s.pos {
		return nil, fmt.Errorf("extent at %d is behind the stream at %d", e.Off, s.pos)
	}
	if n, err := io.CopyN(io.Discard, s.r, e.Off-s.pos); err != nil {
		return nil, fmt.Errorf("decompress: %d bytes short of %d: %w", e.Off-s.pos-n, e.Off, err)
	}
	s.pos = e.End()
	return io.LimitReader(s.r, e.Len), nil
}

func (s *streamSource) Close() error {
	s.cancel()
	s.r.Close()
	<-s.done
	return nil
}
