package boot

import (
	"github.com/diskfs/go-diskfs/partition/gpt"

	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/applbuild/applbuild/internal/run"
)

// The images are read with debugfs, never mounted: a test drive needs no
// loop device and works in a container, like the build.

// readImageFile returns the content of the regular file at p inside the
// ext4 image img, following symlinks (relative or absolute) on the way.
func readImageFile(ctx context.Context, img, p string) ([]byte, error) {
	target, err := resolveImagePath(ctx, img, p)
	if err != nil {
		return nil, err
	}
	// debugfs "cat" exits 0 on a missing file and says so on stderr only,
	// so resolveImagePath has checked the inode already.
	out, err := debugfs(ctx, img, "cat "+quoteDebugfs(target))
	if err != nil {
		return nil, fmt.Errorf("%s:%s: %w", img, target, err)
	}
	return out, nil
}

// dumpImageFile copies the file at p inside img (symlinks followed) to dst.
func dumpImageFile(ctx context.Context, img, p, dst string) error {
	target, err := resolveImagePath(ctx, img, p)
	if err != nil {
		return err
	}
	if _, err := debugfs(ctx, img, "dump "+quoteDebugfs(target)+" "+quoteDebugfs(dst)); err != nil {
		return fmt.Errorf("%s:%s: %w", img, target, err)
	}
	// debugfs reports a failed dump on stderr and still exits 0.
	if _, err := os.Stat(dst); err != nil {
		return fmt.Errorf("%s:%s: dump wrote nothing: %w", img, target, err)
	}
	return nil
}

// maxLinks bounds symlink resolution, as the kernel's 40 does.
const maxLinks = 40

var (
	statType = regexp.MustCompile(`(?m)Type: (\S+)`)
	fastLink = regexp.MustCompile(`(?m)^Fast link dest: "(.*)"$`)
)

// resolveImagePath follows every symlink in p (each component, as the
// kernel does) and returns the path of a regular file inside img.
func resolveImagePath(ctx context.Context, img, p string) (string, error) {
	links := 0
	done := "/"
	rest := strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/")
	for len(rest) > 0 {
		cur := path.Join(done, rest[0])
		rest = rest[1:]
		st, err := debugfs(ctx, img, "stat "+quoteDebugfs(cur))
		if err != nil {
			return "", fmt.Errorf("%s:%s: %w", img, cur, err)
		}
		m := statType.FindSubmatch(st)
		if m == nil {
			return "", fmt.Errorf("%s:%s: %w", img, cur, os.ErrNotExist)
		}
		switch string(m[1]) {
		case "symlink":
			links++
			if links > maxLinks {
				return "", fmt.Errorf("%s:%s: too many levels of symbolic links", img, p)
			}
			var dest string
			if fm := fastLink.FindSubmatch(st); fm != nil {
				dest = string(fm[1])
			} else {
				// A target longer than 60 bytes lives in a data block.
				b, err := debugfs(ctx, img, "cat "+quoteDebugfs(cur))
				if err != nil {
					return "", fmt.Errorf("%s:%s: %w", img, cur, err)
				}
				dest = string(b)
			}
			if !strings.HasPrefix(dest, "/") {
				dest = path.Join(done, dest)
			}
			rest = append(strings.Split(strings.Trim(path.Clean(dest), "/"), "/"), rest...)
			done = "/"
		case "directory":
			done = cur
		case "regular":
			if len(rest) > 0 {
				return "", fmt.Errorf("%s:%s: not a directory", img, cur)
			}
			return cur, nil
		default:
			return "", fmt.Errorf("%s:%s: a %s, not a regular file", img, cur, m[1])
		}
	}
	return "", fmt.Errorf("%s:%s: a directory, not a regular file", img, p)
}

// debugfs runs one read-only debugfs request on img. debugfs prints its
// version banner on stderr and exits 0 on most failures, reporting them on
// stderr only, which run keeps for failed runs: callers check what they
// got (a stat without "Type:", a dump that wrote no file).
func debugfs(ctx context.Context, img, request string) ([]byte, error) {
	out, err := run.Output(ctx, "debugfs", "-R", request, img)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// quoteDebugfs quotes a path for debugfs' request parser, which splits on
// blanks and honours double quotes.
func quoteDebugfs(p string) string {
	if !strings.ContainsAny(p, " \t\"") {
		return p
	}
	return `"` + strings.ReplaceAll(p, `"`, `\"`) + `"`
}

var fsUUID = regexp.MustCompile(`(?m)^Filesystem UUID:\s+([0-9a-fA-F-]{36})\s*$`)

// ext4UUID reads the filesystem UUID from img's superblock.
func ext4UUID(ctx context.Context, img string) (string, error) {
	out, err := debugfs(ctx, img, "stats")
	if err != nil {
		return "", fmt.Errorf("%s: not an ext4 image: %w", img, err)
	}
	m := fsUUID.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("%s: no filesystem UUID in its superblock", img)
	}
	return string(m[1]), nil
}

// Kernel copies the kernel and initramfs that img's /vmlinuz and
// /initrd.img point to (Debian's symlinks, kept by the kernel's postinst)
// into dir, and returns their paths.
func Kernel(ctx context.Context, img, dir string) (kernel, initrd string, err error) {
	kernel = filepath.Join(dir, "vmlinuz")
	initrd = filepath.Join(dir, "initrd.img")
	if err := dumpImageFile(ctx, img, "/vmlinuz", kernel); err != nil {
		return "", "", fmt.Errorf("kernel: %w", err)
	}
	if err := dumpImageFile(ctx, img, "/initrd.img", initrd); err != nil {
		return "", "", fmt.Errorf("initramfs: %w", err)
	}
	return kernel, initrd, nil
}

// staticLAN is the first statically addressed NIC of an ifupdown
// /etc/network/interfaces that is not a VLAN, a bridge port or loopback.
type staticLAN struct {
	Interface string
	Address   netip.Prefix // host address with the subnet's length
	Gateway   netip.Addr   // invalid when none
}

// errNoStatic says the interfaces file configures no static address.
var errNoStatic = errors.New("no static address for a NIC")

// parseInterfaces finds the node's LAN address in an ifupdown file.
func parseInterfaces(b []byte) (staticLAN, error) {
	var (
		lan     staticLAN
		in      bool // inside the stanza we take
		addr    netip.Addr
		bits    = -1
		netmask string
	)
	finish := func() (staticLAN, error) {
		if !addr.IsValid() {
			return staticLAN{}, fmt.Errorf("iface %s: no address", lan.Interface)
		}
		if bits < 0 && netmask != "" {
			m, err := netip.ParseAddr(netmask)
			if err != nil || !m.Is4() {
				return staticLAN{}, fmt.Errorf("iface %s: netmask %q", lan.Interface, netmask)
			}
			bits = maskBits(m.As4())
			if bits < 0 {
				return staticLAN{}, fmt.Errorf("iface %s: netmask %q is not contiguous", lan.Interface, netmask)
			}
		}
		if bits < 0 {
			bits = addr.BitLen()
		}
		lan.Address = netip.PrefixFrom(addr, bits)
		return lan, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "iface", "auto", "allow-hotplug", "source", "source-directory", "mapping", "rename":
			if in {
				return finish()
			}
			if f[0] == "iface" && len(f) >= 4 && f[2] == "inet" && f[3] == "static" &&
				f[1] != "lo" && !strings.Contains(f[1], ".") && !strings.Contains(f[1], ":") {
				in = true
				lan.Interface = f[1]
			}
			continue
		}
		if !in || len(f) < 2 {
			continue
		}
		switch f[0] {
		case "address":
			a, _, ok := strings.Cut(f[1], "/")
			var err error
			if addr, err = netip.ParseAddr(a); err != nil {
				return staticLAN{}, fmt.Errorf("iface %s: address %q: %w", lan.Interface, f[1], err)
			}
			if ok {
				p, err := netip.ParsePrefix(f[1])
				if err != nil {
					return staticLAN{}, fmt.Errorf("iface %s: address %q: %w", lan.Interface, f[1], err)
				}
				bits = p.Bits()
			}
		case "netmask":
			netmask = f[1]
		case "gateway":
			g, err := netip.ParseAddr(f[1])
			if err != nil {
				return staticLAN{}, fmt.Errorf("iface %s: gateway %q: %w", lan.Interface, f[1], err)
			}
			lan.Gateway = g
		}
	}
	if err := sc.Err(); err != nil {
		return staticLAN{}, err
	}
	if in {
		return finish()
	}
	return staticLAN{}, errNoStatic
}

// maskBits is the prefix length of a contiguous netmask, or -1.
func maskBits(m [4]byte) int {
	v := uint32(m[0])<<24 | uint32(m[1])<<16 | uint32(m[2])<<8 | uint32(m[3])
	n := 0
	for v&0x80000000 != 0 {
		n++
		v <<= 1
	}
	if v != 0 {
		return -1
	}
	return n
}

var xenMAC = regexp.MustCompile(`(?i)\bmac\s*=\s*([0-9a-f]{2}(?::[0-9a-f]{2}){5})\b`)

// macFromXenConfig finds the first vif's MAC in an xl domain config.
func macFromXenConfig(b []byte) string {
	if m := xenMAC.FindSubmatch(b); m != nil {
		return strings.ToLower(string(m[1]))
	}
	return ""
}

// Discover describes the node whose Xen disk set is in dir: dir is either
// the node's own directory (OUT/web-cluster/xen/n1) or the target's
// directory with node naming a subdirectory. Everything comes from the
// images and the xl config themselves, so a test drive boots what was
// built, not what a plan says should have been.
func Discover(ctx context.Context, dir, node string) (Machine, error) {
	nodeDir := dir
	if node != "" {
		if fi, err := os.Stat(filepath.Join(dir, node)); err == nil && fi.IsDir() {
			nodeDir = filepath.Join(dir, node)
		} else if filepath.Base(filepath.Clean(dir)) != node {
			names, _ := nodeNames(dir)
			return Machine{}, fmt.Errorf("%s: no node %q (nodes: %s)", dir, node, strings.Join(names, ", "))
		}
	}
	var imgs []string
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() && node == "" {
		// One disk image (a raw build's OUT/scm/raw/scm1/scm1.img).
		imgs, nodeDir = []string{dir}, filepath.Dir(dir)
	} else if imgs, err = filepath.Glob(filepath.Join(nodeDir, "*.img")); err != nil {
		return Machine{}, err
	}
	if len(imgs) == 0 {
		return Machine{}, fmt.Errorf("%s: no disk images (*.img): is this a node's directory of a build?", nodeDir)
	}
	slices.Sort(imgs)
	m := Machine{Name: filepath.Base(nodeDir)}
	// A partitioned disk (raw, usb) boots through its firmware and its own
	// boot loader; its root filesystem is the partition of the root type.
	live := false
	if len(imgs) == 1 {
		root, isLive, ok, err := diskRoot(ctx, imgs[0])
		if err != nil {
			return Machine{}, err
		}
		if ok {
			m.Disks, m.Firmware, m.root, live = imgs, FirmwareBIOS, root, isLive
		}
	}
	if m.root == "" {
		// The root disk is the image that holds /etc/fstab; it goes first.
		root := -1
		for i, img := range imgs {
			if _, err := resolveImagePath(ctx, img, "/etc/fstab"); err == nil {
				root = i
				break
			}
		}
		if root < 0 {
			return Machine{}, fmt.Errorf("%s: no image holds a root filesystem (/etc/fstab)", nodeDir)
		}
		m.Disks = append([]string{imgs[root]}, slices.Delete(slices.Clone(imgs), root, root+1)...)
		m.root = m.Disks[0]
	}
	var err error
	if m.RootUUID, err = ext4UUID(ctx, m.root); err != nil {
		return Machine{}, err
	}
	read := func(p string) ([]byte, error) { return readImageFile(ctx, m.root, p) }
	// A stick's root tree is a squashfs file on its live partition: read
	// what is needed out of a copy of it.
	if live {
		files, err := fromSquashfs(ctx, m.root, liveSquashfs, "/etc/network/interfaces", "/etc/hostname", "/root/.ssh/id_ed25519")
		if err != nil {
			return Machine{}, err
		}
		read = func(p string) ([]byte, error) {
			if b, ok := files[p]; ok {
				return b, nil
			}
			return nil, fmt.Errorf("%s:%s%s: %w", m.root, liveSquashfs, p, os.ErrNotExist)
		}
	}
	ifaces, err := read("/etc/network/interfaces")
	if err != nil {
		return Machine{}, err
	}
	lan, err := parseInterfaces(ifaces)
	if err != nil {
		return Machine{}, fmt.Errorf("%s:/etc/network/interfaces: %w", m.root, err)
	}
	m.Address, m.Gateway = lan.Address, lan.Gateway
	if h, err := read("/etc/hostname"); err == nil && len(bytes.TrimSpace(h)) > 0 {
		m.Name = string(bytes.TrimSpace(h))
	}
	if g, err := read("/boot/grub/grub.cfg"); err == nil {
		m.CmdLine = grubCmdLine(g)
	}
	if key, err := read("/root/.ssh/id_ed25519"); err == nil {
		m.SSHKey = key
	}
	cfgs, _ := filepath.Glob(filepath.Join(nodeDir, "*.cfg"))
	for _, c := range cfgs {
		if b, err := os.ReadFile(c); err == nil {
			if mac := macFromXenConfig(b); mac != "" {
				m.MAC = mac
				break
			}
		}
	}
	return m, nil
}

// RootImage is how debugfs reaches m's root filesystem: an image file,
// or a disk image with ?offset= of its root partition.
func (m Machine) RootImage() string {
	if m.root == "" && len(m.Disks) > 0 {
		return m.Disks[0]
	}
	return m.root
}

// rootTypeGUID is the x86-64 root partition type (the Discoverable
// Partitions Specification), which the raw and usb targets give the root.
const rootTypeGUID = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"

// liveSquashfs is where a stick (the usb target) keeps its root tree, on
// its live partition.
const liveSquashfs = "/live/filesystem.squashfs"

// diskRoot finds the root filesystem of a GPT disk image, as debugfs
// reaches it (img?offset=N): the partition of the root type (raw), or the
// one whose ext4 holds the live squashfs (usb), then live is true. ok is
// false when img is no GPT disk at all.
func diskRoot(ctx context.Context, img string) (root string, live, ok bool, err error) {
	f, err := os.Open(img)
	if err != nil {
		return "", false, false, err
	}
	defer f.Close()
	sig := make([]byte, 8)
	if _, err := f.ReadAt(sig, 512); err != nil || string(sig) != "EFI PART" {
		return "", false, false, nil
	}
	tbl, err := gpt.Read(f, 512, 512)
	if err != nil {
		return "", false, false, fmt.Errorf("%s: GPT: %w", img, err)
	}
	at := func(p *gpt.Partition) string { return fmt.Sprintf("%s?offset=%d", img, int64(p.Start)*512) }
	for _, p := range tbl.Partitions {
		if strings.EqualFold(string(p.Type), rootTypeGUID) {
			return at(p), false, true, nil
		}
	}
	for _, p := range tbl.Partitions {
		if p.Start == 0 {
			continue
		}
		if _, err := resolveImagePath(ctx, at(p), liveSquashfs); err == nil {
			return at(p), true, true, nil
		}
	}
	return "", false, false, fmt.Errorf("%s: no partition holds a root filesystem or %s", img, liveSquashfs)
}

// fromSquashfs reads files (absolute paths) out of the squashfs at sq in
// the ext4 image fs; a file the squashfs lacks is left out.
func fromSquashfs(ctx context.Context, fs, sq string, files ...string) (map[string][]byte, error) {
	dir, err := os.MkdirTemp("", "applbuild-squashfs-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	copyPath := filepath.Join(dir, "root.squashfs")
	if _, err := debugfs(ctx, fs, "dump "+quoteDebugfs(sq)+" "+quoteDebugfs(copyPath)); err != nil {
		return nil, fmt.Errorf("%s:%s: %w", fs, sq, err)
	}
	args := []string{"unsquashfs", "-q", "-no-progress", "-no-xattrs", "-d", filepath.Join(dir, "root"), copyPath}
	for _, f := range files {
		args = append(args, strings.TrimPrefix(f, "/"))
	}
	if _, err := run.Output(ctx, args...); err != nil {
		return nil, fmt.Errorf("%s:%s: %w", fs, sq, err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		if b, err := os.ReadFile(filepath.Join(dir, "root", f)); err == nil {
			out[f] = b
		}
	}
	return out, nil
}

// nodeNames lists the subdirectories of dir that hold disk images.
func nodeNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if imgs, _ := filepath.Glob(filepath.Join(dir, e.Name(), "*.img")); len(imgs) > 0 {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// grubCmdLine returns the arguments of the first "linux" command of a
// grub.cfg: the command line the node boots with under Xen.
func grubCmdLine(b []byte) []string {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && (f[0] == "linux" || f[0] == "linux16") {
			return f[2:]
		}
	}
	return nil
}
