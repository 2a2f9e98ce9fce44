package personalities

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed *.yaml
var embedded embed.FS

// Embedded is the set of personalities compiled into the binary.
func Embedded() fs.FS { return embedded }

// ErrUnknown is returned (wrapped) for a personality that does not exist.
var ErrUnknown = errors.New("unknown personality")

// Options are the layers applied on top of a personality.
type Options struct {
	Site string   // path of a site file merged on top
	Set  []string // key.path=value overrides, applied last
}

// Library resolves personality names: a path to a YAML file, or a name
// looked up in Dirs (in order) and then in the embedded set.
type Library struct {
	Dirs []string // user directories of personalities
}

// source is the merged YAML tree and the file each node came from.
type source struct {
	root   *yaml.Node
	origin map[*yaml.Node]string
}

func (s *source) pos(n *yaml.Node) Pos {
	if n == nil {
		return Pos{}
	}
	return Pos{File: s.origin[n], Line: n.Line, Col: n.Column}
}

// Load reads the personality ref (a name or a path), merges its extends:,
// the site file and --set overrides, and returns the validated Spec.
func (l Library) Load(ref string, opt Options) (*Spec, error) {
	src := &source{origin: map[*yaml.Node]string{}}
	root, name, err := l.resolve(ref, src, nil)
	if err != nil {
		return nil, err
	}
	if opt.Site != "" {
		site, err := readDoc(opt.Site, os.ReadFile, src)
		if err != nil {
			return nil, err
		}
		if k, _ := lookup(site, "extends"); k != nil {
			return nil, Errors{{Pos: src.pos(k), Msg: "a site file cannot use extends: it is applied on top of the personality"}}
		}
		root = merge(root, site)
	}
	for _, kv := range opt.Set {
		doc, err := setDoc(kv, src)
		if err != nil {
			return nil, err
		}
		root = merge(root, doc)
	}
	dropKey(root, "extends")
	src.root = root
	var spec Spec
	if err := root.Decode(&spec); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	spec.Name = name
	spec.src = src
	if err := spec.validate(); err != nil {
		return nil, err
	}
	return &spec, nil
}

// Load is Library{}.Load: embedded personalities and paths only.
func Load(ref string, opt Options) (*Spec, error) { return Library{}.Load(ref, opt) }

// resolve loads ref and everything it extends, merged parents first. stack
// holds the files being resolved, to catch cycles.
func (l Library) resolve(ref string, src *source, stack []string) (*yaml.Node, string, error) {
	from := ""
	if len(stack) > 0 {
		from = stack[len(stack)-1]
	}
	loc, err := l.find(ref, from)
	if err != nil {
		return nil, "", err
	}
	file, name, id := loc.file, loc.name, loc.file
	if loc.embedded {
		id = embeddedPrefix + file
	}
	for _, s := range stack {
		if s == id {
			return nil, "", fmt.Errorf("extends cycle: %s -> %s", strings.Join(stack, " -> "), id)
		}
	}
	stack = append(stack, id)
	doc, err := readDoc(file, loc.read(), src)
	if err != nil {
		return nil, "", err
	}
	var merged *yaml.Node
	if _, v := lookup(doc, "extends"); v != nil {
		parents, perr := extendsList(v, src)
		if perr != nil {
			return nil, "", perr
		}
		for _, p := range parents {
			pnode, _, err := l.resolve(p.name, src, stack)
			if err != nil {
				if errors.Is(err, ErrUnknown) {
					return nil, "", Errors{{Pos: src.pos(p.node), Msg: fmt.Sprintf("extends %q: %v", p.name, err)}}
				}
				return nil, "", err
			}
			dropKey(pnode, "mixin")
			dropKey(pnode, "description")
			merged = merge(merged, pnode)
		}
	}
	return merge(merged, doc), name, nil
}

type parentRef struct {
	name string
	node *yaml.Node
}

func extendsList(v *yaml.Node, src *source) ([]parentRef, error) {
	switch v.Kind {
	case yaml.ScalarNode:
		return []parentRef{{v.Value, v}}, nil
	case yaml.SequenceNode:
		var out []parentRef
		for _, it := range v.Content {
			if it.Kind != yaml.ScalarNode {
				return nil, Errors{{Pos: src.pos(it), Msg: "extends: want a personality name"}}
			}
			out = append(out, parentRef{it.Value, it})
		}
		return out, nil
	}
	return nil, Errors{{Pos: src.pos(v), Msg: "extends: want a name or a list of names"}}
}

type readFunc func(string) ([]byte, error)

// embeddedPrefix marks an embedded file in the extends stack: its parents
// are embedded too, never looked up beside it on disk.
const embeddedPrefix = "embedded:"

// located is a personality file found by name or path.
type located struct {
	file     string // path on disk, or name in the embedded set
	name     string // personality name
	embedded bool
}

func (l located) read() readFunc {
	if l.embedded {
		return func(p string) ([]byte, error) { return fs.ReadFile(embedded, p) }
	}
	return os.ReadFile
}

// find locates ref. A ref with a slash or a .yaml/.yml suffix is a path,
// relative to the file that extends it; a name named from a user file is
// looked up beside that file first, then in Dirs, then embedded.
func (l Library) find(ref, from string) (located, error) {
	fromUser := from != "" && !strings.HasPrefix(from, embeddedPrefix)
	if isPath(ref) {
		if fromUser && !filepath.IsAbs(ref) {
			ref = filepath.Join(filepath.Dir(from), ref)
		}
		return located{file: filepath.Clean(ref), name: strings.TrimSuffix(strings.TrimSuffix(filepath.Base(ref), ".yaml"), ".yml")}, nil
	}
	dirs := append([]string(nil), l.Dirs...)
	if fromUser {
		dirs = append([]string{filepath.Dir(from)}, dirs...)
	}
	for _, d := range dirs {
		for _, ext := range []string{".yaml", ".yml"} {
			p := filepath.Join(d, ref+ext)
			if _, err := os.Stat(p); err == nil {
				return located{file: p, name: ref}, nil
			}
		}
	}
	if _, err := fs.Stat(embedded, ref+".yaml"); err == nil {
		return located{file: ref + ".yaml", name: ref, embedded: true}, nil
	}
	return located{}, fmt.Errorf("%w %q (applbuild list shows them; a file path needs a / or .yaml)", ErrUnknown, ref)
}

func isPath(ref string) bool {
	return strings.ContainsRune(ref, '/') || strings.HasSuffix(ref, ".yaml") || strings.HasSuffix(ref, ".yml")
}

// readDoc parses one YAML file, records where its nodes came from and checks
// it strictly against the Spec schema.
func readDoc(file string, read readFunc, src *source) (*yaml.Node, error) {
	b, err := read(file)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, syntaxError(file, b, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}, nil
	}
	root := doc.Content[0]
	record(root, file, src)
	if root.Kind != yaml.MappingNode {
		return nil, Errors{{Pos: src.pos(root), Msg: "want a mapping of keys (description:, cluster:, ...) at the top"}}
	}
	if err := checkSchema(root, src); err != nil {
		return nil, err
	}
	return root, nil
}

func record(n *yaml.Node, file string, src *source) {
	src.origin[n] = file
	for _, c := range n.Content {
		record(c, file, src)
	}
}

// syntaxError turns yaml.v3's "yaml: line 3: ..." into file:3: .... The
// parser often names the line where the enclosing block began rather than
// the bad line, so the line is found again as the shortest prefix of the
// file that fails the same way.
func syntaxError(file string, b []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var line int
	if n, _ := fmt.Sscanf(msg, "line %d:", &line); n == 1 {
		msg = strings.TrimSpace(msg[strings.Index(msg, ":")+1:])
	}
	lines := strings.SplitAfter(string(b), "\n")
	for k := 1; k <= len(lines); k++ {
		var n yaml.Node
		perr := yaml.Unmarshal([]byte(strings.Join(lines[:k], "")), &n)
		if perr != nil && strings.HasSuffix(perr.Error(), msg) {
			line = k
			break
		}
	}
	return Errors{{Pos: Pos{File: file, Line: line}, Msg: msg}}
}

// setDoc turns "cluster.memory=512M" into a one-path YAML document.
func setDoc(kv string, src *source) (*yaml.Node, error) {
	key, val, ok := strings.Cut(kv, "=")
	if !ok || key == "" {
		return nil, fmt.Errorf("--set %q: want key.path=value", kv)
	}
	var v yaml.Node
	if err := yaml.Unmarshal([]byte(val), &v); err != nil {
		return nil, fmt.Errorf("--set %s: %w", key, err)
	}
	leaf := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: ""}
	if len(v.Content) > 0 {
		leaf = v.Content[0]
	}
	parts := strings.Split(key, ".")
	node := leaf
	for i := len(parts) - 1; i >= 0; i-- {
		k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: parts[i]}
		node = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{k, node}}
	}
	record(node, "--set "+key, src)
	if err := checkSchema(node, src); err != nil {
		return nil, err
	}
	return node, nil
}

// lookup returns the key and value nodes of key in mapping m.
func lookup(m *yaml.Node, key string) (*yaml.Node, *yaml.Node) {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

func dropKey(m *yaml.Node, key string) {
	if m == nil || m.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

// Info is one line of `applbuild list`.
type Info struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Nodes       int    `json:"nodes"`
}

// List loads every buildable personality in the library (user dirs, then
// embedded; a user file shadows an embedded one of the same name).
func (l Library) List() ([]Info, error) {
	seen := map[string]bool{}
	var names []string
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	for _, d := range l.Dirs {
		m, _ := filepath.Glob(filepath.Join(d, "*.yaml"))
		for _, f := range m {
			add(strings.TrimSuffix(filepath.Base(f), ".yaml"))
		}
	}
	m, _ := fs.Glob(embedded, "*.yaml")
	for _, f := range m {
		add(strings.TrimSuffix(f, ".yaml"))
	}
	sort.Strings(names)
	var out []Info
	for _, n := range names {
		if l.isMixin(n) {
			continue
		}
		s, err := l.Load(n, Options{})
		if err != nil {
			return nil, err
		}
		out = append(out, Info{Name: n, Description: s.Description, Nodes: s.Cluster.Nodes})
	}
	return out, nil
}

// isMixin reads only the file's own mixin: key.
func (l Library) isMixin(name string) bool {
	loc, err := l.find(name, "")
	if err != nil {
		return false
	}
	b, err := loc.read()(loc.file)
	if err != nil {
		return false
	}
	var top struct {
		Mixin bool `yaml:"mixin"`
	}
	return yaml.Unmarshal(b, &top) == nil && top.Mixin
}
