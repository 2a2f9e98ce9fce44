package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/builder/target"
	"github.com/applbuild/applbuild/builder/target/xen"
	"github.com/applbuild/applbuild/internal/keys"
	"github.com/applbuild/applbuild/internal/progress"
	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
	"github.com/applbuild/applbuild/rootfs"
)

// TestBuildTinyReproducible builds testdata/tiny.yaml from the real Debian
// rootfs (the cache, built by mmdebstrap on first use) twice, with the
// real overlay, and wants every artifact byte-identical. It reads
// APPLBUILD_CACHE_DIR (default: the user's cache) so make e2e can share
// one cache between runs.
func TestBuildTinyReproducible(t *testing.T) {
	testenv.Slow(t)
	testenv.Root(t)
	testenv.Tools(t, "mmdebstrap", "mke2fs", "debugfs", "e2fsck", "blkid", "cp", "tar")
	cacheDir := os.Getenv("APPLBUILD_CACHE_DIR")
	if cacheDir == "" {
		cacheDir = rootfs.DefaultDir()
	}
	ring, err := keys.New([]byte("applbuild reproducibility test secret"))
	if err != nil {
		t.Fatal(err)
	}
	var ms []*Manifest
	for i := range 2 {
		out := t.TempDir()
		s, pl := tinyPlan(t)
		res, err := Build(context.Background(), Options{
			Spec: s, Plan: pl, Target: xen.New(target.Options{XenDir: "/srv/xen"}),
			Out: out, Ring: ring, Cache: &rootfs.Cache{Dir: cacheDir}, Version: "test",
			Progress: progress.New(testWriter{t}),
		})
		if err != nil {
			t.Fatalf("build %d: %v", i+1, err)
		}
		onlyOutput(t, out)
		ms = append(ms, readManifest(t, res.Dir))
		n1 := filepath.Join(res.Dir, "n1")
		if _, err := run.Output(context.Background(), "e2fsck", "-fn", filepath.Join(n1, "disk.img")); err != nil {
			t.Errorf("e2fsck: %v", err)
		}
		blk, err := run.Output(context.Background(), "blkid", filepath.Join(n1, "swap.img"))
		if err != nil || !strings.Contains(string(blk), `TYPE="swap"`) {
			t.Errorf("blkid swap.img: %s %v", blk, err)
		}
	}
	if !reflect.DeepEqual(ms[0], ms[1]) {
		for i, f := range ms[0].Files {
			if i < len(ms[1].Files) && f != ms[1].Files[i] {
				t.Errorf("%s: %+v, then %+v", f.Path, f, ms[1].Files[i])
			}
		}
		t.Fatalf("two builds of the same inputs differ")
	}
	if len(ms[0].Packages) == 0 || ms[0].Inputs.RootfsKey == "" {
		t.Errorf("manifest lacks the packages or the rootfs key: %+v", ms[0].Inputs)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
