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
	Name        string   `yaml:"name,omitempty" check:"name"`
	Description string   `yaml:"description" check:"text"`
	Extends     []string `yaml:"extends,omitempty" check:"text"`
	// Mixin marks a spec that only exists to be extended (base, ha-cluster,
	// glusterfs): it is not listed and cannot be built on its own.
	Mixin bool `yaml:"mixin,omitempty"`

	Suite  string `yaml:"suite" check:"name"`
	Mirror string `yaml:"mirror" check:"url"`
	Domain string `yaml:"domain" check:"hostname"`
	// No secret: key. A spec is shared; the site secret is --secret only.

	Cluster  Cluster   `yaml:"cluster"`
	Network  Network   `yaml:"network"`
	Disks    Disks     `yaml:"disks"`
	Xen      Xen       `yaml:"xen"`
	Packages []string  `yaml:"packages" check:"package"`
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
	Name   string `yaml:"name" check:"name"`   // defaults to the personality name
	Nodes  int    `yaml:"nodes"`               // how many nodes
	Prefix string `yaml:"prefix" check:"name"` // node names are prefix1..prefixN
	Memory Size   `yaml:"memory"`              // per node
	VCPUs  int    `yaml:"vcpus"`
	// QuorumDevice is the address of a corosync-qnetd on a third machine:
	// the tie-breaker that lets a two-node DRBD pair fence itself.
	QuorumDevice string `yaml:"quorum_device" check:"address"`
}

// Network is the node LAN: one NIC, untagged primary subnet, 802.1q VLANs.
type Network struct {
	Subnet    string   `yaml:"subnet" check:"cidr"` // CIDR of the primary network
	Gateway   string   `yaml:"gateway" check:"address"`
	FirstHost int      `yaml:"first_host"` // host number of node 1 (.161)
	VIPFirst  int      `yaml:"vip_first"`  // first host number for floating IPs
	DNS       []string `yaml:"dns" check:"address"`
	Interface string   `yaml:"interface" check:"ifname"` // name of the NIC in the guest
	Bridge    string   `yaml:"bridge" check:"bridge"`    // dom0 bridge the vif joins
	VLANs     []VLAN   `yaml:"vlans"`
}

// VLAN is one 802.1q VLAN on the node NIC.
type VLAN struct {
	Name      string `yaml:"name" check:"name"`
	ID        int    `yaml:"id"`
	Subnet    string `yaml:"subnet" check:"cidr"`
	FirstHost int    `yaml:"first_host"` // defaults to network.first_host
	// Purpose names what rides on this VLAN: cluster (corosync link 1),
	// storage, backup, admin. Informational except "cluster".
	Purpose string `yaml:"purpose" check:"name"`
}

// Disks sizes each node's disks.
type Disks struct {
	Root Size   `yaml:"root"`
	Swap Size   `yaml:"swap"`
	PVs  []Size `yaml:"pvs"`
	// VG is the volume group name; {node} is replaced by the node name.
	VG string `yaml:"vg" check:"vg"`
}

// Xen sets how the Xen target boots a node.
type Xen struct {
	Type string `yaml:"type" check:"name"` // pvh (default) or pv
}

// Service is a daemon the appliance runs, and who keeps it running.
type Service struct {
	Name string `yaml:"name" check:"id"`
	// Kind: clone (Pacemaker runs it on every node), singleton (Pacemaker
	// runs one instance with a floating IP), local (systemd runs it on every
	// node; monit watches it).
	Kind     string   `yaml:"kind" check:"name"`
	Unit     string   `yaml:"unit" check:"unit"`        // systemd unit; defaults to name
	Agent    string   `yaml:"agent" check:"agent"`      // pacemaker agent, default systemd:<unit>
	IP       string   `yaml:"ip" check:"address"`       // singleton floating IP (default: allocated)
	Port     int      `yaml:"port"`                     // TCP port it serves, for checks
	Packages []string `yaml:"packages" check:"package"` // packages it needs
	Memory   Size     `yaml:"memory"`                   // what it needs to run
	After    []string `yaml:"after" check:"id"`         // start after these services
	DRBD     string   `yaml:"drbd" check:"id"`          // DRBD resource it runs on (primary)
	// Process is the process name monit matches for a local service.
	Process string `yaml:"process" check:"process"`
	Pidfile string `yaml:"pidfile" check:"file"`
}

// Gluster describes the replicated GlusterFS volumes.
type Gluster struct {
	// Mode: managed (glusterd, first boot creates the volumes) or legacy
	// (the seed's hand-written server and client volfiles).
	Mode    string   `yaml:"mode" check:"name"`
	Replica int      `yaml:"replica"`            // default: node count
	Allow   string   `yaml:"allow" check:"glob"` // auth.addr allow pattern, default subnet
	Volumes []Volume `yaml:"volumes"`
}

// Volume is one replicated volume: a brick LV on every node, mounted
// through the GlusterFS client at Mount on every node.
type Volume struct {
	Name  string `yaml:"name" check:"id"`
	Brick string `yaml:"brick" check:"path"` // brick mount point, default /data/<name>
	Mount string `yaml:"mount" check:"path"` // where the client mounts it
	Size  Size   `yaml:"size"`               // LV size
	// Nodes holds the bricks (the seed's host columns); default every node.
	Nodes []string `yaml:"nodes" check:"name"`
}

// DRBD is one replicated block device on an LV of the node VG.
type DRBD struct {
	Name  string `yaml:"name" check:"id"`
	Size  Size   `yaml:"size"`
	Mount string `yaml:"mount" check:"path"`
	FS    string `yaml:"fs" check:"fs"`
	Port  int    `yaml:"port"`
	Minor int    `yaml:"minor"`
}

// NFS lists what an NFS server exports.
type NFS struct {
	Exports []Export `yaml:"exports"`
}

// Export is one /etc/exports line.
type Export struct {
	Path    string `yaml:"path" check:"path"`
	Clients string `yaml:"clients" check:"host"` // default: the primary subnet
	Options string `yaml:"options" check:"nfsopts"`
}

// MariaDB tunes the database server.
type MariaDB struct {
	Port           int    `yaml:"port"`
	MaxConnections int    `yaml:"max_connections"`
	BufferPool     Size   `yaml:"buffer_pool"`
	Datadir        string `yaml:"datadir" check:"path"`
}

// Pound is the load balancer.
type Pound struct {
	Port int `yaml:"port"`
	// Backends are host:port; when empty, every node at BackendPort (the
	// web-cluster's own apache2 clone).
	Backends    []string `yaml:"backends" check:"hostport"`
	BackendPort int      `yaml:"backend_port"`
}

// SCM is the source control server.
type SCM struct {
	SVNRoot string   `yaml:"svn_root" check:"path"`
	Repos   []string `yaml:"repos" check:"repo"`
	CVSRoot string   `yaml:"cvs_root" check:"path"`
}

// Rsync is the disaster-recovery rsync daemon and the DR client's pull.
type Rsync struct {
	Config  string        `yaml:"config" check:"path"` // rsyncd.conf on the global volume
	Home    string        `yaml:"home" check:"path"`   // home of the locked rsync account
	Nice    int           `yaml:"nice"`
	IONice  string        `yaml:"ionice" check:"ionice"`
	Modules []RsyncModule `yaml:"modules"`
	// DRKey is the DR client's root public key, allowed into the rsync account.
	DRKey string `yaml:"dr_key" check:"sshkey"`
	// DRHost is the name the DR client pulls from (a DNS name for the
	// rsyncd floating IP).
	DRHost   string `yaml:"dr_host" check:"hostname"`
	Schedule string `yaml:"schedule" check:"calendar"` // systemd OnCalendar of the DR pull
}

// RsyncModule is one [module] of rsyncd.conf.
type RsyncModule struct {
	Name       string   `yaml:"name" check:"id"`
	Path       string   `yaml:"path" check:"path"`
	Comment    string   `yaml:"comment" check:"text"`
	HostsAllow []string `yaml:"hosts_allow" check:"host"`
	Dest       string   `yaml:"dest" check:"path"` // where the DR client puts it
}

// Admin is the account that logs in from outside and then becomes root.
type Admin struct {
	User         string   `yaml:"user" check:"user"`
	Keys         []string `yaml:"keys" check:"sshkey"`
	PasswordHash string   `yaml:"password_hash" check:"crypt"`
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
	Product string `yaml:"product" check:"label"`
	Motd    string `yaml:"motd" check:"lines"`
	Issue   string `yaml:"issue" check:"lines"`
}

// Hook is a first-boot script.
type Hook struct {
	Name string `yaml:"name" check:"id"`
	// On: all (every node) or first (node 1 only).
	On  string `yaml:"on" check:"name"`
	Run string `yaml:"run" check:"lines"`
}

// Node returns the YAML node of the spec, for re-encoding.
func (s *Spec) Node() *yaml.Node {
	if s.src == nil {
		return nil
	}
	return s.src.root
}
