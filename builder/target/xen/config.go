package xen

import (
	"fmt"
	"path"
	"strings"

	"github.com/applbuild/applbuild/builder"
)

// Config is node's xl domain config, its images under dir (absolute, as
// the dom0 sees them). A pure function of the plan.
func Config(pl *builder.Plan, n *builder.Node, dir string) []byte {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# %s.cfg: Xen domain %s (%s), written by applbuild from the %s plan.", n.Name, n.FQDN, n.Address, pl.Personality)
	w("# Start it on the dom0 with: xl create %s", path.Join(dir, n.Name+".cfg"))
	w("# The dom0 needs grub-xen-host for the boot loader below.")
	w("")
	w("name = %q", n.Name)
	switch pl.Xen.Type {
	case TypePV:
		w("# PV: pvgrub2 reads /boot/grub/grub.cfg on the root disk and loads the")
		w("# guest's own kernel, which must be gzip- or xz-compressed (checked at build).")
		w("type = %q", "pv")
		w("kernel = %q", PVLoader)
	default:
		w("# PVH: pvgrub2 (PVH build) reads /boot/grub/grub.cfg on the root disk and")
		w("# loads the guest's own kernel and initrd, whatever their compression.")
		w("type = %q", "pvh")
		w("kernel = %q", PVHLoader)
	}
	w("memory = %d", n.Memory.MiB())
	w("vcpus = %d", n.VCPUs)
	w("")
	w("# One image file per disk, each a whole virtual disk without a partition")
	w("# table: the root filesystem, swap, and the LVM2 physical volumes.")
	w("disk = [")
	for _, im := range Layout(n).Images {
		// target= goes last: xl takes the rest of the spec as the path.
		w("    'format=raw, vdev=%s, access=rw, target=%s',", im.Device, path.Join(dir, im.File))
	}
	w("]")
	w("")
	w("# One NIC on the dom0 bridge %s, used as an 802.1q trunk: the guest tags", pl.Network.Bridge)
	if len(n.VLANs) > 0 {
		var vl []string
		for _, v := range n.VLANs {
			vl = append(vl, fmt.Sprintf("%s %s", v.Interface, v.Name))
		}
		w("# its VLANs itself (%s),", strings.Join(vl, ", "))
	} else {
		w("# any VLANs itself,")
	}
	w("# so the bridge must pass tagged frames and no per-VLAN bridge is needed.")
	w("vif = ['mac=%s, bridge=%s']", n.MAC, pl.Network.Bridge)
	w("")
	w("on_poweroff = %q", "destroy")
	w("on_reboot = %q", "restart")
	w("# A crashed cluster node comes back and rejoins; the others have taken")
	w("# over its services in the meantime.")
	w("on_crash = %q", "restart")
	return []byte(b.String())
}

// GrubConfig is the node's /boot/grub/grub.cfg. pvgrub2's built-in config
// (grub-xen-host) runs `search -s -f /boot/grub/grub.cfg` over every disk,
// which sets root to the bare ext4 root disk, then `configfile` on it; so
// the paths below are on the root filesystem. /vmlinuz and /initrd.img are
// Debian's symlinks to the newest kernel, kept current by kernel upgrades.
func GrubConfig(pl *builder.Plan, n *builder.Node) []byte {
	var root builder.Disk
	for _, d := range n.Disks {
		if d.Role == builder.RoleRoot {
			root = d
		}
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# Read by pvgrub2 on the dom0 (Xen %s); written by applbuild.", pl.Xen.Type)
	// 0, not 1: pvgrub2 (PVH) under Xen 4.17 draws the menu and then never
	// proceeds with a timeout of 1 (FACTS.md); with 0 it boots at once.
	w("set timeout=0")
	w("set default=0")
	w("")
	// Single quotes: GRUB expands nothing in them, and the title is the
	// user's product name. A quote cannot be escaped inside, so it goes.
	title := strings.ReplaceAll(fmt.Sprintf("%s %s (Debian %s)", pl.Branding.Product, n.Name, pl.Suite), "'", "")
	w("menuentry '%s' {", title)
	w("\tlinux /vmlinuz root=UUID=%s ro console=hvc0 net.ifnames=0", root.UUID)
	w("\tinitrd /initrd.img")
	w("}")
	return []byte(b.String())
}
