package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/internal/keys"
	"github.com/applbuild/applbuild/internal/outdir"
	"github.com/applbuild/applbuild/overlays"
)

func newRenderCmd(g *globals) *cobra.Command {
	var f specFlags
	var out, group string
	var nodes []string
	cmd := &cobra.Command{
		Use:   "render NAME|FILE --out DIR",
		Short: "Write every generated file of every node, as it will stand in the image",
		Long: `render writes DIR/<node>/<path> for every file the overlay generators make
(configs, keys, first-boot units), without building anything. DIR is
replaced as a whole only when every node rendered: a failed render leaves
the previous DIR untouched. DIR must be absent, empty or an earlier output
of applbuild (it holds a .applbuild-output file); anything else is refused.
DIR is 0700 (0750 with --group), as it holds private keys; inside it every
file has the mode it will have in the image.

Keys (corosync authkey, ssh keys) derive from the site secret (--secret, by
default ~/.config/applbuild/secret, created on first use) and the cluster's
name and domain, so two renders with the same secret are identical. The
secret's path and fingerprint are printed on stderr.`,
		Example: `  applbuild render web-cluster --out rendered/
  applbuild render ./my-cluster.yaml --site site.yaml --out rendered/ --node n1
  diff -r rendered/n1 rendered/n2`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageError{fmt.Errorf("render needs --out DIR")}
			}
			access, err := outdir.GroupAccess(group)
			if err != nil {
				return usageError{err}
			}
			if err := outdir.Check(out); err != nil {
				return err
			}
			pl, err := f.plan(cmd.Context(), g, args[0])
			if err != nil {
				return err
			}
			ring, err := g.ring()
			if err != nil {
				return err
			}
			sel, err := selectNodes(pl, nodes)
			if err != nil {
				return err
			}
			return outdir.Replace(out, access, func(tmp string) error {
				for _, n := range sel {
					files, err := overlays.Render(pl, n, ring)
					if err != nil {
						return err
					}
					if err := overlays.WriteTree(filepath.Join(tmp, n.Name), files); err != nil {
						return err
					}
					fmt.Fprintf(g.stderr, "%s: %d files\n", n.Name, len(files))
				}
				return nil
			})
		},
	}
	f.add(cmd)
	cmd.Flags().StringVarP(&out, "out", "o", "", "output `DIR` (replaced atomically; absent, empty or an earlier output)")
	cmd.Flags().StringVar(&group, "group", "", "let this `GROUP` read the output too (0750 instead of 0700)")
	cmd.Flags().StringSliceVar(&nodes, "node", nil, "render only these `NODES` (default: all)")
	return cmd
}

// selectNodes returns the plan's nodes named in names, or all of them.
func selectNodes(pl *builder.Plan, names []string) ([]*builder.Node, error) {
	var out []*builder.Node
	if len(names) == 0 {
		for i := range pl.Nodes {
			out = append(out, &pl.Nodes[i])
		}
		return out, nil
	}
	for _, name := range names {
		n := pl.Node(name)
		if n == nil {
			var all []string
			for _, x := range pl.Nodes {
				all = append(all, x.Name)
			}
			return nil, usageError{fmt.Errorf("%s has no node %q (nodes: %v)", pl.Personality, name, all)}
		}
		out = append(out, n)
	}
	return out, nil
}

// ring loads the site secret and makes the key ring, saying on stderr
// which secret it is (its path and fingerprint, never its bytes): a build
// run by another user or through sudo finds another ~/.config, and a
// cluster built with two secrets cannot join.
func (g *globals) ring() (*keys.Ring, error) {
	path := g.secret
	if path == "" {
		path = keys.DefaultPath()
	}
	secret, created, err := keys.LoadOrCreate(path)
	if err != nil {
		if errors.Is(err, keys.ErrBadSecret) {
			return nil, usageError{fmt.Errorf("site secret %w", err)}
		}
		return nil, fmt.Errorf("site secret: %w", err)
	}
	if created {
		fmt.Fprintf(g.stderr, "created a new site secret in %s (keep it: every key of your clusters derives from it)\n", path)
	}
	ring, err := keys.New(secret)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(g.stderr, "site secret %s, fingerprint %s\n", path, ring.Fingerprint())
	return ring, nil
}
