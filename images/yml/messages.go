package yml

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// describe says in words what a value of type t looks like in yml.
func describe(t reflect.Type) string {
	if t == idType {
		return "a number or a container name"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return describe(t.Elem())
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		e := t.Elem()
		for e.Kind() == reflect.Pointer {
			e = e.Elem()
		}
		switch {
		case e == idType:
			return "a list of numbers or container names"
		case e.Kind() == reflect.String:
			return "a list of strings"
		case e.Kind() == reflect.Struct:
			return "a list of mappings"
		}
		return "a list"
	case reflect.Map:
		return "a mapping of strings to strings"
	case reflect.Struct:
		return "a mapping"
	}
	return t.String()
}

// got says in words what node n is.
func got(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		switch n.ShortTag() {
		case "!!null":
			return "nothing (null)"
		case "!!str":
			return fmt.Sprintf("a string (%q)", v)
		case "!!int":
			return "an integer (" + v + ")"
		case "!!bool":
			return "a boolean (" + v + ")"
		case "!!float":
			return "a number (" + v + ")"
		}
		return fmt.Sprintf("%s (%s)", n.ShortTag(), v)
	}
	return "something else"
}

// unknownKey words the error for an unknown key, suggesting the closest
// known one.
func unknownKey(key, where string, fields []field) string {
	in := ""
	if where != "" {
		in = " in " + where
	}
	best, bestD := "", 1<<30
	var keys []string
	for _, f := range fields {
		keys = append(keys, f.key)
		if dist := editDistance(strings.ToLower(key), strings.ToLower(f.key)); dist < bestD {
			best, bestD = f.key, dist
		}
	}
	if bestD <= 2 || (bestD <= 3 && len(key) > 8) {
		return fmt.Sprintf("unknown key %q%s; did you mean %q?", key, in, best)
	}
	sort.Strings(keys)
	return fmt.Sprintf("unknown key %q%s; expected one of: %s", key, in, strings.Join(keys, ", "))
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
