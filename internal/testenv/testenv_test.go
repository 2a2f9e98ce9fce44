package testenv

import (
	"fmt"
	"strings"
	"testing"
)

// recorder is a testing.TB that records Skip and Fatal instead of
// stopping the test that uses it.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
	panic(r)
}
func (r *recorder) Skip(args ...any) {
	r.skipped = fmt.Sprint(args...)
	panic(r)
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	panic(r)
}

func call(t *testing.T, f func(testing.TB)) *recorder {
	r := &recorder{TB: t}
	func() {
		defer func() {
			if v := recover(); v != nil && v != r {
				panic(v)
			}
		}()
		f(r)
	}()
	return r
}

// TestToolsStrict: a missing program skips, naming its package, and
// fails under APPLBUILD_REQUIRE=1 (make test); a present one does neither.
func TestToolsStrict(t *testing.T) {
	t.Setenv("APPLBUILD_REQUIRE", "")
	r := call(t, func(tb testing.TB) { Tools(tb, "sh", "mksquashfs-not-here") })
	if r.skipped == "" || r.failed != "" {
		t.Errorf("not strict: skipped %q, failed %q", r.skipped, r.failed)
	}
	t.Setenv("PATH", "/nonexistent")
	r = call(t, func(tb testing.TB) { Tools(tb, "mke2fs") })
	if !strings.Contains(r.skipped, "apt-get install e2fsprogs") {
		t.Errorf("skip message %q does not name the package", r.skipped)
	}
	t.Setenv("APPLBUILD_REQUIRE", "1")
	r = call(t, func(tb testing.TB) { Tools(tb, "mke2fs") })
	if !strings.HasPrefix(r.failed, "required by APPLBUILD_REQUIRE=1: mke2fs") || r.skipped != "" {
		t.Errorf("strict: skipped %q, failed %q", r.skipped, r.failed)
	}
}

func TestToolsPresent(t *testing.T) {
	t.Setenv("APPLBUILD_REQUIRE", "1")
	r := call(t, func(tb testing.TB) { Tools(tb, "sh") })
	if r.skipped != "" || r.failed != "" {
		t.Errorf("sh is installed: skipped %q, failed %q", r.skipped, r.failed)
	}
}

// TestSlow: slow tests run only under APPLBUILD_SLOW=1, strict or not.
func TestSlow(t *testing.T) {
	t.Setenv("APPLBUILD_SLOW", "")
	t.Setenv("APPLBUILD_REQUIRE", "1")
	if r := call(t, Slow); r.skipped == "" || r.failed != "" {
		t.Errorf("Slow without APPLBUILD_SLOW: skipped %q, failed %q", r.skipped, r.failed)
	}
	t.Setenv("APPLBUILD_SLOW", "1")
	if r := call(t, Slow); r.skipped != "" || r.failed != "" {
		t.Errorf("Slow with APPLBUILD_SLOW=1: skipped %q", r.skipped)
	}
}
