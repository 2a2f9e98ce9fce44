package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/personalities"
)

// specFlags are the flags of every command that loads a personality.
type specFlags struct {
	site string
	set  []string
}

func (f *specFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.site, "site", "", "site `FILE` merged on top of the personality")
	cmd.Flags().StringArrayVar(&f.set, "set", nil, "override one value: `key.path=value` (repeatable), e.g. cluster.memory=1G")
}

// load stops when ctx is done (Ctrl-C).
func (f *specFlags) load(ctx context.Context, g *globals, ref string) (*personalities.Spec, error) {
	return g.library().LoadContext(ctx, ref, personalities.Options{Site: f.site, Set: f.set})
}

func (f *specFlags) plan(ctx context.Context, g *globals, ref string) (*builder.Plan, error) {
	s, err := f.load(ctx, g, ref)
	if err != nil {
		return nil, err
	}
	return builder.New(s)
}
