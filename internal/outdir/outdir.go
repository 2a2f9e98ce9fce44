// Package outdir writes a directory of results so that a reader sees either
// the previous complete result or the new complete one, never half of it,
// and so that applbuild never destroys what it did not make:
//
//   - the work happens in a temp dir beside the target, renamed into place
//     only when it succeeded;
//   - a directory is replaced only when it is absent, empty, or marked as
//     applbuild's by Marker (written into every result); anything else (a
//     file, a symlink, a project directory, $HOME) is refused with the
//     reason, as ErrRefused;
//   - one process at a time writes a directory (a flock beside it), and the
//     holder of that lock removes what a killed run left behind (temp and
//     work dirs of the same name), since no live run can own them;
//   - results hold secrets (private keys, password hashes), so they are
//     private to the user, or to the group Access names.
package outdir

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// Marker is the file in every directory applbuild made, the proof that the
// next run may replace it.
const Marker = ".applbuild-output"

const markerText = "This directory was written by applbuild; the next applbuild render or\nbuild into it replaces it as a whole.\n"

// ErrRefused matches every *RefusedError.
var ErrRefused = errors.New("not an applbuild output directory")

// RefusedError is a directory applbuild will not write into, and why.
type RefusedError struct {
	Dir    string
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("refusing to write %s: %s (applbuild writes only into an absent or empty directory, or one of its own outputs marked by %s)",
		e.Dir, e.Reason, Marker)
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// ErrBusy is another applbuild writing the same directory.
var ErrBusy = errors.New("another applbuild is writing it")

// Check returns nil when dir may be written: it does not exist, or it is a
// directory (not a symlink to one) that is empty or holds Marker.
func Check(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if abs == filepath.Dir(abs) {
		return &RefusedError{Dir: dir, Reason: "it is the root directory"}
	}
	fi, err := os.Lstat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case errors.Is(err, syscall.ENOTDIR):
		return &RefusedError{Dir: dir, Reason: "a parent of it is not a directory"}
	case err != nil:
		return err
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return &RefusedError{Dir: dir, Reason: "it is a symlink"}
	case !fi.IsDir():
		return &RefusedError{Dir: dir, Reason: "it is a file, not a directory"}
	}
	m, err := os.Lstat(filepath.Join(abs, Marker))
	if err == nil && m.Mode().IsRegular() {
		return nil
	}
	des, err := os.ReadDir(abs)
	if err != nil {
		return err
	}
	if len(des) > 0 {
		return &RefusedError{Dir: dir, Reason: fmt.Sprintf("it holds %d entries and is not an applbuild output", len(des))}
	}
	return nil
}

// Access is who may read an output: the user alone (the zero value), or
// also the members of one group.
type Access struct {
	GID   int    // group to own every file, when Group is set
	Group string // the group's name, "" for private to the user
}

// GroupAccess looks the group name up; "" gives the private Access.
func GroupAccess(name string) (Access, error) {
	if name == "" {
		return Access{}, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return Access{}, fmt.Errorf("--group %s: %w", name, err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return Access{}, fmt.Errorf("--group %s: gid %q: %w", name, g.Gid, err)
	}
	return Access{GID: gid, Group: name}, nil
}

// DirMode is a result directory's mode: 0700, or 0750 for a group.
func (a Access) DirMode() fs.FileMode {
	if a.Group != "" {
		return 0o750
	}
	return 0o700
}

// FileMode is a result file's mode: 0600, or 0640 for a group.
func (a Access) FileMode() fs.FileMode {
	if a.Group != "" {
		return 0o640
	}
	return 0o600
}

// apply gives p the mode (and group) of a result directory or file.
func (a Access) apply(p string, mode fs.FileMode) error {
	if a.Group != "" {
		if err := os.Lchown(p, -1, a.GID); err != nil {
			return err
		}
	}
	return os.Chmod(p, mode)
}

// Restrict makes every directory and regular file below root (root too) a
// result's: DirMode and FileMode, owned by the group. Symlinks are left.
func (a Access) Restrict(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
			return a.apply(p, a.DirMode())
		case d.Type().IsRegular():
			return a.apply(p, a.FileMode())
		}
		return nil
	})
}

// Dir is an output directory locked for writing.
type Dir struct {
	path   string // absolute
	access Access
	lock   *os.File
}

// Open checks dir (see Check), takes the lock beside it and removes what
// killed runs left there. Close releases it.
func Open(dir string, a Access) (*Dir, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := Check(abs); err != nil {
		var re *RefusedError
		if errors.As(err, &re) {
			re.Dir = dir
		}
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return nil, err
	}
	lock, err := lockFile(lockPath(abs))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	d := &Dir{path: abs, access: a, lock: lock}
	if err := d.removeStale(); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Path is the directory, absolute.
func (d *Dir) Path() string { return d.path }

// Close releases the lock and removes its file.
func (d *Dir) Close() error {
	if d.lock == nil {
		return nil
	}
	// Removed before the unlock: a waiter that opened it meanwhile sees
	// that its inode is gone and retries (lockFile).
	err := os.Remove(d.lock.Name())
	if cerr := d.lock.Close(); err == nil {
		err = cerr
	}
	d.lock = nil
	return err
}

func lockPath(abs string) string {
	return filepath.Join(filepath.Dir(abs), "."+filepath.Base(abs)+".lock")
}

// lockFile takes an exclusive flock on path without waiting, retrying when
// the file it locked was removed by the previous holder in between.
func lockFile(path string) (*os.File, error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, ErrBusy
			}
			return nil, err
		}
		held, err1 := f.Stat()
		now, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return f, nil
		}
		f.Close()
	}
}

// TempDir makes a fresh directory beside the output, named so that the
// next run recognises it as stale if this one is killed: .<base>.<kind>-N.
func (d *Dir) TempDir(kind string) (string, error) {
	if kind != "tmp" && kind != "work" {
		return "", fmt.Errorf("outdir: temp dir kind %q: want tmp or work", kind)
	}
	return os.MkdirTemp(filepath.Dir(d.path), "."+filepath.Base(d.path)+"."+kind+"-")
}

// removeStale removes the temp dirs of this output that runs killed before
// their cleanup left: with the lock held, no live run owns any.
func (d *Dir) removeStale() error {
	parent, base := filepath.Dir(d.path), filepath.Base(d.path)
	// TempDir's names: .<base>.<tmp|work>-<digits>, and swap's .old.
	re := regexp.MustCompile(`^\.` + regexp.QuoteMeta(base) + `\.(tmp|work)-[0-9]+(\.old)?$`)
	des, err := os.ReadDir(parent)
	if err != nil {
		return err
	}
	for _, de := range des {
		if !de.IsDir() || !re.MatchString(de.Name()) {
			continue
		}
		p := filepath.Join(parent, de.Name())
		slog.Info("removing what an interrupted run left", "dir", p)
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("remove stale %s: %w", p, err)
		}
	}
	return nil
}

// Replace calls fill with a fresh temp dir beside the output, holding the
// Marker and private to d's Access; when fill succeeds the temp dir
// replaces the output, otherwise it is removed and the output is untouched.
func (d *Dir) Replace(fill func(tmp string) error) (err error) {
	tmp, err := d.TempDir("tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := d.access.apply(tmp, d.access.DirMode()); err != nil {
		return err
	}
	if err := writeMarker(tmp, d.access); err != nil {
		return err
	}
	if err := fill(tmp); err != nil {
		return err
	}
	// Checked again: the output may have changed since Open (by hand:
	// every applbuild run waits for the lock).
	if err := Check(d.path); err != nil {
		return err
	}
	return swap(tmp, d.path)
}

func writeMarker(dir string, a Access) error {
	p := filepath.Join(dir, Marker)
	if err := os.WriteFile(p, []byte(markerText), a.FileMode()); err != nil {
		return err
	}
	return a.apply(p, a.FileMode())
}

// Replace is Open, Replace and Close in one.
func Replace(dir string, a Access, fill func(tmp string) error) error {
	d, err := Open(dir, a)
	if err != nil {
		return err
	}
	err = d.Replace(fill)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Claim makes dir an output directory that holds others (build's --out
// and --out/<personality>): created with Marker when absent, marked when
// empty, accepted when marked, refused otherwise.
func Claim(dir string, a Access) error {
	if err := Check(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, a.DirMode()); err != nil {
		return err
	}
	if _, err := os.Lstat(filepath.Join(dir, Marker)); err == nil {
		return nil
	}
	return writeMarker(dir, a)
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
