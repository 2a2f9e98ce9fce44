package builder

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	p "github.com/applbuild/applbuild/personalities"
)

var update = flag.Bool("update", false, "rewrite testdata/plans")

func plan(t *testing.T, name string, set ...string) *Plan {
	t.Helper()
	s, err := p.Load(name, p.Options{Set: set})
	if err != nil {
		t.Fatal(err)
	}
	pl, err := New(s)
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

// TestPlanGolden pins the whole plan of every personality: any change in
// what an image would contain shows up as a diff of testdata/plans.
func TestPlanGolden(t *testing.T) {
	infos, err := p.Library{}.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range infos {
		t.Run(info.Name, func(t *testing.T) {
			got, err := json.MarshalIndent(plan(t, info.Name), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			file := filepath.Join("testdata", "plans", info.Name+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (go test ./builder -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("plan of %s changed (go test ./builder -update; git diff)", info.Name)
			}
			// deterministic: a second plan is the same bytes
			again, _ := json.MarshalIndent(plan(t, info.Name), "", "  ")
			if !bytes.Equal(again, got[:len(got)-1]) {
				t.Error("two plans of the same spec differ")
			}
		})
	}
}

func TestWebClusterPlan(t *testing.T) {
	pl := plan(t, "web-cluster")
	if len(pl.Nodes) != 3 {
		t.Fatalf("nodes = %d", len(pl.Nodes))
	}
	n1 := pl.Nodes[0]
	if n1.FQDN != "n1.example.org" || n1.Address != "192.168.224.161" || n1.Memory != 3*p.GiB {
		t.Errorf("n1 = %s %s %s", n1.FQDN, n1.Address, n1.Memory)
	}
	var files []string
	for _, d := range n1.Disks {
		files = append(files, d.Name+"="+d.Size.String())
	}
	if got := strings.Join(files, " "); got != "root=2G swap=128M pv1=2G pv2=2G" {
		t.Errorf("disks = %s", got)
	}
	if n1.VG == nil || n1.VG.Name != "n1_vg0" || len(n1.VG.LVs) != 10 {
		t.Fatalf("vg = %+v", n1.VG)
	}
	if len(n1.VLANs) != 4 || n1.VLANs[0].Interface != "eth0.10" || n1.VLANs[0].Address != "10.224.10.161" {
		t.Errorf("vlans = %+v", n1.VLANs)
	}
	vips := map[string]string{}
	for _, s := range pl.Services {
		if s.Kind == p.KindSingleton {
			vips[s.Name] = s.IP
		}
	}
	if len(vips) != 4 || vips["mysql"] == "" || vips["rsyncd"] == "" || vips["mysql"] == vips["rsyncd"] {
		t.Errorf("floating IPs = %v", vips)
	}
	if pl.Rsync == nil || pl.Rsync.Address != vips["rsyncd"] {
		t.Errorf("rsync binds %+v, floating ip %s", pl.Rsync, vips["rsyncd"])
	}
	if pl.Pound == nil || len(pl.Pound.Backends) != 3 || pl.Pound.Backends[0] != "192.168.224.161:8080" {
		t.Errorf("pound = %+v", pl.Pound)
	}
	// The default is what the services need; the seed's 256M is not.
	for _, w := range pl.Warnings {
		if strings.Contains(w, "raise cluster.memory") {
			t.Errorf("the default memory warns: %s", w)
		}
	}
	if seed := plan(t, "web-cluster", "cluster.memory=256M"); len(seed.Warnings) == 0 || !strings.Contains(seed.Warnings[0], "raise cluster.memory") {
		t.Errorf("256M with puppetserver must warn: %v", seed.Warnings)
	}
	// brick mounts then gluster client mounts, in fstab order
	var mounts []string
	for _, m := range n1.Mounts {
		mounts = append(mounts, m.Type+":"+m.Target)
	}
	if mounts[0] != "ext4:/" || mounts[1] != "swap:none" || mounts[2] != "ext4:/data/global" || mounts[12] != "glusterfs:/usr/global" {
		t.Errorf("mounts = %v", mounts)
	}
}

func TestPlanDerivedIDsFollowIdentityOnly(t *testing.T) {
	a := plan(t, "web-cluster")
	b := plan(t, "web-cluster", "cluster.memory=1G", "network.subnet=10.1.0.0/16", "network.gateway=10.1.0.1", "network.dns=[10.1.0.1]")
	if a.Nodes[0].Disks[0].UUID != b.Nodes[0].Disks[0].UUID || a.Nodes[0].MAC != b.Nodes[0].MAC {
		t.Error("a config change renamed disks or MACs")
	}
	c := plan(t, "web-cluster", "domain=example.net")
	if a.Nodes[0].Disks[0].UUID == c.Nodes[0].Disks[0].UUID {
		t.Error("another cluster identity kept the same UUIDs")
	}
	if b.Nodes[0].Address != "10.1.0.161" || b.Services[6].IP != "10.1.0.170" {
		t.Errorf("re-addressed: %s %s", b.Nodes[0].Address, b.Services[6].IP)
	}
	if len(b.Warnings) == 0 {
		t.Error("1G is still below puppetserver's need")
	}
}

func TestVIPAllocationSkipsTakenAddresses(t *testing.T) {
	pl := plan(t, "web-cluster", "network.first_host=170")
	seen := map[string]bool{}
	for _, n := range pl.Nodes {
		seen[n.Address] = true
	}
	for _, s := range pl.Services {
		if s.IP != "" && seen[s.IP] {
			t.Errorf("%s got %s, a node address", s.Name, s.IP)
		}
		seen[s.IP] = true
	}
}

func TestDRBDPlan(t *testing.T) {
	pl := plan(t, "nfs-ha")
	if len(pl.DRBD) != 1 || len(pl.DRBD[0].Peers) != 2 {
		t.Fatalf("drbd = %+v", pl.DRBD)
	}
	d := pl.DRBD[0]
	if d.Device != "/dev/drbd0" || d.Peers[1].Disk != "/dev/n2_vg0/drbd_nfs" || d.Peers[0].Address != "192.168.224.161" {
		t.Errorf("drbd = %+v", d)
	}
	if pl.Nodes[0].VG == nil || len(pl.Nodes[0].VG.LVs) != 2 {
		t.Errorf("lvs = %+v", pl.Nodes[0].VG)
	}
}
