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

// swap moves tmp to dir. An existing dir is moved aside first and removed
// after: the window where dir is missing is two renames long.
func swap(tmp, dir string) error {
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
