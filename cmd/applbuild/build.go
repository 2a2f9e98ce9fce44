package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/builder/disk"
	"github.com/applbuild/applbuild/builder/pipeline"
	"github.com/applbuild/applbuild/builder/target"
	"github.com/applbuild/applbuild/internal/outdir"
	"github.com/applbuild/applbuild/internal/progress"
	"github.com/applbuild/applbuild/rootfs"
)

func newBuildCmd(g *globals) *cobra.Command {
	var f specFlags
	var targetName, out, cacheDir, xenDir, group string
	var nodes []string
	cmd := &cobra.Command{
		Use:   "build NAME|FILE --target TARGET",
		Short: "Build every node's images for a target (xen)",
		Long: `build makes the images of every node of a personality for a target:

  OUT/<personality>/<target>/<node>/...   the node's artifacts
  OUT/<personality>/<target>/manifest.json  every file's size and sha256, the
                                          package versions, the inputs' hashes

For --target xen a node gets disk.img (root ext4), swap.img, sdb1.img and
sdb2.img (LVM2 PVs with the gluster bricks) and <node>.cfg for xl create.

The Debian tree comes from the rootfs cache (--cache-dir), built with
mmdebstrap on first use (that needs root and the Debian mirror). Nothing
else needs root, loop devices or mounts. OUT/<personality>/<target> is
replaced as a whole only when the build succeeded: a failed or interrupted
build leaves the previous one untouched. With --node, it holds only those
nodes.

OUT, OUT/<personality> and OUT/<personality>/<target> must each be absent,
empty or made by applbuild (marked by a .applbuild-output file): anything
else is refused (exit 2), never replaced. The images hold private keys and
password hashes: every file is 0600 in 0700 directories, or 0640 and 0750
to the group --group names.`,
		Example: `  applbuild build web-cluster --target xen
  applbuild build web-cluster --target xen --site site.yaml --out /var/tmp/out
  applbuild build web-cluster --target xen --xen-dir /srv/xen --node n1`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if targetName == "" {
				return usageError{fmt.Errorf("build needs --target (targets: %s)", strings.Join(pipeline.TargetNames(), ", "))}
			}
			factory, ok := pipeline.Targets()[targetName]
			if !ok {
				return usageError{fmt.Errorf("unknown --target %q (targets: %s)", targetName, strings.Join(pipeline.TargetNames(), ", "))}
			}
			access, err := outdir.GroupAccess(group)
			if err != nil {
				return usageError{err}
			}
			if xenDir != "" && !filepath.IsAbs(xenDir) {
				return usageError{fmt.Errorf("--xen-dir %q: want an absolute path on the dom0", xenDir)}
			}
			spec, err := f.load(cmd.Context(), g, args[0])
			if err != nil {
				return err
			}
			defaultAdminKey(g, spec)
			pl, err := builder.New(spec)
			if err != nil {
				return err
			}
			for _, w := range pl.Warnings {
				fmt.Fprintln(g.stderr, "warning:", w)
			}
			sel, err := selectNodes(pl, nodes)
			if err != nil {
				return err
			}
			ring, err := g.ring()
			if err != nil {
				return err
			}
			if cacheDir == "" {
				cacheDir = rootfs.DefaultDir()
			}
			pr := progress.New(g.stderr)
			res, err := pipeline.Build(cmd.Context(), pipeline.Options{
				Spec: spec, Plan: pl, Nodes: sel, Target: factory(target.Options{XenDir: xenDir}),
				Out: out, Access: access, Ring: ring, Cache: &rootfs.Cache{Dir: cacheDir},
				Version: version(), Progress: pr,
			})
			if s := pr.Summary(); s != "" {
				fmt.Fprintln(g.stderr, "stages:", s)
			}
			var pe *target.PlanError
			if errors.As(err, &pe) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			return printArtifacts(g, res)
		},
	}
	f.add(cmd)
	cmd.Flags().StringVarP(&targetName, "target", "t", "", "what to build for: "+strings.Join(pipeline.TargetNames(), ", "))
	cmd.Flags().StringVarP(&out, "out", "o", "out", "output `DIR`: artifacts go to DIR/<personality>/<target>")
	cmd.Flags().StringVar(&cacheDir, "cache-dir", "", "rootfs cache `DIR` (default "+rootfs.DefaultDir()+")")
	cmd.Flags().StringVar(&xenDir, "xen-dir", "", "where the images will be on the dom0 (`DIR`/<node>/disk.img) for the xl configs (default: the output directory)")
	cmd.Flags().StringSliceVar(&nodes, "node", nil, "build only these `NODES` (default: all)")
	cmd.Flags().StringVar(&group, "group", "", "let this `GROUP` read the artifacts too (0640 in 0750 instead of 0600 in 0700)")
	return cmd
}

func printArtifacts(g *globals, res *pipeline.Result) error {
	w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(g.stdout, "%s\n", res.Dir)
	fmt.Fprintf(g.stdout, "site secret fingerprint %s\n", res.Manifest.Inputs.SecretFingerprint)
	fmt.Fprintln(w, "FILE\tSIZE\tDATA\t")
	for _, f := range res.Manifest.Files {
		fmt.Fprintf(w, "%s\t%s\t%s\t\n", f.Path, disk.FormatSize(f.Size, false), disk.FormatSize(f.Allocated, false))
	}
	return w.Flush()
}

// version is applbuild's module version and VCS revision, as go build
// stamped them.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev != "" {
		v += " " + rev + dirty
	}
	return v
}
