package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/applbuild/applbuild/internal/run"
)

// The cluster's L2 segment: a bridge inside a network namespace of the
// cluster's own, one tap per node on it, and one address for applbuild
// itself (the plan's gateway, or the last host address of the LAN) so it
// can reach the nodes. Nothing is added to the host's own namespace: the
// namespace is made with `ip netns add` and all links live inside it.

const (
	bridgeName = "br0"
	// islandName is a second bridge a partitioned node's tap is moved
	// to: it is cut off from the other nodes, but not from applbuild,
	// which keeps a route to the node's own address through it.
	islandName = "br1"
	netnsDir   = "/run/netns"
)

// netnsName is the namespace of a cluster's state directory: one per
// personality, so two clusters of one personality cannot run at once
// (their nodes would claim the same addresses anyway).
func netnsName(personality string) string {
	n := "applbuild-" + personality
	if len(n) > 64 {
		n = n[:64]
	}
	return n
}

func tapName(node string) string {
	n := "tap-" + node
	if len(n) > 15 { // IFNAMSIZ - 1
		n = n[:15]
	}
	return n
}

func netnsExists(name string) bool {
	_, err := os.Stat(filepath.Join(netnsDir, name))
	return err == nil
}

// createNetwork makes the namespace, the bridge, applbuild's address on
// it and a tap per node. On error it removes what it made.
func createNetwork(ctx context.Context, ns, hostAddr string, taps []string) (err error) {
	if netnsExists(ns) {
		return fmt.Errorf("network namespace %s exists already: is the cluster up? (applbuild cluster down removes it)", ns)
	}
	if err := run.Run(ctx, "ip", "netns", "add", ns); err != nil {
		return fmt.Errorf("create network namespace %s: %w", ns, err)
	}
	defer func() {
		if err != nil {
			_ = deleteNetwork(context.WithoutCancel(ctx), ns)
		}
	}()
	in := func(args ...string) error {
		return run.Run(ctx, append([]string{"ip", "-n", ns}, args...)...)
	}
	steps := [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", bridgeName, "type", "bridge", "stp_state", "0", "forward_delay", "0"},
		{"addr", "add", hostAddr, "dev", bridgeName},
		{"link", "set", bridgeName, "up"},
		{"link", "add", islandName, "type", "bridge", "stp_state", "0", "forward_delay", "0"},
		{"link", "set", islandName, "up"},
	}
	for _, t := range taps {
		steps = append(steps,
			[]string{"tuntap", "add", "dev", t, "mode", "tap"},
			[]string{"link", "set", t, "master", bridgeName},
			[]string{"link", "set", t, "up"})
	}
	for _, s := range steps {
		if err := in(s...); err != nil {
			return fmt.Errorf("cluster network (%s): %w", strings.Join(s, " "), err)
		}
	}
	return nil
}

// deleteNetwork removes the namespace and, with it, every link inside.
// A namespace that is not there is not an error.
func deleteNetwork(ctx context.Context, ns string) error {
	if !netnsExists(ns) {
		return nil
	}
	if err := run.Run(ctx, "ip", "netns", "del", ns); err != nil {
		return fmt.Errorf("remove network namespace %s: %w", ns, err)
	}
	return nil
}

// setLink turns a tap up or down: the node's cable pulled or put back,
// for partition drills. The guest keeps running and sees its link go.
func setLink(ctx context.Context, ns, tap string, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return run.Run(ctx, "ip", "-n", ns, "link", "set", tap, state)
}

// partition moves a node's tap to the island bridge (cut=true) or back.
// The node loses every peer and every floating address the others hold,
// as with a pulled cable between it and the switch of the others; a /32
// route through the island keeps applbuild's own way to the node, so a
// test can watch what the node does alone.
func partition(ctx context.Context, ns, tap, nodeAddr, hostAddr string, cut bool) error {
	in := func(args ...string) error {
		return run.Run(ctx, append([]string{"ip", "-n", ns}, args...)...)
	}
	src, _, _ := strings.Cut(hostAddr, "/")
	if cut {
		if err := in("link", "set", tap, "master", islandName); err != nil {
			return err
		}
		return in("route", "replace", nodeAddr+"/32", "dev", islandName, "src", src)
	}
	if err := in("link", "set", tap, "master", bridgeName); err != nil {
		return err
	}
	_ = in("route", "del", nodeAddr+"/32", "dev", islandName)
	return nil
}

// inNetns runs f on an OS thread that has joined the namespace ns. The
// thread is never given back to the runtime (it ends with the goroutine),
// so no other goroutine ever runs in the cluster's namespace.
func inNetns(ns string, f func() error) error {
	fd, err := os.Open(filepath.Join(netnsDir, ns))
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", ns, err)
	}
	defer fd.Close()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread dies with this goroutine.
		if err := unix.Setns(int(fd.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("join network namespace %s: %w", ns, err)
			return
		}
		done <- f()
	}()
	return <-done
}

// dialIn tries a TCP connection to addr from inside ns; nil means
// something accepted it.
func dialIn(ns, addr string, timeout time.Duration) error {
	return inNetns(ns, func() error {
		c, err := net.DialTimeout("tcp", addr, timeout)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// errNotUp is a cluster command that needs the cluster running.
var errNotUp = errors.New("the cluster is not up (applbuild cluster up starts it)")

// Dial opens a TCP connection to addr from inside the cluster's network:
// the socket is made in the namespace, and used from anywhere after.
func (c *Cluster) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := inNetns(c.NetNS, func() error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

// Listen listens on addr (host:port) inside the cluster's network, as a
// machine on the cluster's LAN that is not one of its nodes would: the
// backends a load balancer forwards to, a client a test drives. An IP
// that is not applbuild's own is added to the bridge first (it goes with
// the namespace on down). Nodes' and floating addresses are refused: a
// stand-in must never answer for what the cluster serves.
func (c *Cluster) Listen(ctx context.Context, addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	pfx, err := netip.ParsePrefix(c.Plan.Network.Subnet)
	if err != nil {
		return nil, fmt.Errorf("plan subnet: %w", err)
	}
	if !pfx.Contains(ip) {
		return nil, fmt.Errorf("listen %s: not on the cluster's LAN %s", addr, pfx)
	}
	for _, n := range c.Plan.Nodes {
		if n.Address == host {
			return nil, fmt.Errorf("listen %s: that is %s's address", addr, n.Name)
		}
	}
	for _, s := range c.Plan.Services {
		if s.IP == host {
			return nil, fmt.Errorf("listen %s: that is %s's floating address", addr, s.Name)
		}
	}
	if own, _, _ := strings.Cut(c.HostAddr, "/"); own != host {
		out, err := run.Output(ctx, "ip", "-n", c.NetNS, "addr", "replace", host+"/32", "dev", bridgeName)
		if err != nil {
			return nil, fmt.Errorf("listen %s: add the address: %w\n%s", addr, err, out)
		}
	}
	var l net.Listener
	err = inNetns(c.NetNS, func() error {
		var lc net.ListenConfig
		var err error
		l, err = lc.Listen(ctx, "tcp", addr)
		return err
	})
	return l, err
}
