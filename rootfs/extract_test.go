package rootfs

import (
	"archive/tar"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/applbuild/applbuild/internal/testenv"
)

// TestExtractKeepsEverything extracts a hand-made tarball with each kind of
// member a rootfs has and checks every property Extract promises.
func TestExtractKeepsEverything(t *testing.T) {
	testenv.Root(t)
	testenv.Tools(t, "tar")
	mtime := time.Unix(1700000000, 0)
	tarball := filepath.Join(t.TempDir(), "t.tar")
	f, err := os.Create(tarball)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for _, h := range []*tar.Header{
		{Name: "./usr/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX},
		{Name: "./usr/bin/", Typeflag: tar.TypeDir, Mode: 0o700, Uid: 0, ModTime: mtime, Format: tar.FormatPAX},
		{Name: "./usr/bin/su", Typeflag: tar.TypeReg, Mode: 0o4755, Uid: 0, ModTime: mtime, Size: 3, Format: tar.FormatPAX},
		{Name: "./usr/bin/arping", Typeflag: tar.TypeReg, Mode: 0o755, Uid: 4242, Gid: 4343, ModTime: mtime, Size: 3, Format: tar.FormatPAX,
			// a capability set is binary; a user xattr proves the path
			PAXRecords: map[string]string{"SCHILY.xattr.user.applbuild": "cap"}},
		{Name: "./usr/bin/su-link", Typeflag: tar.TypeLink, Linkname: "./usr/bin/su", ModTime: mtime, Format: tar.FormatPAX},
		{Name: "./bin", Typeflag: tar.TypeSymlink, Linkname: "usr/bin", ModTime: mtime, Format: tar.FormatPAX},
		{Name: "./dev/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX},
		{Name: "./dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: mtime, Format: tar.FormatPAX},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			if _, err := tw.Write([]byte("abc")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(t.TempDir(), "root")
	if err := Extract(t.Context(), tarball, dir); err != nil {
		t.Fatal(err)
	}
	st := func(rel string) *syscall.Stat_t {
		t.Helper()
		var s syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(dir, rel), &s); err != nil {
			t.Fatal(err)
		}
		return &s
	}
	if s := st("usr/bin/su"); s.Mode&0o7777 != 0o4755 || s.Mtim.Sec != mtime.Unix() {
		t.Errorf("su mode %o mtime %d", s.Mode&0o7777, s.Mtim.Sec)
	}
	if s := st("usr/bin/arping"); s.Uid != 4242 || s.Gid != 4343 {
		t.Errorf("arping owner %d:%d, want numeric 4242:4343", s.Uid, s.Gid)
	}
	buf := make([]byte, 16)
	if n, err := syscall.Getxattr(filepath.Join(dir, "usr/bin/arping"), "user.applbuild", buf); err != nil || string(buf[:n]) != "cap" {
		t.Errorf("xattr = %q, %v", buf[:n], err)
	}
	if a, b := st("usr/bin/su"), st("usr/bin/su-link"); a.Ino != b.Ino {
		t.Error("hard link extracted as a copy")
	}
	if l, err := os.Readlink(filepath.Join(dir, "bin")); err != nil || l != "usr/bin" {
		t.Errorf("symlink = %q, %v", l, err)
	}
	if s := st("dev/null"); s.Mode&syscall.S_IFMT != syscall.S_IFCHR || s.Rdev != 1<<8|3 {
		t.Errorf("dev/null mode %o rdev %d", s.Mode, s.Rdev)
	}
	// Directory modes and mtimes are restored after their contents.
	if s := st("usr/bin"); s.Mode&0o777 != 0o700 || s.Mtim.Sec != mtime.Unix() {
		t.Errorf("usr/bin mode %o mtime %d", s.Mode&0o777, s.Mtim.Sec)
	}
}

func TestExtractMissingTarball(t *testing.T) {
	testenv.Tools(t, "tar")
	if err := Extract(t.Context(), filepath.Join(t.TempDir(), "none.tar"), t.TempDir()); err == nil {
		t.Error("Extract of a missing tarball succeeded")
	}
}
