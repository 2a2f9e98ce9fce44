package main

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/applbuild/applbuild/internal/mountinfo"
)

func lines(texts ...string) []line {
	var out []line
	for i, t := range texts {
		out = append(out, line{At: time.Duration(i) * time.Second, Text: t})
	}
	return out
}

func TestParseStages(t *testing.T) {
	got := parseStages(lines(
		"[verify] done in 8ms",
		"stages: verify 8ms, rootfs 2m50.1s, extract 4.1s, n1 13.6s, manifest 950µs",
	))
	want := []stage{{"verify", 8 * time.Millisecond}, {"rootfs", 170*time.Second + 100*time.Millisecond},
		{"extract", 4100 * time.Millisecond}, {"n1", 13600 * time.Millisecond}, {"manifest", 950 * time.Microsecond}}
	if !slices.Equal(got, want) {
		t.Errorf("parseStages = %v, want %v", got, want)
	}
}

// A node's steps are timed from one progress line to the next: the tree
// from "tree:" to the first disk step, the last step up to "done in".
func TestNodeSteps(t *testing.T) {
	got := nodeSteps(lines(
		"[n1] tree: 65 files from the overlay", // 0
		"[n2] tree: unrelated",                 // 1
		"[n1] (1/5) root fs disk.img (2G)",     // 2
		"[n1] (2/5) swap swap.img (128M)",      // 3
		"[n1] (3/5) brick n1_vg0/a (64M)",      // 4
		"[n1] (4/5) brick n1_vg0/b (64M)",      // 5
		"[n1] (5/5) xl config n1.cfg",          // 6
		"[n1] done in 9s",                      // 7
	), "n1")
	want := map[string]time.Duration{"tree": 2 * time.Second, "root fs": time.Second, "swap": time.Second,
		"brick": 2 * time.Second, "xl config": time.Second}
	if !maps.Equal(got, want) {
		t.Errorf("nodeSteps = %v, want %v", got, want)
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := mountinfo.Unescape(`/var/tmp/a\040b`); got != "/var/tmp/a b" {
		t.Errorf("mountinfo.Unescape = %q", got)
	}
}

// The floor must format with the builder's own mke2fs.conf.
func TestMke2fsConf(t *testing.T) {
	conf, err := mke2fsConf(filepath.Join("..", "..", "builder", "disk", "ext4.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[defaults]", "applbuild = {", "metadata_csum"} {
		if !strings.Contains(conf, want) {
			t.Errorf("mke2fs.conf has no %q:\n%s", want, conf)
		}
	}
}

func TestNonZero(t *testing.T) {
	p := filepath.Join(t.TempDir(), "img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	// A hole, one data block, a block of written zeros, a hole.
	if _, err := f.WriteAt([]byte{1}, 1<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 4096), 1<<20+4096); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(4 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got, err := nonZero(p)
	if err != nil {
		t.Fatal(err)
	}
	if got != 4096 {
		t.Errorf("nonZero = %d, want 4096", got)
	}
}

func TestFlashReport(t *testing.T) {
	f := &flashResults{What: "n1's root image", Image: fileSize{Apparent: 2 << 30, Data: 800 << 20}, Mapped: 810 << 20,
		Bmap: []*sample{{Wall: 10 * time.Second, Written: 810 << 20}},
		Full: []*sample{{Wall: 30 * time.Second, Written: 2 << 30}}}
	got := flashReport(f)
	for _, want := range []string{"## Flash: a root image into a file", "of n1's root image (2.0 GiB", "| with bmap | 10.0 s |", "| without bmap | 30.0 s", "3.00× as long", "810.0 MiB mapped"} {
		if !strings.Contains(got, want) {
			t.Errorf("flash report lacks %q:\n%s", want, got)
		}
	}
	if flashReport(nil) != "" {
		t.Error("a report of no flash run")
	}
}

func TestPhysicalReport(t *testing.T) {
	sec := func(s float64) []*sample { return []*sample{{Wall: time.Duration(s * float64(time.Second))}} }
	p := &physResults{Personality: "scm", Node: "scm1",
		RawWarm: sec(30), RawFloor: sec(10), UsbWarm: sec(150), SquashFloor: sec(40), XZFloor: sec(60), XZ6: sec(120),
		UsbXZ: 330 << 20, XZ6Size: 300 << 20, RawImg: fileSize{Apparent: 2 << 30}}
	got := physicalReport(p)
	for _, want := range []string{"## Physical targets: scm", "**3.00×** of its floor", "**1.50×** of its floor",
		"| raw disk `scm1.img` | 2.0 GiB", "is 330.0 MiB; plain `xz -6` of the same image is 300.0 MiB (ours is 1.10× of it)",
		"takes 2.00× as long"} {
		if !strings.Contains(got, want) {
			t.Errorf("physical report lacks %q:\n%s", want, got)
		}
	}
	if physicalReport(nil) != "" {
		t.Error("a report of no physical run")
	}
}

// TestParseTimings reads the e2e tests' timing lines as go test -v prints
// them, and nothing else; the report keeps each personality's steps in
// their order and says when a drill failed.
func TestParseTimings(t *testing.T) {
	out := "=== RUN   TestE2EClusterNFSHA\n" +
		"    cluster_test.go:353: e2e: nfs-ha formed: 3m59s\n" +
		"    cluster_test.go:354: e2e-timing: nfs-ha\tcluster up until formed\t239\n" +
		"    nfs_test.go:76: e2e-timing: nfs-ha\tpower cut → NFS answering from the peer\t125\n" +
		"    drbd_test.go:168: e2e-timing: mysql-ha\tcable back → formed again\t60\n" +
		"    x_test.go:1: e2e-timing: broken\tno seconds\tabc\n"
	got := parseTimings(strings.NewReader(out))
	want := []clusterStep{{"nfs-ha", "cluster up until formed", 239}, {"nfs-ha", "power cut → NFS answering from the peer", 125},
		{"mysql-ha", "cable back → formed again", 60}}
	if !slices.Equal(got, want) {
		t.Fatalf("parseTimings = %v, want %v", got, want)
	}
	rep := clusterReport(&clusterResults{Steps: got, Took: map[string]time.Duration{"nfs-ha": 966 * time.Second},
		Failed: map[string]string{"mysql-ha": "exit status 1"}}, []string{"nfs-ha", "mysql-ha"})
	for _, w := range []string{"| cluster up until formed | 3m59s |\n| power cut → NFS answering from the peer | 2m5s |\n",
		"whole test 16m6s", "**The drill failed**: exit status 1", "| cable back → formed again | 1m0s |"} {
		if !strings.Contains(rep, w) {
			t.Errorf("report lacks %q:\n%s", w, rep)
		}
	}
	if strings.Index(rep, "### nfs-ha") > strings.Index(rep, "### mysql-ha") {
		t.Errorf("personalities out of order:\n%s", rep)
	}
}
