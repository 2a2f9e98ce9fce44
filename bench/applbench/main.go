// Command applbench measures applbuild against its peers on this machine,
// in one run, and writes docs/benchmarks.md. `make bench` runs it through
// bench/run.sh.
//
// What it measures, all of web-cluster for the Xen target unless said:
//
//   - a cold build (empty rootfs cache; the .debs come from a warm pool, as
//     the mirror's speed is not what is measured), once truly cold too;
//   - floor A: mmdebstrap of the same package set with the same options;
//   - warm rebuilds of the three nodes after a config change;
//   - floor B: `mke2fs -d` of the same tree with MakeExt4's flags, × nodes;
//   - bytes: apparent, allocated and written;
//   - xen-tools' xen-create-image of one comparable node, against
//     applbuild's one-node builds.
//
// Everything it makes lives in a run directory under -dir, removed at the
// end, on failure and on interrupt, with any loop device or mount left
// under it; only the .deb pool (-dir/debs) and the logs (-dir/logs) stay.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/builder/disk"
	"github.com/applbuild/applbuild/builder/pipeline"
	"github.com/applbuild/applbuild/builder/target"
	"github.com/applbuild/applbuild/rootfs"
)

type config struct {
	bin, repo, dir, out string
	personality         string
	baseSpec            string
	runs, coldRuns      int
	xtRuns              int
	trulyCold, xenTools bool
	physical            string
	clusters            string
}

func main() {
	// Hidden: run MakeExt4 alone, so the bench can measure it as a process.
	if len(os.Args) > 1 && os.Args[1] == "makeext4" {
		if err := makeExt4(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "makeext4:", err)
			os.Exit(1)
		}
		return
	}
	// Hidden: the flash row alone, on a given image: "flash BIN IMG DIR RUNS".
	if len(os.Args) > 1 && os.Args[1] == "flash" {
		if err := flashOnly(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "flash:", err)
			os.Exit(1)
		}
		return
	}
	// Hidden: the cluster drills alone: "clusters REPO DIR P1,P2".
	if len(os.Args) > 1 && os.Args[1] == "clusters" {
		if err := clustersOnly(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "clusters:", err)
			os.Exit(1)
		}
		return
	}
	// Hidden: the physical rows alone: "physical BIN REPO DIR PERSONALITY RUNS".
	if len(os.Args) > 1 && os.Args[1] == "physical" {
		if err := physicalOnly(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "physical:", err)
			os.Exit(1)
		}
		return
	}
	var c config
	flag.StringVar(&c.bin, "bin", "bin/applbuild", "the applbuild binary to measure")
	flag.StringVar(&c.repo, "repo", ".", "the applbuild source tree (for versions and builder/disk/ext4.go)")
	flag.StringVar(&c.dir, "dir", "/var/tmp/applbuild-bench", "bench directory: the .deb pool, the logs and the run's scratch")
	flag.StringVar(&c.out, "out", "docs/benchmarks.md", "the report to write")
	flag.StringVar(&c.personality, "personality", "web-cluster", "the cluster to measure")
	flag.StringVar(&c.baseSpec, "base-spec", "bench/base-node.yaml", "the one-node spec compared with xen-create-image")
	flag.IntVar(&c.runs, "runs", 3, "repetitions of the short measurements (warm rebuilds, mke2fs, one-node builds)")
	flag.IntVar(&c.coldRuns, "cold-runs", 2, "repetitions of the cold build and of mmdebstrap")
	flag.IntVar(&c.xtRuns, "xt-runs", 2, "repetitions of xen-create-image and of applbuild's cold one-node build")
	flag.BoolVar(&c.trulyCold, "truly-cold", true, "also build once with no .debs at all (always done when the pool is empty)")
	flag.BoolVar(&c.xenTools, "xen-tools", true, "measure xen-create-image")
	flag.StringVar(&c.physical, "physical", "scm", "the one-node personality measured as a raw disk and a stick (\"\": none)")
	flag.StringVar(&c.clusters, "clusters", "web-cluster,mysql-ha,nfs-ha", "the personalities whose cluster drills (the e2e tests) are timed, comma-separated: mysql-ha, nfs-ha, web-cluster (\"\": none)")
	from := flag.String("from", "", "write the report from a results.json a run saved, measuring nothing")
	flag.Parse()
	if *from != "" {
		if err := reportFrom(*from, c.out); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// results is everything the report shows.
type results struct {
	Started, Finished time.Time
	Machine           [][2]string
	Versions          [][2]string
	Load              []float64
	Personality       string
	Dir               string

	Request       rootfs.Request
	TargetPkgs    []string
	PoolBefore    int
	PoolAfter     int
	TrulyCold     *sample
	TrulyColdWhy  string
	Cold, FloorA  []*sample
	FloorATar     int64
	Extract       *sample
	Warm          []*sample
	WarmSets      []string
	WarmChanged   bool
	FloorB        [][]*sample // per run, per node
	MakeExt4      []*sample   // builder/disk.MakeExt4 of the same tree, one node
	LinkedMke2fs  []*sample   // mke2fs -d of a hard-link copy of the tree, one node
	FloorBImg     fileSize    // one node's root image
	FloorBUsed    int64
	Nodes         []string
	RootSize      int64
	Bytes         map[string]fileSize
	ByteCounts    map[string]int
	WarmRootUsed  int64
	WarmPackages  int
	ApplbuildVer  string
	XT            []*sample
	XTErr         string
	XTSizes       map[string]fileSize
	XTPackages    int
	XTUsed        int64
	BaseCold      []*sample
	BaseWarm      []*sample
	BaseSizes     map[string]fileSize
	BasePackages  int
	BaseUsed      int64
	BaseRequested int
	N1Warm        []*sample
	N1Sizes       map[string]fileSize
	Flash         *flashResults
	Physical      *physResults
	Clusters      *clusterResults
	ClusterOrder  []string
}

// manifest is the part of manifest.json the bench reads.
type manifest struct {
	Applbuild string `json:"applbuild"`
	Inputs    struct {
		PlanSHA256 string `json:"plan_sha256"`
	} `json:"inputs"`
	Packages []json.RawMessage `json:"packages"`
}

const xtHost = "applbench-xt"

func bench(ctx context.Context, c config) (err error) {
	if c.runs < 1 || c.coldRuns < 1 || c.xtRuns < 1 {
		return errors.New("-runs, -cold-runs and -xt-runs must be at least 1")
	}
	if c.clusters != "" {
		for _, p := range strings.Split(c.clusters, ",") {
			if _, ok := clusterTests[p]; !ok {
				return fmt.Errorf("-clusters: no cluster drill for %q (have mysql-ha, nfs-ha, web-cluster)", p)
			}
		}
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root (mmdebstrap, tar -x of a rootfs, xen-create-image)")
	}
	for _, p := range []string{"/usr/bin/time", "mmdebstrap", "mke2fs", "dumpe2fs", "debugfs", "tar", "unshare", "losetup"} {
		if _, err := exec.LookPath(p); err != nil {
			return fmt.Errorf("%s is missing (make deps-bench)", p)
		}
	}
	for _, p := range []*string{&c.bin, &c.repo, &c.dir, &c.out, &c.baseSpec} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
	}
	res := &results{Started: time.Now().UTC(), Personality: c.personality, Dir: c.dir}

	// Scratch: one run directory, removed whatever happens.
	pool := filepath.Join(c.dir, "debs")
	logs := filepath.Join(c.dir, "logs")
	if err := os.MkdirAll(pool, 0o755); err != nil {
		return err
	}
	if err := os.RemoveAll(logs); err != nil {
		return err
	}
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp(c.dir, "run-")
	if err != nil {
		return err
	}
	// apt's sandbox user must reach the chroots below it.
	if err := os.Chmod(work, 0o755); err != nil {
		return err
	}
	xtLogDirExisted := exists("/var/log/xen-tools")
	defer func() {
		cerr := cleanup(work)
		removeXTLogs(xtLogDirExisted)
		if cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleanup: %w", cerr))
		}
	}()
	r := &runner{ctx: ctx, logs: logs, tmp: work}

	stopLoad := sampleLoad(&res.Load)
	defer stopLoad()

	// The package set: the plan's plus the target's, normalized as the
	// rootfs cache does before it calls mmdebstrap.
	planJSON, err := r.output(c.bin, "plan", c.personality, "--json")
	if err != nil {
		return err
	}
	var pl builder.Plan
	if err := json.Unmarshal([]byte(planJSON), &pl); err != nil {
		return fmt.Errorf("plan --json: %w", err)
	}
	factory, ok := pipeline.Targets()["xen"]
	if !ok {
		return errors.New("no xen target")
	}
	res.TargetPkgs = factory(target.Options{}).Packages(&pl)
	req, err := rootfs.Request{Suite: pl.Suite, Mirror: pl.Mirror, SourceDateEpoch: rootfs.DefaultSourceDateEpoch,
		Packages: append(slices.Clone(pl.Packages), res.TargetPkgs...)}.Normalize()
	if err != nil {
		return err
	}
	res.Request = req
	for _, n := range pl.Nodes {
		res.Nodes = append(res.Nodes, n.Name)
	}
	res.Machine = machine(r, c.dir)
	res.Versions = versions(r, c.repo)
	res.PoolBefore = countDebs(pool)

	build := func(name, spec, out, cache string, extra ...string) (*sample, error) {
		args := append([]string{c.bin, "build", spec, "--target", "xen", "--out", out, "--cache-dir", cache}, extra...)
		return r.measure(name, cmdSpec{Args: args, Dir: work})
	}
	freshCache := func(cache string, seed bool) error {
		if err := os.RemoveAll(cache); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(cache, "debs"), 0o755); err != nil {
			return err
		}
		if seed {
			_, err := linkDebs(pool, filepath.Join(cache, "debs"))
			return err
		}
		return nil
	}
	harvest := func(cache string) error {
		_, err := linkDebs(filepath.Join(cache, "debs"), pool)
		return err
	}
	readManifest := func(dir string) (*manifest, error) {
		b, err := os.ReadFile(filepath.Join(dir, pipeline.ManifestName))
		if err != nil {
			return nil, err
		}
		var m manifest
		return &m, json.Unmarshal(b, &m)
	}

	// 1. Truly cold: no rootfs, no .debs.
	if c.trulyCold || res.PoolBefore == 0 {
		res.TrulyColdWhy = "requested"
		if res.PoolBefore == 0 {
			res.TrulyColdWhy = "the .deb pool was empty"
		}
		cache, out := filepath.Join(work, "cache-tc"), filepath.Join(work, "out-tc")
		if err := freshCache(cache, false); err != nil {
			return err
		}
		if res.TrulyCold, err = build("truly cold build", c.personality, out, cache); err != nil {
			return err
		}
		if err := harvest(cache); err != nil {
			return err
		}
		if err := errors.Join(os.RemoveAll(cache), os.RemoveAll(out)); err != nil {
			return err
		}
	}

	// 2. Cold builds and floor A, alternating which goes first.
	cache, out := filepath.Join(work, "cache"), filepath.Join(work, "out")
	cold := func(i int) error {
		if err := freshCache(cache, true); err != nil {
			return err
		}
		if err := os.RemoveAll(out); err != nil {
			return err
		}
		s, err := build(fmt.Sprintf("cold build %d", i), c.personality, out, cache)
		if err != nil {
			return err
		}
		res.Cold = append(res.Cold, s)
		return harvest(cache)
	}
	floorA := func(i int) error {
		d := filepath.Join(work, "floor-a")
		if err := os.RemoveAll(d); err != nil {
			return err
		}
		tmp := filepath.Join(d, "tmp")
		if err := os.MkdirAll(filepath.Join(d, "debs"), 0o755); err != nil {
			return err
		}
		if err := os.MkdirAll(tmp, 0o755); err != nil {
			return err
		}
		if err := os.Chmod(d, 0o755); err != nil {
			return err
		}
		if _, err := linkDebs(pool, filepath.Join(d, "debs")); err != nil {
			return err
		}
		s, err := r.measure(fmt.Sprintf("floor A mmdebstrap %d", i), cmdSpec{
			Args: rootfs.Command(req, tmp, filepath.Join(d, "debs")),
			Env:  []string{"SOURCE_DATE_EPOCH=" + strconv.FormatInt(req.SourceDateEpoch, 10), "TMPDIR=" + tmp},
		})
		if err != nil {
			return err
		}
		res.FloorA = append(res.FloorA, s)
		if fi, err := os.Stat(filepath.Join(tmp, "rootfs.tar")); err == nil {
			res.FloorATar = fi.Size()
		}
		return os.RemoveAll(d)
	}
	for i := 1; i <= c.coldRuns; i++ {
		steps := []func(int) error{floorA, cold}
		if i%2 == 0 {
			steps = []func(int) error{cold, floorA}
		}
		for _, f := range steps {
			if err := f(i); err != nil {
				return err
			}
		}
	}
	outDir := filepath.Join(out, pl.Personality, "xen")
	m, err := readManifest(outDir)
	if err != nil {
		return err
	}
	res.ApplbuildVer = m.Applbuild
	prevPlan := m.Inputs.PlanSHA256

	// 3 and 4. Warm rebuilds after a config change, alternating with floor
	// B: mke2fs -d of the same rootfs tree, as MakeExt4 calls it, per node.
	tarballs, _ := filepath.Glob(filepath.Join(cache, "*", "rootfs.tar"))
	if len(tarballs) != 1 {
		return fmt.Errorf("want one rootfs.tar in the cache, found %d", len(tarballs))
	}
	fb := filepath.Join(work, "floor-b")
	tree := filepath.Join(fb, "tree")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		return err
	}
	if res.Extract, err = r.measure("extract the rootfs (tar -x, as rootfs.Extract)", cmdSpec{Args: []string{
		"tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "--same-owner", "--same-permissions",
		"-C", tree, "-xf", tarballs[0]}}); err != nil {
		return err
	}
	conf, err := mke2fsConf(filepath.Join(c.repo, "builder", "disk", "ext4.go"))
	if err != nil {
		return err
	}
	confPath := filepath.Join(fb, "mke2fs.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return err
	}
	// MakeExt4's mke2fs call (builder/disk/ext4.go), flag for flag.
	mke2fs := func(name string, d builder.Disk, src, img string) (*sample, error) {
		if err := sparse(img, res.RootSize); err != nil {
			return nil, err
		}
		return r.measure(name, cmdSpec{
			Args: []string{"mke2fs", "-t", "ext4", "-T", "applbuild", "-F", "-q", "-b", "4096",
				"-U", d.UUID,
				"-E", "hash_seed=" + d.UUID + ",root_owner=0:0,nodiscard,lazy_itable_init=0,lazy_journal_init=0",
				"-L", d.Label, "-d", src, img},
			Env: []string{"MKE2FS_CONFIG=" + confPath,
				"E2FSPROGS_FAKE_TIME=" + strconv.FormatInt(req.SourceDateEpoch, 10), "LC_ALL=C"},
		})
	}
	// A node's tree is a hard-link copy: every file has st_nlink > 1,
	// which mke2fs -d handles with a link table; measured apart.
	linked := filepath.Join(fb, "tree-linked")
	if _, err := r.output("cp", "-a", "--link", tree, linked); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	profile := func(i int) error {
		d, _ := rootDisk(&pl.Nodes[0])
		img := filepath.Join(fb, "profile.img")
		s, err := mke2fs(fmt.Sprintf("profile: mke2fs -d of a hard-linked tree %d", i), d, linked, img)
		if err != nil {
			return err
		}
		res.LinkedMke2fs = append(res.LinkedMke2fs, s)
		if err := os.Remove(img); err != nil {
			return err
		}
		s, err = r.measure(fmt.Sprintf("profile: MakeExt4 %d", i), cmdSpec{Args: []string{self, "makeext4",
			img, tree, d.UUID, d.Label, strconv.FormatInt(res.RootSize, 10), strconv.FormatInt(req.SourceDateEpoch, 10)}})
		if err != nil {
			return err
		}
		res.MakeExt4 = append(res.MakeExt4, s)
		return os.Remove(img)
	}
	floorB := func(i int) error {
		var run []*sample
		for _, n := range pl.Nodes {
			d, ok := rootDisk(&n)
			if !ok {
				return fmt.Errorf("%s: no root disk in the plan", n.Name)
			}
			res.RootSize = int64(d.Size) / 4096 * 4096
			img := filepath.Join(fb, n.Name+".img")
			s, err := mke2fs(fmt.Sprintf("floor B mke2fs -d %s %d", n.Name, i), d, tree, img)
			if err != nil {
				return err
			}
			run = append(run, s)
			if i == 1 && len(run) == 1 {
				if res.FloorBImg, err = sizeOf(img); err != nil {
					return err
				}
				if res.FloorBUsed, err = ext4Used(r, img); err != nil {
					return err
				}
			}
			if err := os.Remove(img); err != nil {
				return err
			}
		}
		res.FloorB = append(res.FloorB, run)
		return profile(i)
	}
	res.WarmChanged = true
	for i := 1; i <= c.runs; i++ {
		set := "cluster.memory=" + []string{"1G", "2G"}[(i-1)%2]
		s, err := build(fmt.Sprintf("warm rebuild %d (--set %s)", i, set), c.personality, out, cache, "--set", set)
		if err != nil {
			return err
		}
		res.Warm, res.WarmSets = append(res.Warm, s), append(res.WarmSets, set)
		m, err := readManifest(outDir)
		if err != nil {
			return err
		}
		if m.Inputs.PlanSHA256 == prevPlan {
			res.WarmChanged = false
		}
		prevPlan = m.Inputs.PlanSHA256
		res.WarmPackages = len(m.Packages)
		if err := floorB(i); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(fb); err != nil {
		return err
	}

	// 5. Bytes of the last warm output.
	if res.Bytes, res.ByteCounts, err = kindSizes(outDir); err != nil {
		return err
	}
	if len(res.Nodes) > 0 {
		if res.WarmRootUsed, err = ext4Used(r, filepath.Join(outDir, res.Nodes[0], "disk.img")); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}

	// 6. One node: xen-create-image against applbuild.
	baseCache, baseOut := filepath.Join(work, "cache-base"), filepath.Join(work, "out-base")
	xtOK := c.xenTools
	if _, err := exec.LookPath("xen-create-image"); err != nil && xtOK {
		res.XTErr = "xen-create-image is not installed"
		xtOK = false
	}
	for i := 1; i <= c.xtRuns; i++ {
		if xtOK {
			if err := xenCreateImage(r, res, work, pool, pl.Mirror, i); err != nil {
				if ctx.Err() != nil {
					return err
				}
				res.XTErr = err.Error()
				xtOK = false
			}
		}
		if err := freshCache(baseCache, true); err != nil {
			return err
		}
		if err := os.RemoveAll(baseOut); err != nil {
			return err
		}
		s, err := build(fmt.Sprintf("one node, cold: base-node %d", i), c.baseSpec, baseOut, baseCache)
		if err != nil {
			return err
		}
		res.BaseCold = append(res.BaseCold, s)
		if err := harvest(baseCache); err != nil {
			return err
		}
	}
	for i := 1; i <= c.runs; i++ {
		set := "cluster.memory=" + []string{"512M", "1G"}[(i-1)%2]
		s, err := build(fmt.Sprintf("one node, warm: base-node %d (--set %s)", i, set), c.baseSpec, baseOut, baseCache, "--set", set)
		if err != nil {
			return err
		}
		res.BaseWarm = append(res.BaseWarm, s)
	}
	baseDirs, _ := filepath.Glob(filepath.Join(baseOut, "*", "xen"))
	if len(baseDirs) != 1 {
		return fmt.Errorf("base-node output: want one */xen under %s, found %d", baseOut, len(baseDirs))
	}
	if res.BaseSizes, _, err = kindSizes(baseDirs[0]); err != nil {
		return err
	}
	if bm, err := readManifest(baseDirs[0]); err == nil {
		res.BasePackages = len(bm.Packages)
	}
	if imgs, _ := filepath.Glob(filepath.Join(baseDirs[0], "*", "disk.img")); len(imgs) == 1 {
		if res.BaseUsed, err = ext4Used(r, imgs[0]); err != nil {
			return err
		}
	}
	if bp, err := r.output(c.bin, "plan", c.baseSpec, "--json"); err == nil {
		var bpl builder.Plan
		if json.Unmarshal([]byte(bp), &bpl) == nil {
			res.BaseRequested = len(bpl.Packages)
		}
	}
	if err := errors.Join(os.RemoveAll(baseCache), os.RemoveAll(baseOut)); err != nil {
		return err
	}
	n1Out := filepath.Join(work, "out-n1")
	for i := 1; i <= c.runs; i++ {
		set := "cluster.memory=" + []string{"1G", "2G"}[(i-1)%2]
		s, err := build(fmt.Sprintf("one node, warm: %s --node n1 %d (--set %s)", c.personality, i, set), c.personality, n1Out, cache, "--node", res.Nodes[0], "--set", set)
		if err != nil {
			return err
		}
		res.N1Warm = append(res.N1Warm, s)
	}
	if res.N1Sizes, _, err = kindSizes(filepath.Join(n1Out, pl.Personality, "xen")); err != nil {
		return err
	}

	// 7. Flash: n1's root image into a file, with and without its bmap
	// (from the one-node output: the three-node one is gone by now).
	n1Img := filepath.Join(n1Out, pl.Personality, "xen", res.Nodes[0], "disk.img")
	if res.Flash, err = benchFlash(ctx, r, c.bin, res.Nodes[0]+"'s root image", n1Img, work, c.runs); err != nil {
		return err
	}

	// 8. The physical targets: one personality as a raw disk and a stick.
	if c.physical != "" {
		pconf := filepath.Join(work, "physical-mke2fs.conf")
		if err := os.WriteFile(pconf, []byte(conf), 0o644); err != nil {
			return err
		}
		if res.Physical, err = benchPhysical(physEnv{r: r, bin: c.bin, work: work, confPath: pconf,
			epoch: req.SourceDateEpoch, runs: min(c.runs, 2),
			seed: func(cache string) error { return freshCache(cache, true) }, harvest: harvest}, c.physical); err != nil {
			return err
		}
	}

	// 9. The cluster drills: formation, failover and rejoin of whole
	// clusters, the e2e tests CI runs (they build with the repository's
	// own applbuild and the shared rootfs cache).
	if c.clusters != "" {
		res.ClusterOrder = strings.Split(c.clusters, ",")
		if res.Clusters, err = benchClusters(ctx, c.repo, logs, res.ClusterOrder); err != nil {
			return err
		}
	}

	res.PoolAfter = countDebs(pool)
	stopLoad()
	res.Finished = time.Now().UTC()
	// Saved first, so a report can be rewritten without measuring again.
	saved := filepath.Join(logs, "results.json")
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	if err := os.WriteFile(saved, b, 0o644); err != nil {
		return err
	}
	if err := writeReport(res, c.out); err != nil {
		return fmt.Errorf("%w (the figures are in %s: -from %s)", err, saved, saved)
	}
	fmt.Fprintf(os.Stderr, "bench: wrote %s in %s; logs in %s\n", c.out, res.Finished.Sub(res.Started).Round(time.Second), logs)
	return nil
}

func reportFrom(path, out string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var res results
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return writeReport(&res, out)
}

// makeExt4 is the hidden "makeext4 IMG TREE UUID LABEL SIZE TIME" mode:
// builder/disk.MakeExt4 as the xen target calls it for a root disk.
func makeExt4(args []string) error {
	if len(args) != 6 {
		return errors.New("want IMG TREE UUID LABEL SIZE TIME")
	}
	sz, err1 := strconv.ParseInt(args[4], 10, 64)
	t, err2 := strconv.ParseInt(args[5], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	return disk.MakeExt4(context.Background(), disk.Ext4Options{
		Path: args[0], SourceDir: args[1], UUID: args[2], Label: args[3], Size: sz, Time: t,
		Name: "root filesystem",
	})
}

var confRE = regexp.MustCompile("(?s)const mke2fsConf = `(.*?)`")

// mke2fsConf reads MakeExt4's mke2fs.conf from its source, so floor B
// formats with exactly the configuration the builder uses.
func mke2fsConf(src string) (string, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	m := confRE.FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("%s: no mke2fsConf constant (did MakeExt4 change?)", src)
	}
	return string(m[1]), nil
}

func rootDisk(n *builder.Node) (builder.Disk, bool) {
	for _, d := range n.Disks {
		if d.Role == builder.RoleRoot {
			return d, true
		}
	}
	return builder.Disk{}, false
}

func sparse(path string, n int64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if err := f.Truncate(n); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// xenCreateImage runs xen-tools for one node like base-node: trixie by
// debootstrap, 2G ext4 root and 128M swap as sparse image files, no boot.
// It runs in a private mount namespace, so its loop mount cannot outlive
// it, with its temporary directory, its .deb cache (seeded from the pool,
// as applbuild's is) and its xl config under the run directory; --nohosts
// keeps it off the host's /etc/hosts. Its log in /var/log/xen-tools is
// copied to the bench logs and removed.
func xenCreateImage(r *runner, res *results, work, pool, mirror string, i int) error {
	d := filepath.Join(work, "xt")
	if err := os.RemoveAll(d); err != nil {
		return err
	}
	for _, sub := range []string{"img", "cfg", "debs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o755); err != nil {
			return err
		}
	}
	if _, err := linkDebs(pool, filepath.Join(d, "debs")); err != nil {
		return err
	}
	s, err := r.measure(fmt.Sprintf("xen-create-image %d", i), cmdSpec{
		Args: []string{"unshare", "--mount", "--propagation", "private", "--",
			"xen-create-image", "--hostname=" + xtHost, "--dist=trixie", "--mirror=" + mirror,
			"--size=2G", "--swap=128M", "--memory=256M", "--fs=ext4", "--image=sparse",
			"--dir=" + filepath.Join(d, "img"), "--output=" + filepath.Join(d, "cfg"),
			"--cachedir=" + filepath.Join(d, "debs"),
			"--ip=192.168.224.250", "--netmask=255.255.255.0", "--gateway=192.168.224.1", "--nameserver=192.168.224.1",
			"--nohosts", "--noboot", "--pygrub", "--genpass=0", "--password=applbench", "--force", "--verbose"},
		Env: []string{"TMPDIR=" + filepath.Join(d, "tmp")},
	})
	copyXTLog(r.logs, i)
	if err != nil {
		return firstErrorLine(s, err)
	}
	// xen-create-image reports some failures on its output with exit 0.
	for _, l := range s.Lines {
		if strings.HasPrefix(l.Text, "Aborting") || strings.Contains(l.Text, "System installation failed") {
			return fmt.Errorf("xen-create-image: %s", l.Text)
		}
	}
	res.XT = append(res.XT, s)
	img := filepath.Join(d, "img")
	if res.XTSizes, _, err = kindSizes(img); err != nil {
		return err
	}
	disks, _ := filepath.Glob(filepath.Join(img, "domains", xtHost, "disk.img"))
	if len(disks) != 1 {
		return fmt.Errorf("xen-create-image: no disk.img under %s", img)
	}
	if res.XTPackages, err = installedPackages(r, disks[0]); err != nil {
		return err
	}
	if res.XTUsed, err = ext4Used(r, disks[0]); err != nil {
		return err
	}
	return os.RemoveAll(d)
}

// firstErrorLine names how xen-create-image failed: its first line that
// says so, else the error.
func firstErrorLine(s *sample, err error) error {
	if s != nil {
		for _, l := range s.Lines {
			t := strings.ToLower(l.Text)
			if strings.Contains(t, "error") || strings.Contains(t, "fail") || strings.HasPrefix(t, "aborting") {
				return fmt.Errorf("xen-create-image: %s (%v)", strings.TrimSpace(l.Text), errors.Unwrap(err))
			}
		}
	}
	return err
}

func copyXTLog(logs string, i int) {
	src := filepath.Join("/var/log/xen-tools", xtHost+".log")
	if b, err := os.ReadFile(src); err == nil {
		_ = os.WriteFile(filepath.Join(logs, fmt.Sprintf("xen-tools-%d.log", i)), b, 0o644)
	}
}

// removeXTLogs removes the logs xen-create-image wrote for the bench's
// host name, and their directory if the bench made it.
func removeXTLogs(dirExisted bool) {
	m, _ := filepath.Glob(filepath.Join("/var/log/xen-tools", xtHost+".*log"))
	m2, _ := filepath.Glob(filepath.Join("/var/log/xen-tools", xtHost+".log"))
	for _, f := range append(m, m2...) {
		os.Remove(f)
	}
	if !dirExisted {
		os.Remove("/var/log/xen-tools") // only if empty
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// sampleLoad records the 1-minute load average every 5 s until stopped.
func sampleLoad(into *[]float64) func() {
	var mu sync.Mutex
	done := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	wg.Add(1)
	read := func() {
		b, err := os.ReadFile("/proc/loadavg")
		if err != nil {
			return
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			mu.Lock()
			*into = append(*into, v)
			mu.Unlock()
		}
	}
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		read()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				read()
			}
		}
	}()
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// machine describes the host.
func machine(r *runner, dir string) [][2]string {
	var out [][2]string
	cpu := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	nproc, _ := r.output("nproc")
	out = append(out, [2]string{"CPU", fmt.Sprintf("%s × %s", strings.TrimSpace(nproc), cpu)})
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && k == "MemTotal" {
				f := strings.Fields(v)
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					out = append(out, [2]string{"RAM", size(kb * 1024)})
				}
			}
		}
	}
	kernel, _ := r.output("uname", "-r")
	out = append(out, [2]string{"kernel", strings.TrimSpace(kernel)})
	if b, err := os.ReadFile("/etc/debian_version"); err == nil {
		out = append(out, [2]string{"host", "Debian " + strings.TrimSpace(string(b))})
	}
	if fs, err := r.output("findmnt", "-n", "-o", "FSTYPE,SOURCE", "-T", dir); err == nil {
		out = append(out, [2]string{"bench filesystem", dir + ": " + strings.Join(strings.Fields(fs), " on ")})
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		out = append(out, [2]string{"load average at start", strings.Join(strings.Fields(string(b))[:3], " ")})
	}
	return out
}

// versions of everything measured.
func versions(r *runner, repo string) [][2]string {
	var out [][2]string
	rev, err := r.output("git", "-C", repo, "rev-parse", "--short=12", "HEAD")
	if err == nil {
		rev = strings.TrimSpace(rev)
		if st, err := r.output("git", "-C", repo, "status", "--porcelain", "--untracked-files=no"); err == nil && strings.TrimSpace(st) != "" {
			rev += " (with uncommitted changes)"
		}
		out = append(out, [2]string{"applbuild", rev})
	}
	first := func(args ...string) string {
		cmd := exec.Command(args[0], args[1:]...)
		b, _ := cmd.CombinedOutput()
		l, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
		return l
	}
	deb := func(p string) string {
		v, err := r.output("dpkg-query", "-W", "-f", "${Version}", p)
		if err != nil {
			return "not installed"
		}
		return v
	}
	out = append(out,
		[2]string{"mmdebstrap", first("mmdebstrap", "--version")},
		[2]string{"e2fsprogs", first("mke2fs", "-V")},
		[2]string{"GNU tar", first("tar", "--version")},
		[2]string{"xen-tools", deb("xen-tools")},
		[2]string{"debootstrap", deb("debootstrap")},
		[2]string{"GNU time", deb("time")},
		[2]string{"apt (host)", deb("apt")},
	)
	return out
}
