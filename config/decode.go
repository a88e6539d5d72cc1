package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a configuration: where (line, key) and what.
type Problem struct {
	Line int
	Key  string
	Msg  string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", p.Line, p.Key, p.Msg)
	}
	return fmt.Sprintf("%s: %s", p.Key, p.Msg)
}

// Problems is every problem found in a configuration; it is an error.
type Problems []Problem

func (ps Problems) Error() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, "\n")
}

// Sort orders problems by line, then key, so reports are stable.
func (ps Problems) Sort() {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Line != ps[j].Line {
			return ps[i].Line < ps[j].Line
		}
		return ps[i].Key < ps[j].Key
	})
}

// Decoder fills Go values from YAML nodes strictly: an unknown key, a wrong
// type or a duplicate key is a Problem with its line, and decoding carries on
// so that one run reports everything. It remembers the line of every key, so
// that validation that happens after decoding can still name the line.
//
// Struct fields are matched by their `yaml` tag; a field of type yaml.Node is
// kept undecoded (for detector parameters, decoded later by their kind).
type Decoder struct {
	Problems Problems
	lines    map[string]int
}

// NewDecoder returns an empty decoder.
func NewDecoder() *Decoder { return &Decoder{lines: map[string]int{}} }

// Line returns the line of the key at path, or of its nearest ancestor.
func (d *Decoder) Line(path string) int {
	for {
		if l, ok := d.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
}

// Problemf records a problem at the key path.
func (d *Decoder) Problemf(path, format string, args ...any) {
	d.Problems = append(d.Problems, Problem{Line: d.Line(path), Key: path, Msg: fmt.Sprintf(format, args...)})
}

// Decode fills v (a pointer) from n; path is the key path of n, for messages.
// Fields absent from the YAML keep the values v already has: set defaults first.
func (d *Decoder) Decode(n *yaml.Node, v any, path string) {
	d.decode(n, reflect.ValueOf(v).Elem(), path)
}

var (
	nodeType = reflect.TypeOf(yaml.Node{})
	timeType = reflect.TypeOf(time.Time{})
)

func (d *Decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if _, seen := d.lines[path]; !seen {
		d.lines[path] = n.Line
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" && v.Kind() != reflect.Struct {
		return
	}
	switch {
	case v.Type() == nodeType:
		v.Set(reflect.ValueOf(*n))
		return
	case v.Type() == timeType:
		var t time.Time
		if n.Kind != yaml.ScalarNode || n.Decode(&t) != nil {
			d.Problemf(path, "must be a date (2006-01-02) or an RFC 3339 timestamp, got %q", n.Value)
			return
		}
		v.Set(reflect.ValueOf(t))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
			// An optional section that is present starts from its defaults.
			if dv, ok := v.Interface().(interface{ setDefaults() }); ok {
				dv.setDefaults()
			}
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		if n.Tag == "!!null" {
			return
		}
		d.decodeStruct(n, v, path)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.Problemf(path, "must be a mapping")
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		d.eachKey(n, path, func(key string, kn, vn *yaml.Node) {
			e := reflect.New(v.Type().Elem()).Elem()
			d.decode(vn, e, path+"."+key)
			v.SetMapIndex(reflect.ValueOf(key), e)
		})
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.Problemf(path, "must be a list")
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), path+"["+strconv.Itoa(i)+"]")
		}
		v.Set(s)
	default:
		if n.Kind != yaml.ScalarNode {
			d.Problemf(path, "must be a %s", scalarName(v.Kind()))
			return
		}
		p := reflect.New(v.Type())
		if err := n.Decode(p.Interface()); err != nil {
			d.Problemf(path, "must be a %s, got %q", scalarName(v.Kind()), n.Value)
			return
		}
		v.Set(p.Elem())
	}
}

func scalarName(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "boolean (true or false)"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64, reflect.Uint32:
		return "whole number"
	case reflect.Float64, reflect.Float32:
		return "number"
	default:
		return "string"
	}
}

// eachKey walks a mapping node, reporting duplicate and non-string keys.
func (d *Decoder) eachKey(n *yaml.Node, path string, f func(key string, kn, vn *yaml.Node)) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		key := kn.Value
		child := key
		if path != "" {
			child = path + "." + key
		}
		d.lines[child] = kn.Line
		if seen[key] {
			d.Problemf(child, "appears twice")
			continue
		}
		seen[key] = true
		f(key, kn, vn)
	}
}

func (d *Decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.Problemf(path, "must be a mapping")
		return
	}
	t := v.Type()
	fields := map[string]int{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		fields[tag] = i
		names = append(names, tag)
	}
	d.eachKey(n, path, func(key string, kn, vn *yaml.Node) {
		child := key
		if path != "" {
			child = path + "." + key
		}
		i, ok := fields[key]
		if !ok {
			d.Problemf(child, "unknown key (known keys here: %s)", strings.Join(names, ", "))
			return
		}
		d.decode(vn, v.Field(i), child)
	})
}
