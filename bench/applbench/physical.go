package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/rootfs"
)

// physResults are the physical targets' rows: one personality built as a
// raw disk and as a stick, warm, against its floors, and the stick's
// .img.xz against xz -6 of the same image.
type physResults struct {
	Personality string
	Node        string
	RawWarm     []*sample // warm raw builds after a config change
	RawFloor    []*sample // mke2fs -d of the same tree into the root partition's size
	UsbWarm     []*sample // warm usb builds after a config change
	SquashFloor []*sample // mksquashfs of the same tree, the usb target's flags
	XZFloor     []*sample // xz of the built stick image, as the usb target runs it
	XZ6         []*sample // plain xz -6 (one thread, xz's defaults) of the same image
	RawImg      fileSize  // the raw disk image
	UsbImg      fileSize  // the stick image
	UsbXZ       int64     // its .img.xz as built
	XZ6Size     int64     // xz -6 of the same image
	SquashSize  int64     // the floor's squashfs
	Packages    int
}

// physEnv is what the physical rows need of the bench.
type physEnv struct {
	r         *runner
	bin, work string
	confPath  string // MakeExt4's mke2fs.conf
	epoch     int64
	runs      int
	seed      func(cache string) error // a fresh cache with the .deb pool linked in
	harvest   func(cache string) error
}

// benchPhysical measures personality (one node) for the raw and usb
// targets. Each target gets its own cache (their package sets differ: the
// usb target adds live-boot), warmed by one unmeasured build; then warm
// builds alternate with their floors.
func benchPhysical(e physEnv, personality string) (*physResults, error) {
	res := &physResults{Personality: personality}
	planJSON, err := e.r.output(e.bin, "plan", personality, "--json")
	if err != nil {
		return nil, err
	}
	var pl builder.Plan
	if err := json.Unmarshal([]byte(planJSON), &pl); err != nil {
		return nil, fmt.Errorf("plan --json: %w", err)
	}
	n := &pl.Nodes[0]
	res.Node = n.Name
	root, ok := rootDisk(n)
	if !ok {
		return nil, fmt.Errorf("%s: no root disk", n.Name)
	}
	dir := filepath.Join(e.work, "physical")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	// tree unpacks the cache's one rootfs tarball as rootfs.Extract does.
	tree := func(cache, into string) error {
		tarballs, _ := filepath.Glob(filepath.Join(cache, "*", "rootfs.tar"))
		if len(tarballs) != 1 {
			return fmt.Errorf("want one rootfs.tar in %s, found %d", cache, len(tarballs))
		}
		if err := os.MkdirAll(into, 0o755); err != nil {
			return err
		}
		_, err := e.r.output("tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "--same-owner",
			"--same-permissions", "-C", into, "-xf", tarballs[0])
		return err
	}
	build := func(name, targetName, cache, out string, extra ...string) (*sample, error) {
		args := append([]string{e.bin, "build", personality, "--target", targetName, "--out", out, "--cache-dir", cache}, extra...)
		return e.r.measure(name, cmdSpec{Args: args, Dir: e.work})
	}
	warm := func(targetName string, floors func(i int, out string) error) ([]*sample, string, error) {
		cache, out := filepath.Join(dir, "cache-"+targetName), filepath.Join(dir, "out-"+targetName)
		if err := e.seed(cache); err != nil {
			return nil, "", err
		}
		if _, err := build(fmt.Sprintf("%s %s: warm-up (fills the cache)", personality, targetName), targetName, cache, out); err != nil {
			return nil, "", err
		}
		if err := e.harvest(cache); err != nil {
			return nil, "", err
		}
		t := filepath.Join(dir, "tree-"+targetName)
		if err := tree(cache, t); err != nil {
			return nil, "", err
		}
		var ss []*sample
		for i := 1; i <= e.runs; i++ {
			set := "cluster.memory=" + []string{"1G", "2G"}[(i-1)%2]
			s, err := build(fmt.Sprintf("%s %s: warm rebuild %d (--set %s)", personality, targetName, i, set), targetName, cache, out, "--set", set)
			if err != nil {
				return nil, "", err
			}
			ss = append(ss, s)
			if err := floors(i, t); err != nil {
				return nil, "", err
			}
		}
		return ss, filepath.Join(out, personality, targetName, n.Name), nil
	}

	// raw: against mke2fs -d of the tree, MakeExt4's flags.
	var rawOut string
	res.RawWarm, rawOut, err = warm("raw", func(i int, t string) error {
		img := filepath.Join(dir, "floor-root.img")
		if err := sparse(img, int64(root.Size)/4096*4096); err != nil {
			return err
		}
		defer os.Remove(img)
		s, err := e.r.measure(fmt.Sprintf("%s raw: floor mke2fs -d %d", personality, i), cmdSpec{
			Args: []string{"mke2fs", "-t", "ext4", "-T", "applbuild", "-F", "-q", "-b", "4096", "-U", root.UUID,
				"-E", "hash_seed=" + root.UUID + ",root_owner=0:0,nodiscard,lazy_itable_init=0,lazy_journal_init=0",
				"-L", root.Label, "-d", t, img},
			Env: []string{"MKE2FS_CONFIG=" + e.confPath, "E2FSPROGS_FAKE_TIME=" + strconv.FormatInt(e.epoch, 10), "LC_ALL=C"},
		})
		res.RawFloor = append(res.RawFloor, s)
		return err
	})
	if err != nil {
		return nil, err
	}
	if res.RawImg, err = sizeOf(filepath.Join(rawOut, n.Name+".img")); err != nil {
		return nil, err
	}

	// usb: against mksquashfs of the tree plus xz of the stick image.
	var usbOut string
	res.UsbWarm, usbOut, err = warm("usb", func(i int, t string) error {
		sq := filepath.Join(dir, "floor.squashfs")
		defer os.Remove(sq)
		ep := strconv.FormatInt(e.epoch, 10)
		s, err := e.r.measure(fmt.Sprintf("%s usb: floor mksquashfs %d", personality, i), cmdSpec{
			Args: []string{"mksquashfs", t, sq, "-noappend", "-no-progress", "-quiet", "-comp", "zstd", "-mkfs-time", ep, "-all-time", ep}})
		if err != nil {
			return err
		}
		res.SquashFloor = append(res.SquashFloor, s)
		if fi, err := os.Stat(sq); err == nil {
			res.SquashSize = fi.Size()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	img := filepath.Join(usbOut, n.Name+".img")
	if res.UsbImg, err = sizeOf(img); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(img + ".xz"); err == nil {
		res.UsbXZ = fi.Size()
	} else {
		return nil, err
	}
	// The xz floor: the usb target's own xz command on the same image; and
	// the peer, plain xz -6 (one thread, one stream), for size and time.
	xzOut := filepath.Join(dir, "floor.img.xz")
	for i := 1; i <= e.runs; i++ {
		s, err := e.r.measure(fmt.Sprintf("%s usb: floor xz -6 -T+2 %d", personality, i), cmdSpec{
			Args: []string{"sh", "-c", `xz --compress --stdout -6 --threads=+2 < "$1" > "$2"`, "xz", img, xzOut}})
		if err != nil {
			return nil, err
		}
		res.XZFloor = append(res.XZFloor, s)
	}
	s, err := e.r.measure(personality+" usb: xz -6", cmdSpec{
		Args: []string{"sh", "-c", `xz --compress --stdout -6 < "$1" > "$2"`, "xz", img, xzOut}})
	if err != nil {
		return nil, err
	}
	res.XZ6 = append(res.XZ6, s)
	if fi, err := os.Stat(xzOut); err == nil {
		res.XZ6Size = fi.Size()
	}
	return res, nil
}

// physicalReport is the physical targets' section of docs/benchmarks.md.
func physicalReport(p *physResults) string {
	if p == nil {
		return ""
	}
	rawW, rawF := median(of(p.RawWarm, wall)), median(of(p.RawFloor, wall))
	usbW := median(of(p.UsbWarm, wall))
	sqF, xzF := median(of(p.SquashFloor, wall)), median(of(p.XZFloor, wall))
	s := fmt.Sprintf("## Physical targets: %s as a raw disk and as a stick\n\n", p.Personality)
	s += fmt.Sprintf("One node (%s), warm: each target's rootfs cached by an unmeasured first build, then rebuilt after a config change "+
		"(`--set cluster.memory=1G` / `2G`, alternating), each rebuild followed by its floor on the tree of that rootfs "+
		"(unpacked as the extract stage does). The raw floor is `mke2fs -d` with MakeExt4's flags into the root partition's size; "+
		"the usb floor is `mksquashfs` with the usb target's flags (zstd) plus the usb target's own xz command (`xz -6 --threads=+2`) on the built stick image.\n\n", p.Node)
	s += "| measurement | wall | peak RSS | written | ratio |\n|---|---|---|---|---|\n"
	s += fmt.Sprintf("| **raw** warm rebuild (GPT, BIOS boot, ESP, swap, root) | %s | %s | %s | **%s** of its floor |\n",
		secs(of(p.RawWarm, wall)), bytesCell(of(p.RawWarm, rss)), bytesCell(of(p.RawWarm, written)), ratio(rawW, rawF))
	s += fmt.Sprintf("| raw floor: `mke2fs -d` of the tree | %s | %s | %s | 1 |\n",
		secs(of(p.RawFloor, wall)), bytesCell(of(p.RawFloor, rss)), bytesCell(of(p.RawFloor, written)))
	s += fmt.Sprintf("| **usb** warm rebuild (squashfs, live and data partitions, .img.xz, .bmap, SHA256SUMS) | %s | %s | %s | **%s** of its floor |\n",
		secs(of(p.UsbWarm, wall)), bytesCell(of(p.UsbWarm, rss)), bytesCell(of(p.UsbWarm, written)), ratio(usbW, sqF+xzF))
	s += fmt.Sprintf("| usb floor, part 1: `mksquashfs` of the tree (%s) | %s | %s | %s | |\n",
		size(p.SquashSize), secs(of(p.SquashFloor, wall)), bytesCell(of(p.SquashFloor, rss)), bytesCell(of(p.SquashFloor, written)))
	s += fmt.Sprintf("| usb floor, part 2: `xz -6 --threads=+2` of the stick image | %s | %s | %s | |\n",
		secs(of(p.XZFloor, wall)), bytesCell(of(p.XZFloor, rss)), bytesCell(of(p.XZFloor, written)))
	s += fmt.Sprintf("| (for reference) plain `xz -6` of the stick image, one thread | %s | %s | %s | |\n\n",
		secs(of(p.XZ6, wall)), bytesCell(of(p.XZ6, rss)), bytesCell(of(p.XZ6, written)))
	s += "Where a warm rebuild's time goes (the build's own `stages:` line, medians):\n\n" +
		"| stage | raw | usb |\n|---|---|---|\n"
	for _, st := range []struct{ name, what string }{
		{"extract", "extract (the rootfs tarball unpacked into the work tree)"},
		{p.Node, p.Node + " (raw: root ext4, ESP, core.img, GPT and copy; usb: squashfs, live ext4, ESP, GPT, xz, bmap)"},
		{"manifest", "manifest (sha256 of every output)"},
	} {
		s += fmt.Sprintf("| %s | %.1f s | %.1f s |\n", st.what, stageMedian(p.RawWarm, st.name), stageMedian(p.UsbWarm, st.name))
	}
	s += fmt.Sprintf("\nThe raw node stage is %s of its mke2fs floor; the rest of the raw rebuild is the extract and the manifest, which every target pays.\n\n",
		ratio(stageMedian(p.RawWarm, p.Node), rawF))
	s += "| output | apparent | allocated | data |\n|---|---|---|---|\n"
	s += fmt.Sprintf("| raw disk `%s.img` | %s | %s | %s |\n", p.Node, size(p.RawImg.Apparent), size(p.RawImg.Allocated), size(p.RawImg.Data))
	s += fmt.Sprintf("| stick `%s.img` | %s | %s | %s |\n\n", p.Node, size(p.UsbImg.Apparent), size(p.UsbImg.Allocated), size(p.UsbImg.Data))
	s += fmt.Sprintf("The stick's `.img.xz` is %s; plain `xz -6` of the same image is %s (ours is %s of it): that is what the independent 24 MiB blocks "+
		"cost, which let xz use both cores and make the bytes the same on any machine; plain `xz -6` takes %s as long "+
		"(%s against %s).\n\n",
		size(p.UsbXZ), size(p.XZ6Size), ratio(float64(p.UsbXZ), float64(p.XZ6Size)),
		ratio(median(of(p.XZ6, wall)), xzF), secs(of(p.XZFloor, wall)), secs(of(p.XZ6, wall)))
	return s
}

// physicalOnly is the hidden "physical BIN REPO DIR PERSONALITY RUNS"
// mode: the physical rows alone, their section printed, with DIR/debs as
// the .deb pool.
func physicalOnly(args []string) error {
	if len(args) != 5 {
		return fmt.Errorf("want BIN REPO DIR PERSONALITY RUNS")
	}
	var runs int
	if _, err := fmt.Sscan(args[4], &runs); err != nil || runs < 1 {
		return fmt.Errorf("RUNS %q: %v", args[4], err)
	}
	bin, err := filepath.Abs(args[0])
	if err != nil {
		return err
	}
	conf, err := mke2fsConf(filepath.Join(args[1], "builder", "disk", "ext4.go"))
	if err != nil {
		return err
	}
	pool := filepath.Join(args[2], "debs")
	if err := os.MkdirAll(pool, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp(args[2], "run-")
	if err != nil {
		return err
	}
	defer cleanup(work)
	if err := os.Chmod(work, 0o755); err != nil {
		return err
	}
	logs := filepath.Join(work, "logs")
	if err := os.Mkdir(logs, 0o755); err != nil {
		return err
	}
	pconf := filepath.Join(work, "mke2fs.conf")
	if err := os.WriteFile(pconf, []byte(conf), 0o644); err != nil {
		return err
	}
	r := &runner{ctx: context.Background(), logs: logs, tmp: work}
	seed := func(cache string) error {
		if err := os.MkdirAll(filepath.Join(cache, "debs"), 0o755); err != nil {
			return err
		}
		_, err := linkDebs(pool, filepath.Join(cache, "debs"))
		return err
	}
	harvest := func(cache string) error {
		_, err := linkDebs(filepath.Join(cache, "debs"), pool)
		return err
	}
	p, err := benchPhysical(physEnv{r: r, bin: bin, work: work, confPath: pconf, epoch: rootfs.DefaultSourceDateEpoch,
		runs: runs, seed: seed, harvest: harvest}, args[3])
	if err != nil {
		return err
	}
	fmt.Print(physicalReport(p))
	return nil
}
