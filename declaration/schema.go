package declaration

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
)

// A schema describes the JSON shape of a record just enough to explain why
// encoding/json refused it: which field has the wrong type, or which number is
// not finite. It is used only on the slow path, after a decode failed.
type schema interface {
	check(v any, path, kind string) *Error
}

type scalar int

const (
	str scalar = iota
	num
	boolean
)

type object map[string]schema

type array struct{ elem schema }

func (s scalar) check(v any, path, kind string) *Error {
	if v == nil {
		return nil // null is "absent"; validation decides whether that is allowed
	}
	switch s {
	case str:
		if _, ok := v.(string); !ok {
			return &Error{Field: path, Kind: kind, Msg: "must be a string"}
		}
	case boolean:
		if _, ok := v.(bool); !ok {
			return &Error{Field: path, Kind: kind, Msg: "must be true or false"}
		}
	case num:
		n, ok := v.(json.Number)
		if !ok {
			return &Error{Field: path, Kind: kind, Msg: "must be a number"}
		}
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return &Error{Field: path, Kind: kind, Msg: "is not a finite number: " + truncate(string(n), 40)}
		}
	}
	return nil
}

func (o object) check(v any, path, kind string) *Error {
	if v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return &Error{Field: path, Kind: kind, Msg: "must be an object"}
	}
	// Deterministic order, so the same input always gets the same reason.
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fv, present := m[k]
		if !present {
			continue
		}
		p, pk := k, k
		if path != "" {
			p, pk = path+"."+k, kind+"."+k
		}
		if e := o[k].check(fv, p, pk); e != nil {
			return e
		}
	}
	return nil
}

func (a array) check(v any, path, kind string) *Error {
	if v == nil {
		return nil
	}
	s, ok := v.([]any)
	if !ok {
		return &Error{Field: path, Kind: kind, Msg: "must be an array"}
	}
	for i, e := range s {
		if err := a.elem.check(e, elemPath(path, i, e), kind+"[]"); err != nil {
			return err
		}
	}
	return nil
}

// elemPath names an item by its goods item number when it has a usable one.
func elemPath(path string, i int, e any) string {
	if m, ok := e.(map[string]any); ok {
		if n, ok := m["line"].(json.Number); ok {
			if l, err := strconv.Atoi(string(n)); err == nil && l >= 1 {
				return fmt.Sprintf("%s[line %d]", path, l)
			}
		}
	}
	return fmt.Sprintf("%s[%d]", path, i)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
