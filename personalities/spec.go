// Package personalities holds the embedded appliance specs and turns YAML
// (embedded, a user's file, a site file, --set) into one validated Spec.
//
// A Spec is the YAML as the user wrote it, merged along extends:. It is
// decoded strictly (unknown keys and wrong types are errors with
// file:line:col) and validated before anything else looks at it; the
// builder package turns it into a per-node Plan.
package personalities

import "gopkg.in/yaml.v3"

// Spec is one personality after extends:, site file and --set are merged.
type Spec struct {
	Name        string   `yaml:"name,omitempty"`
	Description string   `yaml:"description"`
	Extends     []string `yaml:"extends,omitempty"`
	// Mixin marks a spec that only exists to be extended (base, ha-cluster,
	// glusterfs): it is not listed and cannot be built on its own.
	Mixin bool `yaml:"mixin,omitempty"`

	Suite  string `yaml:"suite"`
	Mirror string `yaml:"mirror"`
	Domain string `yaml:"domain"`
	// No secret: key. A spec is shared; the site secret is --secret only.

	Cluster  Cluster   `yaml:"cluster"`
	Network  Network   `yaml:"network"`
	Disks    Disks     `yaml:"disks"`
	Xen      Xen       `yaml:"xen"`
	Packages []string  `yaml:"packages"`
	Services []Service `yaml:"services"`

	Gluster Gluster `yaml:"gluster"`
	DRBD    []DRBD  `yaml:"drbd"`
	NFS     NFS     `yaml:"nfs"`
	MariaDB MariaDB `yaml:"mariadb"`
	Pound   Pound   `yaml:"pound"`
	SCM     SCM     `yaml:"scm"`
	Rsync   Rsync   `yaml:"rsync"`

	Admin     Admin    `yaml:"admin"`
	Cockpit   Cockpit  `yaml:"cockpit"`
	Monit     Monit    `yaml:"monit"`
	Branding  Branding `yaml:"branding"`
	Firstboot []Hook   `yaml:"firstboot"`

	// src keeps the merged YAML tree and where each node came from, so a
	// later check can say file:line:col.
	src *source `yaml:"-"`
}

// Cluster sizes the set of nodes.
type Cluster struct {
	Name   string `yaml:"name"`   // defaults to the personality name
	Nodes  int    `yaml:"nodes"`  // how many nodes
	Prefix string `yaml:"prefix"` // node names are prefix1..prefixN
	Memory Size   `yaml:"memory"` // per node
	VCPUs  int    `yaml:"vcpus"`
}

// Network is the node LAN: one NIC, untagged primary subnet, 802.1q VLANs.
type Network struct {
	Subnet    string   `yaml:"subnet"` // CIDR of the primary network
	Gateway   string   `yaml:"gateway"`
	FirstHost int      `yaml:"first_host"` // host number of node 1 (.161)
	VIPFirst  int      `yaml:"vip_first"`  // first host number for floating IPs
	DNS       []string `yaml:"dns"`
	Interface string   `yaml:"interface"` // name of the NIC in the guest
	Bridge    string   `yaml:"bridge"`    // dom0 bridge the vif joins
	VLANs     []VLAN   `yaml:"vlans"`
}

// VLAN is one 802.1q VLAN on the node NIC.
type VLAN struct {
	Name      string `yaml:"name"`
	ID        int    `yaml:"id"`
	Subnet    string `yaml:"subnet"`
	FirstHost int    `yaml:"first_host"` // defaults to network.first_host
	// Purpose names what rides on this VLAN: cluster (corosync link 1),
	// storage, backup, admin. Informational except "cluster".
	Purpose string `yaml:"purpose"`
}

// Disks sizes each node's disks.
type Disks struct {
	Root Size   `yaml:"root"`
	Swap Size   `yaml:"swap"`
	PVs  []Size `yaml:"pvs"`
	// VG is the volume group name; {node} is replaced by the node name.
	VG string `yaml:"vg"`
}

// Xen sets how the Xen target boots a node.
type Xen struct {
	Type string `yaml:"type"` // pvh (default) or pv
}

// Service is a daemon the appliance runs, and who keeps it running.
type Service struct {
	Name string `yaml:"name"`
	// Kind: clone (Pacemaker runs it on every node), singleton (Pacemaker
	// runs one instance with a floating IP), local (systemd runs it on every
	// node; monit watches it).
	Kind     string   `yaml:"kind"`
	Unit     string   `yaml:"unit"`     // systemd unit; defaults to name
	Agent    string   `yaml:"agent"`    // pacemaker agent, default systemd:<unit>
	IP       string   `yaml:"ip"`       // singleton floating IP (default: allocated)
	Port     int      `yaml:"port"`     // TCP port it serves, for checks
	Packages []string `yaml:"packages"` // packages it needs
	Memory   Size     `yaml:"memory"`   // what it needs to run
	After    []string `yaml:"after"`    // start after these services
	DRBD     string   `yaml:"drbd"`     // DRBD resource it runs on (primary)
	// Process is the process name monit matches for a local service.
	Process string `yaml:"process"`
	Pidfile string `yaml:"pidfile"`
}

// Gluster describes the replicated GlusterFS volumes.
type Gluster struct {
	// Mode: managed (glusterd, first boot creates the volumes) or legacy
	// (the seed's hand-written server and client volfiles).
	Mode    string   `yaml:"mode"`
	Replica int      `yaml:"replica"` // default: node count
	Allow   string   `yaml:"allow"`   // auth.addr allow pattern, default subnet
	Volumes []Volume `yaml:"volumes"`
}

// Volume is one replicated volume: a brick LV on every node, mounted
// through the GlusterFS client at Mount on every node.
type Volume struct {
	Name  string `yaml:"name"`
	Brick string `yaml:"brick"` // brick mount point, default /data/<name>
	Mount string `yaml:"mount"` // where the client mounts it
	Size  Size   `yaml:"size"`  // LV size
	// Nodes holds the bricks (the seed's host columns); default every node.
	Nodes []string `yaml:"nodes"`
}

// DRBD is one replicated block device on an LV of the node VG.
type DRBD struct {
	Name  string `yaml:"name"`
	Size  Size   `yaml:"size"`
	Mount string `yaml:"mount"`
	FS    string `yaml:"fs"`
	Port  int    `yaml:"port"`
	Minor int    `yaml:"minor"`
}

// NFS lists what an NFS server exports.
type NFS struct {
	Exports []Export `yaml:"exports"`
}

// Export is one /etc/exports line.
type Export struct {
	Path    string `yaml:"path"`
	Clients string `yaml:"clients"` // default: the primary subnet
	Options string `yaml:"options"`
}

// MariaDB tunes the database server.
type MariaDB struct {
	Port           int    `yaml:"port"`
	MaxConnections int    `yaml:"max_connections"`
	BufferPool     Size   `yaml:"buffer_pool"`
	Datadir        string `yaml:"datadir"`
}

// Pound is the load balancer.
type Pound struct {
	Port int `yaml:"port"`
	// Backends are host:port; when empty, every node at BackendPort (the
	// web-cluster's own apache2 clone).
	Backends    []string `yaml:"backends"`
	BackendPort int      `yaml:"backend_port"`
}

// SCM is the source control server.
type SCM struct {
	SVNRoot string   `yaml:"svn_root"`
	Repos   []string `yaml:"repos"`
	CVSRoot string   `yaml:"cvs_root"`
}

// Rsync is the disaster-recovery rsync daemon and the DR client's pull.
type Rsync struct {
	Config  string        `yaml:"config"` // rsyncd.conf on the global volume
	Home    string        `yaml:"home"`   // home of the locked rsync account
	Nice    int           `yaml:"nice"`
	IONice  string        `yaml:"ionice"`
	Modules []RsyncModule `yaml:"modules"`
	// DRKey is the DR client's root public key, allowed into the rsync account.
	DRKey string `yaml:"dr_key"`
	// DRHost is the name the DR client pulls from (a DNS name for the
	// rsyncd floating IP).
	DRHost   string `yaml:"dr_host"`
	Schedule string `yaml:"schedule"` // systemd OnCalendar of the DR pull
}

// RsyncModule is one [module] of rsyncd.conf.
type RsyncModule struct {
	Name       string   `yaml:"name"`
	Path       string   `yaml:"path"`
	Comment    string   `yaml:"comment"`
	HostsAllow []string `yaml:"hosts_allow"`
	Dest       string   `yaml:"dest"` // where the DR client puts it
}

// Admin is the account that logs in from outside and then becomes root.
type Admin struct {
	User         string   `yaml:"user"`
	Keys         []string `yaml:"keys"`
	PasswordHash string   `yaml:"password_hash"`
}

// Cockpit is the web administration console (the seed's webmin).
type Cockpit struct {
	Enabled bool `yaml:"enabled"`
	Port    int  `yaml:"port"`
}

// Monit watches the node-local daemons.
type Monit struct {
	Enabled  bool `yaml:"enabled"`
	Port     int  `yaml:"port"`
	Interval int  `yaml:"interval"`
}

// Branding is what a user sees at the console and on login.
type Branding struct {
	Product string `yaml:"product"`
	Motd    string `yaml:"motd"`
	Issue   string `yaml:"issue"`
}

// Hook is a first-boot script.
type Hook struct {
	Name string `yaml:"name"`
	// On: all (every node) or first (node 1 only).
	On  string `yaml:"on"`
	Run string `yaml:"run"`
}

// Node returns the YAML node of the spec, for re-encoding.
func (s *Spec) Node() *yaml.Node {
	if s.src == nil {
		return nil
	}
	return s.src.root
}
