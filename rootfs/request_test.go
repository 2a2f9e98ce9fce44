package rootfs

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func mustKey(t *testing.T, r Request, tool string) string {
	t.Helper()
	n, err := r.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	return key(n, tool)
}

func TestNormalizeDefaults(t *testing.T) {
	n, err := Request{Suite: "trixie", Mirror: "http://deb.debian.org/debian/", Arch: "amd64"}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	want := Request{Suite: "trixie", Mirror: DefaultMirror, Arch: "amd64", Variant: DefaultVariant,
		Components: []string{"main"}, Packages: []string{}, SourceDateEpoch: DefaultSourceDateEpoch}
	if n.Suite != want.Suite || n.Mirror != want.Mirror || n.Variant != want.Variant ||
		!slices.Equal(n.Components, want.Components) || len(n.Packages) != 0 || n.SourceDateEpoch != want.SourceDateEpoch {
		t.Errorf("Normalize = %+v, want %+v", n, want)
	}
	if n, _ := (Request{Suite: "trixie"}).Normalize(); n.Arch == "" {
		t.Error("Normalize left Arch empty")
	}
}

func TestKeyIgnoresOrderDuplicatesAndDefaults(t *testing.T) {
	a := Request{Suite: "trixie", Arch: "amd64", Packages: []string{"udev", "systemd-sysv", "udev"}, Components: []string{"main", "contrib"}}
	b := Request{Suite: "trixie", Arch: "amd64", Mirror: DefaultMirror + "/", Variant: DefaultVariant,
		Packages: []string{" systemd-sysv", "udev", ""}, Components: []string{"contrib", "main", "contrib"}, SourceDateEpoch: DefaultSourceDateEpoch}
	ka, kb := mustKey(t, a, "mmdebstrap 1.3.5"), mustKey(t, b, "mmdebstrap 1.3.5")
	if ka != kb {
		t.Errorf("equivalent requests have different keys %s, %s", ka, kb)
	}
	if len(ka) != 64 || !isKey(ka) {
		t.Errorf("key %q is not 64 hex digits", ka)
	}
	// Same input, same key, every time: no map order, no clock.
	for range 20 {
		if k := mustKey(t, a, "mmdebstrap 1.3.5"); k != ka {
			t.Fatalf("key changed between calls: %s, %s", ka, k)
		}
	}
}

func TestKeyChangesWithEveryField(t *testing.T) {
	base := Request{Suite: "trixie", Mirror: DefaultMirror, Arch: "amd64", Variant: "minbase",
		Components: []string{"main"}, Packages: []string{"systemd-sysv"}, SourceDateEpoch: 1}
	const tool = "mmdebstrap 1.3.5"
	k0 := mustKey(t, base, tool)
	for _, tc := range []struct {
		name string
		edit func(*Request)
	}{
		{"suite", func(r *Request) { r.Suite = "bookworm" }},
		{"mirror", func(r *Request) { r.Mirror = "http://ftp.de.debian.org/debian" }},
		{"arch", func(r *Request) { r.Arch = "arm64" }},
		{"variant", func(r *Request) { r.Variant = "apt" }},
		{"components", func(r *Request) { r.Components = []string{"main", "contrib"} }},
		{"package added", func(r *Request) { r.Packages = append(r.Packages, "udev") }},
		{"package renamed", func(r *Request) { r.Packages = []string{"systemd"} }},
		{"no packages", func(r *Request) { r.Packages = nil }},
		{"source date epoch", func(r *Request) { r.SourceDateEpoch = 2 }},
		{"file added", func(r *Request) { r.Files = []File{{Path: "/etc/initramfs-tools/conf.d/x", Content: "MODULES=list\n"}} }},
		{"empty file added", func(r *Request) { r.Files = []File{{Path: "/etc/x"}} }},
		{"executable file", func(r *Request) { r.Files = []File{{Path: "/etc/x", Executable: true}} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := base
			r.Components = slices.Clone(base.Components)
			r.Packages = slices.Clone(base.Packages)
			tc.edit(&r)
			if k := mustKey(t, r, tool); k == k0 {
				t.Errorf("changing %s kept key %s", tc.name, k)
			}
		})
	}
	// No files is the request as it was before there were files: the
	// entries already cached keep their keys.
	if k := mustKey(t, Request{Suite: base.Suite, Mirror: base.Mirror, Arch: base.Arch, Variant: base.Variant, Components: base.Components,
		Packages: base.Packages, SourceDateEpoch: base.SourceDateEpoch, Files: []File{}}, tool); k != k0 {
		t.Error("an empty file list changed the key")
	}
	f1 := base
	f1.Files = []File{{Path: "/etc/a", Content: "1"}, {Path: "/etc/b", Content: "2"}}
	f2 := base
	f2.Files = []File{{Path: "/etc/b", Content: "2"}, {Path: "/etc/a", Content: "1"}}
	f3 := base
	f3.Files = []File{{Path: "/etc/a", Content: "2"}, {Path: "/etc/b", Content: "1"}}
	if mustKey(t, f1, tool) != mustKey(t, f2, tool) {
		t.Error("the order of the files changed the key")
	}
	if mustKey(t, f1, tool) == mustKey(t, f3, tool) {
		t.Error("swapping two files' contents kept the key")
	}
	if k := mustKey(t, base, "mmdebstrap 1.3.6"); k == k0 {
		t.Error("another mmdebstrap version kept the key")
	}
	if k := mustKey(t, base, "debootstrap 1.0.128"); k == k0 {
		t.Error("another tool kept the key")
	}
	// Packages are not split or joined: "a b" must not equal ["a", "b"].
	n1 := base
	n1.Packages = []string{"abc", "de"}
	n2 := base
	n2.Packages = []string{"ab", "cde"}
	if mustKey(t, n1, tool) == mustKey(t, n2, tool) {
		t.Error("package lists with the same concatenation share a key")
	}
}

func TestNormalizeRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Request
	}{
		{"no suite", Request{}},
		{"suite with slash", Request{Suite: "../x"}},
		{"mirror without scheme", Request{Suite: "trixie", Mirror: "deb.debian.org/debian"}},
		{"ftp mirror", Request{Suite: "trixie", Mirror: "ftp://deb.debian.org/debian"}},
		{"mirror with quote", Request{Suite: "trixie", Mirror: "http://x/'y"}},
		{"arch", Request{Suite: "trixie", Arch: "AMD64"}},
		{"variant extract", Request{Suite: "trixie", Variant: "extract"}},
		{"variant unknown", Request{Suite: "trixie", Variant: "tiny"}},
		{"component", Request{Suite: "trixie", Components: []string{"main contrib"}}},
		{"package with comma", Request{Suite: "trixie", Packages: []string{"a,b"}}},
		{"package option", Request{Suite: "trixie", Packages: []string{"--force-yes"}}},
		{"package upper case", Request{Suite: "trixie", Packages: []string{"Apache2"}}},
		{"negative epoch", Request{Suite: "trixie", SourceDateEpoch: -1}},
		{"relative file", Request{Suite: "trixie", Files: []File{{Path: "etc/x"}}}},
		{"file outside /etc and /usr/share", Request{Suite: "trixie", Files: []File{{Path: "/usr/sbin/init"}}}},
		{"file up and out", Request{Suite: "trixie", Files: []File{{Path: "/etc/../bin/sh"}}}},
		{"file in dpkg's database but not the override", Request{Suite: "trixie", Files: []File{{Path: "/var/lib/dpkg/status"}}}},
		{"the override, dotted", Request{Suite: "trixie", Files: []File{{Path: "/var/lib/dpkg/statoverride/."}}}},
		{"file with double slash", Request{Suite: "trixie", Files: []File{{Path: "/etc//x"}}}},
		{"file with quote", Request{Suite: "trixie", Files: []File{{Path: "/etc/x'y"}}}},
		{"file is a directory", Request{Suite: "trixie", Files: []File{{Path: "/etc/"}}}},
		{"file twice", Request{Suite: "trixie", Files: []File{{Path: "/etc/x"}, {Path: "/etc/x", Content: "y"}}}},
		{"file with NUL", Request{Suite: "trixie", Files: []File{{Path: "/etc/x", Content: "a\x00b"}}}},
		{"file not UTF-8", Request{Suite: "trixie", Files: []File{{Path: "/etc/x", Content: "\xff"}}}},
		{"file too large", Request{Suite: "trixie", Files: []File{{Path: "/etc/x", Content: strings.Repeat("x", maxFileSize+1)}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.r.Normalize(); !errors.Is(err, ErrInvalid) {
				t.Errorf("Normalize(%+v) = %v, want ErrInvalid", tc.r, err)
			}
		})
	}
	ok := []string{"linux-image-amd64", "libstdc++6", "grub-xen-bin", "libc6:amd64", "apt=3.0.4"}
	if _, err := (Request{Suite: "trixie", Packages: ok}).Normalize(); err != nil {
		t.Errorf("valid package names rejected: %v", err)
	}
}
