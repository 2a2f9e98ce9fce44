package disk

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
)

const testUUID = "3f0c6b5e-8a1d-4c2e-9b7f-0d1e2f3a4b5c"

// makeTree builds a small tree with a hard link, a symlink, a long
// symlink and a user xattr; withDevice adds a character device (root).
func makeTree(t *testing.T, withDevice bool) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"etc", "usr/bin", "dev", "var/empty"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(dir, "etc/hostname"), "n1\n")
	writeFile(t, filepath.Join(dir, "usr/bin/tool"), strings.Repeat("#!/bin/sh\n", 5000))
	if err := os.Link(filepath.Join(dir, "usr/bin/tool"), filepath.Join(dir, "usr/bin/tool-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("tool", filepath.Join(dir, "usr/bin/short")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(strings.Repeat("long/", 20)+"target", filepath.Join(dir, "usr/bin/long")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setxattr(filepath.Join(dir, "usr/bin/tool"), "user.applbuild", []byte("cap-ish"), 0); err != nil {
		t.Fatalf("setxattr: %v", err)
	}
	if withDevice {
		if err := syscall.Mknod(filepath.Join(dir, "dev/null"), syscall.S_IFCHR|0o666, int(1<<8|3)); err != nil {
			t.Fatalf("mknod: %v", err)
		}
		if err := os.Chmod(filepath.Join(dir, "dev/null"), 0o666); err != nil { // mknod obeys the umask
			t.Fatal(err)
		}
	}
	// Fixed times, so the test does not depend on when it runs; touch -h
	// reaches the symlinks themselves, which os.Chtimes cannot.
	when := time.Unix(1600000000, 0)
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return run.Run(context.Background(), "touch", "-h", "-d", "@1600000000", p)
		}
		return os.Chtimes(p, when, when)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestMakeExt4Reproducible(t *testing.T) {
	testenv.Tools(t, "mke2fs", "e2fsck", "debugfs", "sh", "touch")
	ctx := context.Background()
	// Two unpackings of one tree: same content and mtimes, different
	// ctimes (a second apart) and inode numbers.
	src1 := makeTree(t, false)
	time.Sleep(1100 * time.Millisecond)
	src2 := makeTree(t, false)
	dir := t.TempDir()
	opts := func(path, src, uuid string) Ext4Options {
		return Ext4Options{Path: filepath.Join(dir, path), Size: 256 * miB, SourceDir: src,
			UUID: uuid, Label: "root", Time: 1700000000}
	}
	var sums []string
	for _, o := range []Ext4Options{
		opts("a.img", src1, testUUID),
		opts("b.img", src2, testUUID),
		opts("c.img", src1, UUIDFromSeed("x", "y")),
	} {
		start := time.Now()
		if err := MakeExt4(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s in %v", filepath.Base(o.Path), time.Since(start).Round(time.Millisecond))
		if out, err := run.Output(ctx, "e2fsck", "-fn", o.Path); err != nil {
			t.Fatalf("e2fsck: %v\n%s", err, out)
		}
		sums = append(sums, sha256File(t, o.Path))
	}
	if sums[0] != sums[1] {
		t.Errorf("same input, different images: %s %s", sums[0], sums[1])
	}
	if sums[0] == sums[2] {
		t.Error("different UUID, same image")
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dir, "a.img"), &st); err != nil {
		t.Fatal(err)
	}
	if used := st.Blocks * 512; used > 32*miB {
		t.Errorf("256 MiB image uses %s on disk: not sparse", FormatSize(used, true))
	}
}

func TestMakeExt4Empty(t *testing.T) {
	testenv.Tools(t, "mke2fs", "e2fsck", "blkid")
	ctx := context.Background()
	img := filepath.Join(t.TempDir(), "empty.img")
	if err := MakeExt4(ctx, Ext4Options{Path: img, Size: 32 * miB, UUID: testUUID, Label: "data", Time: 1700000000}); err != nil {
		t.Fatal(err)
	}
	if _, err := run.Output(ctx, "e2fsck", "-fn", img); err != nil {
		t.Fatal(err)
	}
	out, err := run.Output(ctx, "blkid", "-p", "-o", "export", img)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"TYPE=ext4", "UUID=" + testUUID, "LABEL=data"} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("blkid: no %s in\n%s", want, out)
		}
	}
}

// TestMakeExt4KeepsSpecialFiles checks what go-diskfs would lose.
func TestMakeExt4KeepsSpecialFiles(t *testing.T) {
	testenv.Root(t)
	testenv.Tools(t, "mke2fs", "e2fsck", "debugfs", "sh", "touch")
	ctx := context.Background()
	src := makeTree(t, true)
	img := filepath.Join(t.TempDir(), "root.img")
	if err := MakeExt4(ctx, Ext4Options{Path: img, Size: 64 * miB, SourceDir: src, UUID: testUUID, Label: "root", Time: 1700000000}); err != nil {
		t.Fatal(err)
	}
	if _, err := run.Output(ctx, "e2fsck", "-fn", img); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cmd  string
		want []string
	}{
		{"stat /dev/null", []string{"Type: character special", "Device major/minor number: 01:03", "Mode:  0666"}},
		{"stat /usr/bin/tool", []string{"Links: 2", "user.applbuild", "Size: 50000"}},
		{"stat /usr/bin/tool-link", []string{"Links: 2"}},
		{"stat /usr/bin/short", []string{"Type: symlink", `Fast link dest: "tool"`}},
		{"stat /usr/bin/long", []string{"Type: symlink", "Size: 106"}},
		{"ea_get /usr/bin/tool user.applbuild", []string{"cap-ish"}},
		{"stat /etc/hostname", []string{"User:     0", "ctime: 0x5f5e1000", "atime: 0x5f5e1000", "mtime: 0x5f5e1000"}},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			out, err := run.Output(ctx, "debugfs", "-R", tt.cmd, img)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("no %q in\n%s", w, out)
				}
			}
		})
	}
	// The hard link is one inode, not two copies.
	a, _ := run.Output(ctx, "debugfs", "-R", "stat /usr/bin/tool", img)
	b, _ := run.Output(ctx, "debugfs", "-R", "stat /usr/bin/tool-link", img)
	if inode := func(s []byte) string { return strings.Fields(string(s))[1] }; inode(a) != inode(b) {
		t.Errorf("hard link became two inodes: %s vs %s", inode(a), inode(b))
	}
}

func TestMakeExt4TooSmall(t *testing.T) {
	testenv.Tools(t, "mke2fs")
	ctx := context.Background()
	src := t.TempDir()
	big := make([]byte, 40*miB)
	for i := range big {
		big[i] = byte(i*7 + i>>12)
	}
	if err := os.WriteFile(filepath.Join(src, "blob"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "small.img")
	err := MakeExt4(ctx, Ext4Options{Path: img, Size: 32 * miB, SourceDir: src, UUID: testUUID,
		Label: "root", Time: 1700000000, Name: "root filesystem", SizeHint: "raise disks.root"})
	var nse *NoSpaceError
	if !errors.As(err, &nse) || !errors.Is(err, ErrNoSpace) {
		t.Fatalf("err = %v, want a NoSpaceError", err)
	}
	if want := "root filesystem needs at least 4"; !strings.HasPrefix(err.Error(), want) ||
		!strings.HasSuffix(err.Error(), " MiB, disk is 32.0 MiB; raise disks.root") {
		t.Errorf("message %q", err)
	}
	if nse.Err != nil {
		t.Errorf("mke2fs ran: %v", nse.Err)
	}
	if _, err := os.Stat(img); !os.IsNotExist(err) {
		t.Errorf("image left behind: %v", err)
	}
}

// TestExt4MinSizeIsALowerBound builds a tree into exactly the size the
// estimate asks for, plus a little slack for what it leaves out, and
// expects mke2fs to succeed.
func TestExt4MinSizeIsALowerBound(t *testing.T) {
	testenv.Tools(t, "mke2fs", "e2fsck")
	ctx := context.Background()
	src := t.TempDir()
	for i := range 300 {
		writeFile(t, filepath.Join(src, "f"+strings.Repeat("x", i%50)+strconv.Itoa(i)), strings.Repeat("y", i*397))
	}
	u, err := measureTree(src)
	if err != nil {
		t.Fatal(err)
	}
	need := ext4MinSize(u)
	img := filepath.Join(t.TempDir(), "fit.img")
	size := need + need/50 + 64*kiB
	if err := MakeExt4(ctx, Ext4Options{Path: img, Size: size, SourceDir: src, UUID: testUUID, Label: "fit", Time: 1}); err != nil {
		t.Fatalf("estimate %s, size %s: %v", FormatSize(need, true), FormatSize(size, false), err)
	}
	if _, err := run.Output(ctx, "e2fsck", "-fn", img); err != nil {
		t.Fatal(err)
	}
}

func TestIsNoSpace(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"block", &run.ExitError{Stderr: "__populate_fs: Could not allocate block in ext2 filesystem while writing file \"x\""}, true},
		{"enospc", &run.ExitError{Stderr: "mke2fs: No space left on device while populating file system"}, true},
		{"inode", &run.ExitError{Stderr: "ext2fs_new_inode: Could not allocate inode in ext2 filesystem"}, true},
		{"other failure", &run.ExitError{Stderr: "mke2fs: invalid block size"}, false},
		{"not an exit", errors.New("No space left"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isNoSpace(tt.err); got != tt.want {
				t.Errorf("isNoSpace = %v", got)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
	tests := []struct {
		n    int64
		up   bool
		want string
	}{
		{1300 * miB, true, "1.27 GiB"},
		{giB, false, "1.0 GiB"},
		{4088 * miB, false, "3.99 GiB"},
		{4300 * miB, true, "4.2 GiB"},
		{32 * miB, false, "32.0 MiB"},
		{1536, true, "1.5 KiB"},
		{100, true, "100 B"},
	}
	for _, tt := range tests {
		if got := FormatSize(tt.n, tt.up); got != tt.want {
			t.Errorf("FormatSize(%d, %v) = %q, want %q", tt.n, tt.up, got, tt.want)
		}
	}
}

func TestMakeExt4BadOptions(t *testing.T) {
	ok := Ext4Options{Path: "x", Size: 64 * miB, UUID: testUUID, Label: "l", Time: 1}
	tests := []struct {
		name string
		edit func(*Ext4Options)
		want string
	}{
		{"no path", func(o *Ext4Options) { o.Path = "" }, "no image path"},
		{"tiny", func(o *Ext4Options) { o.Size = miB }, "8 MiB minimum"},
		{"long label", func(o *Ext4Options) { o.Label = strings.Repeat("l", 17) }, "longer than 16"},
		{"no time", func(o *Ext4Options) { o.Time = 0 }, "Time must be set"},
		{"bad uuid", func(o *Ext4Options) { o.UUID = "nope" }, "uuid"},
		{"missing source", func(o *Ext4Options) { o.SourceDir = "/nonexistent/applbuild" }, "source"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.edit(&o)
			if err := MakeExt4(context.Background(), o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
