package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/applbuild/applbuild/builder/disk"
	"github.com/applbuild/applbuild/rootfs"
)

func newCacheCmd(g *globals) *cobra.Command {
	var dir string
	cache := func() *rootfs.Cache {
		if dir == "" {
			return &rootfs.Cache{Dir: rootfs.DefaultDir()}
		}
		return &rootfs.Cache{Dir: dir}
	}
	cmd := &cobra.Command{
		Use:   "cache ls|prune",
		Short: "List or prune the rootfs cache",
		Long: `The rootfs cache holds one Debian tree (a tarball) per distinct suite,
mirror and package set, built by mmdebstrap on first use and shared by every
personality and node that asks for the same one, plus the downloaded
packages the next build reuses.`,
	}
	cmd.PersistentFlags().StringVar(&dir, "cache-dir", "", "rootfs cache `DIR` (default "+rootfs.DefaultDir()+")")

	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the cached rootfs trees, oldest first",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := cache()
			entries, err := c.List()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "KEY\tSUITE\tPACKAGES\tSIZE\tAGE\tTOOL")
			for _, e := range entries {
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\n", e.Key[:12], e.Request.Suite, len(e.Packages),
					disk.FormatSize(e.Size, true), age(time.Since(e.Created)), e.Tool)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "%d entries in %s\n", len(entries), c.Dir)
			return nil
		},
	}

	var olderThan time.Duration
	prune := &cobra.Command{
		Use:   "prune [--older-than 720h]",
		Short: "Remove cached trees older than --older-than, broken ones and unused packages",
		Example: `  applbuild cache prune
  applbuild cache prune --older-than 0   # everything`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if olderThan < 0 {
				return usageError{fmt.Errorf("--older-than %s: want a positive duration", olderThan)}
			}
			c := cache()
			cut := time.Now().Add(-olderThan)
			freed, err := c.Prune(rootfs.KeepNewerThan(cut))
			fmt.Fprintf(g.stderr, "freed %s in %s\n", disk.FormatSize(freed, false), c.Dir)
			return err
		},
	}
	prune.Flags().DurationVar(&olderThan, "older-than", 720*time.Hour, "remove entries created longer ago than `DURATION`")
	cmd.AddCommand(ls, prune)
	return cmd
}

// age prints a duration the way a person reads a cache listing.
func age(d time.Duration) string {
	switch {
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
