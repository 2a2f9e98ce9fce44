package pipeline

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"

	"github.com/applbuild/applbuild/builder/disk"
)

// NoSpaceError is a build that ran out of disk space on the host (not in
// an image: that is disk.ErrNoSpace, a spec's size too small). It names the
// directory, what the build needs there and what was free.
type NoSpaceError struct {
	Dir  string // where the build writes: the output's parent
	What string // which flag chooses it
	Need int64  // about what the build writes there, 0 if unknown
	Free int64  // free bytes when the build started, -1 if unknown
	Err  error
}

func (e *NoSpaceError) Error() string {
	msg := fmt.Sprintf("out of disk space in %s", e.Dir)
	switch {
	case e.Need > 0 && e.Free >= 0:
		msg += fmt.Sprintf(": this build needs about %s there, %s was free when it started",
			disk.FormatSize(e.Need, false), disk.FormatSize(e.Free, false))
	case e.Free >= 0:
		msg += fmt.Sprintf(" (%s was free when the build started)", disk.FormatSize(e.Free, false))
	}
	return msg + fmt.Sprintf("; free some space there or pass %s a directory on a larger file system: %v", e.What, e.Err)
}

func (e *NoSpaceError) Unwrap() error { return e.Err }

// noSpace wraps err in a NoSpaceError when it is a full disk.
func noSpace(err error, dir, what string, need, free int64) error {
	if err == nil || !errors.Is(err, syscall.ENOSPC) {
		return err
	}
	var ns *NoSpaceError
	if errors.As(err, &ns) {
		return err
	}
	return &NoSpaceError{Dir: dir, What: what, Need: need, Free: free, Err: err}
}

// freeSpace is what root may still write in dir (the reserved blocks
// included), -1 if it cannot be known.
func freeSpace(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return -1
	}
	return int64(st.Bfree) * st.Bsize
}

// treeSize is the apparent size of the regular files under dir.
func treeSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
