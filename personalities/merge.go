package personalities

import "gopkg.in/yaml.v3"

// replaceTag on a value makes it replace what it overrides instead of
// merging into it: `packages: !replace [vim]`.
const replaceTag = "!replace"

// appendKeys are the lists of scalars that a child adds to rather than
// replaces: sets, where order carries no meaning.
var appendKeys = map[string]bool{"packages": true, "keys": true}

// merge lays src over dst and returns the result; dst may be reused.
//
// Mappings merge key by key. Lists of mappings that all carry a name: merge
// item by item on that name (a child can change one volume of its parent).
// The sets in appendKeys (packages) add what is new. Anything else, and any
// value tagged !replace, replaces.
func merge(dst, src *yaml.Node) *yaml.Node { return mergeKey("", dst, src) }

func mergeKey(key string, dst, src *yaml.Node) *yaml.Node {
	if src == nil {
		return dst
	}
	if src.Kind == yaml.AliasNode {
		src = src.Alias
	}
	if src.Tag == replaceTag {
		src.Tag = ""
		return src
	}
	if dst == nil {
		return src
	}
	switch {
	case dst.Kind == yaml.MappingNode && src.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(src.Content); i += 2 {
			k, v := src.Content[i], src.Content[i+1]
			if idx := keyIndex(dst, k.Value); idx >= 0 {
				dst.Content[idx] = k
				dst.Content[idx+1] = mergeKey(k.Value, dst.Content[idx+1], v)
			} else {
				dst.Content = append(dst.Content, k, mergeKey(k.Value, nil, v))
			}
		}
		return dst
	case dst.Kind == yaml.SequenceNode && src.Kind == yaml.SequenceNode:
		if named(dst) && named(src) {
			for _, it := range src.Content {
				if j := nameIndex(dst, itemName(it)); j >= 0 {
					dst.Content[j] = merge(dst.Content[j], it)
				} else {
					dst.Content = append(dst.Content, merge(nil, it))
				}
			}
			return dst
		}
		if appendKeys[key] && scalars(dst) && scalars(src) {
			have := map[string]bool{}
			for _, it := range dst.Content {
				have[it.Value] = true
			}
			for _, it := range src.Content {
				if !have[it.Value] {
					have[it.Value] = true
					dst.Content = append(dst.Content, it)
				}
			}
			return dst
		}
	}
	return src
}

func keyIndex(m *yaml.Node, key string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return i
		}
	}
	return -1
}

func itemName(n *yaml.Node) string {
	if _, v := lookup(n, "name"); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}

func named(seq *yaml.Node) bool {
	for _, it := range seq.Content {
		if it.Kind != yaml.MappingNode || itemName(it) == "" {
			return false
		}
	}
	return true
}

func nameIndex(seq *yaml.Node, name string) int {
	for i, it := range seq.Content {
		if itemName(it) == name {
			return i
		}
	}
	return -1
}

func scalars(seq *yaml.Node) bool {
	for _, it := range seq.Content {
		if it.Kind != yaml.ScalarNode {
			return false
		}
	}
	return true
}
