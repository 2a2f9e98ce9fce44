package rootfs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// ErrCorrupt matches an entry whose files are missing, truncated or do not
// match their recorded size or sha256. Get rebuilds such an entry.
var ErrCorrupt = errors.New("corrupt rootfs cache entry")

// Names inside an entry directory.
const (
	tarballName  = "rootfs.tar"
	packagesName = "packages.tsv"
	metaName     = "meta.json"
	debsDirName  = "debs"
	tmpPrefix    = "tmp-"
)

// Package is one installed Debian package, as dpkg-query reports it.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch"`
}

// debFile is the name apt gives the package's file in /var/cache/apt/archives.
func (p Package) debFile() string {
	return p.Name + "_" + strings.ReplaceAll(p.Version, ":", "%3a") + "_" + p.Arch + ".deb"
}

// Entry is one complete cached rootfs.
type Entry struct {
	Key      string    // hex sha256 of the request, tool and FormatVersion
	Tarball  string    // path of rootfs.tar
	Packages []Package // installed packages, sorted by name
	Size     int64     // tarball size in bytes
	SHA256   string    // tarball sha256, hex
	Created  time.Time // when the build finished
	Tool     string    // e.g. "mmdebstrap 1.3.5"
	Request  Request   // the normalized request
}

// meta is meta.json: what Get checks cheaply and Verify checks fully.
type meta struct {
	Format  int       `json:"format"`
	Key     string    `json:"key"`
	Tool    string    `json:"tool"`
	Request Request   `json:"request"`
	Size    int64     `json:"size"`
	SHA256  string    `json:"sha256"`
	Created time.Time `json:"created"`
}

// Cache is a directory of rootfs entries. The zero value of the unexported
// fields picks mmdebstrap, or debootstrap when mmdebstrap is missing.
type Cache struct {
	Dir string

	builder builder // nil: chosen by findBuilder; tests inject a fake
}

// DefaultDir is $XDG_CACHE_HOME/applbuild, else ~/.cache/applbuild.
func DefaultDir() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "applbuild")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".cache", "applbuild")
	}
	return filepath.Join(os.TempDir(), "applbuild-cache")
}

// Key returns the key Get would use for req with the installed tool.
func (c *Cache) Key(ctx context.Context, req Request) (string, error) {
	n, err := req.Normalize()
	if err != nil {
		return "", err
	}
	_, tool, err := c.tool(ctx)
	if err != nil {
		return "", err
	}
	return key(n, tool), nil
}

// Get returns the entry for req, building it first if it is missing or
// corrupt. progress, if not nil, receives the build's status lines. Two
// callers asking for the same key at once (in one process or several)
// build it once: the second waits for the first and reuses its entry.
func (c *Cache) Get(ctx context.Context, req Request, progress func(line string)) (*Entry, error) {
	return c.get(ctx, req, progress, false)
}

// Refresh rebuilds req's entry against the mirror as it is now, replacing
// any cached one.
func (c *Cache) Refresh(ctx context.Context, req Request, progress func(line string)) (*Entry, error) {
	return c.get(ctx, req, progress, true)
}

func (c *Cache) get(ctx context.Context, req Request, progress func(string), force bool) (*Entry, error) {
	n, err := req.Normalize()
	if err != nil {
		return nil, err
	}
	b, tool, err := c.tool(ctx)
	if err != nil {
		return nil, err
	}
	k := key(n, tool)
	if !force {
		if e, err := c.load(k); err == nil {
			return e, nil
		}
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("rootfs cache: %w", err)
	}
	l, err := lockFile(ctx, c.lockPath(k))
	if err != nil {
		return nil, fmt.Errorf("rootfs cache: %w", err)
	}
	defer l.unlock()
	if !force {
		// Whoever held the lock before us may have built it.
		if e, err := c.load(k); err == nil {
			return e, nil
		}
	}
	// Missing, corrupt, or to be refreshed: whatever is there goes, and
	// so do the temporary directories of builds of k that were killed
	// (SIGKILL, a power cut): holding the lock, no live build owns one.
	if err := c.removeEntry(k); err != nil {
		return nil, err
	}
	if err := c.removeDeadBuilds(k); err != nil {
		return nil, err
	}
	return c.build(ctx, b, n, tool, k, progress)
}

// build runs b into a temporary directory and renames it into place only
// when everything in it is complete and synced.
func (c *Cache) build(ctx context.Context, b builder, n Request, tool, k string, progress func(string)) (_ *Entry, err error) {
	if progress == nil {
		progress = func(string) {}
	}
	debs := filepath.Join(c.Dir, debsDirName)
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return nil, fmt.Errorf("rootfs cache: %w", err)
	}
	tmp, err := os.MkdirTemp(c.Dir, tmpPrefix+k+"-")
	if err != nil {
		return nil, fmt.Errorf("rootfs cache: %w", err)
	}
	// MkdirTemp makes it 0700; apt's download sandbox user (_apt) must
	// reach the chroot's lists and archives below it.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, errors.Join(fmt.Errorf("rootfs cache: %w", err), removeAll(tmp))
	}
	defer func() {
		if err != nil {
			if rerr := removeAll(tmp); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
	}()
	free := freeSpace(c.Dir)
	pkgs, err := b.build(ctx, n, tmp, debs, progress)
	if err == nil {
		err = ctx.Err() // a builder that ignored cancellation still fails
	}
	if err != nil && errors.Is(err, syscall.ENOSPC) {
		return nil, fmt.Errorf("rootfs cache %s: out of disk space (%d MiB free when the bootstrap started; it needs room for the chroot and its tarball, about twice the installed size of the packages): free space there or pass --cache-dir a directory on a larger file system: %w",
			c.Dir, free>>20, err)
	}
	if err != nil {
		return nil, fmt.Errorf("build rootfs %s %s: %w", n.Suite, k[:12], err)
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("build rootfs %s %s: no installed packages reported", n.Suite, k[:12])
	}
	slices.SortFunc(pkgs, func(a, b Package) int { return strings.Compare(a.Name+":"+a.Arch, b.Name+":"+b.Arch) })
	if err := writeFileSync(filepath.Join(tmp, packagesName), encodePackages(pkgs)); err != nil {
		return nil, err
	}
	size, sum, err := hashFile(filepath.Join(tmp, tarballName), true)
	if err != nil {
		return nil, fmt.Errorf("build rootfs %s: %w", k[:12], err)
	}
	m := meta{Format: FormatVersion, Key: k, Tool: tool, Request: n, Size: size, SHA256: sum, Created: time.Now().UTC()}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("rootfs cache: %w", err)
	}
	if err := writeFileSync(filepath.Join(tmp, metaName), append(mb, '\n')); err != nil {
		return nil, err
	}
	if err := syncDir(tmp); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, c.entryDir(k)); err != nil {
		return nil, fmt.Errorf("rootfs cache: %w", err)
	}
	if err := syncDir(c.Dir); err != nil {
		return nil, err
	}
	progress(fmt.Sprintf("rootfs %s: %d packages, %d MB, cached as %s", n.Suite, len(pkgs), size>>20, k[:12]))
	return c.load(k)
}

// load reads an entry and checks it cheaply: meta.json parses and names
// this key and format, the tarball has the recorded size, the package list
// parses. It returns an error wrapping fs.ErrNotExist or ErrCorrupt.
func (c *Cache) load(k string) (*Entry, error) {
	dir := c.entryDir(k)
	mb, err := os.ReadFile(filepath.Join(dir, metaName))
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(dir); errors.Is(serr, fs.ErrNotExist) {
			return nil, fmt.Errorf("rootfs entry %s: %w", k, fs.ErrNotExist)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("rootfs entry %s: %w: %w", k, ErrCorrupt, err)
	}
	var m meta
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, fmt.Errorf("rootfs entry %s: %w: meta.json: %w", k, ErrCorrupt, err)
	}
	if m.Format != FormatVersion || m.Key != k {
		return nil, fmt.Errorf("rootfs entry %s: %w: meta.json is for format %d key %s", k, ErrCorrupt, m.Format, m.Key)
	}
	tarball := filepath.Join(dir, tarballName)
	fi, err := os.Stat(tarball)
	if err != nil {
		return nil, fmt.Errorf("rootfs entry %s: %w: %w", k, ErrCorrupt, err)
	}
	if fi.Size() != m.Size {
		return nil, fmt.Errorf("rootfs entry %s: %w: tarball is %d bytes, want %d", k, ErrCorrupt, fi.Size(), m.Size)
	}
	pb, err := os.ReadFile(filepath.Join(dir, packagesName))
	if err != nil {
		return nil, fmt.Errorf("rootfs entry %s: %w: %w", k, ErrCorrupt, err)
	}
	pkgs, err := decodePackages(pb)
	if err != nil || len(pkgs) == 0 {
		return nil, fmt.Errorf("rootfs entry %s: %w: packages.tsv: %w", k, ErrCorrupt, err)
	}
	return &Entry{
		Key: k, Tarball: tarball, Packages: pkgs, Size: m.Size, SHA256: m.SHA256,
		Created: m.Created, Tool: m.Tool, Request: m.Request,
	}, nil
}

// Verify checks an entry fully: everything load checks, plus the tarball's
// sha256. A failure wraps ErrCorrupt; the next Get rebuilds the entry.
func (c *Cache) Verify(key string) error {
	e, err := c.load(key)
	if err != nil {
		return err
	}
	_, sum, err := hashFile(e.Tarball, false)
	if err != nil {
		return fmt.Errorf("rootfs entry %s: %w: %w", key, ErrCorrupt, err)
	}
	if sum != e.SHA256 {
		return fmt.Errorf("rootfs entry %s: %w: tarball sha256 %s, want %s", key, ErrCorrupt, sum, e.SHA256)
	}
	return nil
}

// List returns the complete entries, oldest first. Corrupt entries and
// builds in progress are left out; Prune removes the former.
func (c *Cache) List() ([]Entry, error) {
	des, err := os.ReadDir(c.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("rootfs cache: %w", err)
	}
	var out []Entry
	for _, de := range des {
		if !de.IsDir() || !isKey(de.Name()) {
			continue
		}
		if e, err := c.load(de.Name()); err == nil {
			out = append(out, *e)
		}
	}
	slices.SortStableFunc(out, func(a, b Entry) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// KeepNewerThan is a Prune policy: keep entries created after t.
func KeepNewerThan(t time.Time) func(Entry) bool {
	return func(e Entry) bool { return e.Created.After(t) }
}

// Prune removes every entry keep rejects, every corrupt entry, the
// leftovers of crashed builds, and downloaded packages no kept entry
// contains. Entries being built or locked by another process are left
// alone (and then so are the downloaded packages). It returns the bytes
// freed.
func (c *Cache) Prune(keep func(Entry) bool) (freed int64, err error) {
	des, err := os.ReadDir(c.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("rootfs cache: %w", err)
	}
	busy := false
	keepDebs := map[string]bool{}
	var errs []error
	// Keys with anything on disk: entries, temporary directories, locks.
	keys := map[string]bool{}
	for _, de := range des {
		name := de.Name()
		switch {
		case isKey(name):
			keys[name] = true
		case strings.HasSuffix(name, ".lock") && isKey(strings.TrimSuffix(name, ".lock")):
			keys[strings.TrimSuffix(name, ".lock")] = true
		case strings.HasPrefix(name, tmpPrefix) && len(name) > len(tmpPrefix)+64 && isKey(name[len(tmpPrefix):len(tmpPrefix)+64]):
			keys[name[len(tmpPrefix):len(tmpPrefix)+64]] = true
		}
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		l, ok, err := tryLockFile(c.lockPath(k))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			busy = true
			continue
		}
		// Holding the lock: any temporary directory of k is a dead build's.
		for _, de := range des {
			if strings.HasPrefix(de.Name(), tmpPrefix+k+"-") {
				p := filepath.Join(c.Dir, de.Name())
				freed += du(p)
				errs = append(errs, removeAll(p))
			}
		}
		e, lerr := c.load(k)
		switch {
		case lerr == nil && keep(*e):
			for _, p := range e.Packages {
				keepDebs[p.debFile()] = true
			}
			errs = append(errs, l.unlock())
			continue
		case errors.Is(lerr, fs.ErrNotExist):
		default:
			freed += du(c.entryDir(k))
			errs = append(errs, c.removeEntry(k))
		}
		errs = append(errs, l.removeAndUnlock())
	}
	if !busy {
		debs := filepath.Join(c.Dir, debsDirName)
		dd, err := os.ReadDir(debs)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
		for _, de := range dd {
			if keepDebs[de.Name()] {
				continue
			}
			p := filepath.Join(debs, de.Name())
			freed += du(p)
			errs = append(errs, os.RemoveAll(p))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return freed, fmt.Errorf("rootfs cache prune: %w", err)
	}
	return freed, nil
}

// removeEntry moves an entry aside (one rename, so no reader sees half of
// it) and deletes it. The caller holds the key's lock.
func (c *Cache) removeEntry(k string) error {
	dir := c.entryDir(k)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	aside, err := os.MkdirTemp(c.Dir, tmpPrefix+k+"-del-")
	if err != nil {
		return fmt.Errorf("rootfs cache: %w", err)
	}
	if err := os.Rename(dir, filepath.Join(aside, "entry")); err != nil {
		return errors.Join(fmt.Errorf("rootfs cache: %w", err), os.Remove(aside))
	}
	return removeAll(aside)
}

// freeSpace is what root may still write in dir, -1 if unknown.
func freeSpace(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return -1
	}
	return int64(st.Bfree) * st.Bsize
}

// removeDeadBuilds removes k's temporary directories. The caller holds
// k's lock.
func (c *Cache) removeDeadBuilds(k string) error {
	des, err := os.ReadDir(c.Dir)
	if err != nil {
		return fmt.Errorf("rootfs cache: %w", err)
	}
	var errs []error
	for _, de := range des {
		if strings.HasPrefix(de.Name(), tmpPrefix+k+"-") {
			errs = append(errs, removeAll(filepath.Join(c.Dir, de.Name())))
		}
	}
	return errors.Join(errs...)
}

func (c *Cache) entryDir(k string) string { return filepath.Join(c.Dir, k) }
func (c *Cache) lockPath(k string) string { return filepath.Join(c.Dir, k+".lock") }

// tool picks the builder and names it with its version.
func (c *Cache) tool(ctx context.Context) (builder, string, error) {
	b := c.builder
	if b == nil {
		var err error
		if b, err = findBuilder(); err != nil {
			return nil, "", err
		}
	}
	t, err := b.tool(ctx)
	if err != nil {
		return nil, "", err
	}
	return b, t, nil
}

func isKey(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

func encodePackages(pkgs []Package) []byte {
	var b bytes.Buffer
	for _, p := range pkgs {
		fmt.Fprintf(&b, "%s\t%s\t%s\n", p.Name, p.Version, p.Arch)
	}
	return b.Bytes()
}

func decodePackages(b []byte) ([]Package, error) {
	var out []Package
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 3 || f[0] == "" || f[1] == "" || f[2] == "" {
			return nil, fmt.Errorf("line %d: want name, version, arch separated by tabs", n)
		}
		out = append(out, Package{Name: f[0], Version: f[1], Arch: f[2]})
	}
	return out, sc.Err()
}

// hashFile returns a file's size and hex sha256, fsyncing it first if asked.
func hashFile(path string, sync bool) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	if sync {
		if err := f.Sync(); err != nil {
			return 0, "", err
		}
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", fmt.Errorf("%s: %w", path, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

func writeFileSync(path string, b []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// removeAll retries for a moment: processes of a killed build may still be
// dying and writing into the directory when the builder returns.
func removeAll(path string) error {
	var err error
	for range 20 {
		if err = os.RemoveAll(path); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("remove %s: %w", path, err)
}

// du is the apparent size of the regular files under path. A file hard
// linked elsewhere (a .deb still in a build's apt cache) is counted though
// its blocks stay in use: an estimate, for a human.
func du(path string) int64 {
	var n int64
	filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
