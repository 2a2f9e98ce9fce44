package personalities

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/applbuild/applbuild/internal/regfile"
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

// Bounds on what a spec may make the loader do: a spec is small, and a
// mistaken or hostile one (extends: /dev/zero, a billion laughs, a diamond
// of extends: many levels deep) must fail fast with a position.
const (
	MaxSpecSize     = 1 << 20 // bytes of one YAML file
	maxExtendsDepth = 32
	// aliasBudget is how many nodes the expansion of aliases may add to a
	// file beyond the nodes it has.
	aliasBudget = 10000
)

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

// loader is one Load: the library, the tree being built, and every file
// already resolved, so an extends: diamond reads each file once.
type loader struct {
	ctx      context.Context
	lib      Library
	src      *source
	resolved map[string]*yaml.Node
	parses   int // YAML parses so far, for the tests that bound them
}

// Load reads the personality ref (a name or a path), merges its extends:,
// the site file and --set overrides, and returns the validated Spec.
func (l Library) Load(ref string, opt Options) (*Spec, error) {
	return l.LoadContext(context.Background(), ref, opt)
}

// LoadContext is Load that stops when ctx is done.
func (l Library) LoadContext(ctx context.Context, ref string, opt Options) (*Spec, error) {
	ld := &loader{ctx: ctx, lib: l, src: &source{origin: map[*yaml.Node]string{}}, resolved: map[string]*yaml.Node{}}
	return ld.load(ref, opt)
}

func (ld *loader) load(ref string, opt Options) (*Spec, error) {
	src := ld.src
	root, name, err := ld.resolve(ref, nil, nil)
	if err != nil {
		return nil, err
	}
	if opt.Site != "" {
		site, err := ld.readDoc(opt.Site, readRegular, "--site file")
		if err != nil {
			return nil, err
		}
		if k, _ := lookup(site, "extends"); k != nil {
			return nil, Errors{{Pos: src.pos(k), Msg: "a site file cannot use extends: it is applied on top of the personality"}}
		}
		root = merge(root, site)
	}
	for _, kv := range opt.Set {
		doc, err := ld.setDoc(kv)
		if err != nil {
			return nil, err
		}
		root = merge(root, doc)
	}
	dropKey(root, "extends")
	src.root = root
	var spec Spec
	if err := root.Decode(&spec); err != nil {
		// checkSchema has seen every value; this is a case it missed.
		return nil, Errors{{Pos: Pos{File: name}, Msg: err.Error()}}
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

// resolve loads ref and everything it extends, merged parents first. by is
// the extends: value that names ref (nil for the personality itself) and
// stack the files being resolved, to catch cycles.
func (ld *loader) resolve(ref string, by *yaml.Node, stack []string) (*yaml.Node, string, error) {
	if err := ld.ctx.Err(); err != nil {
		return nil, "", err
	}
	src := ld.src
	// refErr puts a mistake at the extends: value that led here, or on
	// the personality named on the command line.
	refErr := func(msg string) error {
		if by == nil {
			return Errors{{Pos: Pos{File: ref}, Msg: msg}}
		}
		return Errors{{Pos: src.pos(by), Msg: fmt.Sprintf("extends %q: %s", ref, msg)}}
	}
	from := ""
	if len(stack) > 0 {
		from = stack[len(stack)-1]
	}
	loc, err := ld.lib.find(ref, from)
	if err != nil {
		if by == nil {
			return nil, "", err
		}
		return nil, "", refErr(err.Error())
	}
	file, name, id := loc.file, loc.name, loc.file
	if loc.embedded {
		id = embeddedPrefix + file
	}
	for _, s := range stack {
		if s == id {
			return nil, "", refErr(fmt.Sprintf("a cycle: %s -> %s", strings.Join(stack, " -> "), id))
		}
	}
	if len(stack) >= maxExtendsDepth {
		return nil, "", refErr(fmt.Sprintf("extends: more than %d levels deep", maxExtendsDepth))
	}
	if r, ok := ld.resolved[id]; ok {
		return ld.copyTree(r), name, nil
	}
	stack = append(stack, id)
	doc, err := ld.readDoc(file, loc.read(), "")
	if err != nil {
		var errs Errors
		if errors.As(err, &errs) {
			return nil, "", err
		}
		return nil, "", refErr(err.Error())
	}
	var merged *yaml.Node
	if _, v := lookup(doc, "extends"); v != nil {
		parents, perr := extendsList(v, src)
		if perr != nil {
			return nil, "", perr
		}
		for _, p := range parents {
			pnode, _, err := ld.resolve(p.name, p.node, stack)
			if err != nil {
				return nil, "", err
			}
			dropKey(pnode, "mixin")
			dropKey(pnode, "description")
			merged = merge(merged, pnode)
		}
	}
	out := merge(merged, doc)
	// merge reuses its dst: keep a copy of our own for the next file that
	// extends this one.
	ld.resolved[id] = ld.copyTree(out)
	return out, name, nil
}

// copyTree copies n deeply, keeping where each node came from.
func (ld *loader) copyTree(n *yaml.Node) *yaml.Node {
	c := *n
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, k := range n.Content {
		c.Content[i] = ld.copyTree(k)
	}
	ld.src.origin[&c] = ld.src.origin[n]
	return &c
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

// readRegular reads a spec file from disk: a regular file of at most
// MaxSpecSize bytes. Opened without blocking, so a FIFO cannot hang the
// load, and checked by fstat, so a device such as /dev/zero is refused
// before a byte is read.
func readRegular(name string) ([]byte, error) {
	f, fi, err := regfile.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w but %s", errNotRegular, fileType(fi.Mode()))
	}
	if fi.Size() > MaxSpecSize {
		return nil, errTooLarge
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxSpecSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxSpecSize {
		return nil, errTooLarge
	}
	return b, nil
}

func fileType(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "a special file"
}

var (
	errNotRegular = errors.New("not a regular file")
	errTooLarge   = fmt.Errorf("larger than %d KiB: a spec is a small file", MaxSpecSize>>10)
)

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
	return readRegular
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

// readDoc reads and parses one YAML file, records where its nodes came from
// and checks it strictly against the Spec schema. what names the file in a
// read error when no extends: names it ("--site file").
func (ld *loader) readDoc(file string, read readFunc, what string) (*yaml.Node, error) {
	b, err := read(file)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		if what == "" {
			return nil, fmt.Errorf("cannot read: %w", err)
		}
		return nil, Errors{{Pos: Pos{File: file}, Msg: fmt.Sprintf("cannot read %s: %v", what, err)}}
	}
	return ld.parseDoc(file, b)
}

// parseDoc parses the one YAML document of b (named file in positions) and
// checks it against the schema.
func (ld *loader) parseDoc(file string, b []byte) (*yaml.Node, error) {
	root, err := ld.parseValue(file, b)
	if err != nil || root == nil {
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}, err
	}
	if root.Kind != yaml.MappingNode {
		return nil, Errors{{Pos: ld.src.pos(root), Msg: "want a mapping of keys (description:, cluster:, ...) at the top"}}
	}
	if err := checkSchema(root, ld.src); err != nil {
		return nil, err
	}
	return root, nil
}

// parseValue parses the one YAML document of b, with its aliases expanded;
// nil for an empty document.
func (ld *loader) parseValue(file string, b []byte) (*yaml.Node, error) {
	src := ld.src
	if e, bad := controlChar(file, b); bad {
		return nil, Errors{e}
	}
	docs, err := ld.parse(b)
	if err != nil {
		return nil, ld.syntaxError(file, b, err)
	}
	if len(docs) > 1 {
		return nil, Errors{{Pos: Pos{File: file, Line: docs[1].Line, Col: docs[1].Column}, Msg: "a second YAML document: a spec file holds one (remove the ---)"}}
	}
	if len(docs) == 0 || len(docs[0].Content) == 0 {
		return nil, nil
	}
	root := docs[0].Content[0]
	record(root, file, src)
	return ld.expandAliases(root)
}

// parse reads the YAML documents of b, at most two: a second one is an
// error, there is no need to read on.
func (ld *loader) parse(b []byte) ([]*yaml.Node, error) {
	ld.parses++
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []*yaml.Node
	for len(docs) < 2 {
		var d yaml.Node
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		docs = append(docs, &d)
	}
	return docs, nil
}

// controlChar finds the first control character yaml.v3 would refuse
// without saying where ("control characters are not allowed").
func controlChar(file string, b []byte) (Error, bool) {
	line, col := 1, 1
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		switch {
		case r == '\n':
			line, col = line+1, 0
		case r == '\t' || r == '\r':
		case r == utf8.RuneError && size == 1:
			return Error{Pos: Pos{File: file, Line: line, Col: col}, Msg: "not UTF-8 text"}, true
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\ufeff' && i > 0:
			return Error{Pos: Pos{File: file, Line: line, Col: col}, Msg: fmt.Sprintf("control character %U: a spec is text", r)}, true
		}
		i += size
		col++
	}
	return Error{}, false
}

// expandAliases replaces every alias by a copy of what it names, so that
// everything after the parse — the schema, the merge, "defined twice" —
// sees the tree the user meant. The copies take the alias's position. At
// most aliasBudget nodes beyond the file's own may be made: a billion
// laughs fails at the alias that crossed the line.
func (ld *loader) expandAliases(root *yaml.Node) (*yaml.Node, error) {
	e := &expander{ld: ld, left: aliasBudget + countNodes(root, 0)}
	if !hasAlias(root, map[*yaml.Node]bool{}) {
		return root, nil
	}
	out := e.expand(root, nil)
	if e.err != nil {
		return nil, e.err
	}
	return out, nil
}

type expander struct {
	ld   *loader
	left int
	err  error
}

// expand copies n with its aliases expanded; at is the alias whose target
// is being copied (its position marks the copy), nil while in the original.
func (e *expander) expand(n *yaml.Node, at *yaml.Node) *yaml.Node {
	if e.err != nil {
		return n
	}
	if n.Kind == yaml.AliasNode {
		if at == nil {
			at = n
		}
		return e.expand(n.Alias, at)
	}
	e.left--
	if e.left < 0 {
		e.err = Errors{{Pos: e.ld.src.pos(at), Msg: fmt.Sprintf("too much aliasing: the aliases expand to more than %d extra values", aliasBudget)}}
		return n
	}
	if e.left%1024 == 0 {
		if err := e.ld.ctx.Err(); err != nil {
			e.err = err
			return n
		}
	}
	c := n
	if at != nil {
		cp := *n
		cp.Line, cp.Column, cp.Anchor = at.Line, at.Column, ""
		e.ld.src.origin[&cp] = e.ld.src.origin[at]
		c = &cp
	}
	content := make([]*yaml.Node, len(n.Content))
	for i, k := range n.Content {
		content[i] = e.expand(k, at)
	}
	c.Content = content
	return c
}

func countNodes(n *yaml.Node, acc int) int {
	if n.Kind == yaml.AliasNode {
		return acc + 1
	}
	acc++
	for _, c := range n.Content {
		acc = countNodes(c, acc)
	}
	return acc
}

func hasAlias(n *yaml.Node, seen map[*yaml.Node]bool) bool {
	if n.Kind == yaml.AliasNode {
		return true
	}
	if seen[n] {
		return false
	}
	seen[n] = true
	for _, c := range n.Content {
		if hasAlias(c, seen) {
			return true
		}
	}
	return false
}

func record(n *yaml.Node, file string, src *source) {
	src.origin[n] = file
	for _, c := range n.Content {
		if c.Kind == yaml.AliasNode {
			src.origin[c] = file // its target is recorded where it stands
			continue
		}
		record(c, file, src)
	}
}

// syntaxError turns yaml.v3's "yaml: line 3: ..." into file:3: .... The
// parser names the line where the enclosing block began rather than the
// bad line, so the bad line is found again as the shortest prefix of the
// file that fails the same way. A prefix that ends before the mistake
// parses (or fails otherwise), one that holds it fails the same way: a
// search from the reported line, galloping then bisecting, finds it in a
// number of parses logarithmic in the distance.
func (ld *loader) syntaxError(file string, b []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var line int
	if n, _ := fmt.Sscanf(msg, "line %d:", &line); n == 1 {
		msg = strings.TrimSpace(msg[strings.Index(msg, ":")+1:])
	}
	if found, ok := ld.errorLine(b, msg, line); ok {
		line = found
	}
	return Errors{{Pos: Pos{File: file, Line: line}, Msg: msg}}
}

// errorLine is the first line k >= hint-1 such that the first k lines of b
// fail to parse with msg.
func (ld *loader) errorLine(b []byte, msg string, hint int) (int, bool) {
	ends := []int{} // ends[k-1] is the length of the first k lines
	for i, c := range b {
		if c == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		ends = append(ends, len(b))
	}
	fails := func(k int) bool {
		if ld.ctx.Err() != nil {
			return true // stop searching; the hint will do
		}
		_, err := ld.parse(b[:ends[k-1]])
		return err != nil && strings.HasSuffix(err.Error(), msg)
	}
	n := len(ends)
	lo := max(1, hint-1) // fails(lo-1) is taken as false
	if lo > n {
		return 0, false
	}
	// gallop: find hi with fails(hi)
	hi, step := lo, 1
	for !fails(hi) {
		lo = hi + 1
		if hi == n {
			return 0, false
		}
		hi = min(n, hi+step)
		step *= 2
	}
	// bisect in [lo, hi]: fails(hi) is true
	for lo < hi {
		mid := lo + (hi-lo)/2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return hi, true
}

// setDoc turns "cluster.memory=512M" into a one-path YAML document.
func (ld *loader) setDoc(kv string) (*yaml.Node, error) {
	src := ld.src
	key, val, ok := strings.Cut(kv, "=")
	if !ok || key == "" {
		return nil, Errors{{Pos: Pos{File: "--set"}, Msg: fmt.Sprintf("%s: want key.path=value", strconv.Quote(kv))}}
	}
	file := "--set " + key
	parts := strings.Split(key, ".")
	if parts[0] == "extends" {
		return nil, Errors{{Pos: Pos{File: file}, Msg: "extends cannot be set from the command line: name the parents in a personality file"}}
	}
	leaf, err := ld.parseValue(file, []byte(val))
	if err != nil {
		return nil, err
	}
	if leaf == nil {
		leaf = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "", Line: 1, Column: 1}
		src.origin[leaf] = file
	}
	node := leaf
	for i := len(parts) - 1; i >= 0; i-- {
		k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: parts[i], Line: 1, Column: 1}
		node = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{k, node}, Line: 1, Column: 1}
		src.origin[k], src.origin[node] = file, file
	}
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
