package role

import (
	"fmt"
	"reflect"
	"unsafe"

	"github.com/masonops/mason/attr"
	"github.com/masonops/mason/provider"
)

// Same is an input wired from the output of type T produced by a role on
// the same node. Tag the field `role:"name"` when several roles produce T.
type Same[T any] struct {
	Value T
	// Role is the producing role's name.
	Role string
}

// One is an input wired from the single output of type T in the whole
// deployment, whatever node produced it: the Swarm manager's join token for
// every worker. Tag the field `role:"name"` to pick the producer by name.
type One[T any] struct {
	Value T
	// Role and Node name the producer.
	Role string
	Node string
}

// All is an input wired from the outputs of type T of every node-role in
// the deployment, sorted by node name: cluster linking. Adding a node
// changes All for every consumer, which is how members learn of new peers.
//
// The graph builds one All per producer set and hands the same value to
// every consumer (see [Input.Gather]): a role must not modify the slice
// or its elements.
type All[T any] []Peer[T]

// Peer is one element of an All: a producer's output and where it ran.
type Peer[T any] struct {
	Node  string
	Role  string
	Value T
}

// Values returns just the outputs, in node order.
func (a All[T]) Values() []T {
	out := make([]T, len(a))
	for i, p := range a {
		out[i] = p.Value
	}
	return out
}

// Nodes returns the producers' node names, in order.
func (a All[T]) Nodes() []string {
	out := make([]string, len(a))
	for i, p := range a {
		out[i] = p.Node
	}
	return out
}

// Uses is an input wired from a service of type T, usually an interface:
// the one the application registered with [Provide] (a CA, DNS, IPAM, a
// load balancer), or else a capability of the node's Transport — the
// Transport implements T, as database/sql drivers offer optional
// interfaces. A role's input struct thus lists the services it needs
// beside the values it needs:
//
//	type RegisterIn struct {
//		DNS  role.Uses[netsvc.DNS]
//		Name string `attr:"dns.name"`
//	}
//
// The graph resolves Uses inputs when it plans, so a missing service fails
// the plan with a [BindError] naming the role, the node and the field.
// Uses inputs are not part of the input digest: changing a service's
// implementation does not re-run its users.
type Uses[T any] struct {
	Value T
}

// wire lets the schema recognise the wiring types whatever their T.
type wire interface {
	wireKind() (InputKind, reflect.Type)
}

func (Same[T]) wireKind() (InputKind, reflect.Type) { return InputSame, reflect.TypeFor[T]() }
func (One[T]) wireKind() (InputKind, reflect.Type)  { return InputOne, reflect.TypeFor[T]() }
func (All[T]) wireKind() (InputKind, reflect.Type)  { return InputAll, reflect.TypeFor[T]() }
func (Uses[T]) wireKind() (InputKind, reflect.Type) { return InputUses, reflect.TypeFor[T]() }

// filler sets a wiring field, at f in the input Bind fills, from matched
// outputs: the generic code knows the field's type, so it is set through
// a typed pointer, without reflection.
type filler interface {
	fill(f unsafe.Pointer, outs []Output)
}

func (Same[T]) fill(f unsafe.Pointer, outs []Output) {
	*(*Same[T])(f) = Same[T]{Value: outs[0].Value.(T), Role: outs[0].Role}
}

func (One[T]) fill(f unsafe.Pointer, outs []Output) {
	*(*One[T])(f) = One[T]{Value: outs[0].Value.(T), Role: outs[0].Role, Node: outs[0].Node}
}

func (All[T]) fill(f unsafe.Pointer, outs []Output) {
	a := make(All[T], len(outs))
	for i, o := range outs {
		a[i] = Peer[T]{Node: o.Node, Role: o.Role, Value: o.Value.(T)}
	}
	*(*All[T])(f) = a
}

// sharer is what an All field offers for values shared between
// consumers ([Input.Gather], [Env.Shared]).
type sharer interface {
	gather(outs []Output) (any, error)
	share(f unsafe.Pointer, v any) bool
	sources(v any) []attr.Source
}

func (All[T]) gather(outs []Output) (any, error) {
	if len(outs) == 0 {
		return All[T](nil), nil // as Bind leaves an optional All nothing filled
	}
	a := make(All[T], len(outs))
	for i, o := range outs {
		v, ok := o.Value.(T)
		if !ok {
			return nil, fmt.Errorf("output of %s is a %T, not a %v", Producer{Role: o.Role, Node: o.Node}.ID(), o.Value, reflect.TypeFor[T]())
		}
		a[i] = Peer[T]{Node: o.Node, Role: o.Role, Value: v}
	}
	return a, nil
}

func (All[T]) share(f unsafe.Pointer, v any) bool {
	a, ok := v.(All[T])
	if ok {
		*(*All[T])(f) = a
	}
	return ok
}

func (All[T]) sources(v any) []attr.Source {
	a := v.(All[T])
	out := make([]attr.Source, len(a))
	for k, p := range a {
		out[k] = attr.FromOutput(p.Role, p.Node)
	}
	return out
}

// Gather builds the value of All input in from outs, the outputs of its
// producers in the order [Input.Resolve] chose them: one value that
// every consumer of the same producers can share, through [Env.Shared],
// instead of each building (and digesting) its own copy. Digest it once
// with [attr.Digest] and give the digest to [Def.DigestInputsShared].
func (in Input) Gather(outs []Output) (any, error) {
	s, ok := in.fill.(sharer)
	if !ok || in.Kind != InputAll {
		return nil, fmt.Errorf("role: Gather: input %s is not a role.All", in.Describe())
	}
	v, err := s.gather(outs)
	if err != nil {
		return nil, fmt.Errorf("role: input %s: %w", in.Describe(), err)
	}
	return v, nil
}

// bindShared sets All input in's field, at f, to v, a value
// [Input.Gather] made, and returns where its elements came from when
// sources is set.
func (in *Input) bindShared(f unsafe.Pointer, v any, sources bool) ([]attr.Source, error) {
	s, ok := in.fill.(sharer)
	if !ok || !s.share(f, v) {
		return nil, fmt.Errorf("shared value is a %T, not a %v", v, in.fieldType)
	}
	if !sources {
		return nil, nil
	}
	return s.sources(v), nil
}

// DigestInputsShared is [Def.DigestInputs] for an input some of whose
// fields are shared values whose digests (attr.Digest of the field's
// value) the caller knows, by field name in known: those fields are not
// walked again. The result is the same as DigestInputs'.
func (d *Def) DigestInputsShared(in any, known map[string]string) (string, map[string]string, error) {
	var small [4]string
	per := small[:0]
	if len(d.fieldIdx) > len(small) {
		per = make([]string, 0, len(d.fieldIdx))
	}
	per = per[:len(d.fieldIdx)]
	total, err := d.DigestInputsInto(in, known, per)
	if err != nil {
		return "", nil, err
	}
	fields := make(map[string]string, len(per))
	for k, name := range d.fieldNames {
		fields[name] = per[k]
	}
	return total, fields, nil
}

// digestShared digests the fields of v into per, taking the digests of
// the fields in known as they are.
func (d *Def) digestShared(v reflect.Value, known map[string]string, per []string) (string, error) {
	var small [8]any
	vals := small[:0]
	if len(d.fieldIdx) > len(small) {
		vals = make([]any, 0, len(d.fieldIdx))
	}
	for k, i := range d.fieldIdx {
		name := d.fieldNames[k]
		dg, ok := known[name]
		if !ok {
			var err error
			if dg, err = attr.Digest(v.Field(i).Interface()); err != nil {
				return "", fmt.Errorf("role %q: input %s: %w", d.meta.Name, name, err)
			}
		}
		per[k] = dg
		vals = append(vals, dg)
	}
	total, err := attr.DigestFields(d.fieldNames, vals)
	if err != nil {
		return "", fmt.Errorf("role %q: inputs: %w", d.meta.Name, err)
	}
	return total, nil
}

// serviceFinder resolves a Uses field: the generic code makes the type
// assertion a Transport capability needs.
type serviceFinder interface {
	// find returns the service of type T: the registered one, else the
	// transport's capability. fromTransport says which.
	find(s *Services, t provider.Transport) (svc any, fromTransport, ok bool)
	// set stores svc (found by find) in the field at f.
	set(f unsafe.Pointer, svc any)
}

func (Uses[T]) find(s *Services, t provider.Transport) (any, bool, bool) {
	if s != nil {
		if v, ok := lookup[T](s); ok {
			return v, false, true
		}
	}
	if t != nil {
		if v, ok := t.(T); ok {
			return v, true, true
		}
	}
	return nil, false, false
}

func (Uses[T]) set(f unsafe.Pointer, svc any) {
	*(*Uses[T])(f) = Uses[T]{Value: svc.(T)}
}
