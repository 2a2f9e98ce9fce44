package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List the personalities, one line each",
		Example: "  applbuild list\n  applbuild list --personalities ./my-personalities",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			infos, err := g.library().List()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tNODES\tDESCRIPTION")
			for _, i := range infos {
				fmt.Fprintf(w, "%s\t%d\t%s\n", i.Name, i.Nodes, i.Description)
			}
			return w.Flush()
		},
	}
}
