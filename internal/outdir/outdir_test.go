package outdir

import (
	"errors"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func write(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	return out
}

// TestRefuses: what is not ours is never replaced, and the error says why.
func TestRefuses(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "file"), "precious\n")
	write(t, filepath.Join(root, "project", "go.mod"), "module x\n")
	if err := os.Symlink(filepath.Join(root, "project"), filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ dir, reason string }{
		{filepath.Join(root, "file"), "it is a file, not a directory"},
		{filepath.Join(root, "project"), "it holds 1 entries and is not an applbuild output"},
		{filepath.Join(root, "link"), "it is a symlink"},
		{filepath.Join(root, "file", "sub"), "a parent of it is not a directory"},
		{"/", "it is the root directory"},
	} {
		t.Run(c.dir, func(t *testing.T) {
			called := false
			err := Replace(c.dir, Access{}, func(string) error { called = true; return nil })
			var re *RefusedError
			if !errors.As(err, &re) || !errors.Is(err, ErrRefused) || re.Reason != c.reason {
				t.Fatalf("Replace(%s) = %v, want refused: %s", c.dir, err, c.reason)
			}
			if !strings.Contains(err.Error(), c.dir) || !strings.Contains(err.Error(), Marker) {
				t.Errorf("error %q names neither the directory nor the marker", err)
			}
			if called {
				t.Error("fill ran on a refused directory")
			}
		})
	}
	if b, _ := os.ReadFile(filepath.Join(root, "file")); string(b) != "precious\n" {
		t.Error("the file changed")
	}
	if b, _ := os.ReadFile(filepath.Join(root, "project", "go.mod")); string(b) != "module x\n" {
		t.Error("the project changed")
	}
	if got := names(t, root); !slices.Equal(got, []string{"file", "link", "project"}) {
		t.Errorf("left %v beside them", got)
	}
}

// TestReplaceAccepts: absent, empty and marked directories are written,
// and each result holds the marker that lets the next run replace it.
func TestReplaceAccepts(t *testing.T) {
	root := t.TempDir()
	empty := filepath.Join(root, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{filepath.Join(root, "absent", "deeper"), empty} {
		for round := range 2 { // the second round replaces the first's output
			err := Replace(dir, Access{}, func(tmp string) error {
				write(t, filepath.Join(tmp, "n1", "round"), strconv.Itoa(round))
				return nil
			})
			if err != nil {
				t.Fatalf("round %d of %s: %v", round, dir, err)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "n1", "round")); string(b) != strconv.Itoa(round) {
				t.Fatalf("round %d of %s: content %q", round, dir, b)
			}
			if got := names(t, dir); !slices.Equal(got, []string{Marker, "n1"}) {
				t.Errorf("%s holds %v", dir, got)
			}
		}
		if got := names(t, filepath.Dir(dir)); !slices.Equal(got, []string{filepath.Base(dir)}) && filepath.Dir(dir) != root {
			t.Errorf("left %v beside %s", got, dir)
		}
	}
	if got := names(t, root); !slices.Equal(got, []string{"absent", "empty"}) {
		t.Errorf("left %v in %s", got, root)
	}
}

// TestReplaceIsAtomic: a failed fill leaves the previous output as it was
// and nothing beside it.
func TestReplaceIsAtomic(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	if err := Replace(dir, Access{}, func(tmp string) error {
		write(t, filepath.Join(tmp, "keep"), "v1")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Replace(dir, Access{}, func(tmp string) error {
		write(t, filepath.Join(tmp, "keep"), "v2")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Replace = %v, want boom", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "keep")); string(b) != "v1" {
		t.Errorf("previous output changed to %q", b)
	}
	if got := names(t, filepath.Dir(dir)); !slices.Equal(got, []string{"out"}) {
		t.Errorf("a failed replace left %v", got)
	}
}

// TestStaleRemoved: what a killed run left (temp, work and moved-aside
// dirs of this output) goes on the next Open; look-alikes stay.
func TestStaleRemoved(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "xen")
	stale := []string{".xen.tmp-123", ".xen.work-4567", ".xen.tmp-89.old"}
	kept := []string{".xen.tmp-abc", ".xen.other-1", ".web.tmp-1", "xen-notes", ".xen.work-9file"}
	for _, n := range stale {
		write(t, filepath.Join(parent, n, "rootfs", "etc", "passwd"), "x")
	}
	for _, n := range kept[:4] {
		write(t, filepath.Join(parent, n, "x"), "x")
	}
	write(t, filepath.Join(parent, kept[4]), "a file, not a dir")
	d, err := Open(dir, Access{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got := names(t, parent)
	want := append([]string{".xen.lock"}, kept...)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("after Open: %v, want %v", got, want)
	}
}

// TestLock: a second writer of one output is refused while the first
// holds it, and may go once it is closed; the lock file goes with it.
func TestLock(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "out")
	d, err := Open(dir, Access{})
	if err != nil {
		t.Fatal(err)
	}
	work, err := d.TempDir("work")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Access{}); !errors.Is(err, ErrBusy) {
		t.Fatalf("second Open = %v, want ErrBusy", err)
	}
	if _, err := os.Stat(work); err != nil {
		t.Errorf("a refused second Open removed the first's work dir: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(lockPath(dir)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lock file left: %v", err)
	}
	d2, err := Open(dir, Access{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	d2.Close()
	if _, err := os.Stat(work); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the next Open kept the closed run's work dir: %v", err)
	}
}

func mode(t *testing.T, p string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func gid(t *testing.T, p string) int {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Sys().(*syscall.Stat_t).Gid)
}

// TestModes: an output is the user's alone (0700 dirs, 0600 files), or
// also a chosen group's (0750, 0640, that group).
func TestModes(t *testing.T) {
	g, err := user.LookupGroupId(strconv.Itoa(os.Getgid()))
	if err != nil {
		t.Skipf("no name for gid %d: %v", os.Getgid(), err)
	}
	grp, err := GroupAccess(g.Name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := GroupAccess("no-such-group-applbuild"); err == nil {
		t.Error("an unknown group was accepted")
	}
	for _, c := range []struct {
		a         Access
		dir, file fs.FileMode
	}{{Access{}, 0o700, 0o600}, {grp, 0o750, 0o640}} {
		out := filepath.Join(t.TempDir(), "out")
		err := Replace(out, c.a, func(tmp string) error {
			write(t, filepath.Join(tmp, "n1", "disk.img"), "secret bytes")
			return c.a.Restrict(tmp)
		})
		if err != nil {
			t.Fatal(err)
		}
		for p, want := range map[string]fs.FileMode{
			out: c.dir, filepath.Join(out, "n1"): c.dir,
			filepath.Join(out, "n1", "disk.img"): c.file, filepath.Join(out, Marker): c.file,
		} {
			if got := mode(t, p); got != want {
				t.Errorf("%+v: %s is %v, want %v", c.a, p, got, want)
			}
			if c.a.Group != "" && gid(t, p) != c.a.GID {
				t.Errorf("%s: gid %d, want %d", p, gid(t, p), c.a.GID)
			}
		}
	}
}

// TestClaim: a directory that holds outputs is created marked, an empty
// one is marked, a marked one accepted, anything else refused.
func TestClaim(t *testing.T) {
	for _, dir := range []string{filepath.Join(t.TempDir(), "new"), t.TempDir()} {
		if err := Claim(dir, Access{}); err != nil {
			t.Fatalf("Claim(%s): %v", dir, err)
		}
		if _, err := os.Stat(filepath.Join(dir, Marker)); err != nil {
			t.Fatalf("Claim(%s) left no marker: %v", dir, err)
		}
		if err := Claim(dir, Access{}); err != nil {
			t.Fatalf("second Claim(%s): %v", dir, err)
		}
	}
	other := filepath.Join(t.TempDir(), "home")
	write(t, filepath.Join(other, ".ssh", "id_ed25519"), "key")
	if err := Claim(other, Access{}); !errors.Is(err, ErrRefused) {
		t.Fatalf("Claim of a home = %v, want refused", err)
	}
	if _, err := os.Stat(filepath.Join(other, Marker)); err == nil {
		t.Error("a refused Claim marked the directory")
	}
}
