package personalities

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBrokenCatalogue loads every spec in testdata/broken and expects the
// error its first line names ("# want: {file}:line:col: message").
func TestBrokenCatalogue(t *testing.T) {
	files, err := filepath.Glob("../testdata/broken/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no broken specs found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(b), "\n")
			want, ok := strings.CutPrefix(first, "# want: ")
			if !ok {
				t.Fatalf("first line must be '# want: ...', is %q", first)
			}
			want = strings.ReplaceAll(want, "{file}", f)
			_, err = Load(f, Options{})
			if err == nil {
				t.Fatalf("loaded without error; want %s", want)
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, not a positioned spec error: %v", err, err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if line == want {
					return
				}
			}
			t.Errorf("error does not name the mistake\n got: %s\nwant: %s", err, want)
		})
	}
}
