package personalities

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/internal/brokenspec"
)

// TestBrokenCatalogue loads every spec in testdata/broken and expects the
// error its header names, as a positioned spec error (the CLI exits 2 on
// it; cmd/applbuild checks the exit status of the same catalogue).
func TestBrokenCatalogue(t *testing.T) {
	cases, err := brokenspec.All("../testdata/broken")
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 60 {
		t.Errorf("the catalogue has %d cases, want at least 60", len(cases))
	}
	for _, c := range cases {
		t.Run(filepath.Base(c.File), func(t *testing.T) {
			opt := Options{Set: c.Flag("--set")}
			if site := c.Flag("--site"); len(site) > 0 {
				opt.Site = site[0]
			}
			_, err := Load(c.File, opt)
			if err == nil {
				t.Fatalf("loaded without error; want %s", c.Want)
			}
			var errs Errors
			if c.Exit == "2" && !errors.As(err, &errs) && !errors.Is(err, ErrUnknown) {
				t.Fatalf("error is %T, not a positioned spec error: %v", err, err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if line == c.Want {
					return
				}
			}
			t.Errorf("error does not name the mistake\n got: %s\nwant: %s", err, c.Want)
		})
	}
}
