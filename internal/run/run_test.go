package run

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestMissingNamesPackage: a program that is not installed is reported
// with the Debian package to install, and matches ErrMissing.
func TestMissingNamesPackage(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := Output(context.Background(), "mke2fs", "-V")
	var me *MissingError
	if !errors.As(err, &me) || !errors.Is(err, ErrMissing) {
		t.Fatalf("Output = %v, want a MissingError", err)
	}
	if want := "mke2fs: not found in PATH (install it: apt-get install e2fsprogs)"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if _, err := Look("no-such-program-applbuild"); err == nil || strings.Contains(err.Error(), "apt-get") {
		t.Errorf("an unknown program: %v (no package to name)", err)
	}
}

// TestStderrCaptured: a failed program's error has its command line, its
// exit status and the tail of its stderr; stdout is returned.
func TestStderrCaptured(t *testing.T) {
	out, err := Output(context.Background(), "sh", "-c", "echo partial; echo 'the reason' >&2; exit 3")
	var ee *ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("Output = %v, want an ExitError", err)
	}
	for _, want := range []string{"sh -c", "exit status 3", "the reason"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if string(out) != "partial\n" {
		t.Errorf("stdout %q", out)
	}
	// Only the tail of a chatty stderr is kept.
	_, err = Output(context.Background(), "sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x >&2; echo END >&2; exit 1")
	if !errors.As(err, &ee) || len(ee.Stderr) > tailMax || !strings.HasSuffix(ee.Stderr, "END\n") {
		t.Errorf("stderr kept: %d bytes, ends %q", len(ee.Stderr), ee.Stderr[max(0, len(ee.Stderr)-8):])
	}
}

// TestCmdOptions: stdin, stdout, environment and directory reach the
// program.
func TestCmdOptions(t *testing.T) {
	dir := t.TempDir()
	var stdout bytes.Buffer
	c := &Cmd{Args: []string{"sh", "-c", `read x; printf '%s %s %s' "$x" "$APPLBUILD_T" "$(pwd)"`},
		Env: []string{"APPLBUILD_T=env"}, Dir: dir, Stdin: strings.NewReader("in\n"), Stdout: &stdout}
	if _, err := c.Output(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := stdout.String(), "in env "+dir; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := (&Cmd{}).Output(context.Background()); err == nil {
		t.Error("an empty command ran")
	}
}

// TestCancelKills: cancelling the context kills the program at once and
// the error is the context's.
func TestCancelKills(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	err := Run(ctx, "sleep", "30")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancel took %v: the program was not killed", d)
	}
}

// TestPackagesKnown: every program the map names has a package.
func TestPackagesKnown(t *testing.T) {
	for prog, pkg := range packages {
		if prog == "" || pkg == "" || strings.ContainsAny(prog+pkg, " /") {
			t.Errorf("%q -> %q", prog, pkg)
		}
	}
	if Package("mke2fs") != "e2fsprogs" {
		t.Error("Package(mke2fs)")
	}
}
