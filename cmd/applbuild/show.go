package main

import (
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

// pinIdentity returns the merged YAML with cluster.name set when the files
// left it out. The cluster's name defaults to the personality's, which for
// a file is its file name, so without it the shown spec saved as
// merged.yaml would plan another cluster: new MACs, UUIDs and keys. The
// spec's own tree is not changed.
func pinIdentity(root *yaml.Node, name, cluster string) *yaml.Node {
	if root == nil {
		return nil
	}
	doc := root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if doc.Kind != yaml.MappingNode {
		return root
	}
	out := *doc
	out.Content = append([]*yaml.Node(nil), doc.Content...)
	str := func(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v} }
	if cluster == "" {
		cluster = name
	}
	if c := value(&out, "cluster"); c == nil {
		out.Content = append(out.Content, str("cluster"), &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{str("name"), str(cluster)}})
	} else if c.Kind == yaml.MappingNode && value(c, "name") == nil {
		cc := *c
		cc.Content = append([]*yaml.Node{str("name"), str(cluster)}, c.Content...)
		for i := 0; i < len(out.Content); i += 2 {
			if out.Content[i].Value == "cluster" {
				out.Content[i+1] = &cc
			}
		}
	}
	return &out
}

// value is the value of key in mapping m, or nil.
func value(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

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
			if err := enc.Encode(pinIdentity(s.Node(), s.Name, s.Cluster.Name)); err != nil {
				return err
			}
			return enc.Close()
		},
	}
	f.add(cmd)
	return cmd
}
