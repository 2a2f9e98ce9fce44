package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/applbuild/applbuild/builder/boot"
	"github.com/applbuild/applbuild/cluster"
	"github.com/applbuild/applbuild/personalities"
)

func newClusterCmd(g *globals) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Run a whole built cluster under QEMU, to try it before it ships",
		Long: `cluster boots every node of a build together under QEMU (KVM where
/dev/kvm exists, software emulation otherwise), each from its own disk set
through copy-on-write overlays: the built images are never written.

The nodes share one L2 segment: a bridge inside a network namespace of the
cluster's own (applbuild-<personality>), with their planned MACs, addresses
and VLANs, and one address for applbuild itself (the plan's gateway).
Nothing is added to the host's own network namespace.

The nodes keep running after "cluster up" returns; "cluster down" stops
them and removes the namespace, the taps and the overlays.`,
		Example: `  applbuild build web-cluster --target xen
  applbuild cluster up web-cluster
  applbuild cluster status web-cluster
  applbuild cluster ssh web-cluster n2 -- crm_mon -1
  applbuild cluster kill web-cluster n1      # power pulled: watch the failover
  applbuild cluster start web-cluster n1     # it rejoins
  applbuild cluster down web-cluster`,
	}
	cmd.PersistentFlags().StringVarP(&out, "out", "o", "out", "the build's output `DIR` (as given to applbuild build)")
	load := func(name string) (*cluster.Cluster, error) {
		return cluster.Load(out, name)
	}
	cmd.AddCommand(newClusterUpCmd(g, &out), newClusterStatusCmd(g, load),
		newClusterSSHCmd(g, load), newClusterKillCmd(g, load), newClusterStartCmd(g, load),
		newClusterLinkCmd(g, load), newClusterPartitionCmd(g, load), newClusterDownCmd(g, &out))
	return cmd
}

func newClusterUpCmd(g *globals, out *string) *cobra.Command {
	var (
		target, memory string
		firmware       string
		cpus           int
		timeout        time.Duration
		order          []string
		stagger        time.Duration
		noWait         bool
	)
	cmd := &cobra.Command{
		Use:   "up PERSONALITY",
		Short: "Boot every node of a build and wait until the cluster has formed",
		Long: `up boots every node of OUT/<personality>/<target>, then waits until the
cluster has formed: every node up, every GlusterFS volume started and
mounted wherever the fstab says, every node online in Pacemaker, every
clone on every node, every singleton on exactly one with its floating
address answering, and no failed unit on any node; for a pair with a
quorum device (nfs-ha, mysql-ha) also sbd active and the device's vote
counted on every node. applbuild stands in for the site's corosync-qnetd
on cluster.quorum_device, inside the cluster's network namespace. It
prints each step as it is reached, then where each service runs.

Ctrl-C while it waits stops the wait, not the nodes ("cluster down" does).
If the cluster does not form within --timeout, up says what is missing,
with each failed unit's first error line, and leaves the nodes running to
look at.`,
		Example: `  applbuild cluster up web-cluster
  applbuild cluster up web-cluster --memory 4G --timeout 1h
  applbuild cluster up web-cluster --order n3,n1,n2 --stagger 2m   # late peers
  applbuild cluster up pound-lb --target raw --firmware uefi       # physical disks, through their boot loaders`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			name := args[0]
			var o cluster.Options
			if memory != "" {
				m, err := personalities.ParseSize(memory)
				if err != nil {
					return usageError{fmt.Errorf("--memory %q: %w", memory, err)}
				}
				o.Memory = int64(m)
			}
			o.CPUs = cpus
			if firmware != "" && !slices.Contains(boot.Firmwares, firmware) {
				return usageError{fmt.Errorf("--firmware %q: want %s", firmware, strings.Join(boot.Firmwares, ", "))}
			}
			o.Firmware = firmware
			fmt.Fprintf(g.stderr, "preparing cluster %s from %s/%s/%s\n", name, *out, name, target)
			c, err := cluster.Prepare(ctx, *out, name, target, o)
			if err != nil {
				return err
			}
			names := order
			if len(names) == 0 {
				for _, n := range c.Nodes {
					names = append(names, n.Name)
				}
			}
			for _, n := range c.Nodes {
				if !containsStr(names, n.Name) {
					names = append(names, n.Name)
				}
			}
			start := time.Now()
			for i, nn := range names {
				if i > 0 && stagger > 0 {
					fmt.Fprintf(g.stderr, "waiting %s before the next node\n", stagger)
					select {
					case <-time.After(stagger):
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				n, err := c.Node(nn)
				if err != nil {
					_ = c.Down(context.WithoutCancel(ctx))
					return usageError{err}
				}
				if err := c.Start(ctx, nn); err != nil {
					_ = c.Down(context.WithoutCancel(ctx))
					return err
				}
				fmt.Fprintf(g.stderr, "%s booting: %s, %d MiB, %d vCPU (console: %s/console.log)\n",
					n.Name, n.Address.Addr(), n.Memory>>20, n.CPUs, n.Dir)
			}
			if noWait {
				return nil
			}
			wctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("--timeout %s", timeout))
			defer cancel()
			st, err := c.Wait(wctx, func(d time.Duration, line string) {
				fmt.Fprintf(g.stderr, "[%6s] %s\n", (time.Since(start)).Round(time.Second), line)
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "cluster %s formed in %s\n", name, time.Since(start).Round(time.Second))
			fmt.Fprint(g.stdout, st.String())
			fmt.Fprintf(g.stdout, "\nreach a node: applbuild cluster ssh %s NODE   (Cockpit: https://ADDRESS:9090 inside the namespace %s)\n", name, c.NetNS)
			return nil
		},
	}
	cmd.Flags().StringVar(&target, "target", "xen", "the target the cluster was built for")
	cmd.Flags().StringVar(&firmware, "firmware", "", "raw and usb builds: boot each disk under bios, uefi or uefi-secure (default bios)")
	cmd.Flags().StringVar(&memory, "memory", "", "memory per node (default: the plan's, at least 1G)")
	cmd.Flags().IntVar(&cpus, "cpus", 0, "vCPUs per node (default 1)")
	cmd.Flags().DurationVar(&timeout, "timeout", 45*time.Minute, "how long to wait for the cluster to form")
	cmd.Flags().StringSliceVar(&order, "order", nil, "boot the nodes in this order (default: plan order)")
	cmd.Flags().DurationVar(&stagger, "stagger", 0, "wait this long between two nodes' boots")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "boot the nodes and return at once")
	return cmd
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func newClusterStatusCmd(g *globals, load func(string) (*cluster.Cluster, error)) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status PERSONALITY",
		Short: "Nodes, volumes, resources and where they run, floating addresses",
		Example: `  applbuild cluster status web-cluster
  applbuild cluster status web-cluster --json | jq '.resources'`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := load(args[0])
			if err != nil {
				return err
			}
			st := c.Status(cmd.Context())
			if asJSON {
				b, err := json.MarshalIndent(struct {
					*cluster.Status
					Problems []string `json:"problems"`
				}{st, c.Problems(st)}, "", "  ")
				if err != nil {
					return err
				}
				fmt.Fprintln(g.stdout, string(b))
				return nil
			}
			fmt.Fprint(g.stdout, st.String())
			if probs := c.Problems(st); len(probs) > 0 {
				fmt.Fprintf(g.stdout, "not formed:\n  %s\n", strings.Join(probs, "\n  "))
			} else {
				fmt.Fprintln(g.stdout, "formed")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON, for scripts")
	return cmd
}

func newClusterSSHCmd(g *globals, load func(string) (*cluster.Cluster, error)) *cobra.Command {
	return &cobra.Command{
		Use:   "ssh PERSONALITY NODE [-- COMMAND...]",
		Short: "A root shell on a node (the build's cluster key)",
		Example: `  applbuild cluster ssh web-cluster n2
  applbuild cluster ssh web-cluster n1 -- gluster volume info www`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usageError{errors.New("want PERSONALITY NODE [-- COMMAND...]")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := load(args[0])
			if err != nil {
				return err
			}
			n, err := c.Node(args[1])
			if err != nil {
				return usageError{err}
			}
			argv := c.SSHArgs(n, strings.Join(args[2:], " "))
			x := exec.CommandContext(cmd.Context(), argv[0], argv[1:]...)
			x.Stdin, x.Stdout, x.Stderr = os.Stdin, g.stdout, g.stderr
			// The remote side owns Ctrl-C during an interactive session.
			signal.Ignore(syscall.SIGINT)
			defer signal.Reset(syscall.SIGINT)
			err = x.Run()
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return exitStatus(ee.ExitCode())
			}
			return err
		},
	}
}

// exitStatus passes a remote command's exit status through.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func newClusterKillCmd(g *globals, load func(string) (*cluster.Cluster, error)) *cobra.Command {
	return &cobra.Command{
		Use:     "kill PERSONALITY NODE",
		Short:   "Pull a node's power (QEMU killed, no shutdown), for failover drills",
		Example: `  applbuild cluster kill web-cluster n1`,
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := load(args[0])
			if err != nil {
				return err
			}
			if err := c.Kill(args[1]); err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "%s: power pulled\n", args[1])
			return nil
		},
	}
}

func newClusterStartCmd(g *globals, load func(string) (*cluster.Cluster, error)) *cobra.Command {
	return &cobra.Command{
		Use:     "start PERSONALITY NODE",
		Short:   "Boot a stopped node again, with the disks it had",
		Example: `  applbuild cluster start web-cluster n1`,
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := load(args[0])
			if err != nil {
				return err
			}
			if _, err := c.Node(args[1]); err != nil {
				return usageError{err}
			}
			if err := c.Start(cmd.Context(), args[1]); err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "%s booting\n", args[1])
			return nil
		},
	}
}

func newClusterLinkCmd(g *globals, load func(string) (*cluster.Cluster, error)) *cobra.Command {
	return &cobra.Command{
		Use:   "link PERSONALITY NODE up|down",
		Short: "Cut or restore a node's network cable (not its power), for partition drills",
		Example: `  applbuild cluster link web-cluster n1 down
  applbuild cluster link web-cluster n1 up`,
		Args: exactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[2] != "up" && args[2] != "down" {
				return usageError{fmt.Errorf("link state %q: want up or down", args[2])}
			}
			c, err := load(args[0])
			if err != nil {
				return err
			}
			if err := c.Link(cmd.Context(), args[1], args[2] == "up"); err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "%s: link %s\n", args[1], args[2])
			return nil
		},
	}
}

func newClusterPartitionCmd(g *globals, load func(string) (*cluster.Cluster, error)) *cobra.Command {
	var heal bool
	cmd := &cobra.Command{
		Use:   "partition PERSONALITY NODE [--heal]",
		Short: "Cut a node off from the other nodes (applbuild still reaches it), or join it again",
		Long: `partition moves the node's port to a switch of its own: it loses its peers
and the floating addresses the others hold, as with a cable pulled between
it and their switch, while applbuild (and so "cluster ssh" and "cluster
status") still reaches it, to watch what it does alone. --heal joins it
again. "cluster link NODE down" pulls its only cable instead.`,
		Example: `  applbuild cluster partition web-cluster n1
  applbuild cluster ssh web-cluster n1 -- crm_mon -1    # the minority's own view
  applbuild cluster partition web-cluster n1 --heal`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := load(args[0])
			if err != nil {
				return err
			}
			if err := c.Partition(cmd.Context(), args[1], !heal); err != nil {
				return err
			}
			state := "cut off from the other nodes"
			if heal {
				state = "joined again"
			}
			fmt.Fprintf(g.stderr, "%s: %s\n", args[1], state)
			return nil
		},
	}
	cmd.Flags().BoolVar(&heal, "heal", false, "join the node to the others again")
	return cmd
}

func newClusterDownCmd(g *globals, out *string) *cobra.Command {
	return &cobra.Command{
		Use:     "down PERSONALITY",
		Short:   "Stop every node; remove the namespace, taps, bridge and overlays",
		Example: `  applbuild cluster down web-cluster`,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cluster.DownAll(context.WithoutCancel(cmd.Context()), *out, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "cluster %s is down\n", args[0])
			return nil
		},
	}
}
