// Package outdir writes a directory of results so that a reader sees either
// the previous complete result or the new complete one, never half of it:
// the work happens in a temp dir beside the target, renamed into place
// only when it succeeded.
package outdir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Replace calls fill with a fresh temp dir beside dir; when fill succeeds
// the temp dir replaces dir, otherwise it is removed and dir is untouched.
func Replace(dir string, fill func(tmp string) error) (err error) {
	dir = filepath.Clean(dir)
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := fill(tmp); err != nil {
		return err
	}
	return swap(tmp, dir)
}

// swap moves tmp to dir in one step where the file system can: an
// exchange (renameat2 RENAME_EXCHANGE) puts the new result at dir and the
// previous one at tmp, so at every instant, a SIGKILL or a power cut
// included, dir holds one complete result. Moving the previous one aside
// first left a window, two renames long, where a killed build left no
// output at all. File systems without the exchange fall back to that.
func swap(tmp, dir string) error {
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dir, unix.RENAME_EXCHANGE)
	switch {
	case err == nil:
		return os.RemoveAll(tmp) // now the previous result
	case errors.Is(err, unix.ENOENT):
		if _, serr := os.Lstat(tmp); serr != nil {
			return serr
		}
		return os.Rename(tmp, dir) // nothing to replace
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EOPNOTSUPP):
		return swapAside(tmp, dir)
	}
	return fmt.Errorf("replace %s: %w", dir, err)
}

// swapAside moves an existing dir aside, tmp into its place, and removes
// the previous one: for file systems that cannot exchange.
func swapAside(tmp, dir string) error {
	old := ""
	if _, err := os.Lstat(dir); err == nil {
		old = tmp + ".old"
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("move previous %s aside: %w", dir, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			_ = os.Rename(old, dir)
		}
		return err
	}
	if old != "" {
		return os.RemoveAll(old)
	}
	return nil
}
