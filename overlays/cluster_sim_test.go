package overlays

import (
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/internal/testenv"
)

// liveCIB turns the generated CIB into one of a running cluster for
// crm_simulate: the plan's nodes, all online, with quorum, and a promotion
// score on every DRBD instance (the drbd agent sets it from the disk
// state; nothing would be promoted without it).
func liveCIB(t *testing.T, pl *builder.Plan, cib []byte) []byte {
	t.Helper()
	var nodes, status strings.Builder
	for _, n := range pl.Nodes {
		fmt.Fprintf(&nodes, `<node id="%d" uname="%s"/>`, n.Index, n.Name)
		fmt.Fprintf(&status, `<node_state id="%d" uname="%s" in_ccm="true" crmd="online" join="member" expected="member">`, n.Index, n.Name)
		fmt.Fprintf(&status, `<transient_attributes id="%d"><instance_attributes id="status-%d">`, n.Index, n.Index)
		for _, r := range pl.DRBD {
			fmt.Fprintf(&status, `<nvpair id="status-%d-master-%s-drbd" name="master-%s-drbd" value="10000"/>`, n.Index, r.Name, r.Name)
		}
		status.WriteString(`</instance_attributes></transient_attributes></node_state>`)
	}
	s := withWatchdog(t, pl, cib)
	// A CIB that does not place by memory names no node.
	s = strings.Replace(s, "<nodes></nodes>", "<nodes>"+nodes.String()+"</nodes>", 1)
	for _, r := range []struct{ old, new string }{
		{"<status></status>", "<status>" + status.String() + "</status>"},
		{"<cib ", `<cib have-quorum="1" `},
	} {
		if !strings.Contains(s, r.old) {
			t.Fatalf("generated CIB has no %s", r.old)
		}
		s = strings.Replace(s, r.old, r.new, 1)
	}
	return []byte(s)
}

// withWatchdog is cib as the DC of a fencing plan's cluster holds it: the
// controller sets have-watchdog when sbd runs, and only then does watchdog
// fencing count as a fence device. Other plans' CIBs are returned as is.
func withWatchdog(t *testing.T, pl *builder.Plan, cib []byte) string {
	t.Helper()
	s := string(cib)
	if pl.Fencing == nil {
		return s
	}
	const set = `<cluster_property_set id="cib-bootstrap-options">`
	if !strings.Contains(s, set) {
		t.Fatalf("generated CIB has no %s", set)
	}
	return strings.Replace(s, set, set+`<nvpair id="cib-bootstrap-options-have-watchdog" name="have-watchdog" value="true"></nvpair>`, 1)
}

// simStatus is crm_simulate's revised cluster status (--output-as=xml).
type simStatus struct {
	Resources struct {
		Clones []simSet `xml:"clone"`
		Groups []simSet `xml:"group"`
	} `xml:"revised_cluster_status>resources"`
}

type simSet struct {
	ID        string        `xml:"id,attr"`
	Resources []simResource `xml:"resource"`
}

type simResource struct {
	ID    string `xml:"id,attr"`
	Role  string `xml:"role,attr"`
	Nodes []struct {
		Name string `xml:"name,attr"`
	} `xml:"node"`
}

// placement is where each member of set runs: "" when stopped.
func (s simSet) placement() map[string][]string {
	out := map[string][]string{}
	for _, r := range s.Resources {
		for _, n := range r.Nodes {
			out[r.ID] = append(out[r.ID], n.Name)
		}
		if len(r.Nodes) == 0 {
			out[r.ID] = append(out[r.ID], "")
		}
	}
	return out
}

// groupNode is the one node all of a group's members run on, or "".
func (s simSet) groupNode() string {
	node := ""
	for _, r := range s.Resources {
		if r.Role != "Started" || len(r.Nodes) != 1 {
			return ""
		}
		if node != "" && r.Nodes[0].Name != node {
			return ""
		}
		node = r.Nodes[0].Name
	}
	return node
}

// cloneNodes are the nodes a clone's instances run on, and how many are
// promoted.
func (s simSet) cloneNodes() (nodes []string, promoted int) {
	for _, r := range s.Resources {
		if len(r.Nodes) == 1 && r.Role != "Stopped" {
			nodes = append(nodes, r.Nodes[0].Name)
		}
		if r.Role == "Promoted" || r.Role == "Master" {
			promoted++
		}
	}
	slices.Sort(nodes)
	return nodes, promoted
}

// simulate runs crm_simulate on in with extra events and returns the
// revised status; save names a file to keep the resulting CIB in.
func simulate(t *testing.T, in []byte, save string, events ...string) simStatus {
	t.Helper()
	f := filepath.Join(t.TempDir(), "in.xml")
	if err := os.WriteFile(f, in, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"crm_simulate", "--xml-file", f, "--simulate", "--output-as=xml"}
	if save != "" {
		args = append(args, "--save-output", save)
	}
	out, err := combined(ctxFor(t), append(args, events...)...)
	if err != nil {
		t.Fatalf("crm_simulate %v: %v", events, err)
	}
	// --output-as=xml still prints the scheduler's warnings as text
	// before the document: a warning is a failure.
	i := strings.Index(out, "<pacemaker-result")
	if i < 0 {
		t.Fatalf("crm_simulate gave no XML result:\n%s", out)
	}
	if pre := strings.TrimSpace(out[:i]); strings.Contains(strings.ToLower(pre), "warning") || strings.Contains(strings.ToLower(pre), "error") {
		t.Fatalf("crm_simulate %v warns:\n%s", events, pre)
	}
	var st simStatus
	if err := xml.Unmarshal([]byte(out[i:]), &st); err != nil {
		t.Fatalf("crm_simulate output: %v\n%s", err, out)
	}
	return st
}

func (st simStatus) group(t *testing.T, id string) simSet {
	t.Helper()
	for _, g := range st.Resources.Groups {
		if g.ID == id {
			return g
		}
	}
	t.Fatalf("no group %s in the simulated status", id)
	return simSet{}
}

func (st simStatus) clone(t *testing.T, id string) simSet {
	t.Helper()
	for _, c := range st.Resources.Clones {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("no clone %s in the simulated status", id)
	return simSet{}
}

// TestCIBSimulate runs each HA personality's CIB through Pacemaker's
// scheduler: every node up, then n1 failed, then a lone n1 without quorum.
func TestCIBSimulate(t *testing.T) {
	testenv.Tools(t, "crm_simulate")
	for _, name := range haPersonalities(t) {
		t.Run(name, func(t *testing.T) {
			pl := planFor(t, name)
			cib := mustFile(t, renderNode(t, pl, "n1"), cibPath).Data
			parseCIB(t, cib)
			var all []string
			for _, n := range pl.Nodes {
				all = append(all, n.Name)
			}
			running := filepath.Join(t.TempDir(), "running.xml")

			// All nodes online: every singleton starts (all of its group on
			// one node), every clone instance on each node, DRBD promoted once.
			st := simulate(t, liveCIB(t, pl, cib), running)
			for _, sv := range pl.Services {
				switch sv.Kind {
				case "singleton":
					g := st.group(t, sv.Name+"-group")
					if g.groupNode() == "" {
						t.Errorf("all up: %s does not start on one node: %v", g.ID, g.placement())
					}
				case "clone":
					c := st.clone(t, sv.Name+"-clone")
					if nodes, _ := c.cloneNodes(); !slices.Equal(nodes, all) {
						t.Errorf("all up: %s runs on %v, want %v", c.ID, nodes, all)
					}
				}
			}
			for _, r := range pl.DRBD {
				c := st.clone(t, r.Name+"-drbd-clone")
				if nodes, promoted := c.cloneNodes(); promoted != 1 || len(nodes) != len(r.Peers) {
					t.Errorf("all up: %s on %v with %d promoted, want every peer and 1", c.ID, nodes, promoted)
				}
				for _, sv := range pl.Services {
					if sv.DRBD == r.Name {
						g := st.group(t, sv.Name+"-group")
						if node, promotedOn := g.groupNode(), promotedNode(c); node != promotedOn {
							t.Errorf("%s runs on %q, DRBD %s is promoted on %q", g.ID, node, r.Name, promotedOn)
						}
					}
				}
			}
			runningCIB, err := os.ReadFile(running)
			if err != nil {
				t.Fatal(err)
			}

			// n1 fails: every singleton moves to another node.
			st = simulate(t, runningCIB, "", "--node-fail", "n1")
			for _, sv := range pl.Services {
				if sv.Kind != "singleton" {
					continue
				}
				g := st.group(t, sv.Name+"-group")
				if node := g.groupNode(); node == "" || node == "n1" {
					t.Errorf("n1 failed: %s is on %q, want another node: %v", g.ID, node, g.placement())
				}
			}

			// Only n1 left and no quorum: the singletons stop (no two
			// partitions run them), the clones keep serving (requires=nothing).
			var events []string
			for _, n := range all[1:] {
				events = append(events, "--node-down", n)
			}
			events = append(events, "--quorum", "false")
			st = simulate(t, runningCIB, "", events...)
			for _, sv := range pl.Services {
				switch sv.Kind {
				case "singleton":
					g := st.group(t, sv.Name+"-group")
					if node := g.groupNode(); node != "" {
						t.Errorf("no quorum: %s still runs on %s", g.ID, node)
					}
				case "clone":
					c := st.clone(t, sv.Name+"-clone")
					if nodes, _ := c.cloneNodes(); !slices.Equal(nodes, []string{"n1"}) {
						t.Errorf("no quorum: %s runs on %v, want [n1]", c.ID, nodes)
					}
				}
			}
		})
	}
}

func promotedNode(c simSet) string {
	for _, r := range c.Resources {
		if (r.Role == "Promoted" || r.Role == "Master") && len(r.Nodes) == 1 {
			return r.Nodes[0].Name
		}
	}
	return ""
}

// cibWithout is n1's generated CIB of pl, which must hold setting, and the
// same CIB without it: the pair a test runs to show the setting matters.
func cibWithout(t *testing.T, pl *builder.Plan, setting string) (cib, without string) {
	t.Helper()
	cib = string(mustFile(t, renderNode(t, pl, "n1"), cibPath).Data)
	if !strings.Contains(cib, setting) {
		t.Fatalf("%s's CIB has no %s", pl.Cluster, setting)
	}
	return cib, strings.Replace(cib, setting, "", 1)
}

// TestCloneRequiresNothing shows that requires=nothing is what keeps the
// web cluster's apache2 serving on a lone node: without it, the same
// scenario stops it.
func TestCloneRequiresNothing(t *testing.T) {
	testenv.Tools(t, "crm_simulate")
	pl := planFor(t, "web-cluster")
	cib, without := cibWithout(t, pl, `<nvpair id="apache2-clone-meta_attributes-requires" name="requires" value="nothing"></nvpair>`)
	for _, tc := range []struct {
		name  string
		cib   string
		nodes []string
	}{
		{"requires=nothing", cib, []string{"n1"}},
		{"default requires", without, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			running := filepath.Join(t.TempDir(), "running.xml")
			simulate(t, liveCIB(t, pl, []byte(tc.cib)), running)
			b, err := os.ReadFile(running)
			if err != nil {
				t.Fatal(err)
			}
			st := simulate(t, b, "", "--node-down", "n2", "--node-down", "n3", "--quorum", "false")
			if nodes, _ := st.clone(t, "apache2-clone").cloneNodes(); !slices.Equal(nodes, tc.nodes) {
				t.Errorf("lone n1 without quorum: apache2 on %v, want %v", nodes, tc.nodes)
			}
		})
	}
}

// TestCIBSpreadsByMemory: web-cluster forms with two nodes first (n1 boots
// last), and by memory the scheduler keeps puppetserver's JVM and MariaDB
// apart, so the death of MariaDB's node does not also restart the
// singleton that takes longest to start. Pacemaker's default strategy,
// which counts resources, puts them together; the test runs both.
func TestCIBSpreadsByMemory(t *testing.T) {
	testenv.Tools(t, "crm_simulate")
	pl := planFor(t, "web-cluster")
	if !placeByMemory(pl) {
		t.Fatal("web-cluster's CIB does not place by memory")
	}
	cib, without := cibWithout(t, pl, `<nvpair id="cib-bootstrap-options-placement-strategy" name="placement-strategy" value="balanced"></nvpair>`)
	for _, tc := range []struct {
		name  string
		cib   string
		apart bool
	}{
		{"balanced", cib, true},
		{"default strategy", without, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := simulate(t, liveCIB(t, pl, []byte(tc.cib)), "", "--node-down", "n1")
			puppet, mysql := st.group(t, "puppet-group").groupNode(), st.group(t, "mysql-group").groupNode()
			if puppet == "" || mysql == "" || puppet == "n1" || mysql == "n1" {
				t.Fatalf("n2 and n3 up: puppet on %q, mysql on %q", puppet, mysql)
			}
			if apart := puppet != mysql; apart != tc.apart {
				t.Errorf("n2 and n3 up: puppet on %s, mysql on %s; want apart=%v", puppet, mysql, tc.apart)
			}
		})
	}
}
