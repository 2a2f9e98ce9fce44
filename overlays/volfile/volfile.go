// Package volfile models GlusterFS volume files (volfiles) as the seed wrote
// them by hand: a graph of translators, each with a type, options and
// subvolumes. It parses and writes them, reads the seed's column table
// ("input" of its Ruby program doit) and builds from it the seed's server
// graph (glusterfsd.vol) and one client graph per volume
// (glusterfs_<name>.vol). The legacy gluster generator and the
// `applbuild volfiles` command share this one implementation.
package volfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Graph is one volfile: translators in file order. The last one is the
// graph's top (what a client mounts, or the server).
type Graph struct {
	// Comments are the "# ..." lines before the first volume, without the
	// leading "#" and one space. The writer puts them back on top.
	Comments []string
	Volumes  []Volume
}

// Volume is one translator.
type Volume struct {
	Name       string
	Type       string
	Options    []Option // in file order; a key appears once
	Subvolumes []string
	Line       int // where "volume" stood when parsed, for messages
}

// Option is one "option KEY VALUE" line.
type Option struct{ Key, Value string }

// ErrSyntax is wrapped by every parse error.
var ErrSyntax = errors.New("volfile syntax error")

// Volume returns the translator named name, or nil.
func (g *Graph) Volume(name string) *Volume {
	for i := range g.Volumes {
		if g.Volumes[i].Name == name {
			return &g.Volumes[i]
		}
	}
	return nil
}

// Top is the last translator: the one the graph is used through.
func (g *Graph) Top() *Volume {
	if len(g.Volumes) == 0 {
		return nil
	}
	return &g.Volumes[len(g.Volumes)-1]
}

// Option returns the value of key and whether it is set.
func (v *Volume) Option(key string) (string, bool) {
	for _, o := range v.Options {
		if o.Key == key {
			return o.Value, true
		}
	}
	return "", false
}

// Set sets key to value, in place when present, else appended.
func (v *Volume) Set(key, value string) {
	for i, o := range v.Options {
		if o.Key == key {
			v.Options[i].Value = value
			return
		}
	}
	v.Options = append(v.Options, Option{key, value})
}

// Parse reads a volfile. name prefixes error messages (file:line: ...).
// Every translator must have a type, every subvolume must be defined
// earlier in the file (GlusterFS builds the graph bottom-up the same way),
// and names and option keys are unique.
func Parse(r io.Reader, name string) (*Graph, error) {
	g := &Graph{}
	var cur *Volume
	seen := map[string]bool{}
	bad := func(line int, format string, args ...any) error {
		return fmt.Errorf("%s:%d: %w: %s", name, line, ErrSyntax, fmt.Sprintf(format, args...))
	}
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			if cur == nil && len(g.Volumes) == 0 {
				g.Comments = append(g.Comments, strings.TrimPrefix(strings.TrimPrefix(line, "#"), " "))
			}
			continue
		}
		f := strings.Fields(line)
		switch f[0] {
		case "volume":
			if cur != nil {
				return nil, bad(n, "volume %q starts before volume %q ended (end-volume missing)", strings.Join(f[1:], " "), cur.Name)
			}
			if len(f) != 2 {
				return nil, bad(n, "want \"volume NAME\"")
			}
			if seen[f[1]] {
				return nil, bad(n, "volume %q defined twice", f[1])
			}
			cur = &Volume{Name: f[1], Line: n}
		case "type":
			if cur == nil {
				return nil, bad(n, "type outside a volume")
			}
			if len(f) != 2 {
				return nil, bad(n, "want \"type CLASS/NAME\"")
			}
			cur.Type = f[1]
		case "option":
			if cur == nil {
				return nil, bad(n, "option outside a volume")
			}
			if len(f) < 3 {
				return nil, bad(n, "want \"option KEY VALUE\"")
			}
			if _, dup := cur.Option(f[1]); dup {
				return nil, bad(n, "volume %q: option %q set twice", cur.Name, f[1])
			}
			cur.Options = append(cur.Options, Option{f[1], strings.Join(f[2:], " ")})
		case "subvolumes":
			if cur == nil {
				return nil, bad(n, "subvolumes outside a volume")
			}
			for _, s := range f[1:] {
				if !seen[s] {
					return nil, bad(n, "volume %q: subvolume %q is not defined above", cur.Name, s)
				}
			}
			cur.Subvolumes = append(cur.Subvolumes, f[1:]...)
		case "end-volume":
			if cur == nil {
				return nil, bad(n, "end-volume without volume")
			}
			if cur.Type == "" {
				return nil, bad(n, "volume %q has no type", cur.Name)
			}
			seen[cur.Name] = true
			g.Volumes = append(g.Volumes, *cur)
			cur = nil
		default:
			return nil, bad(n, "unknown directive %q", f[0])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if cur != nil {
		return nil, bad(n, "volume %q not ended (end-volume missing)", cur.Name)
	}
	if len(g.Volumes) == 0 {
		return nil, bad(n, "no volume")
	}
	return g, nil
}

// Bytes writes the graph in the seed's layout (its blank lines and rulers
// left out, options indented as glusterd writes them).
func (g *Graph) Bytes() []byte {
	var b bytes.Buffer
	for _, c := range g.Comments {
		if c == "" {
			b.WriteString("#\n")
		} else {
			fmt.Fprintf(&b, "# %s\n", c)
		}
	}
	for _, v := range g.Volumes {
		b.WriteString("\n")
		fmt.Fprintf(&b, "volume %s\n", v.Name)
		fmt.Fprintf(&b, "    type %s\n", v.Type)
		for _, o := range v.Options {
			fmt.Fprintf(&b, "    option %s %s\n", o.Key, o.Value)
		}
		if len(v.Subvolumes) > 0 {
			fmt.Fprintf(&b, "    subvolumes %s\n", strings.Join(v.Subvolumes, " "))
		}
		b.WriteString("end-volume\n")
	}
	return b.Bytes()
}
