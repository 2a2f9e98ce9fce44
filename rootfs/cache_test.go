package rootfs

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeBuilder writes a small tarball whose bytes depend on the request.
type fakeBuilder struct {
	name  string
	calls atomic.Int32
	// hook, if set, runs after the partial tarball is written; its error
	// is the build's.
	hook func(ctx context.Context) error
}

func (f *fakeBuilder) tool(context.Context) (string, error) {
	if f.name == "" {
		return "fake 1.0", nil
	}
	return f.name, nil
}

func (f *fakeBuilder) build(ctx context.Context, req Request, dir, debs string, progress func(string)) ([]Package, error) {
	f.calls.Add(1)
	progress("I: fake build")
	body := "rootfs of " + req.Suite + ": " + strings.Join(req.Packages, " ")
	if err := os.WriteFile(filepath.Join(dir, tarballName), []byte(body), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(debs, "base-files_13.8_amd64.deb"), []byte("deb"), 0o644); err != nil {
		return nil, err
	}
	if f.hook != nil {
		if err := f.hook(ctx); err != nil {
			return nil, err
		}
	}
	pkgs := []Package{{Name: "base-files", Version: "13.8", Arch: "amd64"}}
	for _, p := range req.Packages {
		pkgs = append(pkgs, Package{Name: p, Version: "1:1.0-1", Arch: "all"})
	}
	return pkgs, nil
}

func testRequest() Request {
	return Request{Suite: "trixie", Arch: "amd64", Packages: []string{"systemd-sysv", "udev"}}
}

func newCache(t *testing.T, b *fakeBuilder) *Cache {
	t.Helper()
	return &Cache{Dir: t.TempDir(), builder: b}
}

// leftovers lists what is in the cache directory apart from entries, lock
// files and the shared .deb directory.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		n := de.Name()
		if strings.HasSuffix(n, ".lock") || n == debsDirName {
			continue
		}
		out = append(out, n)
	}
	return out
}

func TestGetBuildsOnceThenReuses(t *testing.T) {
	b := &fakeBuilder{}
	c := newCache(t, b)
	var lines []string
	e1, err := c.Get(t.Context(), testRequest(), func(l string) { lines = append(lines, l) })
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) == 0 || lines[0] != "I: fake build" {
		t.Errorf("progress lines = %q, want the builder's first", lines)
	}
	e2, err := c.Get(t.Context(), testRequest(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := b.calls.Load(); n != 1 {
		t.Errorf("builds = %d, want 1", n)
	}
	if e1.Key != e2.Key || e1.SHA256 != e2.SHA256 || !e1.Created.Equal(e2.Created) {
		t.Errorf("second Get returned another entry: %+v vs %+v", e1, e2)
	}
	if e1.Tarball != filepath.Join(c.Dir, e1.Key, tarballName) {
		t.Errorf("Tarball = %s", e1.Tarball)
	}
	want := []Package{{"base-files", "13.8", "amd64"}, {"systemd-sysv", "1:1.0-1", "all"}, {"udev", "1:1.0-1", "all"}}
	if len(e1.Packages) != len(want) {
		t.Fatalf("Packages = %v, want %v", e1.Packages, want)
	}
	for i := range want {
		if e1.Packages[i] != want[i] {
			t.Errorf("Packages[%d] = %v, want %v", i, e1.Packages[i], want[i])
		}
	}
	if e1.Request.Variant != DefaultVariant || e1.Tool != "fake 1.0" {
		t.Errorf("entry request/tool = %+v %q", e1.Request, e1.Tool)
	}
	if err := c.Verify(e1.Key); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if l := leftovers(t, c.Dir); len(l) != 1 || l[0] != e1.Key {
		t.Errorf("cache dir holds %v, want only %s", l, e1.Key)
	}
}

func TestRefreshRebuilds(t *testing.T) {
	b := &fakeBuilder{}
	c := newCache(t, b)
	if _, err := c.Get(t.Context(), testRequest(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refresh(t.Context(), testRequest(), nil); err != nil {
		t.Fatal(err)
	}
	if n := b.calls.Load(); n != 2 {
		t.Errorf("builds = %d, want 2", n)
	}
	if l := leftovers(t, c.Dir); len(l) != 1 {
		t.Errorf("cache dir holds %v, want one entry", l)
	}
}

// Two Cache values on one directory take separate flocks, as two processes
// would; the second must wait for the first and reuse its entry.
func TestConcurrentGetsBuildOnce(t *testing.T) {
	dir := t.TempDir()
	started := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	b := &fakeBuilder{hook: func(context.Context) error {
		once.Do(func() { close(started) })
		<-release
		return nil
	}}
	var wg sync.WaitGroup
	entries := make([]*Entry, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() {
			c := &Cache{Dir: dir, builder: b}
			entries[i], errs[i] = c.Get(t.Context(), testRequest(), nil)
		})
		if i == 0 {
			<-started // the first holds the lock and is building
		}
	}
	time.Sleep(3 * lockPoll) // the second is now waiting on the lock
	close(release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Get %d: %v", i, err)
		}
	}
	if n := b.calls.Load(); n != 1 {
		t.Errorf("builds = %d, want 1", n)
	}
	if entries[0].Key != entries[1].Key || !entries[0].Created.Equal(entries[1].Created) {
		t.Errorf("entries differ: %+v %+v", entries[0], entries[1])
	}
}

func TestFailedBuildLeavesNothing(t *testing.T) {
	boom := errors.New("apt-get: boom")
	b := &fakeBuilder{hook: func(context.Context) error { return boom }}
	c := newCache(t, b)
	_, err := c.Get(t.Context(), testRequest(), nil)
	if !errors.Is(err, boom) {
		t.Fatalf("Get error = %v, want it to wrap %v", err, boom)
	}
	if l := leftovers(t, c.Dir); len(l) != 0 {
		t.Errorf("failed build left %v", l)
	}
	entries, err := c.List()
	if err != nil || len(entries) != 0 {
		t.Errorf("List = %v, %v; want nothing", entries, err)
	}
}

func TestCancelledBuildLeavesNothing(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	b := &fakeBuilder{hook: func(ctx context.Context) error {
		cancel() // Ctrl-C in the middle of a build
		<-ctx.Done()
		return ctx.Err()
	}}
	c := newCache(t, b)
	_, err := c.Get(ctx, testRequest(), nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Get error = %v, want context.Canceled", err)
	}
	if l := leftovers(t, c.Dir); len(l) != 0 {
		t.Errorf("cancelled build left %v", l)
	}
}

// A builder that does not notice the cancellation still must not produce
// an entry.
func TestCancelIgnoredByBuilderLeavesNothing(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	b := &fakeBuilder{hook: func(context.Context) error { cancel(); return nil }}
	c := newCache(t, b)
	if _, err := c.Get(ctx, testRequest(), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get error = %v, want context.Canceled", err)
	}
	if l := leftovers(t, c.Dir); len(l) != 0 {
		t.Errorf("cancelled build left %v", l)
	}
}

func TestWaitingForLockHonoursContext(t *testing.T) {
	dir := t.TempDir()
	c := &Cache{Dir: dir, builder: &fakeBuilder{}}
	k, err := c.Key(t.Context(), testRequest())
	if err != nil {
		t.Fatal(err)
	}
	l, err := lockFile(t.Context(), c.lockPath(k))
	if err != nil {
		t.Fatal(err)
	}
	defer l.unlock()
	ctx, cancel := context.WithTimeout(t.Context(), 3*lockPoll)
	defer cancel()
	if _, err := c.Get(ctx, testRequest(), nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get while locked = %v, want DeadlineExceeded", err)
	}
}

func TestCorruptEntryIsRebuilt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, e *Entry)
	}{
		{"truncated tarball", func(t *testing.T, e *Entry) {
			if err := os.Truncate(e.Tarball, e.Size/2); err != nil {
				t.Fatal(err)
			}
		}},
		{"missing tarball", func(t *testing.T, e *Entry) {
			if err := os.Remove(e.Tarball); err != nil {
				t.Fatal(err)
			}
		}},
		{"garbage meta", func(t *testing.T, e *Entry) {
			if err := os.WriteFile(filepath.Join(filepath.Dir(e.Tarball), metaName), []byte("{"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"missing meta", func(t *testing.T, e *Entry) {
			if err := os.Remove(filepath.Join(filepath.Dir(e.Tarball), metaName)); err != nil {
				t.Fatal(err)
			}
		}},
		{"empty package list", func(t *testing.T, e *Entry) {
			if err := os.WriteFile(filepath.Join(filepath.Dir(e.Tarball), packagesName), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &fakeBuilder{}
			c := newCache(t, b)
			e, err := c.Get(t.Context(), testRequest(), nil)
			if err != nil {
				t.Fatal(err)
			}
			tc.break_(t, e)
			if err := c.Verify(e.Key); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Verify = %v, want ErrCorrupt", err)
			}
			if l, _ := c.List(); len(l) != 0 {
				t.Errorf("List shows a corrupt entry: %v", l)
			}
			e2, err := c.Get(t.Context(), testRequest(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if n := b.calls.Load(); n != 2 {
				t.Errorf("builds = %d, want 2 (corrupt entry rebuilt)", n)
			}
			if err := c.Verify(e2.Key); err != nil {
				t.Errorf("Verify after rebuild: %v", err)
			}
			if l := leftovers(t, c.Dir); len(l) != 1 {
				t.Errorf("cache dir holds %v, want one entry", l)
			}
		})
	}
}

// A flipped byte keeps the size, so only Verify's full hash finds it.
func TestVerifyFindsSameSizeDamage(t *testing.T) {
	c := newCache(t, &fakeBuilder{})
	e, err := c.Get(t.Context(), testRequest(), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(e.Tarball)
	if err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if err := os.WriteFile(e.Tarball, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(e.Key); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Verify = %v, want ErrCorrupt", err)
	}
}

func TestListAndPrune(t *testing.T) {
	b := &fakeBuilder{}
	c := newCache(t, b)
	old := testRequest()
	old.Packages = []string{"apache2"}
	eOld, err := c.Get(t.Context(), old, nil)
	if err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	time.Sleep(10 * time.Millisecond)
	eNew, err := c.Get(t.Context(), testRequest(), nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 2 || l[0].Key != eOld.Key || l[1].Key != eNew.Key {
		t.Fatalf("List = %v, want old then new", l)
	}
	// A crashed build's temporary directory and a .deb no entry holds.
	stale := filepath.Join(c.Dir, tmpPrefix+eOld.Key+"-123")
	if err := os.MkdirAll(filepath.Join(stale, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.Dir, debsDirName, "gone_1_all.deb"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	freed, err := c.Prune(KeepNewerThan(cut))
	if err != nil {
		t.Fatal(err)
	}
	if freed < eOld.Size {
		t.Errorf("freed %d bytes, want at least the old tarball's %d", freed, eOld.Size)
	}
	l, err = c.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 1 || l[0].Key != eNew.Key {
		t.Errorf("after prune List = %v, want only the new entry", l)
	}
	if left := leftovers(t, c.Dir); len(left) != 1 || left[0] != eNew.Key {
		t.Errorf("after prune cache dir holds %v", left)
	}
	if _, err := os.Stat(c.lockPath(eOld.Key)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pruned entry's lock file remains: %v", err)
	}
	if _, err := os.Stat(filepath.Join(c.Dir, debsDirName, "gone_1_all.deb")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("unreferenced .deb kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(c.Dir, debsDirName, "base-files_13.8_amd64.deb")); err != nil {
		t.Errorf("referenced .deb pruned: %v", err)
	}
	// The cache still works after prune removed lock files.
	if _, err := c.Get(t.Context(), old, nil); err != nil {
		t.Fatal(err)
	}
	if n := b.calls.Load(); n != 3 {
		t.Errorf("builds = %d, want 3", n)
	}
}

// Prune leaves a key alone while someone holds its lock: a build in
// progress has a temporary directory that is not stale.
func TestPruneSkipsBusyKeys(t *testing.T) {
	c := newCache(t, &fakeBuilder{})
	e, err := c.Get(t.Context(), testRequest(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(c.Dir, tmpPrefix+e.Key+"-456")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := lockFile(t.Context(), c.lockPath(e.Key))
	if err != nil {
		t.Fatal(err)
	}
	defer l.unlock()
	if _, err := c.Prune(func(Entry) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); err != nil {
		t.Errorf("prune removed a locked build's directory: %v", err)
	}
	if err := c.Verify(e.Key); err != nil {
		t.Errorf("prune touched a locked entry: %v", err)
	}
	if _, err := os.Stat(filepath.Join(c.Dir, debsDirName, "base-files_13.8_amd64.deb")); err != nil {
		t.Errorf("prune removed .debs while a build was running: %v", err)
	}
}

func TestListEmptyOrMissingDir(t *testing.T) {
	c := &Cache{Dir: filepath.Join(t.TempDir(), "nope")}
	if l, err := c.List(); err != nil || len(l) != 0 {
		t.Errorf("List = %v, %v", l, err)
	}
	if n, err := c.Prune(func(Entry) bool { return false }); err != nil || n != 0 {
		t.Errorf("Prune = %d, %v", n, err)
	}
}

func TestDefaultDir(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "/x/cache")
	if d := DefaultDir(); d != "/x/cache/applbuild" {
		t.Errorf("DefaultDir = %s", d)
	}
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "/home/u")
	if d := DefaultDir(); d != "/home/u/.cache/applbuild" {
		t.Errorf("DefaultDir = %s", d)
	}
}

func TestReadStatusKeepsInstalled(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.tsv")
	data := "installed\tapt\t3.0.4\tamd64\nconfig-files\told\t1\tall\ninstalled\tlibc6\t2.41-12\tamd64\n"
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readStatus(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "apt" || got[1] != (Package{"libc6", "2.41-12", "amd64"}) {
		t.Errorf("readStatus = %v", got)
	}
	if err := os.WriteFile(p, []byte("installed\tapt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readStatus(p); err == nil {
		t.Error("readStatus accepted a short line")
	}
}

func TestDebFileName(t *testing.T) {
	p := Package{Name: "iputils-ping", Version: "3:20240905-3", Arch: "amd64"}
	if got, want := p.debFile(), "iputils-ping_3%3a20240905-3_amd64.deb"; got != want {
		t.Errorf("debFile = %s, want %s", got, want)
	}
}

func TestLineWriter(t *testing.T) {
	var got []string
	w := &lineWriter{emit: func(s string) { got = append(got, s) }}
	w.Write([]byte("I: one\nI: t"))
	w.Write([]byte("wo\r\n\nI: three"))
	w.flush()
	if strings.Join(got, "|") != "I: one|I: two|I: three" {
		t.Errorf("lines = %q", got)
	}
	for range 30 {
		w.Write([]byte("x\n"))
	}
	if n := strings.Count(w.tail(), "\n") + 1; n != keepLines {
		t.Errorf("tail keeps %d lines, want %d", n, keepLines)
	}
}

// TestGetRemovesKilledBuilds: what a SIGKILLed build of the key left (its
// temporary directory, an entry half deleted) goes when the key is next
// built; a temporary directory of another key stays, it may be live.
func TestGetRemovesKilledBuilds(t *testing.T) {
	b := &fakeBuilder{}
	c := newCache(t, b)
	k, err := c.Key(t.Context(), testRequest())
	if err != nil {
		t.Fatal(err)
	}
	other := tmpPrefix + strings.Repeat("a", 64) + "-1"
	for _, d := range []string{tmpPrefix + k + "-178857213/mmdebstrap.x", tmpPrefix + k + "-del-99/entry", other} {
		if err := os.MkdirAll(filepath.Join(c.Dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(c.Dir, tmpPrefix+k+"-178857213", tarballName), []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(t.Context(), testRequest(), nil); err != nil {
		t.Fatal(err)
	}
	if l := leftovers(t, c.Dir); len(l) != 2 || !slices.Contains(l, k) || !slices.Contains(l, other) {
		t.Errorf("cache dir holds %v, want only %s and the other key's %s", l, k, other)
	}
}
