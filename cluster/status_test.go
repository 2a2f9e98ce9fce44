package cluster

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/builder/boot"
	p "github.com/applbuild/applbuild/personalities"
)

// A report as the nodes print it: gluster's pool list and volume info,
// and crm_mon --output-as=xml in the shape Pacemaker 2.1 and 3.0 write.
const sampleReport = `
== pool
UUID					Hostname 	State
7d1c0b8e-2a6e-4b8a-9a43-0c9e5e3b8f11	n2       	Connected 
0f4e3c1a-9d3e-4a8b-8f63-1b2c3d4e5f60	n3       	Disconnected 
5a6b7c8d-1e2f-4a3b-9c4d-5e6f7a8b9c0d	localhost	Connected 
== volumes

Volume Name: www
Type: Replicate
Volume ID: 2f1d8c6e-5b4a-4c3d-9e2f-1a0b9c8d7e6f
Status: Started
Snapshot Count: 0
Number of Bricks: 1 x 3 = 3
Transport-type: tcp
Bricks:
Brick1: n1:/data/www/brick
Brick2: n2:/data/www/brick
Brick3: n3:/data/www/brick

Volume Name: global
Type: Replicate
Status: Created
Number of Bricks: 1 x 3 = 3
== crm
<pacemaker-result api-version="2.30" request="crm_mon -1 --output-as=xml">
  <summary>
    <stack type="corosync"/>
    <current_dc present="true" version="3.0.0" name="n2" id="2" with_quorum="true" mixed_version="false"/>
    <nodes_configured number="3"/>
  </summary>
  <nodes>
    <node name="n1" id="1" online="true" standby="false" type="member"/>
    <node name="n2" id="2" online="true" standby="false" type="member"/>
    <node name="n3" id="3" online="false" standby="false" type="member"/>
  </nodes>
  <resources>
    <clone id="apache2-clone" multi_state="false" unique="false" managed="true" failed="false">
      <resource id="apache2" resource_agent="systemd:apache2" role="Started" active="true" failed="false" nodes_running_on="1">
        <node name="n1" id="1" cached="true"/>
      </resource>
      <resource id="apache2" resource_agent="systemd:apache2" role="Started" active="true" failed="false" nodes_running_on="1">
        <node name="n2" id="2" cached="true"/>
      </resource>
      <resource id="apache2" resource_agent="systemd:apache2" role="Stopped" active="false" failed="false" nodes_running_on="0"/>
    </clone>
    <clone id="nfs-drbd-clone" multi_state="true" unique="false" managed="true" failed="false">
      <resource id="nfs-drbd" resource_agent="ocf:linbit:drbd" role="Promoted" active="true" failed="false" nodes_running_on="1">
        <node name="n2" id="2" cached="true"/>
      </resource>
      <resource id="nfs-drbd" resource_agent="ocf:linbit:drbd" role="Unpromoted" active="true" failed="false" nodes_running_on="1">
        <node name="n1" id="1" cached="true"/>
      </resource>
    </clone>
    <group id="mysql-group" number_resources="2" managed="true" disabled="false">
      <resource id="mysql-ip" resource_agent="ocf:heartbeat:IPaddr2" role="Started" active="true" failed="false" nodes_running_on="1">
        <node name="n2" id="2" cached="true"/>
      </resource>
      <resource id="mysql" resource_agent="systemd:mariadb" role="Stopped" active="false" failed="true" nodes_running_on="0"/>
    </group>
  </resources>
</pacemaker-result>
`

func TestParseClusterReport(t *testing.T) {
	st := &Status{}
	parseClusterReport(st, []byte(sampleReport))
	if st.Peers != 1 {
		t.Errorf("peers %d, want 1 (n2 connected; n3 not; localhost is not a peer)", st.Peers)
	}
	want := []Volume{{Name: "www", Status: "Started", Type: "Replicate", Bricks: 3}, {Name: "global", Status: "Created", Type: "Replicate", Bricks: 3}}
	if !slices.Equal(st.Volumes, want) {
		t.Errorf("volumes %+v, want %+v", st.Volumes, want)
	}
	if !st.Quorate {
		t.Error("with_quorum=true not read")
	}
	if !slices.Equal(st.Online, []string{"n1", "n2"}) {
		t.Errorf("online %v", st.Online)
	}
	if got := st.Where("apache2"); !slices.Equal(got, []string{"n1", "n2"}) {
		t.Errorf("apache2 on %v, want n1 n2 (the stopped instance runs nowhere)", got)
	}
	if got := st.Where("mysql-ip"); !slices.Equal(got, []string{"n2"}) {
		t.Errorf("mysql-ip on %v", got)
	}
	i := slices.IndexFunc(st.Resources, func(r Resource) bool { return r.ID == "mysql" })
	if i < 0 || !st.Resources[i].Failed || len(st.Resources[i].Nodes) != 0 {
		t.Errorf("mysql: %+v", st.Resources)
	}
	if len(st.Resources) != 5 {
		t.Errorf("%d resources, want apache2, mysql-ip and mysql once each, nfs-drbd promoted and unpromoted: %+v", len(st.Resources), st.Resources)
	}
	if got := st.Where("nfs-drbd"); !slices.Equal(got, []string{"n2"}) {
		t.Errorf("nfs-drbd promoted on %v, want n2", got)
	}
	if s := st.String(); !regexp.MustCompile(`nfs-drbd +Promoted +n2\n`).MatchString(s) || !regexp.MustCompile(`nfs-drbd +Unpromoted +n1\n`).MatchString(s) {
		t.Errorf("status shows the promotable clone as:\n%s", s)
	}
}

func TestParseClusterReportGarbage(t *testing.T) {
	st := &Status{}
	parseClusterReport(st, []byte("== crm\n<not xml\n== pool\nnonsense\n"))
	if st.Peers != 0 || len(st.Resources) != 0 || st.Quorate {
		t.Errorf("garbage gave %+v", st)
	}
}

func testPlan() *builder.Plan {
	return &builder.Plan{
		HA:      true,
		Network: builder.Network{Subnet: "192.168.224.0/24"},
		Nodes: []builder.Node{
			{Name: "n1", Address: "192.168.224.161", Mounts: []builder.Mount{{Source: "n1:/www", Target: "/var/www", Type: "glusterfs"}}},
			{Name: "n2", Address: "192.168.224.162", Mounts: []builder.Mount{{Source: "n2:/www", Target: "/var/www", Type: "glusterfs"}}},
		},
		Services: []builder.Service{
			{Name: "ssh", Kind: p.KindLocal},
			{Name: "apache2", Kind: p.KindClone},
			{Name: "mysql", Kind: p.KindSingleton, IP: "192.168.224.170", Port: 3306},
		},
		Gluster: &builder.Gluster{Mode: "managed", Volumes: []builder.Volume{{Name: "www", Nodes: []string{"n1", "n2"}}}},
		DRBD:    []builder.DRBD{{Name: "mysql", Peers: []builder.DRBDPeer{{Node: "n1"}, {Node: "n2"}}}},
	}
}

// formedStatus is testPlan's cluster, formed.
func formedStatus() *Status {
	return &Status{
		Nodes: []NodeStatus{
			{Name: "n1", SSH: true, Mounts: []string{"/var/www"}, DRBD: []DRBDState{{"mysql", "Connected", "UpToDate/UpToDate"}}},
			{Name: "n2", SSH: true, Mounts: []string{"/var/www"}, DRBD: []DRBDState{{"mysql", "Connected", "UpToDate/UpToDate"}}},
		},
		Peers:     1,
		Volumes:   []Volume{{Name: "www", Status: "Started", Type: "Replicate", Bricks: 2}},
		Online:    []string{"n1", "n2"},
		Resources: []Resource{{ID: "apache2", Nodes: []string{"n1", "n2"}}, {ID: "mysql", Nodes: []string{"n2"}}},
		Endpoints: []Endpoint{{Service: "mysql", Addr: "192.168.224.170:3306", Answers: true}},
		Reported:  true,
	}
}

func TestProblems(t *testing.T) {
	c := &Cluster{Plan: *testPlan()}
	formed := formedStatus()
	if probs := c.Problems(formed); len(probs) != 0 {
		t.Fatalf("a formed cluster has problems: %v", probs)
	}
	for _, tt := range []struct {
		name   string
		break_ func(*Status)
		want   string
	}{
		{"node down", func(s *Status) { s.Nodes[1].SSH = false }, "n2: not up"},
		{"failed unit", func(s *Status) { s.Nodes[0].Failed = []FailedUnit{{"var-www.mount", "mount error"}} }, "n1: unit var-www.mount failed: mount error"},
		{"peer", func(s *Status) { s.Peers = 0 }, "gluster: 0 of 1 peers connected"},
		{"volume missing", func(s *Status) { s.Volumes = nil }, "gluster: volume www not created"},
		{"volume stopped", func(s *Status) { s.Volumes[0].Status = "Stopped" }, "gluster: volume www is Stopped"},
		{"distribute", func(s *Status) { s.Volumes[0].Type = "Distribute" }, "want Replicate with 2"},
		{"not mounted", func(s *Status) { s.Nodes[1].Mounts = nil }, "n2: /var/www not mounted"},
		{"offline", func(s *Status) { s.Online = []string{"n1"} }, "pacemaker: n2 not online"},
		{"singleton twice", func(s *Status) { s.Resources[1].Nodes = []string{"n1", "n2"} }, "mysql runs on 2 nodes (n1 n2), want 1"},
		{"clone short", func(s *Status) { s.Resources[0].Nodes = []string{"n1"} }, "apache2 runs on 1 nodes (n1), want 2"},
		{"failed resource", func(s *Status) { s.Resources[1].Failed = true }, "pacemaker: mysql failed"},
		{"unknown resource", func(s *Status) { s.Resources = s.Resources[:1] }, "pacemaker: mysql not known"},
		{"no answer", func(s *Status) { s.Endpoints[0].Answers = false }, "mysql: nothing answers on 192.168.224.170:3306"},
		{"drbd syncing", func(s *Status) { s.Nodes[0].DRBD[0] = DRBDState{"mysql", "SyncSource", "UpToDate/Inconsistent"} },
			"n1: drbd mysql is SyncSource, UpToDate/Inconsistent; want Connected, UpToDate/UpToDate"},
		{"drbd down", func(s *Status) { s.Nodes[1].DRBD = nil }, "n2: drbd mysql is not up"},
		{"no cluster report", func(s *Status) { s.Reported, s.Volumes, s.Peers = false, nil, 0 }, "no node answered the cluster report"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := clone(formed)
			tt.break_(st)
			probs := c.Problems(st)
			if !slices.ContainsFunc(probs, func(s string) bool { return strings.Contains(s, tt.want) }) {
				t.Errorf("problems %q lack %q", probs, tt.want)
			}
			if !st.Reported && slices.ContainsFunc(probs, func(s string) bool { return strings.Contains(s, "not created") }) {
				t.Errorf("without a report, problems claim what the pool lacks: %q", probs)
			}
		})
	}
}

func clone(s *Status) *Status {
	c := *s
	c.Nodes = slices.Clone(s.Nodes)
	for i := range c.Nodes {
		c.Nodes[i].Mounts = slices.Clone(s.Nodes[i].Mounts)
		c.Nodes[i].DRBD = slices.Clone(s.Nodes[i].DRBD)
	}
	c.Volumes = slices.Clone(s.Volumes)
	c.Online = slices.Clone(s.Online)
	c.Resources = slices.Clone(s.Resources)
	for i := range c.Resources {
		c.Resources[i].Nodes = slices.Clone(s.Resources[i].Nodes)
	}
	c.Endpoints = slices.Clone(s.Endpoints)
	return &c
}

func TestHostAddress(t *testing.T) {
	pl := testPlan()
	pl.Network.Gateway = "192.168.224.1"
	if a, err := hostAddress(pl); err != nil || a != "192.168.224.1/24" {
		t.Errorf("with a gateway: %q, %v", a, err)
	}
	pl.Network.Gateway = ""
	if a, err := hostAddress(pl); err != nil || a != "192.168.224.254/24" {
		t.Errorf("without a gateway: %q, %v (want the highest free host address)", a, err)
	}
	pl.Network.Subnet = "10.0.0.0/30"
	pl.Nodes = []builder.Node{{Address: "10.0.0.2"}}
	pl.Services = []builder.Service{{IP: "10.0.0.1"}}
	if a, err := hostAddress(pl); err == nil {
		t.Errorf("a /30 with both hosts taken gave %q", a)
	}
}

func TestNames(t *testing.T) {
	if n := tapName("averyveryverylongnodename"); len(n) > 15 {
		t.Errorf("tap name %q is longer than IFNAMSIZ-1", n)
	}
	if n := netnsName("web-cluster"); n != "applbuild-web-cluster" {
		t.Errorf("netns %q", n)
	}
}

func TestHasVirtFlag(t *testing.T) {
	for _, tt := range []struct {
		info string
		want bool
	}{
		{"processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr\n", false},
		{"flags\t\t: fpu vme vmx ept\n", true},
		{"flags\t\t: fpu svm npt\n", true},
		{"model name\t: vmx svm\nflags\t\t: fpu\n", false}, // not in flags
		{"", false},
	} {
		if got := hasVirtFlag([]byte(tt.info)); got != tt.want {
			t.Errorf("hasVirtFlag(%q) = %v, want %v", tt.info, got, tt.want)
		}
	}
}

func TestSSHArgs(t *testing.T) {
	c := &Cluster{NetNS: "applbuild-x"}
	n := &Node{Dir: "/s/n1"}
	n.Address = netip.MustParsePrefix("192.168.224.161/24")
	args := c.SSHArgs(n, "crm_mon -1")
	dest := slices.Index(args, "root@192.168.224.161")
	if dest < 0 || !slices.Equal(args[dest+1:], []string{"--", "crm_mon -1"}) {
		t.Errorf("the command must follow the destination, every option precede it: %q", args)
	}
	if !slices.Contains(args[:dest], "BatchMode=yes") {
		t.Errorf("a command runs in batch mode: %q", args)
	}
	login := c.SSHArgs(n, "")
	if login[len(login)-1] != "root@192.168.224.161" || slices.Contains(login, "BatchMode=yes") {
		t.Errorf("a login: %q", login)
	}
}

// TestReportsExitZero: a report whose commands all fail (no glusterd, no
// Pacemaker yet, no mount) still exits 0, so a failed ssh means only an
// unreachable node. crm_mon without a cluster exits non-zero, and that
// once made every node of a forming cluster look down.
func TestReportsExitZero(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	for name, script := range map[string]string{"node": nodeReport, "cluster": clusterReport} {
		cmd := exec.Command(bash, "-c", script)
		cmd.Env = []string{"PATH=" + t.TempDir()} // every command is missing
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%s report: %v\n%s", name, err, out)
		}
		if !strings.Contains(string(out), "== ") {
			t.Errorf("%s report printed no section:\n%s", name, out)
		}
	}
}

// TestQemuArgsFirmware: a raw or usb node boots through its firmware (no
// -kernel; OVMF's code read-only and a variable store of its own, kept
// between two starts), a Xen node's kernel is started directly.
func TestQemuArgsFirmware(t *testing.T) {
	dir := t.TempDir()
	xen := &Node{Machine: boot.Machine{Name: "n1", Disks: []string{"disk.img"}, RootUUID: "u"}, Dir: dir, Tap: "tap-n1", Memory: 1 << 30, CPUs: 1}
	args, err := qemuArgs(xen)
	if err != nil {
		t.Fatal(err)
	}
	if a := strings.Join(args, " "); !strings.Contains(a, "-kernel ") || strings.Contains(a, "pflash") {
		t.Errorf("xen node: %s", a)
	}
	for _, fw := range []string{boot.FirmwareBIOS, boot.FirmwareUEFI, boot.FirmwareSecure} {
		n := *xen
		n.Firmware = fw
		n.Dir = filepath.Join(dir, fw)
		os.Mkdir(n.Dir, 0o700)
		args, err := qemuArgs(&n)
		if err != nil {
			if fw != boot.FirmwareBIOS && os.Getenv("APPLBUILD_REQUIRE") != "1" && strings.Contains(err.Error(), "apt-get install ovmf") {
				t.Skip(err)
			}
			t.Fatal(err)
		}
		a := strings.Join(args, " ")
		if strings.Contains(a, "-kernel") {
			t.Errorf("%s node starts a kernel: %s", fw, a)
		}
		if got := strings.Contains(a, "if=pflash"); got != (fw != boot.FirmwareBIOS) {
			t.Errorf("%s: pflash %v: %s", fw, got, a)
		}
		if got := strings.Contains(a, "q35,smm=on"); got != (fw == boot.FirmwareSecure) {
			t.Errorf("%s: smm %v: %s", fw, got, a)
		}
		if fw == boot.FirmwareBIOS {
			continue
		}
		vars := filepath.Join(n.Dir, "OVMF_VARS-"+fw+".fd")
		if err := os.WriteFile(vars, []byte("written by the boot loader"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := qemuArgs(&n); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(vars); string(b) != "written by the boot loader" {
			t.Errorf("%s: a second start replaced the node's variable store", fw)
		}
	}
	bad := *xen
	bad.Firmware = "coreboot"
	if _, err := qemuArgs(&bad); err == nil {
		t.Error("firmware coreboot accepted")
	}
}

// TestProblemsFencing: on a plan with fencing the cluster is formed only
// when sbd runs and the quorum device votes on every node.
func TestProblemsFencing(t *testing.T) {
	pl := testPlan()
	pl.Fencing = &builder.Fencing{QDevice: "192.168.224.250", QPort: 5403}
	c := &Cluster{Plan: *pl}
	formed := formedStatus()
	for i := range formed.Nodes {
		formed.Nodes[i].SBD, formed.Nodes[i].QDevice = "active", "A,V,NMW"
	}
	if probs := c.Problems(formed); len(probs) != 0 {
		t.Fatalf("a formed cluster has problems: %v", probs)
	}
	for _, tt := range []struct {
		name   string
		break_ func(*Status)
		want   string
	}{
		{"sbd down", func(s *Status) { s.Nodes[1].SBD = "inactive" }, `n2: sbd is "inactive", want active`},
		{"no qdevice", func(s *Status) { s.Nodes[0].QDevice = "NR" }, "n1: quorum device 192.168.224.250 not voting"},
		{"qdevice unknown", func(s *Status) { s.Nodes[0].QDevice = "" }, "n1: quorum device 192.168.224.250 not voting"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := clone(formed)
			tt.break_(st)
			if probs := c.Problems(st); !slices.ContainsFunc(probs, func(s string) bool { return strings.Contains(s, tt.want) }) {
				t.Errorf("problems %q lack %q", probs, tt.want)
			}
		})
	}
}

// TestPidFromFile: a pid file is believed only for a process whose
// command line carries the mark, and killAndWait leaves it dead.
func TestPidFromFile(t *testing.T) {
	dir := t.TempDir()
	pf := filepath.Join(dir, "x.pid")
	cmd := exec.Command("sh", "-c", "sleep 60; : "+pf) // the pid file's path is the mark in its command line
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	go cmd.Wait() // reap it, so it leaves no zombie whose cmdline lingers
	if err := os.WriteFile(pf, []byte(fmt.Sprintf("%d\n", cmd.Process.Pid)), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := pidFromFile(pf, pf); got != cmd.Process.Pid {
		t.Fatalf("pidFromFile = %d, want %d", got, cmd.Process.Pid)
	}
	if got := pidFromFile(pf, "another mark"); got != 0 {
		t.Errorf("a process without the mark is believed: %d", got)
	}
	if got := pidFromFile(filepath.Join(dir, "none"), pf); got != 0 {
		t.Errorf("a missing pid file gives %d", got)
	}
	if err := killAndWait("sleeper", func() int { return pidFromFile(pf, pf) }); err != nil {
		t.Fatal(err)
	}
	if got := pidFromFile(pf, pf); got != 0 {
		t.Errorf("after killAndWait the process is still there: %d", got)
	}
}

// TestWaitsOnlyForAnswers: the light wait (addresses alone) is taken
// only when nothing but an answer is missing.
func TestWaitsOnlyForAnswers(t *testing.T) {
	c := &Cluster{Plan: *testPlan()}
	st := clone(formedStatus())
	st.Endpoints[0].Answers = false
	if !waitsOnlyForAnswers(c, st) {
		t.Errorf("a cluster missing only an answer is not seen as such: %v", c.Problems(st))
	}
	if st.Endpoints[0].Answers {
		t.Error("waitsOnlyForAnswers changed the status it was given")
	}
	st.Nodes[0].Failed = []FailedUnit{{"var-www.mount", "mount error"}}
	if waitsOnlyForAnswers(c, st) {
		t.Error("a failed unit is taken for a missing answer")
	}
	st = clone(formedStatus())
	st.Online = []string{"n1"}
	st.Endpoints[0].Answers = false
	if waitsOnlyForAnswers(c, st) {
		t.Error("a node offline in Pacemaker is taken for a missing answer")
	}
	if st := (&Status{Reported: true}); waitsOnlyForAnswers(c, st) {
		t.Error("a status with no address tried is taken for a missing answer")
	}
}
