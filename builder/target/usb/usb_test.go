package usb

import (
	"encoding/json"
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/builder/target"
	"github.com/applbuild/applbuild/builder/target/targettest"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func plan(t *testing.T, name string) *builder.Plan {
	t.Helper()
	pl := targettest.Plan(t, name)
	(&USB{}).Adjust(pl)
	return pl
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	targettest.Golden(t, name, got, *update)
}

// TestAdjust: on a stick the root is a squashfs that fstab does not mount,
// and there is no swap.
func TestAdjust(t *testing.T) {
	pl := plan(t, "web-cluster")
	for _, n := range pl.Nodes {
		for _, d := range n.Disks {
			if d.Role == builder.RoleSwap || (d.Role == builder.RoleRoot && d.FS != "squashfs") {
				t.Errorf("%s: disk %+v", n.Name, d)
			}
		}
		for _, m := range n.Mounts {
			if m.Target == "/" || m.Type == "swap" {
				t.Errorf("%s: mount %+v", n.Name, m)
			}
		}
		if len(n.Mounts) == 0 {
			t.Errorf("%s: the brick and gluster mounts are gone too", n.Name)
		}
	}
}

// TestLayout: the default size is the smallest stick that holds the image,
// the data partition is last and fills it; --size that is too small says
// by how much.
func TestLayout(t *testing.T) {
	const live = 700 << 20
	for _, name := range []string{"scm", "pound-lb", "web-cluster"} {
		pl := plan(t, name)
		n := &pl.Nodes[0]
		l, err := Layout(pl, n, live, 0)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.MarshalIndent(l, "", "\t")
		golden(t, name+"-"+n.Name+"-layout.json", append(b, '\n'))
		im := l.Images[0]
		parts := im.Table.Partitions
		last := parts[len(parts)-1]
		if last.Piece != PieceData || last.Start+last.Size != im.Size-align {
			t.Errorf("%s: the data partition %+v does not end 1 MiB before the disk's end %d", name, last, im.Size)
		}
		var smaller int64
		for _, gb := range Sticks {
			if StickBytes(gb) < im.Size {
				smaller = StickBytes(gb)
			}
		}
		if smaller >= last.Start+MinData+align {
			t.Errorf("%s: %d bytes, but a %d-byte stick holds it", name, im.Size, smaller)
		}
	}
	pl := plan(t, "scm")
	_, err := Layout(pl, &pl.Nodes[0], live, 512<<20)
	var pe *target.PlanError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "does not fit --size 512M") || !strings.Contains(err.Error(), "short") {
		t.Errorf("too small --size: %v", err)
	}
}

// TestGrubConfig: live-boot keeps the image's own network configuration
// (ip=frommedia; without it eth0 gets DHCP and the static address and
// VLANs are gone) and mounts the data partition as persistence.
func TestGrubConfig(t *testing.T) {
	pl := plan(t, "scm")
	cfg := string(GrubConfig(pl, &pl.Nodes[0], "11111111-2222-4333-8444-555555555555"))
	for _, want := range []string{"linux /live/vmlinuz boot=live persistence persistence-label=persistence ip=frommedia",
		"--fs-uuid --set=root 11111111-2222-4333-8444-555555555555", "initrd /live/initrd.img"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("grub.cfg lacks %q:\n%s", want, cfg)
		}
	}
}
