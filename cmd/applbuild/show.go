package main

import (
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

func newShowCmd(g *globals) *cobra.Command {
	var f specFlags
	cmd := &cobra.Command{
		Use:   "show NAME|FILE",
		Short: "Print the merged spec as YAML (after extends:, the site file and --set)",
		Example: `  applbuild show web-cluster
  applbuild show web-cluster --site site.yaml --set cluster.memory=1G
  applbuild show ./my-cluster.yaml`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := f.load(cmd.Context(), g, args[0])
			if err != nil {
				return err
			}
			enc := yaml.NewEncoder(g.stdout)
			enc.SetIndent(2)
			// The merged YAML tree, not the decoded struct: it shows what
			// the files said (with their comments), not every zero value.
			if err := enc.Encode(s.Node()); err != nil {
				return err
			}
			return enc.Close()
		},
	}
	f.add(cmd)
	return cmd
}
