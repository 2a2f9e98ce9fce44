package compress

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/internal/run"
	"github.com/applbuild/applbuild/internal/testenv"
)

// TestSumsCheckedBySha256sum writes SHA256SUMS for two files and lets
// coreutils check it, then changes a byte and expects sha256sum to refuse.
func TestSumsCheckedBySha256sum(t *testing.T) {
	testenv.Tools(t, "sha256sum")
	ctx := context.Background()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "n1.img.xz"), []byte("not really xz\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "n1.img.bmap"), []byte("<bmap/>\n"), 0o644)
	sums, err := SumFiles(ctx, dir, "n1.img.xz", "n1.img.bmap")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteSums(&b, sums); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "SHA256SUMS"), b.Bytes(), 0o644)
	check := &run.Cmd{Args: []string{"sha256sum", "--strict", "-c", "SHA256SUMS"}, Dir: dir}
	if out, err := check.Output(ctx); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(dir, "n1.img.xz"), []byte("not really xz!\n"), 0o644)
	out, err := check.Output(ctx)
	if err == nil || !strings.Contains(string(out), "n1.img.xz: FAILED") {
		t.Errorf("sha256sum -c passed a changed file: %v\n%s", err, out)
	}
}

func TestWriteSumsRefusesEscapes(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	for _, name := range []string{"a\nb", `a\b`, ""} {
		if err := WriteSums(&bytes.Buffer{}, []Sum{{Name: name, SHA256: sum}}); err == nil {
			t.Errorf("name %q written unescaped", name)
		}
	}
	if err := WriteSums(&bytes.Buffer{}, []Sum{{Name: "x", SHA256: "abc"}}); err == nil {
		t.Error("a short digest written")
	}
}
