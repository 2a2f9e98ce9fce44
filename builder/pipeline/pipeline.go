// Package pipeline builds a personality for a target, end to end:
//
//	verify    the target checks the whole Plan; every node's overlay renders
//	rootfs    the cached Debian tree for the plan's packages and the target's
//	extract   the tree, once, into a work directory beside the output
//	<node>    per node: a hard-link copy of the tree, the overlay and the
//	          target's files on it, then the target writes the artifacts
//	manifest  every artifact's size and sha256, the packages, the inputs
//
// Everything lands in a temporary directory beside out/<personality>/<target>
// that replaces it only when the whole build succeeded (internal/outdir); a
// failed or cancelled build leaves the previous output as it was and removes
// its temporary and work directories.
//
// It lives beside package builder rather than in it because it needs the
// overlays and the targets, which both import builder.
package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/builder/target"
	"github.com/applbuild/applbuild/builder/target/raw"
	"github.com/applbuild/applbuild/builder/target/usb"
	"github.com/applbuild/applbuild/builder/target/xen"
	"github.com/applbuild/applbuild/internal/keys"
	"github.com/applbuild/applbuild/internal/outdir"
	"github.com/applbuild/applbuild/internal/progress"
	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/overlays"
	"github.com/applbuild/applbuild/personalities"
	"github.com/applbuild/applbuild/rootfs"
)

// Targets is the registry of targets by name.
func Targets() map[string]target.Factory {
	return map[string]target.Factory{
		xen.Name: xen.New,
		raw.Name: raw.New,
		usb.Name: usb.New,
	}
}

// TargetNames lists the registry, sorted, for help and error messages.
func TargetNames() []string {
	var names []string
	for n := range Targets() {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// RootfsCache is where root trees come from: *rootfs.Cache.
type RootfsCache interface {
	Get(ctx context.Context, req rootfs.Request, progress func(line string)) (*rootfs.Entry, error)
}

// Options is one build.
type Options struct {
	Spec   *personalities.Spec // hashed into the manifest; may be nil
	Plan   *builder.Plan
	Nodes  []*builder.Node // nil: every node of the plan
	Target target.Target
	// Out is the output root: artifacts go to Out/<personality>/<target>.
	// Out and Out/<personality> are claimed (internal/outdir): each must be
	// absent, empty or marked as applbuild's.
	Out string
	// Access is who may read the artifacts (they hold private keys): the
	// user alone, or a group too.
	Access outdir.Access
	// Ring derives the keys the overlay writes.
	Ring *keys.Ring
	// Render makes a node's overlay; nil means overlays.Render with Ring.
	Render func(*builder.Plan, *builder.Node) ([]overlays.File, error)
	// Cache gives the rootfs; Tree, when set, is used instead (a prepared
	// root directory, copied: tests build from a tiny fake tree).
	Cache RootfsCache
	Tree  string
	// Epoch (unix seconds) is stamped wherever a tool would use the clock;
	// 0 means rootfs.DefaultSourceDateEpoch, the rootfs's own clamp.
	Epoch    int64
	Version  string // applbuild's version, for the manifest
	Progress *progress.Reporter
}

// Result is a finished build.
type Result struct {
	Dir      string // out/<personality>/<target>, absolute
	Manifest *Manifest
}

// Build runs the pipeline.
func Build(ctx context.Context, o Options) (_ *Result, err error) {
	pl, t := o.Plan, o.Target
	pr := o.Progress
	if pr == nil {
		pr = progress.Discard()
	}
	epoch := o.Epoch
	if epoch == 0 {
		epoch = rootfs.DefaultSourceDateEpoch
	}
	nodes := o.Nodes
	if len(nodes) == 0 {
		for i := range pl.Nodes {
			nodes = append(nodes, &pl.Nodes[i])
		}
	}
	render := o.Render
	if render == nil {
		render = func(pl *builder.Plan, n *builder.Node) ([]overlays.File, error) {
			return overlays.Render(pl, n, o.Ring)
		}
	}

	// 1. Everything that can be wrong with the plan, before any work.
	st := pr.Start("verify")
	files := map[string][]overlays.File{}
	if a, ok := t.(target.Adjuster); ok {
		a.Adjust(pl)
	}
	err = t.Verify(pl)
	if err == nil {
		err = checkTools(t, pl, o.Tree == "")
	}
	for _, n := range nodes {
		if err != nil {
			break
		}
		files[n.Name], err = nodeFiles(pl, n, t, render)
	}
	st.Done(err)
	if err != nil {
		return nil, err
	}

	// Where the output goes, before the rootfs (minutes on first use): a
	// directory that is not applbuild's is refused, not replaced.
	out, err := filepath.Abs(o.Out)
	if err != nil {
		return nil, err
	}
	final := filepath.Join(out, pl.Personality, t.Name())
	for _, dir := range []string{out, filepath.Dir(final), final} {
		if err := outdir.Check(dir); err != nil {
			return nil, err
		}
	}

	// 2. The root tree.
	var entry *rootfs.Entry
	if o.Tree == "" {
		st = pr.Start("rootfs")
		req := rootfs.Request{Suite: pl.Suite, Mirror: pl.Mirror, SourceDateEpoch: epoch,
			Packages: append(slices.Clone(pl.Packages), t.Packages(pl)...)}
		if s, ok := t.(target.Seeder); ok {
			req.Files = s.RootfsFiles(pl)
		}
		req.Files = append(req.Files, overlays.RootfsFiles(pl)...)
		st.Printf("Debian %s, %d packages requested", pl.Suite, len(req.Packages))
		entry, err = o.Cache.Get(ctx, req, st.Line)
		st.Done(err)
		if err != nil {
			return nil, err
		}
	}

	if err := claim(final, o.Access); err != nil {
		return nil, err
	}
	d, err := outdir.Open(final, o.Access)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := d.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	// The work tree lives beside the output, on its filesystem, so the
	// per-node copies are hard links and the images land where they stay.
	// A full disk is reported with where, how much and what to do. The
	// work tree holds the rootfs once (the nodes' trees are hard links),
	// each node's images about as much again.
	var need int64
	if entry != nil {
		need = entry.Size * int64(1+len(nodes))
	} else {
		need = treeSize(o.Tree) * int64(1+len(nodes))
	}
	free := freeSpace(filepath.Dir(final))
	defer func() { err = noSpace(err, filepath.Dir(final), "--out", need, free) }()
	work, err := d.TempDir("work")
	if err != nil {
		return nil, err
	}
	defer func() {
		if rerr := os.RemoveAll(work); rerr != nil && err == nil {
			err = rerr
		}
	}()

	res := &Result{Dir: final}
	err = d.Replace(func(tmp string) error {
		base := filepath.Join(work, "rootfs")
		st := pr.Start("extract")
		err := prepareBase(ctx, base, entry, o.Tree, epoch)
		if err == nil {
			err = t.CheckTree(pl, base)
		}
		st.Done(err)
		if err != nil {
			return err
		}
		// A node's images are hashed while the next node is built: mke2fs
		// keeps one CPU busy, sha256 over gigabytes of holes another.
		hctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		defer func() { cancel(); wg.Wait() }()
		hashed := make([][]File, len(nodes))
		herrs := make([]error, len(nodes))
		for i, n := range nodes {
			if err := buildNode(ctx, pr, t, pl, n, files[n.Name], base, work, tmp, final, epoch); err != nil {
				return err
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				hashed[i], herrs[i] = hashDir(hctx, tmp, n.Name)
			}()
		}
		st = pr.Start("manifest")
		wg.Wait()
		err = errors.Join(herrs...)
		var m *Manifest
		if err == nil {
			m, err = writeManifest(tmp, o, entry, nodes, epoch, slices.Concat(hashed...))
		}
		if err == nil {
			err = o.Access.Restrict(tmp)
		}
		st.Done(err)
		res.Manifest = m
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// buildTools are the host programs every build runs; extracting a cached
// rootfs adds tar, bootstrapping one the bootstrap tool (rootfs checks that).
var buildTools = []string{"cp", "systemd-sysusers"}

// checkTools finds every program the build will run before it starts, so
// a missing one is reported with its package at once, not after minutes
// of bootstrap and extract.
func checkTools(t target.Target, pl *builder.Plan, rootfsTar bool) error {
	progs := slices.Clone(buildTools)
	if rootfsTar {
		progs = append(progs, "tar")
	}
	if tt, ok := t.(target.Tooled); ok {
		progs = append(progs, tt.Tools(pl)...)
	}
	var errs []error
	for _, p := range progs {
		if _, err := run.Look(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// claim makes the directories above final applbuild's: --out and
// --out/<personality>.
func claim(final string, a outdir.Access) error {
	pdir := filepath.Dir(final)
	if err := outdir.Claim(filepath.Dir(pdir), a); err != nil {
		return err
	}
	return outdir.Claim(pdir, a)
}

// nodeFiles is everything written onto the rootfs for node: the overlay,
// the target's files and an empty machine-id (so every clone of an image
// makes its own on first boot), checked for paths claimed twice.
func nodeFiles(pl *builder.Plan, n *builder.Node, t target.Target, render func(*builder.Plan, *builder.Node) ([]overlays.File, error)) ([]overlays.File, error) {
	files, err := render(pl, n)
	if err != nil {
		return nil, err
	}
	tf, err := t.Files(pl, n)
	if err != nil {
		return nil, fmt.Errorf("%s: target %s: %w", n.Name, t.Name(), err)
	}
	byPath := map[string]overlays.File{}
	for _, f := range files {
		byPath[f.Path] = f
	}
	for _, f := range tf {
		if f.Generator == "" {
			f.Generator = "target " + t.Name()
		}
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path {
			return nil, fmt.Errorf("%s: %s: path %q is not clean and absolute", n.Name, f.Generator, f.Path)
		}
		if prev, dup := byPath[f.Path]; dup {
			if err := overlays.SameDir(prev, f); err != nil {
				return nil, fmt.Errorf("%s: %w", n.Name, err)
			}
			continue
		}
		byPath[f.Path] = f
	}
	if _, ok := byPath["/etc/machine-id"]; !ok {
		byPath["/etc/machine-id"] = overlays.File{Path: "/etc/machine-id", Mode: 0o444, Generator: "pipeline"}
	}
	out := make([]overlays.File, 0, len(byPath))
	for _, f := range byPath {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b overlays.File) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// prepareBase puts the shared root tree at base: the rootfs tarball
// unpacked, or a copy of a given tree, with every mtime clamped so that
// hard links to it never need their times touched.
func prepareBase(ctx context.Context, base string, entry *rootfs.Entry, tree string, epoch int64) error {
	if entry != nil {
		if err := rootfs.Extract(ctx, entry.Tarball, base); err != nil {
			return err
		}
	} else {
		if _, err := run.Output(ctx, "cp", "-a", tree, base); err != nil {
			return fmt.Errorf("copy the root tree: %w", err)
		}
	}
	_, err := clampTimes(base, epoch)
	return err
}

// buildNode makes node's tree as a hard-link copy of base, applies its
// files and hands it to the target. See docs/xen.md for why hard links:
// they are the fastest of the three ways measured, and every write here
// replaces a file instead of changing it, so base stays as unpacked.
func buildNode(ctx context.Context, pr *progress.Reporter, t target.Target, pl *builder.Plan, n *builder.Node,
	files []overlays.File, base, work, tmp, final string, epoch int64) (err error) {
	st := pr.Start(n.Name)
	defer func() { st.Done(err) }()
	tree := filepath.Join(work, n.Name)
	defer func() {
		if rerr := os.RemoveAll(tree); rerr != nil && err == nil {
			err = rerr
		}
	}()
	st.Printf("tree: %d files from the overlay", len(files))
	if _, err := run.Output(ctx, "cp", "-a", "--link", base, tree); err != nil {
		return fmt.Errorf("%s: link the root tree: %w", n.Name, err)
	}
	if err := applyFiles(tree, files); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	if err := runSysusers(ctx, tree, epoch); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	if err := applyOwners(tree, files); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	if _, err := clampTimes(tree, epoch); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	dir := filepath.Join(tmp, n.Name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	return t.Write(ctx, target.Input{
		Plan: pl, Node: n, Tree: tree, Dir: dir, Final: filepath.Join(final, n.Name), Time: epoch,
		Step: st.Step,
	})
}

// Manifest is manifest.json: what was built from what. It holds no
// timestamps, so two builds of the same inputs write the same bytes.
type Manifest struct {
	Applbuild   string           `json:"applbuild"`
	Personality string           `json:"personality"`
	Target      string           `json:"target"`
	Nodes       []string         `json:"nodes"`
	Inputs      Inputs           `json:"inputs"`
	Files       []File           `json:"files"`
	Packages    []rootfs.Package `json:"packages"`
}

// Inputs are the hashes of everything the artifacts were made from.
type Inputs struct {
	PlanSHA256 string `json:"plan_sha256"`
	SpecSHA256 string `json:"spec_sha256,omitempty"`
	// SecretFingerprint names the site secret without revealing it
	// (keys.Ring.Fingerprint): two builds of one cluster with the same
	// fingerprint have the same keys.
	SecretFingerprint string `json:"secret_fingerprint,omitempty"`
	RootfsKey         string `json:"rootfs_key,omitempty"`
	RootfsSHA256      string `json:"rootfs_sha256,omitempty"`
	RootfsTool        string `json:"rootfs_tool,omitempty"`
	SourceDateEpoch   int64  `json:"source_date_epoch"`
}

// File is one artifact. Allocated counts the 4 KiB blocks that are not all
// zeros: what a sparse copy stores, whatever filesystem holds the file
// (st_blocks would differ between ext4, xfs and tmpfs).
type File struct {
	Path      string `json:"path"`
	Size      int64  `json:"size"`
	Allocated int64  `json:"allocated"`
	SHA256    string `json:"sha256"`
}

// ManifestName is the manifest's file name in the output directory.
const ManifestName = "manifest.json"

func writeManifest(dir string, o Options, entry *rootfs.Entry, nodes []*builder.Node, epoch int64, files []File) (*Manifest, error) {
	m := &Manifest{Applbuild: o.Version, Personality: o.Plan.Personality, Target: o.Target.Name()}
	for _, n := range nodes {
		m.Nodes = append(m.Nodes, n.Name)
	}
	var err error
	if m.Inputs.PlanSHA256, err = jsonSHA256(o.Plan); err != nil {
		return nil, err
	}
	if o.Spec != nil {
		if m.Inputs.SpecSHA256, err = jsonSHA256(o.Spec); err != nil {
			return nil, err
		}
	}
	if o.Ring != nil {
		m.Inputs.SecretFingerprint = o.Ring.Fingerprint()
	}
	m.Inputs.SourceDateEpoch = epoch
	if entry != nil {
		m.Inputs.RootfsKey, m.Inputs.RootfsSHA256, m.Inputs.RootfsTool = entry.Key, entry.SHA256, entry.Tool
		m.Packages = entry.Packages
	}
	m.Files = files
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestName), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	// The plan itself, beside the images: what `applbuild cluster` checks
	// a running cluster against (its services, volumes and addresses), the
	// same plan the images were made from whatever --site and --set said.
	pb, err := json.MarshalIndent(o.Plan, "", "  ")
	if err != nil {
		return nil, err
	}
	return m, os.WriteFile(filepath.Join(dir, PlanName), append(pb, '\n'), 0o644)
}

// PlanName is the plan's file name in the output directory.
const PlanName = "plan.json"

func jsonSHA256(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}
