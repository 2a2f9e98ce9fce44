package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/applbuild/applbuild/builder"
)

func newPlanCmd(g *globals) *cobra.Command {
	var f specFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "plan NAME|FILE",
		Short: "Show the per-node plan: names, addresses, disks, packages, services",
		Example: `  applbuild plan web-cluster
  applbuild plan web-cluster --site site.yaml --json | jq '.nodes[0]'`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pl, err := f.plan(cmd.Context(), g, args[0])
			if err != nil {
				return err
			}
			for _, w := range pl.Warnings {
				fmt.Fprintln(g.stderr, "warning:", w)
			}
			if asJSON {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(pl)
			}
			return printPlan(g.stdout, pl)
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the whole plan as JSON")
	return cmd
}

func printPlan(out io.Writer, pl *builder.Plan) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "personality\t%s (%s)\n", pl.Personality, pl.Description)
	fmt.Fprintf(w, "cluster\t%s, Debian %s from %s\n", pl.Cluster, pl.Suite, pl.Mirror)
	fmt.Fprintf(w, "network\t%s gw %s, nic %s on bridge %s\n", pl.Network.Subnet, pl.Network.Gateway, pl.Network.Interface, pl.Network.Bridge)
	for _, v := range pl.Network.VLANs {
		fmt.Fprintf(w, "vlan\t%s id %d %s (%s)\n", v.Interface, v.ID, v.Subnet, v.Name)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "NODE\tADDRESS\tMAC\tMEMORY\tDISKS")
	for _, n := range pl.Nodes {
		var disks []string
		for _, d := range n.Disks {
			disks = append(disks, fmt.Sprintf("%s %s", d.Name, d.Size))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s (needs %s)\t%s\n", n.FQDN, n.Address, n.MAC, n.Memory, n.MemoryNeeded.Human(), strings.Join(disks, ", "))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "SERVICE\tKIND\tAGENT\tFLOATING IP")
	for _, s := range pl.Services {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", s.Name, s.Kind, s.Agent, s.IP)
	}
	if pl.Gluster != nil {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "VOLUME (gluster %s, replica %d)\tSIZE\tBRICK\tMOUNT\n", pl.Gluster.Mode, pl.Gluster.Replica)
		for _, v := range pl.Gluster.Volumes {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", v.Name, v.Size, v.BrickDir(), v.Mount)
		}
	}
	for _, d := range pl.DRBD {
		fmt.Fprintf(w, "\ndrbd\t%s %s port %d on LV %s, mounted at %s\n", d.Name, d.Device, d.Port, d.LV, d.Mount)
	}
	fmt.Fprintf(w, "\npackages (%d)\t%s\n", len(pl.Packages), strings.Join(pl.Packages, " "))
	return w.Flush()
}
