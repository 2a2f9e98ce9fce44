// Package cluster test-drives a whole built cluster under QEMU: every node
// from its own disk set (through qcow2 overlays, so the build output is
// never written), all of them on one bridge inside a network namespace of
// the cluster's own, with their planned MACs, addresses and VLANs. It is
// what `applbuild cluster` runs and what `make cluster-test` drives: what
// a user tries is what CI proves.
//
// A cluster's state is a directory (OUT/<personality>/cluster): cluster.json
// says what was started, and one directory per node holds its overlays,
// console log and pid file. The nodes outlive the command that started
// them; Down stops them and removes the namespace and the directory.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/builder/boot"
	"github.com/applbuild/applbuild/builder/pipeline"
)

// PlanName is the plan a build writes beside its manifest; the cluster
// reads the services, volumes and addresses it checks from it.
const PlanName = pipeline.PlanName

// Node is one running (or stopped) node.
type Node struct {
	boot.Machine
	Dir    string `json:"dir"`
	Tap    string `json:"tap"`
	Memory int64  `json:"memory"`
	CPUs   int    `json:"cpus"`
}

// Cluster is a cluster's state.
type Cluster struct {
	Personality string       `json:"personality"`
	Dir         string       `json:"dir"`
	BuildDir    string       `json:"build_dir"`
	NetNS       string       `json:"netns"`
	HostAddr    string       `json:"host_addr"` // applbuild's own address on the bridge, CIDR
	Nodes       []*Node      `json:"nodes"`
	Plan        builder.Plan `json:"-"`
}

// Options for Up.
type Options struct {
	Memory int64 // per node; 0: the plan's, at least MinMemory
	CPUs   int   // per node; 0: 1 (a TCG guest per host core is what fits)
	// Firmware boots a raw or usb build's disks through their own boot
	// loader under this firmware (boot.Firmwares); "" is SeaBIOS for
	// them. A Xen disk set has no boot loader QEMU can run: its kernel
	// is started directly, and a Firmware is refused.
	Firmware string
}

// MinMemory is what a node gets at least under QEMU.
const MinMemory = 1 << 30

// StateDir is where a cluster built into out lives.
func StateDir(out, personality string) string {
	return filepath.Join(out, personality, "cluster")
}

func stateFile(dir string) string { return filepath.Join(dir, "cluster.json") }

// Load reads a cluster's state; errNotUp when it has none.
func Load(out, personality string) (*Cluster, error) {
	dir := StateDir(out, personality)
	b, err := os.ReadFile(stateFile(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", personality, errNotUp)
	}
	if err != nil {
		return nil, err
	}
	c := &Cluster{}
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("%s: %w", stateFile(dir), err)
	}
	if err := c.loadPlan(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Cluster) loadPlan() error {
	p := filepath.Join(c.BuildDir, PlanName)
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("%w (rebuild with this applbuild: it writes the plan beside the images)", err)
	}
	if err := json.Unmarshal(b, &c.Plan); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

func (c *Cluster) save() error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp := stateFile(c.Dir) + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, stateFile(c.Dir))
}

// Node finds a node by name.
func (c *Cluster) Node(name string) (*Node, error) {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n, nil
		}
	}
	var names []string
	for _, n := range c.Nodes {
		names = append(names, n.Name)
	}
	return nil, fmt.Errorf("no node %q in %s (nodes: %s)", name, c.Personality, strings.Join(names, ", "))
}

// Prepare describes the cluster built into out/<personality>/<target>
// and makes its state: the namespace, the bridge and taps, and every
// node's overlays. No node runs yet (Start boots them).
func Prepare(ctx context.Context, out, personality, target string, o Options) (_ *Cluster, err error) {
	// Absolute: QEMU daemonizes into /, and the pid file's path in its
	// command line is how a node's process is recognised.
	out, err = filepath.Abs(out)
	if err != nil {
		return nil, err
	}
	buildDir := filepath.Join(out, personality, target)
	dir := StateDir(out, personality)
	if _, err := os.Stat(stateFile(dir)); err == nil {
		return nil, fmt.Errorf("cluster %s is up already (%s): applbuild cluster down %s first", personality, dir, personality)
	}
	c := &Cluster{Personality: personality, Dir: dir, BuildDir: buildDir, NetNS: netnsName(personality)}
	if err := c.loadPlan(); err != nil {
		return nil, fmt.Errorf("no %s build in %s: %w", target, buildDir, err)
	}
	for _, pn := range c.Plan.Nodes {
		m, err := boot.Discover(ctx, buildDir, pn.Name)
		if err != nil {
			return nil, err
		}
		n := &Node{Machine: m, Dir: filepath.Join(dir, pn.Name), Tap: tapName(pn.Name), Memory: o.Memory, CPUs: o.CPUs}
		if n.Memory == 0 {
			n.Memory = max(int64(pn.Memory), MinMemory)
		}
		if n.CPUs == 0 {
			n.CPUs = 1
		}
		if n.MAC == "" {
			n.MAC = pn.MAC
		}
		if o.Firmware != "" {
			if m.Firmware == "" {
				return nil, fmt.Errorf("%s: a %s build boots its kernel directly, not through firmware: --firmware is for raw and usb builds", pn.Name, target)
			}
			n.Firmware = o.Firmware
		}
		c.Nodes = append(c.Nodes, n)
	}
	if c.HostAddr, err = hostAddress(&c.Plan); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = c.Down(context.WithoutCancel(ctx))
		}
	}()
	var taps []string
	for _, n := range c.Nodes {
		taps = append(taps, n.Tap)
	}
	if err := createNetwork(ctx, c.NetNS, c.HostAddr, taps); err != nil {
		return nil, err
	}
	if err := c.save(); err != nil {
		return nil, err
	}
	if err := c.startQNetd(ctx); err != nil {
		return nil, err
	}
	for _, n := range c.Nodes {
		if err := prepareNode(ctx, n); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// hostAddress is applbuild's own address on the cluster's LAN: the plan's
// gateway (the nodes' default route then answers), or else the highest
// host address no node or floating IP uses.
func hostAddress(pl *builder.Plan) (string, error) {
	pfx, err := netip.ParsePrefix(pl.Network.Subnet)
	if err != nil {
		return "", fmt.Errorf("plan subnet: %w", err)
	}
	if pl.Network.Gateway != "" {
		return pl.Network.Gateway + "/" + fmt.Sprint(pfx.Bits()), nil
	}
	used := map[string]bool{}
	for _, n := range pl.Nodes {
		used[n.Address] = true
	}
	for _, s := range pl.Services {
		used[s.IP] = true
	}
	// The last address of the subnet is its broadcast address: start
	// one below it and go down.
	last := pfx.Masked().Addr()
	for a := last; pfx.Contains(a); a = a.Next() {
		last = a
	}
	for a := last.Prev(); pfx.Contains(a) && a != pfx.Masked().Addr(); a = a.Prev() {
		if !used[a.String()] {
			return a.String() + "/" + fmt.Sprint(pfx.Bits()), nil
		}
	}
	return "", fmt.Errorf("no free address for applbuild in %s", pfx)
}

// Start boots the named nodes (all when names is empty).
func (c *Cluster) Start(ctx context.Context, names ...string) error {
	for _, n := range c.Nodes {
		if len(names) > 0 && !slices.Contains(names, n.Name) {
			continue
		}
		if err := startNode(ctx, c.NetNS, n); err != nil {
			return err
		}
	}
	return nil
}

// Kill pulls the named node's power.
func (c *Cluster) Kill(name string) error {
	n, err := c.Node(name)
	if err != nil {
		return err
	}
	return killNode(n)
}

// Link cuts (up=false) or restores the named node's network cable.
func (c *Cluster) Link(ctx context.Context, name string, up bool) error {
	n, err := c.Node(name)
	if err != nil {
		return err
	}
	return setLink(ctx, c.NetNS, n.Tap, up)
}

// Partition cuts the named node off from the other nodes (cut=true), or
// joins it again; applbuild still reaches it (see partition).
func (c *Cluster) Partition(ctx context.Context, name string, cut bool) error {
	n, err := c.Node(name)
	if err != nil {
		return err
	}
	return partition(ctx, c.NetNS, n.Tap, n.Address.Addr().String(), c.HostAddr, cut)
}

// Running reports whether the node's QEMU runs.
func (n *Node) Running() bool { return nodePID(n) > 0 }

// Down stops every node and removes the namespace and the state
// directory. It is what cleans up after anything, also after a cluster
// whose state is half made.
func (c *Cluster) Down(ctx context.Context) error {
	var errs []error
	for _, n := range c.Nodes {
		errs = append(errs, killNode(n))
	}
	errs = append(errs, c.stopQNetd())
	errs = append(errs, deleteNetwork(ctx, c.NetNS))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return os.RemoveAll(c.Dir)
}

// DownAll stops the cluster of personality in out, whatever state it is
// in: with no state file, it still removes a namespace left behind.
func DownAll(ctx context.Context, out, personality string) error {
	c, err := Load(out, personality)
	if errors.Is(err, errNotUp) {
		if err := deleteNetwork(ctx, netnsName(personality)); err != nil {
			return err
		}
		return os.RemoveAll(StateDir(out, personality))
	}
	if err != nil {
		// The plan may be gone with a rebuild: stop what the state names.
		b, rerr := os.ReadFile(stateFile(StateDir(out, personality)))
		if rerr != nil {
			return err
		}
		c = &Cluster{}
		if jerr := json.Unmarshal(b, c); jerr != nil {
			return err
		}
	}
	return c.Down(ctx)
}

// IsNotUp reports whether err says the cluster is not running.
func IsNotUp(err error) bool { return errors.Is(err, errNotUp) }
