// Package targettest holds what the targets' tests share: a plan of an
// embedded personality and golden files.
package targettest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/applbuild/applbuild/builder"
	p "github.com/applbuild/applbuild/personalities"
)

// Plan is the plan of the embedded personality name with the --set
// assignments set.
func Plan(t testing.TB, name string, set ...string) *builder.Plan {
	t.Helper()
	s, err := p.Load(name, p.Options{Set: set})
	if err != nil {
		t.Fatal(err)
	}
	pl, err := builder.New(s)
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

// Golden compares got with testdata/golden/name, or writes it there when
// update is set (go test -update).
func Golden(t testing.TB, name string, got []byte, update bool) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file (go test -update to accept):\n%s", name, got)
	}
}
