package main

import (
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

func (f *specFlags) load(g *globals, ref string) (*personalities.Spec, error) {
	return g.library().Load(ref, personalities.Options{Site: f.site, Set: f.set})
}

func (f *specFlags) plan(g *globals, ref string) (*builder.Plan, error) {
	s, err := f.load(g, ref)
	if err != nil {
		return nil, err
	}
	return builder.New(s)
}
