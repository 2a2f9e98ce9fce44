package flash

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/applbuild/applbuild/builder/compress"
	"github.com/applbuild/applbuild/internal/progress"
)

// Options says what to write where.
type Options struct {
	Image  string // .img or .img.xz
	Bmap   string // "" looks beside the image (FindBmap)
	Target string // a block device or a regular file
	Force  bool   // write a partition, a non-removable or a very large device
	Yes    bool   // no confirmation
	// Confirm asks the user, naming the device; nil when there is no
	// terminal to ask on, and then a device is refused unless Yes.
	Confirm func(question string) (bool, error)
	Host    Host               // the zero Host is RealHost()
	Report  *progress.Reporter // nil: no progress

	// beforeVerify runs between the synced write and the read-back (tests
	// corrupt the target there).
	beforeVerify func(target string)
	// afterWrite runs after each buffer written (tests interrupt there).
	afterWrite func()
}

// Result is what was written.
type Result struct {
	Image    *Image
	Bmap     string  // the bmap used, or ""
	Device   *Device // nil for a regular file
	Written  int64   // bytes written (and read back)
	Duration time.Duration
}

// segment is how much of an image without a bmap one checksum covers.
const segment = 64 << 20

// extent is a range to write, with the sha256 its bytes must have (from
// the bmap) or, once written, had in the source.
type extent struct {
	compress.Extent
	sum string
}

// Flash writes the image to the target and reads every written range back.
func Flash(ctx context.Context, o Options) (*Result, error) {
	start := time.Now()
	if o.Host == (Host{}) {
		o.Host = RealHost()
	}
	img, err := OpenImage(ctx, o.Image)
	if err != nil {
		return nil, err
	}
	res := &Result{Image: img, Bmap: o.Bmap}
	if res.Bmap == "" {
		res.Bmap = FindBmap(o.Image)
	}
	extents, err := plan(img, res.Bmap)
	if err != nil {
		return nil, err
	}
	target, dev, err := openTarget(o, img)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	res.Device = dev
	name := o.Target
	if written, err := write(ctx, o.Report, target, img, extents, o.afterWrite); err != nil {
		target.Sync()
		if written == 0 && dev != nil {
			return nil, fmt.Errorf("%w: nothing was written to %s", err, name)
		}
		return nil, fmt.Errorf("%w: %s is incomplete and will not boot; write it again", err, name)
	}
	if err := target.Sync(); err != nil {
		return nil, fmt.Errorf("sync %s: %w", name, err)
	}
	if err := dropCache(target, dev != nil); err != nil {
		return nil, err
	}
	if o.beforeVerify != nil {
		o.beforeVerify(name)
	}
	if err := verify(ctx, o.Report, name, extents); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w while verifying: %s is written but not checked", err, name)
		}
		return nil, err
	}
	for _, e := range extents {
		res.Written += e.Len
	}
	res.Duration = time.Since(start)
	return res, nil
}

// FindBmap is the bmap beside an image, as bmaptool looks for it:
// n1.img.xz.bmap, n1.img.bmap, n1.bmap; "" when there is none.
func FindBmap(image string) string {
	cands := []string{image + ".bmap"}
	base := strings.TrimSuffix(image, ".xz")
	cands = append(cands, base+".bmap", strings.TrimSuffix(base, ".img")+".bmap")
	for _, c := range cands {
		if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() {
			return c
		}
	}
	return ""
}

// plan lists what to write: the bmap's ranges, or the whole image.
func plan(img *Image, bmapPath string) ([]extent, error) {
	if bmapPath == "" {
		var out []extent
		for off := int64(0); off < img.Size; off += segment {
			out = append(out, extent{Extent: compress.Extent{Off: off, Len: min(segment, img.Size-off)}})
		}
		return out, nil
	}
	data, err := os.ReadFile(bmapPath)
	if err != nil {
		return nil, err
	}
	m, err := compress.ParseBmap(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", bmapPath, err)
	}
	if m.ImageSize != img.Size {
		return nil, fmt.Errorf("%s is for an image of %d bytes, %s has %d: not its bmap", bmapPath, m.ImageSize, img.Path, img.Size)
	}
	var out []extent
	for _, r := range m.Ranges {
		out = append(out, extent{Extent: m.Extent(r), sum: r.SHA256})
	}
	return out, nil
}

func refused(target string, why ...string) error {
	return fmt.Errorf("%w to write %s: %s", ErrRefused, target, strings.Join(why, "; "))
}

// openTarget checks the target and opens it for writing.
func openTarget(o Options, img *Image) (*os.File, *Device, error) {
	fi, err := os.Stat(o.Target)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if strings.HasPrefix(filepath.Clean(o.Target), "/dev/") {
			return nil, nil, refused(o.Target, "there is no such device (is the stick plugged in?); a file is not made under /dev")
		}
		return openFile(o.Target, img)
	case err != nil:
		return nil, nil, err
	case fi.Mode().IsRegular():
		for _, p := range []string{img.Path, o.Bmap, FindBmap(img.Path)} {
			if pi, err := os.Stat(p); err == nil && p != "" && os.SameFile(fi, pi) {
				return nil, nil, refused(o.Target, "it is "+p+" itself")
			}
		}
		return openFile(o.Target, img)
	case fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0:
		return nil, nil, refused(o.Target, "it is neither a block device nor a regular file")
	}
	dev, err := o.Host.Inspect(o.Target)
	if err != nil {
		return nil, nil, err
	}
	why, err := o.Host.Refusals(dev, img.Size, o.Force)
	if err != nil {
		return nil, nil, err
	}
	if len(why) > 0 {
		return nil, nil, refused(dev.Describe(), why...)
	}
	if !o.Yes {
		if o.Confirm == nil {
			return nil, nil, refused(dev.Describe(), "no terminal to confirm on (--yes to write without asking)")
		}
		ok, err := o.Confirm(fmt.Sprintf("Write %s (%s) to %s? Everything on it is lost.",
			filepath.Base(img.Path), compress.HumanSize(img.Size), dev.Describe()))
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			return nil, nil, refused(dev.Describe(), "not confirmed")
		}
	}
	// O_EXCL on a block device: the kernel refuses it if it is mounted or
	// claimed, also by something that came after the checks above.
	f, err := os.OpenFile(o.Target, os.O_WRONLY|unix.O_EXCL, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", o.Target, err)
	}
	return f, dev, nil
}

// openFile makes the target file the image's size, reading as zeros
// wherever nothing is written.
func openFile(path string, img *Image) (*os.File, *Device, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, nil, err
	}
	if err := f.Truncate(img.Size); err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, nil, nil
}

const bufSize = 4 << 20

// write copies each extent from the image to the target, checking the
// bmap's checksums and recording the source's where there are none. It
// returns how much it wrote, also when it fails.
func write(ctx context.Context, rep *progress.Reporter, target *os.File, img *Image, extents []extent, after func()) (written int64, err error) {
	src, err := img.open(ctx)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	m := newMeter(rep, "write "+target.Name(), total(extents))
	buf := make([]byte, bufSize)
	for i := range extents {
		e := &extents[i]
		r, err := src.section(e.Extent)
		if err != nil {
			return m.done, m.fail(err)
		}
		h := sha256.New()
		for off := e.Off; off < e.End(); {
			if err := ctx.Err(); err != nil {
				return m.done, m.fail(fmt.Errorf("interrupted after %s of %s", compress.HumanSize(m.done), compress.HumanSize(m.total)))
			}
			p := buf[:min(int64(len(buf)), e.End()-off)]
			if _, err := io.ReadFull(r, p); err != nil {
				return m.done, m.fail(fmt.Errorf("read %s at %d: %w", img.Path, off, err))
			}
			h.Write(p)
			if _, err := target.WriteAt(p, off); err != nil {
				return m.done, m.fail(fmt.Errorf("write %s at %d: %w", target.Name(), off, err))
			}
			off += int64(len(p))
			m.add(int64(len(p)))
			if after != nil {
				after()
			}
		}
		sum := hex.EncodeToString(h.Sum(nil))
		if e.sum != "" && e.sum != sum {
			return m.done, m.fail(fmt.Errorf("%s does not match its bmap at %s: the image or the bmap is corrupt", img.Path, span(e.Extent)))
		}
		e.sum = sum
	}
	m.finish()
	return m.done, nil
}

// dropCache makes the read-back come from the device: the written pages
// leave the page cache (and, for a block device, its buffer cache).
func dropCache(f *os.File, blockDev bool) error {
	if blockDev {
		if err := unix.IoctlSetInt(int(f.Fd()), unix.BLKFLSBUF, 0); err != nil {
			return fmt.Errorf("flush %s's buffers: %w", f.Name(), err)
		}
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("drop %s from the page cache: %w", f.Name(), err)
	}
	return nil
}

// verify reads every written extent back and compares its sha256.
func verify(ctx context.Context, rep *progress.Reporter, name string, extents []extent) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	m := newMeter(rep, "verify "+name, total(extents))
	buf := make([]byte, bufSize)
	for _, e := range extents {
		var h hash.Hash = sha256.New()
		for off := e.Off; off < e.End(); {
			if err := ctx.Err(); err != nil {
				return m.fail(fmt.Errorf("interrupted"))
			}
			p := buf[:min(int64(len(buf)), e.End()-off)]
			if _, err := f.ReadAt(p, off); err != nil {
				return m.fail(fmt.Errorf("read back %s at %d: %w", name, off, err))
			}
			h.Write(p)
			off += int64(len(p))
			m.add(int64(len(p)))
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != e.sum {
			return m.fail(fmt.Errorf("verify: %s reads back different bytes than were written at %s: the device is failing or not what it claims to be", name, span(e.Extent)))
		}
	}
	m.finish()
	return nil
}

func span(e compress.Extent) string {
	return fmt.Sprintf("bytes %d-%d (blocks %d-%d)", e.Off, e.End()-1, e.Off/compress.BlockSize, (e.End()-1)/compress.BlockSize)
}

func total(extents []extent) int64 {
	var n int64
	for _, e := range extents {
		n += e.Len
	}
	return n
}
