package cluster

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/applbuild/applbuild/internal/run"
)

// A plan with fencing (plan.Fencing) names the address of a corosync-qnetd
// on a third machine: the vote that decides which half of a partitioned
// pair keeps quorum. A site runs its own; for a trial run applbuild stands
// in for it, with one corosync-qnetd inside the cluster's namespace on
// that address of the bridge, started with the nodes and stopped by down.

func (c *Cluster) qnetdLock() string   { return filepath.Join(c.Dir, "qnetd.pid") }
func (c *Cluster) qnetdSocket() string { return filepath.Join(c.Dir, "qnetd.sock") }

// qnetdAddr is the quorum device's address with the LAN's prefix, or ""
// when the plan has none.
func (c *Cluster) qnetdAddr() (string, error) {
	f := c.Plan.Fencing
	if f == nil {
		return "", nil
	}
	pfx, err := netip.ParsePrefix(c.Plan.Network.Subnet)
	if err != nil {
		return "", fmt.Errorf("plan subnet: %w", err)
	}
	a, err := netip.ParseAddr(f.QDevice)
	if err != nil || !pfx.Contains(a) {
		return "", fmt.Errorf("the quorum device %s is not on the cluster's LAN %s: applbuild cluster can stand in only for a corosync-qnetd there", f.QDevice, pfx)
	}
	return fmt.Sprintf("%s/%d", a, pfx.Bits()), nil
}

// startQNetd gives the bridge the quorum device's address and starts
// corosync-qnetd on it, daemonized (its pid in qnetdLock). TLS is off, as
// the nodes' corosync-qdevice has it.
func (c *Cluster) startQNetd(ctx context.Context) error {
	addr, err := c.qnetdAddr()
	if err != nil || addr == "" {
		return err
	}
	qnetd, err := run.Look("corosync-qnetd")
	if err != nil {
		return err
	}
	if err := run.Run(ctx, "ip", "-n", c.NetNS, "addr", "add", addr, "dev", bridgeName); err != nil {
		return fmt.Errorf("quorum device address: %w", err)
	}
	ip, _, _ := strings.Cut(addr, "/")
	if err := run.Run(ctx, "ip", "netns", "exec", c.NetNS, qnetd, "-4", "-s", "off",
		"-l", ip, "-p", strconv.Itoa(c.Plan.Fencing.QPort),
		"-S", "lock_file="+c.qnetdLock()+",local_socket_file="+c.qnetdSocket()); err != nil {
		return fmt.Errorf("start corosync-qnetd: %w", err)
	}
	// It daemonizes before it writes its lock file.
	for i := 0; i < 50 && c.qnetdPID() == 0; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if c.qnetdPID() == 0 {
		return fmt.Errorf("corosync-qnetd left no process (its messages go to the host's syslog)")
	}
	return nil
}

// qnetdPID is the pid of this cluster's corosync-qnetd, or 0: its command
// line names this cluster's lock file.
func (c *Cluster) qnetdPID() int {
	if c.Dir == "" {
		return 0
	}
	return pidFromFile(c.qnetdLock(), c.qnetdLock())
}

// stopQNetd kills this cluster's corosync-qnetd and waits until it is gone.
func (c *Cluster) stopQNetd() error { return killAndWait("corosync-qnetd", c.qnetdPID) }
