package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/applbuild/applbuild/internal/outdir"
	"github.com/applbuild/applbuild/internal/testenv"
)

// TestE2EFaults runs the real command into the faults a user meets: an
// unreachable mirror, a full disk under --out, a missing program. Each
// must fail with a message that says what to do, leave nothing half
// written, and leave the cache such that the next build with the right
// setting works.
func TestE2EFaults(t *testing.T) {
	testenv.Slow(t)
	testenv.Root(t)
	testenv.Tools(t, "mmdebstrap", "mke2fs", "tar", "cp", "unshare", "losetup")
	c := newChaos(t) // the binary, a secret, a private cache with the shared .debs

	fail := func(t *testing.T, env []string, wants ...string) string {
		t.Helper()
		args := c.command().Args
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), env...)
		var log bytes.Buffer
		cmd.Stdout, cmd.Stderr = &log, &log
		err := cmd.Run()
		if err == nil {
			t.Fatalf("%s: succeeded\n%s", strings.Join(args, " "), lastLines(log.String(), 20))
		}
		msg := log.String()
		for _, w := range wants {
			if !strings.Contains(msg, w) {
				t.Errorf("the output does not say %q:\n%s", w, lastLines(msg, 20))
			}
		}
		c.cacheComplete(t.Name())
		c.noLeftovers(t.Name())
		return lastLines(msg, 1)
	}

	t.Run("unreachable mirror", func(t *testing.T) {
		c.t = t
		args := append(c.command().Args[1:], "--set", "mirror=http://127.0.0.1:9/debian")
		cmd := exec.Command(c.bin, args...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatal("a build from an unreachable mirror succeeded")
		}
		for _, w := range []string{"the Debian mirror http://127.0.0.1:9/debian cannot be used", "check the network and the mirror"} {
			if !strings.Contains(string(out), w) {
				t.Errorf("the output does not say %q:\n%s", w, lastLines(string(out), 10))
			}
		}
		t.Logf("faults: %s", lastLines(string(out), 1))
		c.noLeftovers(t.Name())
		c.cacheComplete(t.Name())
	})
	c.t = t
	c.build("the build after the unreachable mirror")
	prev := sumTree(t, c.final)

	t.Run("full disk under --out", func(t *testing.T) {
		c.t = t
		small := filepath.Join(t.TempDir(), "small")
		if err := os.Mkdir(small, 0o755); err != nil {
			t.Fatal(err)
		}
		args := append(c.command().Args[1:], "--out", small) // the last --out wins
		script := `mount -t tmpfs -o size=64m tmpfs "$1" && shift && "$@"; rc=$?; find "$0" -mindepth 1 -maxdepth 2 | sed "s|^|left: |"; exit $rc`
		cmd := exec.Command("unshare", append([]string{"--mount", "--propagation=private", "--", "sh", "-c", script, small, small, c.bin}, args...)...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("a build onto 64 MiB succeeded\n%s", out)
		}
		for _, w := range []string{"out of disk space in " + filepath.Join(small, "tiny"), "this build needs about", "pass --out a directory on a larger file system"} {
			if !strings.Contains(string(out), w) {
				t.Errorf("the output does not say %q:\n%s", w, lastLines(string(out), 10))
			}
		}
		for _, l := range strings.Split(string(out), "\n") {
			// The directories above the output, claimed with their
			// markers, are all a failed build may leave.
			allowed := map[string]bool{filepath.Join(small, "tiny"): true, filepath.Join(small, outdir.Marker): true,
				filepath.Join(small, "tiny", outdir.Marker): true}
			if p, ok := strings.CutPrefix(l, "left: "); ok && !allowed[p] {
				t.Errorf("the failed build %s", l)
			}
		}
		t.Logf("faults: %s", strings.Join(grepLines(string(out), "out of disk space"), " "))
		c.cacheComplete(t.Name())
	})

	t.Run("missing mke2fs", func(t *testing.T) {
		c.t = t
		bin := t.TempDir()
		for _, dir := range []string{"/usr/local/bin", "/usr/bin", "/usr/sbin", "/bin", "/sbin"} {
			des, _ := os.ReadDir(dir)
			for _, de := range des {
				n := de.Name()
				if n == "mke2fs" || strings.HasPrefix(n, "mkfs.ext") {
					continue
				}
				_ = os.Symlink(filepath.Join(dir, n), filepath.Join(bin, n)) // the first of a name wins
			}
		}
		fail(t, []string{"PATH=" + bin}, "mke2fs: not found in PATH (install it: apt-get install e2fsprogs)", "[verify] failed")
	})

	c.t = t
	if got := sumTree(t, c.final); !got.equal(prev) {
		t.Fatalf("a failed build changed the previous output:\n%s", got.diff(prev))
	}
	c.build("the build after the faults")
	c.noLeftovers("the build after the faults")
}

func grepLines(s, sub string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}
