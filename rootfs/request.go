package rootfs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"unicode/utf8"
)

// FormatVersion is part of every key. Bump it when this package changes what
// it puts into a tarball (hooks, cleanup, layout), so old entries are not
// mistaken for new ones.
const FormatVersion = 2

// DefaultMirror is used when a Request names none.
const DefaultMirror = "http://deb.debian.org/debian"

// DefaultVariant is used when a Request names none; see the package doc for
// why it is minbase.
const DefaultVariant = "minbase"

// DefaultSourceDateEpoch (2025-08-09T00:00:00Z, the trixie release) clamps
// every mtime in a tarball when a Request sets none, so rebuilding the same
// request gives the same bytes.
const DefaultSourceDateEpoch int64 = 1754697600

// ErrInvalid matches every validation error of a Request.
var ErrInvalid = errors.New("invalid rootfs request")

// Request is everything that decides a rootfs tree's bytes, apart from the
// mirror's state at build time.
type Request struct {
	Suite      string   `json:"suite"`                // e.g. "trixie"; required
	Mirror     string   `json:"mirror"`               // default DefaultMirror
	Arch       string   `json:"arch"`                 // Debian architecture; default the host's
	Variant    string   `json:"variant"`              // mmdebstrap variant; default DefaultVariant
	Components []string `json:"components,omitempty"` // default ["main"]
	Packages   []string `json:"packages,omitempty"`   // installed on top of the variant
	// SourceDateEpoch clamps mtimes in the tarball; 0 means DefaultSourceDateEpoch.
	SourceDateEpoch int64 `json:"source_date_epoch"`
	// Files are written into the tree (0644 or 0755) before any package is
	// installed, so the packages' own scripts see them: the xen target's
	// initramfs configuration, read when the kernel's postinst makes the
	// initrd. Paths are under /etc or /usr/share and owned by no package.
	// Sorted by path; omitted from the key when empty, so requests without
	// files keep their entries.
	Files []File `json:"files,omitempty"`
}

// File is one file of Request.Files.
type File struct {
	Path    string `json:"path"`
	Content string `json:"content"`
	// Executable makes it 0755 (an initramfs-tools hook), not 0644.
	Executable bool `json:"executable,omitempty"`
}

// maxFileSize bounds each of Request.Files: configuration, not payload.
const maxFileSize = 64 << 10

var filePathRE = regexp.MustCompile(`^/(etc|usr/share)(/[A-Za-z0-9_][A-Za-z0-9._+-]*)+$`)

// StatOverrideFile is dpkg's database of permission overrides, the one file
// outside /etc and /usr/share a request may seed: dpkg applies its entries
// whenever it unpacks the files they name, at the build and at every
// upgrade after.
const StatOverrideFile = "/var/lib/dpkg/statoverride"

var (
	suiteRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9.+_-]*$`)
	archRE      = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	componentRE = regexp.MustCompile(`^[a-z0-9][a-z0-9/_.-]*$`)
	// A package name (Debian policy 5.6.1), optionally with :arch and
	// =version, as apt-get install accepts it.
	packageRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?(=[A-Za-z0-9.+~:-]+)?$`)
)

// variants are the mmdebstrap variants that give an installable system;
// extract, custom and "-" do not run maintainer scripts.
var variants = []string{"essential", "apt", "required", "minbase", "buildd", "important", "debootstrap", "standard"}

// Normalize returns r with defaults filled in and lists sorted and
// deduplicated, or an error wrapping ErrInvalid.
func (r Request) Normalize() (Request, error) {
	n := Request{
		Suite:           r.Suite,
		Mirror:          strings.TrimRight(r.Mirror, "/"),
		Arch:            r.Arch,
		Variant:         r.Variant,
		Components:      sortedUnique(r.Components),
		Packages:        sortedUnique(r.Packages),
		SourceDateEpoch: r.SourceDateEpoch,
	}
	if len(r.Files) > 0 {
		n.Files = slices.Clone(r.Files)
		slices.SortFunc(n.Files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	}
	for i, f := range n.Files {
		if !filePathRE.MatchString(f.Path) && f.Path != StatOverrideFile { // every segment starts with [A-Za-z0-9_]: no "." or ".."
			return Request{}, fmt.Errorf("%w: file %q: want a clean path under /etc or /usr/share, or %s", ErrInvalid, f.Path, StatOverrideFile)
		}
		if i > 0 && n.Files[i-1].Path == f.Path {
			return Request{}, fmt.Errorf("%w: file %s given twice", ErrInvalid, f.Path)
		}
		if len(f.Content) > maxFileSize || strings.ContainsRune(f.Content, 0) || !utf8.ValidString(f.Content) {
			return Request{}, fmt.Errorf("%w: file %s: want UTF-8 text without NUL, at most %d bytes", ErrInvalid, f.Path, maxFileSize)
		}
	}
	if n.Mirror == "" {
		n.Mirror = DefaultMirror
	}
	if n.Arch == "" {
		n.Arch = hostArch()
	}
	if n.Variant == "" {
		n.Variant = DefaultVariant
	}
	if len(n.Components) == 0 {
		n.Components = []string{"main"}
	}
	if n.SourceDateEpoch == 0 {
		n.SourceDateEpoch = DefaultSourceDateEpoch
	}
	if !suiteRE.MatchString(n.Suite) {
		return Request{}, fmt.Errorf("%w: suite %q", ErrInvalid, n.Suite)
	}
	if u, err := url.Parse(n.Mirror); err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file") || strings.ContainsAny(n.Mirror, " \t\n'") {
		return Request{}, fmt.Errorf("%w: mirror %q: want an http, https or file URL", ErrInvalid, n.Mirror)
	}
	if !archRE.MatchString(n.Arch) {
		return Request{}, fmt.Errorf("%w: arch %q", ErrInvalid, n.Arch)
	}
	if !slices.Contains(variants, n.Variant) {
		return Request{}, fmt.Errorf("%w: variant %q: want one of %s", ErrInvalid, n.Variant, strings.Join(variants, ", "))
	}
	for _, c := range n.Components {
		if !componentRE.MatchString(c) {
			return Request{}, fmt.Errorf("%w: component %q", ErrInvalid, c)
		}
	}
	for _, p := range n.Packages {
		if !packageRE.MatchString(p) {
			return Request{}, fmt.Errorf("%w: package %q", ErrInvalid, p)
		}
	}
	if n.SourceDateEpoch < 0 {
		return Request{}, fmt.Errorf("%w: source date epoch %d", ErrInvalid, n.SourceDateEpoch)
	}
	return n, nil
}

// keyInput is the canonical encoding hashed into a key. Its field order is
// fixed by the struct; encoding/json adds no whitespace and no map order.
type keyInput struct {
	Format  int     `json:"format"`
	Tool    string  `json:"tool"`
	Request Request `json:"request"`
}

// key hashes an already normalized request with the tool that builds it.
func key(n Request, tool string) string {
	b, err := json.Marshal(keyInput{Format: FormatVersion, Tool: tool, Request: n})
	if err != nil {
		// A struct of strings and ints always marshals.
		panic(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func sortedUnique(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// hostArch maps the Go architecture to Debian's name for it.
func hostArch() string {
	switch runtime.GOARCH {
	case "386":
		return "i386"
	case "arm":
		return "armhf"
	case "ppc64le":
		return "ppc64el"
	case "mips64le":
		return "mips64el"
	case "loong64":
		return "loong64"
	default:
		return runtime.GOARCH
	}
}
