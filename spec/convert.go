package spec

import (
	"encoding"
	"fmt"
	"math/big"
	"reflect"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/masonops/mason/attr"
)

var (
	durationType = reflect.TypeFor[time.Duration]()
	textUnmarsh  = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// toGo converts an HCL value into a value of the Go type t, strictly: a
// string field takes a string, a number field a number that fits, a list
// field a list or tuple of fitting elements. The error says what was
// given and what the field wants.
func toGo(v cty.Value, t reflect.Type) (reflect.Value, error) {
	if v.IsNull() {
		return reflect.Value{}, fmt.Errorf("the value is null; the field wants %s", goTypeWords(t))
	}
	if !v.IsWhollyKnown() {
		return reflect.Value{}, fmt.Errorf("the value is not known until apply; the field wants %s", goTypeWords(t))
	}
	v, _ = v.UnmarkDeep()
	// Secrets: convert to the element type, then wrap.
	if attr.IsSecret(reflect.Zero(t).Interface()) {
		rev, _ := t.MethodByName("Reveal")
		inner, err := toGo(v, rev.Type.Out(0))
		if err != nil {
			return reflect.Value{}, err
		}
		w, ok := attr.ConcealAs(t, inner.Interface())
		if !ok {
			return reflect.Value{}, fmt.Errorf("cannot wrap a %v as %v", inner.Type(), t)
		}
		return reflect.ValueOf(w), nil
	}
	out := reflect.New(t).Elem()
	ty := v.Type()
	mismatch := func() error {
		return fmt.Errorf("the field wants %s, but the value is %s", goTypeWords(t), ctyTypeWords(ty))
	}
	if t == durationType {
		if ty != cty.String {
			return reflect.Value{}, fmt.Errorf("the field wants a duration written as a string like \"30s\", but the value is %s", ctyTypeWords(ty))
		}
		d, err := time.ParseDuration(v.AsString())
		if err != nil {
			return reflect.Value{}, fmt.Errorf("%q is not a duration; write it like \"30s\" or \"5m\"", v.AsString())
		}
		out.SetInt(int64(d))
		return out, nil
	}
	if reflect.PointerTo(t).Implements(textUnmarsh) && t.Kind() != reflect.String {
		if ty != cty.String {
			return reflect.Value{}, fmt.Errorf("the field wants %v written as a string, but the value is %s", t, ctyTypeWords(ty))
		}
		if err := out.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(v.AsString())); err != nil {
			return reflect.Value{}, fmt.Errorf("%q is not a valid %v: %v", v.AsString(), t, err)
		}
		return out, nil
	}
	switch t.Kind() {
	case reflect.String:
		if ty != cty.String {
			return reflect.Value{}, mismatch()
		}
		out.SetString(v.AsString())
	case reflect.Bool:
		if ty != cty.Bool {
			return reflect.Value{}, mismatch()
		}
		out.SetBool(v.True())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if ty != cty.Number {
			return reflect.Value{}, mismatch()
		}
		bf := v.AsBigFloat()
		i, acc := bf.Int64()
		if acc != big.Exact || out.OverflowInt(i) {
			return reflect.Value{}, fmt.Errorf("%s does not fit the field's type %v (a whole number in its range)", bf.Text('g', -1), t)
		}
		out.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if ty != cty.Number {
			return reflect.Value{}, mismatch()
		}
		bf := v.AsBigFloat()
		u, acc := bf.Uint64()
		if acc != big.Exact || out.OverflowUint(u) {
			return reflect.Value{}, fmt.Errorf("%s does not fit the field's type %v (a whole number in its range)", bf.Text('g', -1), t)
		}
		out.SetUint(u)
	case reflect.Float32, reflect.Float64:
		if ty != cty.Number {
			return reflect.Value{}, mismatch()
		}
		f, _ := v.AsBigFloat().Float64()
		out.SetFloat(f)
	case reflect.Slice:
		if !(ty.IsListType() || ty.IsTupleType() || ty.IsSetType()) {
			return reflect.Value{}, mismatch()
		}
		n := v.LengthInt()
		s := reflect.MakeSlice(t, 0, n)
		i := 0
		for it := v.ElementIterator(); it.Next(); i++ {
			_, ev := it.Element()
			e, err := toGo(ev, t.Elem())
			if err != nil {
				return reflect.Value{}, fmt.Errorf("element %d: %w", i, err)
			}
			s = reflect.Append(s, e)
		}
		out.Set(s)
	case reflect.Map:
		if t.Key().Kind() != reflect.String || !(ty.IsMapType() || ty.IsObjectType()) {
			return reflect.Value{}, mismatch()
		}
		m := reflect.MakeMapWithSize(t, v.LengthInt())
		for it := v.ElementIterator(); it.Next(); {
			k, ev := it.Element()
			e, err := toGo(ev, t.Elem())
			if err != nil {
				return reflect.Value{}, fmt.Errorf("key %q: %w", k.AsString(), err)
			}
			m.SetMapIndex(reflect.ValueOf(k.AsString()).Convert(t.Key()), e)
		}
		out.Set(m)
	default:
		return reflect.Value{}, fmt.Errorf("a field of type %v cannot be set from a spec; set it in Go", t)
	}
	return out, nil
}

// goTypeWords names a Go type the way a spec author thinks of it.
func goTypeWords(t reflect.Type) string {
	if t == durationType {
		return "a duration (string like \"30s\")"
	}
	if attr.IsSecret(reflect.Zero(t).Interface()) {
		rev, _ := t.MethodByName("Reveal")
		return goTypeWords(rev.Type.Out(0)) + " (secret)"
	}
	if reflect.PointerTo(t).Implements(textUnmarsh) && t.Kind() != reflect.String {
		return fmt.Sprintf("a %v (string)", t)
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a list of " + plural(goTypeWords(t.Elem()))
	case reflect.Map:
		return "a map of " + plural(goTypeWords(t.Elem()))
	}
	return t.String()
}

func plural(s string) string {
	for _, a := range []string{"a ", "an "} {
		if len(s) > len(a) && s[:len(a)] == a {
			return s[len(a):] + "s"
		}
	}
	return s
}

func ctyTypeWords(t cty.Type) string {
	switch {
	case t == cty.String:
		return "a string"
	case t == cty.Number:
		return "a number"
	case t == cty.Bool:
		return "a bool"
	case t.IsListType() || t.IsTupleType() || t.IsSetType():
		return "a list"
	case t.IsMapType() || t.IsObjectType():
		return "a map"
	case t == cty.DynamicPseudoType:
		return "of unknown type"
	}
	return t.FriendlyName()
}

// ctyToAny converts an evaluated value into plain Go values for Settings.
func ctyToAny(v cty.Value) any {
	if v.IsNull() || !v.IsKnown() {
		return nil
	}
	v, _ = v.UnmarkDeep()
	ty := v.Type()
	switch {
	case ty == cty.String:
		return v.AsString()
	case ty == cty.Bool:
		return v.True()
	case ty == cty.Number:
		bf := v.AsBigFloat()
		if i, acc := bf.Int64(); acc == big.Exact {
			return i
		}
		f, _ := bf.Float64()
		return f
	case ty.IsListType() || ty.IsTupleType() || ty.IsSetType():
		var out []any
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			out = append(out, ctyToAny(e))
		}
		return out
	case ty.IsMapType() || ty.IsObjectType():
		out := map[string]any{}
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			out[k.AsString()] = ctyToAny(e)
		}
		return out
	}
	return nil
}

// ctyStrings converts a map or object of strings.
func ctyStringMap(v cty.Value) (map[string]string, error) {
	if v.IsNull() {
		return nil, nil
	}
	t := reflect.TypeFor[map[string]string]()
	g, err := toGo(v, t)
	if err != nil {
		return nil, err
	}
	return g.Interface().(map[string]string), nil
}
