package personalities

import (
	"encoding"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// checkSchema walks one YAML document against the Spec type: every key must
// be a field, every scalar must decode into its field's type. yaml.v3 has
// KnownFields for a Decoder but not for Node.Decode, and its type errors
// carry no column; this walk gives both, for every mistake at once.
func checkSchema(root *yaml.Node, src *source) error {
	var errs Errors
	walkSchema(root, reflect.TypeOf(Spec{}), "", "", src, &errs)
	return errs.orNil()
}

var textUnmarshaler = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()

// kind is the check: tag of the field n is the value of (see kinds.go).
func walkSchema(n *yaml.Node, t reflect.Type, path, kind string, src *source, errs *Errors) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	bad := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if path != "" {
			msg = path + ": " + msg
		}
		*errs = append(*errs, Error{Pos: src.pos(n), Msg: msg})
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		if n.Kind != yaml.ScalarNode {
			bad("want a single value")
			return
		}
		v := reflect.New(t).Interface().(encoding.TextUnmarshaler)
		if err := v.UnmarshalText([]byte(n.Value)); err != nil {
			bad("%v", err)
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			bad("want a mapping (key: value lines), got %s", kindName(n))
			return
		}
		fields := yamlFields(t)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f, ok := fields[k.Value]
			if !ok {
				*errs = append(*errs, Error{Pos: src.pos(k), Msg: fmt.Sprintf("unknown key %q%s (known: %s)", k.Value, in(path), strings.Join(sortedKeys(fields), ", "))})
				continue
			}
			// yaml.v3 keeps both of two equal keys in a node; the merge
			// would take one of them silently.
			if seen[k.Value] {
				*errs = append(*errs, Error{Pos: src.pos(k), Msg: fmt.Sprintf("key %q%s given twice", k.Value, in(path))})
				continue
			}
			seen[k.Value] = true
			walkSchema(v, f.Type, join(path, k.Value), f.Tag.Get("check"), src, errs)
		}
	case reflect.Slice:
		if path == "extends" && n.Kind == yaml.ScalarNode {
			walkSchema(n, t.Elem(), path, kind, src, errs) // one parent may be named without a list
			return
		}
		if n.Kind != yaml.SequenceNode {
			bad("want a list, got %s", kindName(n))
			return
		}
		// Items merge by name across files, so a name twice in one file
		// would silently fold two items into one: refuse it here.
		names := map[string]bool{}
		for i, it := range n.Content {
			if name := itemName(it); name != "" {
				if names[name] {
					_, v := lookup(it, "name")
					*errs = append(*errs, Error{Pos: src.pos(v), Msg: fmt.Sprintf("%q defined twice in %s", name, path)})
				}
				names[name] = true
			}
			walkSchema(it, t.Elem(), fmt.Sprintf("%s[%s]", path, itemLabel(it, i)), kind, src, errs)
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			bad("want a single value, got %s", kindName(n))
			return
		}
		check, ok := kinds[kind]
		if !ok {
			panic(fmt.Sprintf("personalities: %s: no check for kind %q", path, kind))
		}
		if want := check(n.Value); want != "" {
			bad("%s, got %s", want, strconv.Quote(n.Value))
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			bad("want true or false, got %s", describe(n))
		}
	case reflect.Int, reflect.Int64:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			bad("want a whole number, got %s", describe(n))
			return
		}
		if _, err := strconv.ParseInt(n.Value, 0, 64); err != nil {
			bad("want a whole number, got %s", describe(n))
		}
	}
}

func yamlFields(t reflect.Type) map[string]reflect.StructField {
	m := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = f
	}
	return m
}

func sortedKeys(m map[string]reflect.StructField) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func itemLabel(n *yaml.Node, i int) string {
	if name := itemName(n); name != "" {
		return name
	}
	return strconv.Itoa(i)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func in(path string) string {
	if path == "" {
		return ""
	}
	return " in " + path
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return describe(n)
}

func describe(n *yaml.Node) string {
	if n.Kind != yaml.ScalarNode {
		return kindName(n)
	}
	return strconv.Quote(n.Value)
}
