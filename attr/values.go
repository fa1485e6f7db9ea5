package attr

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strings"
)

// Layer ranks where a value was set. A higher layer wins.
type Layer int

// Layers, lowest first.
const (
	LayerDefault    Layer = iota // the key's or the field's default
	LayerDeployment              // set for the whole deployment (Go or spec)
	LayerNode                    // set for one node or pool
	LayerOutput                  // produced by a role, or by a service
	LayerOverride                // set explicitly by the operator (flags, --set)
)

var layerNames = [...]string{"default", "deployment", "node", "output", "override"}

// String implements fmt.Stringer.
func (l Layer) String() string {
	if l >= 0 && int(l) < len(layerNames) {
		return layerNames[l]
	}
	return fmt.Sprintf("Layer(%d)", int(l))
}

// Source records where a value came from.
type Source struct {
	Layer Layer
	// File and Line locate a value written in a spec.
	File string
	Line int
	// Role and Node name the node-role whose output the value is.
	Role string
	Node string
	// Service names the service that produced the value (dns, ipam, ca).
	Service string
	// Detail is free text for anything else ("--set flag", "env MASON_TOKEN").
	Detail string
}

// FromOutput is the Source of a value produced by role on node.
func FromOutput(role, node string) Source {
	return Source{Layer: LayerOutput, Role: role, Node: node}
}

// FromSpec is the Source of a value written at file:line, in layer l.
func FromSpec(l Layer, file string, line int) Source {
	return Source{Layer: l, File: file, Line: line}
}

// String answers "where did this come from?" in a few words, e.g.
// "default", "deployment (deploy.hcl:12)", "output of etcd-member on n1".
func (s Source) String() string {
	var b strings.Builder
	switch {
	case s.Layer == LayerOutput && s.Role != "":
		fmt.Fprintf(&b, "output of %s", s.Role)
		if s.Node != "" {
			fmt.Fprintf(&b, " on %s", s.Node)
		}
	case s.Service != "":
		fmt.Fprintf(&b, "service %s", s.Service)
	case s.Layer == LayerNode && s.Node != "":
		fmt.Fprintf(&b, "node %s", s.Node)
	default:
		b.WriteString(s.Layer.String())
	}
	var where []string
	if s.File != "" {
		if s.Line > 0 {
			where = append(where, fmt.Sprintf("%s:%d", s.File, s.Line))
		} else {
			where = append(where, s.File)
		}
	}
	if s.Detail != "" {
		where = append(where, s.Detail)
	}
	if len(where) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(where, ", "))
	}
	return b.String()
}

// Value is one attribute value with its provenance. A secret Value prints
// redacted everywhere; Any still returns the value.
type Value struct {
	Name   string
	Source Source
	v      any
	secret bool
}

// Any returns the value itself (for secrets too: deliver it, don't print it).
func (v Value) Any() any { return v.v }

// Secret reports whether the value is secret.
func (v Value) Secret() bool { return v.secret || IsSecret(v.v) }

// String prints "name = value (from source)", the value redacted if secret.
func (v Value) String() string {
	return fmt.Sprintf("%s = %s (from %s)", v.Name, v.shown(), v.Source)
}

func (v Value) shown() string {
	if v.Secret() {
		return Redacted
	}
	return fmt.Sprintf("%v", v.v)
}

// Format implements fmt.Formatter so no verb reveals a secret.
func (v Value) Format(f fmt.State, verb rune) { fmt.Fprint(f, v.String()) }

// MarshalJSON writes {"name","value","source"}; secrets redacted.
func (v Value) MarshalJSON() ([]byte, error) {
	var shown any = v.v
	if v.Secret() {
		shown = Redacted
	}
	return json.Marshal(struct {
		Name   string `json:"name"`
		Value  any    `json:"value"`
		Source string `json:"source"`
	}{v.Name, shown, v.Source.String()})
}

// LogValue implements slog.LogValuer; secrets redacted.
func (v Value) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", v.Name),
		slog.String("value", v.shown()),
		slog.String("source", v.Source.String()),
	)
}

// Values holds attribute values in layers. The zero value is not usable;
// call NewValues. A Values is not safe for concurrent writes; readers may
// share it once writing is done.
type Values struct {
	m     map[string]*[LayerOverride + 1]*Value
	decls map[string]Decl
}

// NewValues returns an empty set.
func NewValues() *Values {
	return &Values{m: map[string]*[LayerOverride + 1]*Value{}, decls: map[string]Decl{}}
}

// Declare registers keys, so that untyped values set by name (SetAny, from
// a spec) are type-checked, validated and treated as secret when the key is.
func (vs *Values) Declare(keys ...Decl) error {
	for _, k := range keys {
		if !ValidName(k.Name()) {
			return fmt.Errorf("attr: invalid key name %q: want dotted lowercase segments like \"etcd.cluster_token\"", k.Name())
		}
		if old, ok := vs.decls[k.Name()]; ok && old.Type() != k.Type() {
			return fmt.Errorf("attr %q: declared twice with different types (%v and %v)", k.Name(), old.Type(), k.Type())
		}
		vs.decls[k.Name()] = k
	}
	return nil
}

// Decl returns the declared key for name, if any.
func (vs *Values) Decl(name string) (Decl, bool) {
	d, ok := vs.decls[name]
	return d, ok
}

// Set stores v for key k at src's layer, replacing what that layer held.
// It fails if the key is malformed or v does not pass the key's validation.
func Set[T any](vs *Values, k Key[T], v T, src Source) error {
	if err := k.Err(); err != nil {
		return err
	}
	if err := k.check(v); err != nil {
		return fmt.Errorf("%w (from %s)", err, src)
	}
	if _, ok := vs.decls[k.name]; !ok {
		vs.decls[k.name] = k
	}
	vs.put(Value{Name: k.name, Source: src, v: v, secret: k.secret})
	return nil
}

// SetAny stores an untyped value by name. If the name was declared, the
// value must have the declared type and pass its validation.
func (vs *Values) SetAny(name string, v any, src Source) error {
	if !ValidName(name) {
		return fmt.Errorf("attr: invalid key name %q (from %s): want dotted lowercase segments like \"etcd.cluster_token\"", name, src)
	}
	secret := false
	if d, ok := vs.decls[name]; ok {
		if err := d.CheckValue(v); err != nil {
			return fmt.Errorf("%w (from %s)", err, src)
		}
		secret = d.Secret()
	}
	vs.put(Value{Name: name, Source: src, v: v, secret: secret})
	return nil
}

func (vs *Values) put(v Value) {
	slot := vs.m[v.Name]
	if slot == nil {
		slot = new([LayerOverride + 1]*Value)
		vs.m[v.Name] = slot
	}
	l := v.Source.Layer
	if l < LayerDefault || l > LayerOverride {
		l = LayerOverride
	}
	slot[l] = &v
}

// Lookup returns the value of name from the highest layer that sets it,
// falling back to a declared key's default.
func (vs *Values) Lookup(name string) (Value, bool) {
	if slot := vs.m[name]; slot != nil {
		for l := LayerOverride; l >= LayerDefault; l-- {
			if slot[l] != nil {
				return *slot[l], true
			}
		}
	}
	if d, ok := vs.decls[name]; ok {
		if def, ok := d.DefaultValue(); ok {
			return Value{Name: name, Source: Source{Layer: LayerDefault}, v: def, secret: d.Secret()}, true
		}
	}
	return Value{}, false
}

// Get returns the effective value of k: the highest layer that sets it, else
// the key's default. It never panics: a value of the wrong type (set by name
// from a spec, or under a key declared twice) is a *TypeError, and no value
// at all is a *MissingError.
func Get[T any](vs *Values, k Key[T]) (T, error) {
	v, err := GetValue(vs, k)
	if err != nil {
		var zero T
		return zero, err
	}
	return unwrap[T](v.v), nil
}

// GetValue is Get that also returns the value's provenance.
func GetValue[T any](vs *Values, k Key[T]) (Value, error) {
	if err := k.Err(); err != nil {
		return Value{}, err
	}
	v, ok := vs.Lookup(k.name)
	if !ok {
		if def, has := k.Default(); has {
			return Value{Name: k.name, Source: Source{Layer: LayerDefault}, v: def, secret: k.secret}, nil
		}
		return Value{}, &MissingError{Name: k.name}
	}
	switch v.v.(type) {
	case T, Secret[T]:
		v.secret = v.secret || k.secret
		return v, nil
	}
	return Value{}, &TypeError{Name: k.name, Have: reflect.TypeOf(v.v), Want: k.Type(), Source: v.Source}
}

func unwrap[T any](v any) T {
	if s, ok := v.(Secret[T]); ok {
		return s.Reveal()
	}
	return v.(T)
}

// Explain returns every value set for name, highest layer first, ending
// with a declared default: the full answer to "where did this come from,
// and what did it override?".
func (vs *Values) Explain(name string) []Value {
	var out []Value
	if slot := vs.m[name]; slot != nil {
		for l := LayerOverride; l >= LayerDefault; l-- {
			if slot[l] != nil {
				out = append(out, *slot[l])
			}
		}
	}
	if d, ok := vs.decls[name]; ok {
		if def, ok := d.DefaultValue(); ok && (len(out) == 0 || out[len(out)-1].Source.Layer != LayerDefault) {
			out = append(out, Value{Name: name, Source: Source{Layer: LayerDefault}, v: def, secret: d.Secret()})
		}
	}
	return out
}

// Names returns the names that have a value in some layer, sorted.
func (vs *Values) Names() []string {
	out := make([]string, 0, len(vs.m))
	for n := range vs.m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Merge copies every value and declaration of other into vs; where both set
// the same name in the same layer, other's value wins.
func (vs *Values) Merge(other *Values) {
	for n, d := range other.decls {
		if _, ok := vs.decls[n]; !ok {
			vs.decls[n] = d
		}
	}
	for _, slot := range other.m {
		for _, v := range slot {
			if v != nil {
				vs.put(*v)
			}
		}
	}
}

// Clone returns an independent copy of vs.
func (vs *Values) Clone() *Values {
	c := NewValues()
	c.Merge(vs)
	return c
}

// Digest fingerprints the effective values of names (all names when none
// are given): see the package-level Digest. Sources do not count: moving a
// value from the spec to a flag with the same content changes nothing.
func (vs *Values) Digest(names ...string) (string, error) {
	if len(names) == 0 {
		names = vs.Names()
	}
	m := make(map[string]any, len(names))
	for _, n := range names {
		if v, ok := vs.Lookup(n); ok {
			m[n] = v.v
		}
	}
	return Digest(m)
}

// MissingError reports an attribute that no layer sets and that has no default.
type MissingError struct {
	Name string
}

// Error implements the error interface.
func (e *MissingError) Error() string {
	return fmt.Sprintf("attr %q: no value: not set as an override, by a role output, for the node or the deployment, and it has no default", e.Name)
}

// TypeError reports a value whose type is not the one the key declares.
type TypeError struct {
	Name   string
	Have   reflect.Type
	Want   reflect.Type
	Source Source
}

// Error implements the error interface.
func (e *TypeError) Error() string {
	if e.Source == (Source{}) {
		return fmt.Sprintf("attr %q: value has type %v, want %v", e.Name, e.Have, e.Want)
	}
	return fmt.Sprintf("attr %q: value from %s has type %v, want %v", e.Name, e.Source, e.Have, e.Want)
}
