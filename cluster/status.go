package cluster

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/xml"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/applbuild/applbuild/internal/run"
)

// SSHArgs is the command line of a root ssh session on node (a login
// shell when command is empty), run inside the cluster's namespace with
// the build's cluster key. The host key is the image's own and the
// address a private one: it is not checked.
func (c *Cluster) SSHArgs(n *Node, command string) []string {
	args := []string{"ip", "netns", "exec", c.NetNS, "ssh",
		"-i", nodeFiles{n.Dir}.key(), "-o", "IdentitiesOnly=yes",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "LogLevel=ERROR", "-o", "ConnectTimeout=15",
		"-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3"}
	if command != "" {
		args = append(args, "-o", "BatchMode=yes")
	}
	// Options go before the destination: after it, ssh takes them for
	// the remote command.
	args = append(args, "root@"+n.Address.Addr().String())
	if command != "" {
		args = append(args, "--", command)
	}
	return args
}

// SSH runs command on node as root and returns its standard output.
func (c *Cluster) SSH(ctx context.Context, n *Node, command string) ([]byte, error) {
	return run.Output(ctx, c.SSHArgs(n, command)...)
}

// NodeStatus is what one node says of itself.
type NodeStatus struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Running bool   `json:"running"` // its QEMU runs
	SSH     bool   `json:"ssh"`     // root can log in
	// Steps is the node's first-boot status file: step -> state.
	Steps map[string]string `json:"steps,omitempty"`
	// Failed lists the failed units, each with its first error line.
	Failed []FailedUnit `json:"failed,omitempty"`
	// Mounts are the GlusterFS volumes mounted on the node.
	Mounts []string `json:"mounts,omitempty"`
	// DRBD is the state of each DRBD resource on the node.
	DRBD []DRBDState `json:"drbd,omitempty"`
	// SBD is systemctl is-active sbd, QDevice this node's flags in
	// corosync-quorumtool's Qdevice column (A,V,NMW: alive, voting), on
	// a plan with fencing.
	SBD     string `json:"sbd,omitempty"`
	QDevice string `json:"qdevice,omitempty"`
	Error   string `json:"error,omitempty"`
}

// FailedUnit is a failed systemd unit and the first journal line that
// says why.
type FailedUnit struct {
	Unit string `json:"unit"`
	Line string `json:"line,omitempty"`
}

// DRBDState is one DRBD resource as its node's drbdadm reports it.
type DRBDState struct {
	Resource   string `json:"resource"`
	Connection string `json:"connection"` // cstate: Connected, SyncSource, WFConnection, …
	Disk       string `json:"disk"`       // dstate, local/peer: UpToDate/UpToDate, UpToDate/Inconsistent, …
}

// Volume is a GlusterFS volume as the pool sees it.
type Volume struct {
	Name   string `json:"name"`
	Status string `json:"status"` // Started, Created, Stopped
	Type   string `json:"type"`   // Replicate
	Bricks int    `json:"bricks"`
}

// Resource is a Pacemaker resource and where it runs.
type Resource struct {
	ID     string   `json:"id"`
	Agent  string   `json:"agent"`
	Role   string   `json:"role"`
	Nodes  []string `json:"nodes"`
	Failed bool     `json:"failed,omitempty"`
}

// Endpoint is a floating service address and whether it answers.
type Endpoint struct {
	Service string `json:"service"`
	Addr    string `json:"addr"`
	Answers bool   `json:"answers"`
}

// Status is the cluster as seen from outside and from its nodes.
type Status struct {
	Personality string       `json:"personality"`
	Nodes       []NodeStatus `json:"nodes"`
	Peers       int          `json:"peers_connected"` // GlusterFS peers the reporting node sees connected
	Volumes     []Volume     `json:"volumes,omitempty"`
	Online      []string     `json:"pacemaker_online,omitempty"`
	Resources   []Resource   `json:"resources,omitempty"`
	Endpoints   []Endpoint   `json:"endpoints,omitempty"`
	Quorate     bool         `json:"quorate"`
	// Reported: a node answered the cluster report (pool, volumes, CIB).
	// Without it the pool and Pacemaker fields say nothing, not "none".
	Reported bool `json:"cluster_reported"`
}

// nodeReport is what runs on every node: the first-boot status, the
// failed units with their first error line, the gluster mounts and each
// DRBD resource's connection and disk states. It
// always exits 0 (findmnt finding nothing, crm_mon without a cluster,
// exit non-zero): a failed ssh then means the node is not reachable.
const nodeReport = `
echo '== steps'; cat /var/lib/applbuild/status 2>/dev/null
echo '== failed'
for u in $(systemctl list-units --failed --plain --no-legend --no-pager | awk '{print $1}'); do
	printf '%s\t%s\n' "$u" "$(journalctl -q -u "$u" -p err -n 1 --no-pager -o cat 2>/dev/null | head -n 1)"
done
echo '== mounts'; findmnt -rn -t fuse.glusterfs -o TARGET
echo '== drbd'
if command -v drbdadm >/dev/null 2>&1; then
	for r in $(drbdadm sh-resources 2>/dev/null); do
		printf '%s\t%s\t%s\n' "$r" "$(drbdadm cstate "$r" 2>/dev/null)" "$(drbdadm dstate "$r" 2>/dev/null)"
	done
fi
echo '== fencing'
if [ -e /etc/default/sbd ]; then
	printf 'sbd\t%s\n' "$(systemctl is-active sbd 2>/dev/null)"
	corosync-quorumtool -s 2>/dev/null | awk '/\(local\)/ { print "qdevice\t" $3 }'
fi
exit 0
`

// clusterReport runs on one node: the pool and Pacemaker's view.
const clusterReport = `
echo '== pool'; gluster --mode=script pool list 2>/dev/null
echo '== volumes'; gluster --mode=script volume info 2>/dev/null
echo '== crm'; crm_mon -1 --output-as=xml 2>/dev/null
exit 0
`

// reportTimeout bounds one node's report. Measured under software
// emulation with three nodes forming: the gluster CLI alone took 45 s to
// list the pool and the volumes.
const reportTimeout = 3 * time.Minute

// Status asks every running node, and one of them for the pool and the
// CIB, and tries each floating service address.
func (c *Cluster) Status(ctx context.Context) *Status {
	st := &Status{Personality: c.Personality, Nodes: make([]NodeStatus, len(c.Nodes))}
	var wg sync.WaitGroup
	for i, n := range c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.Nodes[i] = c.nodeStatus(ctx, n)
		}()
	}
	wg.Wait()
	for i, n := range c.Nodes {
		if !st.Nodes[i].SSH {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, reportTimeout)
		out, err := c.SSH(cctx, n, clusterReport)
		cancel()
		if err == nil {
			parseClusterReport(st, out)
			st.Reported = true
			break
		}
	}
	st.Endpoints = c.endpoints()
	return st
}

// endpoints tries each floating service address from the cluster's
// network.
func (c *Cluster) endpoints() []Endpoint {
	var out []Endpoint
	for _, s := range c.Plan.Services {
		if s.IP == "" || s.Port == 0 {
			continue
		}
		addr := net.JoinHostPort(s.IP, strconv.Itoa(s.Port))
		e := Endpoint{Service: s.Name, Addr: addr}
		e.Answers = dialIn(c.NetNS, addr, 3*time.Second) == nil
		out = append(out, e)
	}
	return out
}

func (c *Cluster) nodeStatus(ctx context.Context, n *Node) NodeStatus {
	ns := NodeStatus{Name: n.Name, Address: n.Address.Addr().String(), Running: n.Running()}
	if !ns.Running {
		return ns
	}
	cctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	out, err := c.SSH(cctx, n, nodeReport)
	if err != nil {
		ns.Error = firstLine(err.Error())
		return ns
	}
	ns.SSH = true
	for sec, lines := range sections(out) {
		for _, l := range lines {
			switch sec {
			case "steps":
				k, v, ok := strings.Cut(l, "=")
				if ok {
					if ns.Steps == nil {
						ns.Steps = map[string]string{}
					}
					ns.Steps[strings.TrimSpace(k)] = strings.TrimSpace(v)
				}
			case "failed":
				u, line, _ := strings.Cut(l, "\t")
				ns.Failed = append(ns.Failed, FailedUnit{Unit: u, Line: line})
			case "mounts":
				ns.Mounts = append(ns.Mounts, l)
			case "drbd":
				f := strings.Split(l, "\t")
				if len(f) == 3 {
					ns.DRBD = append(ns.DRBD, DRBDState{Resource: f[0], Connection: f[1], Disk: f[2]})
				}
			case "fencing":
				k, v, _ := strings.Cut(l, "\t")
				switch k {
				case "sbd":
					ns.SBD = v
				case "qdevice":
					ns.QDevice = v
				}
			}
		}
	}
	return ns
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// sections splits a report into its "== name" sections.
func sections(b []byte) map[string][]string {
	out := map[string][]string{}
	cur := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 4<<20)
	for sc.Scan() {
		l := sc.Text()
		if name, ok := strings.CutPrefix(l, "== "); ok {
			cur = name
			out[cur] = out[cur][:0:0]
			continue
		}
		if cur != "" && strings.TrimSpace(l) != "" {
			out[cur] = append(out[cur], l)
		}
	}
	return out
}

func parseClusterReport(st *Status, b []byte) {
	sec := sections(b)
	for _, l := range sec["pool"] {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] != "UUID" && f[1] != "localhost" && f[2] == "Connected" {
			st.Peers++
		}
	}
	var v *Volume
	for _, l := range sec["volumes"] {
		k, val, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch strings.TrimSpace(k) {
		case "Volume Name":
			st.Volumes = append(st.Volumes, Volume{Name: val})
			v = &st.Volumes[len(st.Volumes)-1]
		case "Type":
			if v != nil {
				v.Type = val
			}
		case "Status":
			if v != nil {
				v.Status = val
			}
		case "Number of Bricks":
			// "1 x 3 = 3"
			if v != nil {
				if _, total, ok := strings.Cut(val, "="); ok {
					v.Bricks, _ = strconv.Atoi(strings.TrimSpace(total))
				} else {
					v.Bricks, _ = strconv.Atoi(val)
				}
			}
		}
	}
	parseCrmMon(st, []byte(strings.Join(sec["crm"], "\n")))
}

// crm_mon --output-as=xml, the parts the status needs.
type crmMon struct {
	Summary struct {
		Quorum struct {
			WithQuorum string `xml:"with_quorum,attr"`
		} `xml:"current_dc"`
	} `xml:"summary"`
	Nodes []struct {
		Name   string `xml:"name,attr"`
		Online string `xml:"online,attr"`
	} `xml:"nodes>node"`
	Resources struct {
		Inner []byte `xml:",innerxml"`
	} `xml:"resources"`
}

type crmResource struct {
	ID     string `xml:"id,attr"`
	Agent  string `xml:"resource_agent,attr"`
	Role   string `xml:"role,attr"`
	Failed string `xml:"failed,attr"`
	Nodes  []struct {
		Name string `xml:"name,attr"`
	} `xml:"node"`
}

func parseCrmMon(st *Status, b []byte) {
	var m crmMon
	if err := xml.Unmarshal(b, &m); err != nil {
		return
	}
	st.Quorate = m.Summary.Quorum.WithQuorum == "true"
	for _, n := range m.Nodes {
		if n.Online == "true" {
			st.Online = append(st.Online, n.Name)
		}
	}
	// Resources sit at any depth (clones and groups hold them): walk the
	// tokens and decode every <resource>.
	dec := xml.NewDecoder(bytes.NewReader(m.Resources.Inner))
	var order []string
	byID := map[string]*Resource{}
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Local != "resource" {
			continue
		}
		var r crmResource
		if dec.DecodeElement(&r, &se) != nil {
			continue
		}
		// A promotable clone's instances share one id: its promoted and
		// its unpromoted instances are two lines, each with its nodes.
		key := r.ID
		if r.Role == "Promoted" || r.Role == "Unpromoted" {
			key += "\x00" + r.Role
		}
		res, ok := byID[key]
		if !ok {
			res = &Resource{ID: r.ID, Agent: r.Agent, Role: r.Role}
			byID[key] = res
			order = append(order, key)
		}
		if r.Failed == "true" {
			res.Failed = true
		}
		if r.Role == "Started" || r.Role == "Promoted" || r.Role == "Unpromoted" {
			res.Role = r.Role
		}
		for _, n := range r.Nodes {
			if !slices.Contains(res.Nodes, n.Name) {
				res.Nodes = append(res.Nodes, n.Name)
			}
		}
	}
	for _, id := range order {
		st.Resources = append(st.Resources, *byID[id])
	}
}

// String is the status as a human reads it.
func (st *Status) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cluster %s\n", st.Personality)
	for _, n := range st.Nodes {
		state := "stopped"
		switch {
		case n.SSH:
			state = "up"
		case n.Running:
			state = "booting"
		}
		fmt.Fprintf(&b, "  node %-4s %-15s %-8s", n.Name, n.Address, state)
		if n.SSH {
			fmt.Fprintf(&b, " %d gluster mounts", len(n.Mounts))
			for _, d := range n.DRBD {
				fmt.Fprintf(&b, ", drbd %s %s %s", d.Resource, d.Connection, d.Disk)
			}
			if n.SBD != "" {
				fmt.Fprintf(&b, ", sbd %s, qdevice %s", n.SBD, cmp.Or(n.QDevice, "-"))
			}
			if len(n.Failed) > 0 {
				fmt.Fprintf(&b, ", failed:")
				for _, f := range n.Failed {
					fmt.Fprintf(&b, " %s", f.Unit)
				}
			}
		}
		b.WriteString("\n")
		for _, f := range n.Failed {
			if f.Line != "" {
				fmt.Fprintf(&b, "      %s: %s\n", f.Unit, f.Line)
			}
		}
	}
	if len(st.Volumes) > 0 {
		fmt.Fprintf(&b, "  gluster: %d peers connected\n", st.Peers)
		for _, v := range st.Volumes {
			fmt.Fprintf(&b, "    volume %-12s %-8s %s, %d bricks\n", v.Name, v.Status, v.Type, v.Bricks)
		}
	}
	if len(st.Resources) > 0 || len(st.Online) > 0 {
		fmt.Fprintf(&b, "  pacemaker: online %s (quorum: %v)\n", strings.Join(st.Online, " "), st.Quorate)
		for _, r := range st.Resources {
			where := strings.Join(r.Nodes, " ")
			if where == "" {
				where = "-"
			}
			fail := ""
			if r.Failed {
				fail = " FAILED"
			}
			fmt.Fprintf(&b, "    %-16s %-10s %s%s\n", r.ID, r.Role, where, fail)
		}
	}
	for _, e := range st.Endpoints {
		ans := "no answer"
		if e.Answers {
			ans = "answers"
		}
		fmt.Fprintf(&b, "  %-8s %-22s %s\n", e.Service, e.Addr, ans)
	}
	return b.String()
}
