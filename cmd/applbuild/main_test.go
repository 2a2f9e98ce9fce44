package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/applbuild/applbuild/internal/brokenspec"
)

// TestMain lets the scripts in testdata/script run applbuild as a command.
func TestMain(m *testing.M) {
	if os.Getenv(signalHelperEnv) != "" {
		signalHelper()
	}
	testscript.Main(m, map[string]func(){
		"applbuild": func() { os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// TestScript runs the CLI behaviour tests: each testdata/script/*.txtar is
// a sequence of commands with their expected output and exit status.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("XDG_CONFIG_HOME", env.WorkDir+"/config")
			return nil
		},
		Cmds: map[string]func(*testscript.TestScript, bool, []string){"exits": exits},
	})
}

// exits is the script command `exits CODE command args...`: it runs the
// command like exec and fails unless it exits with CODE. `! exec` accepts
// any failure; a spec mistake must be exit 2, a failure of the build 1.
func exits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE command [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: code %q is not a number", args[0])
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("exits: %v", err)
	}
	if got != want {
		ts.Fatalf("exit status %d, want %d", got, want)
	}
}

// TestBrokenCatalogueExits runs `applbuild plan` on every spec of
// testdata/broken: the exit status and the message its header names.
func TestBrokenCatalogueExits(t *testing.T) {
	cases, err := brokenspec.All("../../testdata/broken")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(filepath.Base(c.File), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"plan", c.File}, c.Args...), &stdout, &stderr)
			if strconv.Itoa(code) != c.Exit {
				t.Errorf("exit status %d, want %s\n%s", code, c.Exit, stderr.String())
			}
			lines := strings.Split(strings.TrimPrefix(stderr.String(), "applbuild: "), "\n")
			for _, l := range lines {
				if l == c.Want {
					return
				}
			}
			t.Errorf("stderr does not name the mistake\n got: %s\nwant: %s", stderr.String(), c.Want)
		})
	}
}

// An interrupted load stops: the context of the command reaches the loader.
func TestInterruptStopsLoad(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"plan", "web-cluster"}, &stdout, &stderr); code != exitError || !strings.Contains(stderr.String(), "context canceled") {
		t.Fatalf("exit %d, stderr %q; want exit 1 and context canceled", code, stderr.String())
	}
}
