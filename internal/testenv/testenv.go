// Package testenv lets tests ask for programs, root and network in one
// place, so that `make test` (APPLBUILD_REQUIRE=1) fails on a missing
// validator instead of skipping it silently.
package testenv

import (
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/applbuild/applbuild/internal/run"
)

// Strict reports whether a missing requirement must fail the test rather
// than skip it. make test and .ci/run set APPLBUILD_REQUIRE=1.
func Strict() bool { return os.Getenv("APPLBUILD_REQUIRE") == "1" }

func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if Strict() {
		t.Fatalf("required by APPLBUILD_REQUIRE=1: "+format, args...)
	}
	t.Skipf(format, args...)
}

// Tools skips (or, strict, fails) unless every program is installed, and
// returns nothing: tests call the programs by name through package run.
func Tools(t testing.TB, progs ...string) {
	t.Helper()
	for _, p := range progs {
		if _, err := run.Look(p); err != nil {
			missing(t, "%v", err)
		}
	}
}

// Files skips (or, strict, fails) unless every file exists: data a test
// reads from an installed package (a resource agent's script).
func Files(t testing.TB, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			missing(t, "%v", err)
		}
	}
}

// Root skips (or, strict, fails) unless the test runs as root.
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "needs root")
	}
}

// Slow skips unless APPLBUILD_SLOW=1: tests that take minutes or reach the
// Debian mirror run only from the make targets that name them (make e2e).
func Slow(t testing.TB) {
	t.Helper()
	if os.Getenv("APPLBUILD_SLOW") != "1" {
		t.Skip("slow test: run with APPLBUILD_SLOW=1 (make e2e)")
	}
}

// CPUTime runs f on one locked OS thread and returns the CPU time that
// thread spent in it. A bound on it holds on a loaded machine, where a
// bound on the wall clock fails a fast function starved of CPU.
func CPUTime(f func()) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := threadCPU()
	f()
	return threadCPU() - before
}

func threadCPU() time.Duration {
	var ru syscall.Rusage
	const rusageThread = 1 // RUSAGE_THREAD
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
