// Package overlays generates every file a node's image gets on top of the
// Debian rootfs: cluster configs, network, accounts, first-boot units.
//
// Each generator is one concern and a pure function of the Plan, the node
// and the key ring: no I/O, no clock, no randomness. That makes the whole
// overlay golden-testable and lets `applbuild render` show it without
// building anything.
package overlays

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"text/template"

	"github.com/applbuild/applbuild/builder"
	"github.com/applbuild/applbuild/internal/keys"
)

// File is one path in the image.
type File struct {
	Path string      // absolute path in the image
	Mode fs.FileMode // permission bits (and fs.ModeDir / fs.ModeSymlink)
	// Owner is "user:group" by name, resolved against the image's own
	// passwd and group at build time; "" is root:root.
	Owner string
	Data  []byte
	Link  string // symlink target when Mode has fs.ModeSymlink
	// Generator names who made it, for error messages and render --list.
	Generator string
}

// IsDir reports whether f is a directory.
func (f File) IsDir() bool { return f.Mode&fs.ModeDir != 0 }

// SameDir returns nil when a and b, two claims on one path, are the same
// directory: several generators may need one (/etc/systemd/system), but
// none may change what another made it. Anything else claimed twice is an
// error naming both generators.
func SameDir(a, b File) error {
	if !a.IsDir() || !b.IsDir() {
		return fmt.Errorf("%s written by both %s and %s", a.Path, a.Generator, b.Generator)
	}
	if a.Mode != b.Mode || a.Owner != b.Owner {
		owner := func(f File) string {
			if f.Owner == "" {
				return "root:root"
			}
			return f.Owner
		}
		return fmt.Errorf("directory %s claimed by %s as %v %s and by %s as %v %s",
			a.Path, a.Generator, a.Mode.Perm(), owner(a), b.Generator, b.Mode.Perm(), owner(b))
	}
	return nil
}

// IsLink reports whether f is a symlink.
func (f File) IsLink() bool { return f.Mode&fs.ModeSymlink != 0 }

// Input is what a generator sees.
type Input struct {
	Plan *builder.Plan
	Node *builder.Node
	Keys *keys.Ring // the cluster's (ClusterKeys), never the site's
}

// Generator makes the files of one concern for one node.
type Generator struct {
	Name string
	Gen  func(Input) ([]File, error)
}

// Generators is the registry, in the order they run. A later generator may
// not write a path an earlier one wrote: each file has one owner.
func Generators() []Generator {
	return []Generator{
		{"network", network},
		{"fstab", fstab},
		{"ssh", sshAccess},
		{"dsh", dsh},
		{"accounts", accounts},
		{"branding", branding},
		{"locale", locale},
		{"cockpit", cockpit},
		{"monit", monit},
		{"corosync", corosync},
		{"pacemaker", pacemaker},
		{"fencing", fencing},
		{"drbd", drbd},
		{"nfs", nfs},
		{"gluster", gluster},
		{"rsync", rsync},
		{"apache", apache},
		{"mariadb", mariadb},
		{"pound", pound},
		{"puppet", puppetCA},
		{"scm", scm},
		{"firstboot", firstboot},
	}
}

// Render runs every generator for node and returns its files sorted by
// path, with the directories they need. ring is the site's: generators get
// the cluster's (ClusterKeys), so two clusters of one site share no key.
func Render(pl *builder.Plan, node *builder.Node, ring *keys.Ring) ([]File, error) {
	in := Input{Plan: pl, Node: node, Keys: ClusterKeys(pl, ring)}
	byPath := map[string]File{}
	for _, g := range Generators() {
		files, err := g.Gen(in)
		if err != nil {
			return nil, fmt.Errorf("%s: generator %s: %w", node.Name, g.Name, err)
		}
		for _, f := range files {
			f.Generator = g.Name
			if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path {
				return nil, fmt.Errorf("%s: generator %s: path %q is not clean and absolute", node.Name, g.Name, f.Path)
			}
			if f.Mode == 0 {
				f.Mode = 0o644
			}
			if prev, dup := byPath[f.Path]; dup {
				if err := SameDir(prev, f); err != nil {
					return nil, fmt.Errorf("%s: %w", node.Name, err)
				}
				continue
			}
			byPath[f.Path] = f
		}
	}
	out := make([]File, 0, len(byPath))
	for _, f := range byPath {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// ClusterKeys is the key ring of pl's cluster, derived from the site's ring
// and the cluster's identity (the plan's seed: cluster name and domain).
func ClusterKeys(pl *builder.Plan, site *keys.Ring) *keys.Ring { return site.Cluster(pl.Seed) }

//go:embed templates
var templates embed.FS

// funcs are the helpers every template may use: a few for text, and one
// quoting helper per language (quote.go) for every value from the spec.
var funcs = func() template.FuncMap {
	m := template.FuncMap{
		"join":  strings.Join,
		"upper": strings.ToUpper,
		"add":   func(a, b int) int { return a + b },
	}
	for name, f := range quoteFuncs() {
		m[name] = f
	}
	return m
}()

// execute renders templates/<name> with data.
func execute(name string, data any) ([]byte, error) {
	t, err := template.New(name).Funcs(funcs).Option("missingkey=error").ParseFS(templates, "templates/"+name)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// tmpl is a File made from a template.
func tmpl(imagePath string, mode fs.FileMode, name string, data any) (File, error) {
	b, err := execute(name, data)
	if err != nil {
		return File{}, fmt.Errorf("%s: %w", imagePath, err)
	}
	return File{Path: imagePath, Mode: mode, Data: b}, nil
}

// symlink is a symbolic link at imagePath pointing to target.
func symlink(imagePath, target string) File {
	return File{Path: imagePath, Mode: fs.ModeSymlink | 0o777, Link: target}
}

// directory is a directory with its mode and owner ("user:group", "" for root).
func directory(imagePath string, perm fs.FileMode, owner string) File {
	return File{Path: imagePath, Mode: fs.ModeDir | perm, Owner: owner}
}

// wantedBy enables unit as `systemctl enable` would for WantedBy=target.
func wantedBy(target, unit string) File {
	return symlink("/etc/systemd/system/"+target+".wants/"+unit, "/etc/systemd/system/"+unit)
}

// text is a File with literal content.
func text(imagePath string, mode fs.FileMode, s string) File {
	return File{Path: imagePath, Mode: mode, Data: []byte(s)}
}

// tmplData is what most templates get: the plan, the node and shortcuts.
type tmplData struct {
	Plan *builder.Plan
	Node *builder.Node
}

func data(in Input) tmplData { return tmplData{Plan: in.Plan, Node: in.Node} }
