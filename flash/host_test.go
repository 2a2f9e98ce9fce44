package flash

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeHost lays out a /sys and a mountinfo with the cases a loop device
// cannot show here (partitions, device-mapper): sdz with partitions sdz1
// and sdz2, root on dm-0 over sdy2, /boot on sdy1.
func fakeHost(t *testing.T, mountinfo string) Host {
	t.Helper()
	root := t.TempDir()
	sys := filepath.Join(root, "sys")
	dev := func(path, num string) {
		full := filepath.Join(sys, "devices", path)
		os.MkdirAll(filepath.Join(full, "holders"), 0o755)
		os.MkdirAll(filepath.Join(full, "slaves"), 0o755)
		os.WriteFile(filepath.Join(full, "dev"), []byte(num+"\n"), 0o644)
		os.WriteFile(filepath.Join(full, "size"), []byte("1000\n"), 0o644)
		name := filepath.Base(path)
		os.MkdirAll(filepath.Join(sys, "class", "block"), 0o755)
		os.MkdirAll(filepath.Join(sys, "dev", "block"), 0o755)
		os.Symlink(full, filepath.Join(sys, "class", "block", name))
		os.Symlink(full, filepath.Join(sys, "dev", "block", num))
		if !strings.Contains(path, "/") || filepath.Base(filepath.Dir(path)) == "block" {
			os.MkdirAll(filepath.Join(sys, "block"), 0o755)
			os.Symlink(full, filepath.Join(sys, "block", name))
		} else {
			os.WriteFile(filepath.Join(full, "partition"), []byte("1\n"), 0o644)
		}
	}
	dev("block/sdz", "8:0")
	dev("block/sdz/sdz1", "8:1")
	dev("block/sdz/sdz2", "8:2")
	dev("block/sdy", "8:16")
	dev("block/sdy/sdy1", "8:17")
	dev("block/sdy/sdy2", "8:18")
	dev("block/dm-0", "254:0")
	os.Symlink(filepath.Join(sys, "devices/block/sdy/sdy2"), filepath.Join(sys, "devices/block/dm-0/slaves/sdy2"))
	os.Symlink(filepath.Join(sys, "devices/block/dm-0"), filepath.Join(sys, "devices/block/sdy/sdy2/holders/dm-0"))
	mi := filepath.Join(root, "mountinfo")
	os.WriteFile(mi, []byte("1 0 254:0 / / rw - ext4 /dev/mapper/vg-root rw\n"+
		"2 1 8:17 / /boot rw - ext4 /dev/sdy1 rw\n"+mountinfo), 0o644)
	return Host{Sys: sys, MountInfo: mi, Swaps: filepath.Join(root, "swaps")}
}

func TestRefusalsFromSysfs(t *testing.T) {
	sdz := &Device{Path: "/dev/sdz", Name: "sdz", Disk: "sdz", Size: 8 << 30, Removable: true}
	sdy := &Device{Path: "/dev/sdy", Name: "sdy", Disk: "sdy", Size: 8 << 30, Removable: true}
	for _, tt := range []struct {
		name, mountinfo string
		dev             *Device
		want            string // "" for no refusal
	}{
		{"a free stick", "", sdz, ""},
		{"a mounted partition", `3 1 8:2 / /media/my\040stick rw - vfat /dev/sdz2 rw` + "\n", sdz, "sdz2 is mounted on /media/my stick"},
		{"mounted by name only (btrfs)", "3 1 0:55 / /srv rw - btrfs /dev/sdz1 rw\n", sdz, "sdz1 is mounted on /srv"},
		{"root on dm over a partition", "", sdy, "the running system lives on sdy (/ is on dm-0)"},
		{"a partition held by dm", "", sdy, "sdy2 is in use by dm-0"},
		{"a partition", "", &Device{Path: "/dev/sdz1", Name: "sdz1", Disk: "sdz", Partition: true, Size: 8 << 30, Removable: true}, "sdz1 is a partition of sdz"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := fakeHost(t, tt.mountinfo)
			why, err := h.Refusals(tt.dev, 1<<30, false)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(why, "; ")
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Errorf("refusals %q, want %q", got, tt.want)
			}
		})
	}
	disks, err := fakeHost(t, "").SystemDisks()
	if err != nil {
		t.Fatal(err)
	}
	if len(disks) != 1 || disks["sdy"] == "" {
		t.Errorf("system disks %v, want sdy alone (/ via dm-0, /boot on sdy1)", disks)
	}
}
