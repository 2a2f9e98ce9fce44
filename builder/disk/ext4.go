package disk

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/applbuild/applbuild/internal/run"
)

// Ext4Options describes one ext4 image.
type Ext4Options struct {
	Path      string // image file to create (replaced if it exists)
	Size      int64  // bytes; rounded down to the 4 KiB block size
	SourceDir string // tree to copy in; "" for an empty filesystem
	UUID      string // filesystem UUID, also used as the directory hash seed
	Label     string // volume label, at most 16 bytes
	Time      int64  // unix seconds stamped on everything mke2fs creates

	// Name is how errors call this filesystem ("root filesystem");
	// the default is `ext4 filesystem "LABEL"`.
	Name string
	// SizeHint tells the user how to make the disk bigger
	// ("raise disks.root"); it ends a NoSpaceError's message.
	SizeHint string
}

// ext4BlockSize is pinned: GRUB, the kernel and e2fsck all like 4 KiB, and
// a host mke2fs.conf must not pick 1 KiB for a small image.
const ext4BlockSize = 4096

// ext4InodeRatio and ext4InodeSize are the mke2fs.conf defaults for a
// filesystem above 512 MiB, pinned for every size.
const (
	ext4InodeRatio = 16384
	ext4InodeSize  = 256
)

// mke2fsConf replaces the host's /etc/mke2fs.conf, so the image does not
// depend on the build machine. The features are bookworm's ext4 defaults;
// metadata_csum_seed and orphan_file stay off because GRUB 2.06 refuses
// them. The usage type "applbuild" is named with -T so that mke2fs does not
// go looking for "small" or "huge" sections.
const mke2fsConf = `[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	enable_periodic_fsck = 0
	blocksize = 4096
	inode_size = 256
	inode_ratio = 16384
	reserved_ratio = 5.0

[fs_types]
	ext4 = {
		features = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	}
	applbuild = {
		inode_ratio = 16384
	}
`

// ErrNoSpace matches a NoSpaceError with errors.Is.
var ErrNoSpace = errors.New("no space left in image")

// NoSpaceError says a filesystem's content does not fit its disk.
type NoSpaceError struct {
	What string // "root filesystem"
	Need int64  // bytes, a lower bound; 0 when unknown
	Have int64  // bytes
	Hint string // "raise disks.root"
	Err  error  // the tool's own failure, if it got that far
}

func (e *NoSpaceError) Error() string {
	var msg string
	if e.Need > e.Have {
		msg = fmt.Sprintf("%s needs at least %s, disk is %s", e.What, FormatSize(e.Need, true), FormatSize(e.Have, false))
	} else {
		msg = fmt.Sprintf("%s does not fit in %s", e.What, FormatSize(e.Have, false))
	}
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

func (e *NoSpaceError) Unwrap() error { return e.Err }

func (e *NoSpaceError) Is(target error) bool { return target == ErrNoSpace }

// MakeExt4 creates o.Path as a sparse file of o.Size bytes holding an ext4
// filesystem with o.SourceDir's tree (owners, modes, hard links, symlinks,
// device nodes and extended attributes included). The result is the same
// bytes for the same options and the same source tree. A tree that cannot
// fit is refused before mke2fs runs, with a *NoSpaceError.
func MakeExt4(ctx context.Context, o Ext4Options) error {
	if err := o.check(); err != nil {
		return err
	}
	size := o.Size / ext4BlockSize * ext4BlockSize
	what := o.Name
	if what == "" {
		what = fmt.Sprintf("ext4 filesystem %q", o.Label)
	}
	var need int64
	if o.SourceDir != "" {
		u, err := measureTree(o.SourceDir)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		need = ext4MinSize(u)
		if need > size {
			return &NoSpaceError{What: what, Need: need, Have: size, Hint: o.SizeHint}
		}
	}

	conf, err := os.CreateTemp("", "applbuild-mke2fs-*.conf")
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer os.Remove(conf.Name())
	if _, err := conf.WriteString(mke2fsConf); err != nil {
		conf.Close()
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := conf.Close(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}

	if err := createSparse(o.Path, size); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	args := []string{"mke2fs", "-t", "ext4", "-T", "applbuild", "-F", "-q",
		"-b", strconv.Itoa(ext4BlockSize),
		"-U", o.UUID,
		"-E", "hash_seed=" + o.UUID + ",root_owner=0:0,nodiscard,lazy_itable_init=0,lazy_journal_init=0",
		"-L", o.Label,
	}
	if o.SourceDir != "" {
		args = append(args, "-d", o.SourceDir)
	}
	args = append(args, o.Path)
	cmd := run.Cmd{
		Args: args,
		Env: []string{
			"MKE2FS_CONFIG=" + conf.Name(),
			"E2FSPROGS_FAKE_TIME=" + strconv.FormatInt(o.Time, 10),
			"LC_ALL=C",
		},
	}
	if _, err := cmd.Output(ctx); err != nil {
		os.Remove(o.Path)
		if isNoSpace(err) {
			return &NoSpaceError{What: what, Need: need, Have: size, Hint: o.SizeHint, Err: err}
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	if o.SourceDir != "" {
		if err := pinInodeTimes(o.Path, o.Time); err != nil {
			os.Remove(o.Path)
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	return nil
}

func (o Ext4Options) check() error {
	switch {
	case o.Path == "":
		return errors.New("ext4: no image path")
	case o.Size < 2048*ext4BlockSize:
		return fmt.Errorf("ext4 %s: size %d is below the 8 MiB minimum", o.Path, o.Size)
	case len(o.Label) > 16:
		return fmt.Errorf("ext4 %s: label %q is longer than 16 bytes", o.Path, o.Label)
	case o.Time <= 0:
		return fmt.Errorf("ext4 %s: Time must be set (unix seconds) for a reproducible image", o.Path)
	}
	if _, err := parseUUID(o.UUID); err != nil {
		return fmt.Errorf("ext4 %s: %w", o.Path, err)
	}
	if o.SourceDir != "" {
		fi, err := os.Stat(o.SourceDir)
		if err != nil {
			return fmt.Errorf("ext4 %s: source: %w", o.Path, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("ext4 %s: source %s is not a directory", o.Path, o.SourceDir)
		}
	}
	return nil
}

// isNoSpace recognises mke2fs running out of blocks or inodes while
// copying the tree in.
func isNoSpace(err error) bool {
	var ee *run.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	for _, s := range []string{"Could not allocate block", "No space left", "Could not allocate inode", "ext2fs_new_inode"} {
		if strings.Contains(ee.Stderr, s) {
			return true
		}
	}
	return false
}

// createSparse makes path an empty (all-hole) file of size bytes.
func createSparse(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return fmt.Errorf("size %s: %w", path, err)
	}
	return f.Close()
}

// treeUsage is what a tree costs in ext4 blocks and inodes.
type treeUsage struct {
	blocks int64 // data, directory, long-symlink and xattr blocks
	inodes int64
}

// measureTree walks dir and counts what mke2fs will allocate for it. It is
// a lower bound: extent index blocks and htree index blocks are left out.
func measureTree(dir string) (treeUsage, error) {
	var u treeUsage
	type fileID struct{ dev, ino uint64 }
	seen := map[fileID]bool{}
	dirBytes := map[string]int64{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if p != dir {
			// Directory entry: 8 bytes of header plus the name, 4-aligned.
			dirBytes[filepath.Dir(p)] += (8 + int64(len(d.Name())) + 3) &^ 3
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok && st.Nlink > 1 && !fi.IsDir() {
			id := fileID{uint64(st.Dev), st.Ino}
			if seen[id] {
				return nil
			}
			seen[id] = true
		}
		u.inodes++
		switch {
		case fi.Mode().IsRegular():
			blocks := ceilDiv(fi.Size(), ext4BlockSize)
			if ok {
				// A sparse source file stays sparse.
				blocks = min(blocks, ceilDiv(st.Blocks*512, ext4BlockSize))
			}
			u.blocks += blocks
		case fi.Mode()&fs.ModeSymlink != 0:
			if fi.Size() >= 60 { // longer targets leave the inode
				u.blocks++
			}
		case fi.IsDir():
			dirBytes[p] += 24 // "." and ".."
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			// Attribute names alone beyond the inode's spare bytes
			// push the attributes out into a block.
			if n, _ := syscall.Listxattr(p, nil); n > 96 {
				u.blocks++
			}
		}
		return nil
	})
	if err != nil {
		return u, fmt.Errorf("measure %s: %w", dir, err)
	}
	for _, b := range dirBytes {
		u.blocks += max(1, ceilDiv(b, ext4BlockSize))
	}
	return u, nil
}

// ext4MinSize is the smallest filesystem, in bytes, that can hold u with
// this package's mke2fs settings: the content plus inode tables, journal,
// bitmaps, group descriptors and their backups.
func ext4MinSize(u treeUsage) int64 {
	const reservedInodes = 11
	data := u.blocks + 16 // root, lost+found, resize inode
	n := data
	for range 32 {
		next := data + ext4Overhead(n)
		// Enough blocks that the inode ratio yields enough inodes.
		next = max(next, (u.inodes+reservedInodes)*ext4InodeRatio/ext4BlockSize)
		if next <= n {
			break
		}
		n = next
	}
	return n * ext4BlockSize
}

// ext4Overhead is the metadata mke2fs lays down on an n-block filesystem.
func ext4Overhead(n int64) int64 {
	const blocksPerGroup = 8 * ext4BlockSize
	groups := ceilDiv(n, blocksPerGroup)
	inodeTable := n * ext4BlockSize / ext4InodeRatio * ext4InodeSize / ext4BlockSize
	gdt := ceilDiv(groups*64, ext4BlockSize)
	// Reserved GDT blocks let resize2fs grow the filesystem 1024-fold.
	growGroups := ceilDiv(min(n*1024, 1<<32-1), blocksPerGroup)
	rsv := min(ceilDiv(growGroups*64, ext4BlockSize)-gdt, ext4BlockSize/4)
	backups := int64(0)
	for g := int64(0); g < groups; g++ {
		if isSparseSuperGroup(g) {
			backups++
		}
	}
	return inodeTable + ext4JournalBlocks(n) + 2*groups + backups*(1+gdt+rsv)
}

// isSparseSuperGroup reports whether group g holds a superblock backup:
// groups 0 and 1 and the powers of 3, 5 and 7.
func isSparseSuperGroup(g int64) bool {
	if g <= 1 {
		return true
	}
	for _, b := range []int64{3, 5, 7} {
		p := b
		for p < g {
			p *= b
		}
		if p == g {
			return true
		}
	}
	return false
}

// ext4JournalBlocks mirrors e2fsprogs' default journal size for n blocks.
func ext4JournalBlocks(n int64) int64 {
	switch {
	case n < 2048:
		return 0
	case n < 32768:
		return 1024
	case n < 256*1024:
		return 4096
	case n < 512*1024:
		return 8192
	case n < 4096*1024:
		return 16384
	case n < 8192*1024:
		return 32768
	case n < 16384*1024:
		return 65536
	case n < 32768*1024:
		return 131072
	}
	return 262144
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }
