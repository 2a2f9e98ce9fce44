package overlays

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/internal/keys"
	"github.com/applbuild/applbuild/personalities"
)

// testSecret seeds every key in tests and golden files.
const testSecret = "applbuild-golden-test-secret-0123456789"

func testRing(t testing.TB) *keys.Ring {
	t.Helper()
	r, err := keys.New([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// planFor loads an embedded personality (with --set overrides) and plans it.
func planFor(t testing.TB, name string, set ...string) *builder.Plan {
	t.Helper()
	s, err := personalities.Load(name, personalities.Options{Set: set})
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	pl, err := builder.New(s)
	if err != nil {
		t.Fatalf("plan %s: %v", name, err)
	}
	return pl
}

// personalitiesWith lists the embedded personalities whose plan has what
// has looks for, so that a check by a real program covers every
// personality that needs it, a new one too. None is a failure: the check
// would pass by checking nothing.
func personalitiesWith(t testing.TB, what string, has func(*builder.Plan) bool) []string {
	t.Helper()
	infos, err := personalities.Library{}.List()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, info := range infos {
		if has(planFor(t, info.Name)) {
			out = append(out, info.Name)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no personality has %s", what)
	}
	return out
}

func hasDRBD(pl *builder.Plan) bool { return len(pl.DRBD) > 0 }

// renderNode renders one node of a personality and indexes it by path.
func renderNode(t testing.TB, pl *builder.Plan, node string) map[string]File {
	t.Helper()
	n := pl.Node(node)
	if n == nil {
		t.Fatalf("%s has no node %s", pl.Personality, node)
	}
	files, err := Render(pl, n, testRing(t))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]File{}
	for _, f := range files {
		out[f.Path] = f
	}
	return out
}

// mustFile returns the file at p or fails.
func mustFile(t testing.TB, files map[string]File, p string) File {
	t.Helper()
	f, ok := files[p]
	if !ok {
		var have []string
		for k := range files {
			if strings.HasPrefix(k, filepath.Dir(p)) {
				have = append(have, k)
			}
		}
		t.Fatalf("no %s rendered (beside it: %v)", p, have)
	}
	return f
}

// writeFile writes f's content to a temp file (for a validator) and
// returns its path.
func writeFile(t testing.TB, f File) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), filepath.Base(f.Path))
	if err := os.WriteFile(p, f.Data, f.Mode.Perm()|0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeNodeTree writes all files of a node below a temp dir, as render does.
func writeNodeTree(t testing.TB, files map[string]File) string {
	t.Helper()
	var list []File
	for _, f := range files {
		list = append(list, f)
	}
	dir := t.TempDir()
	if err := WriteTree(dir, list); err != nil {
		t.Fatal(err)
	}
	return dir
}
