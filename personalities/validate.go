package personalities

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Limits a spec must stay within.
const (
	MaxNodes    = 64
	MaxVCPUs    = 512
	MaxMemory   = 4 * TiB  // per node, and what one service may claim
	MaxDiskSize = 64 * TiB // any one disk image, PV, volume or DRBD device
	MinRootSize = 512 * MiB
	MinSwapSize = 40 * KiB // mkswap's minimum: ten pages
	// lvmOverhead is what each PV loses to the label and metadata area
	// before its first extent (pe_start, 1 MiB) plus one extent of slack.
	lvmOverhead = 1*MiB + 4*MiB
)

var (
	nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)
	// volume, service and LV names end up in file names, LV names and
	// Pacemaker ids: keep them to a safe alphabet.
	idRE     = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_-]{0,62}$`)
	domainRE = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// Service kinds.
const (
	KindClone     = "clone"
	KindSingleton = "singleton"
	KindLocal     = "local"
)

// Gluster modes.
const (
	GlusterManaged = "managed"
	GlusterLegacy  = "legacy"
)

// at is the position of the value at path: string keys walk mappings, a
// string on a list picks the item of that name, an int picks by index.
func (s *Spec) at(path ...any) Pos {
	if s.src == nil {
		return Pos{}
	}
	n := s.src.root
	last := n
	for _, p := range path {
		var next *yaml.Node
		switch p := p.(type) {
		case string:
			if n.Kind == yaml.SequenceNode {
				if j := nameIndex(n, p); j >= 0 {
					next = n.Content[j]
				}
			} else {
				_, next = lookup(n, p)
			}
		case int:
			if n.Kind == yaml.SequenceNode && p < len(n.Content) {
				next = n.Content[p]
			}
		}
		if next == nil {
			break
		}
		n, last = next, next
	}
	return s.src.pos(last)
}

// Pos is the exported form of at, for checks made outside this package
// (the builder reports plan-level mistakes against the spec too).
func (s *Spec) Pos(path ...any) Pos { return s.at(path...) }

// NodeNames lists the node names the spec makes: prefix1..prefixN.
func (s *Spec) NodeNames() []string {
	out := make([]string, s.Cluster.Nodes)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", s.Cluster.Prefix, i+1)
	}
	return out
}

// validate checks the invariants a decoded spec must hold before a plan is
// made of it; it reports every mistake, each with its position.
func (s *Spec) validate() error {
	var errs Errors
	bad := func(pos Pos, format string, args ...any) {
		errs = append(errs, Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
	}
	if s.Mixin {
		bad(s.at("mixin"), "%s is a mixin: extend it from a personality instead of using it directly", s.Name)
		return errs.orNil()
	}
	if s.Suite == "" {
		bad(s.at(), "suite: missing (the Debian suite, e.g. trixie)")
	}
	if !strings.HasPrefix(s.Mirror, "http://") && !strings.HasPrefix(s.Mirror, "https://") && !strings.HasPrefix(s.Mirror, "file:/") {
		bad(s.at("mirror"), "mirror %q: want an http(s):// or file:/ URL", s.Mirror)
	}
	if !domainRE.MatchString(s.Domain) {
		bad(s.at("domain"), "domain %q is not a DNS domain", s.Domain)
	}

	c := s.Cluster
	if c.Nodes < 1 || c.Nodes > MaxNodes {
		bad(s.at("cluster", "nodes"), "cluster.nodes %d: want 1 to %d", c.Nodes, MaxNodes)
	}
	if !nameRE.MatchString(c.Prefix) {
		bad(s.at("cluster", "prefix"), "cluster.prefix %q: want lower-case letters, digits and dashes", c.Prefix)
	}
	if c.Name != "" && !nameRE.MatchString(c.Name) {
		bad(s.at("cluster", "name"), "cluster.name %q: want lower-case letters, digits and dashes", c.Name)
	}
	if c.Name == "" && !nameRE.MatchString(s.Name) {
		bad(s.at(), "cluster.name: missing, and the personality name %q cannot name a cluster: set cluster.name (lower-case letters, digits and dashes)", s.Name)
	}
	if c.Memory < 64*MiB || c.Memory > MaxMemory {
		bad(s.at("cluster", "memory"), "cluster.memory %s: want 64M to %s", c.Memory, Size(MaxMemory))
	}
	if c.VCPUs < 1 || c.VCPUs > MaxVCPUs {
		bad(s.at("cluster", "vcpus"), "cluster.vcpus %d: want 1 to %d", c.VCPUs, MaxVCPUs)
	}
	nodes := map[string]bool{}
	for _, n := range s.NodeNames() {
		nodes[n] = true
	}

	used := s.validateNetwork(bad)
	s.validateDisks(bad)
	s.validateServices(bad, used)
	s.validateGluster(bad, nodes)
	s.validateDRBD(bad)

	// Named items (modules, vlans, services, volumes, drbd) cannot repeat a
	// name: within a file the schema refuses it, across files they merge.
	for i, m := range s.Rsync.Modules {
		if !idRE.MatchString(m.Name) {
			bad(s.at("rsync", "modules", i, "name"), "rsync module %q: want letters, digits, _ and -", m.Name)
		}
		if !strings.HasPrefix(m.Path, "/") {
			bad(s.at("rsync", "modules", i, "path"), "rsync module %q: path %q must be absolute", m.Name, m.Path)
		}
	}
	switch {
	case s.Admin.User == "":
		// the overlays make this account and give it sudo; without it
		// nobody could log in
		bad(s.at("admin", "user"), "admin.user: missing (the account that logs in and becomes root)")
	case !nameRE.MatchString(s.Admin.User):
		bad(s.at("admin", "user"), "admin.user %q is not a valid user name", s.Admin.User)
	}
	for i, h := range s.Firstboot {
		if h.On != "all" && h.On != "first" {
			bad(s.at("firstboot", i, "on"), "firstboot %q: on %q: want all or first", h.Name, h.On)
		}
		if !idRE.MatchString(h.Name) {
			bad(s.at("firstboot", i, "name"), "firstboot hook name %q: want letters, digits, _ and -", h.Name)
		}
	}
	if s.Xen.Type != "pvh" && s.Xen.Type != "pv" {
		bad(s.at("xen", "type"), "xen.type %q: want pvh or pv", s.Xen.Type)
	}
	s.validateNumbers(bad)
	return errs.orNil()
}

type badFunc func(Pos, string, ...any)

// validateNumbers bounds the numbers no other check looks at: ports, nice
// levels, intervals and counts that end up in configs.
func (s *Spec) validateNumbers(bad badFunc) {
	between := func(v, lo, hi int, path ...any) {
		if v < lo || v > hi {
			bad(s.at(path...), "%s %d: want %d to %d", dotted(path), v, lo, hi)
		}
	}
	port := func(v int, path ...any) { between(v, 0, 65535, path...) }
	port(s.Cockpit.Port, "cockpit", "port")
	port(s.Monit.Port, "monit", "port")
	port(s.Pound.Port, "pound", "port")
	port(s.Pound.BackendPort, "pound", "backend_port")
	port(s.MariaDB.Port, "mariadb", "port")
	between(s.MariaDB.MaxConnections, 0, 100000, "mariadb", "max_connections")
	between(s.Monit.Interval, 0, 86400, "monit", "interval")
	between(s.Rsync.Nice, -20, 19, "rsync", "nice")
	between(s.Network.FirstHost, 0, 1<<24, "network", "first_host")
	between(s.Network.VIPFirst, 0, 1<<24, "network", "vip_first")
	for i, sv := range s.Services {
		between(sv.Port, 0, 65535, "services", i, "port")
		if sv.Memory > MaxMemory {
			bad(s.at("services", i, "memory"), "service %q: memory %s: want at most %s", sv.Name, sv.Memory, Size(MaxMemory))
		}
	}
	if s.MariaDB.BufferPool > MaxMemory {
		bad(s.at("mariadb", "buffer_pool"), "mariadb.buffer_pool %s: want at most %s", s.MariaDB.BufferPool, Size(MaxMemory))
	}
	for i, r := range s.DRBD {
		between(r.Minor, 0, 1<<20-1, "drbd", i, "minor")
	}
}

// dotted writes a path of at() as the key it names: services[2].port.
func dotted(path []any) string {
	var b strings.Builder
	for _, p := range path {
		switch p := p.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", p)
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, p)
		}
	}
	return b.String()
}

// validateNetwork checks addresses and returns every address the nodes use,
// so floating IPs can be checked against them.
func (s *Spec) validateNetwork(bad badFunc) map[netip.Addr]string {
	used := map[netip.Addr]string{}
	n := s.Network
	pfx, err := netip.ParsePrefix(n.Subnet)
	if err != nil || !pfx.Addr().Is4() {
		bad(s.at("network", "subnet"), "network.subnet %q: want an IPv4 CIDR such as 192.168.224.0/24", n.Subnet)
		return used
	}
	pfx = pfx.Masked()
	if pfx.Bits() > 30 {
		bad(s.at("network", "subnet"), "network.subnet %s: want at most /30, so the nodes have host addresses", pfx)
		return used
	}
	if n.Gateway != "" {
		if gw, err := netip.ParseAddr(n.Gateway); err != nil || !pfx.Contains(gw) {
			bad(s.at("network", "gateway"), "network.gateway %q is not an address in %s", n.Gateway, pfx)
		} else if w := notHost(pfx, gw); w != "" {
			bad(s.at("network", "gateway"), "network.gateway %s is %s", gw, w)
		} else {
			used[gw] = "the gateway"
		}
	}
	for i, name := range s.NodeNames() {
		a, ok := HostAddr(pfx, n.FirstHost+i)
		if !ok {
			bad(s.at("network", "first_host"), "node %s: host number %d is outside %s", name, n.FirstHost+i, pfx)
			continue
		}
		if other, dup := used[a]; dup {
			bad(s.at("network", "first_host"), "node %s: address %s is already %s", name, a, other)
		}
		used[a] = "node " + name
	}
	if q := s.Cluster.QuorumDevice; q != "" {
		if qa, err := netip.ParseAddr(q); err != nil || !qa.Is4() {
			bad(s.at("cluster", "quorum_device"), "cluster.quorum_device %q: want the IPv4 address of a corosync-qnetd host", q)
		} else if pfx.Contains(qa) {
			if w := notHost(pfx, qa); w != "" {
				bad(s.at("cluster", "quorum_device"), "cluster.quorum_device %s is %s", qa, w)
			} else if other, dup := used[qa]; dup {
				bad(s.at("cluster", "quorum_device"), "cluster.quorum_device %s is already %s", qa, other)
			} else {
				used[qa] = "the quorum device"
			}
		}
	}
	for i, d := range n.DNS {
		if _, err := netip.ParseAddr(d); err != nil {
			bad(s.at("network", "dns", i), "network.dns %q is not an IP address", d)
		}
	}
	ids := map[int]bool{}
	var subnets []netip.Prefix
	var subnetOf []string
	for i, v := range n.VLANs {
		at := func(k string) Pos { return s.at("network", "vlans", i, k) }
		if v.ID < 1 || v.ID > 4094 {
			bad(at("id"), "vlan %q: id %d: want 1 to 4094", v.Name, v.ID)
		} else if ids[v.ID] {
			bad(at("id"), "vlan %q: id %d used twice", v.Name, v.ID)
		}
		ids[v.ID] = true
		if !nameRE.MatchString(v.Name) {
			bad(at("name"), "vlan name %q: want lower-case letters, digits and dashes", v.Name)
		}
		vp, err := netip.ParsePrefix(v.Subnet)
		if err != nil || !vp.Addr().Is4() {
			bad(at("subnet"), "vlan %q: subnet %q: want an IPv4 CIDR", v.Name, v.Subnet)
			continue
		}
		vp = vp.Masked()
		if vp.Bits() > 30 {
			bad(at("subnet"), "vlan %q: subnet %s: want at most /30, so the nodes have host addresses", v.Name, vp)
			continue
		}
		if vp.Overlaps(pfx) {
			bad(at("subnet"), "vlan %q: subnet %s overlaps network.subnet %s", v.Name, vp, pfx)
		}
		for j, o := range subnets {
			if vp.Overlaps(o) {
				bad(at("subnet"), "vlan %q: subnet %s overlaps the subnet %s of vlan %q", v.Name, vp, o, subnetOf[j])
			}
		}
		subnets, subnetOf = append(subnets, vp), append(subnetOf, v.Name)
		first := v.FirstHost
		if first == 0 {
			first = n.FirstHost
		}
		if _, ok := HostAddr(vp.Masked(), first+s.Cluster.Nodes-1); !ok {
			bad(at("subnet"), "vlan %q: %d nodes from host %d do not fit in %s", v.Name, s.Cluster.Nodes, first, vp)
		}
	}
	return used
}

// notHost says why a is no host address of p: its network or broadcast
// address.
func notHost(p netip.Prefix, a netip.Addr) string {
	if a == p.Masked().Addr() {
		return "the network address of " + p.String()
	}
	if last, _ := HostAddr(p, 1<<(32-p.Bits())-2); a == last.Next() {
		return "the broadcast address of " + p.String()
	}
	return ""
}

// HostAddr is host number n of prefix p, if it is a usable host address.
func HostAddr(p netip.Prefix, n int) (netip.Addr, bool) {
	if n < 1 {
		return netip.Addr{}, false
	}
	size := 1 << (32 - p.Bits())
	if n >= size-1 && p.Bits() < 31 {
		return netip.Addr{}, false
	}
	b := p.Masked().Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func (s *Spec) validateDisks(bad badFunc) {
	d := s.Disks
	if d.Root < MinRootSize || d.Root > MaxDiskSize {
		bad(s.at("disks", "root"), "disks.root %s: want %s to %s", d.Root, MinRootSize, Size(MaxDiskSize))
	}
	if d.Swap != 0 && (d.Swap < MinSwapSize || d.Swap > MaxDiskSize) {
		bad(s.at("disks", "swap"), "disks.swap %s: want 0 (none) or %s to %s", d.Swap, MinSwapSize, Size(MaxDiskSize))
	}
	// A volume that does not fit is reported at the largest one: that is
	// the value most likely just raised.
	var need, have, largest Size
	where := s.at("disks", "pvs")
	for i, v := range s.Gluster.Volumes {
		need += roundExtent(min(v.Size, MaxDiskSize))
		if v.Size > largest {
			largest, where = v.Size, s.at("gluster", "volumes", i, "size")
		}
	}
	for i, r := range s.DRBD {
		need += roundExtent(min(r.Size, MaxDiskSize)) + roundExtent(drbdMetaSize(min(r.Size, MaxDiskSize)))
		if r.Size > largest {
			largest, where = r.Size, s.at("drbd", i, "size")
		}
	}
	for i, pv := range d.PVs {
		if pv > MaxDiskSize {
			bad(s.at("disks", "pvs", i), "disks.pvs[%d] %s: want at most %s", i, pv, Size(MaxDiskSize))
			continue
		}
		if pv <= lvmOverhead {
			bad(s.at("disks", "pvs", i), "disks.pvs[%d] %s: too small for an LVM2 physical volume", i, pv)
			continue
		}
		have += pv - lvmOverhead
	}
	if need > 0 && !strings.Contains(d.VG, "{node}") && d.VG == "" {
		bad(s.at("disks", "vg"), "disks.vg: missing (e.g. \"{node}_vg0\")")
	}
	if need > have {
		bad(where, "the volumes need %s of LVM space, the PVs hold %s: raise disks.pvs or shrink the volumes", need.Human(), have.Human())
	}
}

// ExtentSize is the LVM2 extent size applbuild writes.
const ExtentSize = 4 * MiB

func roundExtent(s Size) Size { return (s + ExtentSize - 1) / ExtentSize * ExtentSize }

// drbdMetaSize is DRBD's external meta-data size for a device of size s
// (about 32 KiB per GiB plus 1 MiB), rounded up to whole MiB.
func drbdMetaSize(s Size) Size {
	return (s/GiB+1)*32*KiB + MiB
}

// DRBDMetaSize is drbdMetaSize for the planner.
func DRBDMetaSize(s Size) Size { return roundExtent(drbdMetaSize(s)) }

func (s *Spec) validateServices(bad badFunc, used map[netip.Addr]string) {
	pfx, _ := netip.ParsePrefix(s.Network.Subnet)
	pfx = pfx.Masked()
	names := map[string]bool{}
	for _, sv := range s.Services {
		names[sv.Name] = true
	}
	drbd := map[string]bool{}
	for _, r := range s.DRBD {
		drbd[r.Name] = true
	}
	for i, sv := range s.Services {
		at := func(k string) Pos { return s.at("services", i, k) }
		if !idRE.MatchString(sv.Name) {
			bad(at("name"), "service name %q: want letters, digits, _ and -", sv.Name)
		}
		switch sv.Kind {
		case KindClone, KindSingleton, KindLocal:
		default:
			bad(at("kind"), "service %q: kind %q: want clone, singleton or local", sv.Name, sv.Kind)
		}
		if sv.IP != "" {
			a, err := netip.ParseAddr(sv.IP)
			switch {
			case sv.Kind != KindSingleton:
				bad(at("ip"), "service %q: only a singleton has a floating ip", sv.Name)
			case err != nil || !pfx.Contains(a):
				bad(at("ip"), "service %q: ip %q is not an address in %s", sv.Name, sv.IP, pfx)
			case notHost(pfx, a) != "":
				bad(at("ip"), "service %q: ip %s is %s", sv.Name, a, notHost(pfx, a))
			case used[a] != "":
				bad(at("ip"), "service %q: ip %s is already %s", sv.Name, a, used[a])
			default:
				used[a] = "the floating ip of " + sv.Name
			}
		}
		for j, a := range sv.After {
			if !names[a] {
				bad(s.at("services", i, "after", j), "service %q: after %q: no such service", sv.Name, a)
			}
		}
		if sv.DRBD != "" && !drbd[sv.DRBD] {
			bad(at("drbd"), "service %q: drbd %q: no such drbd resource", sv.Name, sv.DRBD)
		}
		if sv.DRBD != "" && sv.Kind != KindSingleton {
			bad(at("drbd"), "service %q: only a singleton can run on a drbd resource", sv.Name)
		}
		if sv.Kind == KindLocal && sv.Process == "" && sv.Pidfile == "" {
			bad(at("kind"), "service %q: a local service needs process: or pidfile: for monit", sv.Name)
		}
	}
}

func (s *Spec) validateGluster(bad badFunc, nodes map[string]bool) {
	g := s.Gluster
	if len(g.Volumes) == 0 {
		return
	}
	if g.Mode != GlusterManaged && g.Mode != GlusterLegacy {
		bad(s.at("gluster", "mode"), "gluster.mode %q: want managed or legacy", g.Mode)
	}
	replica := g.Replica
	if replica == 0 {
		replica = s.Cluster.Nodes
	}
	if replica < 1 || replica > s.Cluster.Nodes {
		bad(s.at("gluster", "replica"), "gluster.replica %d is above the node count %d", g.Replica, s.Cluster.Nodes)
	}
	mounts, bricks := map[string]string{}, map[string]string{}
	for i, v := range g.Volumes {
		at := func(k string) Pos { return s.at("gluster", "volumes", i, k) }
		if !idRE.MatchString(v.Name) {
			bad(at("name"), "volume name %q: want letters, digits, _ and -", v.Name)
		}
		if !strings.HasPrefix(v.Mount, "/") {
			bad(at("mount"), "volume %q: mount %q must be an absolute path", v.Name, v.Mount)
		} else if other, dup := mounts[v.Mount]; dup {
			bad(at("mount"), "volume %q: mount %q used twice (also volume %q)", v.Name, v.Mount, other)
		}
		mounts[v.Mount] = v.Name
		brick := v.Brick
		if brick == "" {
			brick = "/data/" + v.Name
		}
		if !strings.HasPrefix(brick, "/") {
			bad(at("brick"), "volume %q: brick %q must be an absolute path", v.Name, brick)
		} else if other, dup := bricks[brick]; dup {
			bad(at("brick"), "volume %q: brick %q used twice (also volume %q)", v.Name, brick, other)
		}
		bricks[brick] = v.Name
		if v.Size < 16*MiB || v.Size > MaxDiskSize {
			bad(at("size"), "volume %q: size %s: want 16M to %s", v.Name, v.Size, Size(MaxDiskSize))
		}
		hosts := v.Nodes
		for j, n := range hosts {
			if !nodes[n] {
				bad(s.at("gluster", "volumes", i, "nodes", j), "volume %q: node %q does not exist (nodes are %s)", v.Name, n, strings.Join(s.NodeNames(), ", "))
			}
		}
		count := len(hosts)
		if count == 0 {
			count = s.Cluster.Nodes
		}
		if replica > 0 && count%replica != 0 {
			bad(at("nodes"), "volume %q: %d bricks is not a multiple of replica %d", v.Name, count, replica)
		}
	}
}

func (s *Spec) validateDRBD(bad badFunc) {
	if len(s.DRBD) == 0 {
		return
	}
	if s.Cluster.Nodes != 2 {
		bad(s.at("cluster", "nodes"), "drbd needs exactly 2 nodes, the cluster has %d", s.Cluster.Nodes)
	}
	if s.Cluster.QuorumDevice == "" {
		bad(s.at("drbd"), "drbd needs cluster.quorum_device: the address of a corosync-qnetd on a third machine; "+
			"without it a two-node pair cannot fence, and a partition can promote both sides (docs/cluster.md, \"Fencing\")")
	}
	ports, minors := map[int]bool{}, map[int]bool{}
	for i, r := range s.DRBD {
		at := func(k string) Pos { return s.at("drbd", i, k) }
		if !idRE.MatchString(r.Name) {
			bad(at("name"), "drbd name %q: want letters, digits, _ and -", r.Name)
		}
		if r.Port < 1024 || r.Port > 65535 {
			bad(at("port"), "drbd %q: port %d: want 1024 to 65535", r.Name, r.Port)
		} else if ports[r.Port] {
			bad(at("port"), "drbd %q: port %d used twice", r.Name, r.Port)
		}
		ports[r.Port] = true
		if minors[r.Minor] {
			bad(at("minor"), "drbd %q: minor %d used twice", r.Name, r.Minor)
		}
		minors[r.Minor] = true
		if !strings.HasPrefix(r.Mount, "/") {
			bad(at("mount"), "drbd %q: mount %q must be an absolute path", r.Name, r.Mount)
		}
		if r.Size < 16*MiB || r.Size > MaxDiskSize {
			bad(at("size"), "drbd %q: size %s: want 16M to %s", r.Name, r.Size, Size(MaxDiskSize))
		}
	}
}
