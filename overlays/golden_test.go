package overlays

import (
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/personalities"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// TestGolden renders every node of every embedded personality and compares
// it with testdata/golden/<personality>/<node>/. Each node also gets a
// .files listing of mode, owner and generator per path.
func TestGolden(t *testing.T) {
	infos, err := personalities.Library{}.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range infos {
		pl := planFor(t, info.Name)
		for _, n := range pl.Nodes {
			t.Run(info.Name+"/"+n.Name, func(t *testing.T) {
				files := renderNode(t, pl, n.Name)
				got := map[string][]byte{".files": listing(files)}
				for p, f := range files {
					if !f.IsDir() && !f.IsLink() {
						got[strings.TrimPrefix(p, "/")] = f.Data
					}
				}
				compareGolden(t, filepath.Join("testdata", "golden", info.Name, n.Name), got)
			})
		}
	}
}

func listing(files map[string]File) []byte {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var b bytes.Buffer
	for _, p := range paths {
		f := files[p]
		owner := f.Owner
		if owner == "" {
			owner = "root:root"
		}
		extra := ""
		if f.IsLink() {
			extra = " -> " + f.Link
		}
		fmt.Fprintf(&b, "%s %s %s %s%s\n", f.Mode, owner, f.Generator, p, extra)
	}
	return b.Bytes()
}

func compareGolden(t *testing.T, dir string, got map[string][]byte) {
	t.Helper()
	if *update {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		for rel, b := range got {
			p := filepath.Join(dir, rel)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	want := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		want[rel] = b
		return err
	})
	if err != nil {
		t.Fatalf("%v (run go test ./overlays -run TestGolden -update)", err)
	}
	for rel, w := range want {
		g, ok := got[rel]
		switch {
		case !ok:
			t.Errorf("%s: no longer rendered", rel)
		case !bytes.Equal(g, w):
			t.Errorf("%s differs from golden (go test ./overlays -run TestGolden -update; then git diff):\n%s", rel, firstDiff(w, g))
		}
	}
	for rel := range got {
		if _, ok := want[rel]; !ok {
			t.Errorf("%s: rendered but not in golden (go test ./overlays -run TestGolden -update)", rel)
		}
	}
}

func firstDiff(want, got []byte) string {
	w, g := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\n  want %q\n  got  %q", i+1, a, b)
		}
	}
	return ""
}
