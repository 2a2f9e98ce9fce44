package personalities

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/applbuild/applbuild/internal/testenv"
)

// FuzzParseSize: never a panic, never a negative size or one above
// MaxSize, and what String writes reads back the same.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"2G", "128M", "1.5G", "4096", "0", "NaN", "inf", "1e30G", "8388608T", "1048576T", "0.000001T", "-1", " 2 G", "2GiB", "64k"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSize(s)
		if err != nil {
			return
		}
		if v < 0 || v > MaxSize {
			t.Fatalf("ParseSize(%q) = %d", s, v)
		}
		back, err := ParseSize(v.String())
		if err != nil || back != v {
			t.Fatalf("ParseSize(%q) = %d; its String %q reads back as %d, %v", s, v, v.String(), back, err)
		}
	})
}

// FuzzSet: any --set value loads or is refused as a spec mistake, quickly,
// and what loads holds no negative size.
func FuzzSet(f *testing.F) {
	for _, s := range []string{"cluster.memory=1G", "cluster.nodes=3", "network.dns=[10.0.0.1]", "extends=base", "cluster.nodes",
		"cluster.nodes=[3", "gluster.volumes=[{name: x, mount: /srv/x, size: 64M}]", "a=&a [*a, *a]", "cluster.vcpus=two", "=", ".=1",
		"branding.product=x\ny", "disks.root=8388608T", "services=!replace []"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, kv string) {
		var s *Spec
		var err error
		// CPU time, not the wall clock: on a loaded machine (make
		// fresh-check beside three QEMU guests) "c=" took 2.6 s of wall.
		if d := testenv.CPUTime(func() { s, err = Load("web-cluster", Options{Set: []string{kv}}) }); d > 2*time.Second {
			t.Fatalf("--set %q took %v of CPU", kv, d)
		}
		if err != nil {
			if _, ok := err.(Errors); !ok {
				t.Fatalf("--set %q: %T is not a spec error: %v", kv, err, err)
			}
			return
		}
		checkSizes(t, s)
	})
}

// FuzzLoad: any file loads or is refused with positions, quickly.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("../testdata/broken/*.yaml")
	mine, _ := filepath.Glob("*.yaml")
	for _, p := range append(seeds, mine...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "fuzz.yaml")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		var s *Spec
		var err error
		if d := testenv.CPUTime(func() { s, err = Load(p, Options{}) }); d > 2*time.Second {
			t.Fatalf("load took %v of CPU", d)
		}
		if err != nil {
			if strings.Contains(err.Error(), "\x1b") {
				t.Fatalf("an error message carries an escape: %q", err)
			}
			return
		}
		checkSizes(t, s)
	})
}

func checkSizes(t *testing.T, s *Spec) {
	t.Helper()
	all := []Size{s.Cluster.Memory, s.Disks.Root, s.Disks.Swap, s.MariaDB.BufferPool}
	all = append(all, s.Disks.PVs...)
	for _, v := range s.Gluster.Volumes {
		all = append(all, v.Size)
	}
	for _, r := range s.DRBD {
		all = append(all, r.Size)
	}
	for _, sv := range s.Services {
		all = append(all, sv.Memory)
	}
	for _, v := range all {
		if v < 0 || v > MaxDiskSize {
			t.Fatalf("a size of %d passed validation", v)
		}
	}
}
