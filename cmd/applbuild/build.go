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
	"github.com/applbuild/applbuild/personalities"
	"github.com/applbuild/applbuild/rootfs"
)

func newBuildCmd(g *globals) *cobra.Command {
	var f specFlags
	var targetName, out, cacheDir, xenDir, group, size string
	var nodes, formats []string
	cmd := &cobra.Command{
		Use:   "build NAME|FILE --target TARGET",
		Short: "Build every node's images for a target (xen, raw, usb)",
		Long: `build makes the images of every node of a personality for a target:

  OUT/<personality>/<target>/<node>/...   the node's artifacts
  OUT/<personality>/<target>/manifest.json  every file's size and sha256, the
                                          package versions, the inputs' hashes

For --target xen a node gets disk.img (root ext4), swap.img, sdb1.img and
sdb2.img (LVM2 PVs with the gluster bricks) and <node>.cfg for xl create.

For --target raw a node gets <node>.img: one GPT disk that boots by BIOS
and by UEFI, Secure Boot included (Debian's signed shim, GRUB and kernel),
with its swap, root and LVM2 PVs as partitions; dd it to a disk, or boot it
in any hypervisor (--format qcow2, vmdk or vdi converts it too). Test it
with applbuild boot OUT/<personality>/raw/<node>/<node>.img --firmware uefi.

For --target usb a node gets <node>.img, <node>.img.xz, <node>.img.bmap
and SHA256SUMS: a stick image with a read-only squashfs root (Debian's
live-boot) and a data partition that takes every write and grows to the
end of the stick on the first boot. Flash it with applbuild flash.

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
  applbuild build web-cluster --target xen --xen-dir /srv/xen --node n1
  applbuild build scm --target raw
  applbuild build pound-lb --target raw --format qcow2,vmdk
  applbuild build pound-lb --target usb --size 4G`,
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
			var sizeBytes int64
			if size != "" {
				if targetName != "usb" {
					return usageError{fmt.Errorf("--size is for --target usb (the stick's size)")}
				}
				sz, err := personalities.ParseSize(size)
				if err != nil || sz <= 0 || int64(sz)%(1<<20) != 0 {
					return usageError{fmt.Errorf("--size %q: want a size in whole MiB, such as 4G or 3800M", size)}
				}
				sizeBytes = int64(sz)
			}
			if len(formats) > 0 && targetName != "raw" {
				return usageError{fmt.Errorf("--format is for --target raw (a %s build writes its own formats)", targetName)}
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
				Spec: spec, Plan: pl, Nodes: sel, Target: factory(target.Options{XenDir: xenDir, Formats: formats, Size: sizeBytes}),
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
	cmd.Flags().StringVar(&size, "size", "", "the stick's `SIZE` for --target usb (default: the smallest stick that holds the image)")
	cmd.Flags().StringSliceVar(&formats, "format", nil, "also write each raw disk as `FORMAT`: qcow2, vmdk or vdi (repeatable, or comma-separated; converted by qemu-img)")
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
