package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/internal/outdir"
)

// testSecret writes a valid site secret and returns its path.
func testSecret(t *testing.T, fill byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, bytes.Repeat([]byte{fill}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tree reads every regular file and symlink below dir, with its mode.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			out[rel] = "-> " + l
			return err
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			out[rel] = fi.Mode().String() + " " + string(b)
			return err
		}
		out[rel] = fi.Mode().String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRenderTwiceIdentical: two renders with one secret are the same
// trees, byte for byte and mode for mode.
func TestRenderTwiceIdentical(t *testing.T) {
	secret := testSecret(t, 7)
	dir := t.TempDir()
	var trees []map[string]string
	for _, out := range []string{"r1", "r2"} {
		if code, _, stderr := runCLI(t, "", "render", "web-cluster", "--secret", secret, "--out", filepath.Join(dir, out)); code != exitOK {
			t.Fatalf("render: exit %d: %s", code, stderr)
		}
		trees = append(trees, tree(t, filepath.Join(dir, out)))
	}
	a, b := trees[0], trees[1]
	if len(a) < 100 {
		t.Fatalf("only %d entries rendered", len(a))
	}
	for p, v := range a {
		if b[p] != v {
			t.Errorf("%s differs between two renders", p)
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			t.Errorf("%s only in the second render", p)
		}
	}
}

// TestRenderOutRules: render writes only where it may: absent, empty or an
// earlier output. A file, a project, a home directory are refused with
// exit 2 and left as they were; the output is private.
func TestRenderOutRules(t *testing.T) {
	secret := testSecret(t, 7)
	root := t.TempDir()
	file := filepath.Join(root, "notes.txt")
	home := filepath.Join(root, "home")
	for p, data := range map[string]string{file: "notes\n", filepath.Join(home, ".config", "applbuild", "secret"): "site secret"} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	render := func(out string) (int, string) {
		code, _, stderr := runCLI(t, "", "render", "web-cluster", "--secret", secret, "--node", "n1", "--out", out)
		return code, stderr
	}
	for out, why := range map[string]string{file: "it is a file", home: "it holds 1 entries and is not an applbuild output"} {
		code, stderr := render(out)
		if code != exitSpec || !strings.Contains(stderr, "refusing to write "+out+": "+why) {
			t.Errorf("render --out %s: exit %d, %q; want exit 2 and %q", out, code, stderr, why)
		}
	}
	if b, _ := os.ReadFile(file); string(b) != "notes\n" {
		t.Error("the file was touched")
	}
	if b, _ := os.ReadFile(filepath.Join(home, ".config", "applbuild", "secret")); string(b) != "site secret" {
		t.Error("the home directory was touched")
	}

	empty := filepath.Join(root, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{empty, filepath.Join(root, "new"), empty} { // the third replaces an output
		if code, stderr := render(out); code != exitOK {
			t.Fatalf("render --out %s: exit %d: %s", out, code, stderr)
		}
		if _, err := os.Stat(filepath.Join(out, outdir.Marker)); err != nil {
			t.Errorf("%s: no marker: %v", out, err)
		}
		if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v (%v), want 0700: it holds private keys", out, fi.Mode(), err)
		}
	}
}
