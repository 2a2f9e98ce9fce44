package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
)

// hashDir hashes every file below dir/sub, sorted by path, with paths
// relative to dir.
func hashDir(ctx context.Context, dir, sub string) ([]File, error) {
	var paths []string
	err := filepath.WalkDir(filepath.Join(dir, sub), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		paths = append(paths, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(paths)
	return hashFiles(ctx, dir, paths)
}

// hashFiles hashes every file in parallel (the images are gigabytes of
// mostly holes; sha256 is the cost) and returns them in the order given.
func hashFiles(ctx context.Context, dir string, paths []string) ([]File, error) {
	out := make([]File, len(paths))
	errs := make([]error, len(paths))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), max(1, len(paths))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				out[i], errs[i] = hashFile(ctx, dir, paths[i])
			}
		}()
	}
	for i := range paths {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return out, errors.Join(errs...)
}

const block = 4096

// hashFile reads one file once for its sha256 and its non-zero blocks.
func hashFile(ctx context.Context, dir, rel string) (File, error) {
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		return File{}, err
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	var size, alloc int64
	for {
		if err := ctx.Err(); err != nil {
			return File{}, err
		}
		n, err := io.ReadFull(f, buf)
		if n > 0 {
			h.Write(buf[:n])
			size += int64(n)
			for off := 0; off < n; off += block {
				if !zero(buf[off:min(off+block, n)]) {
					alloc += int64(min(block, n-off))
				}
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return File{}, fmt.Errorf("hash %s: %w", rel, err)
		}
	}
	return File{Path: rel, Size: size, Allocated: alloc, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// zeros is compared against, never written.
var zeros [block]byte

func zero(b []byte) bool { return bytes.Equal(b, zeros[:len(b)]) }
