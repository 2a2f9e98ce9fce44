package flash

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/applbuild/applbuild/builder/compress"
	"github.com/applbuild/applbuild/internal/mountinfo"
)

// MaxSize is the largest device written without Force: a stick or CF card
// is smaller, a data disk usually is not.
const MaxSize = 256 << 30

// ErrRefused is wrapped by every refusal to write a target.
var ErrRefused = errors.New("refused")

// Host is where the kernel's view of block devices and mounts is read
// from: /sys and /proc/self/mountinfo on a real system.
type Host struct {
	Sys       string // "/sys"
	MountInfo string // "/proc/self/mountinfo"
	Swaps     string // "/proc/swaps"
}

// RealHost is the running system.
func RealHost() Host {
	return Host{Sys: "/sys", MountInfo: "/proc/self/mountinfo", Swaps: "/proc/swaps"}
}

// Device is one block device as the kernel describes it.
type Device struct {
	Path      string // as given: /dev/sdb
	Name      string // the kernel's name: sdb, sdb1, loop3
	Disk      string // the whole disk it is or belongs to
	Partition bool
	Dev       uint64 // device number
	Size      int64
	Removable bool
	Vendor    string
	Model     string
	Backing   string // a loop device's backing file
}

// Describe is the device as a confirmation names it: path, vendor and
// model (or the loop device's file) and size.
func (d *Device) Describe() string {
	what := strings.TrimSpace(d.Vendor + " " + d.Model)
	if d.Backing != "" {
		what = "loop device of " + d.Backing
	}
	if what == "" {
		what = "unknown model"
	}
	return fmt.Sprintf("%s (%s, %s)", d.Path, what, compress.HumanSize(d.Size))
}

// Inspect describes the block device at path.
func (h Host) Inspect(path string) (*Device, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return nil, fmt.Errorf("%s is not a block device", path)
	}
	d := &Device{Path: path, Dev: st.Rdev}
	name, sysPath, err := h.byDev(st.Rdev)
	if err != nil {
		return nil, err
	}
	d.Name, d.Disk = name, name
	if _, err := os.Stat(filepath.Join(sysPath, "partition")); err == nil {
		d.Partition = true
		d.Disk = filepath.Base(filepath.Dir(sysPath))
	}
	sectors, err := h.readInt(filepath.Join(sysPath, "size"))
	if err != nil {
		return nil, err
	}
	d.Size = sectors * 512
	disk := filepath.Join(h.Sys, "block", d.Disk)
	removable, _ := h.readInt(filepath.Join(disk, "removable"))
	d.Removable = removable == 1
	d.Vendor = h.readString(filepath.Join(disk, "device", "vendor"))
	d.Model = h.readString(filepath.Join(disk, "device", "model"))
	d.Backing = h.readString(filepath.Join(disk, "loop", "backing_file"))
	return d, nil
}

// byDev finds a block device's kernel name and sysfs directory.
func (h Host) byDev(dev uint64) (name, sysPath string, err error) {
	link := filepath.Join(h.Sys, "dev", "block", fmt.Sprintf("%d:%d", unix.Major(dev), unix.Minor(dev)))
	p, err := filepath.EvalSymlinks(link)
	if err != nil {
		return "", "", fmt.Errorf("block device %d:%d: %w", unix.Major(dev), unix.Minor(dev), err)
	}
	return filepath.Base(p), p, nil
}

func (h Host) readInt(path string) (int64, error) {
	n, err := strconv.ParseInt(h.readString(path), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

func (h Host) readString(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

// Refusals lists every reason not to write image bytes to d; those that
// force overrides are left out when it is set.
func (h Host) Refusals(d *Device, imageSize int64, force bool) ([]string, error) {
	var why []string
	sys, err := h.SystemDisks()
	if err != nil {
		return nil, err
	}
	if where, ok := sys[d.Disk]; ok {
		why = append(why, fmt.Sprintf("the running system lives on %s (%s)", d.Disk, where))
	}
	// The device itself, and when it is a whole disk every partition.
	names := []string{d.Name}
	if !d.Partition {
		names = append(names, h.partitions(d.Disk)...)
	}
	mounts, err := h.mounts()
	if err != nil {
		return nil, err
	}
	swaps := h.swaps()
	for _, n := range names {
		dir := filepath.Join(h.Sys, "class", "block", n)
		dev := h.readString(filepath.Join(dir, "dev"))
		for _, m := range mounts {
			if m.dev == dev || m.source == "/dev/"+n {
				why = append(why, fmt.Sprintf("%s is mounted on %s", n, m.point))
			}
		}
		if holders, _ := os.ReadDir(filepath.Join(dir, "holders")); len(holders) > 0 {
			var hs []string
			for _, e := range holders {
				hs = append(hs, e.Name())
			}
			why = append(why, fmt.Sprintf("%s is in use by %s (device-mapper, LVM, RAID or crypt)", n, strings.Join(hs, ", ")))
		}
		if slices.Contains(swaps, dev) {
			why = append(why, fmt.Sprintf("%s is active swap", n))
		}
	}
	if d.Size < imageSize {
		why = append(why, fmt.Sprintf("it holds %s, the image needs %s", compress.HumanSize(d.Size), compress.HumanSize(imageSize)))
	}
	if !force {
		if d.Partition {
			why = append(why, fmt.Sprintf("%s is a partition of %s, and an image is a whole disk (--force to write it anyway)", d.Name, d.Disk))
		}
		if !d.Removable {
			why = append(why, fmt.Sprintf("%s is not a removable device (--force if it is the stick you mean)", d.Disk))
		}
		if d.Size > MaxSize {
			why = append(why, fmt.Sprintf("it is %s, larger than a stick's %s (--force if it is the one you mean)", compress.HumanSize(d.Size), compress.HumanSize(MaxSize)))
		}
	}
	return why, nil
}

// partitions lists the kernel names of disk's partitions.
func (h Host) partitions(disk string) []string {
	entries, _ := os.ReadDir(filepath.Join(h.Sys, "block", disk))
	var out []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(h.Sys, "block", disk, e.Name(), "partition")); err == nil {
			out = append(out, e.Name())
		}
	}
	return out
}

// SystemDisks maps each whole disk that / or /boot lives on to what of the
// running system is there.
func (h Host) SystemDisks() (map[string]string, error) {
	mounts, err := h.mounts()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, m := range mounts {
		if m.point != "/" && m.point != "/boot" {
			continue
		}
		name := ""
		if maj, _, ok := strings.Cut(m.dev, ":"); ok && maj != "0" {
			if p, err := filepath.EvalSymlinks(filepath.Join(h.Sys, "dev", "block", m.dev)); err == nil {
				name = filepath.Base(p)
			}
		}
		if name == "" && strings.HasPrefix(m.source, "/dev/") {
			// btrfs and others report a virtual device number; the source
			// names the real one.
			var st unix.Stat_t
			if unix.Stat(m.source, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK {
				name, _, _ = h.byDev(st.Rdev)
			}
		}
		if name == "" {
			continue // an overlay or tmpfs root: no disk of the host's
		}
		for _, disk := range h.disksUnder(name, 0) {
			if _, ok := out[disk]; !ok {
				out[disk] = m.point + " is on " + name
			}
		}
	}
	return out, nil
}

// disksUnder follows a device through dm/md slaves and from partitions to
// their disks, down to the whole disks that hold it.
func (h Host) disksUnder(name string, depth int) []string {
	if depth > 16 {
		return nil
	}
	dir := filepath.Join(h.Sys, "class", "block", name)
	if slaves, _ := os.ReadDir(filepath.Join(dir, "slaves")); len(slaves) > 0 {
		var out []string
		for _, s := range slaves {
			out = append(out, h.disksUnder(s.Name(), depth+1)...)
		}
		return out
	}
	if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil {
		if p, err := filepath.EvalSymlinks(dir); err == nil {
			return []string{filepath.Base(filepath.Dir(p))}
		}
	}
	return []string{name}
}

type mount struct{ dev, point, source string }

// mounts reads mountinfo: "36 35 98:0 /root /mnt rw - ext4 /dev/sdb1 rw".
func (h Host) mounts() ([]mount, error) {
	f, err := os.Open(h.MountInfo)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, rest := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(rest) < 2 {
			continue
		}
		out = append(out, mount{dev: fields[2], point: mountinfo.Unescape(fields[4]), source: mountinfo.Unescape(rest[1])})
	}
	return out, sc.Err()
}

// swaps lists the device numbers ("8:2") of active swap devices.
func (h Host) swaps() []string {
	b, _ := os.ReadFile(h.Swaps)
	var out []string
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 2 || f[1] != "partition" {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(mountinfo.Unescape(f[0]), &st) == nil {
			out = append(out, fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev)))
		}
	}
	return out
}
