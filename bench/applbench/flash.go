package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/applbuild/applbuild/builder/compress"
)

// flashResults is the flash row: one root image written into a file by
// `applbuild flash`, with its bmap (only the data blocks) and without
// (every byte), each then read back and verified.
type flashResults struct {
	What   string // "n1's root image"
	Image  fileSize
	Mapped int64 // bytes the bmap maps
	Bmap   []*sample
	Full   []*sample
}

// benchFlash measures `applbuild flash` of img (hard-linked into work, a
// bmap made beside it) into a file in work, alternating the two ways.
func benchFlash(ctx context.Context, r *runner, bin, what, img, work string, runs int) (*flashResults, error) {
	dir := filepath.Join(work, "flash")
	bare := filepath.Join(dir, "bare")
	if err := os.MkdirAll(bare, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	withBmap, noBmap := filepath.Join(dir, "n1.img"), filepath.Join(bare, "n1.img")
	for _, p := range []string{withBmap, noBmap} {
		if err := os.Link(img, p); err != nil {
			return nil, err
		}
	}
	f, err := os.Open(withBmap)
	if err != nil {
		return nil, err
	}
	m, err := compress.MakeBmap(ctx, f, compress.BmapOptions{})
	f.Close()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(withBmap+".bmap", m.Marshal(), 0o644); err != nil {
		return nil, err
	}
	res := &flashResults{What: what, Mapped: m.MappedBytes()}
	if res.Image, err = sizeOf(img); err != nil {
		return nil, err
	}
	out := filepath.Join(dir, "stick.img")
	one := func(name, src string) (*sample, error) {
		defer os.Remove(out)
		return r.measure(name, cmdSpec{Args: []string{bin, "flash", src, out}})
	}
	for i := 1; i <= runs; i++ {
		order := []bool{true, false}
		if i%2 == 0 {
			order = []bool{false, true}
		}
		for _, b := range order {
			if b {
				s, err := one(fmt.Sprintf("flash with bmap %d", i), withBmap)
				if err != nil {
					return nil, err
				}
				res.Bmap = append(res.Bmap, s)
			} else {
				s, err := one(fmt.Sprintf("flash without bmap %d", i), noBmap)
				if err != nil {
					return nil, err
				}
				res.Full = append(res.Full, s)
			}
		}
	}
	return res, nil
}

// flashReport is the flash section of docs/benchmarks.md.
func flashReport(f *flashResults) string {
	if f == nil {
		return ""
	}
	s := fmt.Sprintf("## Flash: a root image into a file\n\n"+
		"`applbuild flash` of %s (%s apparent, %s of data) into a file, with the bmap beside it "+
		"(%s mapped: only those are written) and without one (every byte, holes as zeros); "+
		"each run writes, syncs, drops the written pages from the page cache and reads every written range back.\n\n"+
		"| flash | wall | written |\n|---|---|---|\n", f.What, size(f.Image.Apparent), size(f.Image.Data), size(f.Mapped))
	s += fmt.Sprintf("| with bmap | %s | %s |\n", secs(of(f.Bmap, wall)), bytesCell(of(f.Bmap, written)))
	s += fmt.Sprintf("| without bmap | %s | %s |\n\n", secs(of(f.Full, wall)), bytesCell(of(f.Full, written)))
	s += fmt.Sprintf("Without the bmap it takes %s as long.\n\n", ratio(median(of(f.Full, wall)), median(of(f.Bmap, wall))))
	return s
}

// flashOnly is the hidden "flash BIN IMG DIR RUNS" mode: the flash row on
// one image, its section printed, for measuring it without a whole bench.
func flashOnly(args []string) error {
	if len(args) != 4 {
		return fmt.Errorf("want BIN IMG DIR RUNS")
	}
	var runs int
	if _, err := fmt.Sscan(args[3], &runs); err != nil || runs < 1 {
		return fmt.Errorf("RUNS %q: %v", args[3], err)
	}
	bin, err := filepath.Abs(args[0])
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp(args[2], "run-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	logs := filepath.Join(work, "logs")
	if err := os.Mkdir(logs, 0o755); err != nil {
		return err
	}
	r := &runner{ctx: context.Background(), logs: logs, tmp: work}
	f, err := benchFlash(r.ctx, r, bin, filepath.Base(args[1]), args[1], work, runs)
	if err != nil {
		return err
	}
	fmt.Print(flashReport(f))
	return nil
}
