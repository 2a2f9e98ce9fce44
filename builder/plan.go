// Package builder turns a validated Spec into a Plan: every default filled,
// every name, address, size, identifier and package resolved, per node.
// A Plan is pure data. It is deterministic: the same spec gives the same
// Plan, byte for byte, so `applbuild plan` and the golden tests can show
// what an image will contain without building it.
package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/applbuild/applbuild/builder/disk"
	p "github.com/applbuild/applbuild/personalities"
)

// Size is the spec's byte count ("2G" in JSON).
type Size = p.Size

// Plan is everything a build of one personality needs, per node.
type Plan struct {
	Personality string `json:"personality"`
	Description string `json:"description"`
	Cluster     string `json:"cluster"` // cluster name: corosync, VG names, MACs
	Suite       string `json:"suite"`
	Mirror      string `json:"mirror"`
	Domain      string `json:"domain"`
	// Seed is where every derived identifier comes from (UUIDs, MACs, LVM
	// ids). It depends on the cluster's identity (name and domain), not on
	// the rest of the spec, so changing a config does not rename disks.
	Seed     string    `json:"seed"`
	Packages []string  `json:"packages"` // sorted, every node the same
	Network  Network   `json:"network"`
	Nodes    []Node    `json:"nodes"`
	Services []Service `json:"services"`

	// Fencing is how the cluster fences a node without a power switch:
	// a quorum device and watchdog self-fencing (SBD). nil: no fencing.
	Fencing *Fencing `json:"fencing,omitempty"`

	Gluster *Gluster `json:"gluster,omitempty"`
	DRBD    []DRBD   `json:"drbd,omitempty"`
	NFS     []Export `json:"nfs,omitempty"`
	MariaDB *MariaDB `json:"mariadb,omitempty"`
	Pound   *Pound   `json:"pound,omitempty"`
	SCM     *SCM     `json:"scm,omitempty"`
	Rsync   *Rsync   `json:"rsync,omitempty"`

	Admin     Admin    `json:"admin"`
	Cockpit   *Cockpit `json:"cockpit,omitempty"`
	Monit     *Monit   `json:"monit,omitempty"`
	Branding  Branding `json:"branding"`
	Firstboot []Hook   `json:"firstboot,omitempty"`
	Xen       Xen      `json:"xen"`
	// HA is true when Pacemaker and Corosync run the cluster services.
	HA bool `json:"ha"`
	// Warnings are things the plan can build but a user should know.
	Warnings []string `json:"warnings,omitempty"`
}

// Network is the resolved LAN.
type Network struct {
	Subnet    string   `json:"subnet"` // CIDR, masked
	Netmask   string   `json:"netmask"`
	Prefix    int      `json:"prefix"`
	Gateway   string   `json:"gateway,omitempty"`
	DNS       []string `json:"dns,omitempty"`
	Interface string   `json:"interface"`
	Bridge    string   `json:"bridge"`
	VLANs     []VLAN   `json:"vlans,omitempty"`
}

// VLAN is a resolved 802.1q VLAN.
type VLAN struct {
	Name      string `json:"name"`
	ID        int    `json:"id"`
	Subnet    string `json:"subnet"`
	Netmask   string `json:"netmask"`
	Prefix    int    `json:"prefix"`
	Purpose   string `json:"purpose,omitempty"`
	Interface string `json:"interface"` // eth0.10
}

// Node is one machine of the cluster.
type Node struct {
	Name    string     `json:"name"`
	FQDN    string     `json:"fqdn"`
	Index   int        `json:"index"` // 1-based
	Address string     `json:"address"`
	MAC     string     `json:"mac"`
	Memory  Size       `json:"memory"`
	VCPUs   int        `json:"vcpus"`
	VLANs   []NodeVLAN `json:"vlans,omitempty"`
	Disks   []Disk     `json:"disks"`
	VG      *VG        `json:"vg,omitempty"`
	Mounts  []Mount    `json:"mounts"`
	// MemoryNeeded is the worst case of what its services need: every
	// local and clone service, plus every singleton failed over to it.
	MemoryNeeded Size `json:"memory_needed"`
}

// NodeVLAN is a node's address on one VLAN.
type NodeVLAN struct {
	Name      string `json:"name"`
	ID        int    `json:"id"`
	Interface string `json:"interface"`
	Address   string `json:"address"`
	Prefix    int    `json:"prefix"`
}

// Disk roles.
const (
	RoleRoot = "root"
	RoleSwap = "swap"
	RolePV   = "pv"
)

// Disk is one piece of a node's storage, whatever the target: the root
// filesystem, the swap area, an LVM2 physical volume. Where it lands is the
// target's layout: an image file of its own on Xen (disk.img, xvda2), a
// partition of one disk on raw and USB.
type Disk struct {
	Name  string `json:"name"` // root, swap, pv1, pv2: unique in the node
	Role  string `json:"role"` // root, swap, pv
	Size  Size   `json:"size"`
	FS    string `json:"fs,omitempty"`
	UUID  string `json:"uuid,omitempty"` // filesystem or swap UUID
	Label string `json:"label,omitempty"`
}

// VG is the node's LVM2 volume group over its PV disks.
type VG struct {
	Name string   `json:"name"`
	PVs  []string `json:"pvs"` // disk names, in order
	LVs  []LV     `json:"lvs"`
}

// LV purposes.
const (
	LVBrick    = "brick"
	LVDRBD     = "drbd"
	LVDRBDMeta = "drbd-meta"
)

// LV is a logical volume; a brick LV holds an ext4 made at build time.
type LV struct {
	Name    string `json:"name"`
	Size    Size   `json:"size"`
	Purpose string `json:"purpose"`
	FS      string `json:"fs,omitempty"`
	UUID    string `json:"uuid,omitempty"`
	Mount   string `json:"mount,omitempty"`
}

// Mount is one /etc/fstab line.
type Mount struct {
	Source  string `json:"source"`
	Target  string `json:"target"`
	Type    string `json:"type"`
	Options string `json:"options"`
	Dump    int    `json:"dump"`
	Pass    int    `json:"pass"`
}

// Service is a resolved daemon.
type Service struct {
	Name     string   `json:"name"`
	Kind     string   `json:"kind"`
	Unit     string   `json:"unit"`
	Agent    string   `json:"agent"` // class[:provider]:type
	IP       string   `json:"ip,omitempty"`
	Host     string   `json:"host,omitempty"` // DNS name of the floating IP
	Port     int      `json:"port,omitempty"`
	After    []string `json:"after,omitempty"`
	DRBD     string   `json:"drbd,omitempty"`
	Process  string   `json:"process,omitempty"`
	Pidfile  string   `json:"pidfile,omitempty"`
	Memory   Size     `json:"memory,omitempty"`
	Packages []string `json:"packages,omitempty"`
}

// AgentParts splits the agent into Pacemaker's class, provider and type.
func (s Service) AgentParts() (class, provider, typ string) {
	parts := strings.Split(s.Agent, ":")
	switch len(parts) {
	case 3:
		return parts[0], parts[1], parts[2]
	case 2:
		return parts[0], "", parts[1]
	}
	return "systemd", "", s.Agent
}

// Fencing is watchdog self-fencing with a quorum device: corosync-qdevice
// asks a corosync-qnetd on a third machine (QDevice) for the tie-breaking
// vote, so of two halves only one keeps quorum; SBD (diskless) stops
// feeding the node's watchdog when its node has lost quorum, so the
// watchdog resets it; Pacemaker on the quorate side counts the lost node
// as fenced once WatchdogTimeout has passed twice over. DRBD freezes a
// disconnected primary's I/O until then (fencing resource-and-stonith),
// so the half that is reset never acknowledged a write the other lacks.
type Fencing struct {
	QDevice   string `json:"qdevice"` // corosync-qnetd's address
	QPort     int    `json:"qdevice_port"`
	Algorithm string `json:"algorithm"` // ffsplit (even node counts) or lms
	// WatchdogTimeout is SBD_WATCHDOG_TIMEOUT, in seconds: how long a node
	// that stops feeding its watchdog lives on. Sized for software
	// emulation on a loaded host, where sbd's loop can stall for seconds.
	WatchdogTimeout int `json:"watchdog_timeout"`
	// StonithWatchdogTimeout is Pacemaker's stonith-watchdog-timeout:
	// twice the watchdog's, as Pacemaker and sbd(8) ask.
	StonithWatchdogTimeout int `json:"stonith_watchdog_timeout"`
}

// Fencing defaults.
const (
	QNetdPort       = 5403
	watchdogTimeout = 20
)

// Gluster is the resolved GlusterFS setup.
type Gluster struct {
	Mode    string   `json:"mode"`
	Replica int      `json:"replica"`
	Allow   string   `json:"allow"`
	Volumes []Volume `json:"volumes"`
}

// Volume is a resolved gluster volume.
type Volume struct {
	Name  string   `json:"name"`
	Brick string   `json:"brick"` // brick LV mount point
	Mount string   `json:"mount"` // client mount point
	Size  Size     `json:"size"`
	LV    string   `json:"lv"`
	Nodes []string `json:"nodes"`
}

// BrickDir is the directory inside the brick mount that glusterd uses:
// a brick must not be a mount point itself, so a lost LV fails loudly
// instead of filling the root filesystem.
func (v Volume) BrickDir() string { return v.Brick + "/brick" }

// DRBD is a resolved DRBD resource.
type DRBD struct {
	Name   string     `json:"name"`
	Device string     `json:"device"`
	Minor  int        `json:"minor"`
	Port   int        `json:"port"`
	Mount  string     `json:"mount"`
	FS     string     `json:"fs"`
	Size   Size       `json:"size"`
	LV     string     `json:"lv"`
	MetaLV string     `json:"meta_lv"`
	Peers  []DRBDPeer `json:"peers"`
}

// DRBDPeer is one node of a DRBD resource.
type DRBDPeer struct {
	Node    string `json:"node"`
	Address string `json:"address"`
	Disk    string `json:"disk"` // /dev/<vg>/<lv>
	Meta    string `json:"meta"`
}

// Export is one NFS export.
type Export struct {
	Path    string `json:"path"`
	Clients string `json:"clients"`
	Options string `json:"options"`
}

// MariaDB is the resolved database config.
type MariaDB struct {
	Port           int    `json:"port"`
	MaxConnections int    `json:"max_connections"`
	BufferPool     Size   `json:"buffer_pool"`
	Datadir        string `json:"datadir"`
	Bind           string `json:"bind"`
}

// Pound is the resolved load balancer.
type Pound struct {
	Listen   string   `json:"listen"` // the floating IP
	Port     int      `json:"port"`
	Backends []string `json:"backends"`
}

// SCM is the resolved source-control setup.
type SCM struct {
	SVNRoot string   `json:"svn_root"`
	Repos   []string `json:"repos"`
	CVSRoot string   `json:"cvs_root"`
}

// Rsync is the resolved DR rsync setup.
type Rsync struct {
	Config   string          `json:"config"`
	Home     string          `json:"home"`
	Address  string          `json:"address"` // the rsyncd floating IP
	Nice     int             `json:"nice"`
	IONice   string          `json:"ionice"`
	Modules  []p.RsyncModule `json:"modules"`
	DRKey    string          `json:"dr_key,omitempty"`
	DRHost   string          `json:"dr_host"`
	Schedule string          `json:"schedule"`
}

// Admin is the outside login account.
type Admin struct {
	User         string   `json:"user"`
	Keys         []string `json:"keys,omitempty"`
	PasswordHash string   `json:"password_hash,omitempty"`
}

// Cockpit is the web console.
type Cockpit struct {
	Port int `json:"port"`
}

// Monit is the local watchdog.
type Monit struct {
	Port     int `json:"port"`
	Interval int `json:"interval"`
}

// Branding is the console and login text.
type Branding struct {
	Product string `json:"product"`
	Motd    string `json:"motd"`
	Issue   string `json:"issue"`
}

// Hook is a first-boot script.
type Hook struct {
	Name string `json:"name"`
	On   string `json:"on"`
	Run  string `json:"run"`
}

// Xen is how the Xen target boots a node.
type Xen struct {
	Type string `json:"type"`
}

// BaseMemory is what a Debian node needs before any service: kernel,
// systemd, journald, udev, sshd.
const BaseMemory = 160 * p.MiB

// New resolves a validated spec into a Plan.
func New(s *p.Spec) (*Plan, error) {
	clusterName := s.Cluster.Name
	if clusterName == "" {
		clusterName = s.Name
	}
	pl := &Plan{
		Personality: s.Name,
		Description: s.Description,
		Cluster:     clusterName,
		Suite:       s.Suite,
		Mirror:      s.Mirror,
		Domain:      s.Domain,
		Seed:        seedOf(clusterName, s.Domain),
		Admin:       Admin{User: s.Admin.User, Keys: s.Admin.Keys, PasswordHash: s.Admin.PasswordHash},
		Xen:         Xen{Type: s.Xen.Type},
	}
	pfx := netip.MustParsePrefix(s.Network.Subnet).Masked()
	pl.Network = Network{
		Subnet: pfx.String(), Netmask: netmask(pfx), Prefix: pfx.Bits(),
		Gateway: s.Network.Gateway, DNS: s.Network.DNS,
		Interface: s.Network.Interface, Bridge: s.Network.Bridge,
	}
	for _, v := range s.Network.VLANs {
		vp := netip.MustParsePrefix(v.Subnet).Masked()
		pl.Network.VLANs = append(pl.Network.VLANs, VLAN{
			Name: v.Name, ID: v.ID, Subnet: vp.String(), Netmask: netmask(vp), Prefix: vp.Bits(),
			Purpose: v.Purpose, Interface: fmt.Sprintf("%s.%d", s.Network.Interface, v.ID),
		})
	}

	for _, sv := range s.Services {
		if sv.Kind != p.KindLocal {
			pl.HA = true
		}
	}
	if err := pl.resolveServices(s, pfx); err != nil {
		return nil, err
	}
	if q := s.Cluster.QuorumDevice; q != "" && pl.HA {
		alg := "ffsplit"
		if s.Cluster.Nodes%2 == 1 {
			alg = "lms"
		}
		pl.Fencing = &Fencing{QDevice: q, QPort: QNetdPort, Algorithm: alg,
			WatchdogTimeout: watchdogTimeout, StonithWatchdogTimeout: 2 * watchdogTimeout}
	}
	pl.resolveStorage(s)
	for i, name := range s.NodeNames() {
		pl.Nodes = append(pl.Nodes, pl.node(s, pfx, i, name))
	}
	pl.resolveApps(s)
	pl.resolvePackages(s)
	pl.warn(s)
	return pl, nil
}

func (pl *Plan) resolveServices(s *p.Spec, pfx netip.Prefix) error {
	taken := map[netip.Addr]bool{}
	if gw, err := netip.ParseAddr(s.Network.Gateway); err == nil {
		taken[gw] = true
	}
	for i := range s.NodeNames() {
		a, _ := p.HostAddr(pfx, s.Network.FirstHost+i)
		taken[a] = true
	}
	for _, sv := range s.Services {
		if a, err := netip.ParseAddr(sv.IP); err == nil {
			taken[a] = true
		}
	}
	next := s.Network.VIPFirst
	for _, sv := range s.Services {
		unit := sv.Unit
		if unit == "" {
			unit = sv.Name
		}
		agent := sv.Agent
		if agent == "" {
			agent = "systemd:" + unit
		}
		out := Service{
			Name: sv.Name, Kind: sv.Kind, Unit: unit, Agent: agent, IP: sv.IP, Port: sv.Port,
			After: sv.After, DRBD: sv.DRBD, Process: sv.Process, Pidfile: sv.Pidfile,
			Memory: sv.Memory, Packages: sv.Packages,
		}
		if sv.Kind == p.KindSingleton {
			if out.IP == "" {
				for {
					a, ok := p.HostAddr(pfx, next)
					if !ok {
						return p.Errors{{Pos: s.Pos("network", "vip_first"), Msg: fmt.Sprintf("no free address left in %s for the floating ip of %s", pfx, sv.Name)}}
					}
					next++
					if !taken[a] {
						taken[a] = true
						out.IP = a.String()
						break
					}
				}
			}
			out.Host = sv.Name + "." + s.Domain
		}
		pl.Services = append(pl.Services, out)
	}
	return nil
}

// resolveStorage fills the gluster volumes and DRBD resources; node disks
// and LVs are made from them per node.
func (pl *Plan) resolveStorage(s *p.Spec) {
	if g := s.Gluster; len(g.Volumes) > 0 {
		replica := g.Replica
		if replica == 0 {
			replica = s.Cluster.Nodes
		}
		allow := g.Allow
		if allow == "" {
			allow = glusterAllow(pl.Network.Subnet)
		}
		pl.Gluster = &Gluster{Mode: g.Mode, Replica: replica, Allow: allow}
		for _, v := range g.Volumes {
			brick := v.Brick
			if brick == "" {
				brick = "/data/" + v.Name
			}
			nodes := v.Nodes
			if len(nodes) == 0 {
				nodes = s.NodeNames()
			}
			pl.Gluster.Volumes = append(pl.Gluster.Volumes, Volume{
				Name: v.Name, Brick: brick, Mount: v.Mount, Size: v.Size, LV: v.Name, Nodes: nodes,
			})
		}
	}
	for _, r := range s.DRBD {
		fs := r.FS
		if fs == "" {
			fs = "ext4"
		}
		d := DRBD{
			Name: r.Name, Device: fmt.Sprintf("/dev/drbd%d", r.Minor), Minor: r.Minor, Port: r.Port,
			Mount: r.Mount, FS: fs, Size: r.Size, LV: "drbd_" + r.Name, MetaLV: "drbd_" + r.Name + "_md",
		}
		pl.DRBD = append(pl.DRBD, d)
	}
}

// glusterAllow writes a subnet the way auth.addr wants it: 192.168.224.*.
func glusterAllow(cidr string) string {
	pfx := netip.MustParsePrefix(cidr)
	b := pfx.Addr().As4()
	switch {
	case pfx.Bits() >= 24:
		return fmt.Sprintf("%d.%d.%d.*", b[0], b[1], b[2])
	case pfx.Bits() >= 16:
		return fmt.Sprintf("%d.%d.*", b[0], b[1])
	case pfx.Bits() >= 8:
		return fmt.Sprintf("%d.*", b[0])
	}
	return "*"
}

func (pl *Plan) node(s *p.Spec, pfx netip.Prefix, i int, name string) Node {
	addr, _ := p.HostAddr(pfx, s.Network.FirstHost+i)
	n := Node{
		Name: name, FQDN: name + "." + s.Domain, Index: i + 1, Address: addr.String(),
		MAC: pl.mac(name), Memory: s.Cluster.Memory, VCPUs: s.Cluster.VCPUs,
	}
	for j, v := range s.Network.VLANs {
		first := v.FirstHost
		if first == 0 {
			first = s.Network.FirstHost
		}
		vp := netip.MustParsePrefix(v.Subnet).Masked()
		a, _ := p.HostAddr(vp, first+i)
		n.VLANs = append(n.VLANs, NodeVLAN{
			Name: v.Name, ID: v.ID, Interface: pl.Network.VLANs[j].Interface, Address: a.String(), Prefix: vp.Bits(),
		})
	}
	root := Disk{Name: "root", Role: RoleRoot, Size: s.Disks.Root, FS: "ext4",
		UUID: pl.UUID(name + "/root"), Label: "root"}
	n.Disks = append(n.Disks, root)
	if s.Disks.Swap > 0 {
		n.Disks = append(n.Disks, Disk{Name: "swap", Role: RoleSwap, Size: s.Disks.Swap,
			UUID: pl.UUID(name + "/swap"), Label: "swap"})
	}
	n.Mounts = append(n.Mounts, Mount{Source: "UUID=" + root.UUID, Target: "/", Type: "ext4", Options: "noatime,errors=remount-ro", Pass: 1})
	if s.Disks.Swap > 0 {
		n.Mounts = append(n.Mounts, Mount{Source: "UUID=" + pl.UUID(name+"/swap"), Target: "none", Type: "swap", Options: "sw," + slowDevice})
	}
	if len(s.Disks.PVs) > 0 {
		vg := &VG{Name: strings.ReplaceAll(s.Disks.VG, "{node}", name)}
		for j, size := range s.Disks.PVs {
			name := fmt.Sprintf("pv%d", j+1)
			n.Disks = append(n.Disks, Disk{Name: name, Role: RolePV, Size: size})
			vg.PVs = append(vg.PVs, name)
		}
		pl.fillVG(vg, &n)
		n.VG = vg
	}
	n.MemoryNeeded = pl.memoryNeeded(name)
	return n
}

// fillVG makes the LVs of a node: a brick per gluster volume the node
// holds, data and meta-data per DRBD resource.
func (pl *Plan) fillVG(vg *VG, n *Node) {
	if pl.Gluster != nil {
		for _, v := range pl.Gluster.Volumes {
			if !contains(v.Nodes, n.Name) {
				continue
			}
			lv := LV{Name: v.LV, Size: v.Size, Purpose: LVBrick, FS: "ext4", UUID: pl.UUID(n.Name + "/lv/" + v.LV), Mount: v.Brick}
			vg.LVs = append(vg.LVs, lv)
			n.Mounts = append(n.Mounts, Mount{Source: "/dev/" + vg.Name + "/" + lv.Name, Target: v.Brick, Type: "ext4", Options: "defaults,noatime," + slowDevice, Pass: 2})
		}
		for _, v := range pl.Gluster.Volumes {
			n.Mounts = append(n.Mounts, pl.glusterMount(v, n.Name))
		}
	}
	for i, d := range pl.DRBD {
		vg.LVs = append(vg.LVs,
			LV{Name: d.LV, Size: d.Size, Purpose: LVDRBD},
			LV{Name: d.MetaLV, Size: p.DRBDMetaSize(d.Size), Purpose: LVDRBDMeta})
		pl.DRBD[i].Peers = append(pl.DRBD[i].Peers, DRBDPeer{
			Node: n.Name, Address: n.Address,
			Disk: "/dev/" + vg.Name + "/" + d.LV, Meta: "/dev/" + vg.Name + "/" + d.MetaLV,
		})
	}
}

// slowDevice is how long systemd waits for a disk device (an LV the
// volume group's activation makes, the swap partition) before it gives up
// on the mount and drops the boot into emergency mode. Its default, 90 s,
// was measured too short: three nodes booting together under software
// emulation on a loaded host activated their LVs after more than 90 s.
const slowDevice = "x-systemd.device-timeout=10min"

// glusterMount is the client mount of a volume. Managed volumes mount from
// the node itself with the others as volfile servers; legacy ones from the
// seed's client volfile. They are noauto: applbuild-gluster.service mounts
// them on every boot once the volume is started (systemd's own attempt at
// boot, before the pool exists, would leave failed mount units), and
// Pacemaker starts only after it, so no service ever runs on the image's
// local copy of a shared directory.
func (pl *Plan) glusterMount(v Volume, self string) Mount {
	if pl.Gluster.Mode == p.GlusterLegacy {
		return Mount{Source: "/etc/glusterfs/glusterfs_" + v.Name + ".vol", Target: v.Mount, Type: "glusterfs",
			Options: "noauto,_netdev,direct-io-mode=disable"}
	}
	var backups []string
	for _, n := range v.Nodes {
		if n != self {
			backups = append(backups, n)
		}
	}
	opts := "noauto,_netdev,x-systemd.requires=glusterd.service"
	if len(backups) > 0 {
		opts += ",backup-volfile-servers=" + strings.Join(backups, ":")
	}
	src := self
	if !contains(v.Nodes, self) {
		src = v.Nodes[0]
	}
	return Mount{Source: src + ":/" + v.Name, Target: v.Mount, Type: "glusterfs", Options: opts}
}

func (pl *Plan) memoryNeeded(node string) Size {
	need := Size(BaseMemory)
	for _, sv := range pl.Services {
		need += sv.Memory
	}
	_ = node // every service may land on every node after failovers
	return need
}

func (pl *Plan) resolveApps(s *p.Spec) {
	subnet := pl.Network.Subnet
	for _, e := range s.NFS.Exports {
		clients := e.Clients
		if clients == "" {
			clients = subnet
		}
		opts := e.Options
		if opts == "" {
			opts = "rw,sync,no_subtree_check"
		}
		pl.NFS = append(pl.NFS, Export{Path: e.Path, Clients: clients, Options: opts})
	}
	if sv := pl.ServiceByUnit("mariadb"); sv != nil {
		m := s.MariaDB
		pl.MariaDB = &MariaDB{Port: orInt(m.Port, 3306), MaxConnections: orInt(m.MaxConnections, 100),
			BufferPool: m.BufferPool, Datadir: orStr(m.Datadir, "/var/lib/mysql"), Bind: "0.0.0.0"}
		if pl.MariaDB.BufferPool == 0 {
			pl.MariaDB.BufferPool = 128 * p.MiB
		}
	}
	if sv := pl.Service("pound"); sv != nil {
		po := &Pound{Listen: sv.IP, Port: orInt(s.Pound.Port, 80), Backends: s.Pound.Backends}
		if len(po.Backends) == 0 {
			port := orInt(s.Pound.BackendPort, 8080)
			for _, n := range pl.Nodes {
				po.Backends = append(po.Backends, fmt.Sprintf("%s:%d", n.Address, port))
			}
		}
		pl.Pound = po
	}
	if s.SCM.SVNRoot != "" || s.SCM.CVSRoot != "" {
		pl.SCM = &SCM{SVNRoot: s.SCM.SVNRoot, Repos: s.SCM.Repos, CVSRoot: s.SCM.CVSRoot}
	}
	if r := s.Rsync; len(r.Modules) > 0 {
		rs := &Rsync{Config: orStr(r.Config, "/etc/rsyncd.conf"), Home: orStr(r.Home, "/var/lib/rsync"),
			Nice: r.Nice, IONice: r.IONice, Modules: r.Modules, DRKey: r.DRKey, DRHost: r.DRHost,
			Schedule: orStr(r.Schedule, "daily")}
		if sv := pl.ServiceByUnit("rsync"); sv != nil {
			rs.Address = sv.IP
			if rs.DRHost == "" {
				rs.DRHost = sv.Host
			}
		}
		pl.Rsync = rs
	}
	if s.Cockpit.Enabled {
		pl.Cockpit = &Cockpit{Port: orInt(s.Cockpit.Port, 9090)}
	}
	if s.Monit.Enabled {
		pl.Monit = &Monit{Port: orInt(s.Monit.Port, 2812), Interval: orInt(s.Monit.Interval, 60)}
	}
	b := s.Branding
	pl.Branding = Branding{Product: orStr(b.Product, "applbuild appliance"), Motd: b.Motd, Issue: b.Issue}
	for _, h := range s.Firstboot {
		pl.Firstboot = append(pl.Firstboot, Hook{Name: h.Name, On: h.On, Run: h.Run})
	}
}

// resolvePackages is the sorted union of the spec's, the services' and what
// enabled features need.
func (pl *Plan) resolvePackages(s *p.Spec) {
	set := map[string]bool{}
	for _, x := range s.Packages {
		set[x] = true
	}
	for _, sv := range pl.Services {
		for _, x := range sv.Packages {
			set[x] = true
		}
	}
	if pl.Cockpit != nil {
		set["cockpit-ws"], set["cockpit-system"] = true, true
	}
	if pl.Monit != nil {
		set["monit"] = true
	}
	if len(pl.DRBD) > 0 {
		set["drbd-utils"] = true
	}
	if pl.Fencing != nil {
		set["corosync-qdevice"], set["sbd"] = true, true
	}
	if len(pl.NFS) > 0 {
		set["nfs-kernel-server"] = true
	}
	if pl.Gluster != nil {
		set["glusterfs-server"], set["glusterfs-client"] = true, true
	}
	for x := range set {
		pl.Packages = append(pl.Packages, x)
	}
	sort.Strings(pl.Packages)
}

func (pl *Plan) warn(s *p.Spec) {
	for _, n := range pl.Nodes {
		if n.Memory < n.MemoryNeeded {
			var big []string
			for _, sv := range pl.Services {
				if sv.Memory >= 128*p.MiB {
					big = append(big, fmt.Sprintf("%s %s", sv.Name, sv.Memory))
				}
			}
			pl.Warnings = append(pl.Warnings, fmt.Sprintf(
				"%s: node %s has %s of memory but its services can need %s (%s): raise cluster.memory",
				s.Pos("cluster", "memory"), n.Name, n.Memory, n.MemoryNeeded.Human(), strings.Join(big, ", ")))
			break
		}
	}
	if pl.HA && len(pl.Nodes) < 2 {
		pl.Warnings = append(pl.Warnings, "a cluster of one node cannot fail over")
	}
}

// Service returns the service named name, or nil.
func (pl *Plan) Service(name string) *Service {
	for i := range pl.Services {
		if pl.Services[i].Name == name {
			return &pl.Services[i]
		}
	}
	return nil
}

// ServiceByUnit returns the service run by the systemd unit, or nil.
func (pl *Plan) ServiceByUnit(unit string) *Service {
	for i := range pl.Services {
		if pl.Services[i].Unit == unit {
			return &pl.Services[i]
		}
	}
	return nil
}

// Node returns the node named name, or nil.
func (pl *Plan) Node(name string) *Node {
	for i := range pl.Nodes {
		if pl.Nodes[i].Name == name {
			return &pl.Nodes[i]
		}
	}
	return nil
}

// UUID derives the stable UUID of purpose ("n1/root") from the seed.
func (pl *Plan) UUID(purpose string) string { return disk.UUIDFromSeed(pl.Seed, purpose) }

// mac is a stable locally-unique MAC in Xen's OUI 00:16:3e.
func (pl *Plan) mac(node string) string {
	h := sha256.Sum256([]byte(pl.Seed + "/mac/" + node))
	return fmt.Sprintf("00:16:3e:%02x:%02x:%02x", h[0]&0x7f, h[1], h[2])
}

func seedOf(cluster, domain string) string {
	h := sha256.Sum256([]byte("applbuild/" + cluster + "." + domain))
	return hex.EncodeToString(h[:16])
}

func netmask(pfx netip.Prefix) string {
	m := ^uint32(0) << (32 - pfx.Bits())
	return fmt.Sprintf("%d.%d.%d.%d", m>>24, m>>16&0xff, m>>8&0xff, m&0xff)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func orInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func orStr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
