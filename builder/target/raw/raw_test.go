package raw

import (
	"encoding/json"
	"flag"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/builder/target"
	"github.com/applbuild/applbuild/builder/target/targettest"
	p "github.com/applbuild/applbuild/personalities"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func plan(t *testing.T, name string, set ...string) *builder.Plan {
	t.Helper()
	return targettest.Plan(t, name, set...)
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	targettest.Golden(t, name, got, *update)
}

// TestLayout: every personality's first node as one GPT disk, golden; and
// what must hold whatever the golden says: partitions aligned, in order,
// not overlapping, inside the disk with room for the backup table, each
// plan disk exactly once in a partition at least its size.
func TestLayout(t *testing.T) {
	infos, err := p.Library{}.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range infos {
		name := info.Name
		pl := plan(t, name)
		n := &pl.Nodes[0]
		l := Layout(pl, n)
		b, err := json.MarshalIndent(l, "", "\t")
		if err != nil {
			t.Fatal(err)
		}
		golden(t, name+"-"+n.Name+"-layout.json", append(b, '\n'))
		if len(l.Images) != 1 || l.Images[0].Table == nil || l.Images[0].File != n.Name+".img" {
			t.Fatalf("%s: want one partitioned %s.img, got %+v", name, n.Name, l.Images)
		}
		im := l.Images[0]
		end := int64(target.Align)
		seen := map[string]bool{}
		for i, pt := range im.Table.Partitions {
			if pt.Number != i+1 || pt.Start != end || pt.Start%target.Align != 0 || pt.Size%target.Align != 0 {
				t.Errorf("%s: partition %d (%s) at %d+%d, previous ends at %d", name, pt.Number, pt.Name, pt.Start, pt.Size, end)
			}
			end = pt.Start + pt.Size
			seen[pt.Piece] = true
			for _, d := range n.Disks {
				if d.Name == pt.Piece && int64(d.Size) > pt.Size {
					t.Errorf("%s: %s (%s) in a partition of %d", name, d.Name, d.Size, pt.Size)
				}
			}
		}
		if im.Size < end+33*target.SectorSize {
			t.Errorf("%s: disk %d ends before the backup GPT after %d", name, im.Size, end)
		}
		for _, d := range n.Disks {
			if !seen[d.Name] {
				t.Errorf("%s: disk %s has no partition", name, d.Name)
			}
		}
		if !seen[PieceBIOS] || !seen[PieceESP] || im.Table.Partitions[0].Type != TypeBIOSBoot || im.Table.Partitions[1].Type != TypeESP {
			t.Errorf("%s: partitions 1 and 2 must be the BIOS boot partition and the ESP", name)
		}
	}
}

// TestGrubConfig: both GRUBs read the root filesystem's grub.cfg; it finds
// the root by its UUID and boots the /vmlinuz symlink on the serial console.
func TestGrubConfig(t *testing.T) {
	pl := plan(t, "scm")
	n := &pl.Nodes[0]
	cfg := string(GrubConfig(pl, n))
	golden(t, "scm-grub.cfg", []byte(cfg))
	uuid := n.Disks[0].UUID
	for _, want := range []string{"--fs-uuid --set=root " + uuid, "linux /vmlinuz root=UUID=" + uuid + " ro", "console=ttyS0,115200n8", "initrd /initrd.img"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("grub.cfg lacks %q:\n%s", want, cfg)
		}
	}
}
