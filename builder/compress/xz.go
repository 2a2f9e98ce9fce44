package compress

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"

	"github.com/applbuild/applbuild/internal/run"
)

// XZOptions tunes XZ. The zero value is xz -6 on every CPU.
type XZOptions struct {
	Level   int // 0-9; 0 means 6, xz's default
	Threads int // 0 means GOMAXPROCS
}

// XZ compresses src into dst with xz-utils' xz in multi-threaded mode:
// independent blocks of 3 × the dictionary (24 MiB at -6), compressed in
// parallel and written in order, which xz -d, bmaptool and applbuild flash
// read as one stream. Multi-threaded mode is forced even on one CPU
// (-T+N), so the bytes depend on the level only, never on the machine's
// CPU count: a rebuild elsewhere gives the same .xz. Why the xz binary and
// not a Go encoder: docs/design.md, "Compression".
func XZ(ctx context.Context, dst io.Writer, src io.Reader, o XZOptions) error {
	level, threads := o.Level, o.Threads
	if level == 0 {
		level = 6
	}
	if level < 0 || level > 9 {
		return fmt.Errorf("xz: level %d is not 0-9", level)
	}
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	cmd := &run.Cmd{
		Args:   []string{"xz", "--compress", "--stdout", "-" + strconv.Itoa(level), "--threads=+" + strconv.Itoa(threads)},
		Stdin:  readerCtx{ctx, src},
		Stdout: dst,
	}
	if _, err := cmd.Output(ctx); err != nil {
		return fmt.Errorf("compress: %w", err)
	}
	return nil
}

// XZFile compresses the (sparse) image at src into dst, a new file made
// atomically: written beside it and renamed into place when complete.
func XZFile(ctx context.Context, dst, src string, o XZOptions) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	r, err := NewSparseReader(in)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".xz-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := XZ(ctx, tmp, r, o); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}
