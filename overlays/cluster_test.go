package overlays

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
)

// haPersonalities are the embedded personalities Pacemaker runs, from
// their plans: a new one is checked without being listed here.
func haPersonalities(t testing.TB) []string {
	return personalitiesWith(t, "HA", func(pl *builder.Plan) bool { return pl.HA })
}

func TestClusterFilesOnlyForHA(t *testing.T) {
	pl := planFor(t, "scm")
	if pl.HA {
		t.Fatal("scm is planned as HA")
	}
	for p, f := range renderNode(t, pl, pl.Nodes[0].Name) {
		switch f.Generator {
		case "corosync", "pacemaker", "drbd", "nfs":
			t.Errorf("non-HA scm got %s from %s", p, f.Generator)
		}
	}
	for _, name := range haPersonalities(t) {
		files := renderNode(t, planFor(t, name), "n1")
		for _, p := range []string{corosyncConfPath, corosyncKeyPath, cibPath, pacemakerDropIn} {
			mustFile(t, files, p)
		}
	}
}

func TestCorosyncConfContent(t *testing.T) {
	for _, tc := range []struct {
		name    string
		nodes   int
		twoNode bool
		qdevice string // the quorum device's address, or ""
	}{
		{"web-cluster", 3, false, ""},
		{"nfs-ha", 2, false, "192.168.224.250"},
		{"mysql-ha", 2, false, "192.168.224.250"},
		{"puppet-ha", 2, true, ""},
		{"pound-lb", 2, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pl := planFor(t, tc.name)
			files := renderNode(t, pl, "n1")
			conf := string(mustFile(t, files, corosyncConfPath).Data)
			key := mustFile(t, files, corosyncKeyPath)
			if key.Mode != 0o400 || len(key.Data) != corosyncKeyLength {
				t.Errorf("authkey: mode %v, %d bytes; want 0400, %d", key.Mode, len(key.Data), corosyncKeyLength)
			}
			if other := mustFile(t, renderNode(t, pl, "n2"), corosyncKeyPath); !bytes.Equal(other.Data, key.Data) {
				t.Error("n1 and n2 have different corosync keys")
			}
			for _, want := range []string{"cluster_name: " + pl.Cluster, "transport: knet",
				"crypto_cipher: aes256", "crypto_hash: sha256", "provider: corosync_votequorum", "to_syslog: yes"} {
				if !strings.Contains(conf, want) {
					t.Errorf("corosync.conf lacks %q", want)
				}
			}
			if got := strings.Count(conf, "nodeid:"); got != tc.nodes {
				t.Errorf("%d nodes in the nodelist, want %d", got, tc.nodes)
			}
			if got := strings.Contains(conf, "two_node: 1"); got != tc.twoNode {
				t.Errorf("two_node set: %v, want %v", got, tc.twoNode)
			}
			// A quorum device replaces two_node: votequorum refuses both.
			hasDevice := strings.Contains(conf, "model: net")
			if hasDevice != (tc.qdevice != "") {
				t.Errorf("quorum device configured: %v, want %q", hasDevice, tc.qdevice)
			}
			if tc.qdevice != "" {
				// sbd distrusts the device's vote (and never starts) when
				// its sync_timeout is above the watchdog's timeout.
				sync := fmt.Sprintf("sync_timeout: %d\n", pl.Fencing.WatchdogTimeout*1000)
				for _, want := range []string{"wait_for_all: 1", "host: " + tc.qdevice, "port: 5403", "algorithm: ffsplit", sync} {
					if !strings.Contains(conf, want) {
						t.Errorf("corosync.conf lacks %q", want)
					}
				}
			}
			for _, n := range pl.Nodes {
				want := fmt.Sprintf("name: %s\n\t\tnodeid: %d\n\t\tring0_addr: %s\n\t\tring1_addr: %s\n",
					n.Name, n.Index, n.Address, vlanAddr(t, pl, n, "cluster"))
				if !strings.Contains(conf, want) {
					t.Errorf("nodelist lacks\n%s", want)
				}
			}
		})
	}
}

func vlanAddr(t testing.TB, pl *builder.Plan, n builder.Node, purpose string) string {
	t.Helper()
	for i, v := range pl.Network.VLANs {
		if v.Purpose == purpose {
			return n.VLANs[i].Address
		}
	}
	t.Fatalf("%s has no %s vlan", pl.Personality, purpose)
	return ""
}

// xmlNode is any XML element, for looking at the CIB without the
// generator's own types.
type xmlNode struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Children []xmlNode  `xml:",any"`
}

func (n xmlNode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (n xmlNode) child(name string) xmlNode {
	for _, c := range n.Children {
		if c.XMLName.Local == name {
			return c
		}
	}
	return xmlNode{}
}

// nvpairs are the name=value pairs of a child set (meta_attributes, ...).
func (n xmlNode) nvpairs(set string) map[string]string {
	out := map[string]string{}
	for _, p := range n.child(set).Children {
		out[p.attr("name")] = p.attr("value")
	}
	return out
}

func parseCIB(t testing.TB, b []byte) xmlNode {
	t.Helper()
	var root xmlNode
	if err := xml.Unmarshal(b, &root); err != nil {
		t.Fatalf("cib.xml is not well-formed XML: %v", err)
	}
	if root.XMLName.Local != "cib" {
		t.Fatalf("root element %q, want cib", root.XMLName.Local)
	}
	return root
}

// cibSummary is the CIB's shape: every top-level resource with what it
// holds, and the constraints, as short strings.
type cibSummary struct {
	Resources   []string // "group mysql-group: mysql-fs mysql-ip mysql", "clone apache2-clone: apache2", "promotable mysql-drbd-clone: mysql-drbd"
	Colocations []string // "rsc with with-rsc@role score"
	Orders      []string // "first:action then:action kind"
}

func summarize(root xmlNode) cibSummary {
	var s cibSummary
	cfg := root.child("configuration")
	for _, r := range cfg.child("resources").Children {
		var members []string
		for _, c := range r.Children {
			if c.XMLName.Local == "primitive" {
				members = append(members, c.attr("id"))
			}
		}
		kind := r.XMLName.Local
		if kind == "clone" && r.nvpairs("meta_attributes")["promotable"] == "true" {
			kind = "promotable"
		}
		s.Resources = append(s.Resources, kind+" "+r.attr("id")+": "+strings.Join(members, " "))
	}
	for _, c := range cfg.child("constraints").Children {
		switch c.XMLName.Local {
		case "rsc_colocation":
			s.Colocations = append(s.Colocations, c.attr("rsc")+" with "+c.attr("with-rsc")+"@"+c.attr("with-rsc-role")+" "+c.attr("score"))
		case "rsc_order":
			s.Orders = append(s.Orders, c.attr("first")+":"+c.attr("first-action")+" then "+c.attr("then")+":"+c.attr("then-action")+" "+c.attr("kind"))
		}
	}
	return s
}

func TestCIBStructure(t *testing.T) {
	for _, tc := range []struct {
		name string
		want cibSummary
	}{
		{"web-cluster", cibSummary{
			Resources: []string{
				"clone apache2-clone: apache2",
				"group mysql-group: mysql-ip mysql",
				"group pound-group: pound-ip pound",
				"group puppet-group: puppet-ip puppet",
				"group rsyncd-group: rsyncd-ip rsyncd",
			},
			Orders: []string{"apache2-clone: then pound-group: Optional"},
		}},
		{"nfs-ha", cibSummary{
			Resources:   []string{"group nfs-group: nfs-fs nfs-ip nfs", "promotable nfs-drbd-clone: nfs-drbd"},
			Colocations: []string{"nfs-group with nfs-drbd-clone@Promoted INFINITY"},
			Orders:      []string{"nfs-drbd-clone:promote then nfs-group:start Mandatory"},
		}},
		{"mysql-ha", cibSummary{
			Resources:   []string{"group mysql-group: mysql-fs mysql-ip mysql", "promotable mysql-drbd-clone: mysql-drbd"},
			Colocations: []string{"mysql-group with mysql-drbd-clone@Promoted INFINITY"},
			Orders:      []string{"mysql-drbd-clone:promote then mysql-group:start Mandatory"},
		}},
		{"puppet-ha", cibSummary{Resources: []string{"group puppet-group: puppet-ip puppet"}}},
		{"pound-lb", cibSummary{Resources: []string{"group pound-group: pound-ip pound"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pl := planFor(t, tc.name)
			b := mustFile(t, renderNode(t, pl, "n1"), cibPath).Data
			root := parseCIB(t, b)
			got := summarize(root)
			if !slices.Equal(got.Resources, tc.want.Resources) {
				t.Errorf("resources:\n got  %q\n want %q", got.Resources, tc.want.Resources)
			}
			if !slices.Equal(got.Colocations, tc.want.Colocations) {
				t.Errorf("colocations:\n got  %q\n want %q", got.Colocations, tc.want.Colocations)
			}
			if !slices.Equal(got.Orders, tc.want.Orders) {
				t.Errorf("orders:\n got  %q\n want %q", got.Orders, tc.want.Orders)
			}
			if v := root.attr("validate-with"); v != cibSchema {
				t.Errorf("validate-with %q", v)
			}
			props := root.child("configuration").child("crm_config").nvpairs("cluster_property_set")
			want := map[string]string{"stonith-enabled": "false", "no-quorum-policy": "stop", "cluster-name": pl.Cluster, "load-threshold": "1000%", "node-action-limit": "8"}
			if f := pl.Fencing; f != nil {
				want["stonith-enabled"] = "true"
				want["stonith-watchdog-timeout"] = fmt.Sprintf("%ds", f.StonithWatchdogTimeout)
			}
			for k, v := range want {
				if props[k] != v {
					t.Errorf("crm_config %s=%q, want %q", k, props[k], v)
				}
			}
			if got := root.child("configuration").child("rsc_defaults").nvpairs("meta_attributes")["resource-stickiness"]; got != "100" {
				t.Errorf("resource-stickiness %q", got)
			}
			checkResourceDetails(t, pl, root)
			// Every node gets the same CIB: the cluster has one configuration.
			if other := mustFile(t, renderNode(t, pl, "n2"), cibPath).Data; !bytes.Equal(other, b) {
				t.Error("n1 and n2 got different CIBs")
			}
		})
	}
}

// checkResourceDetails looks at what each primitive is given: agents,
// floating IPs, DRBD devices, timeouts.
func checkResourceDetails(t *testing.T, pl *builder.Plan, root xmlNode) {
	t.Helper()
	prims := map[string]xmlNode{}
	clones := map[string]xmlNode{}
	for _, r := range root.child("configuration").child("resources").Children {
		if r.XMLName.Local == "clone" {
			clones[r.attr("id")] = r
		}
		for _, c := range r.Children {
			if c.XMLName.Local == "primitive" {
				prims[c.attr("id")] = c
			}
		}
	}
	timeout := func(p xmlNode, name string) string {
		for _, o := range p.child("operations").Children {
			if o.attr("name") == name {
				return o.attr("timeout")
			}
		}
		return ""
	}
	for _, sv := range pl.Services {
		switch sv.Kind {
		case "clone":
			c := clones[sv.Name+"-clone"]
			meta := c.nvpairs("meta_attributes")
			if meta["interleave"] != "true" || meta["requires"] != "nothing" {
				t.Errorf("%s-clone meta %v", sv.Name, meta)
			}
			if p := prims[sv.Name]; p.attr("class") != "systemd" || p.attr("type") != sv.Unit || timeout(p, "monitor") == "" {
				t.Errorf("%s: primitive %v", sv.Name, p.Attrs)
			}
		case "singleton":
			ip := prims[sv.Name+"-ip"]
			attrs := ip.nvpairs("instance_attributes")
			if ip.attr("type") != "IPaddr2" || attrs["ip"] != sv.IP || attrs["cidr_netmask"] != fmt.Sprint(pl.Network.Prefix) || attrs["nic"] != pl.Network.Interface {
				t.Errorf("%s-ip: %v %v", sv.Name, ip.Attrs, attrs)
			}
			p := prims[sv.Name]
			if sv.Unit == "nfs-server" {
				a := p.nvpairs("instance_attributes")
				if p.attr("type") != "nfsserver" || a["nfs_shared_infodir"] != "/srv/nfs/nfsinfo" || a["nfs_ip"] != sv.IP || a["nfs_server_scope"] != sv.Host {
					t.Errorf("nfs: %v %v", p.Attrs, a)
				}
			} else if p.attr("class") != "systemd" || p.attr("type") != sv.Unit {
				t.Errorf("%s: %v", sv.Name, p.Attrs)
			}
			if sv.DRBD != "" {
				fs := prims[sv.Name+"-fs"].nvpairs("instance_attributes")
				r := pl.DRBD[0]
				if fs["device"] != r.Device || fs["directory"] != r.Mount || fs["fstype"] != r.FS {
					t.Errorf("%s-fs: %v", sv.Name, fs)
				}
				d := prims[sv.DRBD+"-drbd"]
				if d.attr("provider") != "linbit" || d.nvpairs("instance_attributes")["drbd_resource"] != sv.DRBD {
					t.Errorf("%s-drbd: %v", sv.DRBD, d.Attrs)
				}
				meta := clones[sv.DRBD+"-drbd-clone"].nvpairs("meta_attributes")
				if meta["promotable"] != "true" || meta["promoted-max"] != "1" || meta["clone-max"] != "2" || meta["notify"] != "true" {
					t.Errorf("%s-drbd-clone meta %v", sv.DRBD, meta)
				}
			}
		}
	}
}

func TestCIBRejectsDuplicateIDs(t *testing.T) {
	pl := planFor(t, "mysql-ha")
	// A service named like the DRBD primitive collides with it.
	pl.Services = append(pl.Services, builder.Service{Name: "mysql-drbd", Kind: "singleton", Unit: "x", Agent: "systemd:x", IP: "192.168.224.199"})
	if _, err := buildCIB(pl).marshal(); err == nil || !strings.Contains(err.Error(), "used twice") {
		t.Fatalf("err = %v, want a duplicate id", err)
	}
}

// ---- checks by the real programs ----

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// combined runs args and returns stdout and stderr together, so a test can
// reject warnings of a program that exits 0 on them.
func combined(ctx context.Context, args ...string) (string, error) {
	out, err := run.Output(ctx, append([]string{"sh", "-c", `"$@" 2>&1`, "sh"}, args...)...)
	return string(out), err
}

func TestCorosyncConfig(t *testing.T) {
	testenv.Root(t)
	testenv.Tools(t, "corosync", "ip", "unshare", "mount")
	for _, name := range haPersonalities(t) {
		t.Run(name, func(t *testing.T) {
			pl := planFor(t, name)
			for _, n := range pl.Nodes {
				files := renderNode(t, pl, n.Name)
				conf := mustFile(t, files, corosyncConfPath)
				key := mustFile(t, files, corosyncKeyPath)
				ns := netnsWith(t, n.Address+"/"+fmt.Sprint(pl.Network.Prefix),
					vlanAddr(t, pl, n, "cluster")+"/"+fmt.Sprint(pl.Network.VLANs[0].Prefix))
				if err := corosyncTest(t, ns, conf.Data, key); err != nil {
					t.Fatalf("%s: corosync -t rejects the generated config: %v", n.Name, err)
				}
				if n.Index != 1 {
					continue
				}
				// The check is real: corosync -t fails on a broken copy.
				for what, broken := range map[string]string{
					"syntax":       strings.Replace(string(conf.Data), "totem {", "totem", 1),
					"bad cipher":   strings.Replace(string(conf.Data), "crypto_cipher: aes256", "crypto_cipher: rot13", 1),
					"not our node": strings.ReplaceAll(string(conf.Data), "ring0_addr: "+n.Address+"\n", "ring0_addr: 192.0.2.1\n"),
				} {
					if err := corosyncTest(t, ns, []byte(broken), key); err == nil {
						t.Errorf("corosync -t accepts a config with a %s error", what)
					}
				}
			}
		})
	}
}

// corosyncTest runs corosync -t in ns on conf and key placed where
// corosync reads them, /etc/corosync, bind-mounted in a private mount
// namespace so the host's own config is untouched.
func corosyncTest(t *testing.T, ns string, conf []byte, key File) error {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "corosync.conf"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "authkey"), key.Data, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/etc/corosync"); err != nil {
		t.Fatalf("need /etc/corosync to mount over: %v", err)
	}
	_, err := run.Output(ctxFor(t), "ip", "netns", "exec", ns, "unshare", "-m", "--propagation", "private",
		"sh", "-c", `mount --bind "$1" /etc/corosync && exec corosync -t`, "sh", dir)
	return err
}

func TestCIBVerify(t *testing.T) {
	testenv.Tools(t, "crm_verify", "crm_simulate")
	for _, name := range haPersonalities(t) {
		t.Run(name, func(t *testing.T) {
			pl := planFor(t, name)
			b := mustFile(t, renderNode(t, pl, "n1"), cibPath).Data
			parseCIB(t, b) // crm_verify exits 0 on malformed XML
			if pl.Fencing != nil {
				// Fencing is on: the CIB is valid only once sbd runs.
				if err := crmVerify(t, b); err == nil || !strings.Contains(err.Error(), "STONITH") {
					t.Errorf("crm_verify accepts a fencing CIB without a watchdog, or for another reason: %v", err)
				}
				b = []byte(withWatchdog(t, pl, b))
			}
			if err := crmVerify(t, b); err != nil {
				t.Fatal(err)
			}
			broken := strings.Replace(string(b), "</constraints>",
				`<rsc_order id="applbuild-broken" first="no-such-rsc" then="nor-this" kind="Mandatory"></rsc_order></constraints>`, 1)
			if err := crmVerify(t, []byte(broken)); err == nil {
				t.Error("crm_verify accepts a constraint on resources that do not exist")
			}
		})
	}
}

func crmVerify(t *testing.T, cib []byte) error {
	f := filepath.Join(t.TempDir(), "cib.xml")
	if err := os.WriteFile(f, cib, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := combined(ctxFor(t), "crm_verify", "--xml-file", f, "-V")
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	for _, l := range strings.Split(out, "\n") {
		if ll := strings.ToLower(l); strings.Contains(ll, "error") || strings.Contains(ll, "warning") {
			return fmt.Errorf("crm_verify: %s", out)
		}
	}
	return nil
}

// TestServiceDropInJVM: puppetserver's JVM starts with C1 only (its start
// is a singleton's failover time), and only puppetserver's.
func TestServiceDropInJVM(t *testing.T) {
	files := renderNode(t, planFor(t, "web-cluster"), "n1")
	const opt = "\nEnvironment=JAVA_TOOL_OPTIONS=-XX:TieredStopAtLevel=1\n"
	ps := string(mustFile(t, files, "/etc/systemd/system/puppetserver.service.d/50-applbuild-pacemaker.conf").Data)
	if !strings.Contains(ps, "[Service]") || !strings.Contains(ps, opt) || strings.Index(ps, opt) < strings.Index(ps, "[Service]") {
		t.Errorf("puppetserver's drop-in has no %q in [Service]:\n%s", strings.TrimSpace(opt), ps)
	}
	db := string(mustFile(t, files, "/etc/systemd/system/mariadb.service.d/50-applbuild-pacemaker.conf").Data)
	if strings.Contains(db, "JAVA_TOOL_OPTIONS") || strings.Contains(db, "ExecStartPost") {
		t.Errorf("mariadb's drop-in sets puppetserver's options:\n%s", db)
	}
}

// TestPuppetserverStartNoWait: the drop-in empties ExecStartPost (Debian's
// readiness wait, which would hold Pacemaker's whole transition for the
// JVM's start) and adds no command of its own.
func TestPuppetserverStartNoWait(t *testing.T) {
	ps := string(mustFile(t, renderNode(t, planFor(t, "web-cluster"), "n1"),
		"/etc/systemd/system/puppetserver.service.d/50-applbuild-pacemaker.conf").Data)
	var cmds []string
	for _, l := range strings.Split(ps, "\n") {
		if v, ok := strings.CutPrefix(l, "ExecStartPost="); ok {
			cmds = append(cmds, v)
		}
	}
	if len(cmds) != 1 || cmds[0] != "" {
		t.Errorf("want one empty ExecStartPost= (Debian's reset, nothing after), got %q", cmds)
	}
	for _, k := range []string{"ExecStart=", "Type="} {
		if strings.Contains(ps, "\n"+k) {
			t.Errorf("the drop-in sets %s:\n%s", k, ps)
		}
	}
}
