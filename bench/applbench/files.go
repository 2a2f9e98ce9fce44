package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/applbuild/applbuild/builder/disk"
)

// fileSize is what a file costs three ways.
type fileSize struct {
	Apparent  int64 // st_size (du --apparent-size)
	Allocated int64 // st_blocks × 512 (du)
	Data      int64 // 4 KiB blocks that are not all zeros (what a sparse copy stores)
}

func (a *fileSize) add(b fileSize) {
	a.Apparent += b.Apparent
	a.Allocated += b.Allocated
	a.Data += b.Data
}

func sizeOf(path string) (fileSize, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileSize{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileSize{}, fmt.Errorf("%s: no stat_t", path)
	}
	data, err := nonZero(path)
	if err != nil {
		return fileSize{}, err
	}
	return fileSize{Apparent: fi.Size(), Allocated: st.Blocks * 512, Data: data}, nil
}

// nonZero counts the bytes in 4 KiB blocks that hold anything but zeros,
// reading only the file's data extents (SEEK_DATA/SEEK_HOLE), so the
// figure is the same on every filesystem, like the manifest's allocated.
func nonZero(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	const (
		seekData = 3
		seekHole = 4
		block    = 4096
	)
	buf := make([]byte, 1<<20)
	zero := make([]byte, block)
	var n, off int64
	for off < fi.Size() {
		start, err := f.Seek(off, seekData)
		if err != nil {
			if errors.Is(err, syscall.ENXIO) {
				break
			}
			return 0, err
		}
		end, err := f.Seek(start, seekHole)
		if err != nil {
			return 0, err
		}
		start = start / block * block
		for p := start; p < end; {
			m, err := f.ReadAt(buf[:min(int64(len(buf)), (end-p+block-1)/block*block)], p)
			if err != nil && err != io.EOF {
				return 0, err
			}
			for i := 0; i < m; i += block {
				if !bytes.Equal(buf[i:min(i+block, m)], zero[:min(block, m-i)]) {
					n += block
				}
			}
			if m == 0 {
				break
			}
			p += int64(m)
		}
		off = end
	}
	return n, nil
}

// kindSizes groups the files under dir by kind: the file name, with every
// node's xl config counted as "<node>.cfg".
func kindSizes(dir string) (map[string]fileSize, map[string]int, error) {
	sizes, counts := map[string]fileSize{}, map[string]int{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		kind := d.Name()
		if strings.HasSuffix(kind, ".cfg") {
			kind = "<node>.cfg"
		}
		s, err := sizeOf(p)
		if err != nil {
			return err
		}
		t := sizes[kind]
		t.add(s)
		sizes[kind] = t
		counts[kind]++
		return nil
	})
	return sizes, counts, err
}

// ext4Used is the bytes in use inside an ext4 image (blocks minus free
// blocks, from its superblock).
func ext4Used(r *runner, img string) (int64, error) {
	out, err := r.output("dumpe2fs", "-h", img)
	if err != nil {
		return 0, err
	}
	var count, free, bs int64
	for _, l := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			continue
		}
		switch strings.TrimSpace(k) {
		case "Block count":
			count = n
		case "Free blocks":
			free = n
		case "Block size":
			bs = n
		}
	}
	if count == 0 || bs == 0 {
		return 0, fmt.Errorf("dumpe2fs %s: no block count", img)
	}
	return (count - free) * bs, nil
}

// installedPackages counts the packages dpkg's status in an ext4 image
// says are installed, read with debugfs (no mount).
func installedPackages(r *runner, img string) (int, error) {
	out, err := r.output("debugfs", "-R", "cat /var/lib/dpkg/status", img)
	if err != nil {
		return 0, err
	}
	return strings.Count(out, "\nStatus: install ok installed"), nil
}

func size(n int64) string { return disk.FormatSize(n, false) }
