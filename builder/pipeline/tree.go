package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/overlays"
)

// applyFiles writes files into tree as they stand in the image. Every
// write goes through os.Root, so a symlink in the tree (absolute, or
// ../../) can never send a write to the host; and every file is written
// as a new inode renamed over the old path, so a tree whose files are
// hard links to the shared rootfs never changes the shared copy.
func applyFiles(tree string, files []overlays.File) error {
	root, err := os.OpenRoot(tree)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, f := range files {
		name := strings.TrimPrefix(f.Path, "/")
		if name == "" {
			continue // the root directory itself: its mode is mke2fs's root_owner
		}
		if dir := path.Dir(name); dir != "." {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("%s: %w", f.Path, err)
			}
		}
		if err := applyFile(root, name, f); err != nil {
			return fmt.Errorf("%s (from %s): %w", f.Path, f.Generator, err)
		}
	}
	return nil
}

func applyFile(root *os.Root, name string, f overlays.File) error {
	switch {
	case f.IsDir():
		fi, err := root.Lstat(name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := root.Mkdir(name, f.Mode.Perm()); err != nil {
				return err
			}
		case err != nil:
			return err
		case !fi.IsDir():
			return fmt.Errorf("want a directory, the rootfs has a %s", fi.Mode().Type())
		}
		return root.Chmod(name, f.Mode.Perm()|f.Mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
	case f.IsLink():
		if err := removeNonDir(root, name); err != nil {
			return err
		}
		return root.Symlink(f.Link, name)
	default:
		tmp := name + ".applbuild-new"
		_ = root.Remove(tmp)
		w, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, werr := w.Write(f.Data)
		if cerr := w.Close(); werr == nil {
			werr = cerr
		}
		if werr == nil {
			// Chmod after the write: the umask must not trim the mode.
			werr = root.Chmod(tmp, f.Mode.Perm()|f.Mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
		}
		if werr == nil {
			werr = root.Rename(tmp, name)
		}
		if werr != nil {
			_ = root.Remove(tmp)
		}
		return werr
	}
}

func removeNonDir(root *os.Root, name string) error {
	fi, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("want a symlink, the rootfs has a directory")
	}
	return root.Remove(name)
}

// runSysusers creates the system users and groups the tree's sysusers.d
// files declare (the overlay adds some), so owners can be resolved by name
// at build time. It runs the image's own systemd-sysusers in a chroot when
// there is one (trixie's 257 knows syntax the host's 252 does not, such as
// "u!"), else the host's with --root. SOURCE_DATE_EPOCH pins the password
// change date it writes into /etc/shadow.
func runSysusers(ctx context.Context, tree string, epoch int64) error {
	var confs []string
	for _, d := range []string{"usr/lib/sysusers.d", "etc/sysusers.d"} {
		m, _ := filepath.Glob(filepath.Join(tree, d, "*.conf"))
		confs = append(confs, m...)
	}
	if len(confs) == 0 {
		return nil
	}
	env := []string{"SOURCE_DATE_EPOCH=" + strconv.FormatInt(epoch, 10), "LC_ALL=C"}
	cmd := run.Cmd{Args: []string{"systemd-sysusers", "--root=" + tree}, Env: env}
	if fi, err := os.Lstat(filepath.Join(tree, "usr/bin/systemd-sysusers")); err == nil && fi.Mode().IsRegular() && os.Geteuid() == 0 {
		cmd.Args = []string{"chroot", tree, "/usr/bin/systemd-sysusers"}
	}
	if _, err := cmd.Output(ctx); err != nil {
		return fmt.Errorf("create system users: %w", err)
	}
	return nil
}

// ids maps user and group names of one tree to numbers.
type ids struct{ users, groups map[string][2]int }

func readIDs(tree string) (*ids, error) {
	parse := func(file string, fields int) (map[string][2]int, error) {
		b, err := os.ReadFile(filepath.Join(tree, file))
		if err != nil {
			return nil, err
		}
		out := map[string][2]int{}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f := strings.Split(sc.Text(), ":")
			if len(f) < fields || strings.HasPrefix(f[0], "#") {
				continue
			}
			id, err1 := strconv.Atoi(f[2])
			gid, err2 := 0, error(nil)
			if fields > 4 {
				gid, err2 = strconv.Atoi(f[3])
			}
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("%s: bad line %q", file, sc.Text())
			}
			out[f[0]] = [2]int{id, gid}
		}
		return out, sc.Err()
	}
	u, err := parse("etc/passwd", 7)
	if err != nil {
		return nil, fmt.Errorf("read the image's users: %w", err)
	}
	g, err := parse("etc/group", 4)
	if err != nil {
		return nil, fmt.Errorf("read the image's groups: %w", err)
	}
	return &ids{users: u, groups: g}, nil
}

// resolve turns "user:group" or "user" (the user's primary group) into
// numbers; "" is root:root.
func (x *ids) resolve(owner string) (uid, gid int, err error) {
	if owner == "" {
		return 0, 0, nil
	}
	user, group, hasGroup := strings.Cut(owner, ":")
	u, ok := x.users[user]
	if !ok {
		return 0, 0, fmt.Errorf("user %q is not in the image's /etc/passwd (declare it in a sysusers.d file)", user)
	}
	uid, gid = u[0], u[1]
	if hasGroup {
		g, ok := x.groups[group]
		if !ok {
			return 0, 0, fmt.Errorf("group %q is not in the image's /etc/group (declare it in a sysusers.d file)", group)
		}
		gid = g[0]
	}
	return uid, gid, nil
}

// applyOwners gives every file its owner, by name, from the tree's own
// passwd and group. Without root there is nobody to give files to: the
// owners are checked but not applied (only tests build unprivileged).
func applyOwners(tree string, files []overlays.File) error {
	x, err := readIDs(tree)
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(tree)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, f := range files {
		uid, gid, err := x.resolve(f.Owner)
		if err != nil {
			return fmt.Errorf("%s (from %s): owner %q: %w", f.Path, f.Generator, f.Owner, err)
		}
		name := strings.TrimPrefix(f.Path, "/")
		if name == "" || os.Geteuid() != 0 {
			continue
		}
		if err := root.Lchown(name, uid, gid); err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
		if !f.IsLink() && f.Mode&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
			// chown clears set-id bits: put them back.
			if err := root.Chmod(name, f.Mode.Perm()|f.Mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
				return fmt.Errorf("%s: %w", f.Path, err)
			}
		}
	}
	return nil
}

// clampTimes sets every mtime later than epoch (files the build wrote,
// directories it wrote into) to epoch, as SOURCE_DATE_EPOCH clamping does
// for the rootfs tarball, so the image does not carry the build's clock.
// It returns how many entries it changed.
func clampTimes(tree string, epoch int64) (int, error) {
	n := 0
	err := filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if t := fi.ModTime(); t.Unix() < epoch || t.Unix() == epoch && t.Nanosecond() == 0 {
			return nil
		}
		n++
		return lutimes(p, epoch)
	})
	return n, err
}

// lutimes sets atime and mtime of p itself, not of what a symlink names.
func lutimes(p string, sec int64) error {
	const atFDCWD = -100
	const atSymlinkNofollow = 0x100
	ts := [2]syscall.Timespec{{Sec: sec}, {Sec: sec}}
	b, err := syscall.BytePtrFromString(p)
	if err != nil {
		return err
	}
	fd := atFDCWD
	_, _, errno := syscall.Syscall6(syscall.SYS_UTIMENSAT, uintptr(fd), uintptr(unsafe.Pointer(b)),
		uintptr(unsafe.Pointer(&ts[0])), atSymlinkNofollow, 0, 0)
	if errno != 0 {
		return &fs.PathError{Op: "utimensat", Path: p, Err: errno}
	}
	return nil
}
