package yml

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxNodes bounds the work one document may cause (aliases can multiply it).
const maxNodes = 1 << 20

// decoder decodes yaml.Nodes into the types of this package strictly: every
// key must be known and every value of the right type.
type decoder struct {
	file  string
	nodes int
	depth int
}

// maxDepth bounds nesting (a linuxkit.yml needs fewer than 10 levels; a
// self-referencing alias would otherwise recurse forever).
const maxDepth = 32

func (d *decoder) errf(n *yaml.Node, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &Error{File: d.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

var (
	idType  = reflect.TypeOf(ID{})
	posType = reflect.TypeOf(Pos{})
)

// field is one decodable struct field, possibly inside an inline struct.
type field struct {
	key   string
	index []int
}

// fieldsOf lists the keys of a struct type: the yml tag, else the json tag
// (types of the OCI runtime spec), else the lower-cased field name.
func fieldsOf(t reflect.Type) []field {
	var out []field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		key, inline := tagKey(f)
		if key == "-" {
			continue
		}
		if inline {
			for _, sub := range fieldsOf(f.Type) {
				out = append(out, field{key: sub.key, index: append([]int{i}, sub.index...)})
			}
			continue
		}
		out = append(out, field{key: key, index: []int{i}})
	}
	return out
}

func tagKey(f reflect.StructField) (key string, inline bool) {
	if tag, ok := f.Tag.Lookup("yml"); ok {
		name, opts, _ := strings.Cut(tag, ",")
		return name, opts == "inline"
	}
	if f.Type == posType {
		return "-", false
	}
	if tag, ok := f.Tag.Lookup("json"); ok {
		name, _, _ := strings.Cut(tag, ",")
		if name != "" {
			return name, false
		}
	}
	return strings.ToLower(f.Name), false
}

// foreign reports whether t comes from another package (the OCI runtime
// spec), whose keys are matched case-insensitively as LinuxKit's yaml
// decoding of those types does.
func foreign(t reflect.Type) bool {
	return t.PkgPath() != posType.PkgPath()
}

func join(where, key string) string {
	if where == "" {
		return key
	}
	return where + "." + key
}

// decode stores node n into v (addressable), naming where in messages.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, where string) error {
	d.nodes++
	if d.nodes > maxNodes {
		return d.errf(n, "document too large or too deeply aliased (more than %d nodes)", maxNodes)
	}
	d.depth++
	defer func() { d.depth-- }()
	if d.depth > maxDepth {
		return d.errf(n, "%s: nested too deeply (a recursive alias?)", where)
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return d.errf(n, "%s: unresolved alias", where)
		}
		return d.decode(n.Alias, v, where)
	}
	t := v.Type()
	mismatch := func() error {
		return d.errf(n, "%s: expected %s, got %s", where, describe(t), got(n))
	}
	if t == idType {
		return d.decodeID(n, v, where)
	}
	switch t.Kind() {
	case reflect.Pointer:
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
			return mismatch()
		}
		p := reflect.New(t.Elem())
		if err := d.decode(n, p.Elem(), where); err != nil {
			return err
		}
		v.Set(p)
		return nil
	case reflect.Struct:
		return d.decodeStruct(n, v, where)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return mismatch()
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, item := range n.Content {
			if err := d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", where, i)); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.Map:
		if n.Kind != yaml.MappingNode || t.Key().Kind() != reflect.String {
			return mismatch()
		}
		m := reflect.MakeMapWithSize(t, len(n.Content)/2)
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				return d.errf(k, "%s: keys must be strings, got %s", where, got(k))
			}
			if line, dup := seen[k.Value]; dup {
				return d.errf(k, "%s: duplicate key %q (first at line %d)", where, k.Value, line)
			}
			seen[k.Value] = k.Line
			e := reflect.New(t.Elem()).Elem()
			if err := d.decode(val, e, join(where, k.Value)); err != nil {
				return err
			}
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(t.Key()), e)
		}
		v.Set(m)
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		return mismatch()
	}
	tag := n.ShortTag()
	switch t.Kind() {
	case reflect.String:
		if tag != "!!str" {
			hint := ""
			if tag == "!!int" || tag == "!!float" || tag == "!!bool" {
				hint = fmt.Sprintf(" (quote it: %q)", n.Value)
			}
			return d.errf(n, "%s: expected a string, got %s%s", where, got(n), hint)
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if tag != "!!bool" {
			return mismatch()
		}
		var b bool
		if err := n.Decode(&b); err != nil {
			return mismatch()
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if tag != "!!int" {
			return mismatch()
		}
		var i int64
		if err := n.Decode(&i); err != nil || v.OverflowInt(i) {
			return d.errf(n, "%s: %s is out of range for %s", where, n.Value, describe(t))
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if tag != "!!int" {
			return mismatch()
		}
		var u uint64
		if err := n.Decode(&u); err != nil || v.OverflowUint(u) {
			return d.errf(n, "%s: %s is out of range for %s", where, n.Value, describe(t))
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		if tag != "!!int" && tag != "!!float" {
			return mismatch()
		}
		var f float64
		if err := n.Decode(&f); err != nil {
			return mismatch()
		}
		v.SetFloat(f)
	default:
		return d.errf(n, "%s: cannot decode into %s", where, t)
	}
	return nil
}

func (d *decoder) decodeID(n *yaml.Node, v reflect.Value, where string) error {
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!int":
			u, err := strconv.ParseUint(n.Value, 0, 32)
			if err != nil {
				return d.errf(n, "%s: %s is not a valid id (0 to 4294967295)", where, n.Value)
			}
			v.Set(reflect.ValueOf(ID{Num: uint32(u)}))
			return nil
		case "!!str":
			if u, err := strconv.ParseUint(n.Value, 10, 32); err == nil {
				v.Set(reflect.ValueOf(ID{Num: uint32(u)}))
				return nil
			}
			if n.Value == "" {
				return d.errf(n, "%s: expected a number or a container name, got an empty string", where)
			}
			v.Set(reflect.ValueOf(ID{Name: n.Value}))
			return nil
		}
	}
	return d.errf(n, "%s: expected a number or a container name, got %s", where, got(n))
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, where string) error {
	t := v.Type()
	if n.Kind != yaml.MappingNode {
		return d.errf(n, "%s: expected %s, got %s", where, describe(t), got(n))
	}
	fields := fieldsOf(t)
	byKey := map[string]field{}
	for _, f := range fields {
		byKey[f.key] = f
	}
	// name the entry in messages once its name is known
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "name" && n.Content[i+1].Kind == yaml.ScalarNode && strings.HasSuffix(where, "]") {
			where += "(" + n.Content[i+1].Value + ")"
			break
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return d.errf(k, "%s: keys must be strings, got %s", where, got(k))
		}
		f, ok := byKey[k.Value]
		if !ok && foreign(t) {
			for _, cand := range fields {
				if strings.EqualFold(cand.key, k.Value) {
					f, ok = cand, true
					break
				}
			}
		}
		if !ok {
			return d.errf(k, "%s", unknownKey(k.Value, where, fields))
		}
		if line, dup := seen[f.key]; dup {
			return d.errf(k, "%s: duplicate key %q (first at line %d)", where, k.Value, line)
		}
		seen[f.key] = k.Line
		if err := d.decode(val, v.FieldByIndex(f.index), join(where, k.Value)); err != nil {
			return err
		}
	}
	if pf := v.FieldByName("Pos"); pf.IsValid() && pf.Type() == posType {
		pf.Set(reflect.ValueOf(Pos{File: d.file, Line: n.Line}))
	}
	return nil
}
