package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/overlays/volfile"
)

// runCLI runs the command line as main does; stdin, when not empty,
// replaces os.Stdin for the run (cobra reads it there).
func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	if stdin != "" {
		p := filepath.Join(t.TempDir(), "stdin")
		if err := os.WriteFile(p, []byte(stdin), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		saved := os.Stdin
		os.Stdin = f
		defer func() { os.Stdin = saved }()
	}
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestVolfilesCmd(t *testing.T) {
	seedInput := filepath.Join("..", "..", "testdata", "seed", "input")
	dir := filepath.Join(t.TempDir(), "out")

	code, stdout, stderr := runCLI(t, "", "volfiles", "--input", seedInput, "--out", dir)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if n := strings.Count(stdout, "\n"); n != 9 {
		t.Errorf("want 9 files listed, got:\n%s", stdout)
	}
	server, err := os.ReadFile(filepath.Join(dir, "glusterfsd.vol"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := volfile.Parse(bytes.NewReader(server), "glusterfsd.vol"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "glusterfs_apache2.vol")); !bytes.Contains(b, []byte("remote-host n3.tsand.org")) {
		t.Errorf("client volfile:\n%s", b)
	}

	// Again without --force: refused, nothing touched.
	os.WriteFile(filepath.Join(dir, "glusterfsd.vol"), []byte("mine\n"), 0o644)
	code, _, stderr = runCLI(t, "", "volfiles", "--input", seedInput, "--out", dir)
	if code != exitError || !strings.Contains(stderr, "exists (use --force") {
		t.Errorf("overwrite without --force: exit %d, %s", code, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "glusterfsd.vol")); string(b) != "mine\n" {
		t.Errorf("refused run changed a file")
	}
	code, _, stderr = runCLI(t, "", "volfiles", "--input", seedInput, "--out", dir, "--force")
	if b, _ := os.ReadFile(filepath.Join(dir, "glusterfsd.vol")); code != exitOK || !bytes.Equal(b, server) {
		t.Errorf("--force: exit %d %s", code, stderr)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".*")); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}

	// Stdin works the same.
	in, _ := os.ReadFile(seedInput)
	dir2 := t.TempDir()
	if code, _, stderr := runCLI(t, string(in), "volfiles", "--input", "-", "--out", dir2); code != exitOK {
		t.Fatalf("stdin: exit %d %s", code, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(dir2, "glusterfsd.vol")); !bytes.Equal(b, server) {
		t.Errorf("stdin output differs from file output")
	}
}

func TestVolfilesCmdErrors(t *testing.T) {
	tests := []struct {
		name, table string
		args        []string
		want        string
	}{
		{"short row", "www /data/www * /var/www n1\nbad /data/bad *\n", nil, "in.txt:2: bad volume table: 3 column(s)"},
		{"no out", "", []string{"--out", ""}, "volfiles needs --input FILE and --out DIR"},
		{"extra arg", "", []string{"extra"}, "accepts 0 arg(s)"},
		{"missing input", "", []string{"--input", "/nonexistent/in"}, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, "in.txt")
			os.WriteFile(in, []byte(tt.table), 0o644)
			out := filepath.Join(dir, "out")
			args := append([]string{"volfiles", "--input", in, "--out", out}, tt.args...)
			code, _, stderr := runCLI(t, "", args...)
			if code != exitSpec || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 and %q", code, stderr, tt.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("output written despite the error")
			}
		})
	}
}
